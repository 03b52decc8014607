//! A real `fuselab serve` under the review's attacks, sent at once by several clients: every
//! oversized input gets its 4xx with a message naming the limit, `/api/health` keeps answering
//! within a second meanwhile, the server's peak memory stays under 2 GiB, and nothing the
//! attacks sent (photos) is written to its data directory.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");
const SMALL: &str = include_str!("../../examples/attack-small.toml");

/// A 69-byte PNG whose header declares 300000 × 300000 pixels (270 GB decoded).
const PNG_BOMB: &str = "89504e470d0a1a0a0000000d49484452000493e0000493e008020000008cd633c70000000c49444154789c63606060000000040001f61738550000000049454e44ae426082";

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("FUSELAB_DATA_DIR").expect(
        "FUSELAB_DATA_DIR is not set: run `fuselab --data-dir DIR models fetch` and point \
         FUSELAB_DATA_DIR at DIR (scripts/test.sh does both)",
    );
    PathBuf::from(dir).join("models")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// One HTTP/1.1 exchange: the status and the body.
fn http(addr: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before the whole body is sent.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

fn json_post(addr: &str, path: &str, cookie: &str, body: &Value) -> (u16, String) {
    http(
        addr,
        "POST",
        path,
        &format!("Cookie: {cookie}\r\nContent-Type: application/json\r\n"),
        body.to_string().as_bytes(),
    )
}

fn multipart(photos: &[(&str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "fuselab-adversarial-boundary";
    let mut body = Vec::new();
    for (name, bytes) in photos {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends an attack to a server address with a session cookie; returns the status and body.
type Sender = Box<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;

struct Attack {
    name: &'static str,
    send: Sender,
    status: u16,
    message: &'static str,
}

/// The attacks on the analysis endpoints.
fn analysis_attacks() -> Vec<Attack> {
    let analyze = |pool: Value, min: usize, max: usize| json!({"pool": pool, "options": {"top_k": 3, "min_size": min, "max_size": max}});
    let two_models = |labels: Value| {
        json!({"labels": labels, "models": [
            {"name": "a", "predictions": [0, 1]}, {"name": "b", "predictions": [1, 0]}]})
    };
    let many_models: Vec<Value> = (0..6000)
        .map(|m| json!({"name": format!("m{m}"), "predictions": [0, 1, 1]}))
        .collect();
    let forty: Vec<Value> = (0..40)
        .map(|m| json!({"name": format!("m{m}"), "predictions": [m % 2, 1, 0, 1]}))
        .collect();
    let mut classes = two_models(json!([0, 1]));
    classes["classes"] = json!(1_000_000_000_000_000_u64);
    let wide = analyze(
        json!({"labels": [0, 1, 1], "models": many_models.clone()}),
        2,
        2,
    );
    let cofailure = json!({"labels": [0, 1, 1], "models": many_models});
    vec![
        Attack {
            name: "a pool declaring 10^15 classes",
            send: Box::new(move |addr, cookie| {
                json_post(
                    addr,
                    "/api/ensemble/analyze",
                    cookie,
                    &analyze(classes.clone(), 2, 2),
                )
            }),
            status: 422,
            message: "classes is above the limit of 100000",
        },
        Attack {
            name: "a label of 4294967295",
            send: Box::new(move |addr, cookie| {
                let pool = two_models(json!([0, 4_294_967_295_u32]));
                json_post(addr, "/api/ensemble/analyze", cookie, &analyze(pool, 2, 2))
            }),
            status: 422,
            message: "classes is above the limit of 100000",
        },
        Attack {
            name: "6,000 models in one body",
            send: Box::new(move |addr, cookie| {
                json_post(addr, "/api/ensemble/analyze", cookie, &wide)
            }),
            status: 422,
            message: "6000 models is above the limit of 256",
        },
        Attack {
            name: "10^12 teams",
            send: Box::new(move |addr, cookie| {
                let pool = json!({"labels": [0, 1, 0, 1], "models": forty.clone()});
                json_post(addr, "/api/ensemble/analyze", cookie, &analyze(pool, 2, 40))
            }),
            status: 422,
            message: "1099511627735 teams in the size range is above the limit",
        },
        Attack {
            name: "a co-failure table of 6,000 models",
            send: Box::new(move |addr, cookie| {
                json_post(addr, "/api/cofailure", cookie, &cofailure)
            }),
            status: 422,
            message: "6000 models is above the limit of 256",
        },
    ]
}

/// The attacks on the other endpoints: photos, configurations, bodies.
fn other_attacks() -> Vec<Attack> {
    let bomb = hex(PNG_BOMB);
    vec![
        Attack {
            name: "photos declaring 300000 × 300000 pixels",
            send: Box::new(move |addr, cookie| {
                let (content_type, body) = multipart(&[
                    ("a.png", bomb.clone()),
                    ("b.png", bomb.clone()),
                    ("c.png", bomb.clone()),
                ]);
                http(
                    addr,
                    "POST",
                    "/api/masks",
                    &format!("Cookie: {cookie}\r\nContent-Type: {content_type}\r\n"),
                    &body,
                )
            }),
            status: 422,
            message: "300000",
        },
        Attack {
            name: "an alignment configuration with a pool of 10^13 rows",
            send: Box::new(move |addr, cookie| {
                let config = SMALL.replace(
                    "harmful_pool_size = 40\n",
                    "harmful_pool_size = 10000000000000\n",
                );
                assert_ne!(config, SMALL);
                let body = json!({"action": "attack", "config": config});
                json_post(addr, "/api/align/runs", cookie, &body)
            }),
            status: 400,
            message: "data.harmful_pool_size = 10000000000000: expected a whole number from 0 to 10000000",
        },
        Attack {
            name: "a body over the server's limit",
            send: Box::new(move |addr, cookie| {
                let body = vec![b' '; 2 * 1024 * 1024];
                http(
                    addr,
                    "POST",
                    "/api/ensemble/analyze",
                    &format!("Cookie: {cookie}\r\nContent-Type: application/json\r\n"),
                    &body,
                )
            }),
            status: 413,
            message: "",
        },
    ]
}

/// Signs in as the administrator; returns the `Cookie` header value.
fn sign_in(addr: &str) -> String {
    let body = json!({"name": "admin", "password": "adversarial admin"}).to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/session HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no session: {response}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The peak resident memory of a process (`VmHWM`), in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn files_under(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            files_under(&path, found);
        } else if !entry.file_type().unwrap().is_symlink() {
            found.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn attacks_get_4xx_while_the_server_keeps_answering_within_its_memory() {
    let dir = std::env::temp_dir().join(format!("fuselab-adversarial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::os::unix::fs::symlink(models_dir(), data_dir.join("models")).unwrap();
    let password_file = dir.join("password");
    std::fs::write(&password_file, "adversarial admin\n").unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data_dir)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--max-body-bytes",
            "1048576",
            "--max-heavy",
            "8",
            "--max-heavy-per-user",
            "8",
        ])
        .arg("--admin-password-file")
        .arg(&password_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit_once("://").unwrap().1.to_owned();

    let cookie = sign_in(&addr);
    let attacks: Vec<Attack> = analysis_attacks()
        .into_iter()
        .chain(other_attacks())
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (slowest_health, results) = std::thread::scope(|scope| {
        let health = scope.spawn(|| {
            let mut slowest = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let (status, body) = http(&addr, "GET", "/api/health", "", b"");
                assert_eq!(status, 200, "{body}");
                slowest = slowest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
            slowest
        });
        let runs: Vec<_> = attacks
            .iter()
            .map(|attack| {
                let (addr, cookie) = (&addr, &cookie);
                scope.spawn(move || {
                    let started = Instant::now();
                    let answer = (attack.send)(addr, cookie);
                    (answer, started.elapsed())
                })
            })
            .collect();
        let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (health.join().unwrap(), results)
    });
    for (attack, ((status, body), took)) in attacks.iter().zip(results) {
        assert_eq!(status, attack.status, "{}: {body}", attack.name);
        assert!(body.contains(attack.message), "{}: {body}", attack.name);
        assert!(
            took < Duration::from_secs(10),
            "{} took {took:?}",
            attack.name
        );
    }
    assert!(
        slowest_health < Duration::from_secs(1),
        "health took {slowest_health:?}"
    );

    let peak_kib = peak_memory_kib(child.id());
    assert!(peak_kib < 2 * 1024 * 1024, "peak memory {peak_kib} KiB");
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    let mut written = Vec::new();
    files_under(&data_dir, &mut written);
    written.sort();
    for file in &written {
        assert!(
            file.starts_with("fuselab.sqlite3"),
            "the attacks left {file} in the data directory: {written:?}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

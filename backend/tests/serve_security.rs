//! The real `fuselab serve` and `fuselab users` processes: the first administrator, the users
//! command, refusing to serve without accounts off loopback, the database's permissions, logs
//! without secrets, TLS, and connections that dawdle.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fuselab-serve-security-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fuselab(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_users_command_manages_accounts_and_refuses_bad_input_with_exit_2() {
    let dir = scratch("users");
    let password_file = dir.join("password");
    std::fs::write(
        &password_file,
        "correct horse battery\nsecond line ignored\n",
    )
    .unwrap();
    let added = fuselab(
        &dir,
        &["users", "add", "ada", "--role", "admin", "--password-file"],
        None,
    );
    assert_eq!(
        added.status.code(),
        Some(2),
        "a missing value is a usage error"
    );
    let added = Command::new(BIN)
        .arg("--data-dir")
        .arg(&dir)
        .args(["users", "add", "ada", "--role", "admin", "--password-file"])
        .arg(&password_file)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added.stderr));
    let added = fuselab(
        &dir,
        &["users", "add", "bob"],
        Some("from standard input\n"),
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert_eq!(text(&added.stdout), "added bob (user)\n");

    let set = fuselab(&dir, &["users", "set", "bob", "--can-train", "true"], None);
    assert!(set.status.success(), "{}", text(&set.stderr));
    let listed = text(&fuselab(&dir, &["users", "list"], None).stdout);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        rows,
        [vec!["ada", "admin", "yes"], vec!["bob", "user", "yes"]],
        "{listed}"
    );

    for (args, stdin, message) in [
        (
            &["users", "add", "bob"][..],
            Some("another password\n"),
            "already a user `bob`",
        ),
        (
            &["users", "add", "b o b"][..],
            Some("another password\n"),
            "is not allowed",
        ),
        (
            &["users", "add", "carol"][..],
            Some("short\n"),
            "at least 8 characters",
        ),
        (&["users", "remove", "ada"][..], None, "last administrator"),
        (
            &["users", "set", "ada", "--role", "user"][..],
            None,
            "last administrator",
        ),
        (
            &["users", "passwd", "nobody"][..],
            Some("long enough\n"),
            "no user `nobody`",
        ),
    ] {
        let output = fuselab(&dir, args, stdin);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains(message),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }

    let token = fuselab(&dir, &["users", "token", "bob", "--label", "ci"], None);
    assert!(token.status.success(), "{}", text(&token.stderr));
    assert!(text(&token.stdout).trim().starts_with("flb_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("fuselab.sqlite3"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the database holds password hashes");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_accounts_only_loopback_is_served() {
    let dir = scratch("auth-off");
    let output = fuselab(
        &dir,
        &["serve", "--auth", "off", "--addr", "0.0.0.0:0"],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("refusing to serve 0.0.0.0:0 without accounts"),
        "{stderr}"
    );
    assert!(stderr.contains("Drop `--auth off`"), "{stderr}");
    let output = fuselab(&dir, &["serve", "--public-url", "ftp://nope"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--public-url `ftp://nope`"),
        "{}",
        text(&output.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

struct Server {
    child: Child,
    addr: String,
    first_line: String,
    /// What it prints on standard output after its first line.
    stdout: std::sync::mpsc::Receiver<String>,
    /// The log, read all along so that the server never blocks on a full pipe.
    log: std::thread::JoinHandle<String>,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--log-format", "json", "--data-dir"])
            .arg(data_dir)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "debug,hyper=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = stderr.read_to_string(&mut log);
            log
        });
        let (sender, stdout) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let line = stdout.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(line.starts_with("fuselab listening on "), "{line}");
        let addr = line.trim().rsplit_once("://").unwrap().1.to_owned();
        Self {
            child,
            addr,
            first_line: line,
            stdout,
            log,
        }
    }

    /// The one-time password a first start prints right after its first line.
    fn one_time_password(&self) -> Option<String> {
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(2)) {
            if let Some(password) = line.strip_prefix("admin password: ") {
                return Some(password.to_owned());
            }
        }
        None
    }

    /// Stops it and returns its log.
    fn stop(mut self) -> String {
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exits cleanly on SIGTERM");
        self.log.join().unwrap()
    }
}

/// One HTTP/1.1 exchange: the status, the headers and the body.
fn http(addr: &str, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn post(addr: &str, path: &str, cookie: Option<&str>, body: &str) -> (u16, String, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn get(addr: &str, path: &str, cookie: &str) -> (u16, String, String) {
    http(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
        ),
    )
}

#[test]
fn the_first_start_creates_an_admin_once_and_logs_keep_no_secrets() {
    let dir = scratch("first-start");
    let server = Server::start(&dir, &[]);
    let password = server
        .one_time_password()
        .expect("a first start prints a one-time password");
    assert_eq!(password.len(), 20);
    let addr = server.addr.clone();

    let (status, head, _) = post(
        &addr,
        "/api/session",
        None,
        &format!(r#"{{"name":"admin","password":"{password}"}}"#),
    );
    assert_eq!(status, 200, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let secret = cookie.split_once('=').unwrap().1.to_owned();
    let analysis = {
        let pool = serde_json::json!({"labels": [0, 1], "models": [{"name": "a", "predictions": [0, 1]}, {"name": "b", "predictions": [1, 1]}]});
        let pool =
            fuselab_shared::ensemble::Pool::new(serde_json::from_value(pool).unwrap()).unwrap();
        let options =
            serde_json::from_value(serde_json::json!({"top_k": 1, "min_size": 2, "max_size": 2}))
                .unwrap();
        fuselab_shared::ensemble::analysis(&pool, &options, &mut |_, _| {}).unwrap()
    };
    let body = serde_json::json!({"analysis": analysis}).to_string();
    let (status, _, saved) = post(&addr, "/api/reports", Some(&cookie), &body);
    assert_eq!(status, 201, "{saved}");
    let id = serde_json::from_str::<serde_json::Value>(&saved).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, created) = post(&addr, "/api/tokens", Some(&cookie), r#"{"name":"script"}"#);
    assert_eq!(status, 201);
    let token = serde_json::from_str::<serde_json::Value>(&created).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = get(
        &addr,
        &format!("/api/reports/{id}"),
        &format!("x=1; {cookie}"),
    );
    assert_eq!(status, 200);
    let log = server.stop();
    assert!(
        log.contains(r#""route":"/api/reports/{id}""#),
        "routes are logged: {log}"
    );
    for secret in [&secret, &password, &id, &token] {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret `{secret}`:\n{log}"
        );
    }

    // The second start has its administrator: no new password.
    let server = Server::start(&dir, &[]);
    assert_eq!(server.one_time_password(), None);
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dawdling_connections_are_closed_and_capped() {
    let dir = scratch("slow");
    let password_file = dir.join("password");
    std::fs::write(&password_file, "administrator\n").unwrap();
    let server = Server::start(
        &dir,
        &[
            "--admin-password-file",
            password_file.to_str().unwrap(),
            "--header-timeout",
            "1",
            "--max-connections",
            "3",
        ],
    );
    let addr = server.addr.clone();
    // Three clients that never finish their headers hold every connection slot...
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"GET /api/health HTTP/1.1\r\nHost: x")
                .unwrap();
            stream
        })
        .collect();
    // ...until the header deadline closes them; then a real request is answered.
    let started = Instant::now();
    let (status, _, _) = http(
        &addr,
        &format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "the fourth connection waited for a slot ({waited:?})"
    );
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
            "a dawdling client is dropped: {}",
            String::from_utf8_lossy(&rest)
        );
    }
    server.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A self-signed certificate for `localhost` and its key, made by openssl.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    (cert, key)
}

#[test]
fn tls_serves_https_with_secure_cookies_and_hsts() {
    let dir = scratch("tls");
    let (cert, key) = self_signed(&dir);
    let password_file = dir.join("password");
    std::fs::write(&password_file, "administrator\n").unwrap();
    let server = Server::start(
        &dir,
        &[
            "--admin-password-file",
            password_file.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.first_line.contains("https://"),
        "{}",
        server.first_line
    );
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    let url = format!("https://localhost:{port}/api/session");
    let output = Command::new("curl")
        .args(["-sS", "-i", "--cacert"])
        .arg(&cert)
        .args([
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"name":"admin","password":"administrator"}"#,
            &url,
        ])
        .output()
        .unwrap();
    let response = text(&output.stdout);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{response}{}",
        text(&output.stderr)
    );
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age=31536000"),
        "{response}"
    );
    let cookie = lower
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap()
        .to_owned();
    assert!(cookie.contains("; secure"), "{cookie}");
    // Plain HTTP on the TLS port gets nothing.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("\"ok\""));
    server.stop();

    let output = fuselab(
        &dir,
        &[
            "serve",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            cert.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("--tls-key"),
        "{}",
        text(&output.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

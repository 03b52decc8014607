//! Helpers the integration tests share: waiting for a condition, listing a folder's files,
//! multipart bodies, scratch folders, running the `fuselab` binary, and talking to a real
//! `fuselab serve` (its address, one HTTP exchange), and a fusion study (questions and a
//! team's answer sets). Each test binary uses some of them.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it yields something; fails the test after `limit`.
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file under `dir` (none when it does not exist).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A multipart body of `photo` files and text fields, and its content type.
pub fn multipart(photos: &[(&str, Vec<u8>)], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "fuselab-test-boundary";
    let mut body = Vec::new();
    for (name, bytes) in photos {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The address in `fuselab serve`'s first line (`fuselab listening on http://ADDR`).
pub fn served_address(line: &str) -> String {
    line.trim()
        .strip_prefix("fuselab listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned()
}

/// One HTTP/1.1 exchange with a real server: the status and the body. `headers` are extra
/// header lines, each ending in `\r\n`.
pub fn http(addr: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, response[split + 4..].to_vec())
}

/// A fresh scratch folder for one test of this process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a run of the binary printed, and its exit code.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `fuselab` binary with `args` to completion.
pub fn fuselab(args: &[&str]) -> Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fuselab"))
        .args(args)
        .output()
        .unwrap();
    Output {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Splitmix64, so the data are the same on every machine.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 600 GSM8K-format questions (`dir/questions_file`) and three members' answer sets (in
/// `dir/answers_dir/`, named after colours): member j answers right exactly when the question
/// names colour j, otherwise another number; two outputs per member. Only a model that reads
/// the question and the right member's answer beats every member.
pub fn write_fusion_study(dir: &Path, questions_file: &str, answers_dir: &str) {
    const QUESTIONS: usize = 600;
    const COLOURS: [&str; 3] = ["red", "green", "blue"];
    std::fs::create_dir_all(dir.join(answers_dir)).unwrap();
    let mut state = 7;
    let mut questions = String::new();
    let mut answers = vec![String::new(); 3];
    for i in 0..QUESTIONS {
        let colour = (splitmix(&mut state) % 3) as usize;
        let gold = 1 + splitmix(&mut state) % 9;
        let id = format!("q{i}");
        questions.push_str(
            &serde_json::json!({
                "id": id,
                "question": format!("Trust {}.", COLOURS[colour]),
                "answer": format!("#### {gold}"),
            })
            .to_string(),
        );
        questions.push('\n');
        for (j, out) in answers.iter_mut().enumerate() {
            let value = if j == colour {
                gold
            } else {
                1 + (gold + splitmix(&mut state) % 8) % 9
            };
            let sample = format!("The answer is {value}.");
            out.push_str(&serde_json::json!({"id": id, "samples": [sample, sample]}).to_string());
            out.push('\n');
        }
    }
    std::fs::write(dir.join(questions_file), questions).unwrap();
    for (j, text) in answers.iter().enumerate() {
        std::fs::write(
            dir.join(answers_dir).join(format!("{}.jsonl", COLOURS[j])),
            text,
        )
        .unwrap();
    }
}

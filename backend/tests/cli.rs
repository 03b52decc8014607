//! The real `fuselab` binary: help, the server process, graceful shutdown, the data directory.

mod support;

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{http, served_address};

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

#[test]
fn help_lists_the_subcommands() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in ["serve", "devices", "--data-dir"] {
        assert!(help.contains(expected), "{help}");
    }
    let output = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("--addr") && help.contains("--data-dir"),
        "{help}"
    );
}

#[test]
fn bad_arguments_exit_with_usage_error() {
    let output = Command::new(BIN)
        .args(["serve", "--addr", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--addr"), "{stderr}");
}

#[test]
fn serves_until_sigterm_then_exits_cleanly() {
    let data_dir = std::env::temp_dir().join(format!("fuselab-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = served_address(&line);
    assert!(data_dir.is_dir(), "serve creates --data-dir");

    let (status, body) = http(&addr, "GET", "/api/health", "", &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"ok""#), "{body}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    std::fs::remove_dir_all(&data_dir).unwrap();

    // Structured logs: one JSON object per line, the request and the shutdown among them.
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        events.iter().any(|e| e["fields"]["status"] == 200),
        "{stderr}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "SIGTERM received, shutting down"),
        "{stderr}"
    );
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data_dir = std::env::temp_dir().join(format!("fuselab-cli-busy-{}", std::process::id()));
    let output = Command::new(BIN)
        .args(["serve", "--addr", &addr, "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `fuselab devices` on this machine: flex always; wgpu on lavapipe where there is no GPU.
#[test]
fn devices_checks_cpu_and_wgpu() {
    let output = Command::new(BIN)
        .args(["devices", "--require-gpu"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("cpu   burn ok"), "{stdout}");
    assert!(stdout.contains("wgpu  burn ok"), "{stdout}");
    assert!(
        stdout.contains("co-failure kernel matches the CPU"),
        "{stdout}"
    );
}

/// Non-finite or out-of-range training settings are usage errors (exit 2) naming the flag,
/// refused before any photo or model is read.
#[test]
fn mask_settings_out_of_range_exit_2_naming_the_flag() {
    let base = ["mask", "train", "--photos", "nowhere", "--out", "me.p3m"];
    for (flag, value) in [
        ("--tau", "NaN"),
        ("--tau", "2"),
        ("--epsilon", "inf"),
        ("--epsilon", "0"),
        ("--epochs", "0"),
        ("--epochs", "10000000000000"),
        ("--batch", "0"),
        ("--augment-rotate", "-5"),
        ("--augment-blur", "2-1"),
        ("--augment-jpeg", "0-101"),
        ("--steps", "0"),
        ("--diversity", "2"),
        ("--update", "sgd"),
        ("--objective", "affine"),
        ("--compat", "fawkes"),
    ] {
        let output = Command::new(BIN)
            .args(base)
            .arg(format!("{flag}={value}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// A 57-byte PNG declaring 300000×300000 pixels is refused from its header (exit 2), not
/// decoded into 270 GB.
#[test]
fn a_photo_declaring_huge_dimensions_exits_2() {
    fn chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&kind);
        crc.update(data);
        out.extend_from_slice(&kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = 300_000_u32.to_be_bytes().repeat(2);
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, *b"IHDR", &header);
    chunk(&mut png, *b"IDAT", &[]);
    chunk(&mut png, *b"IEND", &[]);
    let path = std::env::temp_dir().join(format!("fuselab-bomb-{}.png", std::process::id()));
    std::fs::write(&path, &png).unwrap();
    let output = Command::new(BIN)
        .args(["face", "detect"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("300000×300000"), "{stderr}");
    std::fs::remove_file(path).unwrap();
}

//! `fuselab llm topla summary --config FILE` as a process on the tiny model: a team of three
//! members where each is right on a different third of the questions (the question names which
//! one), so only a model that reads the question and the right member's answer beats them all;
//! the report's rows; `--compat llm-topla`'s teacher-forced row; SIGKILL, then the same command
//! resumes and finishes; bad data is refused naming the file, line and field.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::write_fusion_study;

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-summary-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(epochs: usize) -> String {
    format!(
        r#"out = "run"
device = "cpu"
seed = 5
task = "gsm8k"
questions = "questions.jsonl"
answers = "answers"
outputs_per_member = 1
patience = {epochs}

[model]
name = "tiny"
lora = {{ rank = 4, alpha = 8, dropout = 0.0, targets = ["q_proj"] }}
train = {{ batch_size = 8, epochs = {epochs}, max_len = 96, seed = 5, optim = {{ learning_rate = 3e-3, schedule = "linear", weight_decay = 0.0 }} }}

[eval]
max_new_tokens = 8
examples = 3
"#
    )
}

fn command(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["llm", "topla", "summary", "--json", "--config"])
        .arg(dir.join("config.toml"))
        .args(extra)
        .env("FUSELAB_DATA_DIR", dir.join("data"));
    c
}

fn run(dir: &Path, extra: &[&str]) -> (Output, Value) {
    let output = command(dir, extra).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    (output, report)
}

fn row<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .collect()
}

fn accuracy(row: &Value) -> f64 {
    row["scores"]["correct"].as_f64().unwrap()
}

#[test]
fn the_fused_model_beats_every_member_on_held_out_questions() {
    let dir = scratch("beats");
    write_fusion_study(&dir, "questions.jsonl", "answers");
    std::fs::write(dir.join("config.toml"), config(40)).unwrap();
    let (_, report) = run(&dir, &[]);
    assert_eq!(report["schema"], "fuselab.topla.summary/v1");
    assert_eq!(report["questions"], json!([336, 144, 120]));
    let members = row(&report, "member");
    assert_eq!(members.len(), 3);
    let best_member = members.iter().map(|r| accuracy(r)).fold(0.0, f64::max);
    assert!(
        best_member < 0.6,
        "each member is right on about a third: {best_member}"
    );
    let oracle = accuracy(row(&report, "oracle")[0]);
    assert!((oracle - 1.0).abs() < 1e-9, "some member is always right");
    let fused = accuracy(row(&report, "summary-generated")[0]);
    assert!(
        fused > best_member + 0.2,
        "fused {fused} vs best member {best_member}: {}",
        serde_json::to_string_pretty(&report["history"]).unwrap()
    );
    assert_eq!(row(&report, "weighted").len(), 1);
    assert!(row(&report, "summary-teacher-forced").is_empty());
    let best = report["best_epoch"].as_u64().unwrap() as usize;
    assert_eq!(report["kept_epoch"].as_u64().unwrap() as usize, best);
    let history = report["history"].as_array().unwrap();
    let best_score = history[best - 1]["val_score"].as_f64().unwrap();
    assert!(
        history
            .iter()
            .all(|e| e["val_score"].as_f64().unwrap() <= best_score)
    );
    assert_eq!(report["examples"].as_array().unwrap().len(), 3);
    let html = std::fs::read_to_string(dir.join("run/report.html")).unwrap();
    assert!(html.contains("TOPLA-Summary (generated)") && html.contains("TOPLA-Weighted"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compat_adds_the_teacher_forced_score_and_keeps_the_last_epoch() {
    let dir = scratch("compat");
    write_fusion_study(&dir, "questions.jsonl", "answers");
    std::fs::write(dir.join("config.toml"), config(3)).unwrap();
    let (_, report) = run(&dir, &["--compat", "llm-topla"]);
    assert_eq!(report["compat"], true);
    assert_eq!(report["kept_epoch"], 3);
    let forced = row(&report, "summary-teacher-forced");
    assert_eq!(forced.len(), 1);
    let examples = report["examples"].as_array().unwrap();
    assert!(examples.iter().all(|e| e["teacher_forced"].is_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_run_resumes_with_the_same_command() {
    let dir = scratch("kill");
    write_fusion_study(&dir, "questions.jsonl", "answers");
    std::fs::write(dir.join("config.toml"), config(6)).unwrap();
    let mut child = command(&dir, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = dir.join("run/fusion/fit.json");
    let started = Instant::now();
    // Kill it once an epoch has been scored and saved.
    loop {
        let epochs = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map_or(0, |v| v["history"].as_array().map_or(0, Vec::len));
        if epochs >= 1 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(
            started.elapsed() < Duration::from_mins(5),
            "no checkpoint in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!dir.join("run/report.json").exists());
    let (output, report) = run(&dir, &[]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("resuming"), "{log}");
    let history = report["history"].as_array().unwrap();
    assert_eq!(history.len(), 6);
    assert_eq!(history[0]["epoch"], 1);
    assert!(dir.join("run/report.html").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_data_is_refused_naming_the_file_line_and_field() {
    let dir = scratch("bad");
    write_fusion_study(&dir, "questions.jsonl", "answers");
    std::fs::write(dir.join("config.toml"), config(1)).unwrap();
    let questions = dir.join("questions.jsonl");
    let good = std::fs::read_to_string(&questions).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines[3] = r#"{"id": "q3", "question": "Trust red.", "answer": "no number"}"#;
    std::fs::write(&questions, lines.join("\n")).unwrap();
    let output = command(&dir, &[]).output().unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("questions.jsonl, line 4") && message.contains("field `answer` of `q3`"),
        "{message}"
    );
    // A member that did not answer every question.
    std::fs::write(&questions, &good).unwrap();
    let red = dir.join("answers/red.jsonl");
    let answers = std::fs::read_to_string(&red).unwrap();
    std::fs::write(&red, answers.lines().skip(1).collect::<Vec<_>>().join("\n")).unwrap();
    let output = command(&dir, &[]).output().unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("red.jsonl: no answers for question `q0`"),
        "{message}"
    );
    assert!(!dir.join("run/report.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

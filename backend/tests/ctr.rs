//! `fuselab ctr` as a process: the synthetic data is seeded, its options reach the data, and its knob works (a model without
//! the trigger attention loses AUC when entries follow the trigger); a training killed with SIGKILL
//! resumes with the same command to the numbers of an uninterrupted one; `predict` scores a
//! file without labels; a changed setting is refused rather than reusing the folder; bad rows
//! are refused naming the file, line and column; the MovieLens proxy trains when the data
//! directory holds RecBole's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-ctr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fuselab(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env("FUSELAB_DATA_DIR", dir.join("data-dir"));
    c
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "fuselab failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A benchmark configuration on generated synthetic data.
fn synthetic_config(
    trigger_weight: f64,
    pages: usize,
    models: &str,
    seeds: &str,
    epochs: usize,
) -> String {
    format!(
        r#"out = "run"
seed = 1

[data.synthetic]
seed = 7
pages = {pages}
trigger_weight = {trigger_weight}

[model]
embedding_dim = 16
heads = 2
mlp = [64, 32]

[train]
epochs = {epochs}
batch_size = 256
learning_rate = 0.002
patience = 0

[benchmark]
models = {models}
seeds = {seeds}
"#
    )
}

/// `fuselab ctr data synthetic` with `args`, run in `dir`.
fn synthetic_data(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["ctr", "data", "synthetic"];
    all.extend_from_slice(args);
    fuselab(dir, &all).output().unwrap()
}

fn benchmark(dir: &Path) -> Value {
    let stdout = ok(&fuselab(
        dir,
        &["ctr", "benchmark", "--json", "--config", "config.toml"],
    )
    .output()
    .unwrap());
    serde_json::from_str(&stdout).unwrap()
}

fn mean_auc(report: &Value, model: &str) -> f64 {
    report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no {model} row in {report}"))["auc"]["mean"]
        .as_f64()
        .unwrap()
}

#[test]
fn synthetic_data_is_seeded_and_written_with_its_summary() {
    let dir = scratch("data");
    for out in ["a", "b"] {
        ok(&synthetic_data(
            &dir,
            &["--seed", "3", "--pages", "200", "--out", out],
        ));
    }
    ok(&synthetic_data(
        &dir,
        &["--seed", "4", "--pages", "200", "--out", "c"],
    ));
    for split in ["train.csv", "valid.csv", "test.csv"] {
        let a = std::fs::read(dir.join("a").join(split)).unwrap();
        assert_eq!(
            a,
            std::fs::read(dir.join("b").join(split)).unwrap(),
            "{split} differs for one seed"
        );
        assert_ne!(
            a,
            std::fs::read(dir.join("c").join(split)).unwrap(),
            "{split} equal for two seeds"
        );
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.join("a/dataset.json")).unwrap()).unwrap();
    let pages: u64 = ["train", "valid", "test"]
        .iter()
        .map(|s| summary[s]["pages"].as_u64().unwrap())
        .sum();
    assert_eq!(pages, 200);
    let header = std::fs::read_to_string(dir.join("a/train.csv")).unwrap();
    assert!(
        header.starts_with(
            "page_id,user_id,item_id,item_cat,trigger_id,trigger_cat,scenario,hist_item_id,hist_cat"
        ),
        "{}",
        &header[..120]
    );
}

#[test]
fn the_generator_options_reach_the_data_and_a_bad_one_is_named() {
    let dir = scratch("options");
    ok(&synthetic_data(
        &dir,
        &[
            "--seed",
            "3",
            "--pages",
            "200",
            "--pages-per-visit",
            "4",
            "--trigger-from",
            "history",
            "--held-out-scenarios",
            "4",
            "--out",
            "d",
        ],
    ));
    let column = |split: &str, name: &str| -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(dir.join("d").join(split)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let at = |c: &str| header.iter().position(|h| *h == c).unwrap();
        let (k, h) = (at(name), at("hist_item_id"));
        lines
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                vec![cells[k].to_owned(), cells[h].to_owned()]
            })
            .collect()
    };
    for row in column("train.csv", "trigger_id") {
        assert!(row[1].split('^').any(|i| i == row[0]), "{row:?}");
    }
    // 10 scenarios by default, the last 4 held out of training.
    let scenario = |split: &str| -> Vec<u32> {
        column(split, "scenario")
            .iter()
            .map(|r| r[0].trim_start_matches('s').parse().unwrap())
            .collect()
    };
    assert!(scenario("train.csv").iter().all(|&s| s < 6));
    assert!(scenario("test.csv").iter().all(|&s| s >= 6));
    let output = synthetic_data(&dir, &["--trigger-from", "nowhere", "--out", "e"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--trigger-from") && stderr.contains("expected `theme` or `history`"),
        "{stderr}"
    );
}

#[test]
fn without_the_trigger_attention_a_model_loses_auc_when_entries_follow_the_trigger() {
    let dir = scratch("knob");
    std::fs::write(
        dir.join("config.toml"),
        synthetic_config(0.9, 4000, r#"["din", "din-trigger"]"#, "[1]", 3),
    )
    .unwrap();
    let report = benchmark(&dir);
    let (din, trigger) = (mean_auc(&report, "din"), mean_auc(&report, "din-trigger"));
    let ceiling = report["ceiling"].as_f64().unwrap();
    assert!(
        trigger > din + 0.01,
        "DIN {din:.4}, DIN + trigger {trigger:.4}"
    );
    assert!(
        trigger < ceiling,
        "DIN + trigger {trigger:.4} above the truth's {ceiling:.4}"
    );
    for file in ["results.json", "results.csv", "results.md", "report.html"] {
        assert!(dir.join("run").join(file).is_file(), "{file} missing");
    }
}

fn train_config() -> String {
    synthetic_config(0.5, 600, r#"["ccn"]"#, "[1]", 3)
}

#[test]
fn a_killed_training_resumes_with_the_same_command_to_the_same_numbers() {
    let straight = scratch("straight");
    std::fs::write(straight.join("config.toml"), train_config()).unwrap();
    let expected: Value = serde_json::from_str(&ok(&fuselab(
        &straight,
        &["ctr", "train", "--json", "--config", "config.toml"],
    )
    .output()
    .unwrap()))
    .unwrap();

    let dir = scratch("kill");
    std::fs::write(dir.join("config.toml"), train_config()).unwrap();
    let mut child = fuselab(&dir, &["ctr", "train", "--json", "--config", "config.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = dir.join("run/checkpoint.json");
    let started = Instant::now();
    while !state.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(
            started.elapsed() < Duration::from_mins(5),
            "no checkpoint in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.join("run/result.json").exists(),
        "the run finished before it was killed"
    );
    let resumed: Value = serde_json::from_str(&ok(&fuselab(
        &dir,
        &["ctr", "train", "--json", "--config", "config.toml"],
    )
    .output()
    .unwrap()))
    .unwrap();
    let (a, b) = (&expected["runs"][0], &resumed["runs"][0]);
    assert_eq!(a["epochs"], b["epochs"]);
    for key in ["auc", "logloss"] {
        let (x, y) = (
            a["test"][key].as_f64().unwrap(),
            b["test"][key].as_f64().unwrap(),
        );
        assert!(
            (x - y).abs() < 1e-6,
            "test {key}: straight {x}, resumed {y}"
        );
    }

    // The trained model scores a file without labels; the rows come back with a probability.
    let test = std::fs::read_to_string(dir.join("run/data/test.csv")).unwrap();
    let mut lines = test.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let click = header.iter().position(|c| *c == "click").unwrap();
    let unlabelled: String = test
        .lines()
        .take(11)
        .map(|line| {
            let cells: Vec<&str> = line
                .split(',')
                .enumerate()
                .filter(|(i, _)| *i != click)
                .map(|(_, c)| c)
                .collect();
            cells.join(",") + "\n"
        })
        .collect();
    std::fs::write(dir.join("score.csv"), unlabelled).unwrap();
    ok(&fuselab(
        &dir,
        &[
            "ctr",
            "predict",
            "--model",
            "run",
            "--data",
            "score.csv",
            "--out",
            "scored.csv",
        ],
    )
    .output()
    .unwrap());
    let scored = std::fs::read_to_string(dir.join("scored.csv")).unwrap();
    assert!(scored.lines().next().unwrap().ends_with(",probability"));
    assert_eq!(scored.lines().count(), 11);
    for line in scored.lines().skip(1) {
        let p: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{line}");
    }
}

#[test]
fn a_changed_setting_is_refused_rather_than_reusing_the_folder() {
    let dir = scratch("changed");
    let config = synthetic_config(0.5, 200, r#"["din"]"#, "[1]", 1);
    std::fs::write(dir.join("config.toml"), &config).unwrap();
    ok(&fuselab(&dir, &["ctr", "train", "--config", "config.toml"])
        .output()
        .unwrap());
    for (changed, section) in [
        (
            config.replace("trigger_weight = 0.5", "trigger_weight = 0.6"),
            "[data]",
        ),
        (config.replace("epochs = 1", "epochs = 2"), "[train]"),
    ] {
        std::fs::write(dir.join("config.toml"), changed).unwrap();
        let output = fuselab(&dir, &["ctr", "train", "--config", "config.toml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "a changed {section} was accepted");
        assert!(
            stderr.contains("was made with other settings") && stderr.contains(section),
            "{stderr}"
        );
    }
}

#[test]
fn bad_rows_are_refused_naming_the_file_line_and_column() {
    let dir = scratch("bad");
    ok(&synthetic_data(
        &dir,
        &["--seed", "1", "--pages", "60", "--out", "d"],
    ));
    let valid = std::fs::read_to_string(dir.join("d/valid.csv")).unwrap();
    let mut lines: Vec<String> = valid.lines().map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let click = header.iter().position(|c| *c == "click").unwrap();
    let mut cells: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    cells[click] = "maybe".into();
    lines[3] = cells.join(",");
    std::fs::write(dir.join("d/valid.csv"), lines.join("\n") + "\n").unwrap();
    let schema = toml_schema();
    std::fs::write(
        dir.join("config.toml"),
        format!("out = \"run\"\n\n[data.files]\ntrain = \"d/train.csv\"\nvalid = \"d/valid.csv\"\ntest = \"d/test.csv\"\n\n{schema}"),
    )
    .unwrap();
    let output = fuselab(&dir, &["ctr", "train", "--config", "config.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("valid.csv: line 4, column `click`: expected 0 or 1, found `maybe`"),
        "{stderr}"
    );
}

/// The standard exposure schema written out as a user would.
fn toml_schema() -> &'static str {
    r#"[schema]
label = "click"
user = "user_id"
page = "page_id"
target = ["item_id", "item_cat"]
sequence = ["hist_item_id", "hist_cat"]
trigger = ["trigger_id", "trigger_cat"]
features = [
  { name = "user_id", type = "categorical" },
  { name = "item_id", type = "categorical" },
  { name = "item_cat", type = "categorical" },
  { name = "trigger_id", type = "categorical", share_embedding = "item_id" },
  { name = "trigger_cat", type = "categorical", share_embedding = "item_cat" },
  { name = "scenario", type = "categorical" },
  { name = "hist_item_id", type = "sequence", splitter = "^", max_len = 20, share_embedding = "item_id" },
  { name = "hist_cat", type = "sequence", splitter = "^", max_len = 20, share_embedding = "item_cat" },
]
"#
}

#[test]
fn the_movielens_proxy_trains_when_its_files_are_cached() {
    let Some(data_dir) = std::env::var_os("FUSELAB_DATA_DIR").map(PathBuf::from) else {
        eprintln!(
            "FUSELAB_DATA_DIR is not set: `fuselab models fetch` caches RecBole's MovieLens files"
        );
        return;
    };
    if !data_dir.join("models/ctr/ml-100k/ml-100k.inter").is_file() {
        eprintln!(
            "MovieLens files are not cached in {}: run `fuselab models fetch`",
            data_dir.display()
        );
        return;
    }
    let dir = scratch("movielens");
    std::fs::write(
        dir.join("config.toml"),
        "out = \"run\"\n[data.movielens]\n[model]\nmodel = \"din-trigger\"\nmlp = [64, 32]\n[train]\nepochs = 1\n",
    )
    .unwrap();
    let stdout = ok(
        &fuselab(&dir, &["ctr", "train", "--json", "--config", "config.toml"])
            .env("FUSELAB_DATA_DIR", &data_dir)
            .output()
            .unwrap(),
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let auc = report["runs"][0]["test"]["auc"].as_f64().unwrap();
    assert!(auc > 0.55, "MovieLens proxy test AUC {auc}");
    let rows = report["splits"][0]["rows"].as_u64().unwrap();
    assert!(rows > 40_000, "{rows} training rows");
}

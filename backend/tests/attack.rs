//! The harmful fine-tuning benchmark end to end with the guide's configuration
//! (`examples/attack-synthetic.toml`, synthetic data, a tiny Llama trained here): the default
//! grid writes its table and charts and Booster and Lisa lower the harmful score against SFT; a
//! run killed with SIGKILL resumes from its checkpoint with every step logged once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fuselab::align::results::{BenchmarkReport, CellResult, Defence};

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-attack-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The guide's configuration (docs/guide/alignment.md) with its run folder moved to `dir/run`.
fn config_in(dir: &Path) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/attack-synthetic.toml");
    let text = std::fs::read_to_string(example).unwrap();
    assert!(text.contains("out = \"../runs/attack-synthetic\""));
    let text = text.replace(
        "out = \"../runs/attack-synthetic\"",
        &format!("out = {:?}", dir.join("run").display().to_string()),
    );
    let path = dir.join("attack.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn command(action: &str, config: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["align", action, "--json", "--config"])
        .arg(config)
        .env("FUSELAB_DATA_DIR", config.parent().unwrap().join("data"));
    command
}

fn run(action: &str, config: &Path) -> Output {
    let output = command(action, config).output().unwrap();
    assert!(
        output.status.success(),
        "fuselab align {action} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn cell(report: &BenchmarkReport, defence: Defence, p: f64) -> &CellResult {
    report
        .results
        .iter()
        .find(|r| r.defence == defence && r.p == Some(p))
        .unwrap_or_else(|| panic!("no row for {defence:?} at p = {p}"))
}

#[test]
fn the_default_grid_writes_its_table_and_charts_and_booster_and_lisa_lower_the_harmful_score() {
    let dir = scratch("grid");
    let config = config_in(&dir);
    let started = Instant::now();
    let output = run("benchmark", &config);
    let report: BenchmarkReport = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("benchmark took {:.0} s", started.elapsed().as_secs_f64());
    for r in &report.results {
        eprintln!(
            "{:>8} p {:>5} HS {:5.1} HS+ {:5.1} FA {:5.1}",
            r.defence.name(),
            r.p.map_or("–".to_owned(), |p| p.to_string()),
            r.measured.hs,
            r.measured.hs_plus,
            r.measured.fa
        );
    }
    // Three aligned models (SFT, Booster, Vaccine), then 4 defences × 3 ratios × 1 size.
    assert_eq!(report.results.iter().filter(|r| r.p.is_none()).count(), 3);
    assert_eq!(report.results.iter().filter(|r| r.p.is_some()).count(), 12);
    assert!(report.synthetic);
    assert_eq!(report.judge, "marker");
    for r in &report.results {
        for value in [r.measured.hs, r.measured.hs_plus, r.measured.fa] {
            assert!((0.0..=100.0).contains(&value), "{value} out of range");
        }
        assert!(r.measured.hs_plus >= r.measured.hs);
        assert_eq!(r.measured.harmful_prompts, 40);
        assert_eq!(r.measured.benign_prompts, 40);
    }
    // Every aligned model refuses; the benign fine-tuning without poison stays harmless and
    // learns the task.
    for r in report.results.iter().filter(|r| r.p.is_none()) {
        assert!(
            r.measured.hs <= 10.0,
            "aligned {:?}: HS {}",
            r.defence,
            r.measured.hs
        );
    }
    let clean = cell(&report, Defence::Sft, 0.0);
    assert!(
        clean.measured.hs <= 10.0 && clean.measured.fa >= 50.0,
        "{clean:?}"
    );
    // On this seed the attack breaks SFT at p = 0.1, and Booster and Lisa each resist it with
    // FA within a few points.
    let sft = cell(&report, Defence::Sft, 0.1);
    assert!(
        sft.measured.hs >= 20.0,
        "the attack did not break SFT: {sft:?}"
    );
    for defence in [Defence::Booster, Defence::Lisa] {
        let defended = cell(&report, defence, 0.1);
        assert!(
            defended.measured.hs < sft.measured.hs,
            "{defence:?}: HS {} !< SFT's {}",
            defended.measured.hs,
            sft.measured.hs
        );
        assert!(
            (defended.measured.fa - sft.measured.fa).abs() <= 10.0,
            "{defence:?}: FA {} vs SFT's {}",
            defended.measured.fa,
            sft.measured.fa
        );
    }
    // More poison, more harm for SFT.
    assert!(cell(&report, Defence::Sft, 0.3).measured.hs >= sft.measured.hs);

    check_files(&dir.join("run"), &report);

    // A second run measures nothing again: every result is read back.
    let again = run("benchmark", &config);
    let second: BenchmarkReport = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(second.results, report.results);

    check_changed_settings(&dir, &config);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The benchmark's files: the CSV, the Markdown table, the charts and the report.
fn check_files(out: &Path, report: &BenchmarkReport) {
    for file in [
        "results.json",
        "results.csv",
        "results.md",
        "hs.svg",
        "fa.svg",
        "report.html",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 15);
    assert!(csv.starts_with("seed,defence,p,n,hs,"));
    let markdown = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(markdown.contains("| 3 | lisa | 0.1 | 200 |"), "{markdown}");
    // One seed: the summary is the rows themselves.
    assert_eq!(report.summary.len(), 15);
    assert!(
        report
            .summary
            .iter()
            .all(|r| r.seeds == 1 && r.hs_std == 0.0)
    );
    assert!(markdown.contains("synthetic"));
    let chart = std::fs::read_to_string(out.join("hs.svg")).unwrap();
    assert_eq!(
        chart.matches("<polyline").count(),
        4,
        "one line per defence"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("synthetic"));
}

/// A changed training setting does not silently reuse the finished stage: it is refused with
/// the section named. A changed evaluation setting measures again.
fn check_changed_settings(dir: &Path, config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let changed = dir.join("changed.toml");
    std::fs::write(&changed, text.replace("lambda = 5.0", "lambda = 1.0")).unwrap();
    let refused = command("booster", &changed).output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("[booster] changed"), "{message}");
    std::fs::write(
        &changed,
        text.replace("harmful_prompts = 40", "harmful_prompts = 10"),
    )
    .unwrap();
    let remeasured: BenchmarkReport =
        serde_json::from_slice(&run("booster", &changed).stdout).unwrap();
    assert_eq!(remeasured.results[0].measured.harmful_prompts, 10);
}

/// `(stage, step)` of every metrics line.
fn logged(path: &Path) -> Vec<(String, usize, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["stage"].as_str().unwrap().to_owned(),
                usize::try_from(v["step"].as_u64().unwrap()).unwrap(),
                line.to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_run_killed_with_sigkill_resumes_from_its_checkpoint() {
    let dir = scratch("kill");
    let config = config_in(&dir);
    let out = dir.join("run");
    let state = out.join("base/state.json");
    let mut child = command("attack", &config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the base model's pretraining has written a checkpoint and gone on past it.
    let deadline = Instant::now() + Duration::from_mins(5);
    let checkpointed = loop {
        assert!(Instant::now() < deadline, "no checkpoint within 300 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        if let Ok(text) = std::fs::read_to_string(&state)
            && let Ok(saved) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let step = saved["state"]["step"].as_u64().unwrap_or(0);
            let logged_after = logged(&out.join("metrics.jsonl"))
                .iter()
                .any(|(_, s, _)| *s as u64 > step + 2);
            if step > 0 && logged_after {
                break usize::try_from(step).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = logged(&out.join("metrics.jsonl"));
    let total = 400;
    assert!(checkpointed < total, "it finished before the kill");

    let output = run("attack", &config);
    let report: BenchmarkReport = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report.results.len(), 1);
    let after = logged(&out.join("metrics.jsonl"));
    let base: Vec<usize> = after
        .iter()
        .filter(|(stage, _, _)| stage == "base")
        .map(|(_, step, _)| *step)
        .collect();
    assert_eq!(
        base,
        (1..=total).collect::<Vec<_>>(),
        "every step logged once"
    );
    // The steps up to the checkpoint were not redone: their lines are the first run's.
    let kept: Vec<&String> = before
        .iter()
        .filter(|(_, step, _)| *step <= checkpointed)
        .map(|(_, _, line)| line)
        .collect();
    let now: Vec<&String> = after
        .iter()
        .filter(|(stage, step, _)| stage == "base" && *step <= checkpointed)
        .map(|(_, _, line)| line)
        .collect();
    assert_eq!(kept, now);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_attack_example_configuration_parses() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("attack-") && path.extension().is_some_and(|e| e == "toml") {
            let config: Result<fuselab::align::attack::AttackConfig, _> =
                fuselab::align::read_config(&path);
            assert!(config.is_ok(), "{name}: {:?}", config.err());
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} attack examples");
}

#[test]
fn replicates_are_summarised_by_mean_and_standard_deviation() {
    use fuselab::align::{attack::summarise, results::Measured};
    let row = |seed: u64, defence: Defence, p: Option<f64>, hs: f64, fa: f64| CellResult {
        seed,
        defence,
        p,
        n: p.map(|_| 200),
        measured: Measured {
            hs,
            hs_plus: hs,
            fa,
            harmful_prompts: 40,
            benign_prompts: 40,
            samples: Vec::new(),
            seconds: 0.0,
        },
    };
    let rows = vec![
        row(1, Defence::Sft, None, 0.0, 20.0),
        row(1, Defence::Sft, Some(0.1), 100.0, 80.0),
        row(2, Defence::Sft, None, 10.0, 40.0),
        row(2, Defence::Sft, Some(0.1), 0.0, 90.0),
        row(3, Defence::Sft, Some(0.1), 50.0, 85.0),
    ];
    let summary = summarise(&rows);
    assert_eq!(summary.len(), 2);
    let aligned = &summary[0];
    assert_eq!(
        (aligned.defence, aligned.p, aligned.seeds),
        (Defence::Sft, None, 2)
    );
    assert!((aligned.hs - 5.0).abs() < 1e-12 && (aligned.fa - 30.0).abs() < 1e-12);
    assert!((aligned.hs_std - 50.0_f64.sqrt()).abs() < 1e-12);
    let attacked = &summary[1];
    assert_eq!(attacked.seeds, 3);
    assert!((attacked.hs - 50.0).abs() < 1e-12 && (attacked.hs_std - 50.0).abs() < 1e-12);
    assert!((attacked.fa - 85.0).abs() < 1e-12 && (attacked.fa_std - 5.0).abs() < 1e-12);
}

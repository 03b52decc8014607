//! H3Fusion end to end on the synthetic data, with the guide's configuration
//! (`examples/h3fusion-synthetic.toml`, docs/guide/alignment.md): a tiny Llama
//! trained from scratch, three LoRA experts, the fused mixture of experts, the report; then
//! the run resumed, and bad configurations refused with the key named.

use std::path::{Path, PathBuf};
use std::process::Command;

use fuselab::align::h3fusion::{H3FusionConfig, run};
use fuselab::align::read_config;
use fuselab::align::results::H3FusionReport;
use fuselab_shared::align::{SYNTHETIC_LABEL, Task};
use fuselab_shared::api::H3FusionReportView;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-h3fusion-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The mean over layers of each expert's router probability for `task`'s prompts.
fn routing(report: &H3FusionReport, task: Task) -> Vec<f64> {
    let fused = report.models.iter().find(|m| m.name == "fused").unwrap();
    let (_, heat) = fused
        .evaluation
        .routing
        .iter()
        .find(|(t, _)| *t == task)
        .unwrap_or_else(|| panic!("no routing for {task}"));
    let layers = heat.len() as f64;
    (0..3)
        .map(|e| heat.iter().map(|row| row[e]).sum::<f64>() / layers)
        .collect()
}

#[test]
fn h3fusion_routes_each_task_to_its_expert_and_beats_every_single_expert() {
    let config_path = repo().join("examples/h3fusion-synthetic.toml");
    let config: H3FusionConfig = read_config(&config_path).unwrap();
    let out = scratch("run");
    let device = burn::tensor::Device::flex();
    let report = run(&config, &out, Path::new("/nonexistent"), &device).unwrap();

    for model in &report.models {
        let s = &model.evaluation.scores;
        eprintln!(
            "{:>16}: helpful {:.2} harmless {:.2} honest {:.2} mean {:.3}",
            model.name,
            s.helpful,
            s.harmless,
            s.honest,
            s.mean()
        );
    }
    for task in Task::ALL {
        eprintln!("routing of {task} prompts: {:?}", routing(&report, task));
    }
    let mean = |name: &str| {
        report
            .models
            .iter()
            .find(|m| m.name == name)
            .unwrap()
            .evaluation
            .scores
            .mean()
    };
    // Each expert does its own task better than the base does.
    let base = &report.models[0].evaluation.scores;
    for task in Task::ALL {
        let expert = report
            .models
            .iter()
            .find(|m| m.name == format!("expert:{task}"))
            .unwrap();
        assert!(
            expert.evaluation.scores.get(task) > base.get(task),
            "expert {task} scores {:?}, the base {base:?}",
            expert.evaluation.scores
        );
    }
    let fused = mean("fused");
    for task in Task::ALL {
        assert!(
            fused > mean(&format!("expert:{task}")),
            "fused {fused:.3} vs expert {task}"
        );
    }
    for task in Task::ALL {
        let r = routing(&report, task);
        let own = r[task.index()];
        assert!(
            r.iter()
                .enumerate()
                .all(|(e, &p)| e == task.index() || own > p),
            "{task} prompts route {r:?}"
        );
    }

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains(SYNTHETIC_LABEL));
    let saved: H3FusionReport =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(saved.models.len(), 5);
    // The web app's reading of the same file.
    let view: H3FusionReportView =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(view.format, "fuselab.h3fusion.report/v1");
    for (model, seen) in saved.models.iter().zip(&view.models) {
        assert_eq!(model.name, seen.name);
        assert_eq!(model.evaluation.scores, seen.evaluation.scores);
        assert_eq!(model.evaluation.routing, seen.evaluation.routing);
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("\"stage\":\"fusion\"") && l.contains("\"gate\""))
    );

    // A second run finds every stage done and reproduces the evaluation.
    let again = run(&config, &out, Path::new("/nonexistent"), &device).unwrap();
    assert!(again.throughput.is_empty(), "{:?}", again.throughput);
    assert_eq!(
        again.models.last().unwrap().evaluation.scores,
        report.models.last().unwrap().evaluation.scores
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_bad_configuration_names_the_key() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("run.toml");
    let text = std::fs::read_to_string(repo().join("examples/h3fusion-synthetic.toml"))
        .unwrap()
        .replace("lambda = 1.0", "lambda = \"high\"");
    std::fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fuselab"))
        .args(["align", "h3fusion", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("run.toml") && stderr.contains("lambda"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

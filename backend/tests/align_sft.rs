//! `fuselab align sft --config FILE` as a process, on a tiny model and the synthetic data: the
//! adapter and the metrics log; an identical second run resumes without training again; a lost
//! adapter is rebuilt from the finished checkpoint; an unknown key is refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fuselab_ml::tensors::read_safetensors;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

/// Optimiser steps of the tiny model's pretraining and of the SFT stage.
const PRETRAIN_STEPS: usize = 100;
const SFT_STEPS: usize = 48;

/// 64 synthetic helpful examples in batches of 8: 8 steps an epoch, 6 epochs, capped at 48.
fn config() -> String {
    format!(
        r#"out = "run"
device = "cpu"
seed = 3
task = "helpful"

[base]
model = "tiny"

[base.pretrain]
batch_size = 8
epochs = 1
max_steps = {PRETRAIN_STEPS}
max_len = 96
seed = 3
optim = {{ learning_rate = 3e-3, schedule = "constant" }}

[data]
synthetic = true
train_per_task = 64
test_per_task = 4

[stage]
lora = {{ rank = 8, alpha = 8, dropout = 0.0, targets = ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"] }}
train = {{ batch_size = 8, epochs = 6, max_steps = {SFT_STEPS}, max_len = 96, seed = 3, optim = {{ learning_rate = 5e-3, schedule = "constant" }} }}
"#
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-align-sft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sft(config: &Path) -> Output {
    Command::new(BIN)
        .args(["align", "sft", "--json", "--config"])
        .arg(config)
        .env("FUSELAB_DATA_DIR", config.parent().unwrap().join("data"))
        .output()
        .unwrap()
}

/// The run's summary on stdout, after checking the run succeeded.
fn summary(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", output.status);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// The `metrics.jsonl` lines of `stage`.
fn stage_lines(metrics: &str, stage: &str) -> Vec<Value> {
    metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["stage"] == stage)
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn sft_trains_an_adapter_logs_every_step_and_resumes() {
    let dir = scratch("run");
    let path = dir.join("sft.toml");
    std::fs::write(&path, config()).unwrap();
    let run = dir.join("run");
    let adapter = run.join("sft/adapter_model.safetensors");

    let first = summary(&sft(&path));
    assert_eq!(first["adapter"], adapter.display().to_string(), "{first}");
    assert_eq!(first["task"], "helpful");
    assert_eq!(first["examples"], 64);
    assert_eq!(first["synthetic"], true);
    assert!(
        first["tokens_per_second"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    for file in [
        "tokenizer.json",
        "base/checkpoint.safetensors",
        "base/state.json",
        "sft/checkpoint.safetensors",
        "sft/state.json",
        "sft/adapter_model.safetensors",
        "metrics.jsonl",
    ] {
        assert!(run.join(file).is_file(), "{file} is missing");
    }

    // PEFT's settings beside the weights, as `from_pretrained` reads them.
    let peft: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("sft/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(peft["peft_type"], "LORA");
    assert_eq!(peft["r"], 8);
    assert_eq!(peft["target_modules"].as_array().unwrap().len(), 5);

    // PEFT's layout: A [r, in] and B [out, r] for each targeted projection of both layers.
    let adapter_bytes = std::fs::read(&adapter).unwrap();
    let tensors = read_safetensors(&adapter_bytes, "adapter").unwrap();
    assert_eq!(tensors.len(), 2 * 2 * 5, "{:?}", tensors.keys());
    let mut parameters = 0;
    for (name, (shape, values)) in &tensors {
        assert!(name.starts_with("base_model.model."), "{name}");
        if name.ends_with(".lora_A.weight") {
            assert_eq!(shape[0], 8, "{name}: {shape:?}");
        } else {
            assert!(name.ends_with(".lora_B.weight"), "{name}");
            assert_eq!(shape[1], 8, "{name}: {shape:?}");
            // B starts at zero; training moved it.
            assert!(values.iter().any(|v| *v != 0.0), "{name} is still zero");
        }
        parameters += values.len();
    }
    assert_eq!(first["trainable_parameters"], parameters);

    // One metrics line per step, in order, for the pretraining and for the SFT stage.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let base = stage_lines(&metrics, "base");
    assert_eq!(base.len(), PRETRAIN_STEPS);
    let lines = stage_lines(&metrics, "sft");
    assert_eq!(lines.len(), SFT_STEPS);
    assert_eq!(metrics.lines().count(), PRETRAIN_STEPS + SFT_STEPS);
    let losses: Vec<f64> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            assert_eq!(line["step"], i + 1, "{line}");
            assert_eq!(line["total_steps"], SFT_STEPS, "{line}");
            let loss = line["loss"].as_f64().unwrap();
            assert!(loss.is_finite() && loss > 0.0, "{line}");
            loss
        })
        .collect();
    let third = SFT_STEPS / 3;
    let (early, late) = (mean(&losses[..third]), mean(&losses[SFT_STEPS - third..]));
    eprintln!("sft loss: first {third} steps {early:.4}, last {third} {late:.4}; {losses:.3?}");
    assert!(late < early, "the loss did not go down: {losses:?}");
    let state: Value =
        serde_json::from_slice(&std::fs::read(run.join("sft/state.json")).unwrap()).unwrap();
    assert_eq!(state["state"]["step"], SFT_STEPS, "{state}");

    // The same command again: every stage is finished, nothing is trained or logged again, the
    // adapter is the one already written.
    let second = summary(&sft(&path));
    assert!(second["tokens_per_second"].is_null(), "{second}");
    assert_eq!(
        second["trainable_parameters"],
        first["trainable_parameters"]
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        metrics
    );
    assert_eq!(std::fs::read(&adapter).unwrap(), adapter_bytes);

    // Killed after the last checkpoint but before the adapter was written: the finished
    // checkpoint gives the same adapter, without a step more.
    std::fs::remove_file(&adapter).unwrap();
    let third_run = summary(&sft(&path));
    assert_eq!(
        third_run["trainable_parameters"],
        first["trainable_parameters"]
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        metrics
    );
    assert_eq!(std::fs::read(&adapter).unwrap(), adapter_bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let dir = scratch("unknown");
    for (file, text, key) in [
        (
            "top.toml",
            config().replace("seed = 3\ntask", "seed = 3\nepochs = 2\ntask"),
            "epochs",
        ),
        (
            "nested.toml",
            config().replace("max_steps = 48,", "max_step = 48,"),
            "max_step",
        ),
    ] {
        let path = dir.join(file);
        assert!(text != config(), "{file}: the edit did not apply");
        std::fs::write(&path, text).unwrap();
        let output = sft(&path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(&format!("unknown field `{key}`")),
            "{file}: {stderr}"
        );
        assert!(!dir.join("run").exists(), "{file}: a run folder was made");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn values_out_of_range_are_refused_by_key_before_training() {
    let dir = scratch("range");
    for (file, text, message) in [
        (
            "batch.toml",
            config().replace(
                "train = { batch_size = 8,",
                "train = { batch_size = 1000000000000,",
            ),
            "stage.train.batch_size = 1000000000000: expected a whole number from 1 to 4096",
        ),
        (
            "nan.toml",
            config().replace("learning_rate = 5e-3", "learning_rate = nan"),
            "stage.train.optim.learning_rate = NaN: expected a number above 0 and at most 10",
        ),
        (
            "rank.toml",
            config().replace("rank = 8,", "rank = 0,"),
            "stage.lora.rank = 0: expected a whole number from 1 to 4096",
        ),
        (
            "target.toml",
            config().replace("\"q_proj\", \"v_proj\"", "\"q_proj\", \"lm_head\""),
            "stage.lora.targets = \"lm_head\": expected one or more of q_proj",
        ),
        (
            "rows.toml",
            config().replace("train_per_task = 64", "train_per_task = 10000000000000"),
            "data.train_per_task = 10000000000000: expected a whole number from 0 to 10000000",
        ),
        (
            "pretrain.toml",
            config().replace("epochs = 1\n", "epochs = 0\n"),
            "base.pretrain.epochs = 0: expected a whole number from 1 to 10000",
        ),
    ] {
        let path = dir.join(file);
        assert!(text != config(), "{file}: the edit did not apply");
        std::fs::write(&path, text).unwrap();
        let output = sft(&path);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(message),
            "{file}: {stderr}"
        );
        assert!(!dir.join("run").exists(), "{file}: a run folder was made");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

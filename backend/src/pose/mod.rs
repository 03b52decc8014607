//! `fuselab pose`: video human-pose estimation (JM-Pose, spec `pose.md`). `data synthetic`
//! writes the synthetic video benchmark with exact ground truth; `train` and `benchmark` train
//! the models of the ablation ladder on it (clips generated on demand) and write the report;
//! `predict` runs a trained model over a real clip.

pub mod config;
pub mod data;
pub mod predict;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use fuselab_ml::pose::config::PoseConfig;

pub use config::{RunConfig, Rung};
pub use report::PoseReport;

use crate::align::ConfigArgs;

/// `fuselab pose …`.
#[derive(Debug, Subcommand)]
pub enum PoseCommand {
    /// Build a dataset
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train the configuration's model (checkpoints every epoch; rerun to resume) and report
    Train(ConfigArgs),
    /// Train every rung × seed of the configuration's `[benchmark]` (the ablation) and report
    Benchmark(ConfigArgs),
    /// Keypoints for every frame of a video or a folder of frames, with a trained model
    Predict(predict::PredictArgs),
}

/// Runs a `pose` command.
///
/// # Errors
/// A bad option or configuration, an unwritable folder, or a failed run.
pub fn command(command: &PoseCommand, _data_dir: &Path) -> anyhow::Result<()> {
    let report = match command {
        PoseCommand::Data(data) => return data::command(data),
        PoseCommand::Predict(args) => return predict::predict(args),
        PoseCommand::Train(args) => (train(args)?, args.json),
        PoseCommand::Benchmark(args) => (benchmark(args)?, args.json),
    };
    if report.1 {
        println!("{}", serde_json::to_string_pretty(&report.0)?);
    } else {
        print!("{}", report::markdown(&report.0));
    }
    Ok(())
}

fn prepare(args: &ConfigArgs) -> anyhow::Result<(RunConfig, PathBuf, fuselab_ml::Device)> {
    let config: RunConfig = crate::align::read_config(&args.config)?;
    let out = crate::align::relative_to(&args.config, &config.out);
    crate::align::ensure_out(&out)?;
    let device = crate::align::run::device(config.device, args.device)?;
    Ok((config, out, device))
}

/// What a run's result depends on: a run folder is reused only with these unchanged (the
/// device is left out: a run may resume on another).
fn run_settings(config: &RunConfig, model: &PoseConfig, seed: u64) -> serde_json::Value {
    serde_json::json!({
        "data": config.data,
        "test_clips": config.test_clips,
        "model": model,
        "train": config.train,
        "seed": seed,
    })
}

/// One run in `folder`, and the report of the runs so far written into `out`.
fn run_one(
    config: &RunConfig,
    name: &str,
    model: &PoseConfig,
    seed: u64,
    folder: &Path,
    device: &fuselab_ml::Device,
) -> anyhow::Result<run::RunResult> {
    crate::align::check_settings(folder, &run_settings(config, model, seed))?;
    run::train(
        name,
        &config.data,
        config.test_clips,
        model,
        &config.train,
        seed,
        folder,
        device,
    )
    .with_context(|| format!("run {name}"))
}

/// Writes the report of `runs`, with samples from the last run's model.
fn finish(
    out: &Path,
    config: &RunConfig,
    runs: Vec<run::RunResult>,
    last_folder: &Path,
    label: &dyn Fn(&run::RunResult) -> String,
    started: Instant,
    device: &fuselab_ml::Device,
) -> anyhow::Result<PoseReport> {
    let summary = report::summarise(&runs, label);
    let report = PoseReport {
        runs,
        summary,
        seconds: started.elapsed().as_secs_f64(),
    };
    let (model, _) = run::load_model(last_folder, device)?;
    let pairs = run::predict_test(&model, &config.data, 12.min(config.data.test_clips))?;
    report::write(out, &report, &pairs)?;
    Ok(report)
}

/// `fuselab pose train`: the configuration's model and seed, in its `out` folder.
///
/// # Errors
/// A bad configuration or a failed run.
pub fn train(args: &ConfigArgs) -> anyhow::Result<PoseReport> {
    let started = Instant::now();
    let (config, out, device) = prepare(args)?;
    let name = format!("{}-seed{}", config.model.variant.name(), config.seed);
    let result = run_one(&config, &name, &config.model, config.seed, &out, &device)?;
    let label = |r: &run::RunResult| r.model.variant.name().to_owned();
    finish(&out, &config, vec![result], &out, &label, started, &device)
}

/// `fuselab pose benchmark`: every rung × seed of `[benchmark]`, each in
/// `out/runs/<rung>-seed<s>` (finished runs are read back, interrupted ones resume), then the
/// report.
///
/// # Errors
/// A bad configuration, no `[benchmark]` table, or a failed run.
pub fn benchmark(args: &ConfigArgs) -> anyhow::Result<PoseReport> {
    let started = Instant::now();
    let (config, out, device) = prepare(args)?;
    let grid = config.benchmark.clone().with_context(|| {
        format!(
            "{}: no [benchmark] table (rungs, seeds)",
            args.config.display()
        )
    })?;
    let total = grid.rungs.len() * grid.seeds.len();
    let mut runs = Vec::with_capacity(total);
    let mut labels = Vec::with_capacity(total);
    let mut last_folder = out.clone();
    for &rung in &grid.rungs {
        let model = rung.apply(&config.model);
        for &seed in &grid.seeds {
            let name = format!("{}-seed{seed}", rung.name());
            tracing::info!(run = %name, "run {} of {total}", runs.len() + 1);
            last_folder = out.join("runs").join(&name);
            runs.push(run_one(
                &config,
                &name,
                &model,
                seed,
                &last_folder,
                &device,
            )?);
            labels.push((name, rung.label()));
        }
    }
    let label = |r: &run::RunResult| {
        labels
            .iter()
            .find(|(name, _)| *name == r.name)
            .map_or_else(|| r.name.clone(), |(_, l)| (*l).to_owned())
    };
    finish(&out, &config, runs, &last_folder, &label, started, &device)
}

//! The harmful fine-tuning attack and its defences: `fuselab align booster|vaccine` (alignment
//! with a defence), `lisa|attack` (one fine-tuning attack on an aligned model) and `benchmark`
//! (a grid of defences × poison ratio p × sample count n), each measured by the harmful score HS
//! (share of answers to harmful prompts the judge flags) and the fine-tune accuracy FA.
//!
//! Every stage trains in its own folder with checkpoints, and every finished evaluation is saved,
//! so a killed run resumes where it stopped.

mod config;
mod data;
mod session;
mod summary;

pub use config::{
    AttackCell, AttackConfig, EvalConfig, FinetuneConfig, GridConfig, JudgeConfig, JudgeKind,
};
pub use data::{AttackData, AttackDataConfig};
pub use session::Session;
pub use summary::summarise;

use std::path::Path;
use std::time::Instant;

use crate::align::ConfigArgs;
use crate::align::report::{markdown, write_benchmark};
use crate::align::results::BenchmarkReport;

/// Which `fuselab align` subcommand runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Align with Booster and measure.
    Booster,
    /// Align with Vaccine and measure.
    Vaccine,
    /// One attack on the SFT-aligned model fine-tuned with Lisa.
    Lisa,
    /// One attack with `[attack]`'s defence.
    Attack,
    /// The grid.
    Benchmark,
}

/// Runs one of the commands; returns the rows it measured.
///
/// # Errors
/// A bad configuration or data, or a failed stage.
pub fn run(action: Action, args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<BenchmarkReport> {
    let started = Instant::now();
    let config: AttackConfig = crate::align::read_config(&args.config)?;
    let out = crate::align::relative_to(&args.config, &config.out);
    let seeds = if action == Action::Benchmark && !config.grid.seeds.is_empty() {
        config.grid.seeds.clone()
    } else {
        vec![config.seed]
    };
    let mut results = Vec::new();
    let mut about = None;
    for seed in seeds {
        let (replicate, dir) = if seed == config.seed {
            (config.clone(), out.clone())
        } else {
            (
                AttackConfig {
                    seed,
                    ..config.clone()
                },
                out.join(format!("seed-{seed}")),
            )
        };
        let session = Session::open(replicate, dir, args, data_dir)?;
        session.run(action, &mut results)?;
        about.get_or_insert_with(|| {
            (
                session.judge.name().to_owned(),
                session.base.description.clone(),
                session.data.synthetic,
            )
        });
    }
    let (judge, base, synthetic) = about.unwrap_or_default();
    let report = BenchmarkReport {
        summary: summarise(&results),
        results,
        task: config.data.task,
        judge,
        base,
        synthetic,
        seconds: started.elapsed().as_secs_f64(),
    };
    if action == Action::Benchmark {
        write_benchmark(&out, &report)?;
    }
    Ok(report)
}

/// `fuselab align booster|vaccine|lisa|attack|benchmark`.
///
/// # Errors
/// Those of [`run`].
pub fn command(action: Action, args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<()> {
    let report = run(action, args, data_dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", markdown(&report));
    }
    Ok(())
}

//! `fuselab ensemble sweep`: every team of a size range, scored in bounded memory into the
//! top-K, the accuracy–diversity Pareto front and per-size statistics; here in this process,
//! or with `--queue` as a job that workers split into shards.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use fuselab_shared::ensemble::{Pool, SizeRange, TeamSummary, Teams};

use super::sharded::{self, AnalysisConfig, AnalysisResult, SweepHooks};
use super::{InputArgs, ProgressBar};
use crate::jobs::{self, NewJob, Status};

/// `fuselab ensemble sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// How many teams to rank by focal diversity
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub top_k: u64,
    /// Team sizes: A..B (inclusive), A.. or A
    #[arg(long, default_value = "2..")]
    pub sizes: SizeRange,
    /// Queue the sweep as a job in the job database instead of running it here
    #[arg(long)]
    pub queue: bool,
    /// With --queue: wait for the job and print its result
    #[arg(long, requires = "queue")]
    pub wait: bool,
    /// With --queue: teams per shard; a sweep with more is split into shards for the workers
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(65_536..))]
    pub shard_teams: u64,
    /// With --queue: milliseconds between checkpoints of each shard (the most work a worker
    /// that dies loses)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub checkpoint_ms: u64,
    #[command(flatten)]
    pub database: crate::db::DatabaseArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = SweepFormat::Table)]
    pub format: SweepFormat,
    /// Write the result to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How `fuselab ensemble sweep` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepFormat {
    /// Aligned text for people.
    Table,
    /// The result as JSON (`teams`, `shards`, `summary`).
    Json,
}

/// A progress bar as a sweep's hooks: never stops, keeps no checkpoints.
impl SweepHooks for ProgressBar {
    fn should_stop(&self) -> bool {
        false
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.update(done, total);
    }

    fn checkpoint(&mut self, _next: u64, _summary: &TeamSummary) {}
}

/// Runs `fuselab ensemble sweep`.
///
/// # Errors
/// Bad input, an unusable job database, a failed job.
pub fn sweep_command(args: &SweepArgs, data_dir: &Path) -> anyhow::Result<()> {
    let (input, pool) = args.input.pool_input()?;
    let (min_size, max_size) = (args.sizes.min, args.sizes.max);
    let top_k = usize::try_from(args.top_k).unwrap_or(usize::MAX);
    let teams = Teams::total(pool.models(), min_size, max_size);
    let result = if args.queue {
        let config = AnalysisConfig {
            pool: input,
            min_size,
            max_size,
            top_k,
            shard_teams: args.shard_teams,
            checkpoint_ms: args.checkpoint_ms,
        };
        let Some(result) = queue(args, data_dir, &config)? else {
            return Ok(());
        };
        result
    } else {
        let mut bar = ProgressBar::new();
        let summary = sharded::sweep(
            &pool,
            (min_size, max_size),
            0..teams,
            top_k,
            None,
            Duration::MAX,
            &mut bar,
        )
        .map_err(|_| anyhow::anyhow!("the sweep stopped"))?;
        bar.finish();
        AnalysisResult {
            teams,
            shards: 0,
            summary,
        }
    };
    let text = match args.format {
        SweepFormat::Json => {
            let mut json = serde_json::to_string_pretty(&result).context("encoding the result")?;
            json.push('\n');
            json
        }
        SweepFormat::Table => table(&pool, &result),
    };
    if let Some(path) = &args.out {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    } else {
        print!("{text}");
        Ok(())
    }
}

/// Queues the sweep; with `--wait`, waits for it and returns its result.
fn queue(
    args: &SweepArgs,
    data_dir: &Path,
    config: &AnalysisConfig,
) -> anyhow::Result<Option<AnalysisResult>> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = jobs::open_store(&args.database, data_dir).await?;
        let job = NewJob::new(sharded::ANALYSIS, serde_json::to_value(config)?);
        let id = store.enqueue(&job).await?;
        if !args.wait {
            println!("{id}");
            return Ok(None);
        }
        eprintln!("queued job {id}; waiting for a worker (`fuselab worker`)");
        loop {
            let job = store.get(&id, None).await?;
            match job.status {
                Status::Done => {
                    let result = job.result.context("the job is done but has no result")?;
                    return Ok(Some(
                        serde_json::from_value(result).context("reading the job's result")?,
                    ));
                }
                Status::Queued | Status::Running => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                status => anyhow::bail!(
                    "job {id} ended {status}{}",
                    job.error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            }
        }
    })
}

fn table(pool: &Pool, result: &AnalysisResult) -> String {
    let names = pool.names();
    let team = |members: &[usize]| {
        members
            .iter()
            .map(|&m| names.get(m).map_or("?", String::as_str))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let summary = &result.summary;
    let mut out = format!(
        "{} teams ({} without a defined focal diversity){}\n\ntop {} by focal diversity:\n",
        result.teams,
        summary.unscored,
        if result.shards > 0 {
            format!(", swept in {} shards", result.shards)
        } else {
            String::new()
        },
        summary.top.len()
    );
    for ranked in &summary.top {
        let _ = writeln!(
            out,
            "  {:.4}  {}",
            ranked.focal_diversity,
            team(&ranked.members)
        );
    }
    let _ = writeln!(out, "\nPareto front (plurality accuracy, focal diversity):");
    for point in &summary.pareto {
        let _ = writeln!(
            out,
            "  {:.4}  {:.4}  {}",
            point.accuracy,
            point.focal,
            team(&point.members)
        );
    }
    let _ = writeln!(
        out,
        "\nsize  teams        mean focal  max focal  mean acc  max acc"
    );
    for size in summary.size_summaries() {
        let _ = writeln!(
            out,
            "{:>4}  {:>11}  {:>10.4}  {:>9.4}  {:>8.4}  {:>7.4}",
            size.size,
            size.teams,
            size.mean_focal,
            size.max_focal,
            size.mean_accuracy,
            size.max_accuracy
        );
    }
    out
}

//! The exhaustive team analysis as jobs, for pools whose teams are too many for one request:
//! an `ensemble.analysis` job either sweeps its teams itself or splits them into
//! `ensemble.shard` jobs over rank ranges (any worker runs them), then merges their summaries.
//! Each sweep checkpoints its partial summary, so a shard whose worker dies resumes where it
//! was; memory is bounded whatever the number of teams (`fuselab_shared::ensemble::shard`).

use core::ops::{ControlFlow, Range};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuselab_shared::ensemble::{
    Cancelled, Pool, PoolInput, TeamSummary, Teams, shard_ranges, summarise_range,
};
use serde::{Deserialize, Serialize};

use crate::jobs::{Handler, Handlers, Job, JobContext, NewJob, Outcome, StoreError};

/// The job kind of a whole analysis.
pub const ANALYSIS: &str = "ensemble.analysis";
/// The job kind of one shard of it.
pub const SHARD: &str = "ensemble.shard";

/// Teams swept between two looks at the stop flag and the clock (tens of milliseconds).
pub const CHUNK: u64 = 1 << 13;
/// More shards than this would be more rows than work: raise `shard_teams`.
const MAX_SHARDS: u64 = 100_000;

/// An `ensemble.analysis` job's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// The pool (validated again by the worker, with the default limits on its size).
    pub pool: PoolInput,
    /// Smallest team size.
    pub min_size: usize,
    /// Largest team size.
    pub max_size: usize,
    /// Teams ranked by focal diversity.
    pub top_k: usize,
    /// Teams per shard: an analysis with more teams than this is split.
    pub shard_teams: u64,
    /// Milliseconds between checkpoints of a sweep (the most work a dead worker loses).
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_ms: u64,
}

fn default_checkpoint_ms() -> u64 {
    1000
}

/// An `ensemble.shard` job's configuration: its ranks; the rest is its parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardConfig {
    /// First rank and one past the last.
    ranks: [u64; 2],
}

/// Where a sweep resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum Checkpoint {
    /// The teams before `next` are in `summary`.
    Sweep {
        /// The next rank to score.
        next: u64,
        /// The teams so far.
        summary: TeamSummary,
    },
    /// The analysis was split into this many shards.
    Split {
        /// How many.
        shards: u64,
    },
}

/// An `ensemble.analysis` job's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResult {
    /// Teams in the size range.
    pub teams: u64,
    /// Shards it was split into (0: swept in one job).
    pub shards: u64,
    /// Top-K, Pareto front and per-size statistics of every team.
    pub summary: TeamSummary,
}

/// What a sweep's caller offers: a stop flag, progress, and checkpoints.
pub trait SweepHooks {
    /// Whether to stop now.
    fn should_stop(&self) -> bool;
    /// `done` of `total` teams.
    fn progress(&mut self, done: u64, total: u64);
    /// Saves a partial summary ending before rank `next`.
    fn checkpoint(&mut self, next: u64, summary: &TeamSummary);
}

/// Why a sweep stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepStop {
    /// [`SweepHooks::should_stop`] said so.
    Stopped,
}

/// Sweeps the teams of `ranks` from `resume` (the rank to start at and the summary so far),
/// in chunks, into one summary, offering a checkpoint every `checkpoint_every`.
///
/// # Errors
/// [`SweepStop`] when the hooks ask to stop.
pub fn sweep(
    pool: &Pool,
    sizes: (usize, usize),
    ranks: Range<u64>,
    top_k: usize,
    resume: Option<(u64, TeamSummary)>,
    checkpoint_every: Duration,
    hooks: &mut dyn SweepHooks,
) -> Result<TeamSummary, SweepStop> {
    let (mut next, mut summary) = resume.unwrap_or((ranks.start, TeamSummary::new(top_k)));
    let total = ranks.end - ranks.start;
    let mut saved = Instant::now();
    while next < ranks.end {
        let end = ranks.end.min(next.saturating_add(CHUNK));
        let part = summarise_range(pool, sizes, next..end, top_k, &mut |_, _| {
            if hooks.should_stop() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(|Cancelled { .. }| SweepStop::Stopped)?;
        summary.merge(&part);
        next = end;
        hooks.progress(next - ranks.start, total);
        if next < ranks.end && saved.elapsed() >= checkpoint_every {
            hooks.checkpoint(next, &summary);
            saved = Instant::now();
        }
    }
    Ok(summary)
}

/// A handler's failure that another attempt cannot fix.
fn fail(error: impl std::fmt::Display) -> Outcome {
    Outcome::Failed {
        error: error.to_string(),
        retry: false,
    }
}

/// A store error inside a handler: a lost lease stops it (its outcome is dropped anyway);
/// anything else is worth another attempt.
fn store_failed(error: &StoreError) -> Outcome {
    match error {
        StoreError::LeaseLost { .. } => Outcome::Cancelled,
        other => Outcome::Failed {
            error: other.to_string(),
            retry: true,
        },
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    job: &Job,
    what: &str,
    value: &serde_json::Value,
) -> Result<T, Outcome> {
    serde_json::from_value(value.clone())
        .map_err(|e| fail(format!("job {}: its {what} is not valid: {e}", job.id)))
}

/// The configuration and the validated pool of an analysis job.
fn analysis_of(job: &Job) -> Result<(AnalysisConfig, Pool), Outcome> {
    let config: AnalysisConfig = parse(job, "configuration", &job.config)?;
    let pool =
        Pool::new(config.pool.clone()).map_err(|e| fail(format!("not a valid model pool: {e}")))?;
    Ok((config, pool))
}

/// The hooks of a sweep inside a job: the context's stop flag, progress and checkpoints. A
/// failed progress or checkpoint write is kept and ends the sweep.
struct JobHooks<'a> {
    context: &'a mut JobContext,
    error: Option<StoreError>,
}

impl SweepHooks for JobHooks<'_> {
    fn should_stop(&self) -> bool {
        self.error.is_some() || self.context.should_stop()
    }

    fn progress(&mut self, done: u64, total: u64) {
        if let Err(e) = self
            .context
            .progress(&serde_json::json!({ "done": done, "total": total }))
        {
            self.error.get_or_insert(e);
        }
    }

    fn checkpoint(&mut self, next: u64, summary: &TeamSummary) {
        let checkpoint = Checkpoint::Sweep {
            next,
            summary: summary.clone(),
        };
        let value = serde_json::to_value(&checkpoint).unwrap_or_default();
        if let Err(e) = self.context.checkpoint(&value) {
            self.error.get_or_insert(e);
        }
    }
}

/// Sweeps `ranks` of an analysis inside a job, resuming from the job's checkpoint.
fn sweep_job(
    job: &Job,
    context: &mut JobContext,
    config: &AnalysisConfig,
    pool: &Pool,
    ranks: Range<u64>,
) -> Result<TeamSummary, Outcome> {
    let resume = match job
        .checkpoint
        .as_ref()
        .map(|c| parse(job, "checkpoint", c))
        .transpose()?
    {
        Some(Checkpoint::Sweep { next, summary })
            if ranks.contains(&next) && summary.top_k == config.top_k =>
        {
            Some((next, summary))
        }
        Some(other) => {
            return Err(fail(format!(
                "job {}: checkpoint {other:?} does not fit ranks {ranks:?}",
                job.id
            )));
        }
        None => None,
    };
    let mut hooks = JobHooks {
        context,
        error: None,
    };
    let result = sweep(
        pool,
        (config.min_size, config.max_size),
        ranks,
        config.top_k,
        resume,
        Duration::from_millis(config.checkpoint_ms),
        &mut hooks,
    );
    match (result, hooks.error) {
        (_, Some(error)) => Err(store_failed(&error)),
        (Ok(summary), None) => Ok(summary),
        (Err(SweepStop::Stopped), None) => Err(Outcome::Cancelled),
    }
}

fn done<T: Serialize>(value: &T) -> Outcome {
    match serde_json::to_value(value) {
        Ok(value) => Outcome::Done(value),
        Err(e) => fail(format!("encoding the result: {e}")),
    }
}

/// `ensemble.analysis`.
#[derive(Debug)]
struct AnalysisHandler;

impl Handler for AnalysisHandler {
    fn run(&self, job: &Job, context: &mut JobContext) -> Outcome {
        match analyse(job, context) {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }
}

fn analyse(job: &Job, context: &mut JobContext) -> Result<Outcome, Outcome> {
    let (config, pool) = analysis_of(job)?;
    let total = Teams::total(pool.models(), config.min_size, config.max_size);
    if let Some(Checkpoint::Split { shards }) = job
        .checkpoint
        .as_ref()
        .map(|c| parse(job, "checkpoint", c))
        .transpose()?
    {
        let results = context.shard_results().map_err(|e| store_failed(&e))?;
        if results.len() as u64 != shards {
            return Err(fail(format!(
                "{} of its {shards} shards are left to merge",
                results.len()
            )));
        }
        let mut summary = TeamSummary::new(config.top_k);
        for result in &results {
            let part: TeamSummary = parse(job, "shard result", result)?;
            summary.merge(&part);
        }
        return Ok(done(&AnalysisResult {
            teams: total,
            shards,
            summary,
        }));
    }
    let per_shard = config.shard_teams.max(CHUNK);
    if total <= per_shard {
        let summary = sweep_job(job, context, &config, &pool, 0..total)?;
        return Ok(done(&AnalysisResult {
            teams: total,
            shards: 0,
            summary,
        }));
    }
    let count = total.div_ceil(per_shard);
    if count > MAX_SHARDS {
        return Err(fail(format!(
            "{total} teams in shards of {per_shard} would be {count} shards (at most {MAX_SHARDS}): raise shard_teams"
        )));
    }
    let shards: Vec<(NewJob, i64, i64)> = shard_ranges(total, per_shard)
        .map(|ranks| {
            let config = ShardConfig {
                ranks: [ranks.start, ranks.end],
            };
            let shard = NewJob {
                owner: job.owner,
                kind: SHARD.to_owned(),
                config: serde_json::to_value(config).unwrap_or_default(),
                capability: job.capability,
                priority: job.priority,
                max_attempts: job.max_attempts,
            };
            let rank = |r: u64| i64::try_from(r).unwrap_or(i64::MAX);
            (shard, rank(ranks.start), rank(ranks.end))
        })
        .collect();
    let checkpoint = serde_json::to_value(Checkpoint::Split { shards: count }).unwrap_or_default();
    context
        .split(&shards, &checkpoint)
        .map_err(|e| store_failed(&e))?;
    Ok(Outcome::Waiting)
}

/// `ensemble.shard`.
#[derive(Debug)]
struct ShardHandler;

impl Handler for ShardHandler {
    fn run(&self, job: &Job, context: &mut JobContext) -> Outcome {
        match shard(job, context) {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }
}

fn shard(job: &Job, context: &mut JobContext) -> Result<Outcome, Outcome> {
    let shard: ShardConfig = parse(job, "configuration", &job.config)?;
    let parent_id = job
        .parent
        .as_deref()
        .ok_or_else(|| fail(format!("shard {} has no parent analysis", job.id)))?;
    let parent = context.job(parent_id).map_err(|e| store_failed(&e))?;
    let (config, pool) = analysis_of(&parent)?;
    let [start, end] = shard.ranks;
    let total = Teams::total(pool.models(), config.min_size, config.max_size);
    if start > end || end > total {
        return Err(fail(format!(
            "shard ranks {start}..{end} are outside the analysis's {total} teams"
        )));
    }
    let summary = sweep_job(job, context, &config, &pool, start..end)?;
    Ok(done(&summary))
}

/// The handlers of this module's job kinds.
pub fn handlers() -> Handlers {
    let mut handlers = Handlers::new();
    handlers.insert(ANALYSIS, Arc::new(AnalysisHandler) as Arc<dyn Handler>);
    handlers.insert(SHARD, Arc::new(ShardHandler) as Arc<dyn Handler>);
    handlers
}

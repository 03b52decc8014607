//! `fuselab jobs …` (the administrator's view of the queue) and `fuselab worker` (a machine
//! that runs jobs). Arguments stop here: the rest of the program gets a [`JobStore`] and
//! [`WorkerOptions`].

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tokio::sync::watch;

use super::model::{Capability, Filter, Job, Status};
use super::store::JobStore;
use super::worker::{self, Handlers, WorkerOptions};
use crate::artifacts::ArtifactStore;
use crate::db::{DatabaseArgs, redact};

/// Opens the database of `args` and brings its job tables up to date.
///
/// # Errors
/// An unusable URL or database, with the URL (password hidden) in the message.
pub async fn open_store(args: &DatabaseArgs, data_dir: &Path) -> anyhow::Result<JobStore> {
    let db = crate::db::open(args, data_dir).await?;
    let url = redact(db.url());
    JobStore::on(db)
        .await
        .with_context(|| format!("cannot open the job tables of {url}"))
}

/// `fuselab jobs`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Only jobs in this status (queued, running, done, failed, cancelled, interrupted)
        #[arg(long)]
        status: Option<Status>,
        /// The shards of this job instead of the top-level jobs
        #[arg(long, value_name = "ID")]
        shards_of: Option<String>,
        /// Only jobs of this kind (e.g. mask.train, ensemble.analysis)
        #[arg(long)]
        kind: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
    /// A job in full: configuration, attempts, progress, result and its latest events
    Show {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The job's id
        id: String,
    },
    /// Stop a job (and its shards): a queued one at once, a running one at its next lease
    /// renewal
    Cancel {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The job's id
        id: String,
    },
    /// Delete a job with its shards, attempts and events (a running one once it stops)
    Delete {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The job's id
        id: String,
    },
    /// Queue a failed, cancelled or interrupted job again; it resumes from its checkpoint
    Retry {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The job's id
        id: String,
    },
}

/// `fuselab worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// What this machine offers, comma-separated: cpu, gpu
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    pub capabilities: Vec<Capability>,
    /// Seconds a claimed job stays this worker's without a renewal (renewed every third)
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_seconds: u64,
    /// Milliseconds between looks for new jobs while idle
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_ms: u64,
    #[command(flatten)]
    pub artifacts: ArtifactsArgs,
    /// Where burn trains this worker's jobs: cpu, or wgpu (a GPU through Vulkan, Metal or DX12)
    #[arg(long, value_name = "cpu|wgpu", default_value_t = fuselab_ml::Compute::Cpu)]
    pub device: fuselab_ml::Compute,
}

/// `--artifacts`: where jobs keep what they pass on (photos and keys in transit, checkpoints).
#[derive(Debug, Clone, Args)]
pub struct ArtifactsArgs {
    /// Where the jobs' artifacts are: a folder every worker sees (`/srv/fuselab/artifacts`,
    /// `file:///…`) or `s3://bucket/prefix` (builds with the `s3` feature); default: the data
    /// directory's artifacts/
    #[arg(long, value_name = "URL", env = "FUSELAB_ARTIFACTS")]
    pub artifacts: Option<String>,
}

impl ArtifactsArgs {
    /// Opens the artifact store.
    ///
    /// # Errors
    /// An unusable location.
    pub fn open(&self, data_dir: &Path) -> anyhow::Result<ArtifactStore> {
        Ok(match &self.artifacts {
            Some(url) => ArtifactStore::open(url)?,
            None => ArtifactStore::local(&data_dir.join("artifacts"))?,
        })
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

/// Runs `fuselab jobs …`.
///
/// # Errors
/// An unusable database, an unknown job, an action its status does not allow.
pub fn run_jobs(command: &JobsCommand, data_dir: &Path) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        match command {
            JobsCommand::List {
                database,
                status,
                shards_of,
                kind,
                limit,
                json,
            } => {
                let store = open_store(database, data_dir).await?;
                let jobs = store
                    .list(&Filter {
                        owner: None,
                        status: *status,
                        parent: shards_of.clone(),
                        kind: kind.clone(),
                        limit: *limit,
                    })
                    .await?;
                let mut out = String::new();
                if *json {
                    for job in &jobs {
                        let _ = writeln!(out, "{}", serde_json::to_string(&job.clone().shown())?);
                    }
                } else {
                    let _ = writeln!(
                        out,
                        "{:<32}  {:<18}  {:<11}  {:>8}  {:<24}",
                        "id", "kind", "status", "attempts", "progress"
                    );
                    for job in &jobs {
                        let _ = writeln!(
                            out,
                            "{:<32}  {:<18}  {:<11}  {:>8}  {:<24}",
                            job.id,
                            job.kind,
                            job.status,
                            format!("{}/{}", job.attempts, job.max_attempts),
                            progress_text(job),
                        );
                    }
                }
                print!("{out}");
            }
            JobsCommand::Show { database, id } => {
                let store = open_store(database, data_dir).await?;
                let job = store.get(id, None).await?.shown();
                let attempts = store.attempts(id).await?;
                let events = store.events(id, 0, 10_000).await?;
                let shown = serde_json::json!({
                    "job": job,
                    "attempts": attempts,
                    "events": events.iter().rev().take(20).rev().collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
            JobsCommand::Cancel { database, id } => {
                let status = open_store(database, data_dir)
                    .await?
                    .cancel(id, None)
                    .await?;
                println!(
                    "{id}: {}",
                    if status == Status::Cancelled {
                        "cancelled"
                    } else {
                        "cancel requested; it stops at its next lease renewal"
                    }
                );
            }
            JobsCommand::Delete { database, id } => {
                let gone = open_store(database, data_dir)
                    .await?
                    .delete(id, None)
                    .await?;
                println!(
                    "{id}: {}",
                    if gone {
                        "deleted"
                    } else {
                        "cancel requested; deleted once it stops"
                    }
                );
            }
            JobsCommand::Retry { database, id } => {
                open_store(database, data_dir)
                    .await?
                    .retry(id, None)
                    .await?;
                println!("{id}: queued again");
            }
        }
        Ok(())
    })
}

fn progress_text(job: &Job) -> String {
    match &job.progress {
        Some(p) => match (
            p.get("done").and_then(serde_json::Value::as_u64),
            p.get("total").and_then(serde_json::Value::as_u64),
        ) {
            (Some(done), Some(total)) if total > 0 => format!("{done}/{total}"),
            _ => p.to_string().chars().take(24).collect(),
        },
        None if job.pending_children > 0 => format!("{} shards left", job.pending_children),
        None => String::new(),
    }
}

/// Runs `fuselab worker` until SIGINT or SIGTERM; a job running then goes back to the queue.
///
/// # Errors
/// An unusable database.
pub fn run_worker(args: &WorkerArgs, data_dir: &Path, handlers: Handlers) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = open_store(&args.database, data_dir).await?;
        let mut options = WorkerOptions::new(args.capabilities.clone())?;
        options.lease = Duration::from_secs(args.lease_seconds);
        options.poll = Duration::from_millis(args.poll_ms);
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        // Scripts and tests read the worker's name from stdout.
        println!("worker {}", options.name);
        worker::run(store, options, handlers, stopped)
            .await
            .context("the worker stopped")
    })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

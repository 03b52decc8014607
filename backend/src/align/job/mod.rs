//! The `align.run` job: `fuselab align benchmark|attack|booster|vaccine|lisa` on any worker.
//!
//! The server checks the configuration and queues it ([`AlignJobConfig`]). A worker trains in a
//! local folder (`<data-dir>/align-work/<job>/`), reads data files and models from its own
//! `<data-dir>/align-data/`, writes every metrics line into the job's events as it is logged,
//! and after every stage checkpoint saves the run folder to the artifact store, so a new
//! attempt (after a worker died, or a retry) restores it and resumes there. When the run ends
//! the whole folder, with its results table, charts and report, is in the store:
//!
//! ```text
//! align/<job>/out/…   the run folder of `fuselab align` (stages, checkpoints, results, report)
//! ```

mod config;
mod folder;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use fuselab_shared::api::{AlignAction, AlignResultRow};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

pub use config::{MAX_CONFIG_BYTES, Rejected, check_config, resolve_config};
pub use folder::RunFolder;

use super::{
    ConfigArgs,
    attack::{self, Action},
    observe::{self, Observer},
    report::write_benchmark,
};
use crate::artifacts::ArtifactStore;
use crate::jobs::{Handler, Handlers, Job, JobContext, Outcome, StoreError};

/// The job kind.
pub const KIND: &str = "align.run";
/// The folder runs read data files and models from, under a worker's data directory.
pub const DATA_DIR: &str = "align-data";
/// The folder runs train in, under a worker's data directory.
const WORK_DIR: &str = "align-work";

/// An alignment run as queued: JSON in its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignJobConfig {
    /// What it runs.
    pub action: AlignAction,
    /// The configuration from [`check_config`]: no `out`, data paths relative to `align-data`.
    pub config: String,
    /// The name of the user who started it, for the run list (`None` without accounts).
    pub owner: Option<String>,
}

/// A finished run's result: JSON in its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignJobResult {
    /// Every row it measured.
    pub results: Vec<AlignResultRow>,
    /// Seconds the last attempt took.
    pub seconds: f64,
}

/// Where run `job`'s folder is kept in the artifact store.
pub fn out_prefix(job: &str) -> String {
    format!("align/{job}/out")
}

/// Where everything of run `job` is kept in the artifact store.
pub fn folder(job: &str) -> String {
    format!("align/{job}")
}

/// Runs `align.run` jobs.
#[derive(Debug)]
pub struct AlignHandler {
    /// The worker's data directory: models, `align-data`, `align-work`.
    pub data_dir: PathBuf,
    /// Where run folders are kept.
    pub artifacts: ArtifactStore,
    /// A permit held while training, shared with the server's other training; `None` on
    /// worker machines.
    pub training: Option<Arc<Semaphore>>,
}

/// The handler of alignment runs, for a worker.
pub fn handlers(
    data_dir: &Path,
    artifacts: &ArtifactStore,
    training: Option<Arc<Semaphore>>,
) -> Handlers {
    let mut handlers = Handlers::new();
    handlers.insert(
        KIND,
        Arc::new(AlignHandler {
            data_dir: data_dir.to_path_buf(),
            artifacts: artifacts.clone(),
            training,
        }) as Arc<dyn Handler>,
    );
    handlers
}

impl Handler for AlignHandler {
    fn run(&self, job: &Job, context: &mut JobContext) -> Outcome {
        let work = self.data_dir.join(WORK_DIR).join(&job.id);
        let outcome = self.attempt(job, context, &work);
        // The store holds what a new attempt needs; the local copy goes however this one ended.
        if let Err(error) = std::fs::remove_dir_all(&work)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(job = %job.id, %error, "alignment job: cannot delete its work folder");
        }
        outcome
    }
}

impl AlignHandler {
    fn attempt(&self, job: &Job, context: &mut JobContext, work: &Path) -> Outcome {
        let config: AlignJobConfig = match serde_json::from_value(job.config.clone()) {
            Ok(config) => config,
            Err(error) => {
                return failed(&job.id, "reading the job's configuration", &error, false);
            }
        };
        if context.should_stop() {
            return Outcome::Cancelled;
        }
        let runtime = Handle::current();
        let _permit = match &self.training {
            Some(training) => match runtime.block_on(Arc::clone(training).acquire_owned()) {
                Ok(permit) => Some(permit),
                Err(error) => {
                    return failed(&job.id, "waiting for the training slot", &error, true);
                }
            },
            None => None,
        };
        let out = work.join("out");
        let (path, run_folder) = match self.prepare(job, &config, &runtime, work, &out) {
            Ok(prepared) => prepared,
            Err(outcome) => return outcome,
        };
        let observer = Rc::new(JobObserver {
            context: RefCell::new(context.clone()),
            folder: RefCell::new(run_folder),
            runtime: runtime.clone(),
            lost: Cell::new(false),
        });
        let args = ConfigArgs {
            config: path,
            device: None,
            json: false,
        };
        let started = std::time::Instant::now();
        let ran = observe::scoped(observer.clone(), || {
            run_action(config.action, &args, &self.data_dir, &out)
        });
        let results = match ran {
            Ok(results) => results,
            Err(_) if observer.stop() => return Outcome::Cancelled,
            Err(error) => {
                tracing::error!(job = %job.id, error = %format!("{error:#}"), "alignment run failed");
                let message = format!("{error:#}")
                    .replace(&format!("{}/", work.display()), "")
                    .replace(&self.data_dir.display().to_string(), "<data-dir>");
                return Outcome::Failed {
                    error: message,
                    retry: false,
                };
            }
        };
        if let Err(error) = runtime.block_on(observer.folder.borrow_mut().save()) {
            return failed(
                &job.id,
                "saving the run folder",
                &format!("{error:#}"),
                true,
            );
        }
        Outcome::Done(
            serde_json::to_value(AlignJobResult {
                results,
                seconds: started.elapsed().as_secs_f64(),
            })
            .unwrap_or_default(),
        )
    }
    /// A fresh work folder with the run folder restored (from an attempt's checkpoint) and the
    /// configuration resolved for this worker; returns the configuration's path.
    fn prepare(
        &self,
        job: &Job,
        config: &AlignJobConfig,
        runtime: &Handle,
        work: &Path,
        out: &Path,
    ) -> Result<(PathBuf, RunFolder), Outcome> {
        let mut run_folder = RunFolder::new(
            self.artifacts.clone(),
            out_prefix(&job.id),
            out.to_path_buf(),
        );
        let fresh = match std::fs::remove_dir_all(work) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::create_dir_all(out),
        };
        if let Err(error) = fresh {
            return Err(failed(&job.id, "preparing the run folder", &error, true));
        }
        if job.checkpoint.is_some()
            && let Err(error) = runtime.block_on(run_folder.restore())
        {
            return Err(failed(
                &job.id,
                "restoring the run folder",
                &format!("{error:#}"),
                true,
            ));
        }
        let toml = resolve_config(&config.config, out, &self.data_dir.join(DATA_DIR))
            .map_err(|error| failed(&job.id, "reading the job's configuration", &error, false))?;
        let path = work.join("config.toml");
        std::fs::write(&path, toml)
            .map_err(|error| failed(&job.id, "writing the configuration", &error, true))?;
        Ok((path, run_folder))
    }
}

/// Runs `action`'s command on the resolved configuration; the rows of an attack's results
/// (none for LLM-TOPLA-Summary or H3Fusion, whose report is their folder's `report.json`, nor
/// for a CTR or pose benchmark, whose report is `results.json`).
fn run_action(
    action: AlignAction,
    args: &ConfigArgs,
    data_dir: &Path,
    out: &Path,
) -> anyhow::Result<Vec<AlignResultRow>> {
    let action = match action {
        AlignAction::ToplaSummary => {
            crate::llm::summary::run(args, None, data_dir)?;
            return Ok(Vec::new());
        }
        AlignAction::CtrBenchmark => {
            crate::ctr::benchmark(args, data_dir)?;
            return Ok(Vec::new());
        }
        AlignAction::PoseBenchmark => {
            crate::pose::benchmark(args)?;
            return Ok(Vec::new());
        }
        AlignAction::H3Fusion => {
            crate::align::h3fusion::run_config(args, data_dir)?;
            return Ok(Vec::new());
        }
        AlignAction::Benchmark => Action::Benchmark,
        AlignAction::Attack => Action::Attack,
        AlignAction::Booster => Action::Booster,
        AlignAction::Vaccine => Action::Vaccine,
        AlignAction::Lisa => Action::Lisa,
    };
    let report = attack::run(action, args, data_dir)?;
    if action != Action::Benchmark {
        // The same files as the benchmark's, for the rows this action measured.
        write_benchmark(out, &report)?;
    }
    Ok(serde_json::from_value(serde_json::to_value(
        &report.results,
    )?)?)
}

/// A failure the user sees as "`what` failed" while the log gets the details.
fn failed(job: &str, what: &str, error: &dyn std::fmt::Display, retry: bool) -> Outcome {
    tracing::error!(%job, %error, "alignment job: {what}");
    Outcome::Failed {
        error: format!("{what} failed; the details are in the worker's log"),
        retry,
    }
}

/// The job's side of a run: metrics lines into its events, the folder saved at checkpoints,
/// and the cancel flag.
struct JobObserver {
    context: RefCell<JobContext>,
    folder: RefCell<RunFolder>,
    runtime: Handle,
    /// The lease was lost: another worker has the job now.
    lost: Cell<bool>,
}

impl JobObserver {
    fn recorded(&self, result: Result<(), StoreError>) {
        match result {
            Ok(()) => {}
            Err(StoreError::LeaseLost { .. }) => self.lost.set(true),
            Err(error) => tracing::warn!(%error, "alignment job: recording its progress"),
        }
    }
}

impl Observer for JobObserver {
    fn stop(&self) -> bool {
        self.lost.get() || self.context.borrow().should_stop()
    }

    fn metrics(&self, line: &str) {
        let Ok(metrics) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let written = self
            .context
            .borrow_mut()
            .progress_now(&serde_json::json!({ "metrics": metrics }));
        self.recorded(written);
    }

    fn checkpoint(&self) {
        let saved = self.runtime.block_on(self.folder.borrow_mut().save());
        match saved {
            // Recorded only once the folder is in the store: a checkpoint names what a new
            // attempt can restore.
            Ok(files) => {
                let recorded = self
                    .context
                    .borrow()
                    .checkpoint(&serde_json::json!({ "saved_files": files }));
                self.recorded(recorded);
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "alignment job: saving the run folder; the next checkpoint tries again");
            }
        }
    }
}

//! A worker: claims the jobs it has handlers for, holds each one's lease from a task of its
//! own (so a long training step never lets it lapse), runs the handler on a blocking thread,
//! and records how the attempt ended. `fuselab serve` runs one in-process; `fuselab worker`
//! runs one per machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::watch;

use super::error::StoreError;
use super::model::{Capability, Job, Lease, NewJob, Outcome};
use super::store::JobStore;

/// What runs one kind of job.
pub trait Handler: Send + Sync {
    /// Runs one attempt of `job` on a blocking thread; resumes from `job.checkpoint` when
    /// there is one. Long work checks [`JobContext::should_stop`] between steps.
    fn run(&self, job: &Job, context: &mut JobContext) -> Outcome;
}

/// The handlers a worker offers, by job kind.
pub type Handlers = BTreeMap<&'static str, Arc<dyn Handler>>;

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Unique per process: `host:pid:random`.
    pub name: String,
    /// What this machine offers.
    pub capabilities: Vec<Capability>,
    /// How long a claim lasts without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work (and reaps expired leases).
    pub poll: Duration,
}

impl WorkerOptions {
    /// A CPU worker named after this host and process, with a 30 s lease and a 1 s poll.
    ///
    /// # Errors
    /// No randomness for the name.
    pub fn new(capabilities: Vec<Capability>) -> Result<Self, StoreError> {
        let mut bytes = [0_u8; 4];
        getrandom::fill(&mut bytes)?;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Ok(Self {
            name: format!(
                "{host}:{}:{}",
                std::process::id(),
                super::store::hex(&bytes)
            ),
            capabilities,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        })
    }
}

/// What a handler can do while it runs: report progress, save checkpoints, split into shards,
/// and learn that it should stop. Its methods block (the handler runs on a blocking thread).
#[derive(Debug, Clone)]
pub struct JobContext {
    store: JobStore,
    lease: Lease,
    runtime: Handle,
    stop: Arc<AtomicBool>,
    last_progress: Option<Instant>,
}

/// Progress is written at most this often (the last one of a job always is, by `finish`).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

impl JobContext {
    /// Whether the job was cancelled, its lease lost, or the worker is stopping.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records progress (JSON), at most twice a second; returns whether it was written.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub fn progress(&mut self, progress: &serde_json::Value) -> Result<bool, StoreError> {
        if self
            .last_progress
            .is_some_and(|at| at.elapsed() < PROGRESS_EVERY)
        {
            return Ok(false);
        }
        self.last_progress = Some(Instant::now());
        self.report(progress)?;
        Ok(true)
    }

    /// Records progress now, whatever the throttle: a milestone (an epoch's end) that a
    /// follower must see.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub fn progress_now(&mut self, progress: &serde_json::Value) -> Result<(), StoreError> {
        self.last_progress = Some(Instant::now());
        self.report(progress)
    }

    /// Writes progress; a cancel asked for meanwhile raises the stop flag at once (rather than
    /// at the lease's next renewal).
    fn report(&self, progress: &serde_json::Value) -> Result<(), StoreError> {
        if self
            .runtime
            .block_on(self.store.progress(&self.lease, progress))?
        {
            self.stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Saves where a later attempt resumes.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub fn checkpoint(&self, checkpoint: &serde_json::Value) -> Result<(), StoreError> {
        self.runtime
            .block_on(self.store.checkpoint(&self.lease, checkpoint))
    }

    /// Queues shards of this job (each with its rank range) with the checkpoint that records
    /// the split; return [`Outcome::Waiting`] after.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub fn split(
        &self,
        shards: &[(NewJob, i64, i64)],
        checkpoint: &serde_json::Value,
    ) -> Result<Vec<String>, StoreError> {
        self.runtime
            .block_on(self.store.split(&self.lease, shards, checkpoint))
    }

    /// The results of this job's shards, in rank order.
    ///
    /// # Errors
    /// A shard that is not done; database errors.
    pub fn shard_results(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        self.runtime
            .block_on(self.store.shard_results(&self.lease.job.id))
    }

    /// Another job, e.g. a shard's parent (whose configuration holds the shared input).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; database errors.
    pub fn job(&self, id: &str) -> Result<Job, StoreError> {
        self.runtime.block_on(self.store.get(id, None))
    }
}

/// Runs a worker until `stop` turns true; a job running then is handed back to the queue
/// (its attempt not counted) after the handler stops at its next check. Database errors after
/// the first heartbeat (a busy or restarting database) are logged and retried after a poll.
///
/// # Errors
/// The first heartbeat's: the database cannot be used at all.
pub async fn run(
    store: JobStore,
    options: WorkerOptions,
    handlers: Handlers,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let kinds: Vec<&str> = handlers.keys().copied().collect();
    store
        .heartbeat(&options.name, &options.capabilities, &kinds)
        .await?;
    tracing::info!(worker = %options.name, capabilities = ?options.capabilities, kinds = ?kinds, "job worker started");
    let mut last_heartbeat = Instant::now();
    while !*stop.borrow() {
        match step(&store, &options, &kinds, &mut last_heartbeat).await {
            Ok(Some(lease)) => run_one(&store, &options, &handlers, lease, &mut stop).await,
            Ok(None) => idle(options.poll, &mut stop).await,
            Err(e) => {
                tracing::warn!(worker = %options.name, error = %e, "the job database failed; trying again");
                idle(options.poll, &mut stop).await;
            }
        }
    }
    tracing::info!(worker = %options.name, "job worker stopped");
    Ok(())
}

/// A worker inside another process (`fuselab serve`'s), stopped with it.
#[derive(Debug)]
pub struct InProcessWorker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl InProcessWorker {
    /// Starts [`run`] on the current runtime.
    pub fn start(store: JobStore, options: WorkerOptions, handlers: Handlers) -> Self {
        let (stop, stopped) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(run(store, options, handlers, stopped)),
        }
    }

    /// Stops it: a running job is handed back to the queue once its handler stops (waits at
    /// most `patience` for that).
    pub async fn stop(self, patience: Duration) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(patience, self.task).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the job worker failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!(?patience, "the job worker did not stop in time"),
        }
    }
}

/// One look for work: the heartbeat when due, the reaper, a claim.
async fn step(
    store: &JobStore,
    options: &WorkerOptions,
    kinds: &[&str],
    last_heartbeat: &mut Instant,
) -> Result<Option<Lease>, StoreError> {
    if last_heartbeat.elapsed() >= options.lease / 3 {
        store
            .heartbeat(&options.name, &options.capabilities, kinds)
            .await?;
        *last_heartbeat = Instant::now();
    }
    for id in store.reap().await? {
        tracing::warn!(job = %id, "a worker stopped renewing its lease; the job was reaped");
    }
    store
        .claim(&options.name, &options.capabilities, kinds, options.lease)
        .await
}

async fn idle(poll: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(poll) => {}
        () = stopping(stop) => {}
    }
}

/// Resolves once `stop` is true; never, if its sender is gone without saying so.
async fn stopping(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs one claimed job to the end of its attempt.
async fn run_one(
    store: &JobStore,
    options: &WorkerOptions,
    handlers: &Handlers,
    lease: Lease,
    stop: &mut watch::Receiver<bool>,
) {
    let id = lease.job.id.clone();
    let Some(handler) = handlers.get(lease.job.kind.as_str()).cloned() else {
        // The claim asks only for our kinds; this would be a bug, so say it and give up.
        let outcome = Outcome::Failed {
            error: format!(
                "worker {} has no handler for `{}`",
                options.name, lease.job.kind
            ),
            retry: false,
        };
        if let Err(e) = store.finish(&lease, &outcome).await {
            tracing::error!(job = %id, error = %e, "recording a job's end");
        }
        return;
    };
    tracing::info!(job = %id, kind = %lease.job.kind, attempt = lease.job.attempts, "job claimed");
    let flag = Arc::new(AtomicBool::new(lease.job.cancel_requested));
    let lost = Arc::new(AtomicBool::new(false));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let renewer = tokio::spawn(renew(
        store.clone(),
        lease.clone(),
        options.lease,
        Arc::clone(&flag),
        Arc::clone(&lost),
    ));
    let mut context = JobContext {
        store: store.clone(),
        lease: lease.clone(),
        runtime: Handle::current(),
        stop: Arc::clone(&flag),
        last_progress: None,
    };
    let job = lease.job.clone();
    let mut work = tokio::task::spawn_blocking(move || handler.run(&job, &mut context));
    let outcome = tokio::select! {
        done = &mut work => done,
        () = stopping(stop) => {
            shutting_down.store(true, Ordering::Relaxed);
            flag.store(true, Ordering::Relaxed);
            work.await
        }
    };
    renewer.abort();
    if lost.load(Ordering::Relaxed) {
        tracing::warn!(job = %id, "the lease was lost while the job ran; its outcome is dropped");
        return;
    }
    let outcome = outcome.unwrap_or_else(|panic| Outcome::Failed {
        error: format!("the job's handler stopped unexpectedly: {panic}"),
        retry: false,
    });
    let result = if shutting_down.load(Ordering::Relaxed) && outcome == Outcome::Cancelled {
        store.release(&lease).await.map(|()| super::Status::Queued)
    } else {
        store.finish(&lease, &outcome).await
    };
    match result {
        Ok(status) => tracing::info!(job = %id, %status, "job attempt ended"),
        Err(e) => tracing::error!(job = %id, error = %e, "recording a job's end"),
    }
}

/// Renews `lease` every third of `ttl` (and when a cancel is notified) until aborted; raises
/// `stop` when a cancel is requested or the lease is lost (and then `lost` too).
async fn renew(
    store: JobStore,
    lease: Lease,
    ttl: Duration,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) {
    let mut every = tokio::time::interval(ttl / 3);
    every.tick().await;
    let mut watch = store.watch(&lease.job.id);
    loop {
        // A cancel notified (Postgres) is heard at once; the renewal reads it.
        tokio::select! {
            _ = every.tick() => {}
            () = watch.cancelled() => {}
        }
        match store.renew(&lease, ttl).await {
            Ok(cancel) => {
                if cancel {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(StoreError::LeaseLost { .. }) => {
                lost.store(true, Ordering::Relaxed);
                stop.store(true, Ordering::Relaxed);
                return;
            }
            // A database hiccup: the next tick tries again; fencing covers a lapse.
            Err(e) => tracing::warn!(job = %lease.job.id, error = %e, "renewing a job's lease"),
        }
    }
}

//! The job system: every long task (today the sharded ensemble analysis; mask generation and
//! alignment runs) is a row in the job tables of SQLite (by default, the data
//! directory's `fuselab.sqlite3`) or Postgres (`--database postgres://…`, shared by workers on
//! several machines). Workers claim jobs under leases with fencing tokens, renew them from a
//! task of their own, and record progress, checkpoints and outcomes in the database; a job
//! whose worker dies is re-queued from its checkpoint while attempts remain. Cancel and delete
//! work from any process. Design and the engines compared: `docs/jobs-engine-research.md`.

mod admin;
mod cli;
mod error;
mod model;
mod notify;
mod store;
mod tables;
mod worker;

pub use cli::{ArtifactsArgs, JobsCommand, WorkerArgs, open_store, run_jobs, run_worker};
pub use error::StoreError;
pub use model::{
    Attempt, Capability, Event, Filter, Job, Lease, NewJob, Outcome, SECRET_FIELD, Status,
};
pub use notify::JobWatch;
pub use store::JobStore;
pub use worker::{Handler, Handlers, InProcessWorker, JobContext, WorkerOptions, run};

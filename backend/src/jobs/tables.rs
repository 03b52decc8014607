//! The job tables and their migrations, one list for both engines (component `jobs` of
//! `fuselab_schema`).

use crate::db::{Database, DbError};

/// The component's name in `fuselab_schema`.
const COMPONENT: &str = "jobs";

/// Each entry brings the job tables from its index to the next version. One text serves both
/// engines: SQLite reads `BIGINT` as an integer column, Postgres as 64 bits.
const MIGRATIONS: &[&str] = &["CREATE TABLE job_workers (
         id TEXT PRIMARY KEY,
         capabilities TEXT NOT NULL,
         kinds TEXT NOT NULL,
         version TEXT NOT NULL,
         started_at BIGINT NOT NULL,
         last_seen BIGINT NOT NULL
     );
     CREATE TABLE job_runs (
         id TEXT PRIMARY KEY,
         owner_id BIGINT,
         kind TEXT NOT NULL,
         config TEXT NOT NULL,
         capability TEXT NOT NULL CHECK (capability IN ('cpu', 'gpu')),
         status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
         priority BIGINT NOT NULL DEFAULT 0,
         run_after BIGINT NOT NULL,
         attempts BIGINT NOT NULL DEFAULT 0,
         max_attempts BIGINT NOT NULL,
         worker_id TEXT,
         lease_token BIGINT,
         lease_expires BIGINT,
         cancel_requested BIGINT NOT NULL DEFAULT 0,
         delete_requested BIGINT NOT NULL DEFAULT 0,
         error TEXT,
         progress TEXT,
         checkpoint TEXT,
         result TEXT,
         parent_id TEXT REFERENCES job_runs (id) ON DELETE CASCADE,
         range_start BIGINT,
         range_end BIGINT,
         pending_children BIGINT NOT NULL DEFAULT 0,
         created_at BIGINT NOT NULL,
         started_at BIGINT,
         finished_at BIGINT,
         updated_at BIGINT NOT NULL
     );
     CREATE INDEX job_runs_claim ON job_runs (priority DESC, run_after, created_at) WHERE status = 'queued';
     CREATE INDEX job_runs_lease ON job_runs (lease_expires) WHERE status = 'running';
     CREATE INDEX job_runs_owner ON job_runs (owner_id, created_at);
     CREATE INDEX job_runs_parent ON job_runs (parent_id);
     CREATE TABLE job_attempts (
         job_id TEXT NOT NULL REFERENCES job_runs (id) ON DELETE CASCADE,
         attempt BIGINT NOT NULL,
         worker_id TEXT NOT NULL,
         started_at BIGINT NOT NULL,
         ended_at BIGINT,
         outcome TEXT CHECK (outcome IN ('done', 'failed', 'cancelled', 'interrupted', 'waiting')),
         error TEXT,
         PRIMARY KEY (job_id, attempt)
     );
     CREATE TABLE job_events (
         job_id TEXT NOT NULL REFERENCES job_runs (id) ON DELETE CASCADE,
         seq BIGINT NOT NULL,
         at BIGINT NOT NULL,
         kind TEXT NOT NULL,
         data TEXT NOT NULL,
         PRIMARY KEY (job_id, seq)
     );"];

/// Brings the job tables up to date.
///
/// # Errors
/// [`DbError::TooNew`] when the database was migrated by a newer fuselab; database errors.
pub(super) async fn migrate(db: &Database) -> Result<(), DbError> {
    db.migrate(COMPONENT, MIGRATIONS, 0).await
}

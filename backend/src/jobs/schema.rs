//! The job tables and their migrations, one list for both engines; `fuselab_schema` records how
//! far each component's list has run, so later components (users, reports) can migrate beside
//! the jobs.

use sqlx::{AnyPool, Row as _};

use super::engine::{Engine, StoreError};

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

/// Brings the job tables up to date, each migration in its own transaction. Several processes
/// may start at once (a server and its workers): on Postgres an advisory lock serialises them;
/// on SQLite the first write of the transaction takes the database's write lock.
///
/// # Errors
/// [`StoreError::TooNew`] when the database was migrated by a newer fuselab; database errors.
pub async fn migrate(pool: &AnyPool, engine: Engine) -> Result<(), StoreError> {
    let list = MIGRATIONS;
    // SQLite: take the write lock at once, so two processes starting together wait for each
    // other instead of failing to upgrade a read lock.
    let mut tx = match engine {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => pool.begin().await?,
    };
    if engine == Engine::Postgres {
        // Held until the transaction ends: one migrating process at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(7291534001)")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS fuselab_schema (component TEXT PRIMARY KEY, version BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let version: i64 = sqlx::query("SELECT version FROM fuselab_schema WHERE component = $1")
        .bind(COMPONENT)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()?
        .unwrap_or(0);
    let start = usize::try_from(version).unwrap_or(usize::MAX);
    if start > list.len() {
        return Err(StoreError::TooNew {
            found: version,
            known: list.len(),
        });
    }
    for (index, migration) in list.iter().enumerate().skip(start) {
        sqlx::raw_sql(*migration).execute(&mut *tx).await?;
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO fuselab_schema (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        )
        .bind(COMPONENT)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

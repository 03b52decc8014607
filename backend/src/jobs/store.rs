//! The job store: every state change of a job is one transaction on SQLite or Postgres, with
//! one SQL text for both (sqlx's `any` driver; `$1` parameters, which SQLite also reads) except
//! where the engines differ (the clock, `SKIP LOCKED`, `NOTIFY`). Times come from the
//! database's clock, so workers on machines whose clocks disagree still agree on leases. The
//! claim side lives here (queueing, claiming, renewing, progress, finishing, reaping); the
//! administrator's side in `admin`, the errors in `error`, the connection in `crate::db`.

use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, AssertSqlSafe, Row as _};

use super::error::StoreError;
use super::model::{Capability, Job, Lease, NewJob, Outcome, Status};
use super::notify::{JobWatch, Notices};
use super::tables;
use crate::db::{Database, Engine};

/// Every column of `job_runs` that [`Job`] holds, in the order [`job_of`] reads them.
pub(super) const JOB_COLUMNS: &str = "id, owner_id, kind, config, capability, status, priority, attempts, \
     max_attempts, worker_id, cancel_requested, error, progress, checkpoint, result, parent_id, \
     pending_children, created_at, started_at, finished_at, updated_at";

/// The job database.
#[derive(Debug, Clone)]
pub struct JobStore {
    pub(super) pool: AnyPool,
    pub(super) engine: Engine,
    notices: Notices,
}

pub(super) fn json_column(
    job: &str,
    column: &'static str,
    text: Option<String>,
) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            job: job.to_owned(),
            column,
            found: text.chars().take(80).collect(),
            expected: format!("JSON ({e})"),
        })
    })
    .transpose()
}

pub(super) fn parsed<T: core::str::FromStr<Err = String>>(
    job: &str,
    column: &'static str,
    text: String,
) -> Result<T, StoreError> {
    text.parse().map_err(|expected| StoreError::Corrupt {
        job: job.to_owned(),
        column,
        found: text,
        expected,
    })
}

/// A [`Job`] from a row of [`JOB_COLUMNS`].
pub(super) fn job_of(row: &AnyRow) -> Result<Job, StoreError> {
    let id: String = row.try_get(0)?;
    Ok(Job {
        owner: row.try_get(1)?,
        kind: row.try_get(2)?,
        config: json_column(&id, "config", Some(row.try_get(3)?))?.unwrap_or_default(),
        capability: parsed(&id, "capability", row.try_get(4)?)?,
        status: parsed(&id, "status", row.try_get(5)?)?,
        priority: row.try_get(6)?,
        attempts: row.try_get(7)?,
        max_attempts: row.try_get(8)?,
        worker: row.try_get(9)?,
        cancel_requested: row.try_get::<i64, _>(10)? != 0,
        error: row.try_get(11)?,
        progress: json_column(&id, "progress", row.try_get(12)?)?,
        checkpoint: json_column(&id, "checkpoint", row.try_get(13)?)?,
        result: json_column(&id, "result", row.try_get(14)?)?,
        parent: row.try_get(15)?,
        pending_children: row.try_get(16)?,
        created_at: row.try_get(17)?,
        started_at: row.try_get(18)?,
        finished_at: row.try_get(19)?,
        updated_at: row.try_get(20)?,
        id,
    })
}

/// Lower-case hex digits of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// 128 random bits as 32 hex digits.
fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

fn new_token() -> Result<i64, StoreError> {
    let mut bytes = [0_u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(i64::from_le_bytes(bytes))
}

/// Seconds to wait before retry `attempt` of a failed job: 2, 4, 8, … capped at 5 minutes.
fn backoff_millis(attempt: i64) -> i64 {
    1000 * (1_i64 << attempt.clamp(1, 8)).min(300)
}

pub(super) use crate::db::Tx;

/// How an attempt's outcome changes its job.
struct Ending<'a> {
    status: Status,
    attempt_outcome: &'static str,
    error: Option<&'a str>,
    result: Option<String>,
    run_after: i64,
    event: serde_json::Value,
}

/// What `outcome` of attempt `attempt` makes of a job; `may_retry`: attempts remain and no
/// cancel was asked.
fn ending(outcome: &Outcome, attempt: i64, may_retry: bool) -> Ending<'_> {
    let plain = |status, attempt_outcome| Ending {
        status,
        attempt_outcome,
        error: None,
        result: None,
        run_after: 0,
        event: serde_json::json!({}),
    };
    match outcome {
        Outcome::Done(value) => Ending {
            result: Some(value.to_string()),
            ..plain(Status::Done, "done")
        },
        Outcome::Failed { error, retry } if *retry && may_retry => {
            let wait = backoff_millis(attempt);
            Ending {
                error: Some(error),
                run_after: wait,
                event: serde_json::json!({ "error": error, "retry_in_ms": wait }),
                ..plain(Status::Queued, "failed")
            }
        }
        Outcome::Failed { error, .. } => Ending {
            error: Some(error),
            event: serde_json::json!({ "error": error }),
            ..plain(Status::Failed, "failed")
        },
        Outcome::Cancelled => plain(Status::Cancelled, "cancelled"),
        Outcome::Waiting => plain(Status::Queued, "waiting"),
    }
}

impl JobStore {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) and brings the server's tables
    /// and the job tables up to date. A SQLite file is created readable by its owner only.
    ///
    /// # Errors
    /// A bad URL, an unreachable database, a failed migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::on(Database::open(url).await?).await
    }

    /// The jobs of an open database, their tables brought up to date.
    ///
    /// # Errors
    /// A failed migration.
    pub async fn on(db: Database) -> Result<Self, StoreError> {
        tables::migrate(&db).await?;
        Ok(Self {
            pool: db.pool().clone(),
            engine: db.engine(),
            notices: Notices::new(db.engine(), db.url()),
        })
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// `text` with `NOW` replaced by the engine's clock.
    pub(super) fn sql(&self, text: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(text.replace("NOW", self.engine.now()))
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// transaction that reads before writing waits for the lock instead of failing to upgrade.
    pub(super) async fn write(&self) -> Result<Tx, StoreError> {
        Ok(match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.pool.begin().await?,
        })
    }

    /// Appends an event to a job's history inside `tx`; returns its sequence number.
    pub(super) async fn event(
        &self,
        tx: &mut Tx,
        job: &str,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let seq: i64 = sqlx::query(self.sql(
            "INSERT INTO job_events (job_id, seq, at, kind, data)
             SELECT $1, COALESCE(MAX(seq), 0) + 1, NOW, $2, $3 FROM job_events WHERE job_id = $1
             RETURNING seq",
        ))
        .bind(job)
        .bind(kind)
        .bind(data.to_string())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        if self.engine == Engine::Postgres {
            // Delivered at commit; listeners read the events from the table.
            sqlx::query("SELECT pg_notify('fuselab_job_events', $1)")
                .bind(format!("{job}:{seq}"))
                .execute(&mut **tx)
                .await?;
        }
        Ok(seq)
    }

    /// Queues a job; returns its id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn enqueue(&self, job: &NewJob) -> Result<String, StoreError> {
        let mut tx = self.write().await?;
        let id = self.insert(&mut tx, job, None).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn insert(
        &self,
        tx: &mut Tx,
        job: &NewJob,
        parent: Option<(&str, i64, i64)>,
    ) -> Result<String, StoreError> {
        let id = new_id()?;
        sqlx::query(self.sql(
            "INSERT INTO job_runs (id, owner_id, kind, config, capability, status, priority, run_after,
                 max_attempts, parent_id, range_start, range_end, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, NOW, $7, $8, $9, $10, NOW, NOW)",
        ))
        .bind(&id)
        .bind(job.owner)
        .bind(&job.kind)
        .bind(job.config.to_string())
        .bind(job.capability.as_str())
        .bind(job.priority)
        .bind(job.max_attempts.max(1))
        .bind(parent.map(|p| p.0))
        .bind(parent.map(|p| p.1))
        .bind(parent.map(|p| p.2))
        .execute(&mut **tx)
        .await?;
        self.event(tx, &id, "queued", &serde_json::json!({ "kind": job.kind }))
            .await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_notify('fuselab_jobs', $1)")
                .bind(job.capability.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(id)
    }

    /// Records a worker (or refreshes it): what it offers, for `jobs workers` and the admin.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(
        &self,
        worker: &str,
        capabilities: &[Capability],
        kinds: &[&str],
    ) -> Result<(), StoreError> {
        let capabilities: Vec<&str> = capabilities.iter().map(|c| c.as_str()).collect();
        sqlx::query(self.sql(
            "INSERT INTO job_workers (id, capabilities, kinds, version, started_at, last_seen)
             VALUES ($1, $2, $3, $4, NOW, NOW)
             ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
        ))
        .bind(worker)
        .bind(capabilities.join(","))
        .bind(kinds.join(","))
        .bind(env!("CARGO_PKG_VERSION"))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims the next queued job this worker can run (by priority, then age), holding it for
    /// `ttl`; `None` when there is none.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim(
        &self,
        worker: &str,
        capabilities: &[Capability],
        kinds: &[&str],
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        if capabilities.is_empty() || kinds.is_empty() {
            return Ok(None);
        }
        let token = new_token()?;
        // Parameters: $1 worker, $2 token, $3 ttl; then the capabilities, then the kinds.
        let list = |from: usize, count: usize| {
            (from..from + count)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let skip_locked = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let text = format!(
            "UPDATE job_runs SET status = 'running', worker_id = $1, lease_token = $2,
                 lease_expires = NOW + $3, attempts = attempts + 1,
                 started_at = COALESCE(started_at, NOW), updated_at = NOW
             WHERE id = (SELECT id FROM job_runs
                 WHERE status = 'queued' AND pending_children = 0 AND run_after <= NOW
                   AND capability IN ({}) AND kind IN ({})
                 ORDER BY priority DESC, run_after, created_at, id LIMIT 1 {skip_locked})
             RETURNING {JOB_COLUMNS}",
            list(4, capabilities.len()),
            list(4 + capabilities.len(), kinds.len()),
        );
        let mut tx = self.write().await?;
        let mut query = sqlx::query(self.sql(&text))
            .bind(worker)
            .bind(token)
            .bind(millis(ttl));
        for capability in capabilities {
            query = query.bind(capability.as_str());
        }
        for kind in kinds {
            query = query.bind(*kind);
        }
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let job = job_of(&row)?;
        sqlx::query(self.sql(
            "INSERT INTO job_attempts (job_id, attempt, worker_id, started_at) VALUES ($1, $2, $3, NOW)",
        ))
        .bind(&job.id)
        .bind(job.attempts)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        self.event(
            &mut tx,
            &job.id,
            "claimed",
            &serde_json::json!({ "worker": worker, "attempt": job.attempts }),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Lease {
            job,
            token,
            worker: worker.to_owned(),
        }))
    }

    /// Extends the lease by `ttl`; returns whether a cancel has been requested.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when the claim has ended; database errors.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let row = sqlx::query(self.sql(
            "UPDATE job_runs SET lease_expires = NOW + $1
             WHERE id = $2 AND lease_token = $3 AND status = 'running'
             RETURNING cancel_requested",
        ))
        .bind(millis(ttl))
        .bind(&lease.job.id)
        .bind(lease.token)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(row.try_get::<i64, _>(0)? != 0),
            None => Err(lost(lease)),
        }
    }

    /// Fenced update of one of the lease's job columns (`progress` or `checkpoint`) plus an
    /// event of `kind` with `data`, in one transaction; returns whether a cancel was asked
    /// for, so a handler that reports often learns of it at once.
    async fn record(
        &self,
        lease: &Lease,
        column: &str,
        value: &serde_json::Value,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let cancel: i64 = sqlx::query(self.sql(&format!(
            "UPDATE job_runs SET {column} = $1, updated_at = NOW
             WHERE id = $2 AND lease_token = $3 AND status = 'running'
             RETURNING cancel_requested"
        )))
        .bind(value.to_string())
        .bind(&lease.job.id)
        .bind(lease.token)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| lost(lease))?
        .try_get(0)?;
        self.event(&mut tx, &lease.job.id, kind, data).await?;
        tx.commit().await?;
        Ok(cancel != 0)
    }

    /// Records the handler's progress (the job's latest, and an event); returns whether a
    /// cancel was asked for.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub async fn progress(
        &self,
        lease: &Lease,
        progress: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        self.record(lease, "progress", progress, "progress", progress)
            .await
    }

    /// Saves where a new attempt would resume.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub async fn checkpoint(
        &self,
        lease: &Lease,
        checkpoint: &serde_json::Value,
    ) -> Result<(), StoreError> {
        // The event stays small: the checkpoint itself is in the job's row.
        let none = serde_json::json!({});
        self.record(lease, "checkpoint", checkpoint, "checkpoint", &none)
            .await
            .map(drop)
    }

    /// Queues `shards` as children of the leased job (each a job of its own, with its rank
    /// range) and saves `checkpoint` with them, in one transaction, so a new attempt knows the
    /// split happened; the job waits until they are all done. Use with [`Outcome::Waiting`].
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub async fn split(
        &self,
        lease: &Lease,
        shards: &[(NewJob, i64, i64)],
        checkpoint: &serde_json::Value,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(self.sql(
            "UPDATE job_runs SET pending_children = pending_children + $1, checkpoint = $4, updated_at = NOW
             WHERE id = $2 AND lease_token = $3 AND status = 'running'",
        ))
        .bind(i64::try_from(shards.len()).unwrap_or(i64::MAX))
        .bind(&lease.job.id)
        .bind(lease.token)
        .bind(checkpoint.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(lost(lease));
        }
        let mut ids = Vec::with_capacity(shards.len());
        for (shard, start, end) in shards {
            ids.push(
                self.insert(&mut tx, shard, Some((&lease.job.id, *start, *end)))
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Ends the lease's attempt with `outcome`: done, failed (re-queued with a back-off while
    /// attempts remain and the error is transient), cancelled, or waiting for its shards. A
    /// job asked to be deleted is deleted once it stops.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] (nothing is written); database errors.
    pub async fn finish(&self, lease: &Lease, outcome: &Outcome) -> Result<Status, StoreError> {
        let job = &lease.job;
        let mut tx = self.write().await?;
        let current = sqlx::query("SELECT attempts, max_attempts, cancel_requested, delete_requested FROM job_runs WHERE id = $1 AND lease_token = $2 AND status = 'running'")
            .bind(&job.id)
            .bind(lease.token)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| lost(lease))?;
        let attempts: i64 = current.try_get(0)?;
        let max_attempts: i64 = current.try_get(1)?;
        let cancel_requested = current.try_get::<i64, _>(2)? != 0;
        let delete_requested = current.try_get::<i64, _>(3)? != 0;
        let Ending {
            status,
            attempt_outcome,
            error,
            result,
            run_after,
            event,
        } = ending(
            outcome,
            attempts,
            attempts < max_attempts && !cancel_requested,
        );
        let terminal = status.is_terminal();
        let updated = sqlx::query(self.sql(
            "UPDATE job_runs SET status = $1, worker_id = NULL, lease_token = NULL, lease_expires = NULL,
                 error = COALESCE($2, error), result = COALESCE($3, result), run_after = NOW + $4,
                 finished_at = CASE WHEN $5 = 1 THEN NOW ELSE NULL END, updated_at = NOW,
                 max_attempts = CASE WHEN $6 = 1 THEN max_attempts + 1 ELSE max_attempts END
             WHERE id = $7 AND lease_token = $8 AND status = 'running'",
        ))
        .bind(status.as_str())
        .bind(error)
        .bind(result)
        .bind(run_after)
        .bind(i64::from(terminal))
        // A split is not a failed try: its attempt does not use up one of the job's.
        .bind(i64::from(matches!(outcome, Outcome::Waiting)))
        .bind(&job.id)
        .bind(lease.token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            // Reaped between the read above and this write (Postgres reads without a lock).
            return Err(lost(lease));
        }
        sqlx::query(self.sql(
            "UPDATE job_attempts SET ended_at = NOW, outcome = $1, error = $2 WHERE job_id = $3 AND attempt = $4",
        ))
        .bind(attempt_outcome)
        .bind(error)
        .bind(&job.id)
        .bind(attempts)
        .execute(&mut *tx)
        .await?;
        let kind = match (status, outcome) {
            (Status::Queued, Outcome::Waiting) => "waiting",
            (Status::Queued, _) => "retry",
            (status, _) => status.as_str(),
        };
        self.event(&mut tx, &job.id, kind, &event).await?;
        if terminal {
            self.settle_parent(&mut tx, job, status, error).await?;
            if delete_requested {
                self.sweep(&mut tx, &job.id).await?;
            }
            if let Some(parent) = &job.parent {
                self.sweep(&mut tx, parent).await?;
            }
        }
        tx.commit().await?;
        Ok(status)
    }

    /// A shard has ended: a done one counts down its parent's pending shards (the parent runs
    /// again at zero, to merge them); a failed, cancelled or interrupted one fails the parent
    /// and cancels its other shards.
    async fn settle_parent(
        &self,
        tx: &mut Tx,
        job: &Job,
        status: Status,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let Some(parent) = &job.parent else {
            return Ok(());
        };
        if status == Status::Done {
            sqlx::query(self.sql(
                "UPDATE job_runs SET pending_children = pending_children - 1, updated_at = NOW WHERE id = $1",
            ))
            .bind(parent)
            .execute(&mut **tx)
            .await?;
            return Ok(());
        }
        let message = format!(
            "shard {} ended {status}{}",
            job.id,
            error.map(|e| format!(": {e}")).unwrap_or_default()
        );
        let failed = sqlx::query(self.sql(
            "UPDATE job_runs SET status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'failed' END,
                 error = $1, pending_children = 0, finished_at = NOW, updated_at = NOW
             WHERE id = $2 AND status = 'queued'",
        ))
        .bind(&message)
        .bind(parent)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if failed > 0 {
            self.event(
                tx,
                parent,
                "failed",
                &serde_json::json!({ "error": message }),
            )
            .await?;
            self.cancel_children(tx, parent).await?;
        }
        Ok(())
    }

    /// Hands a running job back to the queue because its worker is stopping: the attempt ends
    /// `interrupted` without using up one of the job's, and the next claim resumes from the
    /// checkpoint.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`]; database errors.
    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(self.sql(
            "UPDATE job_runs SET status = 'queued', worker_id = NULL, lease_token = NULL,
                 lease_expires = NULL, max_attempts = max_attempts + 1, updated_at = NOW
             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
        ))
        .bind(&lease.job.id)
        .bind(lease.token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(lost(lease));
        }
        let error = format!("worker {} stopped", lease.worker);
        sqlx::query(self.sql(
            "UPDATE job_attempts SET ended_at = NOW, outcome = 'interrupted', error = $1 WHERE job_id = $2 AND attempt = $3",
        ))
        .bind(&error)
        .bind(&lease.job.id)
        .bind(lease.job.attempts)
        .execute(&mut *tx)
        .await?;
        self.event(
            &mut tx,
            &lease.job.id,
            "requeued",
            &serde_json::json!({ "error": error }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes `id` if its deletion was requested and neither it nor any of its shards runs.
    async fn sweep(&self, tx: &mut Tx, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM job_runs WHERE id = $1 AND delete_requested = 1 AND status <> 'running'
               AND NOT EXISTS (SELECT 1 FROM job_runs AS shard WHERE shard.parent_id = $1 AND shard.status = 'running')",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Cancels the queued shards of `parent` and asks its running ones to stop.
    pub(super) async fn cancel_children(
        &self,
        tx: &mut Tx,
        parent: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(self.sql(
            "UPDATE job_runs SET cancel_requested = 1,
                 status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                 finished_at = CASE WHEN status = 'queued' THEN NOW ELSE finished_at END,
                 updated_at = NOW
             WHERE parent_id = $1 AND status IN ('queued', 'running')",
        ))
        .bind(parent)
        .execute(&mut **tx)
        .await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_notify('fuselab_job_cancel', $1)")
                .bind(parent)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Returns expired leases: each job goes back to the queue while attempts remain (to resume
    /// from its checkpoint), else ends `interrupted` with the error kept; a job whose cancel
    /// was requested ends `cancelled`. Returns the ids of the jobs it touched.
    ///
    /// # Errors
    /// Database errors.
    pub async fn reap(&self) -> Result<Vec<String>, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {JOB_COLUMNS} FROM job_runs WHERE status = 'running' AND lease_expires < NOW"
        )))
        .fetch_all(&mut *tx)
        .await?;
        let mut reaped = Vec::with_capacity(rows.len());
        for row in &rows {
            let job = job_of(row)?;
            let worker = job.worker.clone().unwrap_or_default();
            let error = format!(
                "attempt {}: worker {worker} stopped renewing its lease",
                job.attempts
            );
            let status = if job.cancel_requested {
                Status::Cancelled
            } else if job.attempts < job.max_attempts {
                Status::Queued
            } else {
                Status::Interrupted
            };
            let terminal = status.is_terminal();
            let updated = sqlx::query(self.sql(
                "UPDATE job_runs SET status = $1, error = $2, worker_id = NULL, lease_token = NULL,
                     lease_expires = NULL, finished_at = CASE WHEN $3 = 1 THEN NOW ELSE NULL END, updated_at = NOW
                 WHERE id = $4 AND status = 'running' AND lease_expires < NOW",
            ))
            .bind(status.as_str())
            .bind(&error)
            .bind(i64::from(terminal))
            .bind(&job.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                // Another reaper (on Postgres) or a renewal got there first.
                continue;
            }
            sqlx::query(self.sql(
                "UPDATE job_attempts SET ended_at = NOW, outcome = 'interrupted', error = $1 WHERE job_id = $2 AND attempt = $3",
            ))
            .bind(&error)
            .bind(&job.id)
            .bind(job.attempts)
            .execute(&mut *tx)
            .await?;
            let kind = if terminal {
                status.as_str()
            } else {
                "requeued"
            };
            self.event(
                &mut tx,
                &job.id,
                kind,
                &serde_json::json!({ "error": error }),
            )
            .await?;
            if terminal {
                self.settle_parent(&mut tx, &job, status, Some(&error))
                    .await?;
                self.sweep(&mut tx, &job.id).await?;
                if let Some(parent) = &job.parent {
                    self.sweep(&mut tx, parent).await?;
                }
            }
            reaped.push(job.id);
        }
        tx.commit().await?;
        Ok(reaped)
    }

    /// A wait for news of job `id` (its events, a cancel): notified on Postgres, polled on
    /// SQLite. Made before reading what is there, it misses nothing written after.
    pub fn watch(&self, id: &str) -> JobWatch {
        self.notices.watch(id)
    }

    /// Closes the pool's connections and stops listening.
    pub async fn close(&self) {
        self.notices.stop();
        self.pool.close().await;
    }
}

fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost {
        id: lease.job.id.clone(),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

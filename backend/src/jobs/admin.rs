//! The administrator's side of the job store: cancel, delete and retry from any process, and
//! reading jobs, their events, attempts and shard results.

use sqlx::Row as _;

use super::error::StoreError;
use super::model::{Attempt, Event, Filter, Job, Status};
use super::store::{JOB_COLUMNS, JobStore, Tx, job_of, json_column, parsed};
use crate::db::Engine;

impl JobStore {
    /// Asks a job (and its shards) to stop: a queued one is cancelled at once, a running one
    /// stops at its worker's next lease renewal. Returns the status after the request.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Status`] for a job that has ended.
    pub async fn cancel(&self, id: &str, owner: Option<i64>) -> Result<Status, StoreError> {
        let mut tx = self.write().await?;
        let status = self.status_of(&mut tx, id, owner).await?;
        if status.is_terminal() {
            return Err(StoreError::Status {
                id: id.to_owned(),
                status,
                action: "cancel",
                applies_to: "queued or running",
            });
        }
        // Decided in the statement, not from the read above: a worker may claim the job
        // in between (on Postgres), and then it must stay running until it lets go.
        let after: String = sqlx::query(self.sql(
            "UPDATE job_runs SET cancel_requested = 1,
                 status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                 finished_at = CASE WHEN status = 'queued' THEN NOW ELSE finished_at END,
                 pending_children = 0, updated_at = NOW
             WHERE id = $1 AND status IN ('queued', 'running')
             RETURNING status",
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound { id: id.to_owned() })?;
        let after: Status = parsed(id, "status", after)?;
        let kind = if after == Status::Cancelled {
            "cancelled"
        } else {
            "cancel_requested"
        };
        self.event(&mut tx, id, kind, &serde_json::json!({}))
            .await?;
        self.cancel_children(&mut tx, id).await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_notify('fuselab_job_cancel', $1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a job, its shards, events and attempts. A running one is cancelled first and
    /// deleted when its worker lets go. Returns whether it is gone already.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; database errors.
    pub async fn delete(&self, id: &str, owner: Option<i64>) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let status = self.status_of(&mut tx, id, owner).await?;
        let running = status == Status::Running
            || sqlx::query("SELECT 1 FROM job_runs WHERE parent_id = $1 AND status = 'running'")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if running {
            sqlx::query(self.sql(
                "UPDATE job_runs SET cancel_requested = 1, delete_requested = 1,
                     status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                     finished_at = CASE WHEN status = 'queued' THEN NOW ELSE finished_at END,
                     pending_children = 0, updated_at = NOW
                 WHERE id = $1 OR parent_id = $1",
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM job_runs WHERE parent_id = $1 AND status <> 'running'")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            self.event(&mut tx, id, "delete_requested", &serde_json::json!({}))
                .await?;
        } else {
            sqlx::query("DELETE FROM job_runs WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_notify('fuselab_job_cancel', $1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(!running)
    }

    /// Queues an ended (failed, cancelled or interrupted) job again with one more attempt; it
    /// resumes from its checkpoint.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Status`] for a live or done job.
    pub async fn retry(&self, id: &str, owner: Option<i64>) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let status = self.status_of(&mut tx, id, owner).await?;
        if !matches!(
            status,
            Status::Failed | Status::Cancelled | Status::Interrupted
        ) {
            return Err(StoreError::Status {
                id: id.to_owned(),
                status,
                action: "retry",
                applies_to: "failed, cancelled or interrupted",
            });
        }
        sqlx::query(self.sql(
            "UPDATE job_runs SET status = 'queued', cancel_requested = 0, max_attempts = attempts + 1,
                 run_after = NOW, finished_at = NULL, updated_at = NOW
             WHERE id = $1",
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.event(
            &mut tx,
            id,
            "retry",
            &serde_json::json!({ "by": "request" }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A job's status, if it exists and (with `owner`) belongs to that user.
    async fn status_of(
        &self,
        tx: &mut Tx,
        id: &str,
        owner: Option<i64>,
    ) -> Result<Status, StoreError> {
        let row = sqlx::query("SELECT status, owner_id FROM job_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        let not_found = || StoreError::NotFound { id: id.to_owned() };
        let row = row.ok_or_else(not_found)?;
        if owner.is_some() && row.try_get::<Option<i64>, _>(1)? != owner {
            return Err(not_found());
        }
        parsed(id, "status", row.try_get(0)?)
    }

    /// One job (with `owner`, only if it is that user's).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; database errors.
    pub async fn get(&self, id: &str, owner: Option<i64>) -> Result<Job, StoreError> {
        let row =
            sqlx::query(self.sql(&format!("SELECT {JOB_COLUMNS} FROM job_runs WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let job = row.as_ref().map(job_of).transpose()?;
        match job {
            Some(job) if owner.is_none() || job.owner == owner => Ok(job),
            _ => Err(StoreError::NotFound { id: id.to_owned() }),
        }
    }

    /// Jobs matching `filter`, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {JOB_COLUMNS} FROM job_runs
             WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR status = $2)
               AND (($3 IS NULL AND parent_id IS NULL) OR parent_id = $3)
               AND ($4 IS NULL OR kind = $4)
             ORDER BY created_at DESC, id LIMIT $5"
        )))
        .bind(filter.owner)
        .bind(filter.status.map(Status::as_str))
        .bind(filter.parent.as_deref())
        .bind(filter.kind.as_deref())
        .bind(i64::from(filter.limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_of).collect()
    }

    /// The number of a job's latest event (0: none yet).
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_event(&self, id: &str) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query("SELECT MAX(seq) FROM job_events WHERE job_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(seq.unwrap_or(0))
    }

    /// A job's events after `after` (0: from the start), at most `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn events(&self, id: &str, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, data FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    seq: row.try_get(0)?,
                    at: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    data: json_column(id, "data", Some(row.try_get(3)?))?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// A job's attempts, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, worker_id, started_at, ended_at, outcome, error FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Attempt {
                    attempt: row.try_get(0)?,
                    worker: row.try_get(1)?,
                    started_at: row.try_get(2)?,
                    ended_at: row.try_get(3)?,
                    outcome: row.try_get(4)?,
                    error: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// The results of a job's shards, in rank order (for the merge); fails unless all are done.
    ///
    /// # Errors
    /// [`StoreError::Status`] naming a shard that is not done; database errors.
    pub async fn shard_results(&self, parent: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, status, result FROM job_runs WHERE parent_id = $1 ORDER BY range_start, id",
        )
        .bind(parent)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0)?;
                let status: Status = parsed(&id, "status", row.try_get(1)?)?;
                match json_column(&id, "result", row.try_get(2)?)? {
                    Some(result) if status == Status::Done => Ok(result),
                    _ => Err(StoreError::Status {
                        id,
                        status,
                        action: "merging",
                        applies_to: "done",
                    }),
                }
            })
            .collect()
    }
}

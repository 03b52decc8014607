//! The job queue as the server's handlers see it: the store and the artifact store its jobs
//! share with the workers, and the look-ups every kind's handlers make.

use axum::http::StatusCode;

use super::{Actor, AppError, AppState};
use crate::jobs::{Filter, Job, Status, StoreError};

/// The job queue the server hands long work to, and the artifact store its jobs share with the
/// workers.
#[derive(Debug, Clone)]
pub struct JobQueue {
    /// The jobs.
    pub store: crate::jobs::JobStore,
    /// Their photos, keys, checkpoints and run folders.
    pub artifacts: crate::artifacts::ArtifactStore,
}

impl JobQueue {
    /// The server's queue, or 503 saying that `what` is off without one.
    pub(super) fn of<'a>(state: &'a AppState, what: &str) -> Result<&'a Self, AppError> {
        state.jobs.as_ref().ok_or_else(|| {
            AppError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("this server has no job queue; {what} are off"),
            )
        })
    }

    /// Job `id` of `kind`, when `actor` may see it (administrators every job, users their
    /// own); `None` when it does not exist, is another kind or is not theirs to know of.
    pub(super) async fn visible(
        &self,
        id: &str,
        kind: &str,
        actor: &Actor,
    ) -> Result<Option<Job>, StoreError> {
        let owner = if actor.is_admin() {
            None
        } else {
            let Some(owner) = actor.owner_id() else {
                return Ok(None);
            };
            Some(owner)
        };
        match self.store.get(id, owner).await {
            Ok(job) if job.kind == kind => Ok(Some(job)),
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The queued and running jobs of `kind` (at most 1000 of each).
    pub(super) async fn live(&self, kind: &str) -> Result<Vec<Job>, StoreError> {
        let mut live = Vec::new();
        for status in [Status::Queued, Status::Running] {
            live.extend(
                self.store
                    .list(&Filter {
                        kind: Some(kind.to_owned()),
                        status: Some(status),
                        limit: 1000,
                        ..Filter::default()
                    })
                    .await?,
            );
        }
        Ok(live)
    }
}

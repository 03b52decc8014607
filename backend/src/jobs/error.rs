//! What goes wrong in the job store.

use thiserror::Error;

use super::model::Status;
use crate::db::DbError;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("the job database: {0}")]
    Database(#[from] sqlx::Error),
    /// Opening or migrating the database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored value is not what this build writes.
    #[error("job {job}: column `{column}` holds {found:?}: {expected}")]
    Corrupt {
        /// The job.
        job: String,
        /// The column.
        column: &'static str,
        /// What it holds.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// No job has this id (or it is not the caller's).
    #[error("no job `{id}`")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The operation does not apply to the job's status.
    #[error("job `{id}` is {status}: {action} applies to {applies_to} jobs")]
    Status {
        /// The job.
        id: String,
        /// Its status.
        status: Status,
        /// What was asked.
        action: &'static str,
        /// The statuses it applies to.
        applies_to: &'static str,
    },
    /// This worker's claim on the job has ended (expired and reaped, or the job was deleted):
    /// whatever it computed since is dropped.
    #[error("job `{id}`: this worker's lease is lost")]
    LeaseLost {
        /// The job.
        id: String,
    },
    /// No randomness for an id or a token.
    #[error("no randomness for a job id: {0}")]
    Random(#[from] getrandom::Error),
}

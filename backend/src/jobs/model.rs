//! What the job tables hold, as typed values: statuses, capabilities, a job's row, its events
//! and attempts, and what a worker holds while it runs one (a [`Lease`]).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life. `queued` and `running` are live; the rest are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a worker (or for its shards, while `pending_children > 0`).
    Queued,
    /// Held by a worker's lease.
    Running,
    /// Finished with a result.
    Done,
    /// Failed its last attempt; the error is kept.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Its worker stopped renewing the lease on the last attempt.
    Interrupted,
}

impl Status {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether the job will not change again by itself.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
            other => {
                return Err(format!(
                    "unknown job status `{other}`: expected queued, running, done, failed, cancelled or interrupted"
                ));
            }
        })
    }
}

/// What a job needs of its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Any machine.
    Cpu,
    /// A GPU (`fuselab worker --capabilities gpu`).
    Gpu,
}

impl Capability {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            other => Err(format!("unknown capability `{other}`: expected cpu or gpu")),
        }
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The user it belongs to (`None`: the operator's, from the CLI).
    pub owner: Option<i64>,
    /// Which handler runs it, e.g. `ensemble.analysis`.
    pub kind: String,
    /// The handler's typed configuration, as JSON.
    pub config: serde_json::Value,
    /// What its worker must offer.
    pub capability: Capability,
    /// Higher runs first.
    pub priority: i64,
    /// Claims before the job is given up (a worker that dies counts as one).
    pub max_attempts: i64,
}

impl NewJob {
    /// A CPU job of `kind` with priority 0 and 3 attempts.
    pub fn new(kind: &str, config: serde_json::Value) -> Self {
        Self {
            owner: None,
            kind: kind.to_owned(),
            config,
            capability: Capability::Cpu,
            priority: 0,
            max_attempts: 3,
        }
    }
}

/// A job's row. Times are Unix milliseconds of the database's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// 32 hex digits.
    pub id: String,
    /// Its user, if any.
    pub owner: Option<i64>,
    /// Its handler.
    pub kind: String,
    /// Its configuration (JSON).
    pub config: serde_json::Value,
    /// What its worker must offer.
    pub capability: Capability,
    /// Where it is.
    pub status: Status,
    /// Higher runs first.
    pub priority: i64,
    /// Claims so far.
    pub attempts: i64,
    /// Claims allowed.
    pub max_attempts: i64,
    /// The worker holding it, while running.
    pub worker: Option<String>,
    /// Whether someone asked it to stop.
    pub cancel_requested: bool,
    /// The last error, kept when it ends.
    pub error: Option<String>,
    /// The handler's latest progress (JSON).
    pub progress: Option<serde_json::Value>,
    /// The handler's latest checkpoint (JSON), where a new attempt resumes.
    pub checkpoint: Option<serde_json::Value>,
    /// The result (JSON), once done.
    pub result: Option<serde_json::Value>,
    /// The job that split into this one, for a shard.
    pub parent: Option<String>,
    /// Shards still to finish before this job runs again.
    pub pending_children: i64,
    /// When it was queued.
    pub created_at: i64,
    /// When it first started.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

/// The configuration field where a job keeps the key of its sealed artifacts (a mask job's
/// photos and key); `fuselab jobs` never prints it.
pub const SECRET_FIELD: &str = "seal";

impl Job {
    /// The job as shown to people: its configuration's [`SECRET_FIELD`] masked.
    #[must_use]
    pub fn shown(mut self) -> Self {
        if let Some(secret) = self.config.get_mut(SECRET_FIELD) {
            *secret = serde_json::Value::from("<secret>");
        }
        self
    }
}

/// One line of a job's history: lifecycle changes and the handler's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, …: the Server-Sent Events id.
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// `claimed`, `progress`, `checkpoint`, `done`, `failed`, `retry`, `cancelled`,
    /// `interrupted`, `requeued`, `waiting`, …
    pub kind: String,
    /// Details (JSON).
    pub data: serde_json::Value,
}

/// One claim of a job by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1, 2, …
    pub attempt: i64,
    /// Who held it.
    pub worker: String,
    /// When it was claimed.
    pub started_at: i64,
    /// When it ended, if it has.
    pub ended_at: Option<i64>,
    /// `done`, `failed`, `cancelled`, `interrupted` or `waiting` (for its shards).
    pub outcome: Option<String>,
    /// The error of a failed or interrupted attempt.
    pub error: Option<String>,
}

/// A claimed job and the token that fences every write of this claim: once the lease is lost
/// (expired and re-claimed, cancelled and reaped), writes carrying an older token change nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The job as claimed.
    pub job: Job,
    /// The claim's fencing token.
    pub token: i64,
    /// The claiming worker.
    pub worker: String,
}

/// How an attempt ended, as the handler reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished; the result (JSON).
    Done(serde_json::Value),
    /// Failed. `retry`: whether another attempt could succeed (a transient error).
    Failed {
        /// What went wrong, for the user.
        error: String,
        /// Whether to re-queue while attempts remain.
        retry: bool,
    },
    /// Stopped because a cancel was requested.
    Cancelled,
    /// Split into shards (queued by [`super::JobStore::split`]); runs again when they are done.
    Waiting,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this user's.
    pub owner: Option<i64>,
    /// Only in this status.
    pub status: Option<Status>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// Only shards of this job (else only top-level jobs).
    pub parent: Option<String>,
    /// At most this many (capped at 1,000).
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_job_masks_its_seal_key_and_keeps_the_rest() {
        let job = Job {
            id: "0".repeat(32),
            owner: Some(1),
            kind: "mask.train".to_owned(),
            config: serde_json::json!({ "seal": "ab".repeat(32), "photos": ["me.jpg"] }),
            capability: Capability::Cpu,
            status: Status::Queued,
            priority: 0,
            attempts: 0,
            max_attempts: 3,
            worker: None,
            cancel_requested: false,
            error: None,
            progress: None,
            checkpoint: None,
            result: None,
            parent: None,
            pending_children: 0,
            created_at: 0,
            started_at: None,
            finished_at: None,
            updated_at: 0,
        };
        let shown = job.clone().shown();
        assert_eq!(shown.config["seal"], "<secret>");
        assert_eq!(shown.config["photos"], job.config["photos"]);
        let plain = Job {
            config: serde_json::json!({ "pool": "p.json" }),
            ..job
        };
        assert_eq!(plain.clone().shown(), plain);
    }
}

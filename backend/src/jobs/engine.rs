//! Which database a job store talks to, and what goes wrong there: the engine of a URL, URLs
//! with their passwords hidden, the default SQLite file (created private), and [`StoreError`].

use std::path::Path;

use thiserror::Error;

use super::model::Status;

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A file (or memory): the default, one machine.
    Sqlite,
    /// A server: shared by workers on several machines.
    Postgres,
}

impl Engine {
    /// The engine a database URL names.
    ///
    /// # Errors
    /// [`StoreError::Url`] for any other scheme.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Url {
                url: redact(url),
                expected: "sqlite://PATH or postgres://USER@HOST/DATABASE",
            })
        }
    }

    /// The current time in Unix milliseconds, as an SQL expression.
    pub(super) fn now(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("the job database: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL names no supported database.
    #[error("`{url}` is not a job database URL: expected {expected}")]
    Url {
        /// The URL, its password hidden.
        url: String,
        /// The forms accepted.
        expected: &'static str,
    },
    /// The database's job tables were made by a newer fuselab.
    #[error(
        "the job tables have schema version {found}; this fuselab knows versions up to {known}"
    )]
    TooNew {
        /// Their version.
        found: i64,
        /// The newest this build knows.
        known: usize,
    },
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
    /// The file of a SQLite database could not be created.
    #[error("creating the job database {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No randomness for an id or a token.
    #[error("no randomness for a job id: {0}")]
    Random(#[from] getrandom::Error),
}

/// Hides the password of a database URL in messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &user_info[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The `sqlite://` URL of a file, with the characters the URL parser would read percent-encoded.
pub fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// Creates the SQLite file of `url` readable by its owner only, before SQLite opens it: the
/// jobs' configurations and results are users' data.
pub(super) fn create_private(url: &str) -> Result<(), StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = percent_decode(path);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .map(drop)
        .map_err(|source| StoreError::File {
            path: path.clone(),
            source,
        })
}

/// Undoes [`sqlite_url`]'s escapes (and any other `%XX`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! Saved ensemble reports, in the server's database: each report is its
//! `fuselab.ensemble.analysis/v1` JSON with a few columns for listing, and the user who saved it.

use std::{fmt::Write as _, path::Path, sync::Arc};

use fuselab_shared::{api::ReportSummary, ensemble::Analysis};
use rusqlite::{OptionalExtension as _, params};
use thiserror::Error;

use crate::db::{Database, DbError, now};

pub use crate::db::FILE_NAME;

/// Longest report title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// How much one user may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Largest report, in bytes of JSON.
    pub max_bytes: usize,
    /// Most reports per user.
    pub max_per_user: u64,
}

impl Default for ReportLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_per_user: 1000,
        }
    }
}

/// Why the store failed or refused.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No randomness for a new id.
    #[error("no random id: {0}")]
    Random(#[from] getrandom::Error),
    /// The report could not be encoded.
    #[error("encoding the report: {0}")]
    Encode(#[from] serde_json::Error),
    /// The report is larger than the server keeps.
    #[error(
        "the report has {bytes} bytes of JSON; this server keeps reports of at most {max} bytes \
         (the operator raises it with `fuselab serve --max-report-bytes N`)"
    )]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The title is too long.
    #[error("a report title has at most {MAX_TITLE_CHARS} characters; this one has {chars}")]
    TitleTooLong {
        /// Its length.
        chars: usize,
    },
    /// The user keeps as many reports as allowed.
    #[error(
        "you keep {max} reports, the most this server allows; delete some first (the operator \
         raises it with `fuselab serve --max-reports-per-user N`)"
    )]
    TooMany {
        /// The limit.
        max: u64,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Db(DbError::Sqlite(error))
    }
}

impl StoreError {
    /// Whether the refusal is about what the caller sent (so it is shown to them).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. } | Self::TitleTooLong { .. } | Self::TooMany { .. }
        )
    }
}

/// Whose reports a listing or a deletion may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everyone's (administrators, and servers without accounts).
    All,
    /// Those the user of this id saved.
    Owner(i64),
}

/// The saved reports.
#[derive(Debug)]
pub struct ReportStore {
    db: Arc<Database>,
    limits: ReportLimits,
}

/// Whether `id` has the shape of a report id (so it can be used in a URL and a query safely).
pub fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl ReportStore {
    /// Reports kept in `db`, within `limits`.
    pub fn new(db: Arc<Database>, limits: ReportLimits) -> Self {
        Self { db, limits }
    }

    /// Opens (or creates) the database at `path`, with the default limits.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::new(
            Arc::new(Database::open(path)?),
            ReportLimits::default(),
        ))
    }

    /// Saves an analysis for `owner` (`None` on a server without accounts) and returns its new
    /// id.
    ///
    /// # Errors
    /// Over a limit, or when encoding, randomness or SQLite fails.
    pub fn save(
        &self,
        analysis: &Analysis,
        title: Option<&str>,
        owner: Option<i64>,
    ) -> Result<String, StoreError> {
        let title = title.map(str::trim).filter(|t| !t.is_empty());
        if let Some(chars) = title
            .map(|t| t.chars().count())
            .filter(|&c| c > MAX_TITLE_CHARS)
        {
            return Err(StoreError::TitleTooLong { chars });
        }
        let json = serde_json::to_string(analysis)?;
        if json.len() > self.limits.max_bytes {
            return Err(StoreError::TooLarge {
                bytes: json.len(),
                max: self.limits.max_bytes,
            });
        }
        let mut bytes = [0_u8; 16];
        getrandom::fill(&mut bytes)?;
        let id = bytes.iter().fold(String::new(), |mut id, b| {
            let _ = write!(id, "{b:02x}");
            id
        });
        let report = &analysis.report;
        let title = title.map_or_else(
            || {
                let names: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
                let all = format!("{} models: {}", names.len(), names.join(", "));
                all.chars().take(MAX_TITLE_CHARS).collect()
            },
            str::to_owned,
        );
        let connection = self.db.lock();
        if let Some(owner) = owner {
            let held: u64 = connection.query_row(
                "SELECT COUNT(*) FROM reports WHERE owner_id = ?1",
                [owner],
                |row| row.get(0),
            )?;
            if held >= self.limits.max_per_user {
                return Err(StoreError::TooMany {
                    max: self.limits.max_per_user,
                });
            }
        }
        connection.execute(
            "INSERT INTO reports (id, created, title, n_models, n_samples, analysis, owner_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                now(),
                title,
                i64::try_from(report.n_models).unwrap_or(i64::MAX),
                i64::try_from(report.n_samples).unwrap_or(i64::MAX),
                json,
                owner,
            ],
        )?;
        Ok(id)
    }

    /// The analysis JSON of a saved report (anyone with its id may read it: the id is the share
    /// link).
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .lock()
            .query_row(
                "SELECT analysis FROM reports WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// The saved reports in `scope`, newest first.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn list(&self, scope: Scope) -> Result<Vec<ReportSummary>, StoreError> {
        let owner = match scope {
            Scope::All => None,
            Scope::Owner(id) => Some(id),
        };
        let connection = self.db.lock();
        let mut statement = connection.prepare(
            "SELECT reports.id, reports.created, title, n_models, n_samples, users.name
             FROM reports LEFT JOIN users ON users.id = reports.owner_id
             WHERE ?1 IS NULL OR reports.owner_id = ?1
             ORDER BY reports.created DESC, reports.id",
        )?;
        let rows = statement.query_map([owner], |row| {
            Ok(ReportSummary {
                id: row.get(0)?,
                created: row.get(1)?,
                title: row.get(2)?,
                n_models: row.get(3)?,
                n_samples: row.get(4)?,
                owner: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a report in `scope`; `false` when there was none with that id there.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn delete(&self, id: &str, scope: Scope) -> Result<bool, StoreError> {
        let owner = match scope {
            Scope::All => None,
            Scope::Owner(id) => Some(id),
        };
        Ok(self.db.lock().execute(
            "DELETE FROM reports WHERE id = ?1 AND (?2 IS NULL OR owner_id = ?2)",
            params![id, owner],
        )? > 0)
    }
}

//! Saved ensemble reports, in the server's database: each report is its
//! `fuselab.ensemble.analysis/v1` JSON with a few columns for listing, and the user who saved it.

use std::{fmt::Write as _, path::Path};

use fuselab_shared::{api::ReportSummary, ensemble::Analysis};
use futures_util::TryStreamExt as _;
use sqlx::{Connection as _, Row as _};
use thiserror::Error;

use crate::db::{Database, DbError, now, sqlite_url};

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

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(DbError::Sql(error))
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
    db: Database,
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
    pub fn new(db: Database, limits: ReportLimits) -> Self {
        Self { db, limits }
    }

    /// Opens (or creates) the SQLite database at `path`, with the default limits.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::new(
            Database::open(&sqlite_url(path)).await?,
            ReportLimits::default(),
        ))
    }

    /// Saves an analysis for `owner` (`None` on a server without accounts) and returns its new
    /// id.
    ///
    /// # Errors
    /// Over a limit, or when encoding, randomness or the database fails.
    pub async fn save(
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
        // One transaction, so two saves at once cannot both pass the limit.
        let mut tx = self.db.write().await?;
        if let Some(owner) = owner {
            let held: i64 = sqlx::query("SELECT COUNT(*) FROM reports WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if u64::try_from(held).unwrap_or(u64::MAX) >= self.limits.max_per_user {
                return Err(StoreError::TooMany {
                    max: self.limits.max_per_user,
                });
            }
        }
        sqlx::query(
            "INSERT INTO reports (id, created, title, n_models, n_samples, analysis, owner_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(now())
        .bind(title)
        .bind(i64::try_from(report.n_models).unwrap_or(i64::MAX))
        .bind(i64::try_from(report.n_samples).unwrap_or(i64::MAX))
        .bind(json)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The analysis JSON of a saved report (anyone with its id may read it: the id is the share
    /// link).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT analysis FROM reports WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    /// The saved reports in `scope`, newest first.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list(&self, scope: Scope) -> Result<Vec<ReportSummary>, StoreError> {
        let columns = "SELECT reports.id, reports.created, title, n_models, n_samples, users.name
             FROM reports LEFT JOIN users ON users.id = reports.owner_id";
        let order = "ORDER BY reports.created DESC, reports.id";
        let query = match scope {
            Scope::All => sqlx::query(sqlx::AssertSqlSafe(format!("{columns} {order}"))),
            Scope::Owner(owner) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{columns} WHERE reports.owner_id = $1 {order}"
            )))
            .bind(owner),
        };
        let rows = query.fetch_all(self.db.pool()).await?;
        let reports = rows
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>(ReportSummary {
                    id: row.try_get(0)?,
                    created: row.try_get(1)?,
                    title: row.try_get(2)?,
                    n_models: row.try_get(3)?,
                    n_samples: row.try_get(4)?,
                    owner: row.try_get(5)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(reports)
    }

    /// Deletes a report in `scope`; `false` when there was none with that id there.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn delete(&self, id: &str, scope: Scope) -> Result<bool, StoreError> {
        let query = match scope {
            Scope::All => sqlx::query("DELETE FROM reports WHERE id = $1").bind(id),
            Scope::Owner(owner) => {
                sqlx::query("DELETE FROM reports WHERE id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner)
            }
        };
        Ok(query.execute(self.db.pool()).await?.rows_affected() > 0)
    }

    /// Copies the reports of an earlier version's `reports.sqlite3` (without owners:
    /// administrators see them), one at a time, then renames that file so it is imported once.
    /// Returns how many were new.
    ///
    /// # Errors
    /// When either database fails or the file cannot be renamed.
    pub async fn import_legacy(&self, legacy: &Path) -> Result<u64, StoreError> {
        let mut source =
            sqlx::AnyConnection::connect(&sqlite_url(legacy).replace("mode=rwc", "mode=ro"))
                .await?;
        let mut imported = 0;
        {
            let mut rows = sqlx::query(
                "SELECT id, created, title, n_models, n_samples, analysis FROM reports",
            )
            .fetch(&mut source);
            while let Some(row) = rows.try_next().await? {
                imported += sqlx::query(
                    "INSERT INTO reports (id, created, title, n_models, n_samples, analysis)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(row.try_get::<String, _>(0)?)
                .bind(row.try_get::<i64, _>(1)?)
                .bind(row.try_get::<String, _>(2)?)
                .bind(row.try_get::<i64, _>(3)?)
                .bind(row.try_get::<i64, _>(4)?)
                .bind(row.try_get::<String, _>(5)?)
                .execute(self.db.pool())
                .await?
                .rows_affected();
            }
        }
        source.close().await?;
        let mut renamed = legacy.as_os_str().to_owned();
        renamed.push(".imported");
        std::fs::rename(legacy, &renamed).map_err(|source| DbError::File {
            action: "renaming the imported report database",
            path: legacy.display().to_string(),
            source,
        })?;
        Ok(imported)
    }
}

//! Saved ensemble reports: one SQLite file (`reports.sqlite3`) under the data directory, each
//! report stored as its `fuselab.ensemble.analysis/v1` JSON with a few columns for listing.

use std::{
    fmt::Write as _,
    path::Path,
    sync::{Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use fuselab_shared::{api::ReportSummary, ensemble::Analysis};
use rusqlite::{Connection, OptionalExtension as _, params};
use thiserror::Error;

/// The file under the data directory.
pub const FILE_NAME: &str = "reports.sqlite3";

/// Why the store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("the report database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No randomness for a new id.
    #[error("no random id: {0}")]
    Random(#[from] getrandom::Error),
    /// The report could not be encoded.
    #[error("encoding the report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The saved reports.
#[derive(Debug)]
pub struct ReportStore {
    connection: Mutex<Connection>,
}

/// Whether `id` has the shape of a report id (so it can be used in a URL and a query safely).
pub fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl ReportStore {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or the table created.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS reports (
                 id TEXT PRIMARY KEY,
                 created INTEGER NOT NULL,
                 title TEXT NOT NULL,
                 n_models INTEGER NOT NULL,
                 n_samples INTEGER NOT NULL,
                 analysis TEXT NOT NULL
             );",
        )?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (it has its own
        // transactions), so a poisoned lock is still usable.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves an analysis and returns its new id.
    ///
    /// # Errors
    /// When encoding, randomness or SQLite fails.
    pub fn save(&self, analysis: &Analysis, title: Option<&str>) -> Result<String, StoreError> {
        let mut bytes = [0_u8; 16];
        getrandom::fill(&mut bytes)?;
        let id = bytes.iter().fold(String::new(), |mut id, b| {
            let _ = write!(id, "{b:02x}");
            id
        });
        let report = &analysis.report;
        let title = title.map(str::trim).filter(|t| !t.is_empty()).map_or_else(
            || {
                let names: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
                format!("{} models: {}", names.len(), names.join(", "))
            },
            str::to_owned,
        );
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.connection().execute(
            "INSERT INTO reports (id, created, title, n_models, n_samples, analysis)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                created,
                title,
                i64::try_from(report.n_models).unwrap_or(i64::MAX),
                i64::try_from(report.n_samples).unwrap_or(i64::MAX),
                serde_json::to_string(analysis)?,
            ],
        )?;
        Ok(id)
    }

    /// The analysis JSON of a saved report.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn get(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "SELECT analysis FROM reports WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Every saved report, newest first.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn list(&self) -> Result<Vec<ReportSummary>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT id, created, title, n_models, n_samples FROM reports ORDER BY created DESC, id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(ReportSummary {
                id: row.get(0)?,
                created: row.get(1)?,
                title: row.get(2)?,
                n_models: row.get(3)?,
                n_samples: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a report; `false` when there was none with that id.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection()
            .execute("DELETE FROM reports WHERE id = ?1", params![id])?
            > 0)
    }
}

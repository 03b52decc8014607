//! The server's SQLite database (`fuselab.sqlite3` under the data directory): saved reports,
//! users, their sign-in sessions and API tokens. One connection behind a mutex: every statement
//! is short, and the slow work (password hashing, analyses) happens outside the lock.

use std::{
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::Connection;
use thiserror::Error;

/// The file under the data directory.
pub const FILE_NAME: &str = "fuselab.sqlite3";

/// The report database of earlier versions; its reports are imported once, then it is renamed
/// to `reports.sqlite3.imported`.
pub const LEGACY_REPORTS: &str = "reports.sqlite3";

/// Each entry brings the schema from its index to the next version (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS reports (
         id TEXT PRIMARY KEY,
         created INTEGER NOT NULL,
         title TEXT NOT NULL,
         n_models INTEGER NOT NULL,
         n_samples INTEGER NOT NULL,
         analysis TEXT NOT NULL
     );",
    "CREATE TABLE users (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         password TEXT NOT NULL,
         role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
         can_train INTEGER NOT NULL DEFAULT 0,
         created INTEGER NOT NULL
     );
     CREATE TABLE sessions (
         hash BLOB PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
         created INTEGER NOT NULL,
         expires INTEGER NOT NULL
     );
     CREATE TABLE tokens (
         id TEXT PRIMARY KEY,
         hash BLOB NOT NULL UNIQUE,
         user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         created INTEGER NOT NULL,
         last_used INTEGER
     );
     ALTER TABLE reports ADD COLUMN owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
     CREATE INDEX reports_owner ON reports (owner_id, created);",
];

/// Why the database failed.
#[derive(Debug, Error)]
pub enum DbError {
    /// SQLite refused.
    #[error("the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file operation on the database's files failed.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was written by a newer fuselab.
    #[error("the database has schema version {found}; this fuselab knows versions up to {known}")]
    TooNew {
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: usize,
    },
}

/// The open database.
#[derive(Debug)]
pub struct Database {
    connection: Mutex<Connection>,
}

impl Database {
    /// Opens (or creates, readable by its owner only) the database at `path` and brings its
    /// schema up to date.
    ///
    /// # Errors
    /// When the file cannot be opened, restricted or migrated.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let connection = Connection::open(path)?;
        restrict(path)?;
        Self::with_connection(connection)
    }

    /// A database in memory, for tests and servers without a data directory.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn in_memory() -> Result<Self, DbError> {
        Self::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(mut connection: Connection) -> Result<Self, DbError> {
        connection.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )?;
        let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let start = usize::try_from(version).unwrap_or(usize::MAX);
        if start > MIGRATIONS.len() {
            return Err(DbError::TooNew {
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(start) {
            let transaction = connection.transaction()?;
            transaction.execute_batch(migration)?;
            transaction.pragma_update(None, "user_version", index + 1)?;
            transaction.commit()?;
        }
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    /// The connection, for one short piece of work.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (it has its own
        // transactions), so a poisoned lock is still usable.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies the reports of an earlier version's `reports.sqlite3` (without owners: admins see
    /// them), then renames that file so it is imported once. Returns how many were imported.
    ///
    /// # Errors
    /// When SQLite fails or the file cannot be renamed.
    pub fn import_legacy_reports(&self, legacy: &Path) -> Result<usize, DbError> {
        let connection = self.lock();
        connection.execute(
            "ATTACH DATABASE ?1 AS legacy",
            [legacy.to_string_lossy().as_ref()],
        )?;
        let imported = connection.execute(
            "INSERT OR IGNORE INTO reports (id, created, title, n_models, n_samples, analysis)
             SELECT id, created, title, n_models, n_samples, analysis FROM legacy.reports",
            [],
        );
        connection.execute("DETACH DATABASE legacy", [])?;
        let imported = imported?;
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

/// Seconds since 1970 (UTC), as stored in the database.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt as _;
    // The file holds password hashes and session digests: its owner only.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        DbError::File {
            action: "restricting to its owner the database file",
            path: path.display().to_string(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> Result<(), DbError> {
    Ok(())
}

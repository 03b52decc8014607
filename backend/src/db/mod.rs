//! The server's database: SQLite (by default the data directory's `fuselab.sqlite3`) or
//! Postgres (`--database postgres://…`, shared with workers on other machines), through sqlx's
//! `any` driver with one SQL text for both engines where they agree. One pool per process
//! serves the accounts, the saved reports and the jobs; each of them migrates its own tables,
//! and `fuselab_schema` records how far.

mod cli;
mod engine;
mod schema;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row as _, Transaction};
use thiserror::Error;

pub use cli::{DatabaseArgs, database_url, open};
pub use engine::{Engine, redact, sqlite_url};

/// The file under the data directory.
pub const FILE_NAME: &str = "fuselab.sqlite3";

/// The report database of earlier versions; its reports are imported once, then it is renamed
/// to `reports.sqlite3.imported`.
pub const LEGACY_REPORTS: &str = "reports.sqlite3";

/// Connections per pool: SQLite has one writer anyway; readers (lists, event streams) and a
/// worker's lease renewals get through while a write waits.
const POOL_SIZE: u32 = 8;

/// Why the database failed.
#[derive(Debug, Error)]
pub enum DbError {
    /// The database refused or could not be reached.
    #[error("the database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The URL names no supported database.
    #[error("`{url}` is not a database URL: expected {expected}")]
    Url {
        /// The URL, its password hidden.
        url: String,
        /// The forms accepted.
        expected: &'static str,
    },
    /// The tables were made by a newer fuselab.
    #[error(
        "the database's {component} tables have schema version {found}; this fuselab knows \
         versions up to {known}"
    )]
    TooNew {
        /// Whose tables.
        component: &'static str,
        /// Their version.
        found: i64,
        /// The newest this build knows.
        known: usize,
    },
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
}

/// The open database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    engine: Engine,
    url: String,
}

/// A transaction on the database.
pub type Tx = Transaction<'static, Any>;

impl Database {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) and brings the server's tables
    /// (users, sessions, tokens, reports) up to date. A SQLite file is created readable by its
    /// owner only.
    ///
    /// # Errors
    /// A bad URL, an unreachable database, a failed migration.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of_url(url)?;
        if engine == Engine::Sqlite {
            engine::create_private(url)?;
        }
        // One connection for an in-memory database, which each connection would see afresh.
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = AnyPoolOptions::new()
            .max_connections(if memory { 1 } else { POOL_SIZE })
            .idle_timeout((!memory).then_some(Duration::from_mins(10)))
            .max_lifetime((!memory).then_some(Duration::from_mins(30)))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // WAL lets readers run beside the one writer.
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 10000;",
                        )
                        .execute(connection)
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let db = Self {
            pool,
            engine,
            url: url.to_owned(),
        };
        schema::migrate(&db).await?;
        Ok(db)
    }

    /// A database in memory, for tests and servers without a data directory.
    ///
    /// # Errors
    /// When SQLite fails.
    pub async fn in_memory() -> Result<Self, DbError> {
        Self::open("sqlite::memory:").await
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind it.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL it was opened with (for a listener connection of its own).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// transaction that reads before writing waits for the lock instead of failing to upgrade.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn write(&self) -> Result<Tx, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
    }

    /// Brings `component`'s tables up to date with `migrations` (each entry takes them from
    /// its index to the next version), in one transaction. `adopted` is the version to assume
    /// when `fuselab_schema` has no row for the component yet (tables an earlier version made
    /// and recorded elsewhere). Several processes may start at once (a server and its
    /// workers): on Postgres an advisory lock serialises them; on SQLite the transaction's
    /// write lock does.
    ///
    /// # Errors
    /// [`DbError::TooNew`] when a newer fuselab migrated them; database errors.
    pub async fn migrate(
        &self,
        component: &'static str,
        migrations: &[&'static str],
        adopted: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.write().await?;
        if self.engine == Engine::Postgres {
            // Held until the transaction ends: one migrating process at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(7291534001)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS fuselab_schema (component TEXT PRIMARY KEY, version BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let version: i64 = sqlx::query("SELECT version FROM fuselab_schema WHERE component = $1")
            .bind(component)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row: AnyRow| row.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(adopted);
        let start = usize::try_from(version).unwrap_or(usize::MAX);
        if start > migrations.len() {
            return Err(DbError::TooNew {
                component,
                found: version,
                known: migrations.len(),
            });
        }
        for migration in &migrations[start..] {
            sqlx::raw_sql(*migration).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO fuselab_schema (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version",
        )
        .bind(component)
        .bind(i64::try_from(migrations.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Seconds since 1970 (UTC), as the accounts and reports store them.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

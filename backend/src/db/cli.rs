//! `--database`: which database a command uses, on the command line.

use std::path::Path;

use anyhow::Context as _;
use clap::Args;

use super::{Database, FILE_NAME, redact, sqlite_url};

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database of users, reports and jobs: `sqlite://PATH` or `postgres://USER@HOST/DB`
    /// (default: the data directory's fuselab.sqlite3)
    #[arg(long, value_name = "URL", env = "FUSELAB_DATABASE_URL")]
    pub database: Option<String>,
}

/// The database's URL: the one given, else the data directory's SQLite file.
pub fn database_url(given: Option<&str>, data_dir: &Path) -> String {
    given.map_or_else(|| sqlite_url(&data_dir.join(FILE_NAME)), str::to_owned)
}

/// Opens the database of `args`, creating the data directory for the default file.
///
/// # Errors
/// An unusable URL or database, with the URL (password hidden) in the message.
pub async fn open(args: &DatabaseArgs, data_dir: &Path) -> anyhow::Result<Database> {
    if args.database.is_none() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    }
    let url = database_url(args.database.as_deref(), data_dir);
    Database::open(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&url)))
}

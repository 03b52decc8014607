//! Fresh job databases for tests: a SQLite file in a temporary folder, and a new database on
//! the `PostgreSQL` server of `FUSELAB_TEST_POSTGRES_URL` (`scripts/with-postgres.sh` starts a
//! throwaway cluster and sets it; `scripts/test.sh` runs the tests inside it).

use std::path::PathBuf;

use sqlx::Connection as _;

/// The engines every job test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Sqlite,
    Postgres,
}

pub const BOTH: [Which; 2] = [Which::Sqlite, Which::Postgres];

/// A database that lives as long as this value (the SQLite folder is removed on drop; a
/// Postgres database is dropped with the throwaway cluster).
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub folder: PathBuf,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn unique(name: &str) -> String {
    let mut bytes = [0_u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let suffix = bytes.iter().fold(String::new(), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    });
    format!("fuselab_{name}_{suffix}")
}

/// The Postgres server's URL; without one the test fails and says how to get one.
pub fn postgres_url() -> String {
    std::env::var("FUSELAB_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "FUSELAB_TEST_POSTGRES_URL is not set: run the job tests inside \
             `scripts/with-postgres.sh cargo test …` (a throwaway PostgreSQL cluster)"
        )
    })
}

/// A new, empty database of `which`, named after the test.
pub async fn fresh(which: Which, name: &str) -> TestDb {
    let name = unique(name);
    let folder = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&folder).unwrap();
    let url = match which {
        Which::Sqlite => fuselab::db::sqlite_url(&folder.join("jobs.sqlite3")),
        Which::Postgres => {
            let server = postgres_url();
            let mut admin = sqlx::PgConnection::connect(&server)
                .await
                .expect("the test PostgreSQL server answers");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
            with_database(&server, &name)
        }
    };
    TestDb { url, folder }
}

/// `server` with its database path replaced by `name` (the query, e.g. `?host=/tmp/…`, kept).
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").unwrap() + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

//! The server's own tables (users, sessions, API tokens, saved reports) on both engines, from
//! an empty database: migrations, every account and report operation, reopening, a database
//! from a newer fuselab; and the files of earlier versions: a `fuselab.sqlite3` whose tables
//! were migrated under `PRAGMA user_version`, and a `reports.sqlite3` imported once.

mod jobs_db;

use fuselab::{
    accounts::{AccountError, Accounts},
    db::{Database, DbError},
    reports::{ReportLimits, ReportStore, Scope},
};
use fuselab_shared::{api::Role, ensemble::Analysis};
use jobs_db::{BOTH, fresh};
use serde_json::json;
use sqlx::Connection as _;

fn analysis() -> Analysis {
    let pool = fuselab_shared::ensemble::Pool::new(
        serde_json::from_value(json!({
            "labels": [0, 1, 2, 0, 1, 2, 0, 1],
            "models": [
                {"name": "a", "predictions": [0, 1, 2, 0, 1, 2, 1, 2]},
                {"name": "b", "predictions": [0, 1, 2, 1, 2, 2, 0, 1]},
                {"name": "c", "predictions": [1, 1, 2, 0, 1, 0, 0, 1]}
            ]
        }))
        .unwrap(),
    )
    .unwrap();
    let options =
        serde_json::from_value(json!({"top_k": 3, "min_size": 2, "max_size": 3})).unwrap();
    fuselab_shared::ensemble::analysis(&pool, &options, &mut |_, _| {}).unwrap()
}

#[tokio::test]
async fn accounts_and_reports_live_in_either_engine() {
    for which in BOTH {
        let test_db = fresh(which, "server_tables").await;
        let db = Database::open(&test_db.url).await.unwrap();
        let accounts = Accounts::new(db.clone());
        let limits = ReportLimits {
            max_per_user: 2,
            ..ReportLimits::default()
        };
        let reports = ReportStore::new(db.clone(), limits);

        let root = accounts
            .add("root", "administrator", Role::Admin, false)
            .await
            .unwrap();
        let ada = accounts
            .add("ada", "analytical", Role::User, true)
            .await
            .unwrap();
        assert_ne!(root.id, ada.id, "{which:?}");
        assert!(matches!(
            accounts.add("ada", "other one", Role::User, false).await,
            Err(AccountError::UserExists { .. })
        ));
        assert_eq!(accounts.count().await.unwrap(), 2);
        assert_eq!(accounts.get("ada").await.unwrap(), ada);
        assert_eq!(
            accounts.verify("ada", "analytical").await.unwrap(),
            Some(ada.clone())
        );
        assert_eq!(accounts.verify("ada", "wrong one").await.unwrap(), None);

        let session = accounts.start_session(&ada).await.unwrap();
        assert_eq!(
            accounts.session_user(&session).await.unwrap(),
            Some(ada.clone())
        );
        let (token, secret) = accounts.create_token(&ada, "notebook").await.unwrap();
        assert_eq!(
            accounts.token_user(&secret).await.unwrap(),
            Some(ada.clone())
        );
        assert!(accounts.tokens(&ada).await.unwrap()[0].last_used.is_some());
        accounts.set_password("ada", "engine no. 2").await.unwrap();
        assert_eq!(accounts.session_user(&session).await.unwrap(), None);
        assert!(accounts.revoke_token(&ada, &token.id).await.unwrap());
        assert_eq!(accounts.token_user(&secret).await.unwrap(), None);

        let analysis = analysis();
        let first = reports
            .save(&analysis, Some("first"), Some(ada.id))
            .await
            .unwrap();
        reports.save(&analysis, None, Some(ada.id)).await.unwrap();
        assert!(matches!(
            reports.save(&analysis, None, Some(ada.id)).await,
            Err(fuselab::reports::StoreError::TooMany { max: 2 })
        ));
        let theirs = reports.list(Scope::Owner(ada.id)).await.unwrap();
        assert_eq!(theirs.len(), 2);
        assert!(theirs.iter().all(|r| r.owner.as_deref() == Some("ada")));
        assert_eq!(theirs.iter().find(|r| r.id == first).unwrap().n_models, 3);
        assert!(
            reports
                .list(Scope::Owner(root.id))
                .await
                .unwrap()
                .is_empty()
        );
        let stored: Analysis =
            serde_json::from_str(&reports.get(&first).await.unwrap().unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(stored).unwrap(),
            serde_json::to_value(&analysis).unwrap()
        );
        assert!(!reports.delete(&first, Scope::Owner(root.id)).await.unwrap());
        assert!(reports.delete(&first, Scope::Owner(ada.id)).await.unwrap());

        // A removed user's reports stay, owned by nobody; the last admin stays.
        accounts.remove("ada").await.unwrap();
        let left = reports.list(Scope::All).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].owner, None);
        assert!(matches!(
            accounts.remove("root").await,
            Err(AccountError::LastAdmin { .. })
        ));

        db.pool().close().await;
        reopen_and_refuse_newer(&test_db.url, which).await;
    }
}

/// Reopening migrates nothing and finds everything; a database a newer fuselab migrated is
/// refused, naming its version.
async fn reopen_and_refuse_newer(url: &str, which: jobs_db::Which) {
    let again = Database::open(url).await.unwrap();
    assert_eq!(Accounts::new(again.clone()).count().await.unwrap(), 1);
    sqlx::query("UPDATE fuselab_schema SET version = 99 WHERE component = 'server'")
        .execute(again.pool())
        .await
        .unwrap();
    again.pool().close().await;
    let newer = Database::open(url).await.unwrap_err();
    assert!(
        matches!(
            newer,
            DbError::TooNew {
                component: "server",
                found: 99,
                ..
            }
        ),
        "{which:?}: {newer}"
    );
}

#[tokio::test]
async fn a_database_file_of_an_earlier_version_is_adopted() {
    let test_db = fresh(jobs_db::Which::Sqlite, "server_adopt").await;
    let hash = fuselab::accounts::password::hash("analytical").unwrap();
    let mut old = sqlx::SqliteConnection::connect(&test_db.url).await.unwrap();
    // The tables as the rusqlite versions made them, recorded in `user_version` only.
    sqlx::raw_sql(
        "CREATE TABLE reports (id TEXT PRIMARY KEY, created INTEGER NOT NULL, title TEXT NOT NULL,
             n_models INTEGER NOT NULL, n_samples INTEGER NOT NULL, analysis TEXT NOT NULL);
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
             password TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
             can_train INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);
         CREATE TABLE sessions (hash BLOB PRIMARY KEY,
             user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
             created INTEGER NOT NULL, expires INTEGER NOT NULL);
         CREATE TABLE tokens (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE,
             user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
             name TEXT NOT NULL, created INTEGER NOT NULL, last_used INTEGER);
         ALTER TABLE reports ADD COLUMN owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL;
         CREATE INDEX reports_owner ON reports (owner_id, created);
         PRAGMA user_version = 2;",
    )
    .execute(&mut old)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO users (name, password, role, can_train, created) VALUES ('ada', $1, 'user', 1, 5)",
    )
    .bind(hash)
    .execute(&mut old)
    .await
    .unwrap();
    old.close().await.unwrap();

    let db = Database::open(&test_db.url).await.unwrap();
    let accounts = Accounts::new(db.clone());
    let ada = accounts.verify("ada", "analytical").await.unwrap().unwrap();
    assert!(ada.can_train);
    assert_eq!(ada.created, 5);
    let reports = ReportStore::new(db, ReportLimits::default());
    reports
        .save(&analysis(), Some("kept"), Some(ada.id))
        .await
        .unwrap();
    assert_eq!(reports.list(Scope::All).await.unwrap()[0].title, "kept");
}

#[tokio::test]
async fn reports_of_an_earlier_version_are_imported_once() {
    for which in BOTH {
        let test_db = fresh(which, "server_import").await;
        let legacy = test_db.folder.join("reports.sqlite3");
        let mut old = sqlx::SqliteConnection::connect(&fuselab::db::sqlite_url(&legacy))
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE reports (id TEXT PRIMARY KEY, created INTEGER NOT NULL,
                 title TEXT NOT NULL, n_models INTEGER NOT NULL, n_samples INTEGER NOT NULL,
                 analysis TEXT NOT NULL);
             INSERT INTO reports VALUES ('0123456789abcdef0123456789abcdef', 7, 'old', 3, 8, '{}');",
        )
        .execute(&mut old)
        .await
        .unwrap();
        old.close().await.unwrap();

        let reports = ReportStore::new(
            Database::open(&test_db.url).await.unwrap(),
            ReportLimits::default(),
        );
        assert_eq!(reports.import_legacy(&legacy).await.unwrap(), 1);
        assert!(!legacy.exists());
        assert!(test_db.folder.join("reports.sqlite3.imported").is_file());
        let listed = reports.list(Scope::All).await.unwrap();
        assert_eq!(
            (
                listed.len(),
                listed[0].title.as_str(),
                listed[0].owner.clone()
            ),
            (1, "old", None),
            "{which:?}"
        );
        assert_eq!(
            reports
                .get("0123456789abcdef0123456789abcdef")
                .await
                .unwrap()
                .as_deref(),
            Some("{}")
        );
    }
}

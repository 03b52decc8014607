//! The job queue's own cost: 1,000 empty jobs queued, then claimed, run (a handler that does
//! nothing) and finished by one in-process worker, on a SQLite file and, when
//! `FUSELAB_TEST_POSTGRES_URL` names a server, on Postgres (a new database there). Prints
//! milliseconds per job; asserts nothing about time.
//!
//! `scripts/with-postgres.sh cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p
//! fuselab --bench jobs`

use std::sync::Arc;
use std::time::{Duration, Instant};

use fuselab::jobs::{
    self, Capability, Filter, Handler, Handlers, Job, JobContext, JobStore, NewJob, Outcome,
    Status, WorkerOptions,
};
use sqlx::Connection as _;
use tokio::sync::watch;

const JOBS: usize = 1000;

/// Does nothing: what is left is the queue.
struct Empty;

impl Handler for Empty {
    fn run(&self, _job: &Job, _context: &mut JobContext) -> Outcome {
        Outcome::Done(serde_json::Value::Null)
    }
}

async fn measure(label: &str, url: &str) -> anyhow::Result<()> {
    let store = JobStore::open(url).await?;
    let started = Instant::now();
    for i in 0..JOBS {
        store
            .enqueue(&NewJob::new("bench.empty", serde_json::json!({ "i": i })))
            .await?;
    }
    let queued = started.elapsed();

    let mut handlers = Handlers::new();
    handlers.insert("bench.empty", Arc::new(Empty) as Arc<dyn Handler>);
    let mut options = WorkerOptions::new(vec![Capability::Cpu])?;
    options.poll = Duration::from_millis(5);
    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(jobs::run(store.clone(), options, handlers, stopped));
    loop {
        let left = store
            .list(&Filter {
                status: Some(Status::Queued),
                limit: 1,
                ..Filter::default()
            })
            .await?;
        let running = store
            .list(&Filter {
                status: Some(Status::Running),
                limit: 1,
                ..Filter::default()
            })
            .await?;
        if left.is_empty() && running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ran = started.elapsed();
    stop.send(true)?;
    worker.await??;
    let done = store
        .list(&Filter {
            status: Some(Status::Done),
            limit: 1000,
            ..Filter::default()
        })
        .await?
        .len();
    anyhow::ensure!(done == JOBS, "{done} of {JOBS} jobs done");
    println!(
        "{label:<10} queue {:.2} ms/job   claim + run + finish {:.2} ms/job   ({JOBS} jobs: {:.2} s + {:.2} s)",
        queued.as_secs_f64() * 1000.0 / JOBS as f64,
        ran.as_secs_f64() * 1000.0 / JOBS as f64,
        queued.as_secs_f64(),
        ran.as_secs_f64()
    );
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let folder = std::env::temp_dir().join(format!("fuselab-bench-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let sqlite = fuselab::db::sqlite_url(&folder.join("jobs.sqlite3"));
    let result = measure("sqlite", &sqlite).await;
    std::fs::remove_dir_all(&folder)?;
    result?;
    match std::env::var("FUSELAB_TEST_POSTGRES_URL") {
        Ok(server) => {
            let name = format!("fuselab_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&server).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            let (base, query) = server.split_once('?').unwrap_or((&server, ""));
            let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
            measure("postgres", &format!("{base}/{name}?{query}")).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
                .execute(&mut admin)
                .await?;
        }
        Err(_) => println!("postgres   skipped: run inside scripts/with-postgres.sh"),
    }
    Ok(())
}

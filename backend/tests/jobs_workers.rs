//! The job system with real processes on both engines: `fuselab worker` processes share a
//! sharded `ensemble sweep --queue`, one is killed with SIGKILL in the middle of a shard and
//! the other re-claims it and resumes from its checkpoint, and the merged result equals the
//! single-process sweep; `fuselab jobs cancel|delete` from another process stop a running job.

mod jobs_db;
mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fuselab::ensemble::sharded::CHUNK;
use fuselab::jobs::{Filter, Job, JobStore, Status, StoreError};
use fuselab_shared::rng::SplitMix64;
use jobs_db::{BOTH, TestDb, fresh};
use serde_json::{Value, json};
use support::wait_for;

/// A pool of `models` classifiers with correlated errors, as JSON.
fn write_pool(folder: &Path, models: usize, samples: usize) -> PathBuf {
    let mut rng = SplitMix64(17);
    let classes = 4;
    let labels: Vec<u32> = (0..samples).map(|_| rng.below(classes) as u32).collect();
    let hard: Vec<bool> = (0..samples).map(|_| rng.chance(0.3)).collect();
    let models: Vec<Value> = (0..models)
        .map(|m| {
            let predictions: Vec<u32> = labels
                .iter()
                .zip(&hard)
                .map(|(&label, &hard)| {
                    if rng.chance(if hard { 0.5 } else { 0.15 }) {
                        (label + 1 + rng.below(classes - 1) as u32) % classes as u32
                    } else {
                        label
                    }
                })
                .collect();
            json!({ "name": format!("model{m:02}"), "predictions": predictions })
        })
        .collect();
    let path = folder.join("pool.json");
    std::fs::write(
        &path,
        json!({ "labels": labels, "models": models }).to_string(),
    )
    .unwrap();
    path
}

fn fuselab(db: &TestDb) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fuselab"));
    command
        .arg("--data-dir")
        .arg(db.folder.join("data"))
        .env("RUST_LOG", "warn")
        .env_remove("FUSELAB_DATABASE_URL");
    command
}

fn output(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Queues `ensemble sweep --queue` of `pool` with `options`; returns the job's id.
fn queue_sweep(db: &TestDb, pool: &Path, options: &[&str]) -> String {
    let id = output(
        fuselab(db)
            .args(["ensemble", "sweep", "--queue", "--database", &db.url])
            .args(options)
            .arg(pool),
    );
    id.trim().to_owned()
}

/// A `fuselab worker` process and the name it announced.
struct Worker {
    child: Child,
    name: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_worker(db: &TestDb) -> Worker {
    let mut child = fuselab(db)
        .args([
            "worker",
            "--database",
            &db.url,
            "--lease-seconds",
            "2",
            "--poll-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let name = line
        .trim()
        .strip_prefix("worker ")
        .expect("the worker announces its name")
        .to_owned();
    Worker { child, name }
}

async fn shards(store: &JobStore, parent: &str) -> Vec<Job> {
    store
        .list(&Filter {
            parent: Some(parent.to_owned()),
            limit: 1000,
            ..Filter::default()
        })
        .await
        .unwrap()
}

/// Which workers finished a shard.
async fn finishers(store: &JobStore, shards: &[Job]) -> Vec<String> {
    let mut names = Vec::new();
    for shard in shards {
        for attempt in store.attempts(&shard.id).await.unwrap() {
            if attempt.outcome.as_deref() == Some("done") {
                names.push(attempt.worker);
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_sharded_sweep_and_one_survives_a_sigkill() {
    for which in BOTH {
        let db = fresh(which, "workers").await;
        let pool = write_pool(&db.folder, 22, 400);
        let single: Value = serde_json::from_str(&output(
            fuselab(&db)
                .args(["ensemble", "sweep", "--format", "json"])
                .arg(&pool),
        ))
        .unwrap();
        assert_eq!(single["teams"], json!(4_194_281));

        let id = queue_sweep(
            &db,
            &pool,
            &["--shard-teams", "262144", "--checkpoint-ms", "100"],
        );
        let store = JobStore::open(&db.url).await.unwrap();
        let first = start_worker(&db);
        let second = start_worker(&db);
        let mut workers = vec![first, second];

        // SIGKILL (by the drop) a worker frozen while it holds a checkpointed shard.
        let (victim, shard) = freeze_a_shard_holder(&store, &id, &workers).await;
        let killed = workers.remove(victim);
        let killed_name = killed.name.clone();
        drop(killed); // SIGKILL

        let result = wait_for("the merged result", Duration::from_mins(4), async || {
            let job = store.get(&id, None).await.unwrap();
            assert!(
                !job.status.is_terminal() || job.status == Status::Done,
                "{which:?}: {job:?}"
            );
            job.result
        })
        .await;
        assert_eq!(result["teams"], single["teams"]);
        assert_eq!(result["shards"], json!(16));
        assert_eq!(
            result["summary"], single["summary"],
            "{which:?}: the shards merged differ from one pass"
        );

        // The killed shard: its first attempt was interrupted, the survivor finished it, and
        // it resumed past its first chunk instead of starting over.
        let attempts = store.attempts(&shard).await.unwrap();
        assert_eq!(
            attempts
                .first()
                .map(|a| (a.worker.as_str(), a.outcome.as_deref())),
            Some((killed_name.as_str(), Some("interrupted")))
        );
        assert_eq!(
            attempts
                .last()
                .map(|a| (a.worker.as_str(), a.outcome.as_deref())),
            Some((workers[0].name.as_str(), Some("done")))
        );
        let events = store.events(&shard, 0, 10_000).await.unwrap();
        let reclaimed = events.iter().rposition(|e| e.kind == "claimed").unwrap();
        let resumed_at = events[reclaimed..]
            .iter()
            .find(|e| e.kind == "progress")
            .unwrap()
            .data["done"]
            .as_u64()
            .unwrap();
        assert!(
            resumed_at > CHUNK,
            "{which:?}: the second attempt started over ({resumed_at} teams after its first chunk)"
        );
        // No shard ran to the end twice.
        let all = shards(&store, &id).await;
        assert_eq!(finishers(&store, &all).await.len(), 16, "{which:?}");
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_delete_from_another_process_stop_a_running_job() {
    for which in BOTH {
        let db = fresh(which, "stop").await;
        let pool = write_pool(&db.folder, 21, 400);
        let store = JobStore::open(&db.url).await.unwrap();
        let mut worker = start_worker(&db);
        for action in ["cancel", "delete"] {
            let id = queue_sweep(&db, &pool, &["--shard-teams", "4000000"]);
            wait_for(
                "the job to make progress",
                Duration::from_mins(1),
                async || {
                    let job = store.get(&id, None).await.unwrap();
                    (job.status == Status::Running && job.progress.is_some()).then_some(())
                },
            )
            .await;
            output(fuselab(&db).args(["jobs", action, "--database", &db.url, &id]));
            wait_for(
                "the job to stop",
                Duration::from_secs(30),
                async || match store.get(&id, None).await {
                    Ok(job) if action == "cancel" && job.status == Status::Cancelled => Some(()),
                    Err(StoreError::NotFound { .. }) if action == "delete" => Some(()),
                    Ok(job) => {
                        assert!(!job.status.is_terminal(), "{which:?}: {job:?}");
                        None
                    }
                    Err(e) => panic!("{e}"),
                },
            )
            .await;
            assert!(
                worker.child.try_wait().unwrap().is_none(),
                "{which:?}: the worker died with its job"
            );
        }
        // SIGTERM: the worker stops cleanly.
        signal(&worker.child, "TERM");
        let status = worker.child.wait().unwrap();
        assert!(status.success(), "{which:?}: {status}");
        store.close().await;
    }
}

/// Once every worker has finished a shard, freezes (SIGSTOP) one that holds a shard with a
/// checkpoint and returns its index and the shard. The shard is read again after the freeze,
/// so the worker cannot finish it between the look and the SIGKILL that follows.
async fn freeze_a_shard_holder(store: &JobStore, id: &str, workers: &[Worker]) -> (usize, String) {
    loop {
        let (victim, shard) = wait_for(
            "a checkpointed shard on a worker that has finished one",
            Duration::from_mins(2),
            async || {
                let shards = shards(store, id).await;
                let done = finishers(store, &shards).await;
                if !workers.iter().all(|w| done.contains(&w.name)) {
                    return None;
                }
                shards.into_iter().find_map(|s| {
                    let holder = s.worker.clone()?;
                    (s.status == Status::Running && s.checkpoint.is_some())
                        .then(|| (workers.iter().position(|w| w.name == holder).unwrap(), s.id))
                })
            },
        )
        .await;
        signal(&workers[victim].child, "STOP");
        let now = store.get(&shard, None).await.unwrap();
        if now.status == Status::Running && now.worker.as_ref() == Some(&workers[victim].name) {
            return (victim, shard);
        }
        signal(&workers[victim].child, "CONT");
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

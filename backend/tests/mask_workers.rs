//! Mask jobs over the job system with real processes, on both engines: `fuselab serve
//! --no-worker` takes the requests and two `fuselab worker` processes (other data folders, the
//! same database and artifact folder) run them. The jobs spread over both workers and none runs
//! twice; a worker killed with SIGKILL after a checkpoint leaves its job to the other, which
//! resumes from the sealed checkpoint and hands over the same key as an uninterrupted twin.

mod jobs_db;
mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fuselab::jobs::{Job, JobStore, Status};
use jobs_db::{BOTH, fresh};
use serde_json::Value;
use support::{http, multipart, served_address, wait_for, walk};

fn models_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("FUSELAB_DATA_DIR").expect(
        "FUSELAB_DATA_DIR is not set: run `fuselab --data-dir DIR models fetch` and point \
         FUSELAB_DATA_DIR at DIR (scripts/test.sh does both)",
    ))
    .join("models")
}

/// A data folder of its own holding only (a link to) the face models.
fn data_folder(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(models_dir(), dir.join("models")).unwrap();
    dir
}

/// A child process killed (SIGKILL) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `fuselab --data-dir DATA ARGS…` and returns it with its first stdout line.
fn start(data: &Path, args: &[&str]) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fuselab"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("FUSELAB_DATABASE_URL")
        .env_remove("FUSELAB_ARTIFACTS")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Process(child), line.trim().to_owned())
}

/// Queues a mask job of the three Obama photos; returns its id.
fn post_job(addr: &str, fields: &[(&str, &str)]) -> String {
    let photos: Vec<(&str, Vec<u8>)> = ["obama.jpg", "obama2.jpg", "obama3.jpg"]
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(models_dir().join("photos").join(name)).unwrap();
            (name, bytes)
        })
        .collect();
    let (content_type, body) = multipart(&photos, fields);
    let (status, answer) = http(
        addr,
        "POST",
        "/api/masks",
        &format!("Content-Type: {content_type}\r\n"),
        &body,
    );
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(status, 202, "{answer}");
    let created: Value = serde_json::from_str(&answer).unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn done(store: &JobStore, id: &str) -> Job {
    wait_for(
        &format!("mask job {id}"),
        Duration::from_mins(5),
        async || {
            let job = store.get(id, None).await.unwrap();
            assert!(
                !job.status.is_terminal() || job.status == Status::Done,
                "{job:?}"
            );
            (job.status == Status::Done).then_some(job)
        },
    )
    .await
}

/// The key of a finished job, checked against its result.
fn key(addr: &str, job: &Job) -> String {
    let (status, bytes) = http(addr, "GET", &format!("/api/masks/{}/key", job.id), "", &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let header = fuselab_shared::mask::key::read_header(&bytes).unwrap();
    assert_eq!(
        Some(header.sha256.as_str()),
        job.result.as_ref().and_then(|r| r["sha256"].as_str())
    );
    header.sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_and_two_workers_share_mask_jobs_and_one_survives_a_sigkill() {
    for which in BOTH {
        let db = fresh(which, "masks").await;
        let artifacts = db.folder.join("artifacts");
        let artifacts_arg = artifacts.display().to_string();
        let shared = ["--database", &db.url, "--artifacts", &artifacts_arg];
        let (_server, line) = start(
            &data_folder(&db.folder, "server"),
            &[
                &[
                    "serve",
                    "--auth",
                    "off",
                    "--addr",
                    "127.0.0.1:0",
                    "--no-worker",
                ][..],
                &shared,
            ]
            .concat(),
        );
        let addr = served_address(&line);
        let worker = |name: &str| {
            let (process, line) = start(
                &data_folder(&db.folder, name),
                &[
                    &["worker", "--lease-seconds", "2", "--poll-ms", "100"][..],
                    &shared,
                ]
                .concat(),
            );
            let name = line.strip_prefix("worker ").unwrap().to_owned();
            (process, name)
        };
        let mut workers = vec![worker("first"), worker("second")];
        let store = JobStore::open(&db.url).await.unwrap();

        // Four jobs at once: both workers take some, each job runs once.
        let ids: Vec<String> = (0..4)
            .map(|seed| {
                post_job(
                    &addr,
                    &[
                        ("epochs", "2"),
                        ("models", "dlib"),
                        ("seed", &seed.to_string()),
                    ],
                )
            })
            .collect();
        let mut finishers = std::collections::BTreeSet::new();
        for id in &ids {
            let job = done(&store, id).await;
            let attempts = store.attempts(id).await.unwrap();
            assert_eq!(attempts.len(), 1, "{which:?}: {attempts:?}");
            finishers.insert(attempts[0].worker.clone());
            key(&addr, &job);
        }
        assert_eq!(finishers.len(), 2, "{which:?}: one worker ran every job");

        // SIGKILL the worker holding a job once it has saved a checkpoint.
        let fields = [("epochs", "4"), ("models", "dlib"), ("seed", "9")];
        let id = post_job(&addr, &fields);
        let holder = wait_for("a checkpoint", Duration::from_mins(3), async || {
            let job = store.get(&id, None).await.unwrap();
            job.checkpoint.is_some().then_some(job.worker)?
        })
        .await;
        let victim = workers.iter().position(|(_, n)| *n == holder).unwrap();
        drop(workers.remove(victim));
        let resumed = done(&store, &id).await;
        let attempts = store.attempts(&id).await.unwrap();
        assert_eq!(attempts.len(), 2, "{which:?}: {attempts:?}");
        assert_eq!(attempts[0].outcome.as_deref(), Some("interrupted"));
        assert_eq!(attempts[1].worker, workers[0].1);
        // The second attempt started past the first epoch, from the sealed checkpoint.
        let events = store.events(&id, 0, 10_000).await.unwrap();
        let reclaimed = events.iter().rposition(|e| e.kind == "claimed").unwrap();
        let first_epoch = events[reclaimed..]
            .iter()
            .find(|e| e.kind == "progress" && e.data["state"] == "training")
            .map(|e| e.data["epoch"].as_u64().unwrap())
            .unwrap();
        assert!(
            first_epoch >= 2,
            "{which:?}: started over at epoch {first_epoch}"
        );
        // The same key as a twin that ran without interruption.
        let twin = post_job(&addr, &fields);
        let twin = done(&store, &twin).await;
        assert_eq!(key(&addr, &resumed), key(&addr, &twin), "{which:?}");

        // Every job's photos, checkpoints and keys are gone.
        let left: Vec<PathBuf> = walk(&artifacts);
        assert!(left.is_empty(), "{which:?}: {left:?}");
        store.close().await;
    }
}

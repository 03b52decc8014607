//! The job store's protocol on both engines (SQLite file, real PostgreSQL): migrations from an
//! empty database, claims, leases and their fencing, the reaper, retries and attempts, cancel
//! and delete, shards and their fan-in, routing by capability and kind, and concurrent claims.

mod jobs_db;

use std::collections::BTreeSet;
use std::time::Duration;

use fuselab::jobs::{Capability, Filter, JobStore, NewJob, Outcome, Status, StoreError};
use jobs_db::{BOTH, fresh};
use serde_json::json;

const CPU: &[Capability] = &[Capability::Cpu];
const KINDS: &[&str] = &["test.steps"];
const LONG: Duration = Duration::from_mins(1);

fn job() -> NewJob {
    NewJob::new("test.steps", json!({ "steps": 3 }))
}

async fn expire(store: &JobStore) -> Vec<String> {
    // Leases of 1 ms are over by the time the reaper looks.
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.reap().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_from_empty_and_again() {
    for which in BOTH {
        let db = fresh(which, "migrate").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let id = store.enqueue(&job()).await.unwrap();
        store.close().await;
        // A second open (another process, a restart) finds the tables at their version.
        let store = JobStore::open(&db.url).await.unwrap();
        assert_eq!(
            store.get(&id, None).await.unwrap().status,
            Status::Queued,
            "{which:?}"
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_through_claim_progress_checkpoint_and_done() {
    for which in BOTH {
        let db = fresh(which, "lifecycle").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let mut new = job();
        new.owner = Some(7);
        let id = store.enqueue(&new).await.unwrap();
        let lease = store
            .claim("w1", CPU, KINDS, LONG)
            .await
            .unwrap()
            .expect("a job to claim");
        assert_eq!(
            (lease.job.id.as_str(), lease.job.attempts),
            (id.as_str(), 1)
        );
        assert!(
            store.claim("w2", CPU, KINDS, LONG).await.unwrap().is_none(),
            "{which:?}: claimed twice"
        );
        assert!(!store.renew(&lease, LONG).await.unwrap());
        assert!(
            !store
                .progress(&lease, &json!({ "done": 1, "total": 3 }))
                .await
                .unwrap(),
            "{which:?}: no cancel asked"
        );
        store
            .checkpoint(&lease, &json!({ "step": 1 }))
            .await
            .unwrap();
        let status = store
            .finish(&lease, &Outcome::Done(json!({ "answer": 42 })))
            .await
            .unwrap();
        assert_eq!(status, Status::Done);

        let done = store.get(&id, None).await.unwrap();
        assert_eq!(done.status, Status::Done);
        assert_eq!(done.result, Some(json!({ "answer": 42 })));
        assert_eq!(done.progress, Some(json!({ "done": 1, "total": 3 })));
        assert_eq!(done.checkpoint, Some(json!({ "step": 1 })));
        assert!(done.finished_at.is_some() && done.worker.is_none());
        // Owners see their own jobs only.
        assert!(matches!(
            store.get(&id, Some(8)).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.get(&id, Some(7)).await.unwrap().id, id);
        let events: Vec<String> = store
            .events(&id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            events,
            ["queued", "claimed", "progress", "checkpoint", "done"],
            "{which:?}"
        );
        let later = store.events(&id, 3, 100).await.unwrap();
        assert_eq!(later.first().map(|e| e.seq), Some(4));
        let attempts = store.attempts(&id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome.as_deref(), Some("done"));
        assert_eq!(attempts[0].worker, "w1");
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_requeued_and_its_old_token_writes_nothing() {
    for which in BOTH {
        let db = fresh(which, "fencing").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let id = store.enqueue(&job()).await.unwrap();
        let first = store
            .claim("w1", CPU, KINDS, Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        store
            .checkpoint(&first, &json!({ "step": 2 }))
            .await
            .unwrap_or(());
        assert_eq!(expire(&store).await, std::slice::from_ref(&id), "{which:?}");
        let requeued = store.get(&id, None).await.unwrap();
        assert_eq!(requeued.status, Status::Queued);
        assert!(
            requeued
                .error
                .as_deref()
                .unwrap()
                .contains("w1 stopped renewing")
        );

        let second = store.claim("w2", CPU, KINDS, LONG).await.unwrap().unwrap();
        assert_eq!(second.job.attempts, 2);
        assert_ne!(second.token, first.token);
        // The first holder is fenced off from every write.
        assert!(matches!(
            store.renew(&first, LONG).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            store.progress(&first, &json!({})).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            store.checkpoint(&first, &json!({})).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            store.finish(&first, &Outcome::Done(json!(1))).await,
            Err(StoreError::LeaseLost { .. })
        ));
        store
            .finish(&second, &Outcome::Done(json!(2)))
            .await
            .unwrap();
        let done = store.get(&id, None).await.unwrap();
        assert_eq!(
            (done.status, done.result),
            (Status::Done, Some(json!(2))),
            "{which:?}"
        );
        let outcomes: Vec<Option<String>> = store
            .attempts(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.outcome)
            .collect();
        assert_eq!(
            outcomes,
            [Some("interrupted".to_owned()), Some("done".to_owned())]
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_attempt_keeps_its_error() {
    for which in BOTH {
        let db = fresh(which, "attempts").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let mut new = job();
        new.max_attempts = 2;
        let id = store.enqueue(&new).await.unwrap();
        // Attempt 1 fails transiently: back to the queue, after a back-off.
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        let failed = Outcome::Failed {
            error: "disk full".into(),
            retry: true,
        };
        assert_eq!(store.finish(&lease, &failed).await.unwrap(), Status::Queued);
        assert!(
            store.claim("w1", CPU, KINDS, LONG).await.unwrap().is_none(),
            "{which:?}: claimed during its back-off"
        );
        // Attempt 2 (once due) dies with its worker: no attempts left, so it ends interrupted.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        sqlx::query("UPDATE job_runs SET run_after = 0")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let lease = store
            .claim("w2", CPU, KINDS, Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.job.attempts, 2);
        expire(&store).await;
        let ended = store.get(&id, None).await.unwrap();
        assert_eq!(ended.status, Status::Interrupted, "{which:?}");
        assert!(
            ended
                .error
                .as_deref()
                .unwrap()
                .contains("attempt 2: worker w2 stopped renewing")
        );
        // A retry grants one more attempt; a fatal error then ends it failed, error kept.
        store.retry(&id, None).await.unwrap();
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        let fatal = Outcome::Failed {
            error: "bad config: steps = -1".into(),
            retry: false,
        };
        assert_eq!(store.finish(&lease, &fatal).await.unwrap(), Status::Failed);
        let failed = store.get(&id, None).await.unwrap();
        assert_eq!(failed.error.as_deref(), Some("bad config: steps = -1"));
        assert!(matches!(
            store.cancel(&id, None).await,
            Err(StoreError::Status { .. })
        ));
        assert_eq!(store.attempts(&id).await.unwrap().len(), 3);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_delete_reach_queued_and_running_jobs() {
    for which in BOTH {
        let db = fresh(which, "cancel").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let queued = store.enqueue(&job()).await.unwrap();
        assert_eq!(
            store.cancel(&queued, None).await.unwrap(),
            Status::Cancelled
        );
        assert!(store.claim("w1", CPU, KINDS, LONG).await.unwrap().is_none());

        let running = store.enqueue(&job()).await.unwrap();
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        // Another process asks; the holder learns it at its next renewal.
        let other = JobStore::open(&db.url).await.unwrap();
        assert_eq!(
            other.cancel(&running, Some(999)).await.ok(),
            None,
            "a stranger cannot cancel it"
        );
        assert_eq!(other.cancel(&running, None).await.unwrap(), Status::Running);
        assert!(
            store.renew(&lease, LONG).await.unwrap(),
            "{which:?}: the renewal carries the cancel"
        );
        assert!(
            store.progress(&lease, &json!({})).await.unwrap(),
            "{which:?}: so does every progress report"
        );
        assert_eq!(
            store.finish(&lease, &Outcome::Cancelled).await.unwrap(),
            Status::Cancelled
        );

        // Delete: a queued job at once, a running one when its worker lets go.
        assert!(other.delete(&queued, None).await.unwrap());
        assert!(matches!(
            store.get(&queued, None).await,
            Err(StoreError::NotFound { .. })
        ));
        let busy = store.enqueue(&job()).await.unwrap();
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        assert!(!other.delete(&busy, None).await.unwrap());
        assert!(store.renew(&lease, LONG).await.unwrap());
        store.finish(&lease, &Outcome::Cancelled).await.unwrap();
        assert!(
            matches!(
                store.get(&busy, None).await,
                Err(StoreError::NotFound { .. })
            ),
            "{which:?}"
        );
        assert!(store.events(&busy, 0, 10).await.unwrap().is_empty());
        other.close().await;
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_fan_in_to_their_parent() {
    for which in BOTH {
        let db = fresh(which, "shards").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let parent = store
            .enqueue(&NewJob::new("test.steps", json!({ "split": 3 })))
            .await
            .unwrap();
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        let shards: Vec<(NewJob, i64, i64)> =
            (0..3).map(|i| (job(), i * 10, i * 10 + 10)).collect();
        let ids = store
            .split(&lease, &shards, &json!({ "split": 3 }))
            .await
            .unwrap();
        assert_eq!(
            store.finish(&lease, &Outcome::Waiting).await.unwrap(),
            Status::Queued
        );
        let listed = store
            .list(&Filter {
                parent: Some(parent.clone()),
                limit: 10,
                ..Filter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 3);
        let top: Vec<String> = store
            .list(&Filter {
                limit: 10,
                ..Filter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            top,
            std::slice::from_ref(&parent),
            "{which:?}: shards are not top-level jobs"
        );

        // The shards run (in any order); the parent waits for the last.
        let mut results = Vec::new();
        for _ in 0..3 {
            let shard = store.claim("w2", CPU, KINDS, LONG).await.unwrap().unwrap();
            assert_ne!(
                shard.job.id, parent,
                "{which:?}: the parent ran before its shards"
            );
            let at = ids.iter().position(|id| *id == shard.job.id).unwrap();
            results.push(at);
            store
                .finish(&shard, &Outcome::Done(json!(at)))
                .await
                .unwrap();
        }
        let again = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        assert_eq!(again.job.id, parent);
        assert_eq!(again.job.checkpoint, Some(json!({ "split": 3 })));
        assert_eq!(
            store.shard_results(&parent).await.unwrap(),
            [json!(0), json!(1), json!(2)]
        );
        store
            .finish(&again, &Outcome::Done(json!("merged")))
            .await
            .unwrap();
        // The split did not use up an attempt.
        let done = store.get(&parent, None).await.unwrap();
        assert_eq!((done.attempts, done.max_attempts), (2, 4));

        // A shard that fails for good fails its parent and cancels its siblings.
        let parent = store.enqueue(&job()).await.unwrap();
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        let shards: Vec<(NewJob, i64, i64)> = (0..2).map(|i| (job(), i, i + 1)).collect();
        store.split(&lease, &shards, &json!({})).await.unwrap();
        store.finish(&lease, &Outcome::Waiting).await.unwrap();
        let shard = store.claim("w2", CPU, KINDS, LONG).await.unwrap().unwrap();
        store
            .finish(
                &shard,
                &Outcome::Failed {
                    error: "out of memory".into(),
                    retry: false,
                },
            )
            .await
            .unwrap();
        let failed = store.get(&parent, None).await.unwrap();
        assert_eq!(failed.status, Status::Failed, "{which:?}");
        assert!(
            failed
                .error
                .as_deref()
                .unwrap()
                .ends_with("ended failed: out of memory")
        );
        assert!(
            store.claim("w2", CPU, KINDS, LONG).await.unwrap().is_none(),
            "the sibling was cancelled"
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_go_only_to_workers_that_can_run_them() {
    for which in BOTH {
        let db = fresh(which, "routing").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let mut gpu = job();
        gpu.capability = Capability::Gpu;
        let gpu = store.enqueue(&gpu).await.unwrap();
        let other = store
            .enqueue(&NewJob::new("test.other", json!({})))
            .await
            .unwrap();
        assert!(
            store
                .claim("cpu", CPU, KINDS, LONG)
                .await
                .unwrap()
                .is_none(),
            "{which:?}"
        );
        assert!(
            store
                .claim(
                    "gpu",
                    &[Capability::Cpu, Capability::Gpu],
                    &["test.none"],
                    LONG
                )
                .await
                .unwrap()
                .is_none()
        );
        let lease = store
            .claim("gpu", &[Capability::Cpu, Capability::Gpu], KINDS, LONG)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.job.id, gpu);
        let lease = store
            .claim("cpu", CPU, &["test.other"], LONG)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.job.id, other);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_take_each_job_once() {
    for which in BOTH {
        let db = fresh(which, "concurrent").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let mut queued = BTreeSet::new();
        for _ in 0..40 {
            queued.insert(store.enqueue(&job()).await.unwrap());
        }
        let claimers: Vec<_> = (0..4)
            .map(|w| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    let store = JobStore::open(&url).await.unwrap();
                    let mut mine = Vec::new();
                    while let Some(lease) = store
                        .claim(&format!("w{w}"), CPU, KINDS, LONG)
                        .await
                        .unwrap()
                    {
                        store
                            .finish(&lease, &Outcome::Done(json!(w)))
                            .await
                            .unwrap();
                        mine.push(lease.job.id);
                    }
                    store.close().await;
                    mine
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for claimer in claimers {
            claimed.extend(claimer.await.unwrap());
        }
        assert_eq!(
            claimed.len(),
            40,
            "{which:?}: a job was claimed twice or not at all"
        );
        assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), queued);
        store.close().await;
    }
}

#[tokio::test]
async fn bad_urls_are_named() {
    let error = JobStore::open("mysql://root:secret@db/fuselab")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("mysql://root:***@db/fuselab"), "{message}");
    assert!(
        message.contains("expected sqlite://PATH or postgres://"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_hear_of_events_and_cancels_from_other_processes() {
    for which in BOTH {
        let db = fresh(which, "notify").await;
        let store = JobStore::open(&db.url).await.unwrap();
        let other = JobStore::open(&db.url).await.unwrap();
        let id = store.enqueue(&job()).await.unwrap();
        let lease = store.claim("w1", CPU, KINDS, LONG).await.unwrap().unwrap();
        let mut news = store.watch(&id);
        let mut cancels = store.watch(&id);
        // Let the listener connect before anything is written (notifications are not queued).
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.progress(&lease, &json!({ "step": 1 })).await.unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(4), news.changed()).await;
        assert!(woke.is_ok(), "{which:?}: a progress event wakes a waiter");
        other.cancel(&id, None).await.unwrap();
        let heard = tokio::time::timeout(Duration::from_secs(4), cancels.cancelled()).await;
        match which {
            jobs_db::Which::Postgres => {
                assert!(
                    heard.is_ok(),
                    "{which:?}: a cancel from another process is notified"
                );
            }
            // SQLite has no notifications: the renewal or the next progress report carries it.
            jobs_db::Which::Sqlite => assert!(heard.is_err()),
        }
        store.close().await;
        other.close().await;
    }
}

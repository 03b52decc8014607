//! A run's progress as Server-Sent Events, read from its job's row and events (the worker
//! writes every metrics line there as it is logged).

use std::{collections::HashMap, collections::VecDeque, convert::Infallible};

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use fuselab_shared::api::AlignRunStatus;
use futures_util::Stream;

use super::{AlignJobConfig, get, internal, queue, status_of, summary};
use crate::jobs::{JobWatch, StoreError};
use crate::server::{Actor, AppError, AppState, JobQueue};

/// Events read at once.
const PAGE: u32 = 1000;

/// `GET /api/align/runs/{id}/events`: `status` (`{"status": "queued"}` or `"running"`) when
/// that changes; `metrics`, one per metrics line of its stages in the order they were logged,
/// with the job event's number as its id (a reconnecting client's `Last-Event-ID` skips what it
/// has); at the end `done` or `error` (failed or interrupted), carrying the run's summary.
pub async fn events(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let queue = queue(&state)?.clone();
    get(&queue, &id, &actor).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let follower = Follower {
        watch: queue.store.watch(&id),
        queue,
        id,
        after,
        status: None,
        pending: VecDeque::new(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|event| (Ok(event), follower))
    });
    Ok(Sse::new(crate::server::bounded(stream)).keep_alive(KeepAlive::default()))
}

/// One client's position in a run's events.
struct Follower {
    queue: JobQueue,
    /// Wakes the stream when the job has news.
    watch: JobWatch,
    id: String,
    /// The last job event read.
    after: i64,
    /// The last status sent.
    status: Option<AlignRunStatus>,
    pending: VecDeque<Event>,
    ended: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            self.poll().await;
            if self.pending.is_empty() {
                self.watch.changed().await;
            }
        }
    }

    /// Reads the new events, then the row: a row read after the events is at least as new.
    async fn poll(&mut self) {
        match self.read_events().await {
            Ok(true) => {}
            // More events wait; the row's news comes after them.
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, run = %self.id, "reading an alignment run's events");
                return;
            }
        }
        let job = match self.queue.store.get(&self.id, None).await {
            Ok(job) => job,
            Err(StoreError::NotFound { .. }) => {
                self.pending.push_back(
                    Event::default()
                        .event("error")
                        .data(r#"{"error":"the run was deleted"}"#),
                );
                self.ended = true;
                return;
            }
            Err(error) => {
                tracing::warn!(%error, run = %self.id, "reading an alignment run");
                return;
            }
        };
        let status = status_of(&job);
        if status.finished() {
            // The worker logged its last lines before it recorded the end.
            loop {
                match self.read_events().await {
                    Ok(false) => {}
                    Ok(true) => break,
                    Err(error) => {
                        tracing::warn!(%error, run = %self.id, "reading an alignment run's events");
                        return;
                    }
                }
            }
            let Ok(config) = serde_json::from_value::<AlignJobConfig>(job.config.clone()) else {
                return;
            };
            let kind = if status == AlignRunStatus::Done {
                "done"
            } else {
                "error"
            };
            self.pending.push_back(
                Event::default()
                    .event(kind)
                    .data(serde_json::to_string(&summary(&job, &config)).unwrap_or_default()),
            );
            self.ended = true;
        } else {
            self.send_status(status);
        }
    }

    /// Queues the metrics of the next page of events; `Ok(true)` when it was the last page.
    async fn read_events(&mut self) -> Result<bool, StoreError> {
        let events = self.queue.store.events(&self.id, self.after, PAGE).await?;
        let last = events.len() < PAGE as usize;
        for event in events {
            self.after = event.seq;
            if event.kind != "progress" {
                continue;
            }
            let Some(metrics) = event.data.get("metrics") else {
                continue;
            };
            // A metrics line means it runs, whatever the row said before.
            self.send_status(AlignRunStatus::Running);
            self.pending.push_back(
                Event::default()
                    .event("metrics")
                    .id(event.seq.to_string())
                    .data(metrics.to_string()),
            );
        }
        Ok(last)
    }

    fn send_status(&mut self, status: AlignRunStatus) {
        if self.status != Some(status) {
            self.status = Some(status);
            self.pending.push_back(
                Event::default()
                    .event("status")
                    .data(format!(r#"{{"status":"{}"}}"#, status.name())),
            );
        }
    }
}

/// `metrics.jsonl` of run `id`: every metrics line its attempts logged, in order, each step of
/// a stage once (a resumed stage repeats the steps after its last checkpoint; the repeat, which
/// the model went on from, replaces the first).
pub(super) async fn metrics_file(queue: &JobQueue, id: &str) -> Result<String, AppError> {
    let mut lines: Vec<String> = Vec::new();
    let mut index: HashMap<(String, u64), usize> = HashMap::new();
    let mut after = 0;
    loop {
        let events = queue
            .store
            .events(id, after, 10_000)
            .await
            .map_err(|e| internal("reading a run's metrics", e))?;
        let last = events.len() < 10_000;
        for event in events {
            after = event.seq;
            let Some(metrics) = event
                .data
                .get("metrics")
                .filter(|_| event.kind == "progress")
            else {
                continue;
            };
            let key = (
                metrics["stage"].as_str().unwrap_or_default().to_owned(),
                metrics["step"].as_u64().unwrap_or_default(),
            );
            let line = metrics.to_string();
            if let Some(&at) = index.get(&key) {
                lines[at] = line;
            } else {
                index.insert(key, lines.len());
                lines.push(line);
            }
        }
        if last {
            break;
        }
    }
    Ok(lines.iter().fold(String::new(), |mut out, line| {
        out.push_str(line);
        out.push('\n');
        out
    }))
}

//! Harmful fine-tuning runs: `fuselab align benchmark|attack|booster|vaccine|lisa` as
//! `align.run` jobs of the job system (see `crate::align::job`), their progress as Server-Sent
//! Events, and their results, charts and report from the artifact store.
//!
//! - `POST /api/align/runs` (`{"action": "benchmark", "config": "<TOML>"}`): checks the
//!   configuration (a 400 names the line and key) and queues the run; 202 with its id. The
//!   worker sets `out` itself (a run writes only into its own folder) and reads data files and
//!   model folders only from its `<data-dir>/align-data/` (relative paths without `..`). A run
//!   whose configuration asks for `device = "wgpu"` goes to a GPU worker.
//! - `GET /api/align/runs`: every run, newest first, with a finished run's result rows.
//! - `GET /api/align/runs/{id}`: one run with its configuration and files.
//! - `GET /api/align/runs/{id}/events`: Server-Sent Events (see [`events`]).
//! - `GET /api/align/runs/{id}/files/{name}`: `hs.svg`, `fa.svg`, `report.html`, `results.csv`,
//!   `results.md`, `results.json`, `metrics.jsonl` (every stage's lines, in order),
//!   `samples.png` (a pose benchmark's frames with true and predicted skeletons).
//! - `GET /api/align/runs/{id}/models/{name}/{file}`: a pose benchmark's trained model, `name`
//!   one of its runs (`<rung>-seed<s>`, as `results.json` lists them) and `file` `model.json` or
//!   `model.safetensors`, for the Pose page to run in the browser.
//! - `POST /api/align/runs/{id}/resume`: queues a failed or interrupted run again; it continues
//!   from its last checkpoint.
//! - `DELETE /api/align/runs/{id}`: cancels a queued or running run (training stops after its
//!   current step) and deletes it with its folder.
//!
//! Runs belong to the user who started them: others (administrators excepted) get 404, and
//! starting or resuming one needs the training permission. A run whose worker dies is taken up
//! by another (or the same, restarted) from its last checkpoint while attempts remain.

mod events;

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use fuselab_ml::pose::saved;
use fuselab_shared::api::{
    AlignAction, AlignRunCreated, AlignRunDetail, AlignRunStatus, AlignRunSummary, StartAlignRun,
};

pub use events::events;

use super::{Actor, AppError, AppState, JobQueue};
use crate::align::job::{AlignJobConfig, AlignJobResult, KIND, check_config, folder, out_prefix};
use crate::jobs::{Capability, Filter, Job, NewJob, Status, StoreError};

/// The files a run serves, with their content types.
const FILES: [(&str, &str); 9] = [
    ("hs.svg", "image/svg+xml"),
    ("fa.svg", "image/svg+xml"),
    ("report.html", "text/html; charset=utf-8"),
    ("results.csv", "text/csv; charset=utf-8"),
    ("results.md", "text/markdown; charset=utf-8"),
    ("results.json", "application/json"),
    ("report.json", "application/json"),
    ("metrics.jsonl", "application/x-ndjson"),
    ("samples.png", "image/png"),
];
/// Largest result file served (tables, charts and reports are far smaller).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Runs one user may have queued or running at once.
pub const MAX_LIVE_RUNS_PER_USER: usize = 4;
/// Runs the server holds queued or running at once.
pub const MAX_LIVE_RUNS: usize = 32;
/// How long `DELETE` waits for a running run to stop before answering 202.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// A run folder no job owns is swept once it is this old (a run deleted while its worker was
/// gone, or one whose worker saved a checkpoint after the delete).
const ORPHAN_AGE: Duration = Duration::from_mins(10);

fn queue(state: &AppState) -> Result<&JobQueue, AppError> {
    JobQueue::of(state, "alignment runs")
}

fn internal(context: &'static str, error: impl Into<anyhow::Error>) -> AppError {
    AppError::Internal {
        context,
        source: error.into(),
    }
}

fn not_found(id: &str) -> AppError {
    AppError::client(StatusCode::NOT_FOUND, format!("no alignment run `{id}`"))
}

/// Run `id`, when `actor` may see it (404 otherwise).
async fn get(queue: &JobQueue, id: &str, actor: &Actor) -> Result<(Job, AlignJobConfig), AppError> {
    let job = queue
        .visible(id, KIND, actor)
        .await
        .map_err(|e| internal("reading an alignment run", e))?
        .ok_or_else(|| not_found(id))?;
    let config = serde_json::from_value(job.config.clone())
        .map_err(|e| internal("reading an alignment run's configuration", e))?;
    Ok((job, config))
}

/// What the page shows of a run's state. A cancelled one (from `fuselab jobs cancel`) can be
/// resumed like an interrupted one.
fn status_of(job: &Job) -> AlignRunStatus {
    match job.status {
        Status::Queued => AlignRunStatus::Queued,
        Status::Running => AlignRunStatus::Running,
        Status::Done => AlignRunStatus::Done,
        Status::Failed => AlignRunStatus::Failed,
        Status::Interrupted | Status::Cancelled => AlignRunStatus::Interrupted,
    }
}

fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// A run as the list shows it.
fn summary(job: &Job, config: &AlignJobConfig) -> AlignRunSummary {
    let status = status_of(job);
    let results = job
        .result
        .as_ref()
        .and_then(|r| serde_json::from_value::<AlignJobResult>(r.clone()).ok())
        .map(|r| r.results)
        .unwrap_or_default();
    let error = match job.status {
        Status::Failed => job.error.clone(),
        Status::Interrupted => Some(
            "its worker stopped during the run and no attempts were left; resume it to continue \
             from its last checkpoint"
                .to_owned(),
        ),
        Status::Cancelled => {
            Some("the run was cancelled; resume it to continue from its last checkpoint".to_owned())
        }
        _ => None,
    };
    AlignRunSummary {
        id: job.id.clone(),
        owner: config.owner.clone(),
        action: config.action,
        status,
        created: seconds(job.created_at),
        started: job.started_at.map(seconds),
        finished: job.finished_at.filter(|_| status.finished()).map(seconds),
        error,
        results,
    }
}

/// 429 when `actor` has [`MAX_LIVE_RUNS_PER_USER`] live runs or the server [`MAX_LIVE_RUNS`].
async fn admit(queue: &JobQueue, actor: &Actor) -> Result<(), AppError> {
    let live = queue
        .live(KIND)
        .await
        .map_err(|e| internal("counting alignment runs", e))?;
    let mine = live
        .iter()
        .filter(|j| j.owner.is_some() && j.owner == actor.owner_id())
        .count();
    if mine >= MAX_LIVE_RUNS_PER_USER {
        return Err(AppError::busy(
            format!(
                "you have {mine} alignment runs queued or running, the most at once; wait for \
                 one to end or delete one"
            ),
            60,
        ));
    }
    if live.len() >= MAX_LIVE_RUNS {
        return Err(AppError::busy(
            format!(
                "the server holds {MAX_LIVE_RUNS} queued or running alignment runs, its limit; try again later"
            ),
            300,
        ));
    }
    Ok(())
}

fn accepted(id: String) -> (StatusCode, Json<AlignRunCreated>) {
    (
        StatusCode::ACCEPTED,
        Json(AlignRunCreated {
            id,
            status: AlignRunStatus::Queued,
        }),
    )
}

/// `POST /api/align/runs`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<StartAlignRun>, JsonRejection>,
) -> Result<(StatusCode, Json<AlignRunCreated>), AppError> {
    actor.require_training()?;
    let Json(request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    let queue = queue(&state)?;
    let (config, device) = check_config(request.action, &request.config)
        .map_err(|e| AppError::client(StatusCode::BAD_REQUEST, e.message))?;
    admit(queue, &actor).await?;
    let config = AlignJobConfig {
        action: request.action,
        config,
        owner: actor.name().map(str::to_owned),
    };
    let mut job = NewJob::new(
        KIND,
        serde_json::to_value(&config).map_err(|e| internal("queueing an alignment run", e))?,
    );
    job.owner = actor.owner_id();
    if device == Some(fuselab_ml::Compute::Wgpu) {
        job.capability = Capability::Gpu;
    }
    let id = queue
        .store
        .enqueue(&job)
        .await
        .map_err(|e| internal("queueing an alignment run", e))?;
    tracing::info!(user = actor.name(), action = request.action.name(), %id, "alignment run queued");
    Ok(accepted(id))
}

/// `POST /api/align/runs/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AlignRunCreated>), AppError> {
    let queue = queue(&state)?;
    let (job, _) = get(queue, &id, &actor).await?;
    actor.require_training()?;
    let status = status_of(&job);
    if !status.resumable() {
        return Err(AppError::client(
            StatusCode::CONFLICT,
            format!(
                "run {id} is {}: only a failed or interrupted run can be resumed",
                status.name()
            ),
        ));
    }
    admit(queue, &actor).await?;
    match queue.store.retry(&id, None).await {
        Ok(()) => {}
        Err(StoreError::Status { status, .. }) => {
            return Err(AppError::client(
                StatusCode::CONFLICT,
                format!("run {id} is {status}: only a failed or interrupted run can be resumed"),
            ));
        }
        Err(StoreError::NotFound { .. }) => return Err(not_found(&id)),
        Err(e) => return Err(internal("resuming an alignment run", e)),
    }
    tracing::info!(user = actor.name(), %id, "alignment run queued again");
    Ok(accepted(id))
}

/// `DELETE /api/align/runs/{id}`: cancels the run if it is live and deletes it with its folder.
/// 204 once it is gone; 202 when its current training step has not ended within
/// [`CANCEL_WAIT`] (its folder is swept once the worker lets go).
pub async fn remove(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let queue = queue(&state)?;
    get(queue, &id, &actor).await?;
    let gone = match queue.store.delete(&id, None).await {
        Ok(gone) => gone,
        Err(StoreError::NotFound { .. }) => true,
        Err(e) => return Err(internal("deleting an alignment run", e)),
    };
    tracing::info!(user = actor.name(), %id, "deleting an alignment run");
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    let mut gone = gone;
    while !gone && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        gone = matches!(
            queue.store.get(&id, None).await,
            Err(StoreError::NotFound { .. })
        );
    }
    if !gone {
        return Ok(StatusCode::ACCEPTED);
    }
    queue
        .artifacts
        .delete_all(&folder(&id))
        .await
        .map_err(|e| internal("deleting an alignment run's folder", e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes run folders no job owns any more. Failures are logged: they leave work for the next
/// sweep, nothing else.
async fn sweep(queue: &JobQueue, owned: &std::collections::BTreeSet<String>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let orphan = i64::try_from(ORPHAN_AGE.as_millis()).unwrap_or(i64::MAX);
    match queue.artifacts.folders("align").await {
        Ok(folders) => {
            for (path, changed) in folders {
                if !owned.contains(&path)
                    && now - changed >= orphan
                    && let Err(error) = queue.artifacts.delete_all(&path).await
                {
                    tracing::warn!(%error, folder = %path, "sweeping a run folder");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "listing the run folders"),
    }
}

/// `GET /api/align/runs`.
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<AlignRunSummary>>, AppError> {
    let queue = queue(&state)?;
    let jobs = queue
        .store
        .list(&Filter {
            kind: Some(KIND.to_owned()),
            limit: 10_000,
            ..Filter::default()
        })
        .await
        .map_err(|e| internal("listing alignment runs", e))?;
    sweep(queue, &jobs.iter().map(|j| folder(&j.id)).collect()).await;
    let mut list: Vec<AlignRunSummary> = jobs
        .iter()
        .filter(|job| actor.is_admin() || (job.owner.is_some() && job.owner == actor.owner_id()))
        .filter_map(|job| {
            let config = serde_json::from_value::<AlignJobConfig>(job.config.clone()).ok()?;
            Some(summary(job, &config))
        })
        .collect();
    list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(list))
}

/// `GET /api/align/runs/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<AlignRunDetail>, AppError> {
    let queue = queue(&state)?;
    let (job, config) = get(queue, &id, &actor).await?;
    let prefix = out_prefix(&id);
    let stored = queue
        .artifacts
        .list(&prefix)
        .await
        .map_err(|e| internal("reading a run's files", e))?;
    let files = FILES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            (*name == "metrics.jsonl" && job.progress.is_some())
                || stored
                    .iter()
                    .any(|(path, _)| *path == format!("{prefix}/{name}"))
        })
        .map(str::to_owned)
        .collect();
    Ok(Json(AlignRunDetail {
        run: summary(&job, &config),
        config: config.config,
        files,
    }))
}

/// The files of a pose model, with their content types.
const MODEL_FILES: [(&str, &str); 2] = [
    (saved::DESCRIPTION_FILE, "application/json"),
    (saved::WEIGHTS_FILE, "application/octet-stream"),
];

/// Whether `name` is a run name of a pose benchmark (`<rung>-seed<s>`).
fn is_pose_run_name(name: &str) -> bool {
    name.split_once("-seed").is_some_and(|(rung, seed)| {
        !rung.is_empty()
            && rung.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && (1..=20).contains(&seed.len())
            && seed.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `GET /api/align/runs/{id}/models/{name}/{file}`: one file of a pose benchmark's trained
/// model.
///
/// # Errors
/// 404 for a run that is not the caller's, not a pose benchmark, or has no such model.
pub async fn pose_model(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, name, file)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    let queue = queue(&state)?;
    let (_, config) = get(queue, &id, &actor).await?;
    let missing = || {
        AppError::client(
            StatusCode::NOT_FOUND,
            format!(
                "run {id} has no pose model `{name}` with a file `{file}`; a pose benchmark's \
                 models are named as its results.json lists its runs, each with {}",
                MODEL_FILES.map(|(n, _)| n).join(" and ")
            ),
        )
    };
    let content_type = MODEL_FILES
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(_, t)| *t)
        .filter(|_| config.action == AlignAction::PoseBenchmark && is_pose_run_name(&name))
        .ok_or_else(missing)?;
    let key = format!("{}/runs/{name}/{file}", out_prefix(&id));
    let bytes = match queue.artifacts.get(&key, MAX_FILE_BYTES).await {
        Ok(bytes) => bytes,
        Err(crate::artifacts::ArtifactError::Missing { .. }) => return Err(missing()),
        Err(e) => return Err(internal("reading a pose model", e)),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/align/runs/{id}/files/{name}`.
pub async fn file(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let queue = queue(&state)?;
    get(queue, &id, &actor).await?;
    let missing = || {
        AppError::client(
            StatusCode::NOT_FOUND,
            format!(
                "run {id} has no file `{name}`; the files are {}",
                FILES.map(|(n, _)| n).join(", ")
            ),
        )
    };
    let Some((_, content_type)) = FILES.iter().find(|(n, _)| *n == name) else {
        return Err(missing());
    };
    let bytes = if name == "metrics.jsonl" {
        let lines = events::metrics_file(queue, &id).await?;
        if lines.is_empty() {
            return Err(missing());
        }
        lines.into_bytes()
    } else {
        match queue
            .artifacts
            .get(&format!("{}/{name}", out_prefix(&id)), MAX_FILE_BYTES)
            .await
        {
            Ok(bytes) => bytes,
            Err(crate::artifacts::ArtifactError::Missing { .. }) => return Err(missing()),
            Err(e) => return Err(internal("reading a run's file", e)),
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // The report is self-contained: no scripts, no requests.
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        ],
        bytes,
    )
        .into_response())
}

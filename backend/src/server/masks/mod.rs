//! Mask jobs: a user's photos in, their P3-Mask key out, as `mask.train` jobs of the job
//! system (see `crate::mask::job`), so they survive a restart and run on any worker.
//!
//! - `POST /api/masks` (multipart: `photo` files; optional fields `epochs`, `tau`, `epsilon`,
//!   `seed`, `models`, `passphrase`, `keep`): checks every photo for a face (a 422 names the
//!   ones without), seals the photos (and the passphrase) into the artifact store with a key
//!   only the job's row holds, queues the job and answers 202 with its id.
//! - `GET /api/masks/{id}/events`: Server-Sent Events, `status` with the job's state (queued,
//!   preparing, training with epoch, DSSIM, angle per model and λ, done, failed, cancelled),
//!   read from the job's row as the worker writes it.
//! - `GET /api/masks/{id}/key`: the finished key (`application/octet-stream`); unless the job
//!   was created with `keep=true` the job and its artifacts are deleted once it is downloaded.
//! - `DELETE /api/masks/{id}`: cancels the job and deletes it with its artifacts.
//!
//! Jobs belong to the user who created them (others get 404); a user has one unfinished job at
//! a time and the server [`MAX_LIVE_JOBS`] in all (429 beyond); an ended job is deleted with
//! its artifacts [`KEY_TTL`] after it ended, and artifact folders no job owns are swept.

use std::{convert::Infallible, path::PathBuf, time::Duration};

use axum::{
    Json,
    extract::{Multipart, Path, State},
    http::{StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use fuselab_shared::api::MaskJobStatus as JobStatus;
use futures_util::{Stream, StreamExt as _};
use serde::Serialize;

mod form;

pub use form::{Request, read_form};

use super::{Actor, AppError, AppState, JobQueue};
use crate::{
    artifacts::SealKey,
    face::load_mtcnn,
    jobs::{Filter, Job, JobWatch, NewJob, Status, StoreError},
    mask::{
        TrainOptions,
        job::{KIND, MaskJobConfig, MaskJobResult},
        training_face,
    },
};
use form::bad;

/// Most photos one job takes; the page asks for 5 to 20.
pub const MAX_PHOTOS: usize = 40;
/// Fewest photos a mask is learned from.
pub const MIN_PHOTOS: usize = 3;
/// Most epochs a job may ask for.
pub(super) const MAX_EPOCHS: usize = 200;
/// Unfinished mask jobs (queued or training) the server accepts at most.
pub const MAX_LIVE_JOBS: usize = 8;
/// How long an ended job's key (or error) waits to be fetched.
pub const KEY_TTL: Duration = Duration::from_hours(1);
/// An artifact folder no job owns is swept once it is this old (a request that failed between
/// storing its photos and queueing its job, a job deleted while its worker was gone).
const ORPHAN_AGE: Duration = Duration::from_mins(10);

/// The body of `POST /api/masks`'s answer.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The job's id (random, unguessable: it is what fetches the key).
    pub id: String,
    /// Photos accepted, each with a face.
    pub photos: usize,
}

fn data_dir(state: &AppState) -> Result<PathBuf, AppError> {
    state.data_dir.clone().ok_or_else(|| {
        AppError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no face models: run `fuselab models fetch` and restart it",
        )
    })
}

fn queue(state: &AppState) -> Result<&JobQueue, AppError> {
    JobQueue::of(state, "mask jobs")
}

fn internal(context: &'static str, error: impl Into<anyhow::Error>) -> AppError {
    AppError::Internal {
        context,
        source: error.into(),
    }
}

fn not_found(id: &str) -> AppError {
    AppError::client(
        StatusCode::NOT_FOUND,
        format!(
            "no mask job {id}: it never existed, was cancelled, or its key was already downloaded"
        ),
    )
}

/// Mask job `id`, when `actor` may see it (404 otherwise: whether it exists is not theirs to
/// know).
async fn get(queue: &JobQueue, id: &str, actor: &Actor) -> Result<(Job, MaskJobConfig), AppError> {
    let job = queue
        .visible(id, KIND, actor)
        .await
        .map_err(|e| internal("reading a mask job", e))?
        .ok_or_else(|| not_found(id))?;
    let config = serde_json::from_value(job.config.clone())
        .map_err(|e| internal("reading a mask job's configuration", e))?;
    Ok((job, config))
}

/// What the page shows of a job.
fn status_of(job: &Job) -> JobStatus {
    match job.status {
        Status::Queued => JobStatus::Queued,
        Status::Running => job
            .progress
            .clone()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or(JobStatus::Preparing),
        Status::Done => match job
            .result
            .clone()
            .and_then(|r| serde_json::from_value::<MaskJobResult>(r).ok())
        {
            Some(result) => JobStatus::Done {
                sha256: result.sha256,
                dssim: result.dssim,
                seconds: result.seconds,
            },
            None => JobStatus::Failed {
                error: "the job's result is unreadable".to_owned(),
            },
        },
        Status::Failed | Status::Interrupted => JobStatus::Failed {
            error: job
                .error
                .clone()
                .unwrap_or_else(|| "training failed".to_owned()),
        },
        Status::Cancelled => JobStatus::Cancelled,
    }
}

/// Deletes mask jobs that ended [`KEY_TTL`] ago with their artifacts, and artifact folders no
/// mask job owns. Failures are logged: they leave work for the next sweep, nothing else.
async fn sweep(queue: &JobQueue) {
    let jobs = match queue
        .store
        .list(&Filter {
            kind: Some(KIND.to_owned()),
            limit: 1000,
            ..Filter::default()
        })
        .await
    {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::warn!(%error, "sweeping mask jobs");
            return;
        }
    };
    let now = now_ms();
    let ttl = i64::try_from(KEY_TTL.as_millis()).unwrap_or(i64::MAX);
    let mut owned = std::collections::BTreeSet::new();
    for job in &jobs {
        let Ok(config) = serde_json::from_value::<MaskJobConfig>(job.config.clone()) else {
            continue;
        };
        if job.status.is_terminal() && job.finished_at.is_some_and(|at| now - at >= ttl) {
            forget(queue, &job.id, &config.folder).await;
        } else {
            owned.insert(config.folder);
        }
    }
    let orphan = i64::try_from(ORPHAN_AGE.as_millis()).unwrap_or(i64::MAX);
    match queue.artifacts.folders("masks").await {
        Ok(folders) => {
            for (folder, changed) in folders {
                if !owned.contains(&folder)
                    && now - changed >= orphan
                    && let Err(error) = queue.artifacts.delete_all(&folder).await
                {
                    tracing::warn!(%error, %folder, "sweeping a mask folder");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "listing the mask folders"),
    }
}

/// Deletes a job and its artifacts (a running one is cancelled; its worker deletes the
/// artifacts when it stops).
async fn forget(queue: &JobQueue, id: &str, folder: &str) {
    match queue.store.delete(id, None).await {
        Ok(true) | Err(StoreError::NotFound { .. }) => {
            if let Err(error) = queue.artifacts.delete_all(folder).await {
                tracing::warn!(%error, job = %id, "deleting a mask job's artifacts");
            }
        }
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, job = %id, "deleting a mask job"),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// 429 unless the caller has no unfinished mask job and the server fewer than
/// [`MAX_LIVE_JOBS`].
async fn admit(queue: &JobQueue, actor: &Actor) -> Result<(), AppError> {
    let live = queue
        .live(KIND)
        .await
        .map_err(|e| internal("counting mask jobs", e))?;
    let all = live.len();
    let mine = live
        .iter()
        .filter(|j| j.owner.is_some() && j.owner == actor.owner_id())
        .count();
    if mine > 0 {
        return Err(AppError::busy(
            "you already have a mask job that has not finished; wait for it or cancel it",
            60,
        ));
    }
    if all >= MAX_LIVE_JOBS {
        return Err(AppError::busy(
            format!(
                "the server has {MAX_LIVE_JOBS} mask jobs waiting or training, its limit; try again later"
            ),
            300,
        ));
    }
    Ok(())
}

/// 422 naming every photo without a training face (the same check the worker makes).
fn check_faces(data_dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> Result<(), AppError> {
    let device = burn::tensor::Device::flex();
    let mtcnn = load_mtcnn(data_dir, &device).map_err(|e| {
        if e.is::<crate::models::MissingModel>() {
            AppError::client(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"))
        } else {
            internal("loading the face detector", e)
        }
    })?;
    let mut problems = Vec::new();
    for (name, bytes) in files {
        if let Err(error) = training_face(&mtcnn, &device, bytes, name) {
            problems.push(error.to_string());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bad(format!(
            "every photo must show your face; replace these: {}",
            problems.join("; ")
        )))
    }
}

/// `POST /api/masks`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    form: Multipart,
) -> Result<(StatusCode, Json<Created>), AppError> {
    let request = read_form(form).await?;
    let data_dir = data_dir(&state)?;
    let queue = queue(&state)?;
    // Checking the faces loads a detector: a heavy request, within the server's slots.
    let _slot = state.heavy.slot(&actor)?;
    sweep(queue).await;
    admit(queue, &actor).await?;
    let Request {
        photos: files,
        config,
        models,
        passphrase,
        keep,
    } = request;
    // Faces first: a photo without one is the user's to fix, before anything is stored.
    let files = tokio::task::spawn_blocking(move || check_faces(&data_dir, &files).map(|()| files))
        .await
        .map_err(|e| internal("finding the faces of a mask job", e))??;
    let mut folder = [0_u8; 16];
    getrandom::fill(&mut folder)
        .map_err(|e| internal("drawing a folder name", anyhow::anyhow!("{e}")))?;
    let seal = SealKey::random().map_err(|e| internal("drawing a job key", e))?;
    let job = MaskJobConfig {
        options: TrainOptions { config, models },
        folder: format!("masks/{}", crate::mask::hex(&folder)),
        photos: files.iter().map(|(name, _)| name.clone()).collect(),
        encrypted: passphrase.is_some(),
        keep,
        seal: seal.to_hex(),
    };
    let stored = store_inputs(queue, &job, &seal, &files, passphrase.as_deref()).await;
    let queued = match stored {
        Ok(()) => {
            let mut new = NewJob::new(
                KIND,
                serde_json::to_value(&job).map_err(|e| internal("queueing a mask job", e))?,
            );
            new.owner = actor.owner_id();
            queue
                .store
                .enqueue(&new)
                .await
                .map_err(|e| internal("queueing a mask job", e))
        }
        Err(error) => Err(error),
    };
    match queued {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(Created {
                id,
                photos: files.len(),
            }),
        )),
        Err(error) => {
            if let Err(e) = queue.artifacts.delete_all(&job.folder).await {
                tracing::warn!(error = %e, "deleting the photos of a mask job that was not queued");
            }
            Err(error)
        }
    }
}

/// Seals the photos and the passphrase into the job's folder.
async fn store_inputs(
    queue: &JobQueue,
    job: &MaskJobConfig,
    seal: &SealKey,
    files: &[(String, Vec<u8>)],
    passphrase: Option<&String>,
) -> Result<(), AppError> {
    let store = |path: String, bytes: &[u8]| {
        let sealed = seal.seal(&path, bytes);
        async move {
            let sealed = sealed.map_err(|e| internal("sealing a mask job's photos", e))?;
            queue
                .artifacts
                .put(&path, sealed)
                .await
                .map_err(|e| internal("storing a mask job's photos", e))
        }
    };
    for (index, (_, bytes)) in files.iter().enumerate() {
        store(job.photo(index), bytes).await?;
    }
    if let Some(passphrase) = passphrase {
        store(job.passphrase(), passphrase.as_bytes()).await?;
    }
    Ok(())
}

/// Where an event stream stands: the job, the last event read, the last status sent.
struct Follow {
    queue: JobQueue,
    /// Wakes the stream when the job has news.
    watch: JobWatch,
    id: String,
    after: i64,
    sent: Option<JobStatus>,
}

impl Follow {
    /// The statuses of the events after the last one read (every progress snapshot the worker
    /// wrote, in order), waiting for news while there are none; `None` once the job ended.
    async fn next(&mut self) -> Option<Vec<JobStatus>> {
        if self.sent.as_ref().is_some_and(JobStatus::finished) {
            return None;
        }
        loop {
            let events = match self.queue.store.events(&self.id, self.after, 200).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, job = %self.id, "reading a mask job's events");
                    Vec::new()
                }
            };
            let mut statuses = Vec::new();
            for event in &events {
                self.after = event.seq;
                let status = if event.kind == "progress" {
                    serde_json::from_value(event.data.clone()).ok()
                } else {
                    self.current().await
                };
                if let Some(status) = status
                    && self.sent.as_ref() != Some(&status)
                {
                    self.sent = Some(status.clone());
                    let finished = status.finished();
                    statuses.push(status);
                    if finished {
                        return Some(statuses);
                    }
                }
            }
            if !statuses.is_empty() {
                return Some(statuses);
            }
            if events.is_empty() {
                // A deleted job has no events left to read: its row says how it ended.
                if let Some(status) = self.current().await
                    && status.finished()
                {
                    self.sent = Some(status.clone());
                    return Some(vec![status]);
                }
                self.watch.changed().await;
            }
        }
    }

    /// The job's status from its row (cancelled once it is gone); `None` on a database error.
    async fn current(&self) -> Option<JobStatus> {
        match self.queue.store.get(&self.id, None).await {
            Ok(job) => Some(status_of(&job)),
            Err(StoreError::NotFound { .. }) => Some(JobStatus::Cancelled),
            Err(error) => {
                tracing::warn!(%error, job = %self.id, "reading a mask job");
                None
            }
        }
    }
}

/// `GET /api/masks/{id}/events`: the job's status now, then every change the worker records
/// (read from the job's events, so no snapshot is skipped) until it ends.
pub async fn events(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let queue = queue(&state)?.clone();
    let watch = queue.store.watch(&id);
    let after = queue
        .store
        .last_event(&id)
        .await
        .map_err(|e| internal("reading a mask job's events", e))?;
    let (job, _) = get(&queue, &id, &actor).await?;
    let first = status_of(&job);
    let follow = Follow {
        queue,
        watch,
        id,
        after,
        sent: Some(first.clone()),
    };
    let rest = futures_util::stream::unfold(follow, |mut follow| async move {
        let statuses = follow.next().await?;
        Some((futures_util::stream::iter(statuses), follow))
    })
    .flatten();
    let stream = futures_util::stream::iter([first])
        .chain(rest)
        .map(|status| {
            Ok(Event::default()
                .event("status")
                .data(serde_json::to_string(&status).unwrap_or_default()))
        });
    Ok(Sse::new(super::bounded(stream)).keep_alive(KeepAlive::default()))
}

/// `GET /api/masks/{id}/key`.
pub async fn key(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let queue = queue(&state)?;
    sweep(queue).await;
    let (job, config) = get(queue, &id, &actor).await?;
    if job.status != Status::Done {
        return Err(AppError::client(
            StatusCode::CONFLICT,
            "the mask is not ready yet: wait for the `done` event",
        ));
    }
    let seal = SealKey::from_hex(&config.seal).map_err(|e| internal("reading a mask job", e))?;
    let path = config.key();
    let sealed = match queue.artifacts.get(&path, 4 * 1024 * 1024).await {
        Ok(sealed) => sealed,
        Err(crate::artifacts::ArtifactError::Missing { .. }) => return Err(not_found(&id)),
        Err(e) => return Err(internal("reading a mask key", e)),
    };
    let bytes = seal
        .open(&path, &sealed)
        .map_err(|e| internal("opening a mask key", e))?
        .to_vec();
    if !config.keep {
        forget(queue, &id, &config.folder).await;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"my-mask.p3m\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response())
}

/// `DELETE /api/masks/{id}`.
pub async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let queue = queue(&state)?;
    let (_, config) = get(queue, &id, &actor).await?;
    forget(queue, &id, &config.folder).await;
    Ok(StatusCode::NO_CONTENT)
}

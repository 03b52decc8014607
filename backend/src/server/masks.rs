//! Mask jobs: a user's photos in, their P3-Mask key out.
//!
//! - `POST /api/masks` (multipart: `photo` files; optional fields `epochs`, `tau`, `epsilon`,
//!   `seed`, `models`, `passphrase`, `keep`): checks every photo for a face (a 422 names the
//!   ones without), then queues the job and answers 202 with its id. Photos stay in memory and
//!   are dropped when the job ends; nothing the user sent is written to disk.
//! - `GET /api/masks/{id}/events`: Server-Sent Events, `status` with the job's state (queued,
//!   training with epoch, DSSIM, angle per model and λ, done, failed, cancelled).
//! - `GET /api/masks/{id}/key`: the finished key (`application/octet-stream`); unless the job
//!   was created with `keep=true` the server forgets it once downloaded.
//! - `DELETE /api/masks/{id}`: cancels the job and forgets it.
//!
//! One job trains at a time (training uses every core), alignment runs included; the others
//! wait in the queue. Jobs belong to the user who created them (others get 404); a user has one
//! unfinished job at a time and the server [`MAX_LIVE_JOBS`] in all (429 beyond); a finished
//! job's key is forgotten [`KEY_TTL`] after the job ends.

use std::{
    collections::HashMap,
    convert::Infallible,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Multipart, Path, State},
    http::{StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use fuselab_ml::mask::{MaskConfig, MaskTrainer, TrainingFace};
use fuselab_shared::{api::MaskJobStatus as JobStatus, mask::FaceCanvas};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::{Actor, AppError, AppState};
use crate::{
    face::{decode_photo, detect_faces, load_stack},
    mask::{confident_face, embedders, key_bytes},
};

/// Most photos one job takes; the page asks for 5 to 20.
pub const MAX_PHOTOS: usize = 40;
/// Fewest photos a mask is learned from.
pub const MIN_PHOTOS: usize = 3;
/// Most epochs a job may ask for.
const MAX_EPOCHS: usize = 200;
/// Unfinished jobs (queued or training) the server holds at most: each holds its photos and,
/// while it trains, a face-model stack in memory.
pub const MAX_LIVE_JOBS: usize = 8;
/// How long a finished job's key (or error) waits to be fetched.
pub const KEY_TTL: Duration = Duration::from_hours(1);

struct Job {
    status: watch::Sender<JobStatus>,
    key: Mutex<Option<Vec<u8>>>,
    cancel: AtomicBool,
    keep: bool,
    /// Who created it (`None` on a server without accounts).
    owner: Option<String>,
    /// When it finished, for [`KEY_TTL`].
    ended: Mutex<Option<Instant>>,
}

impl Job {
    fn finished(&self) -> bool {
        self.status.borrow().finished()
    }

    fn expired(&self) -> bool {
        self.ended
            .lock()
            .ok()
            .and_then(|ended| *ended)
            .is_some_and(|ended| ended.elapsed() >= KEY_TTL)
    }
}

/// The server's mask jobs.
pub struct MaskJobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl std::fmt::Debug for MaskJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.jobs.lock().map_or(0, |jobs| jobs.len());
        f.debug_struct("MaskJobs")
            .field("jobs", &count)
            .finish_non_exhaustive()
    }
}

impl Default for MaskJobs {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskJobs {
    /// No jobs.
    pub fn new() -> Self {
        Self {
            jobs: Mutex::default(),
        }
    }

    /// Job `id`, when `actor` may see it (404 otherwise: whether it exists is not theirs to
    /// know).
    fn get(&self, id: &str, actor: &Actor) -> Result<Arc<Job>, AppError> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        jobs.retain(|_, job| !job.expired());
        jobs.get(id)
            .filter(|job| actor.owns(job.owner.as_deref()))
            .cloned()
            .ok_or_else(|| {
                AppError::client(
                    StatusCode::NOT_FOUND,
                    format!("no mask job {id}: it never existed, was cancelled, or its key was already downloaded"),
                )
            })
    }

    fn remove(&self, id: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(id);
        }
    }

    /// Adds a job unless the caller or the server holds too many unfinished ones.
    fn admit(&self, id: &str, job: Arc<Job>) -> Result<(), AppError> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        jobs.retain(|_, job| !job.expired());
        let live = jobs.values().filter(|j| !j.finished());
        let (mine, all) = live.fold((0, 0), |(mine, all), j| {
            (
                mine + usize::from(job.owner.is_some() && j.owner == job.owner),
                all + 1,
            )
        });
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
        jobs.insert(id.to_owned(), job);
        Ok(())
    }
}

fn poisoned() -> AppError {
    AppError::Internal {
        context: "mask jobs",
        source: anyhow::anyhow!("a job thread panicked while holding the job table"),
    }
}

/// What the form of `POST /api/masks` asked for, as [`read_form`] reads it.
pub struct Request {
    /// The photos, each as its file name (`photo` when the part has none) and its bytes, not
    /// yet decoded.
    pub photos: Vec<(String, Vec<u8>)>,
    /// The training settings: the defaults with `epochs`, `tau`, `epsilon` and `seed` as sent.
    pub config: MaskConfig,
    /// The face models the mask is trained against (`dlib`, `faceres`).
    pub models: Vec<String>,
    /// The passphrase the key is encrypted with, if any. Wiped from memory when the job ends.
    pub passphrase: Option<Zeroizing<String>>,
    /// Whether the server keeps the key after its first download.
    pub keep: bool,
}

/// Names and sizes of the photos, never their bytes nor the passphrase.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let photos: Vec<(&str, usize)> = self
            .photos
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.len()))
            .collect();
        f.debug_struct("Request")
            .field("photos", &photos)
            .field("config", &self.config)
            .field("models", &self.models)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("keep", &self.keep)
            .finish()
    }
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::client(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Reads the multipart form of `POST /api/masks`: every `photo` part's bytes (at most
/// `MAX_PHOTOS`), the other fields range-checked, the photo count and the model names checked
/// at the end. The photos are not decoded here.
///
/// # Errors
/// [`AppError`]: a malformed body (axum's multipart rejection, with its status), more photos
/// than allowed, too few, an unknown field or model, or a value out of range (422 naming it).
pub async fn read_form(mut form: Multipart) -> Result<Request, AppError> {
    let mut request = Request {
        photos: Vec::new(),
        config: MaskConfig::default(),
        models: vec!["dlib".to_owned(), "faceres".to_owned()],
        passphrase: None,
        keep: false,
    };
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::client(e.status(), e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "photo" {
            if request.photos.len() == MAX_PHOTOS {
                return Err(bad(format!(
                    "a mask is learned from {MIN_PHOTOS} to {MAX_PHOTOS} photos of you; this \
                     request has more"
                )));
            }
            let file = field.file_name().unwrap_or("photo").to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AppError::client(e.status(), e.body_text()))?;
            request.photos.push((file, bytes.to_vec()));
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|e| AppError::client(e.status(), e.body_text()))?;
        set_field(&mut request, &name, text)?;
    }
    if request.photos.len() < MIN_PHOTOS || request.photos.len() > MAX_PHOTOS {
        return Err(bad(format!(
            "a mask is learned from {MIN_PHOTOS} to {MAX_PHOTOS} photos of you (5 to 20 work well); got {}",
            request.photos.len()
        )));
    }
    for model in &request.models {
        if !matches!(model.as_str(), "dlib" | "faceres") {
            return Err(bad(format!(
                "field `models`: unknown model `{model}`; the models are dlib and faceres"
            )));
        }
    }
    Ok(request)
}

/// Sets the form field `name` (anything but a photo) from its text, range-checked.
fn set_field(request: &mut Request, name: &str, text: String) -> Result<(), AppError> {
    let number = |what: &str| -> Result<f64, AppError> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("field `{what}`: expected a number, got `{text}`")))
    };
    // The values are range-checked below and by MaskTrainer::new.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    match name {
        "epochs" => {
            let v = number("epochs")?;
            if !(1.0..=MAX_EPOCHS as f64).contains(&v) || v.fract() != 0.0 {
                return Err(bad(format!(
                    "field `epochs`: expected a whole number from 1 to {MAX_EPOCHS}, got `{text}`"
                )));
            }
            request.config.epochs = v as usize;
        }
        "tau" => {
            let v = number("tau")?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!(
                    "field `tau`: expected a DSSIM budget from 0 to 1, got `{text}`"
                )));
            }
            request.config.tau = v as f32;
        }
        "epsilon" => {
            let v = number("epsilon")?;
            if !(v > 0.0 && v <= 255.0) {
                return Err(bad(format!(
                    "field `epsilon`: expected a pixel bound above 0 and at most 255, got `{text}`"
                )));
            }
            request.config.epsilon = v as f32;
        }
        "seed" => {
            request.config.seed = text.trim().parse().map_err(|_| {
                bad(format!(
                    "field `seed`: expected a whole number, got `{text}`"
                ))
            })?;
        }
        "models" => {
            request.models = text.split(',').map(|m| m.trim().to_owned()).collect();
        }
        "passphrase" => {
            request.passphrase = Some(Zeroizing::new(text)).filter(|p| !p.is_empty());
        }
        "keep" => request.keep = text.trim() == "true",
        other => return Err(bad(format!("unknown field `{other}`"))),
    }
    Ok(())
}

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

/// `POST /api/masks`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    form: Multipart,
) -> Result<(StatusCode, Json<Created>), AppError> {
    let request = read_form(form).await?;
    let data_dir = data_dir(&state)?;
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal {
        context: "drawing a job id",
        source: anyhow::anyhow!("{e}"),
    })?;
    let id = crate::mask::hex(&bytes);
    let photos = request.photos.len();
    let (status, _) = watch::channel(JobStatus::Queued);
    let job = Arc::new(Job {
        status,
        key: Mutex::new(None),
        cancel: AtomicBool::new(false),
        keep: request.keep,
        owner: actor.name().map(str::to_owned),
        ended: Mutex::new(None),
    });
    // Faces first: a photo without one is the user's to fix, before anything is queued.
    let Request {
        photos: files,
        config,
        models,
        passphrase,
        ..
    } = request;
    // Admitted first, so that the jobs preparing at once (each loads a model stack) are bounded.
    state.masks.admit(&id, job.clone())?;
    let prepared = tokio::task::spawn_blocking(move || prepare(&data_dir, &files))
        .await
        .map_err(|e| AppError::Internal {
            context: "finding the faces of a mask job",
            source: e.into(),
        })
        .and_then(|prepared| prepared);
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            state.masks.remove(&id);
            return Err(error);
        }
    };
    let training = state.training.clone();
    tokio::spawn(async move {
        let Ok(_permit) = training.acquire_owned().await else {
            return;
        };
        let worker = job.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            train(
                &worker,
                prepared,
                &config,
                &models,
                passphrase.as_deref().map(String::as_str),
            )
        })
        .await;
        let status = match outcome {
            Ok(Ok(status)) => status,
            Ok(Err(error)) => {
                tracing::error!(error = %format!("{error:#}"), "mask job failed");
                JobStatus::Failed {
                    error: "training failed; the details are in the server log".to_owned(),
                }
            }
            Err(error) => {
                tracing::error!(%error, "mask job panicked");
                JobStatus::Failed {
                    error: "training failed; the details are in the server log".to_owned(),
                }
            }
        };
        job.status.send_replace(status);
        if let Ok(mut ended) = job.ended.lock() {
            *ended = Some(Instant::now());
        }
    });
    Ok((StatusCode::ACCEPTED, Json(Created { id, photos })))
}

/// The stack and each photo's training face.
struct Prepared {
    stack: fuselab_ml::face::FaceStack,
    faces: Vec<TrainingFace>,
}

fn prepare(data_dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> Result<Prepared, AppError> {
    let stack = load_stack(data_dir, burn::tensor::Device::flex()).map_err(|e| {
        if e.is::<crate::models::MissingModel>() {
            AppError::client(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"))
        } else {
            AppError::Internal {
                context: "loading the face models",
                source: e,
            }
        }
    })?;
    let mut faces = Vec::new();
    let mut problems = Vec::new();
    for (name, bytes) in files {
        let image = match decode_photo(bytes, name) {
            Ok(image) => image,
            Err(error) => {
                problems.push(error.to_string());
                continue;
            }
        };
        let face = confident_face(detect_faces(&stack.mtcnn, &image, &stack.device))
            .and_then(|d| FaceCanvas::from_box(d.bbox, image.width, image.height));
        match face {
            Some(canvas) => faces.push(TrainingFace {
                clean: canvas.boxed_face(&image.pixels, image.width),
                canvas,
            }),
            None => problems.push(format!("{name}: no face found")),
        }
    }
    if !problems.is_empty() {
        return Err(bad(format!(
            "every photo must show your face; replace these: {}",
            problems.join("; ")
        )));
    }
    Ok(Prepared { stack, faces })
}

fn train(
    job: &Job,
    prepared: Prepared,
    config: &MaskConfig,
    models: &[String],
    passphrase: Option<&str>,
) -> anyhow::Result<JobStatus> {
    if job.cancel.load(Ordering::Relaxed) {
        return Ok(JobStatus::Cancelled);
    }
    job.status.send_replace(JobStatus::Preparing);
    let started = Instant::now();
    let Prepared { stack, faces } = prepared;
    let embedders = embedders(&stack, models)?;
    let mut trainer =
        MaskTrainer::new(config.clone(), embedders, &faces, None, None, &stack.device)?;
    while !trainer.finished() {
        if job.cancel.load(Ordering::Relaxed) {
            return Ok(JobStatus::Cancelled);
        }
        trainer.epoch(&mut |step| {
            job.status.send_replace(JobStatus::Training {
                epoch: step.epoch,
                epochs: config.epochs,
                step: step.step,
                steps: step.steps,
                dssim: step.dssim,
                angles: models
                    .iter()
                    .cloned()
                    .zip(step.angles.iter().copied())
                    .collect(),
                lambda: step.lambda,
            });
        });
    }
    let handed = trainer.final_mask();
    let dssim = handed.dssim;
    let bytes = key_bytes(config, models, faces.len(), handed.delta, passphrase)?;
    let sha256 = fuselab_shared::mask::key::read_header(&bytes)?.sha256;
    *job.key
        .lock()
        .map_err(|_| anyhow::anyhow!("the job's key lock is poisoned"))? = Some(bytes);
    Ok(JobStatus::Done {
        sha256,
        dssim,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `GET /api/masks/{id}/events`.
pub async fn events(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let job = state.masks.get(&id, &actor)?;
    let receiver = job.status.subscribe();
    let stream =
        futures_util::stream::unfold((receiver, false), |(mut receiver, ended)| async move {
            if ended {
                return None;
            }
            let status = receiver.borrow_and_update().clone();
            let finished = status.finished();
            let event = Event::default()
                .event("status")
                .data(serde_json::to_string(&status).unwrap_or_default());
            if !finished && receiver.changed().await.is_err() {
                return Some((Ok(event), (receiver, true)));
            }
            Some((Ok(event), (receiver, finished)))
        });
    Ok(Sse::new(super::bounded(stream)).keep_alive(KeepAlive::default()))
}

/// `GET /api/masks/{id}/key`.
pub async fn key(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let job = state.masks.get(&id, &actor)?;
    let bytes = {
        let mut key = job.key.lock().map_err(|_| poisoned())?;
        if job.keep { key.clone() } else { key.take() }
    };
    let Some(bytes) = bytes else {
        return Err(AppError::client(
            StatusCode::CONFLICT,
            "the mask is not ready yet: wait for the `done` event",
        ));
    };
    if !job.keep {
        state.masks.remove(&id);
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
    let job = state.masks.get(&id, &actor)?;
    job.cancel.store(true, Ordering::Relaxed);
    if !job.status.borrow().finished() {
        job.status.send_replace(JobStatus::Cancelled);
    }
    state.masks.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

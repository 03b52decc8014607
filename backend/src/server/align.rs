//! Harmful fine-tuning runs: `fuselab align benchmark|attack|booster|vaccine|lisa` as server
//! jobs, their progress as Server-Sent Events, and their results, charts and report.
//!
//! - `POST /api/align/runs` (`{"action": "benchmark", "config": "<TOML>"}`): checks the
//!   configuration (a 400 names the line and key), stores it and queues the run; 202 with its id.
//!   The server sets `out` itself (a run writes only into its own folder) and reads data files
//!   and model folders only from `<data-dir>/align-data/` (relative paths without `..`).
//! - `GET /api/align/runs`: every run, newest first, with a finished run's result rows.
//! - `GET /api/align/runs/{id}`: one run with its configuration and files.
//! - `GET /api/align/runs/{id}/events`: Server-Sent Events. `status` (`{"status": "queued"}` or
//!   `"running"`) when that changes; `metrics`, one per `metrics.jsonl` line of its stages in the
//!   order they were written, with the line's index as the event id (a reconnecting client's
//!   `Last-Event-ID` skips what it has); at the end `done` or `error` (failed or interrupted),
//!   carrying the run's summary.
//! - `GET /api/align/runs/{id}/files/{name}`: `hs.svg`, `fa.svg`, `report.html`, `results.csv`,
//!   `results.md`, `results.json`, `metrics.jsonl` (every stage's lines, in order).
//! - `POST /api/align/runs/{id}/resume`: queues a failed or interrupted run again; it continues
//!   from its checkpoints.
//! - `DELETE /api/align/runs/{id}`: cancels a queued or running run (training stops after its
//!   current step) and deletes its folder.
//!
//! Runs belong to the user who started them: others (administrators excepted) get 404, and
//! starting or resuming one needs the training permission.
//!
//! A run lives in `<data-dir>/align-runs/<id>/`: `run.json` (its record), `config.toml` (the
//! configuration it runs with), `events.jsonl` (the metrics lines it logged, in order, with the
//! file each came from) and `out/` (the run folder of `fuselab align`). One training job runs at
//! a time, mask jobs included; the others wait as `queued`. A server that stops leaves its
//! queued and running runs `interrupted` (marked so when it starts again).

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    fmt::Write as _,
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    ops::Range,
    path::{Component, Path as FsPath, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use fuselab_shared::api::{
    AlignAction, AlignResultRow, AlignRunCreated, AlignRunDetail, AlignRunStatus, AlignRunSummary,
    StartAlignRun,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use super::{Actor, AppError, AppState};
use crate::align::{
    Checked as _, ConfigArgs,
    attack::{self, AttackConfig},
    cancel,
};

/// The folder of the runs, under the data directory.
pub const RUNS_DIR: &str = "align-runs";
/// The folder server runs read data files and models from, under the data directory.
pub const DATA_DIR: &str = "align-data";
/// Largest configuration accepted.
const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// How often the job looks for new metrics lines, and event streams for new events.
const POLL: Duration = Duration::from_millis(200);
/// The line the server puts before a configuration: the run folder.
const OUT_LINE: &str = "out = \"out\" # set by the server: a run writes only into its own folder\n";
/// The files a run serves, with their content types.
const FILES: [(&str, &str); 7] = [
    ("hs.svg", "image/svg+xml"),
    ("fa.svg", "image/svg+xml"),
    ("report.html", "text/html; charset=utf-8"),
    ("results.csv", "text/csv; charset=utf-8"),
    ("results.md", "text/markdown; charset=utf-8"),
    ("results.json", "application/json"),
    ("metrics.jsonl", "application/x-ndjson"),
];
/// Configuration keys that name a file or folder to read: `(table, key)`.
const PATH_KEYS: [(&str, &str); 7] = [
    ("base", "model"),
    ("data", "refusals"),
    ("data", "beavertails_train"),
    ("data", "beavertails_test"),
    ("data", "benign_train"),
    ("data", "benign_test"),
    ("judge", "model"),
];

/// `run.json`: what the server knows about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    action: AlignAction,
    status: AlignRunStatus,
    created: i64,
    #[serde(default)]
    started: Option<i64>,
    #[serde(default)]
    finished: Option<i64>,
    #[serde(default)]
    error: Option<String>,
    /// Times a job started on it.
    #[serde(default)]
    attempts: u32,
    /// Who started it (`None` on a server without accounts).
    #[serde(default)]
    owner: Option<String>,
}

/// One line of `events.jsonl`: a metrics line and the file it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Logged {
    file: String,
    line: String,
}

#[derive(Debug, Clone)]
struct Dirs {
    data: PathBuf,
    runs: PathBuf,
}

/// Runs one user may have queued or running at once.
pub const MAX_LIVE_RUNS_PER_USER: usize = 4;
/// Runs the server holds queued or running at once.
pub const MAX_LIVE_RUNS: usize = 32;

/// A run a job holds: its cancellation flag and its owner.
#[derive(Debug, Clone)]
struct Live {
    cancel: Arc<AtomicBool>,
    owner: Option<String>,
}

/// Admits one more live run of `owner`, or answers 429.
fn admit(live: &mut HashMap<String, Live>, id: &str, owner: Option<&str>) -> Result<(), AppError> {
    let mine = live
        .values()
        .filter(|l| owner.is_some() && l.owner.as_deref() == owner)
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
    live.insert(
        id.to_owned(),
        Live {
            cancel: Arc::default(),
            owner: owner.map(str::to_owned),
        },
    );
    Ok(())
}

/// The server's harmful fine-tuning runs.
#[derive(Debug)]
pub struct AlignRuns {
    dirs: Option<Dirs>,
    /// Runs a job of this server holds (queued or running).
    live: Mutex<HashMap<String, Live>>,
}

impl Default for AlignRuns {
    fn default() -> Self {
        Self::disabled()
    }
}

impl AlignRuns {
    /// No data directory: the endpoints answer 503.
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            dirs: None,
            live: Mutex::default(),
        }
    }

    /// The runs under `<data_dir>/align-runs` (made by the first run). Runs left queued or
    /// running by a server that stopped are marked interrupted.
    ///
    /// # Errors
    /// The folder cannot be read, or a record cannot be rewritten.
    pub fn open(data_dir: &FsPath) -> anyhow::Result<Self> {
        let runs = data_dir.join(RUNS_DIR);
        let entries = match std::fs::read_dir(&runs) {
            Ok(entries) => entries.collect::<Result<Vec<_>, _>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
        .with_context(|| format!("cannot read {}", runs.display()))?;
        for entry in entries {
            let dir = entry.path();
            let Some(mut record) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| is_run_id(n))
                .and_then(|_| read_record(&dir).ok())
            else {
                continue;
            };
            if !record.status.finished() {
                tracing::info!(id = %record.id, "marking a run the server left behind as interrupted");
                record.status = AlignRunStatus::Interrupted;
                record.finished = Some(now());
                record.error = Some(
                    "the server stopped during the run; resume it to continue from its last \
                     checkpoint"
                        .to_owned(),
                );
                write_record(&dir, &record)?;
            }
        }
        Ok(Self {
            dirs: Some(Dirs {
                data: data_dir.to_path_buf(),
                runs,
            }),
            live: Mutex::default(),
        })
    }

    fn dirs(&self) -> Result<&Dirs, AppError> {
        self.dirs.as_ref().ok_or_else(|| {
            AppError::client(
                StatusCode::SERVICE_UNAVAILABLE,
                "this server keeps no alignment runs (it was started without a data directory)",
            )
        })
    }

    /// The folder of run `id`, or 404.
    fn run_dir(&self, id: &str) -> Result<PathBuf, AppError> {
        let dir = self.dirs()?.runs.join(id);
        if is_run_id(id) && dir.join(RECORD).is_file() {
            Ok(dir)
        } else {
            Err(AppError::client(
                StatusCode::NOT_FOUND,
                format!("no alignment run `{id}`"),
            ))
        }
    }

    /// The folder of run `id` and its record, or 404 when there is none or it is not `actor`'s.
    fn run_for(&self, id: &str, actor: &Actor) -> Result<(PathBuf, Record), AppError> {
        let dir = self.run_dir(id)?;
        let record = read_record(&dir).map_err(internal("reading a run record"))?;
        if actor.owns(record.owner.as_deref()) {
            Ok((dir, record))
        } else {
            Err(AppError::client(
                StatusCode::NOT_FOUND,
                format!("no alignment run `{id}`"),
            ))
        }
    }

    fn live(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Live>>, AppError> {
        self.live.lock().map_err(|_| AppError::Internal {
            context: "alignment runs",
            source: anyhow::anyhow!("a job thread panicked while holding the run table"),
        })
    }
}

const RECORD: &str = "run.json";
const CONFIG: &str = "config.toml";
const EVENTS: &str = "events.jsonl";
const OUT: &str = "out";

fn is_run_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn read_record(dir: &FsPath) -> anyhow::Result<Record> {
    let path = dir.join(RECORD);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a run record", path.display()))
}

fn write_record(dir: &FsPath, record: &Record) -> anyhow::Result<()> {
    crate::align::run::write_atomic(&dir.join(RECORD), &serde_json::to_vec_pretty(record)?)
}

fn internal(context: &'static str) -> impl FnOnce(anyhow::Error) -> AppError {
    move |source| AppError::Internal { context, source }
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::client(StatusCode::BAD_REQUEST, message)
}

/// The fields of `results.json` the list shows: every row's defence, p, n and measures (each
/// row of every seed, when the run has several).
#[derive(Debug, Deserialize)]
struct ResultsFile {
    results: Vec<AlignResultRow>,
}

/// A finished run's rows, from `out/results.json`.
fn results(dir: &FsPath) -> Vec<AlignResultRow> {
    let Ok(bytes) = std::fs::read(dir.join(OUT).join("results.json")) else {
        return Vec::new();
    };
    match serde_json::from_slice::<ResultsFile>(&bytes) {
        Ok(file) => file.results,
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), "unreadable results.json");
            Vec::new()
        }
    }
}

fn summary(dir: &FsPath, record: Record) -> AlignRunSummary {
    let results = if record.status == AlignRunStatus::Done {
        results(dir)
    } else {
        Vec::new()
    };
    AlignRunSummary {
        id: record.id,
        owner: record.owner,
        action: record.action,
        status: record.status,
        created: record.created,
        started: record.started,
        finished: record.finished,
        error: record.error,
        results,
    }
}

// ---------------------------------------------------------------------------------------------
// The configuration.

/// The configuration a server run trains with: `out` replaced by the run's own folder, every path
/// resolved inside `<data_dir>/align-data`. A configuration that does not fit is a 400 naming the
/// line and key.
///
/// # Errors
/// [`AppError`] (400): text over 64 KiB, TOML that does not parse or fit the benchmark's schema,
/// a value out of range, a non-string `out`, or a data path that is not relative and inside the
/// data folder.
pub fn prepare_config(text: &str, data_dir: &FsPath) -> Result<String, AppError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(bad(format!(
            "the configuration is larger than {} KiB",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    let document = DeTable::parse(text).map_err(|e| bad(toml_message(text, 0, &e)))?;
    let root = document.get_ref();
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    if let Some((key, value)) = entry(root, "out") {
        if !matches!(value.get_ref(), DeValue::String(_)) {
            return Err(bad(format!(
                "{}: `out` must be a string (the server sets it anyway)",
                place(text, key.span().start)
            )));
        }
        // Blank, byte for byte, so every other line and column stays where it was.
        let span = key.span().start..value.span().end;
        let blank = text[span.clone()]
            .bytes()
            .map(|b| if b == b'\n' { '\n' } else { ' ' })
            .collect();
        edits.push((span, blank));
    }
    let checked = format!("{OUT_LINE}{}", apply(text, edits.clone()));
    let config: AttackConfig =
        toml::from_str(&checked).map_err(|e| bad(toml_message(text, OUT_LINE.len(), &e)))?;
    check(&config)?;
    let align_data = data_dir.join(DATA_DIR);
    for (table, key) in PATH_KEYS {
        let Some((_, value)) = entry(root, table).and_then(|(_, t)| match t.get_ref() {
            DeValue::Table(t) => entry(t, key),
            _ => None,
        }) else {
            continue;
        };
        let DeValue::String(path) = value.get_ref() else {
            continue;
        };
        if (table, key) == ("base", "model") && matches!(path.as_ref(), "tiny" | "smollm2") {
            continue;
        }
        let inside = !path.is_empty()
            && FsPath::new(path.as_ref())
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(bad(format!(
                "{}: [{table}] {key} = {path:?}: a server run reads files only from the \
                 `{DATA_DIR}` folder of its data directory; give a path inside it (relative, \
                 without `..`)",
                place(text, value.span().start)
            )));
        }
        edits.push((
            value.span(),
            toml_string(&align_data.join(path.as_ref()).display().to_string()),
        ));
    }
    Ok(format!("{OUT_LINE}{}", apply(text, edits)))
}

/// The checks `fuselab align` makes before it trains, so that a request learns of them at once.
fn check(config: &AttackConfig) -> Result<(), AppError> {
    config.check().map_err(bad)
}

type Entry<'a, 'i> = (
    &'a toml::Spanned<toml::de::DeString<'i>>,
    &'a toml::Spanned<DeValue<'i>>,
);

fn entry<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<Entry<'a, 'i>> {
    table.iter().find(|(k, _)| k.get_ref() == name)
}

/// `text` with each span replaced (spans do not overlap).
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_owned();
    for (span, replacement) in edits {
        out.replace_range(span, &replacement);
    }
    out
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// "line L, column C (`the line`)" of byte `offset` in `text`.
fn place(text: &str, offset: usize) -> String {
    let Some(before) = text.get(..offset) else {
        return "the configuration".to_owned();
    };
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line: String = text[line_start..]
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(80)
        .collect();
    format!(
        "line {}, column {} (`{line}`)",
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1
    )
}

/// A TOML error in terms of the user's text; `shift` bytes were put before it.
fn toml_message(text: &str, shift: usize, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) if span.start >= shift && span.start - shift < text.len() => format!(
            "the configuration does not fit, at {}: {message}",
            place(text, span.start - shift)
        ),
        _ => format!("the configuration does not fit: {message}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs.

/// `POST /api/align/runs`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<StartAlignRun>, JsonRejection>,
) -> Result<(StatusCode, Json<AlignRunCreated>), AppError> {
    actor.require_training()?;
    let Json(request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    let dirs = state.align.dirs()?.clone();
    let config = prepare_config(&request.config, &dirs.data)?;
    let mut bytes = [0_u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal {
        context: "drawing a run id",
        source: anyhow::anyhow!("{e}"),
    })?;
    let id = crate::mask::hex(&bytes);
    let dir = dirs.runs.join(&id);
    let record = Record {
        id: id.clone(),
        action: request.action,
        status: AlignRunStatus::Queued,
        created: now(),
        started: None,
        finished: None,
        error: None,
        attempts: 0,
        owner: actor.name().map(str::to_owned),
    };
    admit(&mut *state.align.live()?, &id, actor.name())?;
    let written = std::fs::create_dir_all(&dir)
        .context("cannot create the run folder")
        .and_then(|()| {
            std::fs::write(dir.join(CONFIG), &config).context("cannot write the configuration")
        })
        .and_then(|()| write_record(&dir, &record));
    if let Err(error) = written {
        state.align.live()?.remove(&id);
        return Err(internal("creating an alignment run")(error));
    }
    tracing::info!(
        user = actor.name(),
        action = request.action.name(),
        "alignment run queued"
    );
    start_job(&state, id.clone());
    Ok((
        StatusCode::ACCEPTED,
        Json(AlignRunCreated {
            id,
            status: AlignRunStatus::Queued,
        }),
    ))
}

/// `POST /api/align/runs/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AlignRunCreated>), AppError> {
    let (dir, _) = state.align.run_for(&id, &actor)?;
    actor.require_training()?;
    {
        let mut live = state.align.live()?;
        let mut record = read_record(&dir).map_err(internal("reading a run record"))?;
        if live.contains_key(&id) || !record.status.resumable() {
            return Err(AppError::client(
                StatusCode::CONFLICT,
                format!(
                    "run {id} is {}: only a failed or interrupted run can be resumed",
                    record.status.name()
                ),
            ));
        }
        record.status = AlignRunStatus::Queued;
        record.error = None;
        record.finished = None;
        admit(&mut live, &id, record.owner.as_deref())?;
        write_record(&dir, &record).map_err(internal("resuming an alignment run"))?;
    }
    tracing::info!(user = actor.name(), "alignment run queued again");
    start_job(&state, id.clone());
    Ok((
        StatusCode::ACCEPTED,
        Json(AlignRunCreated {
            id,
            status: AlignRunStatus::Queued,
        }),
    ))
}

/// How long `DELETE` waits for a running run to stop before answering 202.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// `DELETE /api/align/runs/{id}`: cancels the run if a job holds it, and deletes its folder.
/// 204 once it is gone; 202 when its current training step has not ended within
/// [`CANCEL_WAIT`] (the job deletes the folder when it stops).
pub async fn remove(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let (dir, _) = state.align.run_for(&id, &actor)?;
    let flag = state.align.live()?.get(&id).map(|l| l.cancel.clone());
    let Some(flag) = flag else {
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
            .await
            .map_err(|e| AppError::Internal {
                context: "deleting an alignment run",
                source: e.into(),
            })?
            .map_err(|e| AppError::Internal {
                context: "deleting an alignment run",
                source: e.into(),
            })?;
        tracing::info!(user = actor.name(), "alignment run deleted");
        return Ok(StatusCode::NO_CONTENT);
    };
    flag.store(true, Ordering::Relaxed);
    tracing::info!(user = actor.name(), "cancelling an alignment run");
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    while tokio::time::Instant::now() < deadline {
        if !state.align.live()?.contains_key(&id) {
            return Ok(StatusCode::NO_CONTENT);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(StatusCode::ACCEPTED)
}

/// Waits for the training slot, then runs `id` on a blocking thread and records the outcome.
fn start_job(state: &AppState, id: String) {
    let state = state.clone();
    tokio::spawn(async move {
        let Ok(dirs) = state.align.dirs().cloned() else {
            return;
        };
        let dir = dirs.runs.join(&id);
        let Some(cancel) = state
            .align
            .live
            .lock()
            .ok()
            .and_then(|l| l.get(&id).map(|live| live.cancel.clone()))
        else {
            return;
        };
        let permit = state.training.clone().acquire_owned().await;
        let outcome = match permit {
            Ok(_permit) => {
                let (run_dir, data) = (dir.clone(), dirs.data.clone());
                let flag = cancel.clone();
                tokio::task::spawn_blocking(move || {
                    if flag.load(Ordering::Relaxed) {
                        return Err(Failure::Cancelled);
                    }
                    cancel::scoped(flag, || execute(&run_dir, &data))
                })
                .await
                .unwrap_or_else(|e| Err(Failure::Crashed(e.to_string())))
            }
            Err(e) => Err(Failure::Crashed(e.to_string())),
        };
        if cancel.load(Ordering::Relaxed) {
            // Cancelled by `DELETE`: the run goes with its folder.
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                tracing::error!(%error, "cannot delete a cancelled alignment run's folder");
            }
            if let Ok(mut live) = state.align.live.lock() {
                live.remove(&id);
            }
            tracing::info!("alignment run cancelled and deleted");
            return;
        }
        let update = read_record(&dir).and_then(|mut record| {
            record.finished = Some(now());
            match outcome {
                Ok(()) => {
                    record.status = AlignRunStatus::Done;
                    record.error = None;
                    tracing::info!(%id, "alignment run done");
                }
                Err(failure) => {
                    record.status = AlignRunStatus::Failed;
                    record.error = Some(failure.client_message(&dir, &dirs.data));
                    tracing::error!(%id, error = %failure, "alignment run failed");
                }
            }
            write_record(&dir, &record)
        });
        if let Err(error) = update {
            tracing::error!(%id, error = %format!("{error:#}"), "cannot record an alignment run's end");
        }
        if let Ok(mut live) = state.align.live.lock() {
            live.remove(&id);
        }
    });
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The run returned an error.
    #[error("{0:#}")]
    Run(anyhow::Error),
    /// The job panicked or could not start.
    #[error("the job crashed: {0}")]
    Crashed(String),
    /// `DELETE` cancelled it.
    #[error("cancelled")]
    Cancelled,
}

impl Failure {
    /// What the client is told: the error chain, with the server's folders left out.
    fn client_message(&self, run_dir: &FsPath, data_dir: &FsPath) -> String {
        match self {
            Self::Run(error) => format!("{error:#}")
                .replace(&format!("{}/", run_dir.display()), "")
                .replace(&data_dir.display().to_string(), "<data-dir>"),
            Self::Crashed(_) => "the run crashed; the details are in the server log".to_owned(),
            Self::Cancelled => "the run was cancelled".to_owned(),
        }
    }
}

fn execute(dir: &FsPath, data_dir: &FsPath) -> Result<(), Failure> {
    let mut record = read_record(dir).map_err(Failure::Run)?;
    record.status = AlignRunStatus::Running;
    record.started = Some(now());
    record.attempts += 1;
    write_record(dir, &record).map_err(Failure::Run)?;
    let action = match record.action {
        AlignAction::Benchmark => attack::Action::Benchmark,
        AlignAction::Attack => attack::Action::Attack,
        AlignAction::Booster => attack::Action::Booster,
        AlignAction::Vaccine => attack::Action::Vaccine,
        AlignAction::Lisa => attack::Action::Lisa,
    };
    let args = ConfigArgs {
        config: dir.join(CONFIG),
        device: None,
        json: false,
    };
    let out = dir.join(OUT);
    let mut tail = Tail::open(dir, &out).map_err(Failure::Run)?;
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            loop {
                let last = stop.load(Ordering::Acquire);
                if let Err(error) = tail.sweep() {
                    tracing::warn!(error = %format!("{error:#}"), "cannot follow the metrics");
                }
                if last {
                    break;
                }
                std::thread::sleep(POLL);
            }
        });
        // Stops the follower however the run ends, a panic included, so the scope can join it.
        let _stop = StopOnDrop(&stop);
        attack::run(action, &args, data_dir)
    })
    .map_err(Failure::Run)?;
    if action != attack::Action::Benchmark {
        // The same files as the benchmark's, for the rows this action measured.
        crate::align::report::write_benchmark(&out, &report).map_err(Failure::Run)?;
    }
    Ok(())
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Copies every new line of the run's `metrics.jsonl` files (one per stage folder) into
/// `events.jsonl`, in the order they appear.
struct Tail {
    out: PathBuf,
    log: File,
    files: HashMap<PathBuf, Followed>,
}

/// What was copied of one metrics file.
#[derive(Debug, Default)]
struct Followed {
    /// The file's identity when last read: a resumed stage rewrites its file without the lines
    /// it will repeat.
    inode: Option<u64>,
    /// Bytes copied.
    offset: u64,
    /// The lines copied.
    lines: Vec<String>,
}

impl Tail {
    /// Reads what `events.jsonl` already holds (a line cut short by a kill is dropped).
    fn open(dir: &FsPath, out: &FsPath) -> anyhow::Result<Self> {
        let path = dir.join(EVENTS);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut files: HashMap<PathBuf, Followed> = HashMap::new();
        let mut kept = 0;
        for line in text.split_inclusive('\n') {
            let Some(logged) = line
                .strip_suffix('\n')
                .and_then(|l| serde_json::from_str::<Logged>(l).ok())
            else {
                break;
            };
            kept += line.len();
            let followed = files.entry(PathBuf::from(&logged.file)).or_default();
            followed.offset += logged.line.len() as u64 + 1;
            followed.lines.push(logged.line);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if kept < text.len() {
            log.set_len(kept as u64)
                .with_context(|| format!("cannot repair {}", path.display()))?;
        }
        Ok(Self {
            out: out.to_path_buf(),
            log,
            files,
        })
    }

    fn sweep(&mut self) -> anyhow::Result<()> {
        let mut found = Vec::new();
        metrics_files(&self.out, &mut found);
        // Older files first: a stage that ended just before the next one began comes first.
        found.sort_by_key(|(_, meta)| meta.modified().ok());
        for (path, meta) in found {
            let Ok(relative) = path.strip_prefix(&self.out) else {
                continue;
            };
            let name = relative.display().to_string();
            let followed = self.files.entry(relative.to_path_buf()).or_default();
            let inode = inode(&meta);
            let fresh = if followed.inode != Some(inode) || meta.len() < followed.offset {
                // New, or rewritten: keep what still matches, copy the rest.
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let lines = complete_lines(&bytes);
                let same = followed
                    .lines
                    .iter()
                    .zip(&lines)
                    .take_while(|(a, b)| a == b)
                    .count();
                followed.lines.truncate(same);
                followed.offset = followed.lines.iter().map(|l| l.len() as u64 + 1).sum();
                followed.inode = Some(inode);
                lines[same..].to_vec()
            } else if meta.len() > followed.offset {
                let mut file =
                    File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
                file.seek(SeekFrom::Start(followed.offset))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                complete_lines(&bytes)
            } else {
                Vec::new()
            };
            for line in fresh {
                let logged = serde_json::to_string(&Logged {
                    file: name.clone(),
                    line: line.clone(),
                })?;
                self.log.write_all(format!("{logged}\n").as_bytes())?;
                followed.offset += line.len() as u64 + 1;
                followed.lines.push(line);
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// The lines of `bytes` that end with a newline (a line still being written is left for later).
fn complete_lines(bytes: &[u8]) -> Vec<String> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every `metrics.jsonl` under `dir`.
fn metrics_files(dir: &FsPath, found: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            metrics_files(&path, found);
        } else if entry.file_name() == "metrics.jsonl" {
            found.push((path, meta));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading runs.

/// `GET /api/align/runs`.
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<AlignRunSummary>>, AppError> {
    let runs = state.align.dirs()?.runs.clone();
    let mut list = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<AlignRunSummary>> {
        let mut list = Vec::new();
        let entries = match std::fs::read_dir(&runs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(list),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let dir = entry?.path();
            let is_run = dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_run_id);
            if let Some(record) = is_run.then(|| read_record(&dir).ok()).flatten()
                && actor.owns(record.owner.as_deref())
            {
                list.push(summary(&dir, record));
            }
        }
        Ok(list)
    })
    .await
    .map_err(|e| AppError::Internal {
        context: "listing alignment runs",
        source: e.into(),
    })?
    .map_err(internal("listing alignment runs"))?;
    list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(list))
}

/// `GET /api/align/runs/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<AlignRunDetail>, AppError> {
    let (dir, record) = state.align.run_for(&id, &actor)?;
    let config = std::fs::read_to_string(dir.join(CONFIG))
        .context("cannot read the configuration")
        .map_err(internal("reading a run"))?
        // Where the server keeps its data is not the client's business.
        .replace(
            &state.align.dirs()?.data.display().to_string(),
            "<data-dir>",
        );
    let files = FILES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| file_path(&dir, name).is_file())
        .map(str::to_owned)
        .collect();
    Ok(Json(AlignRunDetail {
        run: summary(&dir, record),
        config,
        files,
    }))
}

/// Where file `name` of a run is (`metrics.jsonl` is made from `events.jsonl`).
fn file_path(dir: &FsPath, name: &str) -> PathBuf {
    if name == "metrics.jsonl" {
        dir.join(EVENTS)
    } else {
        dir.join(OUT).join(name)
    }
}

/// `GET /api/align/runs/{id}/files/{name}`.
pub async fn file(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (dir, _) = state.align.run_for(&id, &actor)?;
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
    let path = file_path(&dir, &name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(AppError::Internal {
                context: "reading a run's file",
                source: e.into(),
            });
        }
    };
    let bytes = if name == "metrics.jsonl" {
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str::<Logged>(l).ok())
            .fold(String::new(), |mut out, logged| {
                out.push_str(&logged.line);
                out.push('\n');
                out
            })
            .into_bytes()
    } else {
        bytes
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

// ---------------------------------------------------------------------------------------------
// Events.

/// `GET /api/align/runs/{id}/events`.
pub async fn events(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let (dir, _) = state.align.run_for(&id, &actor)?;
    let skip = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |last| last + 1);
    let follower = Follower {
        dir,
        offset: 0,
        index: 0,
        skip,
        status: None,
        pending: VecDeque::new(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|event| (Ok(event), follower))
    });
    Ok(Sse::new(super::bounded(stream)).keep_alive(KeepAlive::default()))
}

/// One client's position in a run's events.
struct Follower {
    dir: PathBuf,
    /// Bytes of `events.jsonl` read.
    offset: u64,
    /// Index of the next metrics line.
    index: u64,
    /// Metrics lines before this index are not sent again.
    skip: u64,
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
            self.poll();
            if self.pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    fn poll(&mut self) {
        self.read_metrics();
        let record = match read_record(&self.dir) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "cannot follow a run");
                self.pending.push_back(
                    Event::default()
                        .event("error")
                        .data(r#"{"error":"the run's record cannot be read; the details are in the server log"}"#),
                );
                self.ended = true;
                return;
            }
        };
        // The end is told by `done` or `error` alone.
        if self.status != Some(record.status) && !record.status.finished() {
            self.status = Some(record.status);
            self.pending.push_back(
                Event::default()
                    .event("status")
                    .data(format!(r#"{{"status":"{}"}}"#, record.status.name())),
            );
        }
        if record.status.finished() {
            // The job copies its last lines before it records the end.
            self.read_metrics();
            let kind = if record.status == AlignRunStatus::Done {
                "done"
            } else {
                "error"
            };
            let summary = summary(&self.dir, record);
            self.pending.push_back(
                Event::default()
                    .event(kind)
                    .data(serde_json::to_string(&summary).unwrap_or_default()),
            );
            self.ended = true;
        }
    }

    fn read_metrics(&mut self) {
        let Ok(mut file) = File::open(self.dir.join(EVENTS)) else {
            return;
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return;
        }
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += end as u64;
        for line in String::from_utf8_lossy(&bytes[..end]).lines() {
            let Ok(logged) = serde_json::from_str::<Logged>(line) else {
                continue;
            };
            let index = self.index;
            self.index += 1;
            if index >= self.skip {
                self.pending.push_back(
                    Event::default()
                        .event("metrics")
                        .id(index.to_string())
                        .data(logged.line),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_lines_and_columns() {
        let text = "a = 1\nbad = 2\n";
        assert_eq!(place(text, 6), "line 2, column 1 (`bad = 2`)");
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
    }
}

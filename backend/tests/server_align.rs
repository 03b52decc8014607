//! Harmful fine-tuning runs on the server (`/api/align/runs`), through `app()` without a socket,
//! on `examples/attack-small.toml`: a benchmark streams every metrics line and ends with its
//! results, table, charts and report; bad configurations are refused naming the line and key;
//! `out` and data paths cannot leave the run's folder; runs queue one at a time; a run whose
//! server was killed is taken up again by the next server's worker and resumes from the
//! checkpoint its folder in the artifact store holds.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use fuselab::server::{JobQueue, ServerConfig, app};
use fuselab_shared::api::{
    AlignMetrics, AlignRunCreated, AlignRunDetail, AlignRunStatus, AlignRunSummary,
};
use serde_json::{Value, json};
use support::{http, served_address};
use tower::ServiceExt as _;

const SMALL: &str = include_str!("../../examples/attack-small.toml");
const BIN: &str = env!("CARGO_BIN_EXE_fuselab");

/// Every stage's steps in the small configuration's benchmark: the base, three alignments, eight
/// attacks.
const BENCHMARK_STEPS: usize = 120 + 3 * 20 + 8 * 16;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fuselab-server-align-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The app on `data_dir` with its job database and artifact store where `fuselab serve` keeps
/// them, and an in-process worker that runs alignment jobs (kept alive by the caller).
async fn server(data_dir: &Path) -> (Router, fuselab::jobs::InProcessWorker) {
    let store =
        fuselab::jobs::JobStore::open(&fuselab::db::sqlite_url(&data_dir.join("fuselab.sqlite3")))
            .await
            .unwrap();
    let artifacts = fuselab::artifacts::ArtifactStore::local(&data_dir.join("artifacts")).unwrap();
    let mut options =
        fuselab::jobs::WorkerOptions::new(vec![fuselab::jobs::Capability::Cpu]).unwrap();
    options.poll = Duration::from_millis(100);
    let worker = fuselab::jobs::InProcessWorker::start(
        store.clone(),
        options,
        fuselab::align::job::handlers(data_dir, &artifacts, None),
    );
    let app = app(ServerConfig {
        data_dir: Some(data_dir.to_path_buf()),
        jobs: Some(JobQueue { store, artifacts }),
        ..ServerConfig::default()
    });
    (app, worker)
}

/// Where run `id`'s folder is kept.
fn stored(data: &Path, id: &str) -> PathBuf {
    data.join("artifacts/align").join(id).join("out")
}

async fn send(
    app: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(
        Duration::from_mins(5),
        to_bytes(response.into_body(), usize::MAX),
    )
    .await
    .expect("the response ends within 5 minutes")
    .unwrap();
    (status, headers, body.to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error_of(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    value["error"].as_str().unwrap().to_owned()
}

async fn start(app: &Router, action: &str, config: &str) -> AlignRunCreated {
    let (status, _, body) = send(
        app,
        post_json(
            "/api/align/runs",
            &json!({"action": action, "config": config}),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

fn parse_sse(body: &[u8]) -> Vec<Sse> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|block| {
            let mut event = Sse {
                event: "message".to_owned(),
                id: None,
                data: String::new(),
            };
            let mut any = false;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    v.trim().clone_into(&mut event.event);
                    any = true;
                } else if let Some(v) = line.strip_prefix("id:") {
                    event.id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            any.then_some(event)
        })
        .collect()
}

/// The run's events until it ends, from `Last-Event-ID` + 1 when given.
async fn follow(app: &Router, id: &str, last_event_id: Option<usize>) -> Vec<Sse> {
    let mut request = Request::get(format!("/api/align/runs/{id}/events"));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last.to_string());
    }
    let (status, headers, body) = send(app, request.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    parse_sse(&body)
}

fn metrics(events: &[Sse]) -> Vec<(usize, AlignMetrics)> {
    events
        .iter()
        .filter(|e| e.event == "metrics")
        .map(|e| {
            (
                e.id.as_deref().unwrap().parse().unwrap(),
                serde_json::from_str(&e.data).unwrap(),
            )
        })
        .collect()
}

fn last_summary(events: &[Sse], kind: &str) -> AlignRunSummary {
    let last = events.last().expect("some events");
    assert_eq!(last.event, kind, "the last event: {last:?}");
    serde_json::from_str(&last.data).unwrap()
}

fn count_files(dir: &Path, name: &str) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            count += count_files(&path, name);
        } else if entry.file_name() == name {
            count += std::fs::read_to_string(&path).unwrap().lines().count();
        }
    }
    count
}

/// A finished benchmark's files, with their types; nothing else of its folder is served.
async fn check_files(app: &Router, id: &str) {
    // The files, with their types.
    for (name, kind, expected) in [
        ("hs.svg", "image/svg+xml", "<svg"),
        ("fa.svg", "image/svg+xml", "<svg"),
        ("report.html", "text/html; charset=utf-8", "<!doctype html>"),
        (
            "results.csv",
            "text/csv; charset=utf-8",
            "defence,p,n,hs,hs_plus,fa",
        ),
        (
            "results.md",
            "text/markdown; charset=utf-8",
            "| defence | p | n |",
        ),
        ("results.json", "application/json", "\"results\""),
        (
            "metrics.jsonl",
            "application/x-ndjson",
            "\"stage\":\"base\"",
        ),
    ] {
        let (status, headers, body) =
            send(app, get(&format!("/api/align/runs/{id}/files/{name}"))).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(headers[header::CONTENT_TYPE], kind, "{name}");
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.to_lowercase().contains(&expected.to_lowercase()),
            "{name}: {}",
            &text[..text.len().min(200)]
        );
        if name == "metrics.jsonl" {
            assert_eq!(text.lines().count(), BENCHMARK_STEPS);
        }
    }
    // Nothing else of the run folder is served.
    for name in [
        "config.toml",
        "run.json",
        "events.jsonl",
        "tokenizer.json",
        "..%2Frun.json",
        "base%2Fstate.json",
    ] {
        let (status, _, body) = send(app, get(&format!("/api/align/runs/{id}/files/{name}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        assert!(error_of(&body).contains("has no file"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benchmark_streams_its_metrics_and_serves_its_results_table_and_charts() {
    let data = scratch("benchmark");
    let (app, _worker) = server(&data).await;
    let started = Instant::now();
    let created = start(&app, "benchmark", SMALL).await;
    assert_eq!(created.status, AlignRunStatus::Queued);
    let id = created.id;
    let run = stored(&data, &id);

    let events = follow(&app, &id, None).await;
    eprintln!("benchmark run: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(events[0].event, "status");
    let lines = metrics(&events);
    assert_eq!(lines.len(), BENCHMARK_STEPS, "one metrics event per step");
    for pair in lines.windows(2) {
        assert!(pair[0].0 < pair[1].0, "event ids grow");
    }
    for (_, line) in &lines {
        assert!(line.step >= 1 && line.step <= line.total_steps && line.loss.is_finite());
    }
    let stages: Vec<&str> = lines.iter().map(|(_, l)| l.stage.as_str()).collect();
    assert_eq!(stages[0], "base");
    assert!(stages.contains(&"align-booster") && stages.contains(&"attack-lisa-p0.5-n40"));
    assert_eq!(
        lines.len(),
        count_files(&run, "metrics.jsonl"),
        "every line of every stage's metrics.jsonl"
    );
    let done = last_summary(&events, "done");
    assert_eq!(done.status, AlignRunStatus::Done);
    // Three aligned models, then 4 defences × 2 ratios × 1 size.
    assert_eq!(done.results.len(), 3 + 4 * 2);
    assert!(done.results.iter().all(|r| (0.0..=100.0).contains(&r.hs)));

    // A client that reconnects gets what it missed, then the end.
    let ids: Vec<usize> = lines.iter().map(|(i, _)| *i).collect();
    let again = follow(&app, &id, Some(ids[BENCHMARK_STEPS - 3])).await;
    let tail = metrics(&again);
    assert_eq!(
        tail.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        ids[BENCHMARK_STEPS - 2..]
    );
    assert_eq!(last_summary(&again, "done").results, done.results);

    // The list and the run.
    let (status, _, body) = send(&app, get("/api/align/runs")).await;
    assert_eq!(status, StatusCode::OK);
    let list: Vec<AlignRunSummary> = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].status, AlignRunStatus::Done);
    assert_eq!(list[0].results, done.results);
    let raw: Value = serde_json::from_slice(&body).unwrap();
    let row = &raw[0]["results"][3];
    for key in ["defence", "p", "n", "hs", "hs_plus", "fa"] {
        assert!(row.get(key).is_some(), "{key} in {row}");
    }

    let (status, _, body) = send(&app, get(&format!("/api/align/runs/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let detail: AlignRunDetail = serde_json::from_slice(&body).unwrap();
    assert!(
        !detail.config.lines().any(|l| l.starts_with("out")) && !detail.config.contains("../runs"),
        "the request's out is gone: {}",
        detail.config
    );
    assert!(detail.config.contains("[grid]"));
    assert_eq!(
        detail.files,
        [
            "hs.svg",
            "fa.svg",
            "report.html",
            "results.csv",
            "results.md",
            "results.json",
            "metrics.jsonl"
        ]
    );
    // The example's `out` would have been ../runs/attack-small; the work folder is gone.
    assert!(!data.join("runs").exists() && !data.parent().unwrap().join("runs").exists());
    assert!(!data.join("align-work").join(&id).exists());

    check_files(&app, &id).await;

    // A finished run is not resumed.
    let (status, _, body) = send(
        &app,
        Request::post(format!("/api/align/runs/{id}/resume"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_of(&body).contains("is done"));
    let _ = std::fs::remove_dir_all(&data);
}

/// An LLM-ensemble run: LLM-TOPLA-Summary on the tiny model over a study in `align-data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_ensemble_run_trains_as_a_job_and_serves_its_report() {
    let data = scratch("summary");
    support::write_fusion_study(&data.join("align-data/study"), "questions.jsonl", "answers");
    let (app, _worker) = server(&data).await;
    let config = r#"device = "cpu"
seed = 5
task = "gsm8k"
questions = "study/questions.jsonl"
answers = "study/answers"
outputs_per_member = 1

[model]
name = "tiny"
lora = { rank = 4, alpha = 8, dropout = 0.0, targets = ["q_proj"] }
train = { batch_size = 8, epochs = 2, max_len = 96, seed = 5, optim = { learning_rate = 3e-3, schedule = "linear", weight_decay = 0.0 } }

[eval]
max_new_tokens = 8
"#;
    let id = start(&app, "topla-summary", config).await.id;
    let events = follow(&app, &id, None).await;
    let lines = metrics(&events);
    assert_eq!(
        lines.len(),
        2 * 42,
        "one metrics event per step of 2 epochs"
    );
    assert!(lines.iter().all(|(_, l)| l.stage == "topla-summary"));
    let done = last_summary(&events, "done");
    assert_eq!(done.status, AlignRunStatus::Done, "{:?}", done.error);
    assert!(done.results.is_empty());
    let (status, _, body) = send(
        &app,
        get(&format!("/api/align/runs/{id}/files/report.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["schema"], "fuselab.topla.summary/v1");
    assert_eq!(report["history"].as_array().unwrap().len(), 2);
    let (status, _, body) = send(
        &app,
        get(&format!("/api/align/runs/{id}/files/report.html")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("LLM-TOPLA-Summary"));
    let (_, _, body) = send(&app, get("/api/align/runs")).await;
    let runs: Vec<AlignRunSummary> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        runs[0].action,
        fuselab_shared::api::AlignAction::ToplaSummary
    );
    // A path outside the data folder is refused before anything is queued.
    let outside = config.replace("study/answers", "../answers");
    let (status, _, body) = send(
        &app,
        post_json(
            "/api/align/runs",
            &json!({"action": "topla-summary", "config": outside}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("answers"));
    let _ = std::fs::remove_dir_all(&data);
}

/// A CTR benchmark: DIN and CCN on generated synthetic data, one progress event per epoch,
/// the report's files served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctr_benchmark_trains_as_a_job_and_serves_its_results() {
    let data = scratch("ctr");
    let (app, _worker) = server(&data).await;
    let config = r#"seed = 1

[data.synthetic]
seed = 3
pages = 400
trigger_weight = 0.5

[model]
mlp = [32, 16]

[train]
epochs = 2
patience = 0

[benchmark]
models = ["din", "ccn"]
seeds = [1]
"#;
    let id = start(&app, "ctr-benchmark", config).await.id;
    let events = follow(&app, &id, None).await;
    let progress: Vec<fuselab_shared::api::CtrProgress> = events
        .iter()
        .filter(|e| e.event == "metrics")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(progress.len(), 4, "one event per epoch of 2 runs");
    assert_eq!(
        (
            progress[3].run.as_str(),
            progress[3].run_index,
            progress[3].runs,
            progress[3].epoch
        ),
        ("ccn-seed1", 2, 2, 2)
    );
    let done = last_summary(&events, "done");
    assert_eq!(done.status, AlignRunStatus::Done, "{:?}", done.error);
    let (status, _, body) = send(
        &app,
        get(&format!("/api/align/runs/{id}/files/results.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["schema"], "fuselab.ctr.report/v1");
    assert_eq!(report["summary"].as_array().unwrap().len(), 2);
    assert!(report["ceiling"].as_f64().unwrap() > 0.5);
    for file in ["report.html", "results.csv", "results.md"] {
        let (status, _, _) = send(&app, get(&format!("/api/align/runs/{id}/files/{file}"))).await;
        assert_eq!(status, StatusCode::OK, "{file}");
    }
    // Files a server run would read from outside its data folder are refused up front.
    let outside = "[data.files]\ntrain = \"/etc/passwd\"\nvalid = \"v.csv\"\ntest = \"t.csv\"\n";
    let (status, _, body) = send(
        &app,
        post_json(
            "/api/align/runs",
            &json!({"action": "ctr-benchmark", "config": outside}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body).contains("schema") || error_of(&body).contains("train"),
        "{}",
        error_of(&body)
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn bad_configurations_are_refused_naming_the_line_and_key() {
    let data = scratch("bad");
    let (app, _worker) = server(&data).await;
    let refused = |config: String, action: &'static str| {
        let app = app.clone();
        async move {
            let (status, _, body) = send(
                &app,
                post_json(
                    "/api/align/runs",
                    &json!({"action": action, "config": config}),
                ),
            )
            .await;
            (status, error_of(&body))
        }
    };
    let line_of = |needle: &str| SMALL.lines().position(|l| l.starts_with(needle)).unwrap() + 1;

    // An unknown key, a value of the wrong type, broken syntax.
    let (status, message) = refused(
        SMALL.replace("vocab_size = 512", "vocab_sise = 512"),
        "benchmark",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("vocab_sise"), "{message}");
    assert!(
        message.contains(&format!("line {}", line_of("vocab_size"))),
        "{message}"
    );
    let (status, message) = refused(
        SMALL.replacen("seed = 42\n", "seed = \"many\"\n", 1),
        "attack",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("seed = \"many\""), "{message}");
    assert!(
        message.contains(&format!("line {}", line_of("seed"))),
        "{message}"
    );
    let (status, message) = refused(SMALL.replace("[grid]", "[grid"), "benchmark").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains(&format!("line {}", line_of("[grid]"))),
        "{message}"
    );
    // What `fuselab align` would refuse before training.
    let (status, message) = refused(
        SMALL.replace("p = [0.0, 0.5]", "p = [0.0, 1.5]"),
        "benchmark",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("grid.p[1] = 1.5"), "{message}");
    // Files to read come from the data directory's align-data folder only.
    for path in ["../../secret.json", "/etc/passwd", ""] {
        let config = SMALL.replace(
            "synthetic = true",
            &format!("synthetic = true\nrefusals = {path:?}"),
        );
        let (status, message) = refused(config, "benchmark").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(message.contains("[data] refusals"), "{message}");
        assert!(message.contains("align-data"), "{message}");
    }
    let config = SMALL.replace("model = \"tiny\"", "model = \"../models\"");
    let (status, message) = refused(config, "booster").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("[base] model"), "{message}");
    // An action that does not exist.
    let (status, _, _) = send(
        &app,
        post_json(
            "/api/align/runs",
            &json!({"action": "jailbreak", "config": SMALL}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing was stored.
    let (_, _, body) = send(&app, get("/api/align/runs")).await;
    assert_eq!(body, b"[]");
    assert!(!data.join("artifacts/align").exists());
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn unknown_runs_and_files_are_not_found() {
    let data = scratch("unknown");
    let (app, _worker) = server(&data).await;
    for uri in [
        "/api/align/runs/0123456789abcdef",
        "/api/align/runs/0123456789abcdef/events",
        "/api/align/runs/0123456789abcdef/files/hs.svg",
        "/api/align/runs/..%2F..%2Fetc",
        "/api/align/runs/align-runs",
    ] {
        let (status, _, body) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(error_of(&body).contains("no alignment run"), "{uri}");
    }
    let (status, _, _) = send(
        &app,
        Request::post("/api/align/runs/0123456789abcdef/resume")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a job queue there are no runs.
    let (status, _, body) = send(&app_without_jobs(), get("/api/align/runs")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&body).contains("no job queue"));
    let _ = std::fs::remove_dir_all(&data);
}

fn app_without_jobs() -> Router {
    app(ServerConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_cannot_leave_the_run_folder_and_runs_wait_their_turn() {
    let data = scratch("escape");
    let (app, _worker) = server(&data).await;
    let outside = data.join("outside");
    let absolute = SMALL.replace(
        "out = \"../runs/attack-small\"",
        &format!("out = {:?}", outside.display().to_string()),
    );
    let relative = SMALL.replace(
        "out = \"../runs/attack-small\"",
        "out = \"../../../outside\"",
    );
    let first = start(&app, "booster", &absolute).await;
    let second = start(&app, "booster", &relative).await;
    // One trains at a time: the second waits for the first.
    let events = follow(&app, &second.id, None).await;
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "status")
        .map(|e| e.data.as_str())
        .collect();
    assert_eq!(
        statuses,
        [r#"{"status":"queued"}"#, r#"{"status":"running"}"#],
        "{events:?}"
    );
    let second_done = last_summary(&events, "done");
    let first_done = last_summary(&follow(&app, &first.id, None).await, "done");
    assert!(first_done.finished.unwrap() <= second_done.started.unwrap());
    // A booster run measures the Booster-aligned model; the server writes the same files as a
    // benchmark's for it.
    assert_eq!(second_done.results.len(), 1);
    assert_eq!(second_done.results[0].defence, "booster");
    assert_eq!(second_done.results[0].p, None);
    for run in [&first.id, &second.id] {
        let folder = stored(&data, run);
        assert!(folder.join("base/state.json").is_file());
        assert!(
            folder
                .join("align/booster/adapter_model.safetensors")
                .is_file()
        );
        assert!(folder.join("hs.svg").is_file());
    }
    assert!(!outside.exists(), "an absolute out is not followed");
    assert!(!data.join("outside").exists() && !data.parent().unwrap().join("outside").exists());
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_server_was_killed_resumes_from_its_checkpoint_on_the_next_one() {
    let data = scratch("killed");
    // A real server, killed with SIGKILL while the base model trains (without accounts: on
    // loopback, as allowed; accounts have their own tests).
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--auth",
            "off",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = served_address(&line);
    let body = json!({"action": "booster", "config": SMALL}).to_string();
    let (status, answer) = http(
        &addr,
        "POST",
        "/api/align/runs",
        "Content-Type: application/json\r\n",
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let created: AlignRunCreated = serde_json::from_slice(&answer).unwrap();
    // The checkpoint as the artifact store holds it: what another worker would restore.
    let run = stored(&data, &created.id);
    let state = run.join("base/state.json");
    let deadline = Instant::now() + Duration::from_mins(2);
    let checkpointed = loop {
        assert!(Instant::now() < deadline, "no checkpoint within 120 s");
        if let Ok(text) = std::fs::read_to_string(&state)
            && let Ok(saved) = serde_json::from_str::<Value>(&text)
            && saved["state"]["step"].as_u64().unwrap_or(0) >= 24
        {
            break saved["state"]["step"].as_u64().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checkpointed < 120, "the base finished before the kill");

    // The next server's worker takes the run up once the dead one's lease lapses.
    let (app, _worker) = server(&data).await;
    let (_, _, body) = send(&app, get(&format!("/api/align/runs/{}", created.id))).await;
    let detail: AlignRunDetail = serde_json::from_slice(&body).unwrap();
    assert!(!detail.run.status.finished(), "{:?}", detail.run);
    let events = follow(&app, &created.id, None).await;
    let done = last_summary(&events, "done");
    assert_eq!(done.results.len(), 1);
    // The base's steps: the first server's from 1, then the resumed attempt's from just after
    // its last checkpoint, not from 1 again.
    let mut base: Vec<usize> = metrics(&events)
        .iter()
        .filter(|(_, m)| m.stage == "base")
        .map(|(_, m)| m.step)
        .collect();
    assert_eq!(base[0], 1);
    assert_eq!(base.iter().filter(|&&s| s == 1).count(), 1, "{base:?}");
    assert_eq!(*base.last().unwrap(), 120);
    base.sort_unstable();
    base.dedup();
    assert_eq!(base, (1..=120).collect::<Vec<_>>());
    // Its metrics file, and the one served, hold each step once (the resumed stage dropped
    // what it repeated).
    let steps_of = |text: &str| -> Vec<u64> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["stage"] == "base")
            .map(|l| l["step"].as_u64().unwrap())
            .collect()
    };
    let logged = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(steps_of(&logged), (1..=120).collect::<Vec<_>>());
    let (status, _, served) = send(
        &app,
        get(&format!(
            "/api/align/runs/{}/files/metrics.jsonl",
            created.id
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        steps_of(&String::from_utf8(served).unwrap()),
        (1..=120).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&data);
}

/// Each run of a finished pose benchmark serves its model's two files, which load as the model
/// the run trained; other names and files are 404.
async fn serves_each_pose_model(app: &Router, id: &str, report: &Value) {
    let model = |name: &str, file: &str| {
        let app = app.clone();
        let uri = format!("/api/align/runs/{id}/models/{name}/{file}");
        async move { send(&app, get(&uri)).await }
    };
    for run in report["runs"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        let (status, _, description) = model(name, "model.json").await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let (status, _, weights) = model(name, "model.safetensors").await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let device = fuselab_ml::Device::flex();
        let (loaded, size) =
            fuselab_ml::pose::saved::from_bytes(&description, &weights, &device).unwrap();
        assert_eq!(size, [48, 32]);
        assert_eq!(
            serde_json::to_value(&loaded.config).unwrap(),
            run["model"],
            "{name}"
        );
    }
    for (name, file) in [
        ("io-seed2", "checkpoint.safetensors"),
        ("io-seed9", "model.json"),
        ("..", "model.json"),
        ("io-seed2-x", "model.json"),
    ] {
        let (status, _, body) = model(name, file).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}/{file}");
        assert!(
            error_of(&body).contains("no pose model"),
            "{}",
            error_of(&body)
        );
    }
}

/// A pose ablation as a job: two rungs on tiny synthetic clips, one progress event per epoch,
/// the report's files (tables and sample frames) served, and each run's trained model (for the
/// Pose page), which loads as the model it was; a configuration without `[benchmark]` is
/// refused before anything is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pose_benchmark_trains_as_a_job_and_serves_its_results() {
    let data = scratch("pose");
    let (app, _worker) = server(&data).await;
    let config = r#"seed = 1
test_clips = 4

[data]
width = 48
height = 32
frames = 3
train_clips = 16
val_clips = 4
test_clips = 4

[model]
width = 8
offset_groups = 2
jmml_blocks = 1

[train]
epochs = 2
clips_per_epoch = 8
batch_size = 4
val_clips = 4

[benchmark]
rungs = ["single_frame", "io"]
seeds = [2]
"#;
    let id = start(&app, "pose-benchmark", config).await.id;
    let events = follow(&app, &id, None).await;
    let epochs: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "metrics")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(epochs.len(), 4, "one event per epoch of 2 runs");
    assert_eq!(epochs[3]["run"], "io-seed2");
    let done = last_summary(&events, "done");
    assert_eq!(done.status, AlignRunStatus::Done, "{:?}", done.error);
    let (status, _, body) = send(
        &app,
        get(&format!("/api/align/runs/{id}/files/results.json")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_slice(&body).unwrap();
    let labels: Vec<&str> = report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["single frame", "+ IO (JM-Pose)"]);
    for file in ["report.html", "results.md", "samples.png"] {
        let (status, _, _) = send(&app, get(&format!("/api/align/runs/{id}/files/{file}"))).await;
        assert_eq!(status, StatusCode::OK, "{file}");
    }
    serves_each_pose_model(&app, &id, &report).await;
    let without = config.split("[benchmark]").next().unwrap();
    let (status, _, body) = send(
        &app,
        post_json(
            "/api/align/runs",
            &json!({"action": "pose-benchmark", "config": without}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&body).contains("[benchmark]"),
        "{}",
        error_of(&body)
    );
    let _ = std::fs::remove_dir_all(&data);
}

//! The HTTP API and the embedded app, through `app()` without a socket.

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use fuselab::server::{ServerConfig, app};
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn send(app: Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, headers, body.to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(body));
    })
}

#[tokio::test]
async fn health_reports_ok_and_version() {
    let (status, headers, body) = send(app(ServerConfig::default()), get("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        json_body(&body),
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
}

#[tokio::test]
async fn serves_the_embedded_app() {
    let (status, headers, body) = send(app(ServerConfig::default()), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains(r#"<script type="module" src="/main.js">"#),
        "{html}"
    );
    // The page starts from a script file, not an inline script (the CSP allows only 'self').
    let (status, headers, body) = send(app(ServerConfig::default()), get("/main.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("/pkg/fuselab_frontend.js")
    );

    let (status, headers, body) = send(
        app(ServerConfig::default()),
        get("/pkg/fuselab_frontend_bg.wasm"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert_eq!(&body[..4], b"\0asm");

    // A revalidation with the current ETag costs no body.
    let etag = headers[header::ETAG].clone();
    let request = Request::get("/pkg/fuselab_frontend_bg.wasm")
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(app(ServerConfig::default()), request).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    let (status, _, _) = send(app(ServerConfig::default()), get("/pkg/missing.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A browser that takes gzip gets the precompressed twin: same type, its own ETag, the
    // same bytes once inflated; `q=0` refuses it.
    let with_encoding = |path: &str, encoding: &str| {
        Request::get(path)
            .header(header::ACCEPT_ENCODING, encoding)
            .body(Body::empty())
            .unwrap()
    };
    for path in ["/pkg/fuselab_frontend_bg.wasm", "/"] {
        let (_, plain_headers, plain) = send(app(ServerConfig::default()), get(path)).await;
        let (status, headers, zipped) = send(
            app(ServerConfig::default()),
            with_encoding(path, "deflate, gzip;q=0.8, br"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "{path}");
        assert_eq!(headers[header::VARY], "accept-encoding");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            plain_headers[header::CONTENT_TYPE]
        );
        assert_ne!(headers[header::ETAG], plain_headers[header::ETAG]);
        assert!(zipped.len() < plain.len(), "{path}");
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&zipped[..]),
            &mut inflated,
        )
        .unwrap();
        assert_eq!(inflated, plain, "{path}");
        let (_, headers, body) = send(
            app(ServerConfig::default()),
            with_encoding(path, "gzip;q=0"),
        )
        .await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none(), "{path}");
        assert_eq!(body, plain);
    }
}

#[tokio::test]
async fn unknown_api_paths_and_methods_get_json_errors() {
    let (status, _, body) = send(app(ServerConfig::default()), get("/api/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        json_body(&body),
        json!({"error": "no API endpoint at /api/nope"})
    );

    let (status, _, body) =
        send(app(ServerConfig::default()), post_json("/api/health", "{}")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(json_body(&body)["error"].is_string());
}

#[tokio::test]
async fn cofailure_reports_accuracy_and_pairs() {
    let table = json!({
        "labels": [0, 1, 2, 0],
        "models": [
            {"name": "a", "predictions": [0, 1, 1, 1]},
            {"name": "b", "predictions": [1, 1, 1, 0]},
            {"name": "c", "predictions": [0, 0, 0, 0]}
        ]
    });
    let (status, _, body) = send(
        app(ServerConfig::default()),
        post_json("/api/cofailure", table.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let report = json_body(&body);
    assert_eq!(report["samples"], 4);
    assert_eq!(
        report["models"][0],
        json!({"name": "a", "failures": 2, "accuracy": 0.5})
    );
    assert_eq!(
        report["cofailures"],
        json!([[2, 1, 1], [1, 2, 1], [1, 1, 2]])
    );
}

#[tokio::test]
async fn bad_tables_get_messages_naming_the_problem() {
    let (status, _, body) = send(
        app(ServerConfig::default()),
        post_json("/api/cofailure", r#"{"labels": [0, 1], "models": [{"name": "a", "predictions": [0, 1]}, {"name": "b", "predictions": [0]}]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_body(&body)["error"],
        "model `b`: expected 2 predictions (one per label), found 1"
    );

    let (status, _, body) = send(
        app(ServerConfig::default()),
        post_json("/api/cofailure", r#"{"labels": [0, -1], "models": []}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = json_body(&body)["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("labels[1]") || message.contains("-1"),
        "{message}"
    );

    let (status, _, body) = send(
        app(ServerConfig::default()),
        post_json("/api/cofailure", "{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json_body(&body)["error"].is_string());
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let config = ServerConfig {
        max_body_bytes: 100,
        ..ServerConfig::default()
    };
    let labels = vec![0; 200];
    let body = json!({"labels": labels, "models": []}).to_string();
    let (status, _, body) = send(app(config), post_json("/api/cofailure", body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json_body(&body)["error"],
        "the request body is larger than the server's limit of 100 bytes"
    );
}

/// A pool with a clear best pair, in the engine's JSON input format.
fn small_pool() -> Value {
    json!({
        "labels": [0, 1, 2, 0, 1, 2, 0, 1],
        "models": [
            {"name": "a", "predictions": [0, 1, 2, 0, 1, 2, 1, 2]},
            {"name": "b", "predictions": [0, 1, 2, 1, 2, 2, 0, 1]},
            {"name": "c", "predictions": [1, 1, 2, 0, 1, 0, 0, 1]}
        ]
    })
}

fn options() -> Value {
    json!({"top_k": 3, "min_size": 2, "max_size": 3})
}

/// The server's analysis of a pool, read from its event stream: progress events, then one result.
async fn analyse(app: Router, pool: Value) -> (StatusCode, String) {
    let body = json!({"pool": pool, "options": options()}).to_string();
    let (status, headers, body) = send(app, post_json("/api/ensemble/analyze", body)).await;
    if status == StatusCode::OK {
        assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    }
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn analyses_a_pool_with_progress_events() {
    let (status, stream) = analyse(app(ServerConfig::default()), small_pool()).await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<(&str, &str)> = stream
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let kind = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (kind, data)
        })
        .collect();
    assert_eq!(events.first().map(|e| e.0), Some("progress"));
    let (kind, data) = events.last().unwrap();
    assert_eq!(*kind, "result");
    let analysis = json_body(data.as_bytes());
    assert_eq!(analysis["schema"], "fuselab.ensemble.analysis/v1");
    assert_eq!(analysis["report"]["schema"], "fuselab.ensemble.report/v1");
    // The same engine as everywhere else: the same report as the shared library's.
    let pool: fuselab_shared::ensemble::PoolInput = serde_json::from_value(small_pool()).unwrap();
    let pool = fuselab_shared::ensemble::Pool::new(pool).unwrap();
    let options = serde_json::from_value(options()).unwrap();
    let expected = fuselab_shared::ensemble::analysis(&pool, &options, &mut |_, _| {}).unwrap();
    assert_eq!(
        analysis["report"],
        serde_json::to_value(&expected.report).unwrap()
    );
    assert_eq!(
        analysis["scatter"],
        serde_json::to_value(&expected.scatter).unwrap()
    );
    assert!(analysis["millis"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn a_pool_with_splits_is_analysed_on_the_chosen_split() {
    let mut pool = small_pool();
    pool["splits"] = json!([
        "train", "val", "test", "test", "train", "test", "val", "test"
    ]);
    let result = |stream: &str| {
        let data = stream
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .last()
            .unwrap()
            .to_owned();
        json_body(data.as_bytes())
    };
    let (status, stream) = analyse(app(ServerConfig::default()), pool.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let analysis = result(&stream);
    assert_eq!(analysis["report"]["n_samples"], 4);
    assert_eq!(
        analysis["split"],
        json!({"split": "test", "samples": 4, "of": 8})
    );
    let body = json!({"pool": pool, "options": options(), "split": "all"}).to_string();
    let (status, _, body) = send(
        app(ServerConfig::default()),
        post_json("/api/ensemble/analyze", body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let analysis = result(&String::from_utf8(body).unwrap());
    assert_eq!(analysis["report"]["n_samples"], 8);
    pool["splits"] = json!(["train"]);
    let (status, body) = analyse(app(ServerConfig::default()), pool).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_body(body.as_bytes())["error"],
        "not a valid model pool: `splits`: expected 8 entries (one per label), found 1"
    );
}

#[tokio::test]
async fn an_invalid_pool_is_refused_before_streaming() {
    let mut pool = small_pool();
    pool["models"][1]["predictions"] = json!([0, 1]);
    let (status, body) = analyse(app(ServerConfig::default()), pool).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = json_body(body.as_bytes())["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.starts_with("not a valid model pool: model `b`"),
        "{error}"
    );
}

#[tokio::test]
async fn reports_are_saved_listed_read_and_deleted_in_sqlite() {
    use std::sync::Arc;

    use fuselab::reports::{FILE_NAME, ReportStore};

    let dir = std::env::temp_dir().join(format!("fuselab-reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(FILE_NAME);
    let config = ServerConfig {
        reports: Some(Arc::new(ReportStore::open(&path).await.unwrap())),
        ..ServerConfig::default()
    };
    let app = app(config);

    let pool =
        fuselab_shared::ensemble::Pool::new(serde_json::from_value(small_pool()).unwrap()).unwrap();
    let options = serde_json::from_value(options()).unwrap();
    let analysis = fuselab_shared::ensemble::analysis(&pool, &options, &mut |_, _| {}).unwrap();
    let body = json!({"analysis": analysis, "title": "three toy models"}).to_string();
    let (status, _, saved) = send(app.clone(), post_json("/api/reports", body)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&saved)
    );
    let saved = json_body(&saved);
    let id = saved["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(saved["url"], format!("/reports/{id}"));

    let (status, _, list) = send(app.clone(), get("/api/reports")).await;
    assert_eq!(status, StatusCode::OK);
    let list = json_body(&list);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["title"], "three toy models");
    assert_eq!(list[0]["n_models"], 3);

    let (status, headers, stored) = send(app.clone(), get(&format!("/api/reports/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(json_body(&stored), serde_json::to_value(&analysis).unwrap());

    // The share address is the app itself, which reads the id.
    let (status, _, page) = send(app.clone(), get(&format!("/reports/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(r#"src="/main.js""#)
    );

    // Reopening the file finds the report: it is on disk, not in memory.
    let reopened = ReportStore::open(&path).await.unwrap();
    assert!(reopened.get(&id).await.unwrap().is_some());

    let delete = |uri: String| Request::delete(uri).body(Body::empty()).unwrap();
    let (status, _, _) = send(app.clone(), delete(format!("/api/reports/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = send(app.clone(), get(&format!("/api/reports/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json_body(&body)["error"], format!("no saved report `{id}`"));
    let (status, _, _) = send(app.clone(), delete(format!("/api/reports/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(app.clone(), get("/api/reports/..%2Fetc")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut wrong = serde_json::to_value(&analysis).unwrap();
    wrong["schema"] = json!("something/v9");
    let body = json!({"analysis": wrong}).to_string();
    let (status, _, body) = send(app.clone(), post_json("/api/reports", body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_body(&body)["error"]
            .as_str()
            .unwrap()
            .contains("something/v9")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_a_data_directory_reports_are_unavailable() {
    let (status, _, body) = send(app(ServerConfig::default()), get("/api/reports")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        json_body(&body)["error"]
            .as_str()
            .unwrap()
            .contains("keeps no reports")
    );
}

#[tokio::test]
async fn the_demo_pool_is_served_once_built() {
    let dir = std::env::temp_dir().join(format!("fuselab-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("digits-pool.json");
    let config = ServerConfig {
        demo_pool: Some(path.clone()),
        ..ServerConfig::default()
    };
    let (status, _, body) = send(app(config.clone()), get("/api/ensemble/demo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        json_body(&body)["error"]
            .as_str()
            .unwrap()
            .contains("fuselab ensemble demo")
    );

    std::fs::write(&path, small_pool().to_string()).unwrap();
    let (status, headers, body) = send(app(config), get("/api/ensemble/demo")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(json_body(&body), small_pool());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn face_model_endpoint_names_its_files_and_the_fetch_command() {
    let (status, _, body) = send(
        app(ServerConfig::default()),
        get("/api/models/face/..%2Fsecrets"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error = json_body(&body)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("pnet.safetensors, rnet.safetensors"),
        "{error}"
    );

    let (status, _, body) = send(
        app(ServerConfig::default()),
        get("/api/models/face/faceres.bin"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error = json_body(&body)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("`fuselab models fetch`"), "{error}");
    assert!(error.contains("faceres.bin"), "{error}");
}

#[tokio::test]
async fn an_analysis_stops_within_a_second_of_its_client_going_away() {
    use axum::body::HttpBody as _;
    use fuselab::server::{Heavy, HeavyLimits};

    // 22 models at every size: 4.2 million teams (`fuselab ensemble analyze` takes 5.6 s on them
    // here; the server's analysis walks them twice).
    let labels: Vec<u32> = (0..256).map(|i| i % 4).collect();
    let models: Vec<Value> = (0..22_u32)
        .map(|m| {
            let predictions: Vec<u32> = labels
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    if (i as u32 * (m + 3)).is_multiple_of(5) {
                        (y + 1) % 4
                    } else {
                        y
                    }
                })
                .collect();
            json!({"name": format!("m{m}"), "predictions": predictions})
        })
        .collect();
    let request = || {
        let body = json!({
            "pool": {"labels": labels, "models": models},
            "options": {"top_k": 3, "min_size": 2, "max_size": 22},
        });
        post_json("/api/ensemble/analyze", body.to_string())
    };
    // One heavy request at a time: the slot is free again exactly when the work has stopped.
    let app = app(ServerConfig {
        heavy: std::sync::Arc::new(Heavy::new(HeavyLimits {
            per_user: 1,
            total: 1,
        })),
        ..ServerConfig::default()
    });
    let response = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx))
        .await
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.into_data().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: progress"), "{first}");
    let busy = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(
        busy.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the first analysis is running"
    );

    drop(body);
    let gone = std::time::Instant::now();
    loop {
        let response = app.clone().oneshot(request()).await.unwrap();
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            gone.elapsed() < std::time::Duration::from_secs(1),
            "the cancelled analysis still ran after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

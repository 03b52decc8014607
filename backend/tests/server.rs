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
    assert!(html.contains("/pkg/fuselab_frontend.js"), "{html}");

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

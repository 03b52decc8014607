//! Accounts on the server, through `app()` without a socket: anonymous callers get 401 from
//! everything that stores or computes on the server, a foreign `Host` gets 421, a cross-site
//! write 403; users sign in with a cookie or an API token, see only their own reports and runs,
//! and need the training permission to start runs; every answer carries the security headers.

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use fuselab::{
    accounts::Accounts,
    db::Database,
    reports::{ReportLimits, ReportStore},
    server::{AuthMode, JobQueue, ServerConfig, app},
};
use fuselab_shared::api::Role;
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Server {
    app: Router,
    accounts: Accounts,
    queue: JobQueue,
    data_dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The app with accounts and a job queue without a worker (runs stay as the tests leave them).
async fn server(name: &str) -> Server {
    let data_dir =
        std::env::temp_dir().join(format!("fuselab-server-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    // One database file for accounts, reports and jobs, as `fuselab serve` has.
    let db = Database::open(&fuselab::db::sqlite_url(&data_dir.join("fuselab.sqlite3")))
        .await
        .unwrap();
    let accounts = Accounts::new(db.clone());
    for (name, password, role) in [
        ("root", "administrator", Role::Admin),
        ("ada", "analytical", Role::User),
        ("bob", "babbage's engine", Role::User),
    ] {
        accounts.add(name, password, role, false).await.unwrap();
    }
    let queue = JobQueue {
        store: fuselab::jobs::JobStore::on(db.clone()).await.unwrap(),
        artifacts: fuselab::artifacts::ArtifactStore::local(&data_dir.join("artifacts")).unwrap(),
    };
    let app = app(ServerConfig {
        reports: Some(Arc::new(ReportStore::new(db, ReportLimits::default()))),
        data_dir: Some(data_dir.clone()),
        jobs: Some(queue.clone()),
        auth: AuthMode::On(accounts.clone()),
        allowed_hosts: fuselab::cli::allowed_hosts(&["https://lab.example.org".into()]).unwrap(),
        ..ServerConfig::default()
    });
    Server {
        app,
        accounts,
        queue,
        data_dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_owned()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn request(method: Method, uri: &str, auth: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    if let Some(auth) = auth {
        builder = if auth.starts_with("flb_") {
            builder.header(header::AUTHORIZATION, format!("Bearer {auth}"))
        } else {
            builder.header(header::COOKIE, auth)
        };
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// Signs in and returns the `Cookie` header value.
async fn sign_in(app: &Router, name: &str, password: &str) -> String {
    let answer = send(
        app,
        request(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"name": name, "password": password})),
        ),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let cookie = answer.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    assert_eq!(answer.json()["user"]["name"], name);
    cookie.split(';').next().unwrap().to_owned()
}

fn analysis() -> Value {
    let pool = json!({
        "labels": [0, 1, 1, 0],
        "models": [
            {"name": "a", "predictions": [0, 1, 0, 0]},
            {"name": "b", "predictions": [0, 0, 1, 0]},
            {"name": "c", "predictions": [1, 1, 1, 0]},
        ],
    });
    let pool = fuselab_shared::ensemble::Pool::new(serde_json::from_value(pool).unwrap()).unwrap();
    let options =
        serde_json::from_value(json!({"top_k": 3, "min_size": 2, "max_size": 3})).unwrap();
    let analysis = fuselab_shared::ensemble::analysis(&pool, &options, &mut |_, _| {}).unwrap();
    serde_json::to_value(analysis).unwrap()
}

#[tokio::test]
async fn anonymous_callers_get_401_from_everything_that_stores_or_computes() {
    let server = server("anonymous").await;
    let app = &server.app;
    let protected = [
        (Method::GET, "/api/reports"),
        (Method::POST, "/api/reports"),
        (
            Method::DELETE,
            "/api/reports/0123456789abcdef0123456789abcdef",
        ),
        (Method::POST, "/api/ensemble/analyze"),
        (Method::POST, "/api/cofailure"),
        (Method::POST, "/api/masks"),
        (Method::GET, "/api/masks/0123/events"),
        (Method::GET, "/api/masks/0123/key"),
        (Method::DELETE, "/api/masks/0123"),
        (Method::GET, "/api/align/runs"),
        (Method::POST, "/api/align/runs"),
        (Method::GET, "/api/align/runs/0123456789abcdef"),
        (Method::DELETE, "/api/align/runs/0123456789abcdef"),
        (Method::POST, "/api/align/runs/0123456789abcdef/resume"),
        (Method::GET, "/api/align/runs/0123456789abcdef/events"),
        (
            Method::GET,
            "/api/align/runs/0123456789abcdef/files/report.html",
        ),
        (Method::GET, "/api/tokens"),
        (Method::POST, "/api/tokens"),
        (Method::POST, "/api/account/password"),
    ];
    for (method, uri) in protected {
        let answer = send(app, request(method.clone(), uri, None, Some(json!({})))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert!(
            answer.error().starts_with("sign in first"),
            "{method} {uri}: {}",
            answer.error()
        );
    }
    // An expired or forged cookie is anonymous; a bad token is refused as such.
    let answer = send(
        app,
        request(
            Method::GET,
            "/api/reports",
            Some("fuselab_session=00ff"),
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = send(
        app,
        request(Method::GET, "/api/reports", Some("flb_nope"), None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.error().contains("API token is not valid"),
        "{}",
        answer.error()
    );

    // What stays open: health, who-am-I, the demo pool, the face models, the app's pages.
    let answer = send(app, request(Method::GET, "/api/health", None, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = send(app, request(Method::GET, "/api/session", None, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"user": null, "auth_required": true}));
    for uri in ["/api/ensemble/demo", "/api/models/face/pnet.safetensors"] {
        let answer = send(app, request(Method::GET, uri, None, None)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}: not 401");
    }
    for uri in [
        "/",
        "/ensembles",
        "/signin",
        "/account",
        "/align",
        "/ctr",
        "/pose",
    ] {
        let answer = send(app, request(Method::GET, uri, None, None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn foreign_hosts_get_421_and_cross_site_writes_403() {
    let server = server("hosts").await;
    let app = &server.app;
    let with_host = |host: &str| {
        Request::get("/api/health")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    // DNS rebinding: a page of rebound.example resolved to 127.0.0.1 sends its own name.
    let answer = send(app, with_host("rebound.example:8080")).await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(
        answer.error().contains("--public-url"),
        "{}",
        answer.error()
    );
    for host in [
        "127.0.0.1:8080",
        "localhost",
        "[::1]:8080",
        "LAB.example.org",
    ] {
        assert_eq!(
            send(app, with_host(host)).await.status,
            StatusCode::OK,
            "{host}"
        );
    }

    let sign_in_from = |header_name: &'static str, value: &'static str| {
        Request::post("/api/session")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header_name, value)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"name": "ada", "password": "analytical"}).to_string(),
            ))
            .unwrap()
    };
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let answer = send(app, sign_in_from(name, value)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(
            answer.error().starts_with("cross-site request refused"),
            "{}",
            answer.error()
        );
    }
    let answer = send(app, sign_in_from("origin", "http://127.0.0.1:8080")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = send(app, sign_in_from("sec-fetch-site", "same-origin")).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = server("headers").await;
    for uri in [
        "/",
        "/api/health",
        "/api/reports",
        "/pkg/fuselab_frontend.js",
    ] {
        let answer = send(&server.app, request(Method::GET, uri, None, None)).await;
        let csp = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{uri}: {csp}"
        );
        assert_eq!(
            answer.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{uri}"
        );
        assert_eq!(
            answer.headers[header::REFERRER_POLICY],
            "no-referrer",
            "{uri}"
        );
        assert!(
            answer
                .headers
                .get(header::STRICT_TRANSPORT_SECURITY)
                .is_none(),
            "no TLS"
        );
    }
}

#[tokio::test]
async fn sign_in_sessions_and_sign_out() {
    let server = server("session").await;
    let app = &server.app;
    for (name, password) in [("ada", "Analytical"), ("nobody", "analytical"), ("", "")] {
        let answer = send(
            app,
            request(
                Method::POST,
                "/api/session",
                None,
                Some(json!({"name": name, "password": password})),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error(), "wrong user name or password");
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
    }
    let cookie = sign_in(app, "ada", "analytical").await;
    let answer = send(
        app,
        request(Method::GET, "/api/session", Some(&cookie), None),
    )
    .await;
    assert_eq!(
        answer.json(),
        json!({"user": {"name": "ada", "role": "user", "can_train": false}, "auth_required": true})
    );
    let answer = send(
        app,
        request(Method::DELETE, "/api/session", Some(&cookie), None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(
        answer.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let answer = send(
        app,
        request(Method::GET, "/api/reports", Some(&cookie), None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "the session ended");

    // A new password ends the other sessions; this browser keeps a fresh one.
    let first = sign_in(app, "ada", "analytical").await;
    let second = sign_in(app, "ada", "analytical").await;
    let change = |current: &str, new: &str| {
        request(
            Method::POST,
            "/api/account/password",
            Some(&first),
            Some(json!({"current": current, "new": new})),
        )
    };
    assert_eq!(
        send(app, change("wrong one", "engine number 2"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let answer = send(app, change("analytical", "short")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("at least 8"), "{}", answer.error());
    let answer = send(app, change("analytical", "engine number 2")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let renewed = answer.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for (cookie, status) in [
        (&second, StatusCode::UNAUTHORIZED),
        (&renewed, StatusCode::OK),
    ] {
        let answer = send(
            app,
            request(Method::GET, "/api/reports", Some(cookie), None),
        )
        .await;
        assert_eq!(answer.status, status);
    }
}

#[tokio::test]
async fn repeated_failures_are_slowed_down_with_429() {
    let server = server("limiter").await;
    let app = &server.app;
    let attempt = || {
        request(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"name": "ada", "password": "guess"})),
        )
    };
    for _ in 0..10 {
        assert_eq!(send(app, attempt()).await.status, StatusCode::UNAUTHORIZED);
    }
    let answer = send(app, attempt()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = answer.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=301).contains(&retry), "{retry}");
    // Even the right password waits.
    let answer = send(
        app,
        request(
            Method::POST,
            "/api/session",
            None,
            Some(json!({"name": "ada", "password": "analytical"})),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn users_see_and_delete_only_their_own_reports_and_links_stay_shareable() {
    let server = server("reports").await;
    let app = &server.app;
    let ada = sign_in(app, "ada", "analytical").await;
    let bob = sign_in(app, "bob", "babbage's engine").await;
    let root = sign_in(app, "root", "administrator").await;
    let save = |cookie: &str, title: &str| {
        request(
            Method::POST,
            "/api/reports",
            Some(cookie),
            Some(json!({"analysis": analysis(), "title": title})),
        )
    };
    let answer = send(app, save(&ada, "ada's")).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        send(app, save(&bob, "bob's")).await.status,
        StatusCode::CREATED
    );

    let titles = |answer: Answer| -> Vec<(String, String)> {
        answer
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["title"].as_str().unwrap().to_owned(),
                    r["owner"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let listed = titles(send(app, request(Method::GET, "/api/reports", Some(&ada), None)).await);
    assert_eq!(listed, [("ada's".to_owned(), "ada".to_owned())]);
    let mut all = titles(send(app, request(Method::GET, "/api/reports", Some(&root), None)).await);
    all.sort();
    assert_eq!(all.len(), 2, "an administrator sees every report");

    // The link is the share: anyone reads it, only its owner (or an admin) deletes it.
    let link = format!("/api/reports/{id}");
    assert_eq!(
        send(app, request(Method::GET, &link, None, None))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(app, request(Method::DELETE, &link, Some(&bob), None))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(app, request(Method::GET, &link, None, None))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(app, request(Method::DELETE, &link, Some(&ada), None))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // Titles are bounded.
    let answer = send(app, save(&ada, &"t".repeat(201))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer.error().contains("at most 200 characters"),
        "{}",
        answer.error()
    );
}

#[tokio::test]
async fn api_tokens_authenticate_until_revoked() {
    let server = server("tokens").await;
    let app = &server.app;
    let ada = sign_in(app, "ada", "analytical").await;
    let answer = send(
        app,
        request(
            Method::POST,
            "/api/tokens",
            Some(&ada),
            Some(json!({"name": "notebook"})),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let created = answer.json();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("flb_"));
    assert_eq!(
        send(
            app,
            request(Method::GET, "/api/reports", Some(&token), None)
        )
        .await
        .status,
        StatusCode::OK
    );
    let listed = send(app, request(Method::GET, "/api/tokens", Some(&ada), None))
        .await
        .json();
    assert_eq!(listed[0]["name"], "notebook");
    assert!(listed[0].get("token").is_none(), "the secret is shown once");
    assert!(listed[0]["last_used"].is_i64());

    let revoke = format!("/api/tokens/{id}");
    let bob = sign_in(app, "bob", "babbage's engine").await;
    assert_eq!(
        send(app, request(Method::DELETE, &revoke, Some(&bob), None))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(app, request(Method::DELETE, &revoke, Some(&ada), None))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(
            app,
            request(Method::GET, "/api/reports", Some(&token), None)
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn training_needs_the_permission_and_runs_are_private() {
    let server = server("training").await;
    let app = &server.app;
    let start = |cookie: &str| {
        request(
            Method::POST,
            "/api/align/runs",
            Some(cookie),
            Some(json!({"action": "attack", "config": "[model]\nnot = 'checked yet'\n"})),
        )
    };
    let ada = sign_in(app, "ada", "analytical").await;
    let answer = send(app, start(&ada)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.error().contains("--can-train true"),
        "{}",
        answer.error()
    );

    server
        .accounts
        .update("ada", None, Some(true))
        .await
        .unwrap();
    let answer = send(app, start(&ada)).await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "allowed now; the configuration is checked"
    );

    // Runs are jobs of their owner: another user's run is not found.
    let bob_id = server.accounts.get("bob").await.unwrap().id;
    let mut job = fuselab::jobs::NewJob::new(
        fuselab::align::job::KIND,
        serde_json::to_value(fuselab::align::job::AlignJobConfig {
            action: fuselab_shared::api::AlignAction::Attack,
            config: String::new(),
            owner: Some("bob".to_owned()),
        })
        .unwrap(),
    );
    job.owner = Some(bob_id);
    let id = server.queue.store.enqueue(&job).await.unwrap();
    let kept = fuselab::align::job::out_prefix(&id) + "/results.json";
    server
        .queue
        .artifacts
        .put(&kept, b"{}".to_vec())
        .await
        .unwrap();
    let detail = &format!("/api/align/runs/{id}");
    assert_eq!(
        send(app, request(Method::GET, detail, Some(&ada), None))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let listed = send(
        app,
        request(Method::GET, "/api/align/runs", Some(&ada), None),
    )
    .await
    .json();
    assert_eq!(listed, json!([]));
    let bob = sign_in(app, "bob", "babbage's engine").await;
    let answer = send(app, request(Method::GET, detail, Some(&bob), None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["owner"], "bob");
    let answer = send(
        app,
        request(Method::POST, &format!("{detail}/resume"), Some(&bob), None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "bob may not train");
    let root = sign_in(app, "root", "administrator").await;
    let listed = send(
        app,
        request(Method::GET, "/api/align/runs", Some(&root), None),
    )
    .await
    .json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "an administrator sees every run"
    );
    assert_eq!(
        send(app, request(Method::DELETE, detail, Some(&bob), None))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(
        server
            .queue
            .artifacts
            .list("align")
            .await
            .unwrap()
            .is_empty(),
        "deleted with its folder"
    );
}

//! The HTTP server: the JSON API under `/api` and the embedded browser app everywhere else.

mod align;
mod analyze;
mod auth;
mod busy;
mod error;
mod guard;
mod listen;
mod masks;
mod models;
mod queue;
mod reports;

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{any, delete, get, post},
};
use fuselab_shared::{
    CofailureReport, FailureMasks, PredictionTable,
    api::{ApiError, Health},
    ensemble::Limits,
};
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{Actor, AuthMode};
pub use busy::{Heavy, HeavyLimits};
pub use error::AppError;
pub use guard::{CONTENT_SECURITY_POLICY, LOOPBACK_HOSTS, public_host};
pub use listen::{Connections, TlsError, tls_acceptor};
pub use masks::{Request as MaskRequest, read_form as read_mask_form};
pub use queue::JobQueue;

use crate::{assets, reports::ReportStore};

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Where saved reports live; without it the report endpoints answer 503.
    pub reports: Option<Arc<ReportStore>>,
    /// The example pool `GET /api/ensemble/demo` serves, once `fuselab ensemble demo` built it.
    pub demo_pool: Option<PathBuf>,
    /// The data directory whose `models/` `fuselab models fetch` filled; the browser loads the
    /// face models from it. Without it the model endpoints answer 404.
    pub data_dir: Option<PathBuf>,
    /// The job queue long work goes to (mask jobs, alignment runs), with the jobs' artifacts;
    /// without it the mask and alignment endpoints answer 503.
    pub jobs: Option<JobQueue>,
    /// Whether users sign in.
    pub auth: AuthMode,
    /// The host names the server answers to (lower case, without port); other `Host` headers
    /// get 421.
    pub allowed_hosts: Vec<String>,
    /// Whether clients reach the server over HTTPS (it or a proxy in front of it): the cookie
    /// gets `Secure` and answers carry HSTS.
    pub tls: bool,
    /// Failed sign-ins per address, and the password hashing slots.
    pub sign_in: Arc<auth::SignInLimiter>,
    /// Heavy requests running now, within their limits.
    pub heavy: Arc<busy::Heavy>,
    /// Time a request may take until its answer starts (event streams then run on, up to
    /// [`EVENT_STREAM_LIFETIME`]).
    pub request_timeout: Duration,
    /// Bounds on the pools and tables the server analyses (models, classes, cells, teams).
    pub limits: Limits,
}

/// The longest an event stream stays open; the browser's `EventSource` reconnects (alignment
/// runs resume from `Last-Event-ID`, mask jobs send their current state).
pub const EVENT_STREAM_LIFETIME: Duration = Duration::from_hours(1);

/// `stream`, ended after [`EVENT_STREAM_LIFETIME`].
fn bounded<S: futures_util::Stream>(stream: S) -> impl futures_util::Stream<Item = S::Item> {
    futures_util::StreamExt::take_until(stream, tokio::time::sleep(EVENT_STREAM_LIFETIME))
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024 * 1024,
            reports: None,
            demo_pool: None,
            data_dir: None,
            jobs: None,
            auth: AuthMode::Off,
            allowed_hosts: LOOPBACK_HOSTS.map(str::to_owned).to_vec(),
            tls: false,
            sign_in: Arc::default(),
            heavy: Arc::default(),
            request_timeout: Duration::from_mins(2),
            limits: Limits::default(),
        }
    }
}

type AppState = Arc<ServerConfig>;

/// The whole application: API routes, the embedded app, the host, origin and security-header
/// guard, body limits and request tracing.
pub fn app(config: ServerConfig) -> Router {
    let max_body_bytes = config.max_body_bytes;
    let request_timeout = config.request_timeout;
    let state = Arc::new(config);
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/session",
            get(auth::current)
                .post(auth::sign_in)
                .delete(auth::sign_out),
        )
        .route("/api/account/password", post(auth::change_password))
        .route(
            "/api/tokens",
            get(auth::list_tokens).post(auth::create_token),
        )
        .route("/api/tokens/{id}", delete(auth::revoke_token))
        .route("/api/cofailure", post(cofailure))
        .route("/api/ensemble/analyze", post(analyze::analyze))
        .route("/api/ensemble/demo", get(demo_pool))
        .route("/api/reports", get(reports::list).post(reports::save))
        .route(
            "/api/reports/{id}",
            get(reports::get).delete(reports::delete),
        )
        .route("/api/models/face/{file}", get(models::face_file))
        .route("/api/masks", post(masks::create))
        .route("/api/masks/{id}/events", get(masks::events))
        .route("/api/masks/{id}/key", get(masks::key))
        .route("/api/masks/{id}", axum::routing::delete(masks::cancel))
        .route("/api/align/runs", get(align::list).post(align::create))
        .route(
            "/api/align/runs/{id}",
            get(align::detail).delete(align::remove),
        )
        .route("/api/align/runs/{id}/events", get(align::events))
        .route("/api/align/runs/{id}/files/{name}", get(align::file))
        .route(
            "/api/align/runs/{id}/models/{name}/{file}",
            get(align::pose_model),
        )
        .route("/api/align/runs/{id}/resume", post(align::resume))
        .route("/reports/{id}", get(app_page))
        .route("/ensembles", get(app_page))
        .route("/faces", get(app_page))
        .route("/protect", get(app_page))
        .route("/align", get(app_page))
        .route("/ctr", get(app_page))
        .route("/pose", get(app_page))
        .route("/signin", get(app_page))
        .route("/account", get(app_page))
        .route("/api/{*rest}", any(api_not_found))
        .fallback(get(asset))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Until the answer starts: a slow upload or a stuck handler ends with 408, while event
        // streams, whose answers start at once, run on.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(
            // One info line per request: method, route, status and latency. The route pattern,
            // not the path: paths carry job ids and report ids, which are secrets.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("(no route)", MatchedPath::as_str);
                    tracing::info_span!("request", method = %request.method(), route)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Serves `app` on `listener` (over TLS with `tls`) until SIGTERM or Ctrl-C, then lets requests
/// in flight finish.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Connections,
) -> io::Result<()> {
    listen::serve(listener, app, tls, connections, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// `POST /api/cofailure`: per-model accuracy and pairwise co-failure counts of a prediction table.
async fn cofailure(
    State(config): State<AppState>,
    actor: Actor,
    body: Result<Json<PredictionTable>, JsonRejection>,
) -> Result<Json<CofailureReport>, AppError> {
    let slot = config.heavy.slot(&actor)?;
    let Json(table) = body.map_err(|r| AppError::json(&r, config.max_body_bytes))?;
    // The pair counts grow with the square of the models: bounded before anything is counted.
    config
        .limits
        .check_pool(table.models.len(), table.labels.len(), 0, false)
        .map_err(|e| AppError::client(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    // Validation walks the whole table: off the async runtime, like the computation.
    let report = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        table
            .validate()
            .map_err(|e| AppError::client(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        let counts = FailureMasks::from_table(&table).cofailure_counts();
        Ok(CofailureReport::new(&table, &counts))
    })
    .await
    .map_err(|e| AppError::Internal {
        context: "co-failure computation",
        source: e.into(),
    })??;
    Ok(Json(report))
}

async fn api_not_found(uri: Uri) -> AppError {
    AppError::client(
        StatusCode::NOT_FOUND,
        format!("no API endpoint at {}", uri.path()),
    )
}

async fn method_not_allowed() -> (StatusCode, Json<ApiError>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ApiError {
            error: "this endpoint does not accept that HTTP method".into(),
        }),
    )
}

/// `GET /api/ensemble/demo`: the example pool, in the engine's JSON input format.
async fn demo_pool(State(config): State<AppState>) -> Result<Response, AppError> {
    let missing = || {
        AppError::client(
            StatusCode::NOT_FOUND,
            "this server has no demo pool yet: build it with scripts/fetch-digits.sh and \
             `fuselab ensemble demo --digits FILE`",
        )
    };
    let path = config.demo_pool.clone().ok_or_else(missing)?;
    let read = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|e| AppError::Internal {
            context: "reading the demo pool",
            source: e.into(),
        })?;
    match read {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(missing()),
        Err(error) => Err(AppError::Internal {
            context: "reading the demo pool",
            source: error.into(),
        }),
    }
}

/// `/reports/{id}`, `/faces`, `/protect`, `/align`, `/signin` and `/account`: the app itself, which reads the page from the address.
async fn app_page(headers: HeaderMap) -> Response {
    asset(Uri::from_static("/"), headers).await
}

async fn asset(uri: Uri, headers: HeaderMap) -> Response {
    let Some(plain) = assets::find(uri.path()) else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    // The gzipped twin where the browser takes gzip: its own ETag, the plain file's type.
    let gzip = accepts_gzip(&headers)
        .then(|| assets::find_gzip(uri.path()))
        .flatten();
    let asset = gzip.unwrap_or(plain);
    let etag = HeaderValue::from_static(asset.etag);
    // Asset names are not content-hashed, so the browser revalidates; the ETag keeps that cheap.
    let cache = HeaderValue::from_static("no-cache");
    let vary = HeaderValue::from_static("accept-encoding");
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache),
                (header::VARY, vary),
            ],
        )
            .into_response();
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(plain.mime)),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (header::VARY, vary),
        ],
        asset.bytes,
    )
        .into_response();
    if gzip.is_some() {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Whether `Accept-Encoding` takes gzip (named or `*`, without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

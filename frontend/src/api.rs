//! The fuselab server's JSON API: one typed function per call, with the request and answer
//! types of `fuselab_shared::api`; failures become [`Failure`]s carrying the server's message.
//! The pages call these; only multipart uploads, downloads of bytes and event streams stay in
//! the pages' JS glue. Also the server's health line.

use fuselab_shared::api::{
    AlignRunCreated, AlignRunSummary, ApiError, ChangePassword, CreatedToken, Health, NewToken,
    ReportSummary, SaveReport, SavedReport, Session, SignIn, StartAlignRun, TokenInfo,
};
use fuselab_shared::ensemble::Analysis;
use gloo_net::http::{Request, Response};
use leptos::prelude::*;
use serde::de::DeserializeOwned;

use crate::access::Failure;

/// Sends a request; an error answer becomes a [`Failure`] with the server's message.
async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, Failure> {
    let response = request
        .map_err(|e| Failure::Unreachable(e.to_string()))?
        .send()
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    if response.ok() {
        return Ok(response);
    }
    let message = response.json::<ApiError>().await.ok().map(|e| e.error);
    Err(Failure::answer(response.status(), message))
}

/// Sends a request and reads its JSON answer.
async fn call<T: DeserializeOwned>(
    request: Result<Request, gloo_net::Error>,
) -> Result<T, Failure> {
    send(request)
        .await?
        .json()
        .await
        .map_err(|e| Failure::Unreadable(e.to_string()))
}

/// Sends a request whose answer has no body the page needs.
async fn done(request: Result<Request, gloo_net::Error>) -> Result<(), Failure> {
    send(request).await.map(drop)
}

/// `GET /api/health`.
pub async fn health() -> Result<Health, Failure> {
    call(Request::get("/api/health").build()).await
}

/// `GET /api/session`: who is signed in.
pub async fn session() -> Result<Session, Failure> {
    call(Request::get("/api/session").build()).await
}

/// `POST /api/session`: signs in.
pub async fn sign_in(body: &SignIn) -> Result<Session, Failure> {
    call(Request::post("/api/session").json(body)).await
}

/// `DELETE /api/session`: signs out.
pub async fn sign_out() -> Result<(), Failure> {
    done(Request::delete("/api/session").build()).await
}

/// `POST /api/account/password`.
pub async fn change_password(body: &ChangePassword) -> Result<(), Failure> {
    done(Request::post("/api/account/password").json(body)).await
}

/// `GET /api/tokens`: the signed-in user's API tokens.
pub async fn tokens() -> Result<Vec<TokenInfo>, Failure> {
    call(Request::get("/api/tokens").build()).await
}

/// `POST /api/tokens`: a new token, shown once.
pub async fn create_token(body: &NewToken) -> Result<CreatedToken, Failure> {
    call(Request::post("/api/tokens").json(body)).await
}

/// `DELETE /api/tokens/{id}`.
pub async fn revoke_token(id: &str) -> Result<(), Failure> {
    done(Request::delete(&format!("/api/tokens/{id}")).build()).await
}

/// `POST /api/reports`: stores an analysis.
pub async fn save_report(body: &SaveReport) -> Result<SavedReport, Failure> {
    call(Request::post("/api/reports").json(body)).await
}

/// `GET /api/reports`: the user's saved reports.
pub async fn reports() -> Result<Vec<ReportSummary>, Failure> {
    call(Request::get("/api/reports").build()).await
}

/// `GET /api/reports/{id}`: a saved analysis.
pub async fn report(id: &str) -> Result<Analysis, Failure> {
    call(Request::get(&format!("/api/reports/{id}")).build()).await
}

/// `DELETE /api/reports/{id}`.
pub async fn delete_report(id: &str) -> Result<(), Failure> {
    done(Request::delete(&format!("/api/reports/{id}")).build()).await
}

/// `GET /api/align/runs`: the training runs the user may see, newest first.
pub async fn runs() -> Result<Vec<AlignRunSummary>, Failure> {
    call(Request::get("/api/align/runs").build()).await
}

/// `POST /api/align/runs`: starts a run.
pub async fn start_run(body: &StartAlignRun) -> Result<AlignRunCreated, Failure> {
    call(Request::post("/api/align/runs").json(body)).await
}

/// `POST /api/align/runs/{id}/resume`.
pub async fn resume_run(id: &str) -> Result<AlignRunCreated, Failure> {
    call(Request::post(&format!("/api/align/runs/{id}/resume")).build()).await
}

/// `DELETE /api/align/runs/{id}`: cancels a queued or running run, deletes a finished one.
pub async fn delete_run(id: &str) -> Result<(), Failure> {
    done(Request::delete(&format!("/api/align/runs/{id}")).build()).await
}

/// The address of a run's file (`report.html`, `hs.svg`, …), for links and images.
pub fn run_file_url(id: &str, name: &str) -> String {
    format!("/api/align/runs/{id}/files/{name}")
}

/// A run's JSON file (`results.json`, `report.json`) read as `T`.
pub async fn run_file<T: DeserializeOwned>(id: &str, name: &str) -> Result<T, Failure> {
    call(Request::get(&run_file_url(id, name)).build()).await
}

/// A moment the API gives in seconds since 1970, as the browser's locale writes it.
pub fn local_time(seconds: i64) -> String {
    // Seconds since 1970 fit an f64 exactly.
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(seconds as f64 * 1000.0));
    String::from(date.to_locale_string("en-GB", &wasm_bindgen::JsValue::UNDEFINED))
}

/// One line telling whether the server answers.
#[component]
pub fn ServerStatus() -> impl IntoView {
    let (line, set_line) = signal("Server: checking…".to_owned());
    leptos::task::spawn_local(async move {
        set_line.set(match health().await {
            Ok(h) => format!("Server: {} (fuselab {})", h.status, h.version),
            Err(Failure::Unreachable(reason)) => format!("Server: unreachable ({reason})"),
            Err(failure) => format!("Server: unhealthy ({failure})"),
        });
    });
    view! { <p id="server-status">{line}</p> }
}

//! Calls to the fuselab server: requests whose failures become [`Failure`]s, and the health line.

use fuselab_shared::api::{ApiError, Health};
use gloo_net::http::{Request, Response};
use leptos::prelude::*;
use serde::de::DeserializeOwned;

use crate::access::Failure;

/// Sends a request; an error answer becomes a [`Failure`] with the server's message.
pub async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, Failure> {
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
pub async fn call<T: DeserializeOwned>(
    request: Result<Request, gloo_net::Error>,
) -> Result<T, Failure> {
    send(request)
        .await?
        .json()
        .await
        .map_err(|e| Failure::Unreadable(e.to_string()))
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
        let health: Result<Health, Failure> = call(Request::get("/api/health").build()).await;
        set_line.set(match health {
            Ok(h) => format!("Server: {} (fuselab {})", h.status, h.version),
            Err(Failure::Unreachable(reason)) => format!("Server: unreachable ({reason})"),
            Err(failure) => format!("Server: unhealthy ({failure})"),
        });
    });
    view! { <p id="server-status">{line}</p> }
}

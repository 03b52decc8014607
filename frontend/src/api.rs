//! Calls to the fuselab server.

use fuselab_shared::api::Health;
use gloo_net::http::Request;
use leptos::prelude::*;

async fn health() -> Result<Health, String> {
    let response = Request::get("/api/health")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    response.json::<Health>().await.map_err(|e| e.to_string())
}

/// One line telling whether the server answers.
#[component]
pub fn ServerStatus() -> impl IntoView {
    let (line, set_line) = signal("Server: checking…".to_owned());
    leptos::task::spawn_local(async move {
        set_line.set(match health().await {
            Ok(h) => format!("Server: {} (fuselab {})", h.status, h.version),
            Err(e) => format!("Server: unreachable ({e})"),
        });
    });
    view! { <p id="server-status">{line}</p> }
}

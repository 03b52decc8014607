//! Saved reports: the Save button, the list of saved reports with Delete, and the read-only
//! page at `/reports/{id}`. They live in the server's SQLite database.

use fuselab_shared::{
    api::{ApiError, ReportSummary, SaveReport, SavedReport},
    ensemble::Analysis,
};
use gloo_net::http::{Request, Response};
use leptos::prelude::*;
use serde::de::DeserializeOwned;

use super::{Origin, Results};

/// Counts saves, so the list reloads after one (a context of the Ensembles page).
#[derive(Debug, Clone, Copy)]
pub struct Saved(pub RwSignal<u32>);

/// The error message of a failed API response.
async fn failure(response: Response) -> String {
    match response.json::<ApiError>().await {
        Ok(error) => error.error,
        Err(_) => format!("the server answered HTTP {}", response.status()),
    }
}

/// Sends a request; a failed one becomes the server's message.
async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, String> {
    let response = request
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    if response.ok() {
        Ok(response)
    } else {
        Err(failure(response).await)
    }
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T, String> {
    response.json().await.map_err(|e| e.to_string())
}

async fn save(analysis: Analysis) -> Result<SavedReport, String> {
    let body = SaveReport {
        analysis,
        title: None,
    };
    json(send(Request::post("/api/reports").json(&body)).await?).await
}

async fn list() -> Result<Vec<ReportSummary>, String> {
    json(send(Request::get("/api/reports").build()).await?).await
}

async fn delete(id: String) -> Result<(), String> {
    send(Request::delete(&format!("/api/reports/{id}")).build())
        .await
        .map(drop)
}

async fn fetch(id: &str) -> Result<Analysis, String> {
    json(send(Request::get(&format!("/api/reports/{id}")).build()).await?).await
}

/// Stores the analysis on the server and shows the share address.
#[component]
pub fn SaveButton(analysis: Analysis) -> impl IntoView {
    let (state, set_state) = signal(None::<Result<SavedReport, String>>);
    let saved = use_context::<Saved>();
    let analysis = StoredValue::new(analysis);
    let click = move |_| {
        leptos::task::spawn_local(async move {
            let result = save(analysis.get_value()).await;
            if result.is_ok()
                && let Some(Saved(version)) = saved
            {
                version.update(|v| *v += 1);
            }
            set_state.set(Some(result));
        });
    };
    view! {
        <button id="save-report" class="secondary" on:click=click disabled=move || matches!(state.get(), Some(Ok(_)))>
            "Save report"
        </button>
        {move || match state.get() {
            None => ().into_any(),
            Some(Ok(saved)) => view! {
                <span id="save-status" role="status">
                    "Saved: " <a id="share-link" href=saved.url.clone()>{saved.url.clone()}</a>
                </span>
            }.into_any(),
            Some(Err(message)) => view! { <span class="error" role="alert">{message}</span> }.into_any(),
        }}
    }
}

/// The reports saved on this server, newest first, each with a link and Delete.
#[component]
pub fn SavedReports() -> impl IntoView {
    let version = use_context::<Saved>().map_or_else(|| RwSignal::new(0), |s| s.0);
    let reports = LocalResource::new(move || {
        version.track();
        list()
    });
    let remove = move |id: String| {
        leptos::task::spawn_local(async move {
            if let Err(message) = delete(id).await {
                leptos::logging::error!("deleting a report: {message}");
            }
            version.update(|v| *v += 1);
        });
    };
    view! {
        <h3>"Saved reports"</h3>
        <Suspense fallback=|| view! { <p class="note">"Loading…"</p> }>
            {move || reports.get().map(|result| match result {
                Err(message) => view! { <p class="note">{format!("Saved reports are unavailable: {message}")}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="note" id="saved-empty">"None yet: analyse a pool and press Save report."</p> }.into_any(),
                Ok(list) => view! {
                    <table id="saved-reports">
                        <thead><tr><th>"report"</th><th>"models"</th><th>"samples"</th><th></th></tr></thead>
                        <tbody>
                            {list.into_iter().map(|r| {
                                let id = r.id.clone();
                                view! {
                                    <tr>
                                        <td><a href=format!("/reports/{}", r.id)>{r.title.clone()}</a></td>
                                        <td class="number">{r.n_models}</td>
                                        <td class="number">{r.n_samples}</td>
                                        <td><button class="secondary" on:click=move |_| remove(id.clone())>"Delete"</button></td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            })}
        </Suspense>
    }
}

/// `/reports/{id}`: a saved report, read-only, with the same views and exports.
#[component]
pub fn SavedReportPage(id: String) -> impl IntoView {
    let key = id.clone();
    let analysis = LocalResource::new(move || {
        let id = key.clone();
        async move { fetch(&id).await }
    });
    view! {
        <section class="tool" aria-labelledby="saved-title">
            <h2 id="saved-title">"Saved ensemble report"</h2>
            <p><a href="/">"← fuselab"</a></p>
            <Suspense fallback=|| view! { <p role="status">"Loading the report…"</p> }>
                {move || analysis.get().map(|result| match result {
                    Ok(analysis) => view! { <Results analysis=analysis origin=Origin::Saved(id.clone()) /> }.into_any(),
                    Err(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

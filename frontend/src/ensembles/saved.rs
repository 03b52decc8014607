//! Saved reports: the Save button, the list of saved reports with Delete, and the read-only
//! page at `/reports/{id}`. They live in the server's SQLite database.

use fuselab_shared::{
    api::{SaveReport, SavedReport},
    ensemble::Analysis,
};
use leptos::prelude::*;

use super::{Origin, Results};
use crate::{
    access::Failure,
    api,
    session::{SignedIn, use_auth},
};

/// Counts saves, so the list reloads after one (a context of the Ensembles page).
#[derive(Debug, Clone, Copy)]
pub struct Saved(pub RwSignal<u32>);

async fn save(analysis: Analysis) -> Result<SavedReport, Failure> {
    let body = SaveReport {
        analysis,
        title: None,
    };
    api::save_report(&body).await
}

/// Stores the analysis on the server and shows the share address; a visitor who is not signed
/// in gets the sign-in link instead.
#[component]
pub fn SaveButton(analysis: Analysis) -> impl IntoView {
    let analysis = StoredValue::new(analysis);
    view! {
        <SignedIn what="save this report">
            <SaveReport analysis=analysis.get_value() />
        </SignedIn>
    }
}

#[component]
fn SaveReport(analysis: Analysis) -> impl IntoView {
    let auth = use_auth();
    let (state, set_state) = signal(None::<Result<SavedReport, Failure>>);
    let saved = use_context::<Saved>();
    let analysis = StoredValue::new(analysis);
    let click = move |_| {
        leptos::task::spawn_local(async move {
            let result = auth.watch(save(analysis.get_value()).await);
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
            Some(Err(failure)) => view! { <span class="error" role="alert">{failure.to_string()}</span> }.into_any(),
        }}
    }
}

/// The reports saved on this server (the visitor's own; an administrator's lists everyone's,
/// with their owners), newest first, each with a link and Delete.
#[component]
pub fn SavedReports() -> impl IntoView {
    view! {
        <h3>"Saved reports"</h3>
        <SignedIn what="save reports and see yours">
            <ReportList />
        </SignedIn>
    }
}

#[component]
fn ReportList() -> impl IntoView {
    let auth = use_auth();
    let owners = auth.access_untracked().is_some_and(|a| a.sees_owners());
    let version = use_context::<Saved>().map_or_else(|| RwSignal::new(0), |s| s.0);
    let reports = LocalResource::new(move || {
        version.track();
        async move { auth.watch(api::reports().await) }
    });
    let remove = move |id: String| {
        leptos::task::spawn_local(async move {
            if let Err(failure) = auth.watch(api::delete_report(&id).await) {
                leptos::logging::error!("deleting a report: {failure}");
            }
            version.update(|v| *v += 1);
        });
    };
    view! {
        <Suspense fallback=|| view! { <p class="note">"Loading…"</p> }>
            {move || reports.get().map(|result| match result {
                Err(failure) => view! { <p class="note">{format!("Saved reports are unavailable: {failure}")}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="empty" id="saved-empty">"None yet: analyse a pool and press Save report."</p> }.into_any(),
                Ok(list) => view! {
                    <div class="table-wrap" tabindex="0">
                        <table id="saved-reports">
                            <thead><tr>
                                <th>"report"</th>
                                {owners.then(|| view! { <th>"owner"</th> })}
                                <th>"models"</th><th>"samples"</th><th></th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|r| {
                                    let id = r.id.clone();
                                    view! {
                                        <tr>
                                            <td><a href=format!("/reports/{}", r.id)>{r.title.clone()}</a></td>
                                            {owners.then(|| view! { <td class="owner">{r.owner.clone().unwrap_or_else(|| "–".to_owned())}</td> })}
                                            <td class="number">{r.n_models}</td>
                                            <td class="number">{r.n_samples}</td>
                                            <td><button class="secondary" on:click=move |_| remove(id.clone())>"Delete"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
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
        async move { api::report(&id).await }
    });
    view! {
        <section class="tool" aria-labelledby="saved-title">
            <h2 id="saved-title">"Saved ensemble report"</h2>
            <p><a href="/">"← fuselab"</a></p>
            <Suspense fallback=|| view! { <p role="status">"Loading the report…"</p> }>
                {move || analysis.get().map(|result| match result {
                    Ok(analysis) => view! { <Results analysis=analysis origin=Origin::Saved(id.clone()) /> }.into_any(),
                    Err(failure) => view! { <p class="error" role="alert">{failure.to_string()}</p> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

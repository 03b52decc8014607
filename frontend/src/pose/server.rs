//! Models from the signed-in user's finished pose benchmarks on this server: each run's trained
//! models with their test AP; choosing one fetches its two files into the pose worker. Only the
//! model comes from the server; the clip still stays in the browser.

use fuselab_shared::api::{AlignAction, AlignRunStatus};
use leptos::prelude::*;
use serde::Deserialize;

use super::{ClipState, ModelState, load_server_pose_model, loading};
use crate::{
    access::Failure,
    api::{self, local_time},
    runs,
    session::{SignedIn, use_auth},
};

/// What the page reads of a pose benchmark's `results.json`.
#[derive(Debug, Clone, Deserialize)]
struct Results {
    runs: Vec<RunModel>,
}

#[derive(Debug, Clone, Deserialize)]
struct RunModel {
    name: String,
    test: Vec<Bucket>,
}

#[derive(Debug, Clone, Deserialize)]
struct Bucket {
    bucket: String,
    scores: Option<BucketScores>,
}

#[derive(Debug, Clone, Deserialize)]
struct BucketScores {
    ap: f64,
}

/// A finished benchmark and its models: name and test AP over all clips.
#[derive(Debug, Clone)]
struct ServerRun {
    id: String,
    created: i64,
    models: Vec<(String, Option<f64>)>,
}

async fn finished_runs() -> Result<Vec<ServerRun>, Failure> {
    let runs = runs::list(|action| action == AlignAction::PoseBenchmark).await?;
    let mut out = Vec::new();
    for run in runs
        .into_iter()
        .filter(|r| r.status == AlignRunStatus::Done)
    {
        let results: Results = api::run_file(&run.id, "results.json").await?;
        let models = results
            .runs
            .into_iter()
            .map(|m| {
                let ap = m
                    .test
                    .iter()
                    .find(|b| b.bucket == "all")
                    .and_then(|b| b.scores.as_ref())
                    .map(|s| s.ap);
                (m.name, ap)
            })
            .collect();
        out.push(ServerRun {
            id: run.id,
            created: run.created,
            models,
        });
    }
    Ok(out)
}

/// The table of models, with a button each.
#[component]
pub fn ServerModels(
    model: RwSignal<ModelState>,
    clip: RwSignal<ClipState>,
    /// Changes when a benchmark started from this page changes, so the list reloads.
    trained: RwSignal<u32>,
) -> impl IntoView {
    view! {
        <details id="pose-server-models">
            <summary>"Or a model from your pose benchmarks on this server"</summary>
            <SignedIn what="use the models your pose benchmarks trained on this server">
                <List model=model clip=clip trained=trained />
            </SignedIn>
        </details>
    }
}

#[component]
fn List(
    model: RwSignal<ModelState>,
    clip: RwSignal<ClipState>,
    trained: RwSignal<u32>,
) -> impl IntoView {
    let auth = use_auth();
    let runs = LocalResource::new(move || {
        trained.track();
        async move { auth.watch(finished_runs().await) }
    });
    let use_model = move |id: String, name: String| {
        let short: String = id.chars().take(8).collect();
        let (on_done, on_error) = loading(model, clip, format!("{name} of benchmark {short}"));
        load_server_pose_model(&id, &name, on_done, on_error);
    };
    view! {
        <Suspense fallback=|| view! { <p class="note">"Loading…"</p> }>
            {move || runs.get().map(|result| match result {
                Err(failure) => view! {
                    <p class="note">{format!("Your pose benchmarks are unavailable: {failure}")}</p>
                }.into_any(),
                Ok(list) if list.is_empty() => view! {
                    <p class="empty" id="pose-server-empty">
                        "No finished pose benchmark yet: start one below, in "<em>"Train pose models on the server"</em>"."
                    </p>
                }.into_any(),
                Ok(list) => view! {
                    <div class="table-wrap" tabindex="0">
                        <table id="pose-server-table">
                            <thead><tr><th>"benchmark"</th><th>"model"</th><th>"test AP"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().flat_map(|run| {
                                    let (id, created) = (run.id, run.created);
                                    run.models.into_iter().map(move |(name, ap)| {
                                        let (id, key) = (id.clone(), name.clone());
                                        view! {
                                            <tr data-model=name.clone()>
                                                <td>{local_time(created)}</td>
                                                <td>{name.clone()}</td>
                                                <td class="number">{ap.map_or_else(String::new, |ap| format!("{:.1}", ap * 100.0))}</td>
                                                <td><button class="secondary" on:click=move |_| use_model(id.clone(), key.clone())>"Use"</button></td>
                                            </tr>
                                        }
                                    })
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            })}
        </Suspense>
    }
}

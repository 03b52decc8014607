//! The CTR page (`/ctr`): click-through-rate benchmarks on the server (DIN, DIN + trigger and
//! CCN over seeds, `fuselab ctr benchmark`). Start one from an example configuration, follow
//! each epoch live, read each finished run's summary table and report; resume, cancel or delete
//! a run. Runs are `ctr-benchmark` runs of the server's training-run queue (`/api/align/runs`),
//! so they need a signed-in user, and starting one needs the right to train.

use fuselab_shared::api::{
    AlignAction, AlignRunStatus, AlignRunSummary, CtrProgress, StartAlignRun,
};
use leptos::prelude::*;
use serde::Deserialize;

use crate::{
    access::{Access, Training},
    api,
    runs::{self, RunCard, RunList, Tracker},
    session::{SignedIn, use_auth},
};

/// The examples the form offers: a name and the configuration.
const EXAMPLES: [(&str, &str); 2] = [
    (
        "synthetic (about 2 minutes)",
        include_str!("../../examples/ctr-server.toml"),
    ),
    (
        "MovieLens-100K proxy",
        include_str!("../../examples/ctr-movielens-server.toml"),
    ),
];

/// The runs this page lists.
fn shown(action: AlignAction) -> bool {
    action == AlignAction::CtrBenchmark
}

/// Mean and deviation over seeds (`results.json`'s summary).
#[derive(Debug, Clone, Deserialize)]
struct Spread {
    mean: f64,
    std: f64,
}

/// One row of `results.json`'s summary.
#[derive(Debug, Clone, Deserialize)]
struct SummaryRow {
    model: String,
    lambda: Option<(f64, f64)>,
    seeds: usize,
    auc: Spread,
    gauc: Spread,
    logloss: Spread,
}

/// What the page reads of `results.json`.
#[derive(Debug, Clone, Deserialize)]
struct Results {
    data: String,
    ceiling: Option<f64>,
    summary: Vec<SummaryRow>,
}

/// The live line of a progress event.
fn progress_text(p: &CtrProgress) -> String {
    format!(
        "Run {}/{} ({}) · epoch {}/{} · training BCE {:.4} · validation AUC {:.4}, GAUC {:.4}",
        p.run_index, p.runs, p.run, p.epoch, p.epochs, p.bce, p.valid_auc, p.valid_gauc
    )
}

/// The share of the grid done after a progress event (epochs of runs that stop early count as
/// done once the next run starts).
fn fraction(p: &CtrProgress) -> f64 {
    let within = p.epoch as f64 / p.epochs.max(1) as f64;
    ((p.run_index.saturating_sub(1)) as f64 + within) / p.runs.max(1) as f64
}

/// The page.
#[component]
pub fn CtrPage() -> impl IntoView {
    view! {
        <section id="ctr" class="tool" aria-labelledby="ctr-title">
            <h2 id="ctr-title">"Click-through-rate prediction"</h2>
            <p>
                "Compare DIN, DIN with a trigger attention, and CCN (same-page contrastive
                learning: items clicked together are pulled together, a clicked and an unclicked
                item of one page pushed apart) on the synthetic benchmark, whose true click
                probabilities give a ceiling, or on the MovieLens-100K proxy. Each model trains
                per seed with early stopping on validation AUC; the report gives test AUC, GAUC
                and logloss. The configuration is the one "<code>"fuselab ctr benchmark --config FILE"</code>
                " reads; CCN's collaborative module is fuselab's reading of the paper (see the report)."
            </p>
            <SignedIn what="start and follow CTR benchmarks">
                <Runs />
            </SignedIn>
        </section>
    }
}

/// The form, the followed run and the list.
// One page's wiring: the form, the followed run and the list.
#[allow(clippy::too_many_lines)]
#[component]
fn Runs() -> impl IntoView {
    let auth = use_auth();
    let access = auth.access_untracked();
    let may_train = access.as_ref().map(Access::training) == Some(Training::Allowed);
    let owners = access.as_ref().is_some_and(Access::sees_owners);
    let config = RwSignal::new(EXAMPLES[0].1.to_owned());
    let starting = RwSignal::new(false);
    let state = Tracker::<CtrProgress>::new(auth, "Benchmark");
    let (live, feedback) = (state.live, state.feedback);
    // A benchmark already training when the page opens is followed.
    let runs = state.runs(shown);
    let follow = move |id: String| state.follow(&id);
    let start = move |_| {
        starting.set(true);
        let body = StartAlignRun {
            action: AlignAction::CtrBenchmark,
            config: config.get_untracked(),
        };
        state.start(body, move || starting.set(false));
    };
    let resume = move |id: String| state.resume(id);
    let remove = move |id: String| state.remove(id);
    let progress = move || {
        live.get().map(|l| {
            let (value, line) = l.progress.as_ref().map_or_else(
                || (0.0, "Waiting for the first epoch…".to_owned()),
                |p| (fraction(p), progress_text(p)),
            );
            view! {
                <div id="ctr-live" data-status=l.status.name()>
                    <p id="ctr-run-status">{format!("Benchmark {}: {}", l.id, l.status.name())}</p>
                    <p id="ctr-stage">{line}</p>
                    <progress id="ctr-progress" max="1" prop:value=value></progress>
                    {l.note.map(|note| view! { <p class="note" role="status">{note}</p> })}
                </div>
            }
        })
    };
    let form = if may_train {
        view! {
            <label for="ctr-example">"Start from"</label>
            <select id="ctr-example" on:change=move |e| {
                let name = event_target_value(&e);
                if let Some((_, text)) = EXAMPLES.iter().find(|(n, _)| *n == name) {
                    config.set((*text).to_owned());
                }
            }>
                {EXAMPLES.iter().map(|(name, _)| view! { <option value=*name>{*name}</option> }).collect_view()}
            </select>
            <label for="ctr-config">"Configuration (TOML)"</label>
            <textarea id="ctr-config" rows="18" spellcheck="false" prop:value=move || config.get()
                on:input=move |e| config.set(event_target_value(&e))></textarea>
            <div class="actions">
                <button id="ctr-start" prop:disabled=move || starting.get() on:click=start>"Start"</button>
            </div>
        }
        .into_any()
    } else {
        view! {
            <p id="ctr-not-allowed" class="note">
                "Your account may not start training runs: ask this server's administrator to
                allow it. Your earlier benchmarks are listed below."
            </p>
        }
        .into_any()
    };
    view! {
        {form}
        <runs::Feedback id="ctr-feedback" feedback=feedback />
        {progress}
        <RunList runs=runs title="Benchmarks" id="ctr-runs" empty_id="ctr-empty" empty="None yet."
            item=move |run| view! {
                <RunView run=run owners=owners may_train=may_train resume=resume follow=follow remove=remove />
            }.into_any() />
    }
}

/// One benchmark of the list; once done, its summary table and files.
#[component]
fn RunView(
    run: AlignRunSummary,
    owners: bool,
    may_train: bool,
    resume: impl Fn(String) + Copy + 'static,
    follow: impl Fn(String) + Copy + 'static,
    remove: impl Fn(String) + Copy + 'static,
) -> impl IntoView {
    let id = run.id.clone();
    let file = |name: &str| api::run_file_url(&id, name);
    let done = (run.status == AlignRunStatus::Done).then(|| {
        let run_id = id.clone();
        let results = LocalResource::new(move || {
            let run_id = run_id.clone();
            async move { api::run_file::<Results>(&run_id, "results.json").await }
        });
        view! {
            <Suspense fallback=|| view! { <p class="note">"Loading the results…"</p> }>
                {move || results.get().map(|r| match r {
                    Ok(results) => view! { <SummaryTable results=results /> }.into_any(),
                    Err(failure) => view! { <p class="note">{format!("The results are unavailable: {failure}")}</p> }.into_any(),
                })}
            </Suspense>
            <p class="files">
                <a href=file("report.html") target="_blank">"Report"</a>" · "
                <a href=file("results.csv") download="results.csv">"CSV"</a>" · "
                <a href=file("results.json") download="results.json">"JSON"</a>" · "
                <a href=file("metrics.jsonl") download="metrics.jsonl">"Training metrics"</a>
            </p>
        }
    });
    view! {
        <RunCard run=run class="ctr-run" title="CTR benchmark".to_owned() owners=owners may_train=may_train
            resume=resume follow=follow remove=remove>
            {done}
        </RunCard>
    }
}

/// Test AUC, GAUC and logloss per model, over seeds; the ceiling on synthetic data.
#[component]
fn SummaryTable(results: Results) -> impl IntoView {
    let label = |row: &SummaryRow| match row.lambda {
        Some((a, r)) if (a - r).abs() < f64::EPSILON => format!("{} (λ = {a})", row.model),
        Some((a, r)) => format!("{} (λa = {a}, λr = {r})", row.model),
        None => row.model.clone(),
    };
    view! {
        <p class="note">{format!("Data: {}", results.data)}</p>
        <div class="table-wrap" tabindex="0">
            <table class="ctr-results">
                <thead><tr><th>"model"</th><th>"seeds"</th><th>"test AUC"</th><th>"test GAUC"</th><th>"test logloss"</th></tr></thead>
                <tbody>
                    {results.summary.iter().map(|row| view! {
                        <tr>
                            <td>{label(row)}</td>
                            <td class="number">{row.seeds}</td>
                            <td class="number">{format!("{:.4} ± {:.4}", row.auc.mean, row.auc.std)}</td>
                            <td class="number">{format!("{:.4} ± {:.4}", row.gauc.mean, row.gauc.std)}</td>
                            <td class="number">{format!("{:.4} ± {:.4}", row.logloss.mean, row.logloss.std)}</td>
                        </tr>
                    }).collect_view()}
                    {results.ceiling.map(|c| view! {
                        <tr class="ceiling"><td>"true click probabilities (ceiling)"</td><td></td><td class="number">{format!("{c:.4}")}</td><td></td><td></td></tr>
                    })}
                </tbody>
            </table>
        </div>
    }
}

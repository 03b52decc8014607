//! Training pose models on the server, from the Pose page: a pose benchmark (JM-Pose's rungs
//! over seeds, `fuselab pose benchmark`) started from an example configuration, each epoch
//! followed live, the runs listed with resume and delete; each finished run's models are then
//! offered in the page's model chooser. Runs are `pose-benchmark` runs of the server's
//! training-run queue (`/api/align/runs`): they need a signed-in user, and starting one needs
//! the right to train.

use fuselab_shared::api::{AlignAction, AlignRunSummary, PoseProgress, StartAlignRun};
use leptos::prelude::*;

use crate::{
    access::{Access, Training},
    api,
    runs::{self, RunCard, RunList, Tracker},
    session::{SignedIn, use_auth},
};

/// The examples the form offers: a name and the configuration.
const EXAMPLES: [(&str, &str); 2] = [
    (
        "small: JM-Pose and the single-frame baseline (about half a minute)",
        include_str!("../../../examples/pose-server.toml"),
    ),
    (
        "the full ablation on the synthetic benchmark (hours)",
        include_str!("../../../examples/pose-synthetic.toml"),
    ),
];

/// The runs this section lists.
fn shown(action: AlignAction) -> bool {
    action == AlignAction::PoseBenchmark
}

fn progress_text(p: &PoseProgress) -> String {
    format!(
        "Run {} · epoch {}/{} · heat-map loss {:.3e} · validation AP {}",
        p.run,
        p.epoch,
        p.epochs,
        p.heatmap_loss,
        p.valid_ap
            .map_or_else(|| "–".to_owned(), |ap| format!("{:.1}", 100.0 * ap))
    )
}

/// The section; `trained` counts changes to the runs, so the model chooser reloads its list.
#[component]
pub fn TrainOnServer(trained: RwSignal<u32>) -> impl IntoView {
    view! {
        <section id="pose-train" class="tool" aria-labelledby="pose-train-title">
            <h2 id="pose-train-title">"Train pose models on the server"</h2>
            <p>
                "A pose benchmark trains JM-Pose's ablation rungs over seeds on fuselab's synthetic
                video benchmark, as "<code>"fuselab pose benchmark --config FILE"</code>" does, and
                tables their test AP. Its models are then offered above, to run on your clips in
                this browser."
            </p>
            <SignedIn what="train pose models on this server">
                <Runs trained=trained />
            </SignedIn>
        </section>
    }
}

// One section's wiring: the form, the followed run and the list.
#[allow(clippy::too_many_lines)]
#[component]
fn Runs(trained: RwSignal<u32>) -> impl IntoView {
    let auth = use_auth();
    let access = auth.access_untracked();
    let may_train = access.as_ref().map(Access::training) == Some(Training::Allowed);
    let owners = access.as_ref().is_some_and(Access::sees_owners);
    let config = RwSignal::new(EXAMPLES[0].1.to_owned());
    let starting = RwSignal::new(false);
    let state = Tracker::<PoseProgress>::new(auth, "Benchmark");
    let (live, feedback, version) = (state.live, state.feedback, state.version);
    Effect::new(move |_| {
        version.track();
        trained.update(|t| *t += 1);
    });
    let runs = state.runs(shown);
    let follow = move |id: String| state.follow(&id);
    let start = move |_| {
        starting.set(true);
        let body = StartAlignRun {
            action: AlignAction::PoseBenchmark,
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
                |p| (p.epoch as f64 / p.epochs.max(1) as f64, progress_text(p)),
            );
            view! {
                <div id="pose-train-live" data-status=l.status.name()>
                    <p id="pose-train-status">{format!("Benchmark {}: {}", l.id, l.status.name())}</p>
                    <p id="pose-train-stage">{line}</p>
                    <progress id="pose-train-progress" max="1" prop:value=value></progress>
                    {l.note.map(|note| view! { <p class="note" role="status">{note}</p> })}
                </div>
            }
        })
    };
    let form = if may_train {
        view! {
            <label for="pose-example">"Start from"</label>
            <select id="pose-example" on:change=move |e| {
                let name = event_target_value(&e);
                if let Some((_, text)) = EXAMPLES.iter().find(|(n, _)| *n == name) {
                    config.set((*text).to_owned());
                }
            }>
                {EXAMPLES.iter().map(|(name, _)| view! { <option value=*name>{*name}</option> }).collect_view()}
            </select>
            <details>
                <summary>"Configuration (TOML)"</summary>
                <label for="pose-config" class="visually-hidden">"Configuration (TOML)"</label>
                <textarea id="pose-config" rows="16" spellcheck="false" prop:value=move || config.get()
                    on:input=move |e| config.set(event_target_value(&e))></textarea>
            </details>
            <div class="actions">
                <button id="pose-start" prop:disabled=move || starting.get() on:click=start>"Start"</button>
            </div>
        }
        .into_any()
    } else {
        view! {
            <p id="pose-not-allowed" class="note">
                "Your account may not start training runs: ask this server's administrator to
                allow it."
            </p>
        }
        .into_any()
    };
    view! {
        {form}
        <runs::Feedback id="pose-feedback" feedback=feedback />
        {progress}
        <RunList runs=runs title="Benchmarks" id="pose-runs" empty_id="pose-runs-empty" empty="None yet."
            item=move |run| view! {
                <RunView run=run owners=owners may_train=may_train resume=resume follow=follow remove=remove />
            }.into_any() />
    }
}

/// One benchmark of the list, with its report once done.
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
    let done = (run.status == fuselab_shared::api::AlignRunStatus::Done).then(|| {
        view! {
            <p class="files">
                <a href=file("report.html") target="_blank">"Report"</a>" · "
                <a href=file("results.json") download="results.json">"JSON"</a>" · "
                <a href=file("metrics.jsonl") download="metrics.jsonl">"Training metrics"</a>
            </p>
        }
    });
    view! {
        <RunCard run=run class="pose-run" title="pose benchmark".to_owned() owners=owners may_train=may_train
            resume=resume follow=follow remove=remove>
            {done}
        </RunCard>
    }
}

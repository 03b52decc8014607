//! The Alignment page (`/align`): harmful fine-tuning runs and LLM-ensemble runs
//! (LLM-TOPLA-Summary) on the server. Start a benchmark (or one attack, an alignment with
//! Booster or Vaccine, or a fusion model) from a TOML configuration, watch its training
//! progress live, and read each finished run's results table, HS and FA charts and report (a
//! fusion run: its report); an interrupted or failed run resumes from its checkpoints, and any
//! run can be cancelled and deleted. Runs need a signed-in user; starting one needs the right
//! to train.

use fuselab_shared::api::{
    AlignAction, AlignMetrics, AlignResultRow, AlignRunStatus, AlignRunSummary, StartAlignRun,
};
use fuselab_ui::{TabPanel, Tabs};
use leptos::prelude::*;

use crate::{
    access::{Access, Training},
    api,
    h3fusion::H3FusionResults,
    runs::{self, RunCard, RunList, Tracker},
    session::{SignedIn, use_auth},
    settings::Settings,
};

/// The configuration the form starts with: a benchmark of about 15 s on 2 cores.
const EXAMPLE: &str = include_str!("../../examples/attack-small.toml");
/// The starting configuration of an LLM-TOPLA-Summary run: the LLM study's GSM8K answers
/// under the server's `align-data/llm-study/`.
const SUMMARY_EXAMPLE: &str = include_str!("../../examples/llm-study/summary-server.toml");

/// The starting configuration of an H3Fusion run: about half a minute on 2 cores.
const H3FUSION_EXAMPLE: &str = include_str!("../../examples/h3fusion-small.toml");

/// The example configuration of `action`.
fn example(action: AlignAction) -> &'static str {
    match action {
        AlignAction::ToplaSummary => SUMMARY_EXAMPLE,
        AlignAction::H3Fusion => H3FUSION_EXAMPLE,
        _ => EXAMPLE,
    }
}

/// Every kind of run but CTR benchmarks and pose benchmarks (the CTR and Pose pages list
/// those).
fn shown(action: AlignAction) -> bool {
    !matches!(
        action,
        AlignAction::CtrBenchmark | AlignAction::PoseBenchmark
    )
}

/// The actions this page starts.
fn actions() -> impl Iterator<Item = AlignAction> {
    AlignAction::ALL.into_iter().filter(|a| shown(*a))
}

fn what(action: AlignAction) -> &'static str {
    match action {
        AlignAction::Benchmark => "every defence × p × n of [grid]: table, charts and report",
        AlignAction::Attack => "one attack with [attack]'s defence, p and n",
        AlignAction::Booster => "align with Booster and measure HS and FA",
        AlignAction::Vaccine => "align with Vaccine and measure HS and FA",
        AlignAction::Lisa => "one attack on the SFT-aligned model, fine-tuned with Lisa",
        AlignAction::CtrBenchmark => "a CTR benchmark (started from the CTR page)",
        AlignAction::PoseBenchmark => "a JM-Pose ablation on the synthetic video benchmark",
        AlignAction::H3Fusion => {
            "H3Fusion: three LoRA experts (helpful, harmless, honest) fused into a mixture of \
             experts; its report gives every model's scores and the routing heat-maps"
        }
        AlignAction::ToplaSummary => {
            "an LLM-ensemble run: LLM-TOPLA-Summary fine-tunes a model that reads every member's \
             answers and writes the fused one; its report sets it beside the members, the votes, \
             TOPLA-Weighted and the oracle"
        }
    }
}

/// The page.
#[component]
pub fn AlignPage() -> impl IntoView {
    view! {
        <section id="align" class="tool" aria-labelledby="align-title">
            <h2 id="align-title">"Alignment and LLM-ensemble runs"</h2>
            <p>
                "A model is aligned (SFT, Booster or Vaccine), then attacked: fine-tuned on n
                samples of a benign task of which a share p is harmful; Lisa defends during the
                fine-tuning. HS is the share of harmful prompts whose answer the judge flags, FA
                the accuracy on the benign task. The server trains one job at a time; the
                configuration is the one "<code>"fuselab align … --config FILE"</code>" reads (the
                server sets "<code>"out"</code>" and reads data files from its "
                <code>"align-data"</code>" folder). An LLM-ensemble run ("<code>"topla-summary"</code>")
                trains LLM-TOPLA-Summary on a team's answer sets, as "<code>"fuselab llm topla summary"</code>" does;
                an H3Fusion run ("<code>"h3fusion"</code>") fuses helpful, harmless and honest experts,
                as "<code>"fuselab align h3fusion"</code>" does."
            </p>
            <SignedIn what="start and follow training runs">
                <Runs />
            </SignedIn>
        </section>
    }
}

/// The form (for a user allowed to train), the followed run and the list of runs.
// One page's wiring: the form, the followed run and the list.
#[allow(clippy::too_many_lines)]
#[component]
fn Runs() -> impl IntoView {
    let auth = use_auth();
    let access = auth.access_untracked();
    let may_train = access.as_ref().map(Access::training) == Some(Training::Allowed);
    let owners = access.as_ref().is_some_and(Access::sees_owners);
    let action = RwSignal::new(AlignAction::Benchmark);
    let config = RwSignal::new(EXAMPLE.to_owned());
    let starting = RwSignal::new(false);
    let view_tab = RwSignal::new(0_usize);
    let state = Tracker::<AlignMetrics>::new(auth, "Run");
    let (live, feedback) = (state.live, state.feedback);
    // A run already training when the page opens is followed.
    let runs = state.runs(shown);
    let follow = move |id: String| state.follow(&id);
    let start = move |_| {
        starting.set(true);
        let body = StartAlignRun {
            action: action.get_untracked(),
            config: config.get_untracked(),
        };
        state.start(body, move || starting.set(false));
    };
    let resume = move |id: String| state.resume(id);
    let remove = move |id: String| state.remove(id);

    let progress = move || {
        live.get().map(|l| {
            let (fraction, stage) = match &l.progress {
                Some(m) => (
                    m.step as f64 / m.total_steps.max(1) as f64,
                    format!(
                        "Stage {} · step {}/{} · loss {:.4}",
                        m.stage, m.step, m.total_steps, m.loss
                    ),
                ),
                None => (0.0, "Waiting for the first training step…".to_owned()),
            };
            let status = match l.status {
                AlignRunStatus::Queued => "queued: waiting for the training job before it",
                AlignRunStatus::Running => "running",
                AlignRunStatus::Done => "done",
                AlignRunStatus::Failed => "failed",
                AlignRunStatus::Interrupted => "interrupted",
            };
            view! {
                <div id="align-live" data-status=l.status.name()>
                    <p id="align-run-status">{format!(
                        "Run {}: {status} ({} training steps{})",
                        l.id,
                        l.lines,
                        if l.status.finished() { "" } else { " so far" }
                    )}</p>
                    <p id="align-stage">{stage}</p>
                    <progress id="align-progress" max="1" prop:value=fraction></progress>
                    {l.note.map(|note| view! { <p class="note" role="status">{note}</p> })}
                </div>
            }
        })
    };

    let form = if may_train {
        view! {
            <label for="align-action">"Action"</label>
            <select id="align-action" on:change=move |e| {
                let name = event_target_value(&e);
                if let Some(a) = actions().find(|a| a.name() == name) {
                    // Switching between kinds of run starts from that kind's example.
                    if example(a) != example(action.get_untracked()) {
                        config.set(example(a).to_owned());
                    }
                    action.set(a);
                }
            }>
                {actions().map(|a| view! {
                    <option value=a.name() selected=move || action.get() == a>{a.name()}</option>
                }).collect_view()}
            </select>
            <p class="note">{move || what(action.get())}</p>
            <Tabs id="align-view" label="Configuration" labels=vec!["Settings", "TOML (advanced)"] selected=view_tab />
            <TabPanel id="align-view" index=0 selected=view_tab>
                <Settings action=action config=config />
            </TabPanel>
            <TabPanel id="align-view" index=1 selected=view_tab>
                <label for="align-config">"Configuration (TOML)"</label>
                <p class="help">
                    "Every key of the run, as "<code>"fuselab align … --config FILE"</code>" reads
                    it; the settings are the same keys."
                </p>
                <textarea id="align-config" rows="18" spellcheck="false" prop:value=move || config.get()
                    on:input=move |e| config.set(event_target_value(&e))></textarea>
            </TabPanel>
            <div class="actions">
                <button id="align-start" prop:disabled=move || starting.get() on:click=start>"Start"</button>
                <button class="secondary" on:click=move |_| config.set(example(action.get_untracked()).to_owned())>"Reset to the example"</button>
            </div>
        }
        .into_any()
    } else {
        view! {
            <p id="align-not-allowed" class="note">
                "Your account may not start training runs: ask this server's administrator to
                allow it. Your earlier runs are listed below."
            </p>
        }
        .into_any()
    };
    view! {
        {form}
        <runs::Feedback id="align-feedback" feedback=feedback />
        {progress}
        <RunList runs=runs title="Runs" id="align-runs" empty_id="align-empty"
            empty=if may_train { "None yet: start one above." } else { "None yet." }
            item=move |run| view! {
                <RunView run=run owners=owners may_train=may_train resume=resume follow=follow remove=remove />
            }.into_any() />
    }
}

/// One run of the list: its state (and owner, for an administrator), Resume or Follow, Delete
/// (Cancel while it is queued or training), and once done its results, charts and files.
#[component]
fn RunView(
    run: AlignRunSummary,
    /// Whether the list holds every user's runs, so each names its owner.
    owners: bool,
    /// Whether interrupted and failed runs may be resumed.
    may_train: bool,
    resume: impl Fn(String) + Copy + 'static,
    follow: impl Fn(String) + Copy + 'static,
    remove: impl Fn(String) + Copy + 'static,
) -> impl IntoView {
    let id = run.id.clone();
    let file = |name: &str| api::run_file_url(&id, name);
    let attacked = run.results.iter().any(|r| r.p.is_some());
    let (fusion, h3fusion) = (
        run.action == AlignAction::ToplaSummary,
        run.action == AlignAction::H3Fusion,
    );
    // Fusion runs report in `report.json`; attack runs in their results table and charts.
    let done = (run.status == AlignRunStatus::Done).then(|| {
        if fusion || h3fusion {
            view! {
                {h3fusion.then(|| view! { <H3FusionResults id=id.clone() /> })}
                <p class="files">
                    <a href=file("report.html") target="_blank">"Report"</a>" · "
                    <a href=file("report.json") download="report.json">"JSON"</a>" · "
                    <a href=file("metrics.jsonl") download="metrics.jsonl">"Training metrics"</a>
                </p>
            }
            .into_any()
        } else {
            view! {
                <ResultsTable rows=run.results.clone() />
                {attacked.then(|| view! {
                    <div class="charts">
                        <img src=file("hs.svg") alt="Harmful score against the poison ratio p" />
                        <img src=file("fa.svg") alt="Fine-tune accuracy against the poison ratio p" />
                    </div>
                })}
                <p class="files">
                    <a href=file("report.html") target="_blank">"Report"</a>" · "
                    <a href=file("results.csv") download="results.csv">"CSV"</a>" · "
                    <a href=file("results.json") download="results.json">"JSON"</a>" · "
                    <a href=file("metrics.jsonl") download="metrics.jsonl">"Training metrics"</a>
                </p>
            }
            .into_any()
        }
    });
    let kind = if fusion {
        "LLM ensemble"
    } else if h3fusion {
        "fusion"
    } else {
        "alignment"
    };
    let title = format!("{kind} · {}", run.action.name());
    view! {
        <RunCard run=run class="" title=title owners=owners may_train=may_train
            resume=resume follow=follow remove=remove>
            {done}
        </RunCard>
    }
}

/// The results table: defence, p, n, HS, HS+, FA (and the seed, for a run of several).
#[component]
fn ResultsTable(rows: Vec<AlignResultRow>) -> impl IntoView {
    let mut seeds: Vec<u64> = rows.iter().filter_map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let seeded = seeds.len() > 1;
    view! {
        <div class="table-wrap" tabindex="0">
            <table class="align-results">
                <thead><tr>
                    {seeded.then(|| view! { <th>"seed"</th> })}
                    <th>"defence"</th><th>"p"</th><th>"n"</th><th>"HS %"</th><th>"HS+ %"</th><th>"FA %"</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|r| view! {
                        <tr>
                            {seeded.then(|| view! { <td class="number">{r.seed.map(|s| s.to_string())}</td> })}
                            <td>{r.defence}</td>
                            <td class="number">{r.p.map_or_else(|| "aligned".to_owned(), |p| p.to_string())}</td>
                            <td class="number">{r.n.map_or_else(|| "–".to_owned(), |n| n.to_string())}</td>
                            <td class="number">{format!("{:.1}", r.hs)}</td>
                            <td class="number">{format!("{:.1}", r.hs_plus)}</td>
                            <td class="number">{format!("{:.1}", r.fa)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

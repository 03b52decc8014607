//! The Ensembles page: drop in a model pool's prediction files, analyse them on this device in
//! a Web Worker with the same engine as the CLI (or on the server for large pools), explore
//! tables and plots, export everything, save and share reports.

mod combine;
mod combine_all;
mod plots;
mod saved;
mod teams;

use fuselab_shared::worker::ensemble::{Compute, WorkerOptions, WorkerResult};
pub use saved::SavedReportPage;
use teams::{TeamDetail, TopTeams};

use fuselab_shared::ensemble::{Analysis, OverviewOptions, SCATTER_LIMIT, SizeRange, SplitChoice};
use fuselab_ui::DropZone;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use crate::{
    access::Failure,
    session::{Auth, SignInPrompt, use_auth},
};

#[wasm_bindgen(module = "/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = filesOf)]
    fn files_of(event: &JsValue) -> js_sys::Array;
    #[wasm_bindgen(js_name = fileNames)]
    fn file_names(files: &js_sys::Array) -> String;
    #[wasm_bindgen(js_name = startAnalysis)]
    fn start_analysis(
        files: &js_sys::Array,
        options: &str,
        on_progress: JsValue,
        on_done: JsValue,
        on_error: JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = startDemoAnalysis)]
    fn start_demo_analysis(
        options: &str,
        on_progress: JsValue,
        on_done: JsValue,
        on_error: JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = analyzeOnServer)]
    fn analyze_on_server(
        body: &str,
        on_progress: JsValue,
        on_done: JsValue,
        on_error: JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = cancelAnalysis)]
    fn cancel_analysis(handle: &JsValue);
    #[wasm_bindgen(js_name = downloadText)]
    fn download_text(name: &str, mime: &str, text: &str);
    #[wasm_bindgen(js_name = downloadSvg, catch)]
    fn download_svg(id: &str, name: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = downloadPng, catch)]
    fn download_png(id: &str, name: &str) -> Result<(), JsValue>;
}

/// Where an analysis was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In this browser's worker.
    Browser,
    /// On the server (a large pool).
    Server,
    /// A saved report, read-only.
    Saved(String),
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
enum Run {
    Idle,
    Running {
        done: f64,
        total: f64,
        on_server: bool,
    },
    Done(Box<Analysis>, Origin),
    Failed(String),
    Cancelled,
    /// The pool (of so many teams) is for the server, which needs a signed-in user.
    SignIn(u64),
}

/// Where the page runs an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunOn {
    /// Here, unless the pool has more than [`SERVER_TEAMS`] teams.
    Auto,
    Device,
    Server,
}

/// Above this many teams the automatic choice sends the pool to the server.
const SERVER_TEAMS: u64 = 100_000;

/// A value with 4 decimals, or a dash when undefined.
fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.4}"))
}

/// Streams the analysis of a parsed pool of `teams` teams on the server; progress, result or
/// error land in `set_run`. An expired session asks to sign in again.
fn launch_on_server(
    request: &str,
    teams: u64,
    auth: Auth,
    set_run: WriteSignal<Run>,
    handle: StoredValue<Option<JsValue>, LocalStorage>,
) {
    set_run.set(Run::Running {
        done: 0.0,
        total: 0.0,
        on_server: true,
    });
    let on_progress = Closure::<dyn FnMut(f64, f64)>::new(move |done, total| {
        set_run.set(Run::Running {
            done,
            total,
            on_server: true,
        });
    });
    let on_done = Closure::<dyn FnMut(String)>::new(move |json: String| {
        handle.set_value(None);
        set_run.set(match serde_json::from_str::<Analysis>(&json) {
            Ok(analysis) => Run::Done(Box::new(analysis), Origin::Server),
            Err(error) => Run::Failed(format!("the server's result could not be read: {error}")),
        });
    });
    let on_error = Closure::<dyn FnMut(String, u16)>::new(move |message: String, status: u16| {
        handle.set_value(None);
        // `status` is 0 when no answer came (the message says why).
        if Failure::answer(status, None).needs_sign_in() {
            auth.expired();
            set_run.set(Run::SignIn(teams));
        } else {
            set_run.set(Run::Failed(message));
        }
    });
    let started = analyze_on_server(
        request,
        on_progress.into_js_value(),
        on_done.into_js_value(),
        on_error.into_js_value(),
    );
    handle.set_value(Some(started));
}

/// Starts a worker on the files; its progress, result or error land in `set_run`. A pool the
/// worker hands back as too large continues on the server, for a signed-in user.
fn launch(
    list: Option<&js_sys::Array>,
    options: &WorkerOptions,
    auth: Auth,
    set_run: WriteSignal<Run>,
    handle: StoredValue<Option<JsValue>, LocalStorage>,
) {
    let options = serde_json::to_string(options).unwrap_or_default();
    set_run.set(Run::Running {
        done: 0.0,
        total: 0.0,
        on_server: false,
    });
    let on_progress = Closure::<dyn FnMut(f64, f64)>::new(move |done, total| {
        set_run.set(Run::Running {
            done,
            total,
            on_server: false,
        });
    });
    let on_done = Closure::<dyn FnMut(String)>::new(move |json: String| {
        handle.set_value(None);
        match serde_json::from_str::<WorkerResult>(&json) {
            Ok(WorkerResult::Analysis(analysis)) => {
                set_run.set(Run::Done(analysis, Origin::Browser));
            }
            Ok(WorkerResult::Server { teams, .. })
                if !auth.access_untracked().is_some_and(|a| a.uses_server()) =>
            {
                set_run.set(Run::SignIn(teams));
            }
            Ok(WorkerResult::Server { request, teams }) => match serde_json::to_string(&request) {
                Ok(body) => launch_on_server(&body, teams, auth, set_run, handle),
                Err(error) => set_run.set(Run::Failed(format!("cannot encode the pool: {error}"))),
            },
            Err(error) => set_run.set(Run::Failed(format!(
                "the worker's result could not be read: {error}"
            ))),
        }
    });
    let on_error = Closure::<dyn FnMut(String)>::new(move |message: String| {
        handle.set_value(None);
        set_run.set(Run::Failed(message));
    });
    let (on_progress, on_done, on_error) = (
        on_progress.into_js_value(),
        on_done.into_js_value(),
        on_error.into_js_value(),
    );
    let started = match list {
        Some(list) => start_analysis(list, &options, on_progress, on_done, on_error),
        None => start_demo_analysis(&options, on_progress, on_done, on_error),
    };
    handle.set_value(Some(started));
}

/// The options typed in the page.
fn read_options(top_k: &str, sizes: &str) -> Result<OverviewOptions, String> {
    let sizes = sizes
        .parse::<SizeRange>()
        .map_err(|message| format!("team sizes: {message}"))?;
    match top_k.trim().parse::<usize>() {
        Ok(top_k) if top_k > 0 => Ok(OverviewOptions {
            top_k,
            min_size: sizes.min,
            max_size: sizes.max,
        }),
        _ => Err("top K: expected a whole number of at least 1".into()),
    }
}

/// The drop zone and file picker; `on_files` gets the change or drop event.
#[component]
fn FileDrop(chosen: ReadSignal<String>, on_files: Callback<JsValue>) -> impl IntoView {
    view! {
        <DropZone id="pool-files" label="Prediction files (drop them here, or choose)"
            accept=".json,.csv,.npz,.npy,.jsonl" multiple=true
            on_files=Callback::new(move |e: web_sys::Event| on_files.run(e.into()))>
            <p class="chosen">{move || chosen.get()}</p>
        </DropZone>
    }
}

/// Where a run happens: this device or the server, the CPU or WebGPU.
#[component]
fn WhereToRun(set_run_on: WriteSignal<RunOn>, set_compute: WriteSignal<Compute>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="run-on">"Run on"</label>
            <select id="run-on" aria-describedby="run-on-help" on:change=move |ev| set_run_on.set(match event_target_value(&ev).as_str() {
                "device" => RunOn::Device,
                "server" => RunOn::Server,
                _ => RunOn::Auto,
            })>
                <option value="auto">"automatic"</option>
                <option value="device">"this device"</option>
                <option value="server">"the server"</option>
            </select>
            <p class="help" id="run-on-help">"Automatic: this device, the server above 100,000 teams. On this device nothing is uploaded."</p>
        </div>
        <div class="field">
            <label for="compute-on">"Compute on"</label>
            <select id="compute-on" aria-describedby="compute-on-help" on:change=move |ev| set_compute.set(match event_target_value(&ev).as_str() {
                "cpu" => Compute::Cpu,
                "gpu" => Compute::Gpu,
                _ => Compute::Auto,
            })>
                <option value="auto">"automatic"</option>
                <option value="cpu">"the CPU"</option>
                <option value="gpu">"WebGPU"</option>
            </select>
            <p class="help" id="compute-on-help">"Automatic: WebGPU from 4,096 teams on a hardware GPU. The numbers are the same either way."</p>
        </div>
    }
}

/// The page.
#[component]
pub fn EnsemblesPage() -> impl IntoView {
    let (chosen, set_chosen) = signal(String::new());
    let files = StoredValue::new_local(js_sys::Array::new());
    let (top_k, set_top_k) = signal("10".to_owned());
    let (size_text, set_size_text) = signal("2..".to_owned());
    let (run, set_run) = signal(Run::Idle);
    let handle = StoredValue::new_local(None::<JsValue>);
    let (run_on, set_run_on) = signal(RunOn::Auto);
    let (compute, set_compute) = signal(Compute::Auto);
    let auth = use_auth();
    // Bumped when a report is saved, so the list of saved reports reloads.
    provide_context(saved::Saved(RwSignal::new(0)));
    // The analysed pool's files (none for the demo), for a team's Combine.
    let source = StoredValue::new_local(None::<js_sys::Array>);
    provide_context(combine::PoolSource(source));

    let take_files = move |event: JsValue| {
        let list = files_of(&event);
        set_chosen.set(file_names(&list));
        files.set_value(list);
        set_run.set(Run::Idle);
    };
    // `demo`: the server's example pool instead of the chosen files.
    let start = move |demo: bool| {
        let options = match read_options(&top_k.get_untracked(), &size_text.get_untracked()) {
            Ok(options) => options,
            Err(message) => return set_run.set(Run::Failed(message)),
        };
        let list = files.get_value();
        if demo {
            set_chosen.set(
                "digits-demo.json: eight classifiers on 719 held-out hand-written digits".into(),
            );
        } else if list.length() == 0 {
            return set_run.set(Run::Failed("choose or drop the pool's files first".into()));
        }
        source.set_value((!demo).then(|| list.clone()));
        let local_limit = match run_on.get_untracked() {
            RunOn::Auto => Some(SERVER_TEAMS),
            RunOn::Device => None,
            RunOn::Server => Some(0),
        };
        launch(
            (!demo).then_some(&list),
            &WorkerOptions {
                overview: options,
                local_limit,
                compute: compute.get_untracked(),
                split: SplitChoice::Default,
            },
            auth,
            set_run,
            handle,
        );
    };
    let cancel = move |_| {
        if let Some(running) = handle.get_value() {
            cancel_analysis(&running);
            handle.set_value(None);
            set_run.set(Run::Cancelled);
        }
    };

    view! {
        <section class="tool" aria-labelledby="ensembles-title">
            <h2 id="ensembles-title">"Ensembles"</h2>
            <p>
                "Which sub-ensembles of your models fail on different samples and vote accurately? \
                 Give one JSON file, one .npz archive, labels.npy with one <model>.npy per model, \
                 a labels CSV with a predictions CSV, or LLM answers (a .jsonl question set with one \
                 .jsonl answer set per model, as `fuselab llm answers` writes). The analysis runs in this browser and nothing \
                 is uploaded, unless the pool has more than 100,000 teams (or you choose the server)."
            </p>
            <FileDrop chosen=chosen on_files=Callback::new(take_files) />
            <div class="grid-fields">
                <div class="field">
                    <label for="top-k">"Top K"</label>
                    <input id="top-k" type="number" min="1" aria-describedby="top-k-help" prop:value=top_k
                        on:input=move |ev| set_top_k.set(event_target_value(&ev)) />
                    <p class="help" id="top-k-help">"How many of the best teams to list."</p>
                </div>
                <div class="field">
                    <label for="team-sizes">"Team sizes"</label>
                    <input id="team-sizes" type="text" spellcheck="false" aria-describedby="team-sizes-help"
                        prop:value=size_text on:input=move |ev| set_size_text.set(event_target_value(&ev)) />
                    <p class="help" id="team-sizes-help">"2.. for every size from 2, 2..4, or one size such as 3."</p>
                </div>
                <WhereToRun set_run_on=set_run_on set_compute=set_compute />
            </div>
            <div class="actions">
                <button id="analyze" on:click=move |_| start(false) disabled=move || matches!(run.get(), Run::Running { .. })>
                    "Analyse"
                </button>
                <button id="try-demo" class="secondary" on:click=move |_| start(true) disabled=move || matches!(run.get(), Run::Running { .. })>
                    "Try the demo"
                </button>
                <button id="cancel" class="secondary" on:click=cancel disabled=move || !matches!(run.get(), Run::Running { .. })>
                    "Cancel"
                </button>
            </div>
            <RunStatus run=run />
            <saved::SavedReports />
        </section>
    }
}

/// Progress, the error, or the results of the last run.
#[component]
fn RunStatus(run: ReadSignal<Run>) -> impl IntoView {
    move || match run.get() {
        Run::Idle => ().into_any(),
        Run::Cancelled => view! { <p class="warning" role="status">"Cancelled."</p> }.into_any(),
        Run::Running {
            done,
            total,
            on_server,
        } => view! {
            <p role="status">
                <progress max=total.max(1.0) value=done></progress>
                {match (total > 0.0, on_server) {
                    (true, false) => format!(" {done} of {total} teams scored"),
                    (true, true) => format!(" {done} of {total} teams scored on the server"),
                    (false, false) => " starting…".to_owned(),
                    (false, true) => " sent to the server…".to_owned(),
                }}
            </p>
        }
        .into_any(),
        Run::Failed(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
        Run::SignIn(teams) => view! {
            <div id="server-sign-in" class="warning" role="status">
                <p>{format!(
                    "This pool has {teams} teams: it is analysed on the server, which needs you \
                     to sign in (or choose “Run on: this device”)."
                )}</p>
                <SignInPrompt what="analyse it on the server" />
            </div>
        }
        .into_any(),
        Run::Done(analysis, origin) => {
            view! { <Results analysis=*analysis origin=origin /> }.into_any()
        }
    }
}

/// Everything shown after a run.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
pub fn Results(analysis: Analysis, origin: Origin) -> impl IntoView {
    let report = analysis.report.clone();
    // A combiner needs the pool's splits and probabilities, and the pool itself (not a saved
    // report's numbers).
    let combinable = analysis.split.is_some()
        && report.teams.iter().any(|t| t.soft_vote_accuracy.is_some())
        && !matches!(origin, Origin::Saved(_))
        && use_context::<combine::PoolSource>().is_some();
    let (picked, set_picked) = signal(report.teams.first().map(|t| t.members.clone()));
    let report_json = serde_json::to_string_pretty(&report).unwrap_or_default();
    let csv = report.to_csv();
    let models = report
        .models
        .iter()
        .map(|m| {
            view! {
                <tr>
                    <td>{m.name.clone()}</td>
                    <td class="number">{format!("{:.4}", m.accuracy)}</td>
                    <td class="number">{m.n_negatives}</td>
                </tr>
            }
        })
        .collect_view();
    let save = (!matches!(origin, Origin::Saved(_)))
        .then(|| view! { <saved::SaveButton analysis=analysis.clone() /> });
    let warnings = report
        .warnings
        .iter()
        .map(|w| view! { <li>{w.clone()}</li> })
        .collect_view();
    view! {
        <div class="results">
            <p class="note" id="analysis-summary">
                {format!(
                    "{} models, {} samples{}, {} classes; {}.",
                    report.n_models,
                    report.n_samples,
                    match analysis.split {
                        Some(used) => match used.split {
                            Some(split) => format!(" (the {split} split of {})", used.of),
                            None => " (every split)".to_owned(),
                        },
                        None => String::new(),
                    },
                    report.n_classes,
                    match &origin {
                        Origin::Browser => format!(
                            "analysed in this browser in {:.0} ms{}",
                            analysis.millis.unwrap_or_default(),
                            analysis.computed_on.as_ref().map(|c| format!("; focal diversity on {c}")).unwrap_or_default()
                        ),
                        Origin::Server => format!("analysed on the server in {:.0} ms", analysis.millis.unwrap_or_default()),
                        Origin::Saved(id) => format!("saved report {id}, read-only"),
                    }
                )}
            </p>
            <div class="actions">
                <button id="export-json" class="secondary" on:click=move |_| download_text("ensemble-report.json", "application/json", &report_json)>
                    "Report JSON"
                </button>
                <button id="export-csv" class="secondary" on:click=move |_| download_text("ensemble-teams.csv", "text/csv", &csv)>
                    "Teams CSV"
                </button>
                {save}
            </div>
            <h3>"Models"</h3>
            <div class="table-wrap" tabindex="0">
                <table id="ensemble-models">
                    <thead><tr><th>"model"</th><th>"accuracy"</th><th>"negatives"</th></tr></thead>
                    <tbody>{models}</tbody>
                </table>
            </div>
            <TopTeams report=report.clone() picked=picked set_picked=set_picked combinable=combinable />
            <TeamDetail report=report.clone() picked=picked combinable=combinable />
            <Plots analysis=analysis set_picked=set_picked />
            <ul class="warning">{warnings}</ul>
        </div>
    }
}

/// SVG and PNG buttons for a plot.
#[component]
fn ExportButtons(id: &'static str, file: &'static str) -> impl IntoView {
    let export = move |png: bool| {
        let result = if png {
            download_png(id, &format!("{file}.png"))
        } else {
            download_svg(id, &format!("{file}.svg"))
        };
        if let Err(error) = result {
            leptos::logging::error!("export failed: {error:?}");
        }
    };
    view! {
        <div class="actions">
            <button class="secondary" on:click=move |_| export(false)>"SVG"</button>
            <button class="secondary" on:click=move |_| export(true)>"PNG"</button>
        </div>
    }
}

/// The scatter plot, the by-size plot and the heat-map.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
fn Plots(analysis: Analysis, set_picked: WriteSignal<Option<Vec<usize>>>) -> impl IntoView {
    let names: Vec<String> = analysis
        .report
        .models
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let (metric, set_metric) = signal(0_usize);
    let scatter = match analysis.scatter.clone() {
        Some(points) => view! {
            <Scatter
                points=points
                highlighted=analysis.report.top_k.clone()
                names=names.clone()
                on_pick=Callback::new(move |members| set_picked.set(Some(members)))
            />
            <ExportButtons id="plot-scatter" file="focal-diversity-vs-accuracy" />
        }
        .into_any(),
        None => view! {
            <p class="note">
                {format!("More than {SCATTER_LIMIT} teams: the scatter plot is left out; the summaries by size cover all of them.")}
            </p>
        }
        .into_any(),
    };
    let pairwise = analysis.pairwise.clone();
    let options = pairwise
        .iter()
        .enumerate()
        .map(|(k, p)| view! { <option value=k.to_string()>{p.metric.clone()}</option> })
        .collect_view();
    let heatmap = move || {
        pairwise
            .get(metric.get())
            .cloned()
            .map(|matrix| view! { <HeatMap matrix=matrix names=names.clone() /> })
    };
    view! {
        <h3>"Focal diversity and accuracy of every team"</h3>
        {scatter}
        <h3>"By team size"</h3>
        <BySize sizes=analysis.sizes.clone() />
        <ExportButtons id="plot-sizes" file="by-team-size" />
        <h3>"Pairwise diversity of the pool"</h3>
        <label>
            "Statistic "
            <select id="heatmap-metric" on:change=move |ev| set_metric.set(event_target_value(&ev).parse().unwrap_or(0))>
                {options}
            </select>
        </label>
        {heatmap}
        <ExportButtons id="plot-heatmap" file="pairwise-heatmap" />
    }
}

use plots::{BySize, HeatMap, Scatter};

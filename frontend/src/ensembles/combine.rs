//! *Combine* in a team's detail panel: the shared crate's learned combiners trained in a Web
//! Worker on the pool the page analysed (the same Rust code as `fuselab ensemble combine`, so
//! the same seed gives the same numbers), with the learning curve and the test scores beside
//! the votes and members.

use fuselab_shared::ensemble::combine::{CombineOptions, EpochPoint, Method, Scores};
pub(super) use fuselab_shared::worker::ensemble::{CombineRequest, CombineResult};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = startCombine)]
    pub(super) fn start_combine(
        files: &JsValue,
        request: &str,
        on_progress: JsValue,
        on_done: JsValue,
        on_error: JsValue,
    ) -> JsValue;
    #[wasm_bindgen(js_name = cancelAnalysis)]
    pub(super) fn cancel_run(handle: &JsValue);
}

/// The pool the page analysed, for the worker: the chosen files, or `None` for the demo.
#[derive(Clone, Copy)]
pub struct PoolSource(pub StoredValue<Option<js_sys::Array>, LocalStorage>);

#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    Running { done: f64, total: f64 },
    Done(Box<CombineResult>),
    Failed(String),
}

pub(super) fn method_of(value: &str) -> Method {
    match value {
        "stacking" => Method::Stacking,
        "weighted-vote" => Method::WeightedVote,
        _ => Method::Mlp,
    }
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.4}"))
}

fn score_row(name: String, scores: &Scores, class: &'static str) -> impl IntoView {
    // The exact value, for comparing with the CLI's JSON.
    let exact = scores.accuracy.to_string();
    view! {
        <tr class=class data-accuracy=exact>
            <td>{name}</td>
            <td class="number">{format!("{:.4}", scores.accuracy)}</td>
            <td class="number">{format!("[{:.4}, {:.4}]", scores.interval[0], scores.interval[1])}</td>
            <td class="number">{optional(scores.nll)}</td>
            <td class="number">{optional(scores.ece)}</td>
        </tr>
    }
}

/// The learning curve as an SVG: val accuracy (0..1) and train loss (scaled to its maximum).
fn curve(points: &[EpochPoint], best: Option<usize>) -> impl IntoView {
    let (width, height) = (360.0, 140.0);
    let epochs = points.len().max(2) as f64;
    let max_loss = points
        .iter()
        .map(|p| p.train_loss)
        .fold(f64::MIN_POSITIVE, f64::max);
    let x = move |i: usize| 30.0 + (width - 40.0) * i as f64 / (epochs - 1.0);
    let y = move |v: f64| 10.0 + (height - 30.0) * (1.0 - v.clamp(0.0, 1.0));
    let line = |value: &dyn Fn(&EpochPoint) -> f64| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(value(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let accuracy = line(&|p| p.val_accuracy);
    let loss = line(&|p| p.train_loss / max_loss);
    let marker = best.map(|epoch| {
        let at = x(epoch.saturating_sub(1));
        view! { <line class="best" x1=at x2=at y1="10" y2=height - 20.0></line> }
    });
    view! {
        <svg id="combine-curve" class="plot" viewBox=format!("0 0 {width} {height}") role="img"
            aria-label="Learning curve: val accuracy and train loss per epoch">
            <polyline class="series-accuracy" fill="none" points=accuracy></polyline>
            <polyline class="series-loss" fill="none" points=loss></polyline>
            {marker}
            <text x="30" y=height - 4.0>"epoch 1"</text>
            <text x=width - 10.0 y=height - 4.0 text-anchor="end">{format!("epoch {}", points.len())}</text>
        </svg>
        <p class="note">"Val accuracy (upper line, 0 to 1), train loss (lower, scaled to its largest value); the mark is the kept epoch."</p>
    }
}

fn results(result: &CombineResult, method: Method) -> impl IntoView {
    let team = &result.team;
    let combiner = match method {
        Method::Mlp => format!("mlp (epoch {})", team.best_epoch.unwrap_or(0)),
        Method::Stacking => format!("stacking (L2 {})", team.l2.unwrap_or(0.0)),
        Method::WeightedVote => "weighted vote".to_owned(),
    };
    let votes = team
        .baselines
        .iter()
        .rev()
        .filter(|b| !b.member)
        .map(|b| score_row(b.name.clone(), &b.scores, "vote"))
        .collect_view();
    let members = team
        .baselines
        .iter()
        .filter(|b| b.member)
        .map(|b| score_row(format!("member {}", b.name), &b.scores, "member"))
        .collect_view();
    let sizes = result.sizes;
    view! {
        <p class="note" id="combine-summary">
            {format!(
                "Trained on {} train samples, chosen on {} val, scored on {} test samples, in this browser in {:.0} ms.",
                sizes.train, sizes.val, sizes.test, result.millis
            )}
        </p>
        <div class="table-wrap" tabindex="0">
            <table id="combine-table">
                <thead>
                    <tr><th></th><th>"accuracy"</th><th>"95 % interval"</th><th>"NLL"</th><th>"ECE"</th></tr>
                </thead>
                <tbody>
                    {score_row(combiner, &team.combined, "combined")}
                    {votes}
                    {members}
                </tbody>
            </table>
        </div>
        {(!team.curve.is_empty()).then(|| curve(&team.curve, team.best_epoch))}
    }
}

/// *Combine* for the team `members`: a method, a button, progress, then the results.
#[component]
pub fn CombinePanel(members: Vec<usize>) -> impl IntoView {
    let source = use_context::<PoolSource>();
    let state = RwSignal::new(State::Idle);
    let method = RwSignal::new("mlp".to_owned());
    let handle = StoredValue::new_local(None::<JsValue>);
    on_cleanup(move || {
        if let Some(Some(running)) = handle.try_get_value() {
            cancel_run(&running);
        }
    });
    let run = move |_| {
        let Some(PoolSource(files)) = source else {
            return;
        };
        let request = CombineRequest {
            members: members.clone(),
            options: CombineOptions {
                method: method_of(&method.get_untracked()),
                ..CombineOptions::default()
            },
        };
        let Ok(request) = serde_json::to_string(&request) else {
            return;
        };
        state.set(State::Running {
            done: 0.0,
            total: 0.0,
        });
        let on_progress = Closure::<dyn FnMut(f64, f64)>::new(move |done, total| {
            state.try_set(State::Running { done, total });
        });
        let on_done = Closure::<dyn FnMut(String)>::new(move |json: String| {
            handle.try_set_value(None);
            state.try_set(match serde_json::from_str::<CombineResult>(&json) {
                Ok(result) => State::Done(Box::new(result)),
                Err(error) => {
                    State::Failed(format!("the worker's result could not be read: {error}"))
                }
            });
        });
        let on_error = Closure::<dyn FnMut(String)>::new(move |message: String| {
            handle.try_set_value(None);
            state.try_set(State::Failed(message));
        });
        let files = files.get_value().map_or(JsValue::NULL, JsValue::from);
        let started = start_combine(
            &files,
            &request,
            on_progress.into_js_value(),
            on_done.into_js_value(),
            on_error.into_js_value(),
        );
        handle.set_value(Some(started));
    };
    let status = move || {
        match state.get() {
        State::Idle => ().into_any(),
        State::Running { done, total } => view! {
            <p role="status">
                <progress max=total.max(1.0) value=done></progress>
                {if total > 0.0 { format!(" epoch {done} of {total}") } else { " starting…".to_owned() }}
            </p>
        }
        .into_any(),
        State::Failed(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
        State::Done(result) => results(&result, result.method).into_any(),
    }
    };
    view! {
        <div class="combine" id="combine">
            <h5>"Learn to combine"</h5>
            <p class="note">
                "Train a combiner of this team's outputs on the pool's train split, keep what does \
                 best on val, and compare it on test with the votes and each member."
            </p>
            <div class="actions">
                <label>
                    "Combiner "
                    <select id="combine-method" on:change=move |ev| method.set(event_target_value(&ev))>
                        <option value="mlp" selected>"FusionShot's network (mlp)"</option>
                        <option value="stacking">"stacking (logistic regression)"</option>
                        <option value="weighted-vote">"weighted vote"</option>
                    </select>
                </label>
                <button id="combine-run" on:click=run disabled=move || matches!(state.get(), State::Running { .. })>
                    "Combine"
                </button>
            </div>
            {status}
        </div>
    }
}

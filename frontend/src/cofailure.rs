//! The co-failure tool: paste a prediction table, see each model's accuracy and how often each
//! pair of models fails on the same samples.

use fuselab_shared::{CofailureReport, FailureMasks, PredictionTable};
use leptos::prelude::*;

use crate::gpu;

/// A finished computation.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    report: CofailureReport,
    /// Where it ran, and whether the GPU agreed with the CPU.
    note: String,
    /// The GPU path failed or disagreed.
    warning: bool,
}

const EXAMPLE: &str = "label,resnet,vit,mlp\n0,0,0,1\n1,1,0,1\n2,2,2,0\n1,0,1,1";

/// Runs on WebGPU when it is ready and checks the result against the CPU twin; falls back to
/// the CPU result when the GPU is unavailable, fails or disagrees.
async fn compute(table: PredictionTable) -> Outcome {
    let masks = FailureMasks::from_table(&table);
    let cpu = masks.cofailure_counts();
    let Some(kernels) = gpu::kernels() else {
        return Outcome {
            report: CofailureReport::new(&table, &cpu),
            note: "Computed on the CPU (WebGPU is not available).".into(),
            warning: false,
        };
    };
    match kernels.cofailure.run(&kernels.gpu, &masks).await {
        Ok(counts) if counts == cpu => Outcome {
            report: CofailureReport::new(&table, &counts),
            note: format!(
                "Computed on WebGPU ({}); identical to the CPU result.",
                kernels.gpu.adapter
            ),
            warning: false,
        },
        Ok(_) => Outcome {
            report: CofailureReport::new(&table, &cpu),
            note: "WebGPU returned a different table than the CPU; showing the CPU result.".into(),
            warning: true,
        },
        Err(error) => Outcome {
            report: CofailureReport::new(&table, &cpu),
            note: format!("WebGPU failed ({error}); showing the CPU result."),
            warning: true,
        },
    }
}

/// The tool: input, button, results.
#[component]
pub fn CofailureTool() -> impl IntoView {
    let (text, set_text) = signal(String::new());
    let (busy, set_busy) = signal(false);
    let (outcome, set_outcome) = signal(None::<Result<Outcome, String>>);
    let run = move |_| match PredictionTable::from_csv(&text.get_untracked()) {
        Err(error) => set_outcome.set(Some(Err(error.to_string()))),
        Ok(table) => {
            set_busy.set(true);
            leptos::task::spawn_local(async move {
                set_outcome.set(Some(Ok(compute(table).await)));
                set_busy.set(false);
            });
        }
    };
    view! {
        <section class="tool" aria-labelledby="cofailure-title">
            <h2 id="cofailure-title">"Co-failure table"</h2>
            <p>
                "Which models fail on the same samples? Paste one row per sample: the true class, then \
                 each model's predicted class. Nothing leaves this browser."
            </p>
            <label for="predictions">"Predictions (CSV with a header: label, then one column per model)"</label>
            <textarea
                id="predictions"
                rows="8"
                spellcheck="false"
                placeholder=EXAMPLE
                prop:value=text
                on:input=move |ev| set_text.set(event_target_value(&ev))
            ></textarea>
            <div class="actions">
                <button id="compute" on:click=run disabled=busy>"Compute"</button>
                <button class="secondary" on:click=move |_| set_text.set(EXAMPLE.to_owned())>
                    "Use the example"
                </button>
            </div>
            {move || match outcome.get() {
                None => ().into_any(),
                Some(Err(message)) => view! { <p id="compute-error" class="error" role="alert">{message}</p> }.into_any(),
                Some(Ok(outcome)) => view! { <Results outcome=outcome /> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn Results(outcome: Outcome) -> impl IntoView {
    let report = outcome.report;
    let names: Vec<String> = report.models.iter().map(|m| m.name.clone()).collect();
    let samples = report.samples;
    view! {
        <p id="compute-status" class:warning=outcome.warning>{outcome.note}</p>
        <h3>"Models"</h3>
        <div class="table-wrap" tabindex="0">
            <table id="models-table">
                <thead><tr><th>"Model"</th><th>"Accuracy"</th><th>"Failures"</th></tr></thead>
                <tbody>
                    {report.models.into_iter().map(|m| view! {
                        <tr>
                            <td>{m.name}</td>
                            <td class="number">{format!("{:.1} %", 100.0 * m.accuracy)}</td>
                            <td class="number">{format!("{} of {samples}", m.failures)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <h3>"Samples both models fail"</h3>
        <div class="table-wrap" tabindex="0">
            <table id="cofailure-table">
                <thead>
                    <tr>
                        <th></th>
                        {names.iter().map(|n| view! { <th scope="col">{n.clone()}</th> }).collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {report.cofailures.into_iter().zip(names.clone()).map(|(row, name)| view! {
                        <tr>
                            <th scope="row">{name}</th>
                            {row.into_iter().map(|c| view! { <td class="number">{c}</td> }).collect_view()}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

//! A finished H3Fusion run on the Alignment page: every model's scores on the three tasks and
//! the fused model's routing heat-maps (layer × expert, per task), read from its `report.json`.

use fuselab_shared::align::Task;
use fuselab_shared::api::{H3FusionModelView, H3FusionReportView};
use leptos::prelude::*;

use crate::{api, heatmap::cell_colours};

/// The scores table and the routing heat-maps of run `id`.
#[component]
pub fn H3FusionResults(id: String) -> impl IntoView {
    let report = LocalResource::new(move || {
        let id = id.clone();
        async move { api::run_file::<H3FusionReportView>(&id, "report.json").await }
    });
    view! {
        <Suspense fallback=|| view! { <p class="note">"Loading the report…"</p> }>
            {move || report.get().map(|result| match result {
                Err(failure) => view! { <p class="error">{format!("The report is unavailable: {failure}")}</p> }.into_any(),
                Ok(report) => view! { <Report report=report /> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Report(report: H3FusionReportView) -> impl IntoView {
    let fused = report
        .models
        .iter()
        .find(|m| m.name == "fused")
        .map(|m| m.evaluation.routing.clone())
        .unwrap_or_default();
    view! {
        <p class="note">{format!("{} · base {} · {:.0} s", report.data, report.base, report.seconds)}</p>
        <Scores models=report.models />
        {(!fused.is_empty()).then(|| view! {
            <h5>"Routing of the fused model"</h5>
            <p class="help">
                "Each cell is the mean router probability of an expert (column) in a layer (row)
                over the tokens generated for one task's prompts: each task should go to its own
                expert."
            </p>
            <div class="heatmaps">
                {fused.into_iter().map(|(task, heat)| view! { <Heatmap task=task heat=heat /> }).collect_view()}
            </div>
        })}
    }
}

/// Every model's share of outputs passing each task's judge, and their mean.
#[component]
fn Scores(models: Vec<H3FusionModelView>) -> impl IntoView {
    let percent = |v: f64| format!("{:.0}", 100.0 * v);
    view! {
        <div class="table-wrap" tabindex="0">
            <table class="h3fusion-scores">
                <thead><tr>
                    <th>"model"</th><th class="number">"helpful %"</th><th class="number">"harmless %"</th>
                    <th class="number">"honest %"</th><th class="number">"mean %"</th>
                </tr></thead>
                <tbody>
                    {models.into_iter().map(|m| {
                        let s = m.evaluation.scores;
                        let class = if m.name == "fused" { "combined" } else { "" };
                        view! {
                            <tr class=class>
                                <td>{m.name}</td>
                                <td class="number">{percent(s.helpful)}</td>
                                <td class="number">{percent(s.harmless)}</td>
                                <td class="number">{percent(s.honest)}</td>
                                <td class="number">{percent(s.mean())}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// One task's heat-map as a table: layers down, experts across, each cell shaded by its
/// probability and labelled with it.
#[component]
fn Heatmap(task: Task, heat: Vec<Vec<f64>>) -> impl IntoView {
    let experts = heat.first().map_or(0, Vec::len);
    view! {
        <table class="heatmap" data-task=task.name()>
            <caption>{format!("{} prompts", task.name())}</caption>
            <thead><tr>
                <th scope="col">"layer"</th>
                {Task::ALL.iter().take(experts).map(|e| view! { <th scope="col">{e.name()}</th> }).collect_view()}
            </tr></thead>
            <tbody>
                {heat.into_iter().enumerate().map(|(layer, row)| view! {
                    <tr>
                        <th scope="row">{layer}</th>
                        {row.into_iter().map(|p| {
                            let (background, text) = cell_colours(p);
                            view! {
                                <td class="number" style:background-color=background style:color=text>
                                    {format!("{p:.2}")}
                                </td>
                            }
                        }).collect_view()}
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

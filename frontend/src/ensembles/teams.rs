//! The top-K table (sortable, with an optional combined-accuracy column) and the picked team's
//! detail panel: per-focal scores, votes, and Combine when the pool allows it.

use fuselab_shared::ensemble::{Report, TeamReport};
use leptos::prelude::*;

use super::{combine, combine_all, number};

/// Column the top-K table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Focal,
    Plurality,
    Size,
}

/// The top-K teams, sortable; a click picks a team for the detail panel. A pool with splits
/// and scores can add a column of each team's combined accuracy on test.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
pub(super) fn TopTeams(
    report: Report,
    picked: ReadSignal<Option<Vec<usize>>>,
    set_picked: WriteSignal<Option<Vec<usize>>>,
    combinable: bool,
) -> impl IntoView {
    let (sort_by, set_sort_by) = signal(SortBy::Focal);
    let count = report.teams.len();
    let column = combine_all::Column::new();
    let teams: Vec<Vec<usize>> = report.teams.iter().map(|t| t.members.clone()).collect();
    let rows = move || {
        let mut teams: Vec<TeamReport> = report.teams.clone();
        match sort_by.get() {
            SortBy::Focal => {}
            SortBy::Plurality => {
                teams.sort_by(|a, b| b.plurality_accuracy.total_cmp(&a.plurality_accuracy));
            }
            SortBy::Size => teams.sort_by_key(|t| t.members.len()),
        }
        teams
            .into_iter()
            .map(|team| {
                let members = team.members.clone();
                let selected = move || picked.get().as_ref() == Some(&members);
                let pick = team.members.clone();
                view! {
                    <tr class:selected=selected on:click=move |_| set_picked.set(Some(pick.clone()))>
                        <td>{report.team_names(&team.members)}</td>
                        <td class="number">{team.members.len()}</td>
                        <td class="number">{number(team.focal_diversity)}</td>
                        <td class="number">{format!("{:.4}", team.plurality_accuracy)}</td>
                        <td class="number">{format!("{:.4}", team.majority_accuracy)}</td>
                        <td class="number">{number(team.soft_vote_accuracy)}</td>
                        {combinable.then(|| column.cell(&team.members))}
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <h3>{format!("Top {count} teams")}</h3>
        <p class="note">"Click a column to sort, a row for its details. Accuracies are fractions."</p>
        {combinable.then(|| view! { <combine_all::CombineAll teams=teams column=column /> })}
        <div class="table-wrap" tabindex="0">
            <table id="top-teams">
                <thead>
                    <tr>
                        <th>"members"</th>
                        <th><button class="link" on:click=move |_| set_sort_by.set(SortBy::Size)>"size"</button></th>
                        <th><button class="link" on:click=move |_| set_sort_by.set(SortBy::Focal)>"focal diversity"</button></th>
                        <th><button class="link" on:click=move |_| set_sort_by.set(SortBy::Plurality)>"plurality"</button></th>
                        <th>"majority"</th>
                        <th>"soft vote"</th>
                        {combinable.then(|| view! { <th title="on test, after training on train and choosing on val">"combined"</th> })}
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// The picked team: per-focal scores and votes, and Combine when the pool allows it.
#[component]
#[allow(clippy::needless_pass_by_value)] // leptos props are owned
pub(super) fn TeamDetail(
    report: Report,
    picked: ReadSignal<Option<Vec<usize>>>,
    combinable: bool,
) -> impl IntoView {
    move || {
        let members = picked.get()?;
        let team = report.teams.iter().find(|t| t.members == members)?.clone();
        let per_focal = team
            .members
            .iter()
            .zip(&team.per_focal)
            .map(|(&m, gd)| {
                let scores = team
                    .focal_metrics
                    .as_ref()
                    .and_then(|f| f.get(&m.to_string()))
                    .cloned();
                view! {
                    <tr>
                        <td>{report.models[m].name.clone()}</td>
                        <td class="number">{number(*gd)}</td>
                        <td class="number">{number(scores.as_ref().and_then(|s| s.cohen_kappa))}</td>
                        <td class="number">{number(scores.as_ref().and_then(|s| s.one_minus_disagreement))}</td>
                        <td class="number">{number(scores.as_ref().and_then(|s| s.one_minus_kw_variance))}</td>
                    </tr>
                }
            })
            .collect_view();
        let diversity = team.diversity.map(|d| {
            format!(
                "On all samples: Cohen's κ {}, Q {}, correlation {}, disagreement {}, Fleiss' κ {}, entropy {}, KW variance {}, GD {}.",
                number(d.cohen_kappa),
                number(d.q_statistic),
                number(d.correlation),
                number(d.disagreement),
                number(d.fleiss_kappa),
                number(d.entropy),
                number(d.kw_variance),
                number(d.generalized_diversity)
            )
        });
        let size = team.members.len();
        let breakdown = team.failures.clone().map(|failures| {
            let total: u64 = failures.iter().sum();
            let rows = failures
                .into_iter()
                .enumerate()
                .map(|(wrong, samples)| {
                    let share = samples as f64 / total.max(1) as f64;
                    view! {
                        <tr>
                            <td>{format!("{} of {size} right", size - wrong)}</td>
                            <td class="number">{samples}</td>
                            <td><span class="bar" style=format!("width: {:.1}em", share * 12.0)></span></td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <div class="table-wrap" tabindex="0">
                    <table id="vote-breakdown">
                        <thead><tr><th>"members"</th><th>"samples"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            }
        });
        Some(view! {
            <div class="detail" id="team-detail">
                <h4>{report.team_names(&team.members)}</h4>
                <p>
                    {format!(
                        "Focal diversity {}; plurality vote {:.4}, majority vote {:.4}, soft vote {}.",
                        number(team.focal_diversity),
                        team.plurality_accuracy,
                        team.majority_accuracy,
                        number(team.soft_vote_accuracy)
                    )}
                </p>
                <div class="table-wrap" tabindex="0">
                    <table>
                        <thead>
                            <tr>
                                <th>"focal model"</th>
                                <th>"GD on its negatives"</th>
                                <th>"CK"</th>
                                <th>"1 − BD"</th>
                                <th>"1 − KW"</th>
                            </tr>
                        </thead>
                        <tbody>{per_focal}</tbody>
                    </table>
                </div>
                <p class="note">{diversity}</p>
                <p class="note">"How the members' votes split: on how many samples so many members are right."</p>
                {breakdown}
                {combinable.then(|| view! { <combine::CombinePanel members=team.members.clone() /> })}
            </div>
        })
    }
}

//! The `EnsembleBench` demo's FQ selection (notebook cells 7–9, spec §5.2): per (focal model,
//! size) strategic 2-means thresholds capped at the mean, candidates below them, team FQ
//! scores with argsort weights, a 2-means centre threshold per size, and the union over sizes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::numpy::{np_average, np_mean, np_round};
use super::{CompatError, EbMetric, FocalScoreTable, FocalWeights};
use crate::ensemble::threshold::{
    TeamStatistics, cluster_center_threshold, cluster_min_threshold, team_statistics,
};

/// Teams per metric, in [`EbMetric::ALL`] order.
pub type PerMetric<T> = [T; 6];

/// What the demo pipeline selects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotebookSelection {
    /// Cell 8 thresholds per (focal model, size).
    pub thresholds: BTreeMap<(usize, usize), PerMetric<f64>>,
    /// Cell 8 candidates per (focal model, size).
    pub per_focal_size: BTreeMap<(usize, usize), PerMetric<Vec<Vec<usize>>>>,
    /// Cell 9 team FQ scores of the candidates.
    pub candidate_fq: PerMetric<BTreeMap<Vec<usize>, f64>>,
    /// The final selection, teams in lexicographic order.
    pub selected: PerMetric<Vec<Vec<usize>>>,
    /// `getNTeamStatistics` of each final selection (accuracies in percent).
    pub statistics: PerMetric<Option<TeamStatistics>>,
}

/// Runs cells 7–9 on a table covering every team of sizes 2 to M, with each team's accuracy
/// (in table order) and each model's accuracy, both in percent.
///
/// # Errors
/// Where the demo raises: a missing per-focal score (cell 7) or a 2-means threshold that
/// cannot be drawn (cells 8 and 9).
pub fn notebook_pipeline(
    table: &FocalScoreTable,
    team_accuracy: &[f64],
    model_accuracy: &[f64],
) -> Result<NotebookSelection, CompatError> {
    let models = table.models();
    let complete = table.teams().len() == team_accuracy.len()
        && table.teams().first().is_some_and(|t| t.len() == 2)
        && table.teams().last().is_some_and(|t| t.len() == models);
    if !complete {
        return Err(CompatError::IncompleteTable { models });
    }
    cell7_all_scores_present(table)?;
    let (thresholds, per_focal_size) = cell8_focal_thresholds(table, team_accuracy)?;
    let (candidate_fq, selected) =
        cell9_team_thresholds(table, team_accuracy, model_accuracy, &per_focal_size)?;
    let statistics = std::array::from_fn(|m| {
        let pairs: Vec<(Vec<usize>, f64)> = selected[m]
            .iter()
            .map(|team| (team.clone(), accuracy_of(table, team_accuracy, team)))
            .collect();
        team_statistics(&pairs, model_accuracy)
    });
    Ok(NotebookSelection {
        thresholds,
        per_focal_size,
        candidate_fq,
        selected,
        statistics,
    })
}

fn accuracy_of(table: &FocalScoreTable, team_accuracy: &[f64], team: &[usize]) -> f64 {
    table.find(team).map_or(f64::NAN, |t| team_accuracy[t])
}

/// Cell 7: every (team, focal) score must exist; the first gap in the demo's order (focal
/// models ascending, teams lexicographic) fails.
fn cell7_all_scores_present(table: &FocalScoreTable) -> Result<(), CompatError> {
    let mut lexicographic: Vec<usize> = (0..table.teams().len()).collect();
    lexicographic.sort_by(|&a, &b| table.teams()[a].cmp(&table.teams()[b]));
    for f in 0..table.models() {
        for &t in &lexicographic {
            let members = &table.teams()[t];
            let Some(k) = members.iter().position(|&m| m == f) else {
                continue;
            };
            if table.scores(t)[k].is_err() {
                return Err(CompatError::MissingFocalScore {
                    focal: f,
                    team: members.clone(),
                    whole_team: table.scores(t).iter().all(Result::is_err),
                });
            }
        }
    }
    Ok(())
}

fn raw(table: &FocalScoreTable, t: usize, k: usize, m: usize) -> f64 {
    table.scores(t)[k].as_ref().map_or(f64::NAN, |s| s[m])
}

type FocalThresholds = (
    BTreeMap<(usize, usize), PerMetric<f64>>,
    BTreeMap<(usize, usize), PerMetric<Vec<Vec<usize>>>>,
);

/// Cell 8: per (focal, size < M) the strategic 2-means threshold capped at the mean, and the
/// teams scoring below it rounded to 3 decimals.
fn cell8_focal_thresholds(
    table: &FocalScoreTable,
    team_accuracy: &[f64],
) -> Result<FocalThresholds, CompatError> {
    let models = table.models();
    let mut thresholds = BTreeMap::new();
    let mut per_focal_size = BTreeMap::new();
    for f in 0..models {
        for size in 2..models {
            let cells: Vec<(usize, usize)> = (0..table.teams().len())
                .filter(|&t| table.teams()[t].len() == size)
                .filter_map(|t| {
                    table.teams()[t]
                        .iter()
                        .position(|&m| m == f)
                        .map(|k| (t, k))
                })
                .collect();
            let accuracy: Vec<f64> = cells.iter().map(|&(t, _)| team_accuracy[t]).collect();
            let mut limits = [0.0; 6];
            for metric in EbMetric::ALL {
                let m = metric.index();
                let column: Vec<f64> = cells.iter().map(|&(t, k)| raw(table, t, k, m)).collect();
                let cluster = cluster_min_threshold(&accuracy, &column).map_err(|failure| {
                    CompatError::Cluster {
                        cell: 8,
                        focal: Some(f),
                        size,
                        metric,
                        failure,
                    }
                })?;
                let mean = np_mean(&column);
                limits[m] = if mean < cluster { mean } else { cluster };
            }
            let chosen = std::array::from_fn(|m| {
                let bound = np_round(limits[m], 3);
                cells
                    .iter()
                    .filter(|&&(t, k)| raw(table, t, k, m) < bound)
                    .map(|&(t, _)| table.teams()[t].clone())
                    .collect()
            });
            thresholds.insert((f, size), limits);
            per_focal_size.insert((f, size), chosen);
        }
    }
    Ok((thresholds, per_focal_size))
}

type TeamThresholds = (
    PerMetric<BTreeMap<Vec<usize>, f64>>,
    PerMetric<Vec<Vec<usize>>>,
);

/// Cell 9: per size, the candidates' team FQ (argsort weights), a 2-means centre threshold,
/// and the union over sizes of the teams below it.
fn cell9_team_thresholds(
    table: &FocalScoreTable,
    team_accuracy: &[f64],
    model_accuracy: &[f64],
    per_focal_size: &BTreeMap<(usize, usize), PerMetric<Vec<Vec<usize>>>>,
) -> Result<TeamThresholds, CompatError> {
    let models = table.models();
    let mut candidate_fq: PerMetric<BTreeMap<Vec<usize>, f64>> = Default::default();
    let mut selected: PerMetric<Vec<Vec<usize>>> = Default::default();
    for metric in EbMetric::ALL {
        let m = metric.index();
        let mut union = BTreeSet::new();
        for size in 2..models {
            let mut candidates: BTreeMap<Vec<usize>, f64> = BTreeMap::new();
            for f in 0..models {
                for team in &per_focal_size[&(f, size)][m] {
                    if candidates.contains_key(team) {
                        continue;
                    }
                    let t = table
                        .find(team)
                        .ok_or(CompatError::IncompleteTable { models })?;
                    let scaled: Vec<f64> = table.scaled(t).iter().map(|s| s[m]).collect();
                    let weights = FocalWeights::ArgsortCompat.of(team, model_accuracy);
                    candidates.insert(team.clone(), np_average(&scaled, &weights));
                }
            }
            if candidates.is_empty() {
                continue;
            }
            let accuracy: Vec<f64> = candidates
                .keys()
                .map(|team| accuracy_of(table, team_accuracy, team))
                .collect();
            let scores: Vec<f64> = candidates.values().copied().collect();
            let bound = cluster_center_threshold(&accuracy, &scores).map_err(|failure| {
                CompatError::Cluster {
                    cell: 9,
                    focal: None,
                    size,
                    metric,
                    failure,
                }
            })?;
            union.extend(
                candidates
                    .iter()
                    .filter(|&(_, &score)| score < bound)
                    .map(|(team, _)| team.clone()),
            );
            candidate_fq[m].extend(candidates);
        }
        selected[m] = union.into_iter().collect();
    }
    Ok((candidate_fq, selected))
}

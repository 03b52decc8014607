//! `EnsembleBench`'s team-selection thresholds (`teamSelection.py`, spec §5.2) on scores where
//! lower means more diverse, HQ's hierarchical pruning, and the demo's team statistics.

use serde::Serialize;
use thiserror::Error;

use super::compat::numpy::{np_mean, np_round, py_max, py_min};
use super::kmeans::{XY, two_means};

/// Why a 2-means threshold could not be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterFailure {
    /// Fewer than two teams to cluster (sklearn: `n_samples=1 should be >= n_clusters=2`).
    #[error("fewer than two teams to cluster")]
    TooFewTeams,
    /// A score or accuracy is NaN (sklearn: `Input X contains NaN`).
    #[error("a score is undefined (NaN)")]
    Undefined,
    /// One cluster came out empty, as with coincident points (Python: `min() arg is an
    /// empty sequence`).
    #[error("one of the two clusters is empty")]
    EmptyCluster,
}

/// `getThreshold(target, metric, k)`: walking the teams in increasing (score, accuracy)
/// order, the score of the first team whose accuracy is below `mean − k·std` (population
/// std) of all accuracies; the largest score when there is none. `None` without teams.
pub fn std_threshold(accuracy: &[f64], score: &[f64], k: f64) -> Option<f64> {
    let mean = np_mean(accuracy);
    let deviations: Vec<f64> = accuracy.iter().map(|a| (a - mean) * (a - mean)).collect();
    let std = np_mean(&deviations).sqrt();
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| {
        score[a]
            .total_cmp(&score[b])
            .then(accuracy[a].total_cmp(&accuracy[b]))
    });
    order
        .into_iter()
        .find(|&i| accuracy[i] < mean - k * std)
        .map(|i| score[i])
        .or_else(|| py_max(score))
}

/// The strategic 2-means of (accuracy, score): initial centres (max accuracy, min score) and
/// (min accuracy, max score); returns the fit and the index of the lower-accuracy centre.
fn strategic(
    accuracy: &[f64],
    score: &[f64],
) -> Result<(super::kmeans::TwoMeans, usize), ClusterFailure> {
    if accuracy.iter().chain(score).any(|v| v.is_nan()) {
        return Err(ClusterFailure::Undefined);
    }
    let points: Vec<XY> = accuracy.iter().zip(score).map(|(&a, &s)| [a, s]).collect();
    let (Some(max_acc), Some(min_acc), Some(min_score), Some(max_score)) = (
        py_max(accuracy),
        py_min(accuracy),
        py_min(score),
        py_max(score),
    ) else {
        return Err(ClusterFailure::TooFewTeams);
    };
    let fit = two_means(&points, [[max_acc, min_score], [min_acc, max_score]])
        .ok_or(ClusterFailure::TooFewTeams)?;
    if !(fit.labels.contains(&0) && fit.labels.contains(&1)) {
        return Err(ClusterFailure::EmptyCluster);
    }
    let low = usize::from(fit.centers[0][0] > fit.centers[1][0]);
    Ok((fit, low))
}

/// `getThresholdClusteringKMeans(..., 'strategic')` (demo cell 8): the smallest score inside
/// the cluster whose centre has the lower accuracy.
///
/// # Errors
/// When the clustering cannot be drawn.
pub fn cluster_min_threshold(accuracy: &[f64], score: &[f64]) -> Result<f64, ClusterFailure> {
    let (fit, low) = strategic(accuracy, score)?;
    let inside: Vec<f64> = score
        .iter()
        .zip(&fit.labels)
        .filter(|&(_, &l)| l == low)
        .map(|(&s, _)| s)
        .collect();
    py_min(&inside).ok_or(ClusterFailure::EmptyCluster)
}

/// `getThresholdClusteringKMeansCenter(..., 'strategic')` (demo cell 9): the score coordinate
/// of the lower-accuracy centre.
///
/// # Errors
/// When the clustering cannot be drawn.
pub fn cluster_center_threshold(accuracy: &[f64], score: &[f64]) -> Result<f64, ClusterFailure> {
    let (fit, low) = strategic(accuracy, score)?;
    Ok(fit.centers[low][1])
}

/// HQ-Ensemble's hierarchical pruning: for each size from 2 to `max_size`, sort the teams of
/// that size that are still allowed by score descending (ties: lower accuracy first), prune
/// the first `⌊fraction · count⌋`, and disallow every larger team containing a pruned one.
/// `teams` holds (members ascending, score, accuracy); returns which teams are kept.
pub fn hq_prune(teams: &[(Vec<usize>, f64, f64)], fraction: f64, max_size: usize) -> Vec<bool> {
    let mut kept = vec![true; teams.len()];
    // Members as bit masks when they fit 64 bits (any pool small enough to enumerate).
    let masks: Option<Vec<u64>> = teams
        .iter()
        .map(|t| {
            t.0.iter().try_fold(0_u64, |acc, &m| {
                1_u64.checked_shl(u32::try_from(m).ok()?).map(|b| acc | b)
            })
        })
        .collect();
    let mut pruned: Vec<usize> = Vec::new();
    let contains_pruned = |i: usize, pruned: &[usize]| match &masks {
        Some(masks) => pruned.iter().any(|&p| masks[p] & masks[i] == masks[p]),
        None => pruned.iter().any(|&p| {
            teams[p]
                .0
                .iter()
                .all(|m| teams[i].0.binary_search(m).is_ok())
        }),
    };
    let largest = teams.iter().map(|t| t.0.len()).max().unwrap_or(0);
    for size in 2..=max_size.min(largest) {
        for (i, team) in teams.iter().enumerate() {
            if team.0.len() == size && contains_pruned(i, &pruned) {
                kept[i] = false;
            }
        }
        let mut candidates: Vec<usize> = (0..teams.len())
            .filter(|&i| kept[i] && teams[i].0.len() == size)
            .collect();
        candidates.sort_by(|&a, &b| {
            teams[b]
                .1
                .total_cmp(&teams[a].1)
                .then(teams[a].2.total_cmp(&teams[b].2))
        });
        // int(fraction · count) of a non-negative fraction: truncation is the rule.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cut = ((fraction * candidates.len() as f64) as usize).min(candidates.len());
        for &i in &candidates[..cut] {
            kept[i] = false;
            pruned.push(i);
        }
    }
    for (i, team) in teams.iter().enumerate() {
        if team.0.len() > max_size && contains_pruned(i, &pruned) {
            kept[i] = false;
        }
    }
    kept
}

/// `getNTeamStatistics` of the demo: a selection's accuracies against the pool's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TeamStatistics {
    /// Number of teams.
    pub count: usize,
    /// Lowest team accuracy.
    pub min: f64,
    /// Highest team accuracy.
    pub max: f64,
    /// Mean team accuracy.
    pub mean: f64,
    /// Population standard deviation of the team accuracies.
    pub std: f64,
    /// Teams at least as accurate as each of their members.
    pub above_members: usize,
    /// Teams at least as accurate as the best model (rounded to 2 decimals, as the demo).
    pub above_best_model: usize,
    /// Teams at least as accurate as the mean model.
    pub above_mean_model: usize,
    /// Teams at least as accurate as the worst model.
    pub above_worst_model: usize,
}

/// The statistics of selected teams, given (members, accuracy) pairs and the per-model
/// accuracies (same units). `None` for an empty selection.
pub fn team_statistics(
    selected: &[(Vec<usize>, f64)],
    model_accuracy: &[f64],
) -> Option<TeamStatistics> {
    let accuracies: Vec<f64> = selected.iter().map(|t| t.1).collect();
    let min = py_min(&accuracies)?;
    let max = py_max(&accuracies)?;
    let mean = np_mean(&accuracies);
    let deviations: Vec<f64> = accuracies.iter().map(|a| (a - mean) * (a - mean)).collect();
    let best = np_round(py_max(model_accuracy)?, 2);
    let worst = np_round(py_min(model_accuracy)?, 2);
    let average = np_round(np_mean(model_accuracy), 2);
    let count_at_least = |bound: f64| accuracies.iter().filter(|&&a| a >= bound).count();
    Some(TeamStatistics {
        count: selected.len(),
        min,
        max,
        mean,
        std: np_mean(&deviations).sqrt(),
        above_members: selected
            .iter()
            .filter(|(members, acc)| members.iter().all(|&m| *acc >= model_accuracy[m]))
            .count(),
        above_best_model: count_at_least(best),
        above_mean_model: count_at_least(average),
        above_worst_model: count_at_least(worst),
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are the point of these tests
mod tests {
    use super::*;

    #[test]
    fn std_threshold_walks_scores_upwards() {
        let accuracy = [90.0, 50.0, 88.0, 91.0];
        let score = [0.1, 0.2, 0.3, 0.4];
        assert_eq!(std_threshold(&accuracy, &score, 1.0), Some(0.2));
        assert_eq!(std_threshold(&[1.0, 1.0], &[0.5, 0.7], 1.0), Some(0.7));
    }

    #[test]
    fn hq_prunes_the_least_diverse_tenth_and_their_supersets() {
        let mut teams = Vec::new();
        for (i, j) in [
            (0, 1),
            (0, 2),
            (0, 3),
            (1, 2),
            (1, 3),
            (2, 3),
            (0, 4),
            (1, 4),
            (2, 4),
            (3, 4),
        ] {
            let score = if (i, j) == (2, 3) {
                0.9
            } else {
                0.1 * f64::from(i as u8 + j as u8) / 10.0
            };
            teams.push((vec![i, j], score, 80.0));
        }
        teams.push((vec![1, 2, 3], 0.0, 80.0));
        teams.push((vec![0, 1, 4], 0.0, 80.0));
        let kept = hq_prune(&teams, 0.1, 5);
        assert!(!kept[5], "the least diverse pair is pruned");
        assert!(!kept[10], "a superset of a pruned pair is dropped");
        assert!(kept[11]);
        assert_eq!(kept.iter().filter(|&&k| !k).count(), 2);
    }

    #[test]
    fn statistics_count_teams_against_models() {
        let stats = team_statistics(
            &[(vec![0, 1], 85.0), (vec![1, 2], 70.0)],
            &[80.0, 75.0, 60.0],
        )
        .expect("stats");
        assert_eq!(
            (stats.count, stats.above_members, stats.above_best_model),
            (2, 1, 1)
        );
        assert_eq!((stats.above_mean_model, stats.above_worst_model), (1, 2));
        assert_eq!(stats.std, 7.5);
        assert!(team_statistics(&[], &[1.0]).is_none());
    }
}

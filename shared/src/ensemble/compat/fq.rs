//! `EnsembleBench`'s team FQ scores (spec §3.3 steps 3–4): the per-focal scores of every team,
//! min–max scaled per (focal model, team size) with `normalize01`, then averaged over the
//! members with pluggable weights.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counts::FocalRows;
use super::numpy::{argsort, normalize01, np_average, np_mean};
use super::{CompatError, EbMetric, EbScores, Sampling};
use crate::ensemble::{Pool, Teams};

/// How the members' scaled focal scores are weighted into a team score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FocalWeights {
    /// Every member counts the same (the default).
    #[default]
    Uniform,
    /// The reference's `np.argsort(member accuracies)[k]` as member k's weight: indices used
    /// as ranks, so one member always weighs 0 (divergence 6).
    ArgsortCompat,
    /// 1 + the member's accuracy rank within the team (least accurate 1), so every member
    /// counts and better models count more: what the argsort was meant to do.
    AccuracyRank,
}

impl FocalWeights {
    /// The weights of a team's members, given every model's accuracy.
    pub fn of(self, members: &[usize], model_accuracy: &[f64]) -> Vec<f64> {
        let accuracies: Vec<f64> = members.iter().map(|&m| model_accuracy[m]).collect();
        let order = argsort(&accuracies);
        match self {
            Self::Uniform => vec![1.0; members.len()],
            Self::ArgsortCompat => order.iter().map(|&i| i as f64).collect(),
            Self::AccuracyRank => {
                let mut rank = vec![0.0; members.len()];
                for (r, &i) in order.iter().enumerate() {
                    rank[i] = r as f64 + 1.0;
                }
                rank
            }
        }
    }
}

/// A team's FQ scores for one metric (lower = more diverse).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FqScores {
    /// Weighted mean of the scaled per-focal scores.
    pub weighted: f64,
    /// Plain mean of the scaled per-focal scores.
    pub mean_scaled: f64,
    /// Plain mean of the raw per-focal scores.
    pub mean_raw: f64,
}

/// The `EnsembleBench` per-focal scores of every team of a size range, with their scaling.
#[derive(Debug, Clone)]
pub struct FocalScoreTable {
    models: usize,
    teams: Vec<Vec<usize>>,
    index: BTreeMap<Vec<usize>, usize>,
    /// Per team, per member (in member order).
    scores: Vec<Vec<Result<EbScores, CompatError>>>,
    /// Per team, per member: the scores min–max scaled within (focal model, size); NaN where
    /// a score is missing.
    scaled: Vec<Vec<EbScores>>,
    model_accuracy: Vec<f64>,
}

impl FocalScoreTable {
    /// Scores every team of sizes `min_size..=max_size`, reporting (done, total) teams.
    pub fn new(
        pool: &Pool,
        sampling: Sampling,
        min_size: usize,
        max_size: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Self {
        let models = pool.models();
        let total = Teams::total(models, min_size, max_size);
        let teams: Vec<Vec<usize>> = Teams::new(models, min_size, max_size).collect();
        let rows = FocalRows::new(pool, sampling);
        let mut scores = Vec::with_capacity(teams.len());
        for (done, members) in teams.iter().enumerate() {
            scores.push(
                members
                    .iter()
                    .map(|&f| rows.scores(pool, members, f))
                    .collect::<Vec<_>>(),
            );
            if done % 64 == 63 {
                progress(done as u64 + 1, total);
            }
        }
        progress(total, total);

        // Columns per (focal, size), in team order; scaled per metric.
        let mut columns: BTreeMap<(usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
        for (t, members) in teams.iter().enumerate() {
            for (k, &f) in members.iter().enumerate() {
                columns.entry((f, members.len())).or_default().push((t, k));
            }
        }
        let mut scaled: Vec<Vec<EbScores>> =
            teams.iter().map(|m| vec![[f64::NAN; 6]; m.len()]).collect();
        for cells in columns.values() {
            for metric in 0..6 {
                let raw: Vec<f64> = cells
                    .iter()
                    .map(|&(t, k)| {
                        scores[t][k]
                            .as_ref()
                            .map_or(f64::NAN, |s: &EbScores| s[metric])
                    })
                    .collect();
                for (&(t, k), value) in cells.iter().zip(normalize01(&raw)) {
                    scaled[t][k][metric] = value;
                }
            }
        }
        let index = teams
            .iter()
            .enumerate()
            .map(|(t, m)| (m.clone(), t))
            .collect();
        let model_accuracy = (0..models)
            .map(|m| pool.accuracy(m).unwrap_or(f64::NAN))
            .collect();
        Self {
            models,
            teams,
            index,
            scores,
            scaled,
            model_accuracy,
        }
    }

    /// The pool's number of models.
    pub fn models(&self) -> usize {
        self.models
    }

    /// The scored teams, by size then lexicographically.
    pub fn teams(&self) -> &[Vec<usize>] {
        &self.teams
    }

    /// The position of a team in [`Self::teams`].
    pub fn find(&self, members: &[usize]) -> Option<usize> {
        self.index.get(members).copied()
    }

    /// The per-focal scores of team `t`, in member order.
    pub fn scores(&self, t: usize) -> &[Result<EbScores, CompatError>] {
        &self.scores[t]
    }

    /// The scaled per-focal scores of team `t`, in member order.
    pub fn scaled(&self, t: usize) -> &[EbScores] {
        &self.scaled[t]
    }

    /// Each model's accuracy (fraction).
    pub fn model_accuracy(&self) -> &[f64] {
        &self.model_accuracy
    }

    /// Team `t`'s FQ scores for a metric; NaN where a member's score is missing.
    pub fn fq(&self, t: usize, metric: EbMetric, weights: FocalWeights) -> FqScores {
        let m = metric.index();
        let scaled: Vec<f64> = self.scaled[t].iter().map(|s| s[m]).collect();
        let raw: Vec<f64> = self.scores[t]
            .iter()
            .map(|s| s.as_ref().map_or(f64::NAN, |s| s[m]))
            .collect();
        let w = weights.of(&self.teams[t], &self.model_accuracy);
        FqScores {
            weighted: np_average(&scaled, &w),
            mean_scaled: np_mean(&scaled),
            mean_raw: np_mean(&raw),
        }
    }
}

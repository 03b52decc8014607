//! A pool ready for learned combiners: validated once, its samples grouped by split, and per
//! member the scores a combiner learns from (logits when every member has them, as FusionShot
//! feeds its network, else probabilities).

use serde::{Deserialize, Serialize};

use super::CombineError;
use crate::ensemble::limits::Limits;
use crate::ensemble::pool::{Pool, PoolInput};
use crate::ensemble::split::{Split, SplitChoice, split_counts};
use crate::ensemble::{FocalTable, RankedTeam, Teams, top_k_of};

/// What a combiner's network reads per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// The members' logits (every member of the team has them).
    Logits,
    /// The members' class probabilities.
    Probabilities,
}

/// One split's rows of a team: labels, each member's predictions and probabilities, and the
/// network's input (`samples × width`).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitRows {
    /// True class per sample.
    pub labels: Vec<u32>,
    /// Per member, its predicted class per sample.
    pub predictions: Vec<Vec<u32>>,
    /// Per member, `samples × classes` probabilities, row-major.
    pub probabilities: Vec<Vec<f64>>,
    /// The concatenated member scores per sample, `samples × width`, row-major.
    pub features: Vec<f32>,
    /// Features per sample: members × classes.
    pub width: usize,
}

/// A validated pool with splits.
#[derive(Debug, Clone)]
pub struct SplitPool {
    input: PoolInput,
    pool: Pool,
    splits: Vec<Split>,
    counts: [usize; 3],
}

/// Sample counts per split, as reports show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Samples that fit a combiner.
    pub train: usize,
    /// Samples that choose its checkpoint and settings.
    pub val: usize,
    /// Samples it is reported on.
    pub test: usize,
}

impl SplitPool {
    /// Validates `input` within `limits` and checks that it can train a combiner: splits with
    /// samples in train, val and test.
    ///
    /// # Errors
    /// [`CombineError::Pool`] for an invalid pool, [`CombineError::NoSplits`] without splits,
    /// [`CombineError::EmptySplit`] naming a split without samples.
    pub fn new(input: PoolInput, limits: &Limits) -> Result<Self, CombineError> {
        let pool = Pool::with_limits(input.clone(), limits)?;
        let splits = input.splits.clone().ok_or(CombineError::NoSplits)?;
        let counts = split_counts(&splits);
        if let Some(split) = Split::ALL.into_iter().find(|&s| counts[s as usize] == 0) {
            return Err(CombineError::EmptySplit { split });
        }
        Ok(Self {
            input,
            pool,
            splits,
            counts,
        })
    }

    /// The validated pool over all samples.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Samples per split.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            train: self.counts[0],
            val: self.counts[1],
            test: self.counts[2],
        }
    }

    /// The model index of each name in `names`.
    ///
    /// # Errors
    /// [`CombineError::UnknownModel`] naming the first unknown name and the pool's models.
    pub fn team_of_names(&self, names: &[&str]) -> Result<Vec<usize>, CombineError> {
        names
            .iter()
            .map(|name| {
                self.pool
                    .names()
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| CombineError::UnknownModel {
                        name: (*name).to_owned(),
                        models: self.pool.names().join(", "),
                    })
            })
            .collect()
    }

    /// The `k` most focal-diverse teams (sizes 2 to all models), ranked on the **val** split
    /// so that choosing a team does not look at the test samples.
    ///
    /// # Errors
    /// [`CombineError::Limit`] when the pool has more teams than `limits` allow,
    /// [`CombineError::Pool`] if the val split does not form a valid pool.
    pub fn top_teams(&self, k: usize, limits: &Limits) -> Result<Vec<RankedTeam>, CombineError> {
        let models = self.pool.models();
        limits.check_teams(models, 2, models)?;
        let (val, _) = self.input.clone().select(SplitChoice::Val)?;
        let val = Pool::with_limits(val, limits)?;
        let table = FocalTable::new(&val);
        Ok(top_k_of(
            Teams::new(models, 2, models).map(|members| {
                let focal = table.focal_diversity(&members).mean;
                (members, focal)
            }),
            k,
        ))
    }

    /// Checks a team: at least one member, no repeats, every member in the pool and with
    /// scores.
    ///
    /// # Errors
    /// [`CombineError::Team`] or [`CombineError::NoScores`] naming the member.
    pub fn check_team(&self, members: &[usize]) -> Result<(), CombineError> {
        if members.is_empty() {
            return Err(CombineError::Team {
                message: "the team is empty: name at least one member".into(),
            });
        }
        for (i, &m) in members.iter().enumerate() {
            let Some(model) = self.input.models.get(m) else {
                return Err(CombineError::Team {
                    message: format!(
                        "member {m} is not a model of the pool (it has {})",
                        self.pool.models()
                    ),
                });
            };
            if members[..i].contains(&m) {
                return Err(CombineError::Team {
                    message: format!("model `{}` is named twice", model.name),
                });
            }
            if model.probabilities.is_none() && model.logits.is_none() {
                return Err(CombineError::NoScores {
                    model: model.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// What the network of `members` reads: logits when every member has them.
    pub fn features(&self, members: &[usize]) -> Features {
        if members.iter().all(|&m| {
            self.input
                .models
                .get(m)
                .is_some_and(|model| model.logits.is_some())
        }) {
            Features::Logits
        } else {
            Features::Probabilities
        }
    }

    /// The team's rows of `split`, in sample order.
    ///
    /// # Errors
    /// As [`SplitPool::check_team`].
    pub fn rows(&self, members: &[usize], split: Split) -> Result<SplitRows, CombineError> {
        self.check_team(members)?;
        let classes = self.pool.classes();
        let features = self.features(members);
        let samples: Vec<usize> = (0..self.splits.len())
            .filter(|&n| self.splits[n] == split)
            .collect();
        let labels = samples.iter().map(|&n| self.pool.labels()[n]).collect();
        let all_probabilities =
            self.pool
                .probability_rows()
                .ok_or_else(|| CombineError::NoScores {
                    model: self.input.models[members[0]].name.clone(),
                })?;
        let mut predictions = Vec::with_capacity(members.len());
        let mut probabilities = Vec::with_capacity(members.len());
        let width = members.len() * classes;
        let mut flat = vec![0.0_f32; samples.len() * width];
        for (j, &m) in members.iter().enumerate() {
            let model = &self.input.models[m];
            let rows = &all_probabilities[m];
            let predicted = self.pool.predictions(m).unwrap_or_default();
            predictions.push(samples.iter().map(|&n| predicted[n]).collect());
            let mut mine = Vec::with_capacity(samples.len() * classes);
            for (row, &n) in samples.iter().enumerate() {
                let probs = &rows[n * classes..(n + 1) * classes];
                mine.extend_from_slice(probs);
                let into = &mut flat[row * width + j * classes..row * width + (j + 1) * classes];
                match (features, &model.logits) {
                    (Features::Logits, Some(logits)) => {
                        for (out, &value) in into.iter_mut().zip(&logits[n]) {
                            *out = value as f32;
                            if !out.is_finite() {
                                return Err(CombineError::LogitRange {
                                    model: model.name.clone(),
                                    sample: n,
                                    value,
                                });
                            }
                        }
                    }
                    _ => {
                        for (out, &value) in into.iter_mut().zip(probs) {
                            *out = value as f32;
                        }
                    }
                }
            }
            probabilities.push(mine);
        }
        Ok(SplitRows {
            labels,
            predictions,
            probabilities,
            features: flat,
            width,
        })
    }
}

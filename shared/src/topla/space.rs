//! LLM-TOPLA-Weighted's candidate answer space and vote-share features (spec `focal.md` §6.2),
//! and answer sets turned into a pool for the focal analysis.

use serde::{Deserialize, Serialize};

use super::records::{Answers, Gold, Task};
use crate::ensemble::combine::{Features, SplitRows, TeamRows, shuffled};
use crate::ensemble::{ModelInput, PoolInput, Split, vote_over_answers};
use crate::rng::SplitMix64;

/// A member prediction outside the candidate space, or no answer in the reference's layout
/// (which has no slot for it): never equal to a label.
pub const NO_ANSWER: u32 = u32::MAX - 1;

/// The label of a question whose gold answer is not in the candidate space: never correct.
pub const UNREACHABLE: u32 = u32::MAX;

/// How the features are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToplaOptions {
    /// The task.
    pub task: Task,
    /// Candidate slots (`GSM8K`; `MMLU` always has its four letters).
    pub slots: usize,
    /// LLM-TOPLA's layout: no slot for unparsable answers (their share is dropped), an
    /// unparsable answer takes a slot with zero share, the zero padding matches a gold answer of
    /// 0, and `MMLU` shares are counts over 10 whatever the sample count.
    pub reference: bool,
}

/// One team's features for every question: per member, vote shares over the candidate slots
/// (plus, in fuselab's layout, a last slot for "another answer or none").
#[derive(Debug, Clone, PartialEq)]
pub struct ToplaRows {
    /// Slots per member: the network's classes.
    pub classes: usize,
    /// Per question, the gold answer's slot or [`UNREACHABLE`].
    pub labels: Vec<u32>,
    /// Per member, per question, the slot of its majority answer (or [`NO_ANSWER`]).
    pub predictions: Vec<Vec<u32>>,
    /// Per member, `questions × classes` vote shares, row-major.
    pub shares: Vec<Vec<f64>>,
    /// Per question, the candidate answers in slot order (padding excluded).
    pub spaces: Vec<Vec<f64>>,
}

/// Vote shares of `values` (count / `runs`), as (value, share) in ascending value order with
/// every NaN pooled last.
fn shares_of(values: &[f64], runs: f64) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.is_nan().cmp(&b.is_nan()).then(a.total_cmp(b)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for v in sorted {
        match out.last_mut() {
            #[allow(clippy::float_cmp)] // answers are compared exactly, as numpy does
            Some((last, share)) if *last == v || (last.is_nan() && v.is_nan()) => {
                *share += 1.0 / runs;
            }
            _ => out.push((v, 1.0 / runs)),
        }
    }
    out
}

/// The candidate space of one question: the union of the members' answers ordered by summed
/// vote share, descending, ties to the larger value (the reference's reversed stable
/// argsort over `np.unique`), truncated to `slots`. Unparsable answers are left out, except in
/// the reference layout, where NaN joins with a summed share of 0 (its shares are not found).
pub fn candidate_space(members: &[&[f64]], slots: usize, reference: bool) -> Vec<f64> {
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for answers in members {
        for (value, share) in shares_of(answers, answers.len().max(1) as f64) {
            if value.is_nan() && !reference {
                continue;
            }
            let credited = if value.is_nan() { 0.0 } else { share };
            #[allow(clippy::float_cmp)]
            match sums
                .iter_mut()
                .find(|(v, _)| *v == value || (v.is_nan() && value.is_nan()))
            {
                Some((_, sum)) => *sum += credited,
                None => sums.push((value, credited)),
            }
        }
    }
    // Summed in member order, as the reference adds its per-model dictionaries.
    sums.sort_by(|(va, sa), (vb, sb)| {
        sb.total_cmp(sa)
            .then(vb.is_nan().cmp(&va.is_nan()))
            .then(vb.total_cmp(va))
    });
    sums.into_iter().take(slots).map(|(v, _)| v).collect()
}

/// The team's features over all questions. `members` are the team's answers (`questions ×
/// samples` each), `gold` the questions' answers.
pub fn topla_rows(members: &[&Answers], gold: &[Gold], options: ToplaOptions) -> ToplaRows {
    let (slots, fixed) = match options.task {
        Task::Mmlu => (4, Some(vec![0.0, 1.0, 2.0, 3.0])),
        Task::Gsm8k => (options.slots.max(1), None),
    };
    let classes = if options.reference { slots } else { slots + 1 };
    let questions = gold.len();
    let mut labels = Vec::with_capacity(questions);
    let mut predictions = vec![Vec::with_capacity(questions); members.len()];
    let mut shares = vec![Vec::with_capacity(questions * classes); members.len()];
    let mut spaces = Vec::with_capacity(questions);
    for (q, gold) in gold.iter().enumerate() {
        let answers: Vec<&[f64]> = members.iter().map(|m| m.values[q].as_slice()).collect();
        let space = fixed
            .clone()
            .unwrap_or_else(|| candidate_space(&answers, slots, options.reference));
        #[allow(clippy::float_cmp)]
        let slot_of = |value: f64| space.iter().position(|&s| s == value);
        let gold_value = gold.value();
        // The reference pads with 0.0, so an absent gold 0 matches the first padding slot.
        let padded_zero = options.reference && space.len() < slots && gold_value == 0.0;
        let label = slot_of(gold_value)
            .or_else(|| padded_zero.then_some(space.len()))
            .map_or(UNREACHABLE, |i| i as u32);
        labels.push(label);
        for (j, values) in answers.iter().enumerate() {
            let runs = if options.reference && options.task == Task::Mmlu {
                10.0
            } else {
                values.len().max(1) as f64
            };
            let mut row = vec![0.0; classes];
            for (value, share) in shares_of(values, runs) {
                match (slot_of(value), options.reference) {
                    (Some(i), _) if !value.is_nan() => row[i] += share,
                    (_, false) => row[slots] += share,
                    _ => {}
                }
            }
            shares[j].extend(row);
            let majority = vote_over_answers(values).filter(|v| !v.is_nan());
            let predicted = majority.and_then(slot_of).map(|i| i as u32);
            predictions[j].push(match (predicted, options.reference) {
                (Some(i), _) => i,
                (None, false) => slots as u32,
                (None, true) => NO_ANSWER,
            });
        }
        spaces.push(space.into_iter().filter(|v| !v.is_nan()).collect());
    }
    ToplaRows {
        classes,
        labels,
        predictions,
        shares,
        spaces,
    }
}

/// A deterministic train / val / test assignment of `n` questions: a seeded shuffle, then the
/// first `train_percent` %, the next `val_percent` % and the rest.
pub fn canonical_splits(
    n: usize,
    seed: u64,
    train_percent: usize,
    val_percent: usize,
) -> Vec<Split> {
    let order = shuffled(n, &mut SplitMix64(seed));
    let train_end = n * train_percent / 100;
    let val_end = (n * (train_percent + val_percent) / 100).max(train_end);
    let mut splits = vec![Split::Test; n];
    for (rank, &q) in order.iter().enumerate() {
        splits[q] = if rank < train_end {
            Split::Train
        } else if rank < val_end {
            Split::Val
        } else {
            Split::Test
        };
    }
    splits
}

/// The number of classes [`answer_pool`] gives: the most distinct answers to one question
/// (`MMLU`: 4), then "no answer" and "the gold answer is not among the answers".
pub fn answer_pool_classes(models: &[Answers], gold: &[Gold], task: Task) -> usize {
    let slots = match task {
        Task::Mmlu => 4,
        Task::Gsm8k => (0..gold.len())
            .map(|q| {
                let answers: Vec<&[f64]> = models.iter().map(|m| m.values[q].as_slice()).collect();
                candidate_space(&answers, usize::MAX, false).len()
            })
            .max()
            .unwrap_or(0)
            .max(1),
    };
    slots + 2
}

/// The models' answers as a pool: each model's majority answer is its prediction and its vote
/// shares its probabilities, over every answer any model gave to the question (in
/// [`candidate_space`] order, nothing truncated), then a class for "no answer" and a last
/// class for "the gold answer is not among the answers", which no model predicts.
pub fn answer_pool(models: &[Answers], gold: &[Gold], task: Task, splits: Vec<Split>) -> PoolInput {
    let slots = answer_pool_classes(models, gold, task) - 2;
    let members: Vec<&Answers> = models.iter().collect();
    let rows = topla_rows(
        &members,
        gold,
        ToplaOptions {
            task,
            slots,
            reference: false,
        },
    );
    let classes = rows.classes + 1;
    let labels = rows
        .labels
        .iter()
        .map(|&l| {
            if l == UNREACHABLE {
                rows.classes as u32
            } else {
                l
            }
        })
        .collect();
    let models = models
        .iter()
        .zip(rows.shares)
        .zip(rows.predictions)
        .map(|((model, shares), predictions)| ModelInput {
            name: model.name.clone(),
            predictions: Some(predictions),
            probabilities: Some(
                shares
                    .chunks_exact(rows.classes)
                    .map(|row| {
                        let mut row = row.to_vec();
                        row.push(0.0);
                        row
                    })
                    .collect(),
            ),
            logits: None,
        })
        .collect();
    PoolInput {
        labels,
        splits: Some(splits),
        models,
        classes: Some(classes),
    }
}

impl ToplaRows {
    /// The rows of `samples` as a combiner reads them: the members' vote shares side by side.
    fn split_rows(&self, samples: &[usize]) -> SplitRows {
        let classes = self.classes;
        let width = self.shares.len() * classes;
        let mut features = Vec::with_capacity(samples.len() * width);
        for &n in samples {
            for member in &self.shares {
                features.extend(
                    member[n * classes..(n + 1) * classes]
                        .iter()
                        .map(|&v| v as f32),
                );
            }
        }
        SplitRows {
            labels: samples.iter().map(|&n| self.labels[n]).collect(),
            predictions: self
                .predictions
                .iter()
                .map(|p| samples.iter().map(|&n| p[n]).collect())
                .collect(),
            probabilities: self
                .shares
                .iter()
                .map(|s| {
                    samples
                        .iter()
                        .flat_map(|&n| s[n * classes..(n + 1) * classes].iter().copied())
                        .collect()
                })
                .collect(),
            features,
            width,
        }
    }

    /// The team's train, val and test rows by `splits`. Train and val leave out the questions
    /// whose gold answer is not in the space (nothing can learn or choose from them, and the
    /// reference drops them too); test keeps them, never counted correct.
    pub fn team_rows(&self, splits: &[Split], names: Vec<String>) -> TeamRows {
        let of = |split: Split, keep_unreachable: bool| -> Vec<usize> {
            (0..self.labels.len())
                .filter(|&n| {
                    splits[n] == split && (keep_unreachable || self.labels[n] != UNREACHABLE)
                })
                .collect()
        };
        TeamRows {
            train: self.split_rows(&of(Split::Train, false)),
            val: self.split_rows(&of(Split::Val, false)),
            test: self.split_rows(&of(Split::Test, true)),
            classes: self.classes,
            names,
            features: Features::Probabilities,
        }
    }
}

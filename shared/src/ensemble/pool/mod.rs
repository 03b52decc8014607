//! A validated pool of models: labels, predicted classes, optional class probabilities and
//! the correctness bitsets every metric is computed from.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::bitset::Bitset;
use super::limits::{LimitError, Limits};
use super::split::Split;
use super::vote_table::VoteTable;
use crate::predictions::PredictionTable;

mod check;

pub use check::softmax_in_place;
use check::{check_names, checked_model, infer_classes};

/// How far a probability row's sum may be from 1: rounded softmax outputs (4 decimals over
/// 10 classes) are off by a few 1e-4.
pub const PROBABILITY_SUM_TOLERANCE: f64 = 1e-3;

/// One model of a [`PoolInput`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInput {
    /// The model's name, unique within the pool.
    pub name: String,
    /// Predicted class per sample; when absent, the argmax of `probabilities` (first maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<Vec<u32>>,
    /// Class-probability vector per sample (`samples × classes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<Vec<f64>>>,
    /// Raw scores per sample (`samples × classes`); their softmax stands in for absent
    /// `probabilities`, and a learned combiner can train on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<Vec<f64>>>,
}

impl ModelInput {
    /// A model with a name and nothing else yet.
    pub fn named(name: String) -> Self {
        Self {
            name,
            predictions: None,
            probabilities: None,
            logits: None,
        }
    }
}

/// Unvalidated pool data. The JSON form extends [`PredictionTable`]'s:
/// `{"labels":[...], "models":[{"name":"..", "predictions":[...], "probabilities":[[...]]}]}`,
/// with an optional `"classes"` count and an optional `"splits"` (`"train"`, `"val"` or `"test"`
/// per sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolInput {
    /// True class per sample.
    pub labels: Vec<u32>,
    /// The split of each sample; see [`PoolInput::select`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<Vec<Split>>,
    /// The models, in pool order.
    pub models: Vec<ModelInput>,
    /// Number of classes; when absent, the probability row width, else the largest class seen + 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

impl From<&PredictionTable> for PoolInput {
    fn from(table: &PredictionTable) -> Self {
        Self {
            labels: table.labels.clone(),
            models: table
                .models
                .iter()
                .map(|m| ModelInput {
                    name: m.name.clone(),
                    predictions: Some(m.predictions.clone()),
                    probabilities: None,
                    logits: None,
                })
                .collect(),
            classes: None,
            splits: None,
        }
    }
}

/// Why pool data was rejected. Sample and class indices are 0-based.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PoolError {
    /// Fewer than two models.
    #[error("found {found} model(s); at least 2 models are needed to form a team")]
    TooFewModels {
        /// How many models there are.
        found: usize,
    },
    /// No samples.
    #[error("there are no labels: expected at least one sample")]
    NoSamples,
    /// A model's name is empty.
    #[error("model #{index}: the name is empty")]
    EmptyName {
        /// 0-based position of the model.
        index: usize,
    },
    /// Two models share a name.
    #[error("model name `{name}` appears twice; model names must be unique")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// The class count is zero.
    #[error("the number of classes is 0: expected at least 1")]
    NoClasses,
    /// A model has neither predictions, probabilities nor logits.
    #[error(
        "model `{model}`: expected `predictions`, `probabilities` or `logits`, found none of them"
    )]
    MissingPredictions {
        /// The model's name.
        model: String,
    },
    /// Some models have probabilities (or logits) and this one has neither.
    #[error(
        "model `{model}`: expected `probabilities` or `logits` like the other models, found neither"
    )]
    MissingProbabilities {
        /// The model's name.
        model: String,
    },
    /// A model has a different number of predictions than there are labels.
    #[error("model `{model}`: expected {expected} predictions (one per label), found {found}")]
    PredictionLength {
        /// The model's name.
        model: String,
        /// The number of labels.
        expected: usize,
        /// The number of predictions.
        found: usize,
    },
    /// A model has a different number of probability (or logit) rows than there are labels.
    #[error("model `{model}`: expected {expected} {field} rows (one per label), found {found}")]
    ProbabilityRows {
        /// The model's name.
        model: String,
        /// `probabilities` or `logits`.
        field: &'static str,
        /// The number of labels.
        expected: usize,
        /// The number of rows.
        found: usize,
    },
    /// A probability (or logit) row has the wrong number of classes.
    #[error("model `{model}`, sample {sample}: expected {expected} {field}, found {found}")]
    ProbabilityWidth {
        /// The model's name.
        model: String,
        /// `probabilities` or `logits`.
        field: &'static str,
        /// The sample.
        sample: usize,
        /// The number of classes.
        expected: usize,
        /// The row's length.
        found: usize,
    },
    /// A probability is negative, NaN or infinite.
    #[error(
        "model `{model}`, sample {sample}, class {class}: expected a finite probability >= 0, found {value}"
    )]
    BadProbability {
        /// The model's name.
        model: String,
        /// The sample.
        sample: usize,
        /// The class.
        class: usize,
        /// The offending value.
        value: f64,
    },
    /// A logit is NaN or infinite.
    #[error(
        "model `{model}`, sample {sample}, class {class}: expected a finite logit, found {value}"
    )]
    BadLogit {
        /// The model's name.
        model: String,
        /// The sample.
        sample: usize,
        /// The class.
        class: usize,
        /// The offending value.
        value: f64,
    },
    /// `splits` does not have one entry per label.
    #[error("`splits`: expected {expected} entries (one per label), found {found}")]
    SplitLength {
        /// The number of labels.
        expected: usize,
        /// The number of splits.
        found: usize,
    },
    /// A split was chosen of a pool without splits.
    #[error(
        "the pool has no `splits`: the {split} split cannot be chosen (give one split per sample: train, val or test)"
    )]
    NoSplits {
        /// The split asked for.
        split: Split,
    },
    /// The chosen split has no sample.
    #[error("no sample is in the {split} split (choose another with --split, or `all`)")]
    EmptySplit {
        /// The split asked for.
        split: Split,
    },
    /// A probability row does not sum to about 1.
    #[error(
        "model `{model}`, sample {sample}: probabilities sum to {sum}, expected 1 (within {PROBABILITY_SUM_TOLERANCE})"
    )]
    ProbabilitySum {
        /// The model's name.
        model: String,
        /// The sample.
        sample: usize,
        /// The row's sum.
        sum: f64,
    },
    /// A label is not a class id.
    #[error("sample {sample}: label {label} is outside the classes 0..{classes}")]
    LabelOutOfRange {
        /// The sample.
        sample: usize,
        /// The label.
        label: u32,
        /// The number of classes.
        classes: usize,
    },
    /// The pool is larger than the limits allow.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A prediction is not a class id.
    #[error(
        "model `{model}`, sample {sample}: prediction {class} is outside the classes 0..{classes}"
    )]
    PredictionOutOfRange {
        /// The model's name.
        model: String,
        /// The sample.
        sample: usize,
        /// The predicted class.
        class: u32,
        /// The number of classes.
        classes: usize,
    },
}

/// A validated model pool. Models are indexed `0..models()` in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    names: Vec<String>,
    labels: Vec<u32>,
    predictions: Vec<Vec<u32>>,
    /// Per model, `samples × classes` row-major.
    probabilities: Option<Vec<Vec<f64>>>,
    classes: usize,
    correct: Vec<Bitset>,
    wrong: Vec<Bitset>,
    all: Bitset,
    /// `agreement[i * M + j]`: samples on which models i and j predict the same class.
    agreement: Vec<u64>,
    /// `class_counts[m * C + c]`: samples on which model m predicts class c.
    class_counts: Vec<u64>,
    /// Vote patterns for plurality and majority accuracy on all samples (at most 64 models).
    votes: Option<VoteTable>,
}

/// Index of the first maximum of a row (0 for an empty row).
pub(crate) fn first_argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (c, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = c;
        }
    }
    best
}

/// Label statistics on all samples: pairwise agreement counts (`M × M`) and per-model class
/// counts (`M × C`). With them, Cohen's and Fleiss' κ of any team on all samples cost
/// O(|T|²·C) instead of a pass over the samples.
fn label_statistics(predictions: &[Vec<u32>], classes: usize) -> (Vec<u64>, Vec<u64>) {
    let models = predictions.len();
    let mut agreement = vec![0_u64; models * models];
    for i in 0..models {
        for j in i..models {
            let same = predictions[i]
                .iter()
                .zip(&predictions[j])
                .filter(|(a, b)| a == b)
                .count() as u64;
            agreement[i * models + j] = same;
            agreement[j * models + i] = same;
        }
    }
    let mut class_counts = vec![0_u64; models * classes];
    for (m, row) in predictions.iter().enumerate() {
        for &class in row {
            class_counts[m * classes + class as usize] += 1;
        }
    }
    (agreement, class_counts)
}

impl Pool {
    /// Validates `input` and builds the pool within [`Limits::default`].
    ///
    /// # Errors
    /// As [`Pool::with_limits`].
    pub fn new(input: PoolInput) -> Result<Self, PoolError> {
        Self::with_limits(input, &Limits::default())
    }

    /// Validates `input` and builds the pool. The models, samples and classes are checked
    /// against `limits` before any table sized by them is allocated.
    ///
    /// # Errors
    /// The first problem found, naming the model, sample and class and what was expected, or
    /// [`PoolError::Limit`] naming the limit.
    pub fn with_limits(input: PoolInput, limits: &Limits) -> Result<Self, PoolError> {
        input.check_splits()?;
        let PoolInput {
            labels,
            models,
            classes,
            splits: _,
        } = input;
        limits.check_models(models.len())?;
        if models.len() < 2 {
            return Err(PoolError::TooFewModels {
                found: models.len(),
            });
        }
        if labels.is_empty() {
            return Err(PoolError::NoSamples);
        }
        check_names(&models)?;
        let samples = labels.len();
        let with_probabilities = models
            .iter()
            .any(|m| m.probabilities.is_some() || m.logits.is_some());
        let classes =
            classes.unwrap_or_else(|| infer_classes(&labels, &models, with_probabilities));
        limits.check_pool(models.len(), samples, classes, with_probabilities)?;
        if classes == 0 {
            return Err(PoolError::NoClasses);
        }
        if let Some((sample, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= classes)
        {
            return Err(PoolError::LabelOutOfRange {
                sample,
                label,
                classes,
            });
        }
        let mut names = Vec::with_capacity(models.len());
        let mut predictions = Vec::with_capacity(models.len());
        let mut probabilities = Vec::with_capacity(models.len());
        for model in models {
            let (name, preds, flat) = checked_model(model, samples, classes, with_probabilities)?;
            names.push(name);
            predictions.push(preds);
            probabilities.extend(flat);
        }
        let correct: Vec<Bitset> = predictions
            .iter()
            .map(|p| Bitset::from_fn(samples, |n| p[n] == labels[n]))
            .collect();
        let wrong = predictions
            .iter()
            .map(|p| Bitset::from_fn(samples, |n| p[n] != labels[n]))
            .collect();
        let (agreement, class_counts) = label_statistics(&predictions, classes);
        let mut pool = Self {
            votes: None,
            agreement,
            class_counts,
            names,
            labels,
            predictions,
            probabilities: with_probabilities.then_some(probabilities),
            classes,
            correct,
            wrong,
            all: Bitset::full(samples),
        };
        pool.votes = VoteTable::new(&pool);
        Ok(pool)
    }

    /// Builds a pool from a prediction table (no probabilities; classes = largest class + 1).
    ///
    /// # Errors
    /// As [`Pool::new`].
    pub fn from_table(table: &PredictionTable) -> Result<Self, PoolError> {
        Self::new(table.into())
    }

    /// Number of models.
    pub fn models(&self) -> usize {
        self.names.len()
    }

    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.labels.len()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Model names, in pool order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True class per sample.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Predicted classes of model `m`, or `None` past the last model.
    pub fn predictions(&self, m: usize) -> Option<&[u32]> {
        self.predictions.get(m).map(Vec::as_slice)
    }

    /// Whether the pool carries class probabilities (needed for soft voting).
    pub fn has_probabilities(&self) -> bool {
        self.probabilities.is_some()
    }

    /// Samples model `m` gets right, or `None` past the last model.
    pub fn correct(&self, m: usize) -> Option<&Bitset> {
        self.correct.get(m)
    }

    /// Samples model `m` gets wrong: its negative samples neg(m). `None` past the last model.
    pub fn negatives(&self, m: usize) -> Option<&Bitset> {
        self.wrong.get(m)
    }

    /// The indices of model `m`'s negative samples, ascending; empty past the last model.
    pub fn negative_rows(&self, m: usize) -> Vec<usize> {
        self.wrong
            .get(m)
            .map(|n| n.iter().collect())
            .unwrap_or_default()
    }

    /// Share of samples model `m` gets right, in `[0, 1]`; `None` past the last model.
    pub fn accuracy(&self, m: usize) -> Option<f64> {
        let right = self.correct.get(m)?.count();
        Some(right as f64 / self.samples() as f64)
    }

    /// The set of all samples.
    pub fn all_samples(&self) -> &Bitset {
        &self.all
    }

    pub(crate) fn prediction_rows(&self) -> &[Vec<u32>] {
        &self.predictions
    }

    pub(crate) fn probability_rows(&self) -> Option<&[Vec<f64>]> {
        self.probabilities.as_deref()
    }

    /// The vote-pattern table, when the pool has at most 64 models.
    pub(crate) fn vote_table(&self) -> Option<&VoteTable> {
        self.votes.as_ref()
    }

    /// Samples on which models `i` and `j` predict the same class.
    pub(crate) fn agreement(&self, i: usize, j: usize) -> u64 {
        self.agreement[i * self.models() + j]
    }

    /// How often model `m` predicts each class, on all samples.
    pub(crate) fn class_counts(&self, m: usize) -> &[u64] {
        &self.class_counts[m * self.classes..(m + 1) * self.classes]
    }

    pub(crate) fn wrong_rows(&self) -> &[Bitset] {
        &self.wrong
    }

    pub(crate) fn correct_rows(&self) -> &[Bitset] {
        &self.correct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(
        name: &str,
        predictions: Option<Vec<u32>>,
        probs: Option<Vec<Vec<f64>>>,
    ) -> ModelInput {
        ModelInput {
            name: name.into(),
            predictions,
            probabilities: probs,
            logits: None,
        }
    }

    fn input(models: Vec<ModelInput>) -> PoolInput {
        PoolInput {
            labels: vec![0, 1],
            models,
            classes: None,
            splits: None,
        }
    }

    #[test]
    fn predictions_from_probabilities_first_maximum() {
        let json = r#"{"labels":[0,1],"models":[
            {"name":"a","probabilities":[[0.5,0.5],[0.2,0.8]]},
            {"name":"b","predictions":[1,1],"probabilities":[[0.6,0.4],[0.1,0.9]]}]}"#;
        let pool = Pool::new(serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(pool.predictions(0), Some(&[0, 1][..]));
        assert_eq!(pool.predictions(1), Some(&[1, 1][..]));
        assert_eq!(pool.classes(), 2);
        assert!(pool.has_probabilities());
        assert_eq!(pool.accuracy(1), Some(0.5));
        assert_eq!(pool.negatives(1).unwrap().iter().collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn logits_stand_in_for_probabilities() {
        let json = r#"{"labels":[0,1],"models":[
            {"name":"a","logits":[[1000,0],[0,3]]},
            {"name":"b","probabilities":[[0.6,0.4],[0.1,0.9]]}]}"#;
        let pool = Pool::new(serde_json::from_str(json).unwrap()).unwrap();
        assert!(pool.has_probabilities());
        assert_eq!(pool.predictions(0), Some(&[0, 1][..]));
        let rows = pool.probability_rows().unwrap();
        assert_eq!(&rows[0][..2], [1.0, 0.0]);
        let e3 = 3.0_f64.exp();
        assert!((rows[0][3] - e3 / (1.0 + e3)).abs() < 1e-15);
        let bad = r#"{"labels":[0,1],"models":[
            {"name":"a","logits":[[1,0],[0,"-inf"]]},{"name":"b","predictions":[0,1]}]}"#;
        assert!(serde_json::from_str::<PoolInput>(bad).is_err());
        let mut nan: PoolInput = serde_json::from_str(json).unwrap();
        nan.models[0].logits = Some(vec![vec![1.0, 0.0], vec![0.0, f64::INFINITY]]);
        assert_eq!(
            Pool::new(nan).unwrap_err().to_string(),
            "model `a`, sample 1, class 1: expected a finite logit, found inf"
        );
        let mut wide: PoolInput = serde_json::from_str(json).unwrap();
        wide.models[0].logits = Some(vec![vec![1.0, 0.0], vec![0.0, 1.0, 2.0]]);
        assert_eq!(
            Pool::new(wide).unwrap_err().to_string(),
            "model `a`, sample 1: expected 2 logits, found 3"
        );
    }

    #[test]
    fn prediction_table_json_still_reads() {
        let json = r#"{"labels":[0,2],"models":[{"name":"a","predictions":[0,1]},{"name":"b","predictions":[2,2]}]}"#;
        let table: PredictionTable = serde_json::from_str(json).unwrap();
        let via_table = Pool::from_table(&table).unwrap();
        let direct = Pool::new(serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(via_table, direct);
        assert_eq!(direct.classes(), 3);
    }

    #[test]
    fn errors_name_model_sample_and_class() {
        let ok = || model("b", Some(vec![0, 1]), None);
        assert_eq!(
            Pool::new(input(vec![ok()])).unwrap_err(),
            PoolError::TooFewModels { found: 1 }
        );
        assert_eq!(
            Pool::new(input(vec![model("a", Some(vec![0]), None), ok()])).unwrap_err(),
            PoolError::PredictionLength {
                model: "a".into(),
                expected: 2,
                found: 1
            }
        );
        let mut classes = input(vec![model("a", Some(vec![0, 3]), None), ok()]);
        classes.classes = Some(2);
        assert_eq!(
            Pool::new(classes).unwrap_err().to_string(),
            "model `a`, sample 1: prediction 3 is outside the classes 0..2"
        );
        let mut labels = input(vec![ok(), model("a", Some(vec![0, 0]), None)]);
        labels.labels = vec![0, 5];
        labels.classes = Some(3);
        assert_eq!(
            Pool::new(labels).unwrap_err(),
            PoolError::LabelOutOfRange {
                sample: 1,
                label: 5,
                classes: 3
            }
        );
        let probs = |rows: Vec<Vec<f64>>| {
            input(vec![
                model("p", None, Some(rows)),
                model("q", None, Some(vec![vec![1.0, 0.0]; 2])),
            ])
        };
        assert!(matches!(
            Pool::new(probs(vec![vec![1.0, 0.0], vec![f64::NAN, 1.0]])).unwrap_err(),
            PoolError::BadProbability {
                sample: 1,
                class: 0,
                ..
            }
        ));
        assert!(matches!(
            Pool::new(probs(vec![vec![1.2, -0.2], vec![0.0, 1.0]])).unwrap_err(),
            PoolError::BadProbability {
                sample: 0,
                class: 1,
                ..
            }
        ));
        assert!(matches!(
            Pool::new(probs(vec![vec![0.5, 0.4], vec![0.0, 1.0]])).unwrap_err(),
            PoolError::ProbabilitySum { sample: 0, .. }
        ));
        assert_eq!(
            Pool::new(probs(vec![vec![1.0, 0.0], vec![1.0]])).unwrap_err(),
            PoolError::ProbabilityWidth {
                model: "p".into(),
                field: "probabilities",
                sample: 1,
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            Pool::new(probs(vec![vec![1.0, 0.0]])).unwrap_err(),
            PoolError::ProbabilityRows {
                model: "p".into(),
                field: "probabilities",
                expected: 2,
                found: 1
            }
        );
        assert_eq!(
            Pool::new(input(vec![
                model("p", None, Some(vec![vec![1.0, 0.0]; 2])),
                ok()
            ]))
            .unwrap_err(),
            PoolError::MissingProbabilities { model: "b".into() }
        );
        assert_eq!(
            Pool::new(input(vec![model("a", None, None), ok()])).unwrap_err(),
            PoolError::MissingPredictions { model: "a".into() }
        );
        assert_eq!(
            Pool::new(input(vec![ok(), ok()])).unwrap_err(),
            PoolError::DuplicateName { name: "b".into() }
        );
        assert_eq!(
            Pool::new(input(vec![model(" ", Some(vec![0, 0]), None), ok()])).unwrap_err(),
            PoolError::EmptyName { index: 0 }
        );
    }

    #[test]
    fn hostile_sizes_are_refused_before_allocating() {
        use crate::ensemble::Limit;
        let limit = |input: PoolInput| match Pool::new(input) {
            Err(PoolError::Limit(error)) => error.limit,
            other => panic!("{other:?}"),
        };
        // A label of 2^32 - 1 would infer 2^32 classes (a 32 GiB count table per model).
        let mut huge_label = input(vec![
            model("a", Some(vec![0, 0]), None),
            model("b", Some(vec![0, 0]), None),
        ]);
        huge_label.labels = vec![0, u32::MAX];
        assert_eq!(limit(huge_label), Limit::Classes);
        let mut declared = input(vec![
            model("a", Some(vec![0, 1]), None),
            model("b", Some(vec![0, 1]), None),
        ]);
        declared.classes = Some(1_000_000_000_000_000);
        assert_eq!(limit(declared), Limit::Classes);
        // 6,000 models would need a 6,000³ focal table: refused before the pool is built.
        let many = input(
            (0..6000)
                .map(|m| model(&format!("m{m}"), Some(vec![0, 1]), None))
                .collect(),
        );
        let started = std::time::Instant::now();
        assert_eq!(limit(many), Limit::Models);
        assert!(started.elapsed().as_millis() < 500);
        let small = Limits {
            max_models: 2,
            ..Limits::default()
        };
        let three = input(vec![
            model("a", Some(vec![0, 1]), None),
            model("b", Some(vec![0, 1]), None),
            model("c", Some(vec![0, 1]), None),
        ]);
        assert!(Pool::with_limits(three.clone(), &Limits::default()).is_ok());
        assert_eq!(
            Pool::with_limits(three, &small).unwrap_err().to_string(),
            "3 models is above the limit of 2 (raise it with --max-models)"
        );
    }
}

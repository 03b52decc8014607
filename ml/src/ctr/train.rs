//! Training: Adam over the named parameters, epochs of whole pages (so every batch holds the
//! same-page pairs CCN learns from), validation after each epoch, early stopping on validation
//! AUC with the best epoch's parameters kept and restored, and a state that round-trips through
//! named tensors and JSON for checkpoints. No I/O: the caller saves what [`Hooks`] hands it.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use fuselab_shared::ctr::encode::Encoded;
use fuselab_shared::ctr::metrics::{self, MetricError, Metrics};
use fuselab_shared::ctr::pairs::{PairOptions, page_pairs};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::batch::Batch;
use super::config::ModelKind;
use super::loss::{attraction, bce_with_logits, repulsion};
use super::model::CtrModel;
use crate::optim::{Adam, Best, load_state, save_state};
use crate::tensors::NamedTensors;

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainOptions {
    /// Most epochs.
    pub epochs: usize,
    /// Rows per batch (whole pages are added until a batch reaches it).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Epochs without a better validation AUC before stopping (0: never stop early).
    pub patience: usize,
    /// Largest page (bounds the pairs of one page).
    pub max_page: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 256,
            learning_rate: 1e-3,
            patience: 2,
            max_page: 64,
        }
    }
}

/// Why training stopped with an error.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrainError {
    /// A value is out of range.
    #[error("`{key}`: {message}")]
    Value {
        /// The key under `[train]`.
        key: &'static str,
        /// What was expected.
        message: String,
    },
    /// The validation split cannot be scored (one class only, …).
    #[error("validation split: {0}")]
    Validation(MetricError),
    /// Same-page pairs could not be built.
    #[error("{0}")]
    Pairs(String),
    /// A checkpoint does not fit this model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

impl TrainOptions {
    /// Checks every value.
    ///
    /// # Errors
    /// [`TrainError::Value`] naming the key.
    pub fn check(&self) -> Result<(), TrainError> {
        let value = |key, message: &str| {
            Err(TrainError::Value {
                key,
                message: message.to_owned(),
            })
        };
        if !(1..=1000).contains(&self.epochs) {
            return value("epochs", "expected 1..=1000");
        }
        if !(1..=65_536).contains(&self.batch_size) {
            return value("batch_size", "expected 1..=65536");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return value("learning_rate", "expected (0, 1]");
        }
        if self.patience > 1000 {
            return value("patience", "expected 0..=1000");
        }
        if !(2..=4096).contains(&self.max_page) {
            return value("max_page", "expected 2..=4096");
        }
        Ok(())
    }
}

/// The loss terms of one step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StepLoss {
    /// Binary cross-entropy.
    pub bce: f64,
    /// Attraction (before `λ_a`; 0 without attractive pairs or outside CCN).
    pub attract: f64,
    /// Repulsion (before `λ_r`).
    pub repel: f64,
}

fn scalar(t: &Tensor<1>) -> f64 {
    f64::from(
        crate::llm::values(t.clone())
            .first()
            .copied()
            .unwrap_or(f32::NAN),
    )
}

/// Gradients of the objective on the rows of `part` (a batch), and its terms.
#[must_use]
pub fn gradients(
    model: &CtrModel,
    part: &Encoded,
    pairs: &[fuselab_shared::ctr::pairs::Pair],
) -> (BTreeMap<String, Tensor<2>>, StepLoss) {
    let mut tracked = model.clone();
    for param in tracked.params.values_mut() {
        *param = param.clone().inner().autodiff().require_grad();
    }
    // The batch lives on the tracked parameters' (autodiff) device.
    let batch = Batch::new(part, &tracked.layout, &tracked.device());
    let forward = tracked.forward(&batch);
    let bce = bce_with_logits(forward.logits, batch.labels.clone());
    let mut loss = StepLoss {
        bce: scalar(&bce),
        ..StepLoss::default()
    };
    let mut total = bce;
    if let Some(z) = &forward.z {
        let c = &model.config.collaborative;
        if let Some(term) = attraction(z, pairs) {
            loss.attract = scalar(&term);
            total = total + term.mul_scalar(c.lambda_attract);
        }
        if let Some(term) = repulsion(z, pairs, c.margin) {
            loss.repel = scalar(&term);
            total = total + term.mul_scalar(c.lambda_repel);
        }
    }
    let grads = total.backward();
    let out = tracked
        .params
        .iter()
        .filter_map(|(name, leaf)| Some((name.clone(), leaf.grad(&grads)?)))
        .collect();
    (out, loss)
}

/// Click probabilities of every row of `data`, in batches of `batch_size`.
#[must_use]
pub fn predict(model: &CtrModel, data: &Encoded, batch_size: usize) -> Vec<f64> {
    let device = model.device();
    let mut out = Vec::with_capacity(data.rows);
    let indices: Vec<usize> = (0..data.rows).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = Batch::new(&data.select(chunk), &model.layout, &device);
        let p = sigmoid(model.forward(&batch).logits);
        out.extend(crate::llm::values(p).into_iter().map(f64::from));
    }
    out
}

/// Metrics of `model` on a split.
///
/// # Errors
/// [`MetricError`] when the split has one class only.
pub fn evaluate(
    model: &CtrModel,
    data: &Encoded,
    batch_size: usize,
) -> Result<Metrics, MetricError> {
    let probabilities = predict(model, data, batch_size);
    metrics::evaluate(&data.users, &data.labels, &probabilities)
}

/// One epoch's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean loss terms over the epoch's steps.
    pub loss: StepLoss,
    /// Steps taken.
    pub steps: usize,
    /// Validation metrics after the epoch.
    pub valid: Metrics,
}

/// Everything a checkpoint holds.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// The model being trained.
    pub model: CtrModel,
    /// Its optimiser.
    pub adam: Adam,
    /// The shuffling and pair-sampling generator.
    pub rng: SplitMix64,
    /// Epochs done, with their records.
    pub history: Vec<EpochRecord>,
    /// The best epoch's parameters (by validation AUC) and its number.
    pub best: Best,
    /// True once early stopping fired.
    pub stopped: bool,
}

/// The JSON half of a checkpoint (the tensors are the other).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMeta {
    /// Adam's updates.
    pub updates: usize,
    /// The generator's state.
    pub rng: u64,
    /// Epoch records.
    pub history: Vec<EpochRecord>,
    /// The best epoch.
    pub best_epoch: Option<usize>,
    /// Early stopping fired.
    pub stopped: bool,
}

/// What the caller decides after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now (cancelled); the state stays resumable.
    Stop,
}

/// Called after every epoch with its record and the state to checkpoint.
pub trait Hooks {
    /// The epoch is done; save `state` if wanted.
    fn epoch(&mut self, record: &EpochRecord, state: &TrainState) -> Control;
}

impl TrainState {
    /// A fresh state for `model`, shuffling from `seed`.
    #[must_use]
    pub fn new(model: CtrModel, seed: u64) -> Self {
        Self {
            model,
            adam: Adam::default(),
            rng: SplitMix64(seed ^ 0xC7A_5EED),
            history: Vec::new(),
            best: None,
            stopped: false,
        }
    }

    /// Epochs done.
    #[must_use]
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// The state as named tensors (`param/…`, `best/…`, `adam.m/…`, `adam.v/…`) and JSON.
    #[must_use]
    pub fn save(&self) -> (NamedTensors, StateMeta) {
        let tensors = save_state(&self.model.params, &self.best, &self.adam);
        let meta = StateMeta {
            updates: self.adam.updates,
            rng: self.rng.0,
            history: self.history.clone(),
            best_epoch: self.best.as_ref().map(|(e, _)| *e),
            stopped: self.stopped,
        };
        (tensors, meta)
    }

    /// Restores a saved state into a model of the same configuration and layout.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when a tensor is missing or of another shape.
    pub fn load(
        model: CtrModel,
        tensors: &NamedTensors,
        meta: StateMeta,
    ) -> Result<Self, TrainError> {
        let (params, best, adam) = load_state(
            tensors,
            &model.params,
            meta.best_epoch,
            meta.updates,
            &model.device(),
        )
        .map_err(TrainError::Checkpoint)?;
        let mut model = model;
        model.params = params;
        Ok(Self {
            model,
            adam,
            rng: SplitMix64(meta.rng),
            history: meta.history,
            best,
            stopped: meta.stopped,
        })
    }

    /// The model with the best epoch's parameters (the last ones before any epoch finished).
    #[must_use]
    pub fn best_model(&self) -> CtrModel {
        let mut model = self.model.clone();
        if let Some((_, best)) = &self.best {
            model.params = best.clone();
        }
        model
    }

    /// Trains until `options.epochs`, early stopping or a hook's [`Control::Stop`]; resumes from
    /// wherever the state is. Returns whether training finished (not stopped by a hook).
    ///
    /// # Errors
    /// [`TrainError`] on bad options, a one-class validation split or an oversized page.
    pub fn fit(
        &mut self,
        options: &TrainOptions,
        train: &Encoded,
        valid: &Encoded,
        hooks: &mut dyn Hooks,
    ) -> Result<bool, TrainError> {
        options.check()?;
        let pair_options = PairOptions {
            max_page: options.max_page,
            co_non_click_keep: self.model.config.collaborative.co_non_click_keep,
        };
        let uses_pairs = self.model.config.model == ModelKind::Ccn;
        let pages = train.page_groups();
        while !self.stopped && self.epochs_done() < options.epochs {
            let mut groups = pages.clone();
            shuffle(&mut groups, &mut self.rng);
            let mut sums = StepLoss::default();
            let mut steps = 0;
            for rows in batches(&groups, options.batch_size) {
                let part = train.select(&rows);
                let pairs = if uses_pairs && !part.pages.is_empty() {
                    page_pairs(&part.pages, &part.labels, &pair_options, &mut self.rng)
                        .map_err(|e| TrainError::Pairs(e.to_string()))?
                } else {
                    Vec::new()
                };
                let (grads, loss) = gradients(&self.model, &part, &pairs);
                self.adam
                    .update(&mut self.model.params, &grads, options.learning_rate);
                sums.bce += loss.bce;
                sums.attract += loss.attract;
                sums.repel += loss.repel;
                steps += 1;
            }
            let n = steps.max(1) as f64;
            let valid_metrics =
                evaluate(&self.model, valid, 4096).map_err(TrainError::Validation)?;
            let record = EpochRecord {
                epoch: self.epochs_done() + 1,
                loss: StepLoss {
                    bce: sums.bce / n,
                    attract: sums.attract / n,
                    repel: sums.repel / n,
                },
                steps,
                valid: valid_metrics,
            };
            let best_auc = self
                .best
                .as_ref()
                .and_then(|(e, _)| self.history.get(e - 1))
                .map_or(f64::NEG_INFINITY, |r| r.valid.auc);
            if record.valid.auc > best_auc {
                self.best = Some((record.epoch, self.model.params.clone()));
            }
            let since_best = record.epoch - self.best.as_ref().map_or(0, |(e, _)| *e);
            self.stopped = options.patience > 0 && since_best >= options.patience;
            self.history.push(record.clone());
            if hooks.epoch(&record, self) == Control::Stop {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Fisher–Yates with `rng`.
fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// Row indices in batches of whole pages, each closed once it reaches `batch_size` rows.
fn batches(groups: &[Vec<usize>], batch_size: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for group in groups {
        current.extend_from_slice(group);
        if current.len() >= batch_size {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

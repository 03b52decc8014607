//! Training of the pose models: the joint-weighted heatmap MSE (spec §4) on the key frame plus
//! the initial heatmaps of every frame and the information-orthogonality term, Adam, validation
//! AP after each epoch with the best epoch kept, and a state that round-trips through named
//! tensors and JSON for checkpoints. No I/O: the caller saves what [`Hooks`] hands it.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use fuselab_shared::pose::score::Scores;
use fuselab_shared::pose::{Clip, PoseDataError, Split, SyntheticConfig, generate_clip};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::batch::{Batch, batch};
use super::model::PoseModel;
use super::predict::{predict_split, score_clips};
use crate::optim::{Adam, Best, load_state, save_state};
use crate::tensors::NamedTensors;

/// Where clips come from.
pub trait ClipSource {
    /// Clips in `split`.
    fn count(&self, split: Split) -> usize;
    /// Clip `index` of `split`.
    ///
    /// # Errors
    /// When the clip cannot be produced.
    fn clip(&self, split: Split, index: usize) -> Result<Clip, PoseDataError>;
}

/// The synthetic benchmark, generated on demand (deterministic, so no copy is kept).
impl ClipSource for SyntheticConfig {
    fn count(&self, split: Split) -> usize {
        self.clips(split)
    }

    fn clip(&self, split: Split, index: usize) -> Result<Clip, PoseDataError> {
        generate_clip(self, split, index)
    }
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainOptions {
    /// Most epochs.
    pub epochs: usize,
    /// Training clips per epoch, drawn without replacement (0: all of them).
    pub clips_per_epoch: usize,
    /// Clips per batch.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Validation clips scored after each epoch (0: all of them).
    pub val_clips: usize,
    /// Epochs without a better validation AP before stopping (0: never stop early).
    pub patience: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 10,
            clips_per_epoch: 0,
            batch_size: 8,
            learning_rate: 1e-3,
            val_clips: 200,
            patience: 0,
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
    /// The clips do not suit the model.
    #[error("{0}")]
    Data(String),
    /// A clip could not be produced.
    #[error("{0}")]
    Clip(#[from] PoseDataError),
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
        if !(1..=10_000).contains(&self.epochs) {
            return value("epochs", "expected 1..=10000");
        }
        if !(1..=1024).contains(&self.batch_size) {
            return value("batch_size", "expected 1..=1024");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return value("learning_rate", "expected (0, 1]");
        }
        if self.patience > 10_000 {
            return value("patience", "expected 0..=10000");
        }
        Ok(())
    }
}

/// `½ · mean(w · (pred − target)²)` over samples, joints and cells (the usual `JointsMSELoss`).
///
/// # Shapes
/// - `pred`, `target`: `[n, k, h, w]`; `weights`: `[n, k]` → `[1]`
pub fn joint_mse(pred: Tensor<4>, target: Tensor<4>, weights: Tensor<2>) -> Tensor<1> {
    let [n, k, _, _] = pred.dims();
    let weights = weights.reshape([n, k, 1, 1]);
    ((pred - target).square() * weights).mean().mul_scalar(0.5)
}

/// The loss terms of one step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StepLoss {
    /// The key frame's heatmap MSE.
    pub heatmap: f64,
    /// The initial heatmaps' MSE over every frame (before `lambda_initial`).
    pub initial: f64,
    /// The information-orthogonality terms summed over blocks (before `lambda_io`).
    pub orthogonality: f64,
}

fn scalar(t: &Tensor<1>) -> f64 {
    f64::from(
        crate::llm::values(t.clone())
            .first()
            .copied()
            .unwrap_or(f32::NAN),
    )
}

/// The objective on `batch` (built on the model's device) and its terms.
pub fn objective(model: &PoseModel, batch: &Batch) -> (Tensor<1>, StepLoss) {
    let [n, t, k, h, w] = batch.targets.dims();
    let key = t / 2;
    let forward = model.forward(batch.frames.clone());
    let key_target = batch
        .targets
        .clone()
        .narrow(1, key, 1)
        .reshape([n, k, h, w]);
    let key_weights = batch.weights.clone().narrow(1, key, 1).reshape([n, k]);
    let heatmap = joint_mse(forward.heatmaps, key_target, key_weights);
    let initial = joint_mse(
        forward.initial.reshape([n * t, k, h, w]),
        batch.targets.clone().reshape([n * t, k, h, w]),
        batch.weights.clone().reshape([n * t, k]),
    );
    let mut loss = StepLoss {
        heatmap: scalar(&heatmap),
        initial: scalar(&initial),
        orthogonality: 0.0,
    };
    let mut total = heatmap + initial.mul_scalar(model.config.lambda_initial);
    for term in forward.orthogonality {
        loss.orthogonality += scalar(&term);
        if model.config.lambda_io > 0.0 {
            total = total + term.mul_scalar(model.config.lambda_io);
        }
    }
    (total, loss)
}

/// Gradients of the objective on `clips`, and its terms.
///
/// # Errors
/// [`TrainError::Data`] when the clips do not suit the model.
pub fn gradients(
    model: &PoseModel,
    clips: &[Clip],
) -> Result<(BTreeMap<String, Tensor<2>>, StepLoss), TrainError> {
    let mut tracked = model.clone();
    for param in tracked.params.values_mut() {
        *param = param.clone().inner().autodiff().require_grad();
    }
    let batch = batch(clips, &model.config, &tracked.device())?;
    let (total, loss) = objective(&tracked, &batch);
    let grads = total.backward();
    let out = tracked
        .params
        .iter()
        .filter_map(|(name, leaf)| Some((name.clone(), leaf.grad(&grads)?)))
        .collect();
    Ok((out, loss))
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
    /// Validation scores.
    pub valid: Scores,
}

/// Everything needed to go on training.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// The model being trained.
    pub model: PoseModel,
    /// The optimiser.
    pub adam: Adam,
    /// Draws the epochs' clips.
    pub rng: SplitMix64,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The best epoch so far and its parameters.
    pub best: Best,
    /// Early stopping fired.
    pub stopped: bool,
}

/// The JSON side of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMeta {
    /// Adam's updates.
    pub updates: usize,
    /// The generator's state.
    pub rng: u64,
    /// Finished epochs.
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

/// Called during training.
pub trait Hooks {
    /// A step is done (`step` of `steps` in this epoch).
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: &StepLoss);
    /// The epoch is done; save `state` if wanted.
    fn epoch(&mut self, record: &EpochRecord, state: &TrainState) -> Control;
}

impl TrainState {
    /// A fresh state for `model`, drawing clips from `seed`.
    pub fn new(model: PoseModel, seed: u64) -> Self {
        Self {
            model,
            adam: Adam::default(),
            rng: SplitMix64(seed ^ 0x9053_5EED),
            history: Vec::new(),
            best: None,
            stopped: false,
        }
    }

    /// Epochs done.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// The state as named tensors (`param/…`, `best/…`, `adam.m/…`, `adam.v/…`) and JSON.
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

    /// Restores a saved state into a model of the same configuration.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when a tensor is missing or of another shape.
    pub fn load(
        model: PoseModel,
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

    /// The model with the best epoch's parameters (the current ones before any epoch).
    pub fn best_model(&self) -> PoseModel {
        let mut model = self.model.clone();
        if let Some((_, best)) = &self.best {
            model.params = best.clone();
        }
        model
    }

    /// Trains until `options.epochs`, early stopping or a hook's [`Control::Stop`]; resumes
    /// from wherever the state is. Returns whether training finished.
    ///
    /// # Errors
    /// [`TrainError`] on bad options or clips that do not suit the model.
    pub fn fit(
        &mut self,
        options: &TrainOptions,
        source: &dyn ClipSource,
        hooks: &mut dyn Hooks,
    ) -> Result<bool, TrainError> {
        options.check()?;
        let available = source.count(Split::Train);
        if available == 0 {
            return Err(TrainError::Data(
                "the training split has no clips".to_owned(),
            ));
        }
        let per_epoch = if options.clips_per_epoch == 0 {
            available
        } else {
            options.clips_per_epoch.min(available)
        };
        let val_count = source.count(Split::Val);
        let val_count = if options.val_clips == 0 {
            val_count
        } else {
            options.val_clips.min(val_count)
        };
        if val_count == 0 {
            return Err(TrainError::Data(
                "the validation split has no clips".to_owned(),
            ));
        }
        let val_indices: Vec<usize> = (0..val_count).collect();
        while !self.stopped && self.epochs_done() < options.epochs {
            let epoch = self.epochs_done() + 1;
            let mut order: Vec<usize> = (0..available).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, self.rng.below(i + 1));
            }
            order.truncate(per_epoch);
            let steps = order.len().div_ceil(options.batch_size);
            let mut sums = StepLoss::default();
            for (step, chunk) in order.chunks(options.batch_size).enumerate() {
                let clips = chunk
                    .iter()
                    .map(|&i| source.clip(Split::Train, i))
                    .collect::<Result<Vec<_>, _>>()?;
                let (grads, loss) = gradients(&self.model, &clips)?;
                self.adam
                    .update(&mut self.model.params, &grads, options.learning_rate);
                sums.heatmap += loss.heatmap;
                sums.initial += loss.initial;
                sums.orthogonality += loss.orthogonality;
                hooks.step(epoch, step + 1, steps, &loss);
            }
            #[allow(clippy::cast_precision_loss)] // step counts
            let n = steps.max(1) as f64;
            let pairs = predict_split(
                &self.model,
                source,
                Split::Val,
                &val_indices,
                options.batch_size,
            )?;
            let record = EpochRecord {
                epoch,
                loss: StepLoss {
                    heatmap: sums.heatmap / n,
                    initial: sums.initial / n,
                    orthogonality: sums.orthogonality / n,
                },
                steps,
                valid: score_clips(&pairs),
            };
            let best_ap = self
                .best
                .as_ref()
                .and_then(|(e, _)| self.history.get(e - 1))
                .map_or(f64::NEG_INFINITY, |r| r.valid.ap);
            if record.valid.ap > best_ap {
                self.best = Some((epoch, self.model.params.clone()));
            }
            let since_best = epoch - self.best.as_ref().map_or(0, |(e, _)| *e);
            self.stopped = options.patience > 0 && since_best >= options.patience;
            self.history.push(record.clone());
            if hooks.epoch(&record, self) == Control::Stop {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use fuselab_shared::pose::NUM_KEYPOINTS;

    use super::*;
    use crate::pose::batch::window;
    use crate::pose::config::{PoseConfig, PoseVariant};
    use crate::pose::predict::predict;

    struct Quiet;

    impl Hooks for Quiet {
        fn step(&mut self, _: usize, _: usize, _: usize, _: &StepLoss) {}
        fn epoch(&mut self, _: &EpochRecord, _: &TrainState) -> Control {
            Control::Continue
        }
    }

    fn tiny_data() -> SyntheticConfig {
        SyntheticConfig {
            width: 48,
            height: 64,
            frames: 3,
            train_clips: 1,
            val_clips: 1,
            test_clips: 1,
            ..SyntheticConfig::default()
        }
    }

    /// One clip, learnt by heart: the key frame's keypoints come out within a few pixels.
    #[test]
    fn one_clip_is_overfit() {
        let data = tiny_data();
        let config = PoseConfig {
            variant: PoseVariant::JmPose,
            width: 16,
            offset_groups: 2,
            jmml_blocks: 1,
            ..PoseConfig::default()
        };
        let device = Device::flex();
        let model = PoseModel::init(&config, &device, 3).unwrap();
        let clip = data.clip(Split::Train, 0).unwrap();
        let first = gradients(&model, std::slice::from_ref(&clip)).unwrap().1;
        let mut state = TrainState::new(model, 5);
        let options = TrainOptions {
            epochs: 150,
            batch_size: 1,
            learning_rate: 3e-3,
            val_clips: 1,
            ..TrainOptions::default()
        };
        state.fit(&options, &data, &mut Quiet).unwrap();
        let last = state.history.last().unwrap().loss;
        assert!(last.heatmap < first.heatmap / 5.0, "{first:?} → {last:?}");
        let prediction = &predict(&state.model, std::slice::from_ref(&clip)).unwrap()[0];
        let label = &clip.labels[1];
        let mut errors: Vec<f64> = (0..NUM_KEYPOINTS)
            .filter(|&k| label.visibility[k] > 0)
            .map(|k| {
                let [x, y] = label.keypoints[k];
                let [px, py] = prediction.keypoints[k];
                (px - f64::from(x)).hypot(py - f64::from(y))
            })
            .collect();
        errors.sort_by(f64::total_cmp);
        let median = errors[errors.len() / 2];
        assert!(median < 4.0, "median error {median:.2} px: {errors:?}");
    }

    #[test]
    fn a_state_round_trips_through_its_checkpoint() {
        let data = tiny_data();
        let config = PoseConfig {
            variant: PoseVariant::Fusion,
            width: 8,
            ..PoseConfig::default()
        };
        let device = Device::flex();
        let mut state = TrainState::new(PoseModel::init(&config, &device, 1).unwrap(), 2);
        let options = TrainOptions {
            epochs: 1,
            batch_size: 1,
            ..TrainOptions::default()
        };
        state.fit(&options, &data, &mut Quiet).unwrap();
        let (tensors, meta) = state.save();
        let fresh = PoseModel::init(&config, &device, 9).unwrap();
        let loaded = TrainState::load(fresh, &tensors, meta.clone()).unwrap();
        assert_eq!(loaded.save().1, meta);
        for (name, p) in &state.model.params {
            assert_eq!(
                crate::llm::values(p.clone()),
                crate::llm::values(loaded.model.params[name].clone()),
                "{name}"
            );
        }
        let other = PoseConfig {
            width: 16,
            ..config
        };
        let err = TrainState::load(PoseModel::init(&other, &device, 0).unwrap(), &tensors, meta)
            .unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
    }

    #[test]
    fn short_clips_and_odd_sizes_are_refused() {
        let data = SyntheticConfig {
            width: 50,
            ..tiny_data()
        };
        let clip = data.clip(Split::Train, 0).unwrap();
        let config = PoseConfig::default();
        let err = batch(std::slice::from_ref(&clip), &config, &Device::flex()).unwrap_err();
        assert!(err.to_string().contains("multiples of 4"), "{err}");
        let long = PoseConfig {
            radius: 2,
            ..config
        };
        let err = window(&clip, &long).unwrap_err();
        assert!(err.to_string().contains("reads 5"), "{err}");
    }
}

//! One training loop for every alignment method: examples encoded with response-only labels,
//! dynamic padding, AdamW with Hugging Face's schedules, gradient accumulation, and a resumable
//! state. The loss is chosen by an [`Objective`] (plain language modelling, or H3Fusion's
//! fusion loss). The caller owns files, clocks and progress output.

use std::collections::BTreeMap;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use fuselab_shared::align::{Example, PromptFormat};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::defence::{
    BoosterConfig, LisaBatch, LisaConfig, LisaSchedule, LisaState, Named, VaccineConfig,
    booster_gradient, harmful_passes, proximal, vaccine_perturbation,
};
use super::model::{ForwardOptions, IGNORE, Llama, lm_loss};
use super::range::{self, RangeError};
use crate::tensors::NamedTensors;

/// Text to token ids and back (a `tokenizers::Tokenizer` natively).
pub trait Codec {
    /// The ids of `text`, without special tokens.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// The text of `ids`, special tokens left out.
    fn decode(&self, ids: &[u32]) -> String;
}

/// Token ids the encoder adds around an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialIds {
    /// Prepended when set (Llama's tokenizer adds BOS).
    pub bos: Option<u32>,
    /// Appended to the target when set (Booster/Lisa end targets with EOS).
    pub eos: Option<u32>,
    /// Padding.
    pub pad: u32,
}

/// One example as ids and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    /// `bos? + prompt + target + eos?`, truncated.
    pub ids: Vec<u32>,
    /// `ids` with the prompt (and BOS) replaced by [`IGNORE`].
    pub labels: Vec<i64>,
    /// The example's task (H3Fusion's gate label).
    pub task: usize,
}

/// Encodes an example the reference way: labels copy the ids, the prompt's positions are
/// ignored, truncation to `max_len`. The prompt and the target are tokenised separately, so
/// the boundary is exact.
#[must_use]
pub fn encode(
    encoder: &dyn Codec,
    format: &PromptFormat,
    special: SpecialIds,
    example: &Example,
    max_len: usize,
) -> Encoded {
    let mut ids: Vec<u32> = special.bos.into_iter().collect();
    ids.extend(encoder.encode(&format.prompt(&example.instruction, &example.input)));
    let prompt = ids.len();
    ids.extend(encoder.encode(&format.target(&example.output)));
    ids.extend(special.eos);
    ids.truncate(max_len);
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| if i < prompt { IGNORE } else { i64::from(id) })
        .collect();
    Encoded {
        ids,
        labels,
        task: example.task.index(),
    }
}

/// A padded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Rows.
    pub rows: usize,
    /// Padded length.
    pub width: usize,
    /// `rows × width` ids, right-padded.
    pub ids: Vec<i64>,
    /// `rows × width` labels, padding ignored.
    pub labels: Vec<i64>,
    /// `rows × width`: 1 for real tokens.
    pub real: Vec<f32>,
    /// Task of each row.
    pub tasks: Vec<usize>,
}

impl Batch {
    /// Pads `examples` to the longest one (at least `min_width`).
    #[must_use]
    pub fn pad(examples: &[&Encoded], pad: u32, min_width: usize) -> Self {
        let width = examples
            .iter()
            .map(|e| e.ids.len())
            .max()
            .unwrap_or(1)
            .max(min_width)
            .max(1);
        let mut batch = Self {
            rows: examples.len(),
            width,
            ids: Vec::with_capacity(examples.len() * width),
            labels: Vec::with_capacity(examples.len() * width),
            real: Vec::with_capacity(examples.len() * width),
            tasks: examples.iter().map(|e| e.task).collect(),
        };
        for e in examples {
            for i in 0..width {
                let real = i < e.ids.len();
                batch.ids.push(if real {
                    i64::from(e.ids[i])
                } else {
                    i64::from(pad)
                });
                batch.labels.push(if real { e.labels[i] } else { IGNORE });
                batch.real.push(f32::from(u8::from(real)));
            }
        }
        batch
    }

    /// The batch with its padding labelled as the pad token, so padding counts in the loss
    /// (LLM-TOPLA-Summary's reference does not mask label padding; `--compat llm-topla`).
    #[must_use]
    pub fn with_pad_in_loss(mut self, pad: u32) -> Self {
        for (label, &real) in self.labels.iter_mut().zip(&self.real) {
            if real == 0.0 {
                *label = i64::from(pad);
            }
        }
        self
    }

    /// Tokens that carry a loss.
    #[must_use]
    pub fn target_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE).count()
    }
}

/// Learning-rate schedules with Hugging Face's semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Constant; like HF's `constant`, it ignores the warm-up.
    Constant,
    /// Linear warm-up, then constant.
    ConstantWithWarmup,
    /// Linear warm-up, then linear decay to 0 (HF's default).
    #[default]
    Linear,
    /// Linear warm-up, then half a cosine to 0.
    Cosine,
}

/// AdamW and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Adam's β₁.
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// Adam's β₂.
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// Adam's ε.
    #[serde(default = "epsilon")]
    pub epsilon: f64,
    /// The schedule.
    #[serde(default)]
    pub schedule: Schedule,
    /// Share of the steps spent warming up.
    #[serde(default)]
    pub warmup_ratio: f64,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub gradient_accumulation: usize,
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn epsilon() -> f64 {
    1e-8
}
fn one() -> usize {
    1
}

impl OptimConfig {
    /// Checks every rate and count (`key`: the table's dotted path, e.g. `stage.train.optim`).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::positive(
            format_args!("{key}.learning_rate"),
            self.learning_rate,
            10.0,
        )?;
        range::real(
            format_args!("{key}.weight_decay"),
            self.weight_decay,
            0.0..=10.0,
        )?;
        range::below_one(format_args!("{key}.beta1"), self.beta1)?;
        range::below_one(format_args!("{key}.beta2"), self.beta2)?;
        range::positive(format_args!("{key}.epsilon"), self.epsilon, 1.0)?;
        range::real(
            format_args!("{key}.warmup_ratio"),
            self.warmup_ratio,
            0.0..=1.0,
        )?;
        range::count(
            format_args!("{key}.gradient_accumulation"),
            self.gradient_accumulation,
            1..=range::MAX_ACCUMULATION,
        )
    }

    /// AdamW at `learning_rate` with the defaults (β 0.9/0.999, ε 1e-8, linear decay, no warm-up).
    #[must_use]
    pub fn adamw(learning_rate: f64) -> Self {
        Self {
            learning_rate,
            weight_decay: 0.0,
            beta1: beta1(),
            beta2: beta2(),
            epsilon: epsilon(),
            schedule: Schedule::Linear,
            warmup_ratio: 0.0,
            gradient_accumulation: 1,
        }
    }

    /// The learning rate of optimiser step `step` (0-based) out of `total`, as HF's schedulers
    /// compute it (warm-up steps = ⌈ratio·total⌉).
    #[must_use]
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        // A ratio in [0, 1] of a step count: non-negative and at most `total`.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let warmup = (self.warmup_ratio.clamp(0.0, 1.0) * total as f64).ceil() as usize;
        let peak = self.learning_rate;
        if self.schedule != Schedule::Constant && step < warmup {
            return peak * step as f64 / warmup.max(1) as f64;
        }
        let progress =
            (step - warmup.min(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        match self.schedule {
            Schedule::Constant | Schedule::ConstantWithWarmup => peak,
            Schedule::Linear => peak * (1.0 - progress).max(0.0),
            Schedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

/// AdamW's moments, by parameter name.
#[derive(Debug, Clone, Default)]
pub struct AdamW {
    moments: BTreeMap<String, (Tensor<2>, Tensor<2>)>,
    /// Updates applied.
    pub updates: usize,
}

impl AdamW {
    /// Applies one update with `gradients` at `learning_rate` (PyTorch's `AdamW`).
    pub fn update(
        &mut self,
        model: &mut Llama,
        gradients: &BTreeMap<String, Tensor<2>>,
        config: &OptimConfig,
        learning_rate: f64,
    ) {
        self.updates += 1;
        let t = self.updates as f64;
        let correction1 = 1.0 - config.beta1.powf(t);
        let correction2 = 1.0 - config.beta2.powf(t);
        model.visit_mut(&mut |name, param| {
            let Some(gradient) = gradients.get(name) else {
                return;
            };
            let (m, v) = self
                .moments
                .entry(name.to_owned())
                .or_insert_with(|| (Tensor::zeros_like(param), Tensor::zeros_like(param)));
            *m = m.clone().mul_scalar(config.beta1)
                + gradient.clone().mul_scalar(1.0 - config.beta1);
            *v = v.clone().mul_scalar(config.beta2)
                + gradient.clone().square().mul_scalar(1.0 - config.beta2);
            let step = m
                .clone()
                .div_scalar(correction1)
                .div(
                    v.clone()
                        .div_scalar(correction2)
                        .sqrt()
                        .add_scalar(config.epsilon),
                )
                .mul_scalar(learning_rate);
            let decayed = if config.weight_decay > 0.0 {
                param
                    .clone()
                    .mul_scalar(1.0 - learning_rate * config.weight_decay)
            } else {
                param.clone()
            };
            *param = decayed - step;
        });
    }

    /// The moments as named tensors (`adam.m/NAME`, `adam.v/NAME`) for a checkpoint.
    #[must_use]
    pub fn export(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        for (name, (m, v)) in &self.moments {
            out.insert(format!("adam.m/{name}"), host(m));
            out.insert(format!("adam.v/{name}"), host(v));
        }
        out
    }

    /// Restores the moments from [`AdamW::export`]'s tensors.
    #[must_use]
    pub fn import(tensors: &NamedTensors, updates: usize, device: &burn::tensor::Device) -> Self {
        let mut moments = BTreeMap::new();
        for (key, (shape, values)) in tensors {
            if let Some(name) = key.strip_prefix("adam.m/")
                && let Some((v_shape, v_values)) = tensors.get(&format!("adam.v/{name}"))
            {
                moments.insert(
                    name.to_owned(),
                    (
                        device_tensor(shape, values, device),
                        device_tensor(v_shape, v_values, device),
                    ),
                );
            }
        }
        Self { moments, updates }
    }
}

/// A tensor's shape and values on the host.
///
/// # Panics
/// Never: values are converted to `f32` before they are read (and `gate_loss` needs one layer).
#[must_use]
pub fn host(tensor: &Tensor<2>) -> (Vec<usize>, Vec<f32>) {
    let shape = tensor.dims().to_vec();
    let values = super::values(tensor.clone());
    (shape, values)
}

fn device_tensor(shape: &[usize], values: &[f32], device: &burn::tensor::Device) -> Tensor<2> {
    let shape = match shape {
        [rows, cols] => [*rows, *cols],
        [cols] => [1, *cols],
        _ => [1, values.len()],
    };
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// The named terms of a loss; their sum is minimised.
pub type LossTerms = Vec<(&'static str, Tensor<1>)>;

/// Gradients of the summed `terms(model)` with respect to the parameters `trainable` accepts,
/// with each term's value.
pub fn gradients(
    model: &Llama,
    trainable: &dyn Fn(&str) -> bool,
    terms: impl FnOnce(&Llama) -> LossTerms,
) -> (BTreeMap<String, Tensor<2>>, Vec<(&'static str, f64)>) {
    let mut leaves = Vec::new();
    let mut tracked = model.clone();
    tracked.visit_mut(&mut |name, param| {
        if trainable(name) {
            *param = param.clone().inner().autodiff().require_grad();
            leaves.push((name.to_owned(), param.clone()));
        }
    });
    let terms = terms(&tracked);
    let values: Vec<(&'static str, f64)> = terms
        .iter()
        .map(|(name, t)| (*name, f64::from(scalar(t))))
        .collect();
    let Some(total) = terms.into_iter().map(|(_, t)| t).reduce(|a, b| a + b) else {
        return (BTreeMap::new(), values);
    };
    let grads = total.backward();
    let mut out = BTreeMap::new();
    for (name, leaf) in leaves {
        if let Some(g) = leaf.grad(&grads) {
            out.insert(name, g);
        }
    }
    (out, values)
}

/// A scalar tensor's value.
///
/// # Panics
/// Never: values are converted to `f32` before they are read (and `gate_loss` needs one layer).
#[must_use]
pub fn scalar(t: &Tensor<1>) -> f32 {
    super::values(t.clone())
        .first()
        .copied()
        .unwrap_or(f32::NAN)
}

/// How H3Fusion's gating loss is computed (quirk Q5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GateLoss {
    /// The reference: the mean router probabilities fed to a logits cross-entropy (a second
    /// softmax), padding positions included.
    #[default]
    Reference,
    /// `−log p̄_c` with padding positions left out of the mean.
    Nll,
}

/// What a training step minimises.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Next-token cross-entropy on the response tokens.
    Lm,
    /// H3Fusion's `L_LM + λ·L_gate + Σ_e γ_e·R_e`.
    H3Fusion {
        /// λ.
        lambda: f64,
        /// γ per expert.
        gamma: Vec<f64>,
        /// The gating-loss variant.
        gate_loss: GateLoss,
        /// Per expert: the frozen parameters' part of `R_e` (norms of the merged expert weights,
        /// a constant), so the reported loss matches the reference.
        frozen_norms: Vec<f64>,
    },
}

/// H3Fusion's gating loss.
///
/// # Shapes
/// `router`: per layer `[b, t, E]`; `real`: `b·t` flags; `tasks`: `b` labels → `[1]`.
///
/// # Panics
/// Never: values are converted to `f32` before they are read (and `gate_loss` needs one layer).
#[must_use]
pub fn gate_loss(
    router: &[Tensor<3>],
    real: &[f32],
    tasks: &[usize],
    variant: GateLoss,
) -> Tensor<1> {
    let [b, t, experts] = router[0].dims();
    let device = router[0].device();
    let layers = router.len() as f64;
    let mean = match variant {
        GateLoss::Reference => router
            .iter()
            .map(|p| p.clone().mean_dim(1).reshape([b, experts]))
            .reduce(|a, c| a + c)
            .expect("at least one layer")
            .div_scalar(layers),
        GateLoss::Nll => {
            let mask = Tensor::<3>::from_data(TensorData::new(real.to_vec(), [b, t, 1]), &device);
            let counts = mask.clone().sum_dim(1).reshape([b, 1]).clamp_min(1.0);
            router
                .iter()
                .map(|p| {
                    (p.clone() * mask.clone()).sum_dim(1).reshape([b, experts]) / counts.clone()
                })
                .reduce(|a, c| a + c)
                .expect("at least one layer")
                .div_scalar(layers)
        }
    };
    let labels: Vec<i64> = tasks.iter().map(|&c| i64::from(c as u32)).collect();
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [b, 1]), &device);
    let log_p = match variant {
        GateLoss::Reference => log_softmax(mean, 1),
        GateLoss::Nll => mean.clamp_min(1e-12).log(),
    };
    log_p.gather(1, labels).mean().neg()
}

/// H3Fusion's drift regulariser of expert `e` over its trainable parameters:
/// `Σ_{names containing "experts.{e}."} ‖P‖_F / layers`.
#[must_use]
pub fn drift(model: &Llama, expert: usize, trainable: &dyn Fn(&str) -> bool) -> Option<Tensor<1>> {
    let needle = format!("experts.{expert}.");
    let mut total: Option<Tensor<1>> = None;
    model.visit(&mut |name, param| {
        if name.contains(&needle) && trainable(name) {
            // ‖B‖ starts at 0, where √ has no gradient; PyTorch's norm uses the subgradient 0.
            // The ε shifts the value by at most 1e-6.
            let norm = param.clone().square().sum().add_scalar(1e-12).sqrt();
            total = Some(match total.take() {
                Some(t) => t + norm,
                None => norm,
            });
        }
    });
    total.map(|t| t.div_scalar(model.config.num_hidden_layers as f64))
}

/// The constant part of `R_e`: norms of expert `e`'s frozen parameters, over the layers.
#[must_use]
pub fn frozen_drift(model: &Llama, expert: usize, trainable: &dyn Fn(&str) -> bool) -> f64 {
    let needle = format!("experts.{expert}.");
    let mut total = 0.0;
    model.visit(&mut |name, param| {
        if name.contains(&needle) && !trainable(name) {
            total += f64::from(scalar(&param.clone().square().sum().sqrt()));
        }
    });
    total / model.config.num_hidden_layers as f64
}

impl Objective {
    /// The loss terms of `batch` for `model` (whose trainable weights are autodiff leaves).
    #[must_use]
    pub fn terms(
        &self,
        model: &Llama,
        batch: &Batch,
        trainable: &dyn Fn(&str) -> bool,
    ) -> LossTerms {
        self.terms_perturbed(model, batch, trainable, &[])
    }

    /// [`Objective::terms`] with Vaccine's perturbation of the attention outputs.
    ///
    /// # Shapes
    /// `perturb`: per layer `[rows·width, d]` (or empty).
    #[must_use]
    pub fn terms_perturbed(
        &self,
        model: &Llama,
        batch: &Batch,
        trainable: &dyn Fn(&str) -> bool,
        perturb: &[Tensor<2>],
    ) -> LossTerms {
        let device = model.device();
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(batch.ids.clone(), [batch.rows, batch.width]),
            &device,
        );
        let out = model.forward_perturbed(
            ids,
            None,
            ForwardOptions {
                train: true,
                last_only: false,
            },
            perturb,
        );
        let lm = lm_loss(out.logits, &batch.labels);
        match self {
            Self::Lm => vec![("lm", lm)],
            Self::H3Fusion {
                lambda,
                gamma,
                gate_loss: variant,
                frozen_norms,
            } => {
                let mut terms = vec![("lm", lm)];
                if !out.router.is_empty() && *lambda > 0.0 {
                    let gate = gate_loss(&out.router, &batch.real, &batch.tasks, *variant);
                    terms.push(("gate", gate.mul_scalar(*lambda)));
                }
                for (e, &g) in gamma.iter().enumerate() {
                    if g > 0.0
                        && let Some(r) = drift(model, e, trainable)
                    {
                        let frozen = frozen_norms.get(e).copied().unwrap_or(0.0);
                        terms.push((
                            DRIFT_TERMS[e.min(DRIFT_TERMS.len() - 1)],
                            r.add_scalar(frozen).mul_scalar(g),
                        ));
                    }
                }
                terms
            }
        }
    }
}

const DRIFT_TERMS: [&str; 4] = ["drift0", "drift1", "drift2", "drift_more"];

/// One training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The optimiser.
    pub optim: OptimConfig,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// Stop after this many optimiser steps (0: run every epoch).
    #[serde(default)]
    pub max_steps: usize,
    /// Longest example, in tokens.
    pub max_len: usize,
    /// Pad every batch to the longest example of the whole set (H3Fusion's reference) rather
    /// than to its own longest.
    #[serde(default)]
    pub pad_to_dataset: bool,
    /// Padding carries a loss, as the pad token (LLM-TOPLA-Summary's reference).
    #[serde(default)]
    pub pad_in_loss: bool,
    /// Shuffling and dropout seed.
    pub seed: u64,
}

impl TrainConfig {
    /// Checks every size, count and rate (`key`: the table's dotted path, e.g. `stage.train`).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        self.optim.check(&format!("{key}.optim"))?;
        range::count(
            format_args!("{key}.batch_size"),
            self.batch_size,
            1..=range::MAX_BATCH,
        )?;
        range::count(
            format_args!("{key}.epochs"),
            self.epochs,
            1..=range::MAX_EPOCHS,
        )?;
        range::count(
            format_args!("{key}.max_steps"),
            self.max_steps,
            0..=range::MAX_STEPS,
        )?;
        range::count(
            format_args!("{key}.max_len"),
            self.max_len,
            1..=range::MAX_TOKENS,
        )
    }
}

/// Where a run stands; saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Optimiser steps in the whole run.
    pub total_steps: usize,
    /// Micro-batches consumed.
    pub micro_batches: usize,
    /// Response tokens seen.
    pub tokens: usize,
    /// Batches drawn from the method's second loader (Booster's harmful data, Lisa's guide
    /// data).
    #[serde(default)]
    pub side_batches: usize,
    /// Lisa's schedule.
    #[serde(default)]
    pub lisa: Option<LisaSchedule>,
}

/// What one optimiser step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based step.
    pub step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// Epoch (0-based) of the step's last micro-batch.
    pub epoch: usize,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Each loss term, averaged over the micro-batches.
    pub terms: BTreeMap<String, f64>,
    /// Their sum.
    pub loss: f64,
    /// Tokens (padded) processed by the step.
    pub tokens: usize,
    /// Lisa: the state the step ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LisaState>,
}

/// A training set that cannot be trained on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrainError {
    /// No examples, or no example with a response token left after truncation.
    #[error("no trainable examples: {what}")]
    NoData {
        /// Why.
        what: String,
    },
    /// A setting is out of range.
    #[error("`{field}`: {what}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What was expected.
        what: String,
    },
    /// A checkpoint does not fit this run.
    #[error("checkpoint: {what}")]
    Checkpoint {
        /// What does not fit.
        what: String,
    },
}

/// How each optimiser step is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// One gradient of the objective per micro-batch.
    Plain,
    /// Booster: two extra passes on a harmful batch attenuate the harmful perturbation.
    Booster {
        /// λ, α, the harmful batch size, the Vaccine variant.
        config: BoosterConfig,
        /// The harmful set (harmful prompts with harmful answers).
        harmful: Vec<Encoded>,
    },
    /// Vaccine: the gradient under a worst-case perturbation of the attention outputs.
    Vaccine(VaccineConfig),
    /// Lisa: alternate guide (alignment) and user steps with a proximal term.
    Lisa {
        /// K1, K2, ρ.
        config: LisaConfig,
        /// The provider's alignment data.
        guide: Vec<Encoded>,
    },
}

/// A training run: the model, its data, the optimiser and where it stands.
#[derive(Debug, Clone)]
pub struct Trainer {
    /// The model being trained.
    pub model: Llama,
    /// What is minimised.
    pub objective: Objective,
    /// How each step is taken.
    pub method: Method,
    /// Lisa's anchors: where the alignment state and the user state were last left.
    anchors: [Named; 2],
    config: TrainConfig,
    examples: Vec<Encoded>,
    trainable: fn(&str) -> bool,
    optimizer: AdamW,
    /// Where the run stands.
    pub state: TrainState,
    pad: u32,
    dataset_width: usize,
}

/// Trainable parameters: everything.
#[must_use]
pub fn all_parameters(_: &str) -> bool {
    true
}

/// Trainable parameters: the `LoRA` factors.
#[must_use]
pub fn lora_only(name: &str) -> bool {
    name.contains(".lora_")
}

/// Trainable parameters: the `LoRA` factors and the tokens added after loading (their
/// embedding rows and head columns).
#[must_use]
pub fn lora_and_added_tokens(name: &str) -> bool {
    lora_only(name) || name.ends_with(".added_tokens")
}

/// Trainable parameters: the `LoRA` factors and the routers.
#[must_use]
pub fn lora_and_routers(name: &str) -> bool {
    lora_only(name) || name.ends_with("block_sparse_moe.gate.weight")
}

impl Trainer {
    /// Sets up a run.
    ///
    /// # Errors
    /// [`TrainError`] when there is nothing to train on or a setting is out of range.
    pub fn new(
        model: Llama,
        objective: Objective,
        config: TrainConfig,
        examples: Vec<Encoded>,
        trainable: fn(&str) -> bool,
        pad: u32,
    ) -> Result<Self, TrainError> {
        if config.batch_size == 0 {
            return Err(TrainError::Config {
                field: "batch_size",
                what: "must be at least 1".to_owned(),
            });
        }
        if config.optim.gradient_accumulation == 0 {
            return Err(TrainError::Config {
                field: "gradient_accumulation",
                what: "must be at least 1".to_owned(),
            });
        }
        let examples: Vec<Encoded> = examples
            .into_iter()
            .filter(|e| e.labels.iter().skip(1).any(|&l| l != IGNORE))
            .collect();
        if examples.is_empty() {
            return Err(TrainError::NoData {
                what: format!(
                    "every example's response was cut by max_len {} (or the set is empty)",
                    config.max_len
                ),
            });
        }
        let per_epoch = examples.len().div_ceil(config.batch_size);
        let steps_per_epoch = per_epoch.div_ceil(config.optim.gradient_accumulation);
        let mut total_steps = steps_per_epoch * config.epochs;
        // Like HF's `max_steps`, it overrides the epochs (the data cycles).
        if config.max_steps > 0 {
            total_steps = config.max_steps;
        }
        let dataset_width = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        Ok(Self {
            model,
            objective,
            method: Method::Plain,
            anchors: [Named::new(), Named::new()],
            state: TrainState {
                step: 0,
                total_steps,
                micro_batches: 0,
                tokens: 0,
                side_batches: 0,
                lisa: None,
            },
            config,
            examples,
            trainable,
            optimizer: AdamW::default(),
            pad,
            dataset_width,
        })
    }

    /// The run's settings.
    #[must_use]
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Whether every step is done.
    #[must_use]
    pub fn finished(&self) -> bool {
        self.state.step >= self.state.total_steps
    }

    /// Sets how each step is taken (the trainer starts [`Method::Plain`]).
    ///
    /// # Errors
    /// [`TrainError::Config`] when the method needs one micro-batch per step, and
    /// [`TrainError::NoData`] when Booster's harmful set is empty.
    pub fn with_method(mut self, method: Method) -> Result<Self, TrainError> {
        if method != Method::Plain && self.config.optim.gradient_accumulation != 1 {
            return Err(TrainError::Config {
                field: "gradient_accumulation",
                what: "Booster, Vaccine and Lisa take one batch per step: set it to 1".to_owned(),
            });
        }
        match &method {
            Method::Booster { config, harmful } => {
                if harmful.is_empty() {
                    return Err(TrainError::NoData {
                        what: "Booster's harmful set is empty".to_owned(),
                    });
                }
                if config.harmful_batch_size == 0 {
                    return Err(TrainError::Config {
                        field: "harmful_batch_size",
                        what: "must be at least 1".to_owned(),
                    });
                }
            }
            Method::Lisa { .. } => {
                let start = self.trainable_weights();
                self.anchors = [start.clone(), start];
            }
            Method::Plain | Method::Vaccine(_) => {}
        }
        self.method = method;
        Ok(self)
    }

    /// The trainable weights, by name (values: burn tensors are immutable, so later updates
    /// do not change them).
    #[must_use]
    pub fn trainable_weights(&self) -> Named {
        let mut out = Named::new();
        let trainable = self.trainable;
        self.model.visit(&mut |name, param| {
            if trainable(name) {
                out.insert(name.to_owned(), param.clone());
            }
        });
        out
    }

    /// The micro-batch with global index `index`.
    fn micro_batch(&self, index: usize) -> (Batch, usize) {
        let min_width = if self.config.pad_to_dataset {
            self.dataset_width
        } else {
            1
        };
        let (batch, epoch) = cycled_batch(
            &self.examples,
            self.config.batch_size,
            self.config.seed,
            index,
            self.pad,
            min_width,
        );
        if self.config.pad_in_loss {
            (batch.with_pad_in_loss(self.pad), epoch)
        } else {
            (batch, epoch)
        }
    }

    /// Runs one optimiser step (its micro-batches, then AdamW).
    pub fn step(&mut self) -> StepReport {
        if self.method != Method::Plain {
            return self.defended_step();
        }
        let accumulation = self.config.optim.gradient_accumulation;
        let device = self.model.device();
        device.seed(self.config.seed.wrapping_add(self.state.step as u64));
        let mut summed: BTreeMap<String, Tensor<2>> = BTreeMap::new();
        let mut terms: BTreeMap<String, f64> = BTreeMap::new();
        let mut tokens = 0;
        let mut epoch = 0;
        for _ in 0..accumulation {
            let (batch, e) = self.micro_batch(self.state.micro_batches);
            epoch = e;
            self.state.micro_batches += 1;
            tokens += batch.rows * batch.width;
            self.state.tokens += batch.target_tokens();
            let trainable = self.trainable;
            let objective = &self.objective;
            let (grads, values) = gradients(&self.model, &trainable, |m| {
                objective.terms(m, &batch, &trainable)
            });
            for (name, value) in values {
                *terms.entry(name.to_owned()).or_default() += value / accumulation as f64;
            }
            for (name, g) in grads {
                let g = g.inner();
                let entry = summed.remove(&name);
                summed.insert(
                    name,
                    match entry {
                        Some(s) => s + g,
                        None => g,
                    },
                );
            }
        }
        if accumulation > 1 {
            for g in summed.values_mut() {
                *g = g.clone().div_scalar(accumulation as f64);
            }
        }
        self.apply(
            Pass {
                grads: summed,
                terms,
                tokens,
                target_tokens: 0,
                state: None,
            },
            epoch,
        )
    }

    /// AdamW with the step's gradients at the scheduled learning rate, and the step's report.
    fn apply(&mut self, pass: Pass, epoch: usize) -> StepReport {
        let learning_rate = self
            .config
            .optim
            .learning_rate_at(self.state.step, self.state.total_steps);
        self.optimizer.update(
            &mut self.model,
            &pass.grads,
            &self.config.optim,
            learning_rate,
        );
        self.state.step += 1;
        StepReport {
            step: self.state.step,
            total_steps: self.state.total_steps,
            epoch,
            learning_rate,
            loss: pass.terms.values().sum(),
            terms: pass.terms,
            tokens: pass.tokens,
            state: pass.state,
        }
    }

    /// One step of Booster, Vaccine or Lisa (one batch, no accumulation; `Plain` here is the
    /// same step as [`Trainer::step`]'s without accumulation).
    fn defended_step(&mut self) -> StepReport {
        let seed = self.config.seed.wrapping_add(self.state.step as u64);
        let (batch, epoch) = self.micro_batch(self.state.micro_batches);
        self.state.micro_batches += 1;
        // Taken out for the step, so the passes can borrow the trainer mutably.
        let method = std::mem::replace(&mut self.method, Method::Plain);
        let pass = match &method {
            Method::Plain => self.plain_pass(&batch, seed),
            Method::Booster { config, harmful } => self.booster_pass(config, harmful, &batch, seed),
            Method::Vaccine(config) => {
                self.model.device().seed(seed);
                let mut pass = Pass::new(&batch);
                let (grads, values) = vaccine_gradients(
                    &self.model,
                    &self.objective,
                    &batch,
                    config.rho,
                    &self.trainable,
                );
                pass.record(values);
                pass.grads = grads;
                pass
            }
            Method::Lisa { config, guide } => self.lisa_pass(config, guide, batch, seed),
        };
        self.method = method;
        self.state.tokens += pass.target_tokens;
        self.apply(pass, epoch)
    }

    /// The next batch of the method's second loader (its own shuffle, cycled).
    fn side_batch(&mut self, examples: &[Encoded], batch_size: usize, salt: u64) -> Batch {
        let (batch, _) = cycled_batch(
            examples,
            batch_size,
            self.config.seed ^ salt,
            self.state.side_batches,
            self.pad,
            1,
        );
        self.state.side_batches += 1;
        batch
    }

    fn plain_pass(&self, batch: &Batch, seed: u64) -> Pass {
        self.model.device().seed(seed);
        let mut pass = Pass::new(batch);
        let (grads, values) = gradients(&self.model, &self.trainable, |m| {
            self.objective.terms(m, batch, &self.trainable)
        });
        pass.record(values);
        pass.grads = grads;
        pass
    }

    /// Booster's three passes: the harmful gradient at w and at the perturbed w̃ (a harmful
    /// batch of its own loader), then the alignment gradient.
    fn booster_pass(
        &mut self,
        config: &BoosterConfig,
        harmful: &[Encoded],
        batch: &Batch,
        seed: u64,
    ) -> Pass {
        let device = self.model.device();
        let harmful_batch = self.side_batch(harmful, config.harmful_batch_size, HARMFUL_SALT);
        let mut pass = Pass::new(batch);
        pass.tokens += 2 * harmful_batch.rows * harmful_batch.width;
        let trainable = self.trainable;
        let model = &self.model;
        let weights = self.trainable_weights();
        device.seed(seed ^ HARMFUL_SALT);
        let passes = harmful_passes(&weights, config.alpha, &mut |w| {
            let (g, values) = gradients(&with_weights(model, w), &trainable, |m| {
                Objective::Lm.terms(m, &harmful_batch, &trainable)
            });
            (g, values.iter().map(|(_, v)| v).sum())
        });
        // Reseeded so that λ = 0 takes exactly the plain step (dropout included).
        device.seed(seed);
        let (alignment, values) = match config.perturb_aware {
            Some(rho) => vaccine_gradients(model, &self.objective, batch, rho, &trainable),
            None => gradients(model, &trainable, |m| {
                self.objective.terms(m, batch, &trainable)
            }),
        };
        pass.record(values);
        pass.terms.insert(
            "booster".to_owned(),
            config.lambda * (passes.loss - passes.perturbed_loss),
        );
        pass.grads = booster_gradient(alignment, &passes, config.lambda);
        pass
    }

    /// Lisa's step: the schedule picks the state and the batch (a guide batch replaces the
    /// user's in the alignment state), anchors are refreshed on a state change, and after the
    /// first tenth of the steps the proximal term pulls towards the other state's last iterate.
    fn lisa_pass(
        &mut self,
        config: &LisaConfig,
        guide: &[Encoded],
        batch: Batch,
        seed: u64,
    ) -> Pass {
        let mut schedule = self
            .state
            .lisa
            .unwrap_or_else(|| LisaSchedule::new(config, !guide.is_empty()));
        let decided = schedule.next(config, self.state.total_steps);
        self.state.lisa = Some(schedule);
        if let Some(which) = decided.refresh {
            self.anchors[anchor_index(which)] = self.trainable_weights();
        }
        let batch = match decided.batch {
            LisaBatch::User => batch,
            LisaBatch::Guide => self.side_batch(guide, self.config.batch_size, GUIDE_SALT),
        };
        let mut pass = Pass::new(&batch);
        pass.state = Some(decided.state);
        let centre = &self.anchors[anchor_index(match decided.state {
            LisaState::Align => LisaState::User,
            LisaState::User => LisaState::Align,
        })];
        self.model.device().seed(seed);
        let trainable = self.trainable;
        let objective = &self.objective;
        let (grads, values) = gradients(&self.model, &trainable, |m| {
            let mut terms = objective.terms(m, &batch, &trainable);
            if decided.proximal {
                let mut weights = Named::new();
                m.visit(&mut |name, param| {
                    if trainable(name) {
                        weights.insert(name.to_owned(), param.clone());
                    }
                });
                if let Some(p) = proximal(&weights, centre, config.rho) {
                    terms.push(("proximal", p));
                }
            }
            terms
        });
        pass.record(values);
        pass.grads = grads;
        pass
    }

    /// The trainable parameters (`param/NAME`) and the optimiser's moments, for a checkpoint
    /// written beside [`Trainer::state`].
    #[must_use]
    pub fn checkpoint(&self) -> NamedTensors {
        let mut out = self.optimizer.export();
        if matches!(self.method, Method::Lisa { .. }) {
            for (prefix, anchors) in ANCHOR_PREFIXES.iter().zip(&self.anchors) {
                for (name, tensor) in anchors {
                    out.insert(format!("{prefix}{name}"), host(tensor));
                }
            }
        }
        let trainable = self.trainable;
        self.model.visit(&mut |name, param| {
            if trainable(name) {
                out.insert(format!("param/{name}"), host(param));
            }
        });
        out
    }

    /// Continues from a checkpoint of the same run.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when a trainable parameter is missing or has another shape,
    /// or the state does not belong to this run.
    pub fn restore(&mut self, tensors: &NamedTensors, state: TrainState) -> Result<(), TrainError> {
        if state.total_steps != self.state.total_steps {
            return Err(TrainError::Checkpoint {
                what: format!(
                    "it is from a run of {} steps, this run has {}; the data or settings changed",
                    state.total_steps, self.state.total_steps
                ),
            });
        }
        let device = self.model.device();
        let trainable = self.trainable;
        let mut problem = None;
        self.model.visit_mut(&mut |name, param| {
            if !trainable(name) || problem.is_some() {
                return;
            }
            match tensors.get(&format!("param/{name}")) {
                Some((shape, values)) if shape.as_slice() == param.dims() => {
                    *param = device_tensor(shape, values, &device);
                }
                Some((shape, _)) => {
                    problem = Some(format!(
                        "`{name}` has shape {shape:?}, expected {:?}",
                        param.dims()
                    ));
                }
                None => problem = Some(format!("`{name}` is missing")),
            }
        });
        if let Some(what) = problem {
            return Err(TrainError::Checkpoint { what });
        }
        if matches!(self.method, Method::Lisa { .. }) {
            let mut anchors = [Named::new(), Named::new()];
            for (prefix, slot) in ANCHOR_PREFIXES.iter().zip(&mut anchors) {
                for name in self.anchors[0].keys() {
                    let Some((shape, values)) = tensors.get(&format!("{prefix}{name}")) else {
                        return Err(TrainError::Checkpoint {
                            what: format!("Lisa's anchor `{prefix}{name}` is missing"),
                        });
                    };
                    slot.insert(name.clone(), device_tensor(shape, values, &device));
                }
            }
            self.anchors = anchors;
        }
        self.optimizer = AdamW::import(tensors, state.step, &device);
        self.state = state;
        Ok(())
    }
}

/// What one step computed: its gradients, loss terms and token counts.
struct Pass {
    grads: BTreeMap<String, Tensor<2>>,
    terms: BTreeMap<String, f64>,
    /// Padded tokens processed.
    tokens: usize,
    /// Response tokens trained on.
    target_tokens: usize,
    state: Option<LisaState>,
}

impl Pass {
    fn new(batch: &Batch) -> Self {
        Self {
            grads: BTreeMap::new(),
            terms: BTreeMap::new(),
            tokens: batch.rows * batch.width,
            target_tokens: batch.target_tokens(),
            state: None,
        }
    }

    fn record(&mut self, values: Vec<(&'static str, f64)>) {
        for (name, value) in values {
            *self.terms.entry(name.to_owned()).or_default() += value;
        }
    }
}

/// Seeds of the second loaders, apart from the main one's.
const HARMFUL_SALT: u64 = 0xB005_7E12_0000_0001;
const GUIDE_SALT: u64 = 0x0115_A000_0000_0002;

/// Micro-batch `index` (and its epoch) of a loader that reshuffles `examples` every epoch
/// (seeded by `seed` and the epoch) and cycles forever; the last batch of an epoch may be short.
pub fn cycled_batch(
    examples: &[Encoded],
    batch_size: usize,
    seed: u64,
    index: usize,
    pad: u32,
    min_width: usize,
) -> (Batch, usize) {
    let per_epoch = examples.len().div_ceil(batch_size).max(1);
    let epoch = index / per_epoch;
    let within = index % per_epoch;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = SplitMix64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let start = (within * batch_size).min(order.len());
    let end = (start + batch_size).min(order.len());
    let rows: Vec<&Encoded> = order[start..end].iter().map(|&i| &examples[i]).collect();
    (Batch::pad(&rows, pad, min_width), epoch)
}

/// `model` with the named weights replaced.
fn with_weights(model: &Llama, weights: &Named) -> Llama {
    let mut out = model.clone();
    out.visit_mut(&mut |name, param| {
        if let Some(w) = weights.get(name) {
            *param = w.clone();
        }
    });
    out
}

/// Vaccine's step: the perturbation from a first pass, then the parameter gradients of the
/// objective with the attention outputs perturbed.
fn vaccine_gradients(
    model: &Llama,
    objective: &Objective,
    batch: &Batch,
    rho: f64,
    trainable: &dyn Fn(&str) -> bool,
) -> (BTreeMap<String, Tensor<2>>, Vec<(&'static str, f64)>) {
    let perturb = vaccine_perturbation(model, batch, rho);
    gradients(model, trainable, |m| {
        objective.terms_perturbed(m, batch, trainable, &perturb)
    })
}

fn anchor_index(state: LisaState) -> usize {
    match state {
        LisaState::Align => 0,
        LisaState::User => 1,
    }
}

const ANCHOR_PREFIXES: [&str; 2] = ["anchor.align/", "anchor.user/"];

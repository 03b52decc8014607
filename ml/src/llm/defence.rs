//! Harmful-fine-tuning defences as training-step variants of the one [`Trainer`]
//! (`super::train::Trainer`): Booster and Vaccine at alignment time, Lisa at fine-tuning time.
//!
//! - Booster: `g = ∇f(w) + λ·(∇h(w) − ∇h(w̃))`, `w̃ = w − α·∇h(w)/(‖∇h(w)‖ + 1e-7)`, the norm
//!   global over every trainable tensor; three passes per step.
//! - Vaccine: the loss's gradient with respect to every attention output, scaled to a global
//!   norm ρ, is added to those outputs in a second pass whose parameter gradients are used.
//! - Lisa: bi-state optimisation (K1 alignment steps on the provider's guide data, K2 steps on
//!   the user's data, one optimiser) with a proximal term `ρ/2·‖w − anchor‖²` towards the
//!   iterate at which the current state was entered, off during the first tenth of the steps.
//!
//! The arithmetic lives in free functions over named tensors, so it can be checked on toy
//! losses; the trainer wires them to the model.

use std::collections::BTreeMap;

use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::model::{ForwardOptions, Llama, lm_loss};
use super::range::{self, RangeError};
use super::train::{Batch, scalar};

/// Named tensors: trainable weights or their gradients.
pub type Named = BTreeMap<String, Tensor<2>>;

/// Booster's settings (the reference's defaults: λ 5, α 0.1, harmful batch 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoosterConfig {
    /// λ: weight of the harmful-perturbation attenuation.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// α: length of the simulated normalised harmful step.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Examples per harmful batch (own shuffled loader, cycled).
    #[serde(default = "default_harmful_batch")]
    pub harmful_batch_size: usize,
    /// "Booster + Vaccine": the alignment pass is Vaccine's two-pass step with this ρ.
    #[serde(default)]
    pub perturb_aware: Option<f64>,
}

fn default_lambda() -> f64 {
    5.0
}
fn default_alpha() -> f64 {
    0.1
}
fn default_harmful_batch() -> usize {
    10
}

impl Default for BoosterConfig {
    fn default() -> Self {
        Self {
            lambda: default_lambda(),
            alpha: default_alpha(),
            harmful_batch_size: default_harmful_batch(),
            perturb_aware: None,
        }
    }
}

impl BoosterConfig {
    /// Checks λ, α, the harmful batch and ρ (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::real(
            format_args!("{key}.lambda"),
            self.lambda,
            0.0..=range::MAX_WEIGHT,
        )?;
        range::real(
            format_args!("{key}.alpha"),
            self.alpha,
            0.0..=range::MAX_WEIGHT,
        )?;
        range::count(
            format_args!("{key}.harmful_batch_size"),
            self.harmful_batch_size,
            1..=range::MAX_BATCH,
        )?;
        match self.perturb_aware {
            Some(rho) => range::real(
                format_args!("{key}.perturb_aware"),
                rho,
                0.0..=range::MAX_WEIGHT,
            ),
            None => Ok(()),
        }
    }
}

/// Vaccine's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaccineConfig {
    /// ρ: global norm of the perturbation (the Booster repository's scripts use 5).
    #[serde(default = "default_vaccine_rho")]
    pub rho: f64,
}

fn default_vaccine_rho() -> f64 {
    5.0
}

impl Default for VaccineConfig {
    fn default() -> Self {
        Self {
            rho: default_vaccine_rho(),
        }
    }
}

impl VaccineConfig {
    /// Checks ρ (`key`: the table's dotted path).
    ///
    /// # Errors
    /// ρ out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::real(format_args!("{key}.rho"), self.rho, 0.0..=range::MAX_WEIGHT)
    }
}

/// Lisa's settings (the reference's defaults: K1 100, K2 900, ρ 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LisaConfig {
    /// K1: steps per alignment state.
    #[serde(default = "default_k1")]
    pub align_steps: usize,
    /// K2: steps per user state.
    #[serde(default = "default_k2")]
    pub user_steps: usize,
    /// ρ: weight of the proximal term (0: plain bi-state optimisation).
    #[serde(default = "default_lisa_rho")]
    pub rho: f64,
}

fn default_k1() -> usize {
    100
}
fn default_k2() -> usize {
    900
}
fn default_lisa_rho() -> f64 {
    1.0
}

impl Default for LisaConfig {
    fn default() -> Self {
        Self {
            align_steps: default_k1(),
            user_steps: default_k2(),
            rho: default_lisa_rho(),
        }
    }
}

impl LisaConfig {
    /// Checks K1, K2 and ρ (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::count(
            format_args!("{key}.align_steps"),
            self.align_steps,
            1..=range::MAX_STEPS,
        )?;
        range::count(
            format_args!("{key}.user_steps"),
            self.user_steps,
            1..=range::MAX_STEPS,
        )?;
        range::real(format_args!("{key}.rho"), self.rho, 0.0..=range::MAX_WEIGHT)
    }
}

/// Lisa's two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LisaState {
    /// Minimising the alignment loss on the provider's guide data.
    Align,
    /// Minimising the user's task loss.
    User,
}

/// Which data a Lisa step trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LisaBatch {
    /// The next guide (alignment) batch; this step's user batch is skipped.
    Guide,
    /// This step's user batch.
    User,
}

/// What one Lisa step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LisaStep {
    /// The state the step runs in.
    pub state: LisaState,
    /// The data it trains on.
    pub batch: LisaBatch,
    /// The anchor to set to the current weights before the step: the state just left, whose
    /// last iterate is the proximal centre of the state just entered.
    pub refresh: Option<LisaState>,
    /// Whether the proximal term is on (after the first tenth of the steps).
    pub proximal: bool,
}

/// Lisa's control flow (§C.3 of the spec): which state each step runs in, when anchors are
/// refreshed, whether the proximal term is on. Saved with checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LisaSchedule {
    /// The current state.
    pub state: LisaState,
    /// Steps since the state was entered.
    pub clock: usize,
    /// Steps taken.
    pub step: usize,
    /// Whether there is guide data to align on (without, every step is a user step).
    pub guide: bool,
}

impl LisaSchedule {
    /// The schedule of a run: it starts aligning when there are alignment steps and guide data.
    #[must_use]
    pub fn new(config: &LisaConfig, has_guide: bool) -> Self {
        Self {
            state: if config.align_steps > 0 && has_guide {
                LisaState::Align
            } else {
                LisaState::User
            },
            clock: 0,
            step: 0,
            guide: has_guide,
        }
    }

    /// Decides step `self.step` of `total` and advances.
    pub fn next(&mut self, config: &LisaConfig, total: usize) -> LisaStep {
        let (k1, k2) = (config.align_steps, config.user_steps);
        let mut refresh = None;
        let batch = match self.state {
            LisaState::Align => {
                if k1 == 0 || (self.clock.is_multiple_of(k1) && self.step != 0) {
                    self.state = LisaState::User;
                    refresh = Some(LisaState::Align);
                    self.clock = 0;
                    LisaBatch::User
                } else {
                    LisaBatch::Guide
                }
            }
            LisaState::User => {
                if self.guide && k1 > 0 && k2 > 0 && self.clock.is_multiple_of(k2) && self.step != 0
                {
                    self.state = LisaState::Align;
                    refresh = Some(LisaState::User);
                    self.clock = 0;
                    LisaBatch::Guide
                } else {
                    LisaBatch::User
                }
            }
        };
        // The reference compares with a float: `step > 0.1 * total`.
        let proximal = config.rho > 0.0 && self.step as f64 > 0.1 * total as f64;
        let decided = LisaStep {
            state: self.state,
            batch,
            refresh,
            proximal,
        };
        self.step += 1;
        self.clock += 1;
        decided
    }
}

/// The global L2 norm of named tensors (the norm of the per-tensor norms).
#[must_use]
pub fn global_norm(tensors: &Named) -> f64 {
    tensors
        .values()
        .map(|t| f64::from(scalar(&t.clone().square().sum())))
        .sum::<f64>()
        .sqrt()
}

/// What Booster's two harmful passes found.
#[derive(Debug, Clone)]
pub struct HarmfulPasses {
    /// `∇h(w)`.
    pub gradient: Named,
    /// `∇h(w̃)`.
    pub perturbed_gradient: Named,
    /// `h(w)`.
    pub loss: f64,
    /// `h(w̃)`.
    pub perturbed_loss: f64,
    /// `‖∇h(w)‖`.
    pub norm: f64,
}

/// Booster's passes 1 and 2: `harmful(w)` returns `(∇h(w), h(w))`; it is called at `weights`
/// and at `w̃ = w − α·∇h/(‖∇h‖ + 1e-7)`. `weights` are not changed: the perturbed weights are
/// new tensors, so "restoring" them is exact.
pub fn harmful_passes(
    weights: &Named,
    alpha: f64,
    harmful: &mut dyn FnMut(&Named) -> (Named, f64),
) -> HarmfulPasses {
    let (gradient, loss) = harmful(weights);
    let norm = global_norm(&gradient);
    let step = alpha / (norm + 1e-7);
    let perturbed: Named = weights
        .iter()
        .map(|(name, w)| {
            let w = match gradient.get(name) {
                Some(g) => w.clone() - g.clone().mul_scalar(step),
                None => w.clone(),
            };
            (name.clone(), w)
        })
        .collect();
    let (perturbed_gradient, perturbed_loss) = harmful(&perturbed);
    HarmfulPasses {
        gradient,
        perturbed_gradient,
        loss,
        perturbed_loss,
        norm,
    }
}

/// Booster's assembled gradient `∇f + λ·(∇h(w) − ∇h(w̃))`.
#[must_use]
pub fn booster_gradient(alignment: Named, passes: &HarmfulPasses, lambda: f64) -> Named {
    if lambda == 0.0 {
        return alignment;
    }
    alignment
        .into_iter()
        .map(|(name, g)| {
            let g = match (
                passes.gradient.get(&name),
                passes.perturbed_gradient.get(&name),
            ) {
                (Some(h), Some(hp)) => g + (h.clone() - hp.clone()).mul_scalar(lambda),
                _ => g,
            };
            (name, g)
        })
        .collect()
}

/// Lisa's proximal term `ρ/2·Σ‖w − anchor‖²` over the trainable weights (an autodiff scalar
/// when `weights` are autodiff leaves; the anchors are constants).
///
/// # Shapes
/// Every weight and its anchor have the same shape → `[1]`.
#[must_use]
pub fn proximal(weights: &Named, anchors: &Named, rho: f64) -> Option<Tensor<1>> {
    weights
        .iter()
        .filter_map(|(name, w)| {
            anchors
                .get(name)
                .map(|a| (w.clone() - a.clone().inner()).square().sum())
        })
        .reduce(|a, b| a + b)
        .map(|t| t.mul_scalar(rho / 2.0))
}

/// A batch's ids as a tensor on `model`'s device.
///
/// # Shapes
/// → `[rows, width]`.
#[must_use]
pub fn batch_ids(model: &Llama, batch: &Batch) -> Tensor<2, Int> {
    Tensor::from_data(
        TensorData::new(batch.ids.clone(), [batch.rows, batch.width]),
        &model.device(),
    )
}

/// Vaccine's perturbation of `batch`: per layer, `ρ·∇_{e_l} L / (‖∇_e L‖ + 1e-7)`, the
/// gradient of the language-modelling loss with respect to the attention output `e_l`, the norm
/// global over the layers. The model's weights get no gradient from this pass.
///
/// # Shapes
/// → per layer `[rows·width, d]`.
#[must_use]
pub fn vaccine_perturbation(model: &Llama, batch: &Batch, rho: f64) -> Vec<Tensor<2>> {
    let device = model.device();
    let shape = [batch.rows * batch.width, model.config.hidden_size];
    let leaves: Vec<Tensor<2>> = model
        .blocks
        .iter()
        .map(|_| Tensor::zeros(shape, &device).autodiff().require_grad())
        .collect();
    let out = model.forward_perturbed(
        batch_ids(model, batch),
        None,
        ForwardOptions {
            train: true,
            last_only: false,
        },
        &leaves,
    );
    let grads = lm_loss(out.logits, &batch.labels).backward();
    let gradients: Vec<Tensor<2>> = leaves
        .iter()
        .map(|leaf| {
            leaf.grad(&grads)
                .unwrap_or_else(|| Tensor::zeros(shape, &device))
        })
        .collect();
    let norm = gradients
        .iter()
        .map(|g| f64::from(scalar(&g.clone().square().sum())))
        .sum::<f64>()
        .sqrt();
    let scale = rho / (norm + 1e-7);
    gradients.into_iter().map(|g| g.mul_scalar(scale)).collect()
}

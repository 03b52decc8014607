//! Chameleon's P3-Mask generator: one 112×112×3 mask δ per user, learned by signed gradient
//! steps through an ensemble of face-recognition models so that every masked training face
//! turns away from its clean embedding, under an L∞ bound and a DSSIM hinge.
//!
//! The baseline is the official code's: δ uniform in ±0.255 to start, batches of 4, the sign of
//! the batch's gradient times 0.255 per step, δ clipped to ±ε (16 on the 0..255 scale), 50
//! epochs over the reshuffled faces; loss −Σₖ angle(fₖ(x′), fₖ(x)) + λ·max(DSSIM − τ, 0) with
//! λ halved, doubled or reset after every batch. Two things differ on purpose: the angle is
//! 2·asin(‖u − v‖/2) (the official `acos` of the dot product has no usable gradient near 0), and
//! optional augmentations (rescale, blur, JPEG) make the mask survive what photos go through.
//!
//! Every face passes through the deployment's geometry during training: x′ = clip(x + δ) is
//! carried to the face's canvas, kept only on the face rectangle and brought back, as the
//! applier will do (see [`fuselab_shared::mask::FaceCanvas::round_trip`]); the clean face takes
//! the same round trip, so DSSIM and the angle measure the mask, not the resampling.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use fuselab_shared::mask::{FaceCanvas, MASK_LEN, MASK_SIDE, bilinear_matrix, quality};
use fuselab_shared::rng::SplitMix64 as Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::face::{FaceEmbedder, l2_normalize};

mod update;

pub use update::{Moments, Update};

/// Robustness augmentations, each applied to a masked face with probability ½ per step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Shrink the face by a factor drawn from this range and enlarge it back.
    pub rescale: Option<[f32; 2]>,
    /// Gaussian blur with σ drawn from this range (pixels of the 112×112 face).
    pub blur: Option<[f32; 2]>,
    /// JPEG round trip at a quality drawn from this range; its gradient passes straight
    /// through (BPDA), since the codec has none.
    pub jpeg: Option<[u8; 2]>,
    /// Rotation about the face's centre by an angle drawn from ±this many degrees (three
    /// shears, each a bilinear shift of every row or column).
    #[serde(default)]
    pub rotate: Option<f32>,
}

/// What each masked face is pushed away from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Its own clean embedding (Chameleon's reference).
    #[default]
    Chameleon,
    /// The person's class centre: the normalised mean of every training face's clean embedding,
    /// per model (OPOM's class-centre subspace, Zhong & Deng 2022), so the mask moves every face
    /// away from the identity rather than each photo away from itself.
    Centre,
}

impl Objective {
    /// Every objective, in the order the CLI lists them.
    pub const ALL: [Self; 2] = [Self::Chameleon, Self::Centre];

    /// The name the CLI and the configuration use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Chameleon => "chameleon",
            Self::Centre => "centre",
        }
    }
}

/// Steps per round when training for a number of steps: the cadence of reports and checkpoints.
pub const ROUND_STEPS: usize = 10;

/// Most steps a training may ask for.
pub const MAX_STEPS: usize = 1_000_000;

/// The generator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskConfig {
    /// L∞ bound of δ on the 0..255 scale.
    pub epsilon: f32,
    /// Signed step size on the 0..255 scale (also the half-width of δ's initialisation).
    pub step: f32,
    /// Faces per step.
    pub batch: usize,
    /// Passes over the reshuffled faces (the reference's budget; used when `steps` is `None`).
    pub epochs: usize,
    /// Steps in all, each on `batch` faces drawn with replacement: a budget that does not
    /// depend on how many photos there are. `None`: `epochs` passes.
    #[serde(default)]
    pub steps: Option<usize>,
    /// How a step moves δ.
    #[serde(default)]
    pub update: Update,
    /// What each face is pushed away from.
    #[serde(default)]
    pub objective: Objective,
    /// Input diversity (DI-FGSM, Xie et al. 2019): the probability that a face reaches the
    /// models shrunk by a random factor in [0.9, 1] and placed at a random offset on a black
    /// 112×112 canvas, for masks that transfer to other models. 0: off.
    #[serde(default)]
    pub diversity: f32,
    /// DSSIM allowed before the perceptibility hinge costs anything.
    pub tau: f32,
    /// Seeds δ's initialisation, the shuffles and the augmentations.
    pub seed: u64,
    /// Robustness augmentations.
    pub augment: Augment,
}

impl MaskConfig {
    /// Checks every setting's range, as the trainer does before it starts.
    ///
    /// # Errors
    /// The first setting out of range, named.
    pub fn validate(&self) -> Result<(), MaskError> {
        validate(self)
    }
}

impl Default for MaskConfig {
    /// The official code's baseline, without augmentations.
    fn default() -> Self {
        Self {
            epsilon: 16.0,
            step: 0.255,
            batch: 4,
            epochs: 50,
            steps: None,
            update: Update::Sign,
            objective: Objective::Chameleon,
            diversity: 0.0,
            tau: 0.03,
            seed: 2023,
            augment: Augment::default(),
        }
    }
}

/// What goes wrong before training starts.
#[derive(Debug, Error, PartialEq)]
pub enum MaskError {
    /// No faces.
    #[error("no training faces: a mask needs at least one photo with a face")]
    NoFaces,
    /// No models.
    #[error("no face-recognition models to train against")]
    NoModels,
    /// A setting outside its range.
    #[error("{setting} must be {expected}, not {found}")]
    Setting {
        /// The option.
        setting: &'static str,
        /// What is allowed.
        expected: &'static str,
        /// The value given.
        found: String,
    },
    /// A resumed state that does not fit.
    #[error("the checkpoint holds {found} mask values, expected {MASK_LEN}")]
    State {
        /// Values found.
        found: usize,
    },
}

/// Re-encodes a face as JPEG and decodes it again; the backend provides the codec.
pub trait Recompress {
    /// `face`: interleaved RGB, 112×112; returns the decoded pixels, same layout.
    fn jpeg(&self, face: &[u8], quality: u8) -> Vec<u8>;
}

/// One training face: the boxed 112×112 crop and the canvas it was cut from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingFace {
    /// Interleaved RGB, 112×112, 0..255 ([`FaceCanvas::boxed_face`]).
    pub clean: Vec<f32>,
    /// Where the face sits in its photo.
    pub canvas: FaceCanvas,
}

/// Where training stands; everything needed to continue after a kill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskState {
    /// Epochs completed.
    pub epoch: usize,
    /// δ, interleaved 112×112×3 on the 0..255 scale.
    pub delta: Vec<f32>,
    /// The perceptibility weight.
    pub lambda: f32,
    /// The random generator's state.
    pub rng: u64,
    /// Steps taken.
    #[serde(default)]
    pub steps: usize,
    /// The update rule's memory.
    #[serde(default)]
    pub moments: Moments,
}

/// The figures of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step within the epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Mean DSSIM of the batch (after the round trip, before augmentations).
    pub dssim: f32,
    /// Per model, the batch's mean angle between masked and clean embeddings, radians.
    pub angles: Vec<f32>,
    /// λ after this step's adaptation.
    pub lambda: f32,
}

/// The figures of one epoch (or round of [`ROUND_STEPS`] steps): means over its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch or round.
    pub epoch: usize,
    /// Steps taken so far.
    #[serde(default)]
    pub steps_done: usize,
    /// Mean DSSIM.
    pub dssim: f32,
    /// Per model, the mean angle, radians.
    pub angles: Vec<f32>,
    /// λ at the end of the epoch.
    pub lambda: f32,
}

/// The mask as handed out, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMask {
    /// δ, interleaved 112×112×3.
    pub delta: Vec<f32>,
    /// Its mean DSSIM on the training faces.
    pub dssim: f64,
    /// The mean DSSIM of δ as training left it.
    pub trained_dssim: f64,
    /// The factor δ was scaled by to bring DSSIM within 1.1τ (1: not scaled).
    pub scale: f32,
}

/// A face's tensors, prepared once.
struct Prepared {
    /// `[1, 3, 112, 112]`.
    clean: Tensor<4>,
    /// The round trip's maps: `rows`, `colsᵀ`, `[1, 1, 112, 112]` each.
    rows: Tensor<4>,
    cols_t: Tensor<4>,
    /// The round trip's constant part, `[1, 3, 112, 112]`.
    constant: Tensor<4>,
    /// The clean face through the same round trip, `[1, 3, 112, 112]`: what the masked face is
    /// compared with.
    reference: Tensor<4>,
    /// Per model, what the masked face is pushed away from (its own clean embedding, or the
    /// class centre), unit length, `[1, d]`.
    targets: Vec<Tensor<2>>,
}

impl Prepared {
    /// A face's clean tensor, round-trip maps and, per model, its clean embedding.
    fn new(
        face: &TrainingFace,
        models: &[&dyn FaceEmbedder],
        inputs: &[(Tensor<4>, Tensor<4>)],
        device: &Device,
    ) -> Self {
        let clean = planar(&face.clean, device);
        let [rows, cols, full] = face.canvas.round_trip();
        let rows = matrix(rows, MASK_SIDE, MASK_SIDE, device);
        let cols_t = matrix(
            transposed(&cols, MASK_SIDE, MASK_SIDE),
            MASK_SIDE,
            MASK_SIDE,
            device,
        );
        let full_t = matrix(
            transposed(&full, MASK_SIDE, MASK_SIDE),
            MASK_SIDE,
            MASK_SIDE,
            device,
        );
        let full = matrix(full, MASK_SIDE, MASK_SIDE, device);
        let reference = separable(clean.clone(), &full, &full_t);
        let constant = reference.clone() - separable(clean.clone(), &rows, &cols_t);
        let targets = models
            .iter()
            .zip(inputs)
            .map(|(m, (r, c))| m.embed(separable(reference.clone(), r, c)))
            .collect();
        Prepared {
            clean,
            rows,
            cols_t,
            constant,
            reference,
            targets,
        }
    }
}

/// The generator: faces, models and state.
#[allow(missing_debug_implementations)] // Holds trait objects and tensors; `state()` is what to inspect.
pub struct MaskTrainer<'a> {
    config: MaskConfig,
    models: Vec<&'a dyn FaceEmbedder>,
    faces: Vec<Prepared>,
    /// Per model, its input resize maps: `rows [1, 1, r, 112]`, `colsᵀ [1, 1, 112, c]`.
    inputs: Vec<(Tensor<4>, Tensor<4>)>,
    window: Tensor<4>,
    recompress: Option<&'a dyn Recompress>,
    device: Device,
    state: MaskState,
    /// The faces on the CPU with their round-tripped clean copies, for measuring DSSIM.
    measured: Vec<(TrainingFace, Vec<f32>)>,
}

/// An interleaved 112×112×3 buffer as a `[1, 3, 112, 112]` tensor.
fn planar(values: &[f32], device: &Device) -> Tensor<4> {
    let plane = MASK_SIDE * MASK_SIDE;
    let mut out = vec![0.0_f32; MASK_LEN];
    for (i, px) in values.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c];
        }
    }
    Tensor::from_data(TensorData::new(out, [1, 3, MASK_SIDE, MASK_SIDE]), device)
}

/// A `[1, 3, 112, 112]` tensor's values, interleaved.
fn interleaved(tensor: Tensor<4>) -> Vec<f32> {
    let values: Vec<f32> = tensor.into_data().iter::<f32>().collect();
    let plane = MASK_SIDE * MASK_SIDE;
    (0..plane)
        .flat_map(|i| [values[i], values[plane + i], values[2 * plane + i]])
        .collect()
}

fn matrix(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values, [1, 1, rows, cols]), device)
}

fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; m.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = m[i * cols + j];
        }
    }
    out
}

/// `rows · x · colsᵀ` for every image and channel.
///
/// # Shapes
/// - `x`: `[b, 3, h, w]`; `rows`: `[1 or b, 1, r, h]`; `cols_t`: `[1 or b, 1, w, c]`
/// - returns `[b, 3, r, c]`
fn separable(x: Tensor<4>, rows: &Tensor<4>, cols_t: &Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    let [_, _, out_rows, _] = rows.dims();
    let [_, _, _, out_cols] = cols_t.dims();
    rows.clone()
        .expand([batch, channels, out_rows, height])
        .matmul(x)
        .matmul(cols_t.clone().expand([batch, channels, width, out_cols]))
}

/// Normalised separable Gaussian kernel of `sigma`, radius ⌈3σ⌉, as a depthwise
/// `[3, 1, k, k]` weight.
fn gaussian(sigma: f32, device: &Device) -> Tensor<4> {
    // σ is at most a few pixels, so the radius is a small positive integer.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let radius = (3.0 * sigma).ceil().max(1.0) as usize;
    let k = 2 * radius + 1;
    #[allow(clippy::cast_precision_loss)]
    let g: Vec<f32> = (0..k)
        .map(|i| {
            let x = i as f32 - radius as f32;
            (-x * x / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = g.iter().sum();
    let mut w = Vec::with_capacity(3 * k * k);
    for _ in 0..3 {
        for a in &g {
            for b in &g {
                w.push(a * b / (sum * sum));
            }
        }
    }
    Tensor::from_data(TensorData::new(w, [3, 1, k, k]), device)
}

/// Shifts every row `r` of the faces by `shear · (r − centre)` pixels, bilinearly, with edge
/// pixels repeated: one of the three shears of a rotation.
///
/// # Shapes
/// - `faces`: `[b, 3, 112, 112]`; returns the same
fn shear_rows(faces: Tensor<4>, shear: f32, device: &Device) -> Tensor<4> {
    let n = MASK_SIDE;
    // Per row, the n×n matrix taking the input row to the output row, transposed (in, out).
    let mut weights = vec![0.0_f32; n * n * n];
    #[allow(clippy::cast_precision_loss)]
    let centre = (n as f32 - 1.0) / 2.0;
    for r in 0..n {
        #[allow(clippy::cast_precision_loss)]
        let shift = shear * (r as f32 - centre);
        for c in 0..n {
            #[allow(clippy::cast_precision_loss)]
            let p = (c as f32 + shift).clamp(0.0, (n - 1) as f32);
            // Clamped to 0..n−1 first, so the casts are exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let x0 = p.floor() as usize;
            let x1 = (x0 + 1).min(n - 1);
            #[allow(clippy::cast_precision_loss)]
            let w = p - x0 as f32;
            weights[(r * n + x0) * n + c] += 1.0 - w;
            weights[(r * n + x1) * n + c] += w;
        }
    }
    let [b, channels, _, _] = faces.dims();
    let matrices = Tensor::<4>::from_data(TensorData::new(weights, [1, n, n, n]), device).expand([
        b * channels,
        n,
        n,
        n,
    ]);
    faces
        .reshape([b * channels, n, 1, n])
        .matmul(matrices)
        .reshape([b, channels, n, n])
}

/// Rotation by `angle` radians about the centre, as three shears (x, y, x).
///
/// # Shapes
/// - `faces`: `[b, 3, 112, 112]`; returns the same
fn rotate(faces: Tensor<4>, angle: f32, device: &Device) -> Tensor<4> {
    let (a, b) = (-(angle / 2.0).tan(), angle.sin());
    let x = shear_rows(faces, a, device);
    let y = shear_rows(x.swap_dims(2, 3), b, device).swap_dims(2, 3);
    shear_rows(y, a, device)
}

/// Per-image mean SSIM with TensorFlow's conventions (valid 11×11 Gaussian windows, σ 1.5).
///
/// # Shapes
/// - `a`, `b`: `[batch, 3, h, w]`; `window`: `[3, 1, 11, 11]`; returns `[batch]`
fn ssim(a: Tensor<4>, b: Tensor<4>, window: &Tensor<4>) -> Tensor<1> {
    let filter = |x: Tensor<4>| {
        conv2d(
            x,
            window.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 3),
        )
    };
    let (c1, c2) = ((0.01_f32 * 255.0).powi(2), (0.03_f32 * 255.0).powi(2));
    let mu_a = filter(a.clone());
    let mu_b = filter(b.clone());
    let aa = filter(a.clone() * a.clone());
    let bb = filter(b.clone() * b.clone());
    let ab = filter(a * b);
    let cross = mu_a.clone() * mu_b.clone();
    let (square_a, square_b) = (mu_a.clone() * mu_a, mu_b.clone() * mu_b);
    let luminance = (cross.clone().mul_scalar(2.0).add_scalar(c1))
        / (square_a.clone() + square_b.clone()).add_scalar(c1);
    let structure = ((ab - cross).mul_scalar(2.0).add_scalar(c2))
        / ((aa - square_a) + (bb - square_b)).add_scalar(c2);
    let map = luminance * structure;
    let [n, _, _, _] = map.dims();
    map.mean_dims(&[1, 2, 3]).reshape([n])
}

impl<'a> MaskTrainer<'a> {
    /// Prepares the faces (clean embeddings, round-trip maps) and starts from `state`, or from
    /// a fresh δ drawn from the seed.
    ///
    /// # Errors
    /// No faces or models, a setting out of range, or a state of the wrong size.
    pub fn new(
        config: MaskConfig,
        models: Vec<&'a dyn FaceEmbedder>,
        faces: &[TrainingFace],
        state: Option<MaskState>,
        recompress: Option<&'a dyn Recompress>,
        device: &Device,
    ) -> Result<Self, MaskError> {
        validate(&config)?;
        if faces.is_empty() {
            return Err(MaskError::NoFaces);
        }
        if models.is_empty() {
            return Err(MaskError::NoModels);
        }
        let inputs: Vec<(Tensor<4>, Tensor<4>)> = models
            .iter()
            .map(|m| {
                let [r, c] = m.info().input;
                (
                    matrix(bilinear_matrix(r, MASK_SIDE), r, MASK_SIDE, device),
                    matrix(
                        transposed(&bilinear_matrix(c, MASK_SIDE), c, MASK_SIDE),
                        MASK_SIDE,
                        c,
                        device,
                    ),
                )
            })
            .collect();
        let mut prepared: Vec<Prepared> = faces
            .iter()
            .map(|face| Prepared::new(face, &models, &inputs, device))
            .collect();
        if config.objective == Objective::Centre {
            for k in 0..models.len() {
                let centre = class_centre(prepared.iter().map(|p| p.targets[k].clone()).collect());
                for face in &mut prepared {
                    face.targets[k] = centre.clone();
                }
            }
        }
        let state = match state {
            Some(state) if state.delta.len() != MASK_LEN => {
                return Err(MaskError::State {
                    found: state.delta.len(),
                });
            }
            Some(state) => state,
            None => {
                let mut rng = Rng(config.seed);
                let delta = (0..MASK_LEN)
                    .map(|_| rng.between([-config.step, config.step]))
                    .collect();
                MaskState {
                    epoch: 0,
                    delta,
                    lambda: 1.0,
                    rng: rng.0,
                    steps: 0,
                    moments: Moments::default(),
                }
            }
        };
        Ok(Self {
            window: gaussian(1.5, device),
            config,
            models,
            faces: prepared,
            inputs,
            recompress,
            device: device.clone(),
            state,
            measured: faces
                .iter()
                .map(|face| {
                    let reference = face.canvas.through_canvas(&face.clean, &face.clean);
                    (face.clone(), reference)
                })
                .collect(),
        })
    }

    /// Where training stands.
    pub fn state(&self) -> &MaskState {
        &self.state
    }

    /// Whether every epoch (or step) has run.
    pub fn finished(&self) -> bool {
        match self.config.steps {
            Some(total) => self.state.steps >= total,
            None => self.state.epoch >= self.config.epochs,
        }
    }

    /// Epochs, or rounds of [`ROUND_STEPS`] steps, in the whole training.
    pub fn rounds(&self) -> usize {
        self.config
            .steps
            .map_or(self.config.epochs, |total| total.div_ceil(ROUND_STEPS))
    }

    /// Steps in the whole training.
    pub fn total_steps(&self) -> usize {
        self.config
            .steps
            .unwrap_or_else(|| self.config.epochs * self.faces.len().div_ceil(self.config.batch))
    }

    /// The settings.
    pub fn config(&self) -> &MaskConfig {
        &self.config
    }

    /// One pass over the reshuffled faces, or with `steps` set, a round of up to
    /// [`ROUND_STEPS`] steps on batches drawn with replacement; `on_step` sees every step's
    /// figures.
    pub fn epoch(&mut self, on_step: &mut dyn FnMut(&StepReport)) -> EpochReport {
        let mut rng = Rng(self.state.rng);
        let n = self.faces.len();
        let batches: Vec<Vec<usize>> = match self.config.steps {
            None => {
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i + 1));
                }
                order
                    .chunks(self.config.batch)
                    .map(<[usize]>::to_vec)
                    .collect()
            }
            Some(total) => {
                let round = ROUND_STEPS.min(total.saturating_sub(self.state.steps));
                (0..round)
                    .map(|_| (0..self.config.batch).map(|_| rng.below(n)).collect())
                    .collect()
            }
        };
        let steps = batches.len();
        let epoch = self.state.epoch + 1;
        let mut sums = (0.0_f32, vec![0.0_f32; self.models.len()]);
        for (step, batch) in batches.iter().enumerate() {
            let (dssim, angles) = self.step(batch, &mut rng);
            self.adapt_lambda(dssim);
            sums.0 += dssim;
            for (s, a) in sums.1.iter_mut().zip(&angles) {
                *s += a;
            }
            on_step(&StepReport {
                epoch,
                step: step + 1,
                steps,
                dssim,
                angles,
                lambda: self.state.lambda,
            });
        }
        self.state.epoch = epoch;
        self.state.rng = rng.0;
        #[allow(clippy::cast_precision_loss)]
        let n = steps.max(1) as f32;
        EpochReport {
            epoch,
            steps_done: self.state.steps,
            dssim: sums.0 / n,
            angles: sums.1.iter().map(|s| s / n).collect(),
            lambda: self.state.lambda,
        }
    }

    /// The mask to hand out: δ as training left it when its mean DSSIM on the training faces
    /// is within 1.1τ, otherwise δ scaled down (by bisection on the factor) until it is. The
    /// official rule lets DSSIM hover above τ (λ falls while DSSIM is under τ, so every climb
    /// overshoots); this last step makes the budget hold for the mask users get.
    pub fn final_mask(&self) -> FinalMask {
        let limit = 1.1 * f64::from(self.config.tau);
        let delta = &self.state.delta;
        let trained = self.mean_dssim(delta);
        if trained <= limit {
            return FinalMask {
                delta: delta.clone(),
                dssim: trained,
                trained_dssim: trained,
                scale: 1.0,
            };
        }
        let scaled = |s: f32| delta.iter().map(|d| d * s).collect::<Vec<f32>>();
        let (mut low, mut high) = (0.0_f32, 1.0_f32);
        for _ in 0..14 {
            let mid = 0.5 * (low + high);
            if self.mean_dssim(&scaled(mid)) <= limit {
                low = mid;
            } else {
                high = mid;
            }
        }
        let delta = scaled(low);
        FinalMask {
            dssim: self.mean_dssim(&delta),
            delta,
            trained_dssim: trained,
            scale: low,
        }
    }

    /// The mean DSSIM `delta` costs the training faces, measured as training sees them (after
    /// the canvas round trip), on the CPU.
    pub fn mean_dssim(&self, delta: &[f32]) -> f64 {
        let total: f64 = self
            .measured
            .iter()
            .map(|(face, reference)| {
                let masked: Vec<f32> = face
                    .clean
                    .iter()
                    .zip(delta)
                    .map(|(x, d)| (x + d).clamp(0.0, 255.0))
                    .collect();
                let seen = face.canvas.through_canvas(&face.clean, &masked);
                quality::dssim(&seen, reference, MASK_SIDE, MASK_SIDE).unwrap_or(0.0)
            })
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let mean = total / self.measured.len().max(1) as f64;
        mean
    }

    /// The official rule, after every batch: halve λ when DSSIM is well under τ, double it
    /// when well over, and reset it to 1 inside the ±10 % band.
    fn adapt_lambda(&mut self, dssim: f32) {
        let (tau, lambda) = (self.config.tau, self.state.lambda);
        self.state.lambda = if dssim <= 0.9 * tau && lambda >= 1.0 / 129.0 {
            lambda / 2.0
        } else if dssim >= 1.1 * tau && lambda <= 129.0 {
            lambda * 2.0
        } else {
            1.0
        };
    }

    /// One signed step on a batch; the batch's mean DSSIM and mean angle per model.
    fn step(&mut self, batch: &[usize], rng: &mut Rng) -> (f32, Vec<f32>) {
        let device = &self.device;
        let delta = planar(&self.state.delta, device).autodiff().require_grad();
        let faces: Vec<&Prepared> = batch.iter().map(|&i| &self.faces[i]).collect();
        let cat = |f: &dyn Fn(&Prepared) -> Tensor<4>| {
            Tensor::cat(faces.iter().map(|p| f(p)).collect(), 0)
        };
        let clean = cat(&|p| p.clean.clone());
        let rows = cat(&|p| p.rows.clone());
        let cols_t = cat(&|p| p.cols_t.clone());
        let constant = cat(&|p| p.constant.clone());
        let reference = cat(&|p| p.reference.clone());
        let masked = (clean + delta.clone()).clamp(0.0, 255.0);
        let seen = separable(masked, &rows, &cols_t) + constant;
        let dssim = ssim(seen.clone(), reference, &self.window)
            .neg()
            .add_scalar(1.0)
            .div_scalar(2.0);
        let attacked = self.augment(&seen, rng);
        let mut loss = (dssim.clone().sub_scalar(self.config.tau))
            .clamp_min(0.0)
            .mul_scalar(self.state.lambda)
            .sum();
        let mut angles = Vec::with_capacity(self.models.len());
        for (k, (model, (r, c))) in self.models.iter().zip(&self.inputs).enumerate() {
            let targets = Tensor::cat(faces.iter().map(|p| p.targets[k].clone()).collect(), 0);
            let u = l2_normalize(model.forward(separable(attacked.clone(), r, c)));
            let angle = angles_between(u, targets);
            angles.push(angle.clone().detach().mean().into_scalar::<f32>());
            loss = loss - angle.sum();
        }
        let gradients = loss.backward();
        let gradient = delta
            .grad(&gradients)
            .map_or_else(|| vec![0.0; MASK_LEN], interleaved);
        update::apply(
            self.config.update,
            &mut self.state.moments,
            &mut self.state.delta,
            &gradient,
            self.config.step,
            self.config.epsilon,
        );
        self.state.steps += 1;
        (dssim.detach().mean().into_scalar::<f32>(), angles)
    }

    /// The configured augmentations, each with probability ½ per face, then input diversity
    /// with its own probability.
    ///
    /// # Shapes
    /// - `faces`: `[b, 3, 112, 112]`; returns the same
    fn augment(&self, faces: &Tensor<4>, rng: &mut Rng) -> Tensor<4> {
        let augment = &self.config.augment;
        if *augment == Augment::default() && self.config.diversity <= 0.0 {
            return faces.clone();
        }
        let device = &self.device;
        let [b, _, _, _] = faces.dims();
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let mut face = faces.clone().slice([i..=i]);
            if let Some(range) = augment.rescale
                && rng.unit_f32() < 0.5
            {
                // Clamped to 8..=112, so the cast is exact.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let small = (rng.between(range) * MASK_SIDE as f32)
                    .round()
                    .clamp(8.0, 112.0) as usize;
                let down = bilinear_matrix(small, MASK_SIDE);
                let up = bilinear_matrix(MASK_SIDE, small);
                let mut through = vec![0.0_f32; MASK_SIDE * MASK_SIDE];
                for r in 0..MASK_SIDE {
                    for c in 0..MASK_SIDE {
                        through[r * MASK_SIDE + c] = (0..small)
                            .map(|k| up[r * small + k] * down[k * MASK_SIDE + c])
                            .sum();
                    }
                }
                let t = transposed(&through, MASK_SIDE, MASK_SIDE);
                face = separable(
                    face,
                    &matrix(through, MASK_SIDE, MASK_SIDE, device),
                    &matrix(t, MASK_SIDE, MASK_SIDE, device),
                );
            }
            if let Some(range) = augment.blur
                && rng.unit_f32() < 0.5
            {
                let kernel = gaussian(rng.between(range).max(0.1), device);
                let [_, _, k, _] = kernel.dims();
                let pad = k / 2;
                face = conv2d(
                    face,
                    kernel,
                    None,
                    ConvOptions::new([1, 1], [pad, pad], [1, 1], 3),
                );
            }
            if let Some(degrees) = augment.rotate
                && rng.unit_f32() < 0.5
            {
                face = rotate(face, rng.between([-degrees, degrees]).to_radians(), device);
            }
            if let (Some([lo, hi]), Some(codec)) = (augment.jpeg, self.recompress)
                && rng.unit_f32() < 0.5
            {
                let quality = lo + u8::try_from(rng.below(usize::from(hi - lo) + 1)).unwrap_or(0);
                let pixels: Vec<u8> = interleaved(face.clone().detach())
                    .iter()
                    // Clamped to 0..255 first, so the cast is exact.
                    .map(|v| {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let byte = v.round().clamp(0.0, 255.0) as u8;
                        byte
                    })
                    .collect();
                let decoded: Vec<f32> = codec
                    .jpeg(&pixels, quality)
                    .into_iter()
                    .map(f32::from)
                    .collect();
                let change = planar(&decoded, device) - face.clone().detach();
                face = face + change;
            }
            if self.config.diversity > 0.0 && rng.unit_f32() < self.config.diversity {
                face = diverse(face, rng, device);
            }
            out.push(face);
        }
        Tensor::cat(out, 0)
    }
}

/// The angle between unit rows, `2·asin(‖u − v‖/2)` (differentiable where the rows meet, unlike
/// `acos` of the dot product).
///
/// # Shapes
/// - `u`, `v`: `[b, d]`; returns `[b]`
fn angles_between(u: Tensor<2>, v: Tensor<2>) -> Tensor<1> {
    let [b, _] = u.dims();
    let chord = (u - v).square().sum_dim(1).add_scalar(1e-12).sqrt();
    chord
        .div_scalar(2.0)
        .clamp_max(1.0)
        .asin()
        .mul_scalar(2.0)
        .reshape([b])
}

/// The class centre of unit embeddings: their mean, scaled to unit length.
///
/// # Shapes
/// - `embeddings`: n × `[1, d]`; returns `[1, d]`
fn class_centre(embeddings: Vec<Tensor<2>>) -> Tensor<2> {
    l2_normalize(Tensor::cat(embeddings, 0).mean_dim(0))
}

/// DI-FGSM's transform: the face shrunk to a random side in [0.9·112, 112] and placed at a
/// random offset on a black 112×112 canvas (bilinear, as two matrices).
///
/// # Shapes
/// - `face`: `[1, 3, 112, 112]`; returns the same
fn diverse(face: Tensor<4>, rng: &mut Rng, device: &Device) -> Tensor<4> {
    const LEAST: usize = MASK_SIDE * 9 / 10;
    let side = LEAST + rng.below(MASK_SIDE - LEAST + 1);
    let placed = |offset: usize| {
        let shrink = bilinear_matrix(side, MASK_SIDE);
        let mut m = vec![0.0_f32; MASK_SIDE * MASK_SIDE];
        m[offset * MASK_SIDE..(offset + side) * MASK_SIDE].copy_from_slice(&shrink);
        m
    };
    let rows = placed(rng.below(MASK_SIDE - side + 1));
    let cols = placed(rng.below(MASK_SIDE - side + 1));
    let cols_t = transposed(&cols, MASK_SIDE, MASK_SIDE);
    separable(
        face,
        &matrix(rows, MASK_SIDE, MASK_SIDE, device),
        &matrix(cols_t, MASK_SIDE, MASK_SIDE, device),
    )
}

fn validate(config: &MaskConfig) -> Result<(), MaskError> {
    let bad = |setting, expected, found: String| {
        Err(MaskError::Setting {
            setting,
            expected,
            found,
        })
    };
    if !(config.epsilon > 0.0 && config.epsilon <= 255.0) {
        return bad("epsilon", "in (0, 255]", config.epsilon.to_string());
    }
    if !(config.step > 0.0 && config.step <= config.epsilon) {
        return bad(
            "step",
            "positive and at most epsilon",
            config.step.to_string(),
        );
    }
    if !(config.tau >= 0.0 && config.tau < 0.5) {
        return bad("tau", "in [0, 0.5)", config.tau.to_string());
    }
    if config.batch == 0 {
        return bad("batch", "at least 1", "0".to_owned());
    }
    if let Some(steps) = config.steps
        && !(1..=MAX_STEPS).contains(&steps)
    {
        return bad("steps", "from 1 to 1000000", steps.to_string());
    }
    if !(0.0..=1.0).contains(&config.diversity) {
        return bad(
            "diversity",
            "a probability in [0, 1]",
            config.diversity.to_string(),
        );
    }
    let a = &config.augment;
    if let Some([lo, hi]) = a.rescale
        && (!(0.1..=1.0).contains(&lo) || !(lo..=1.0).contains(&hi))
    {
        return bad("rescale", "a range within [0.1, 1]", format!("{lo}-{hi}"));
    }
    if let Some([lo, hi]) = a.blur
        && !(lo >= 0.0 && lo <= hi && hi <= 5.0)
    {
        return bad("blur", "a σ range within [0, 5]", format!("{lo}-{hi}"));
    }
    if let Some(degrees) = a.rotate
        && !(degrees > 0.0 && degrees <= 30.0)
    {
        return bad("rotate", "an angle in (0, 30] degrees", degrees.to_string());
    }
    if let Some([lo, hi]) = a.jpeg
        && !(1 <= lo && lo <= hi && hi <= 100)
    {
        return bad(
            "jpeg",
            "a quality range within [1, 100]",
            format!("{lo}-{hi}"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smooth(device: &Device) -> Tensor<4> {
        #[allow(clippy::cast_precision_loss)]
        let values: Vec<f32> = (0..MASK_LEN)
            .map(|i| {
                let (row, col) = ((i / 3) / MASK_SIDE, (i / 3) % MASK_SIDE);
                128.0 + 60.0 * ((row as f32) / 9.0).sin() * ((col as f32) / 13.0).cos()
            })
            .collect();
        planar(&values, device)
    }

    fn largest_gap(a: Tensor<4>, b: Tensor<4>, margin: usize) -> f32 {
        let (a, b) = (interleaved(a), interleaved(b));
        let mut worst = 0.0_f32;
        for row in margin..MASK_SIDE - margin {
            for col in margin..MASK_SIDE - margin {
                for c in 0..3 {
                    let i = (row * MASK_SIDE + col) * 3 + c;
                    worst = worst.max((a[i] - b[i]).abs());
                }
            }
        }
        worst
    }

    #[test]
    fn rotation_by_shears_turns_and_turns_back() {
        let device = Device::flex();
        let x = smooth(&device);
        assert!(largest_gap(rotate(x.clone(), 0.0, &device), x.clone(), 0) < 1e-3);
        let turned = rotate(x.clone(), 8_f32.to_radians(), &device);
        assert!(
            largest_gap(turned.clone(), x.clone(), 20) > 5.0,
            "nothing turned"
        );
        let back = rotate(turned, -8_f32.to_radians(), &device);
        // Bilinear resampling smooths a little; inside the face the image comes back.
        let gap = largest_gap(back, x, 20);
        assert!(gap < 4.0, "largest difference after turning back: {gap}");
    }

    #[test]
    fn rotation_passes_gradients() {
        let device = Device::flex();
        let x = smooth(&device).autodiff().require_grad();
        let loss = rotate(x.clone(), 5_f32.to_radians(), &device)
            .square()
            .mean();
        let gradients = loss.backward();
        let gradient = interleaved(x.grad(&gradients).unwrap());
        assert!(gradient.iter().any(|g| g.abs() > 1e-6));
    }

    fn rows(values: &[[f32; 2]], device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = values.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [values.len(), 2]), device)
    }

    #[test]
    fn the_centre_objective_measures_angles_from_the_class_centre() {
        let device = Device::flex();
        // Two training faces at (1, 0) and (0, 1): the centre is (1, 1)/√2.
        let centre = class_centre(vec![
            rows(&[[1.0, 0.0]], &device),
            rows(&[[0.0, 1.0]], &device),
        ]);
        let c: Vec<f32> = centre.clone().into_data().iter::<f32>().collect();
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (c[0] - half).abs() < 1e-6 && (c[1] - half).abs() < 1e-6,
            "{c:?}"
        );
        // A masked face at (−1, 0) is 135° from the centre but 180° from its own (1, 0), and
        // one at (1, 0) is 45° from the centre, 0° from itself.
        let masked = rows(&[[-1.0, 0.0], [1.0, 0.0]], &device);
        let from_centre: Vec<f32> =
            angles_between(masked.clone(), Tensor::cat(vec![centre.clone(), centre], 0))
                .into_data()
                .iter::<f32>()
                .collect();
        let from_self: Vec<f32> = angles_between(masked, rows(&[[1.0, 0.0], [1.0, 0.0]], &device))
            .into_data()
            .iter::<f32>()
            .collect();
        let pi = std::f32::consts::PI;
        assert!((from_centre[0] - 0.75 * pi).abs() < 1e-4, "{from_centre:?}");
        assert!((from_centre[1] - 0.25 * pi).abs() < 1e-4, "{from_centre:?}");
        assert!((from_self[0] - pi).abs() < 1e-4, "{from_self:?}");
        assert!(from_self[1].abs() < 1e-3, "{from_self:?}");
    }

    #[test]
    fn input_diversity_shrinks_the_face_onto_a_black_canvas() {
        let device = Device::flex();
        let face = Tensor::<4>::ones([1, 3, MASK_SIDE, MASK_SIDE], &device).mul_scalar(200.0);
        let mut rng = Rng(7);
        let mut shrunk = 0;
        for _ in 0..20 {
            let out = interleaved(diverse(face.clone(), &mut rng, &device));
            let lit = out.iter().filter(|v| (**v - 200.0).abs() < 1e-3).count();
            let dark = out.iter().filter(|v| v.abs() < 1e-6).count();
            // Every pixel is the face or the canvas; at least 0.9² of the face survives.
            assert_eq!(lit + dark, MASK_LEN);
            assert!(lit >= MASK_LEN * 81 / 100, "{lit}");
            shrunk += usize::from(dark > 0);
        }
        assert!(shrunk >= 15, "only {shrunk} of 20 draws shrank the face");
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let bad = |augment: Augment| {
            validate(&MaskConfig {
                augment,
                ..MaskConfig::default()
            })
        };
        assert!(bad(Augment::default()).is_ok());
        let error = bad(Augment {
            rotate: Some(45.0),
            ..Augment::default()
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "rotate must be an angle in (0, 30] degrees, not 45"
        );
        let error = bad(Augment {
            rescale: Some([0.05, 1.0]),
            ..Augment::default()
        })
        .unwrap_err();
        assert!(error.to_string().starts_with("rescale must be"), "{error}");
        let error = validate(&MaskConfig {
            epsilon: 0.0,
            ..MaskConfig::default()
        })
        .unwrap_err();
        assert!(error.to_string().starts_with("epsilon must be"), "{error}");
        let error = validate(&MaskConfig {
            steps: Some(0),
            ..MaskConfig::default()
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "steps must be from 1 to 1000000, not 0");
        let error = validate(&MaskConfig {
            diversity: 1.5,
            ..MaskConfig::default()
        })
        .unwrap_err();
        assert!(
            error.to_string().starts_with("diversity must be"),
            "{error}"
        );
    }
}

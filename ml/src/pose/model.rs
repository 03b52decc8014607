//! The pose models of the ablation ladder, as named parameters (convolution weights
//! `[out, in·k·k]`, biases `[1, out]`) so that the optimiser and checkpoints of the other
//! named-parameter models serve them too.
//!
//! With `c` = `width`, frames `t−r … t+r` and heatmaps at stride 4 (`h × w` cells):
//!
//! - **backbone** (shared by the frames; a ResNet-lite trained from scratch, where the paper
//!   froze a pretrained HRNet-W48 [D]): two stride-2 3×3 convolutions (3 → c/2 → c), three
//!   residual blocks of two 3×3 convolutions with dilations 1, 2, 4 (so a cell sees ~130 px),
//!   and a 1×1 convolution to the **initial heatmaps** `H_τ` of every frame.
//! - **motion** `M⁰` (spec §3.1 (b), the feature-difference source [C]): the differences of
//!   consecutive frames' features, concatenated, through two 3×3 convolutions.
//! - **CJL** (§3.2 [F][C]): from `[H_{t−r} … H_{t+r}, M⁰]`, 3×3 convolutions with dilation 3
//!   predict the offsets (`2·9·G`, zero-initialised) and the modulation (`9·G`, sigmoid) of a
//!   modulated deformable 3×3 convolution over `M⁰`, giving the joint features `J⁰`.
//! - **JMML** blocks (§3.3 [F], channel attention as the released code [C]): per stream 1×1
//!   projections to `Q, K, V`; `M ← M + P_m(softmax(τ Q̂_m K̂_jᵀ) V_j)` and the converse for `J`,
//!   with `Q̂, K̂` the channels scaled to unit length (so a learnt temperature `τ` sets the
//!   sharpness: fuselab's choice [D]); then gates `σ(W[M, J])`, split, multiply each stream.
//! - **head**: a 3×3 convolution and a 1×1 to 17 maps, added to the key frame's initial
//!   heatmaps (a residual refinement [D]).
//!
//! The single-frame variant's head reads the key frame's features; fusion's also `M⁰`;
//! JM-Pose's `[F_t, M^L, J^L]`.

use std::collections::BTreeMap;

use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use fuselab_shared::pose::NUM_KEYPOINTS;
use fuselab_shared::rng::SplitMix64;

use super::config::{PoseConfig, PoseConfigError, PoseVariant};
use super::dcn::{DeformOptions, deform_conv2d};
use super::orthogonality::orthogonality_loss;
use crate::llm::model::normal_tensor;

/// Dilations of the backbone's residual blocks.
const DILATIONS: [usize; 3] = [1, 2, 4];
/// The deformable convolution's kernel side.
const TAPS: usize = 3;
/// Dilation of the convolutions predicting the offsets and modulation (the released code's).
const OFFSET_DILATION: usize = 3;

/// A pose model: its configuration and parameters.
#[derive(Debug, Clone)]
pub struct PoseModel {
    /// The architecture.
    pub config: PoseConfig,
    /// Parameters by name.
    pub params: BTreeMap<String, Tensor<2>>,
}

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The key frame's heatmaps, `[n, 17, h, w]`.
    pub heatmaps: Tensor<4>,
    /// Every frame's initial heatmaps, `[n, t, 17, h, w]`.
    pub initial: Tensor<5>,
    /// The information-orthogonality estimate after each JMML block, `[1]` each.
    pub orthogonality: Vec<Tensor<1>>,
}

/// How a convolution is applied.
#[derive(Debug, Clone, Copy)]
struct Conv {
    kernel: usize,
    stride: usize,
    dilation: usize,
}

impl Conv {
    const fn new(kernel: usize, stride: usize, dilation: usize) -> Self {
        Self {
            kernel,
            stride,
            dilation,
        }
    }

    /// "Same" padding at stride 1.
    const fn padding(self) -> usize {
        self.dilation * (self.kernel - 1) / 2
    }
}

const POINT: Conv = Conv::new(1, 1, 1);
const SQUARE: Conv = Conv::new(3, 1, 1);

impl PoseModel {
    /// A freshly initialised model: convolutions N(0, 2/`fan_in`) before a `ReLU`,
    /// N(0, 1/`fan_in`) otherwise, the residual blocks' second convolution and the heads'
    /// last one scaled down, the offsets and modulation zero (a plain convolution at the
    /// start, as `DCNv2` initialises), biases 0, attention temperatures 4.
    ///
    /// # Errors
    /// [`PoseConfigError`] when the configuration is out of range.
    pub fn init(config: &PoseConfig, device: &Device, seed: u64) -> Result<Self, PoseConfigError> {
        config.check()?;
        let mut rng = SplitMix64(seed);
        let mut params = BTreeMap::new();
        let c = config.width;
        let t = config.frames();
        let g = config.offset_groups;
        let mut conv = |name: &str, inputs: usize, outputs: usize, kernel: usize, gain: f64| {
            let fan_in = inputs * kernel * kernel;
            let std = gain / (fan_in as f64).sqrt();
            let weight = if gain == 0.0 {
                Tensor::zeros([outputs, fan_in], device)
            } else {
                normal_tensor(&mut rng, [outputs, fan_in], std, device)
            };
            params.insert(format!("{name}.weight"), weight);
            params.insert(format!("{name}.bias"), Tensor::zeros([1, outputs], device));
        };
        let he = std::f64::consts::SQRT_2;
        conv("stem.0", 3, c / 2, 3, he);
        conv("stem.1", c / 2, c, 3, he);
        for b in 0..DILATIONS.len() {
            conv(&format!("block.{b}.0"), c, c, 3, he);
            conv(&format!("block.{b}.1"), c, c, 3, 0.5);
        }
        conv("initial", c, NUM_KEYPOINTS, 1, 0.1);
        let head_inputs = match config.variant {
            PoseVariant::SingleFrame => c,
            PoseVariant::Fusion => 2 * c,
            PoseVariant::JmPose => 3 * c,
        };
        if config.variant != PoseVariant::SingleFrame {
            conv("motion.0", (t - 1) * c, c, 3, he);
            conv("motion.1", c, c, 3, he);
        }
        if config.variant == PoseVariant::JmPose {
            let context = t * NUM_KEYPOINTS + c;
            conv("cjl.offset", context, 2 * TAPS * TAPS * g, 3, 0.0);
            conv("cjl.mask", context, TAPS * TAPS * g, 3, 0.0);
            conv("cjl.dcn", c, c, TAPS, he);
            for b in 0..config.jmml_blocks {
                for stream in ["m", "j"] {
                    conv(&format!("jmml.{b}.{stream}.qkv"), c, 3 * c, 1, 1.0);
                    conv(&format!("jmml.{b}.{stream}.out"), c, c, 1, 0.5);
                }
                conv(&format!("jmml.{b}.gate"), 2 * c, 2 * c, 1, 1.0);
            }
        }
        conv("head.0", head_inputs, c, 3, he);
        conv("head.1", c, NUM_KEYPOINTS, 1, 0.1);
        if config.variant == PoseVariant::JmPose {
            for b in 0..config.jmml_blocks {
                params.insert(
                    format!("jmml.{b}.temperature"),
                    Tensor::full([1, 1], 4.0, device),
                );
            }
        }
        Ok(Self {
            config: config.clone(),
            params,
        })
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.params
            .values()
            .next()
            .map_or_else(Device::flex, Tensor::device)
    }

    /// Parameters in all.
    pub fn parameter_count(&self) -> usize {
        self.params
            .values()
            .map(|p| p.dims().iter().product::<usize>())
            .sum()
    }

    fn param(&self, name: &str) -> Tensor<2> {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("parameter `{name}` is missing (init builds every one)"))
            .clone()
    }

    fn weight(&self, name: &str, inputs: usize, kernel: usize) -> Tensor<4> {
        let weight = self.param(&format!("{name}.weight"));
        let outputs = weight.dims()[0];
        weight.reshape([outputs, inputs, kernel, kernel])
    }

    fn bias(&self, name: &str) -> Tensor<1> {
        let bias = self.param(&format!("{name}.bias"));
        let outputs = bias.dims()[1];
        bias.reshape([outputs])
    }

    fn conv(&self, name: &str, x: Tensor<4>, how: Conv) -> Tensor<4> {
        let inputs = x.dims()[1];
        let padding = how.padding();
        conv2d(
            x,
            self.weight(name, inputs, how.kernel),
            Some(self.bias(name)),
            ConvOptions::new([how.stride; 2], [padding; 2], [how.dilation; 2], 1),
        )
    }

    /// Features and initial heatmaps of a stack of frames.
    ///
    /// # Shapes
    /// - `x`: `[b, 3, H, W]` → (`[b, c, H/4, W/4]`, `[b, 17, H/4, W/4]`)
    fn backbone(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let down = Conv::new(3, 2, 1);
        let mut f = relu(self.conv("stem.0", x, down));
        f = relu(self.conv("stem.1", f, down));
        for (b, &dilation) in DILATIONS.iter().enumerate() {
            let how = Conv::new(3, 1, dilation);
            let r = relu(self.conv(&format!("block.{b}.0"), f.clone(), how));
            f = relu(f + self.conv(&format!("block.{b}.1"), r, how));
        }
        let initial = self.conv("initial", f.clone(), POINT);
        (f, initial)
    }

    /// `M⁰` from the frames' features.
    ///
    /// # Shapes
    /// - `features`: `[n, t, c, h, w]` → `[n, c, h, w]`
    fn motion(&self, features: &Tensor<5>) -> Tensor<4> {
        let [n, t, c, h, w] = features.dims();
        let later = features.clone().narrow(1, 1, t - 1);
        let earlier = features.clone().narrow(1, 0, t - 1);
        let differences = (later - earlier).reshape([n, (t - 1) * c, h, w]);
        let m = relu(self.conv("motion.0", differences, SQUARE));
        relu(self.conv("motion.1", m, SQUARE))
    }

    /// The context-aware joint learner: `J⁰`.
    ///
    /// # Shapes
    /// - `initial`: `[n, t, 17, h, w]`; `motion`: `[n, c, h, w]` → `[n, c, h, w]`
    fn joint_learner(&self, initial: &Tensor<5>, motion: &Tensor<4>) -> Tensor<4> {
        let [n, t, k, h, w] = initial.dims();
        let context = Tensor::cat(
            vec![initial.clone().reshape([n, t * k, h, w]), motion.clone()],
            1,
        );
        let steer = Conv::new(3, 1, OFFSET_DILATION);
        let offset = self.conv("cjl.offset", context.clone(), steer);
        let mask = sigmoid(self.conv("cjl.mask", context, steer));
        let c = motion.dims()[1];
        let out = deform_conv2d(
            motion.clone(),
            offset,
            mask,
            self.weight("cjl.dcn", c, TAPS),
            Some(self.bias("cjl.dcn")),
            DeformOptions {
                padding: 1,
                dilation: 1,
                offset_groups: self.config.offset_groups,
            },
        );
        relu(out)
    }

    /// Channel cross-attention: `softmax(τ Q̂ K̂ᵀ) V` with `Q̂, K̂` unit-length channels.
    ///
    /// # Shapes
    /// - `q`, `k`, `v`: `[n, c, h·w]`; `temperature`: `[1, 1]` → `[n, c, h·w]`
    fn attend(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, temperature: Tensor<2>) -> Tensor<3> {
        let unit = |x: Tensor<3>| {
            let length = x.clone().square().sum_dim(2).sqrt().clamp_min(1e-6);
            x / length
        };
        let scores = unit(q).matmul(unit(k).swap_dims(1, 2)) * temperature.unsqueeze::<3>();
        softmax(scores, 2).matmul(v)
    }

    /// One joint–motion mutual-learning block.
    ///
    /// # Shapes
    /// - `m`, `j`: `[n, c, h, w]` → both `[n, c, h, w]`
    fn jmml(&self, b: usize, m: Tensor<4>, j: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [n, c, h, w] = m.dims();
        let split = |stream: &str, x: Tensor<4>| {
            let qkv = self
                .conv(&format!("jmml.{b}.{stream}.qkv"), x, POINT)
                .reshape([n, 3 * c, h * w]);
            (
                qkv.clone().narrow(1, 0, c),
                qkv.clone().narrow(1, c, c),
                qkv.narrow(1, 2 * c, c),
            )
        };
        let (qm, km, vm) = split("m", m.clone());
        let (qj, kj, vj) = split("j", j.clone());
        let temperature = self.param(&format!("jmml.{b}.temperature"));
        let to_m = Self::attend(qm, kj, vj, temperature.clone()).reshape([n, c, h, w]);
        let to_j = Self::attend(qj, km, vm, temperature).reshape([n, c, h, w]);
        let m = m + self.conv(&format!("jmml.{b}.m.out"), to_m, POINT);
        let j = j + self.conv(&format!("jmml.{b}.j.out"), to_j, POINT);
        let gates = sigmoid(self.conv(
            &format!("jmml.{b}.gate"),
            Tensor::cat(vec![m.clone(), j.clone()], 1),
            POINT,
        ));
        (m * gates.clone().narrow(1, 0, c), j * gates.narrow(1, c, c))
    }

    /// Heatmaps of the middle frame of each sample.
    ///
    /// # Shapes
    /// - `frames`: `[n, t, 3, H, W]`, RGB in `[0, 1]`, `t` = `config.frames()`, `H` and `W`
    ///   multiples of 4 → [`Forward`] with `h = H/4`, `w = W/4`
    ///
    /// # Panics
    /// When `t` is not `config.frames()` (a caller's bug: batches are built from the config).
    pub fn forward(&self, frames: Tensor<5>) -> Forward {
        let [n, t, channels, height, width] = frames.dims();
        assert_eq!(t, self.config.frames(), "frames per sample");
        let x = frames
            .reshape([n * t, channels, height, width])
            .sub_scalar(0.5);
        let (features, initial) = self.backbone(x);
        let [_, c, h, w] = features.dims();
        let features = features.reshape([n, t, c, h, w]);
        let initial = initial.reshape([n, t, NUM_KEYPOINTS, h, w]);
        let key = t / 2;
        let key_features = features.clone().narrow(1, key, 1).reshape([n, c, h, w]);
        let key_initial = initial
            .clone()
            .narrow(1, key, 1)
            .reshape([n, NUM_KEYPOINTS, h, w]);
        let mut orthogonality = Vec::new();
        let head_input = match self.config.variant {
            PoseVariant::SingleFrame => key_features,
            PoseVariant::Fusion => Tensor::cat(vec![key_features, self.motion(&features)], 1),
            PoseVariant::JmPose => {
                let mut m = self.motion(&features);
                let mut j = self.joint_learner(&initial, &m);
                for b in 0..self.config.jmml_blocks {
                    (m, j) = self.jmml(b, m, j);
                    orthogonality.push(orthogonality_loss(
                        m.clone(),
                        j.clone(),
                        Some(key_initial.clone()),
                    ));
                }
                Tensor::cat(vec![key_features, m, j], 1)
            }
        };
        let refined = relu(self.conv("head.0", head_input, SQUARE));
        let heatmaps = key_initial + self.conv("head.1", refined, POINT);
        Forward {
            heatmaps,
            initial,
            orthogonality,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize, t: usize, device: &Device) -> Tensor<5> {
        let len = n * t * 3 * 32 * 24;
        let values: Vec<f32> = (0..len).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        Tensor::<1>::from_floats(values.as_slice(), device).reshape([n, t, 3, 32, 24])
    }

    #[test]
    fn every_variant_gives_heatmaps_at_stride_four() {
        let device = Device::flex();
        for variant in [
            PoseVariant::SingleFrame,
            PoseVariant::Fusion,
            PoseVariant::JmPose,
        ] {
            let config = PoseConfig {
                variant,
                width: 8,
                offset_groups: 2,
                ..PoseConfig::default()
            };
            let model = PoseModel::init(&config, &device, 1).unwrap();
            let t = config.frames();
            let out = model.forward(frames(2, t, &device));
            assert_eq!(out.heatmaps.dims(), [2, NUM_KEYPOINTS, 8, 6], "{variant:?}");
            assert_eq!(out.initial.dims(), [2, t, NUM_KEYPOINTS, 8, 6]);
            let blocks = if variant == PoseVariant::JmPose { 2 } else { 0 };
            assert_eq!(out.orthogonality.len(), blocks);
            assert!(
                crate::llm::values(out.heatmaps)
                    .iter()
                    .all(|v| v.is_finite())
            );
        }
    }

    #[test]
    fn a_bad_configuration_names_its_key() {
        let config = PoseConfig {
            width: 30,
            offset_groups: 4,
            ..PoseConfig::default()
        };
        let err = PoseModel::init(&config, &Device::flex(), 0).unwrap_err();
        assert_eq!(err.key, "offset_groups");
    }
}

//! The pose model's configuration: which variant (the ablation ladder of spec `pose.md` §9) and
//! its sizes.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which model: the ladder from one frame to the full JM-Pose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoseVariant {
    /// The key frame alone: backbone, initial heatmaps and a refinement head.
    SingleFrame,
    /// Multi-frame feature fusion: the head also reads the motion features (feature
    /// differences of neighbouring frames); no joint branch.
    Fusion,
    /// JM-Pose: the context-aware joint learner (a deformable convolution over the motion
    /// features, steered by the initial heatmaps) and `jmml_blocks` mutual-learning blocks.
    JmPose,
}

impl PoseVariant {
    /// The name used in configurations and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::SingleFrame => "single_frame",
            Self::Fusion => "fusion",
            Self::JmPose => "jm_pose",
        }
    }
}

/// A pose model's configuration; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoseConfig {
    /// The variant.
    pub variant: PoseVariant,
    /// Frames on each side of the key frame (1: t−1, t, t+1; 2: t±2 as well). The single-frame
    /// variant reads the key frame only.
    pub radius: usize,
    /// Channels of the backbone's features and of both streams.
    pub width: usize,
    /// Offset groups of the deformable convolution (they split `width`).
    pub offset_groups: usize,
    /// Joint–motion mutual-learning blocks (0: the joint learner alone).
    pub jmml_blocks: usize,
    /// Weight of the information-orthogonality term per block (0: off).
    pub lambda_io: f64,
    /// Weight of the initial heatmaps' loss on every frame (the backbone is trained from
    /// scratch here, where the paper's was pretrained and frozen).
    pub lambda_initial: f64,
    /// The Gaussian targets' standard deviation, in heatmap cells.
    pub sigma: f32,
}

impl Default for PoseConfig {
    fn default() -> Self {
        Self {
            variant: PoseVariant::JmPose,
            radius: 1,
            width: 32,
            offset_groups: 4,
            jmml_blocks: 2,
            lambda_io: 0.01,
            lambda_initial: 0.5,
            sigma: 1.5,
        }
    }
}

/// A configuration out of range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("pose model: `{key}` {message}")]
pub struct PoseConfigError {
    /// The key under `[model]`.
    pub key: &'static str,
    /// What was expected.
    pub message: String,
}

/// The backbone's stride: heatmaps have one cell per 4 × 4 pixels.
pub const STRIDE: usize = 4;

impl PoseConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`PoseConfigError`] naming the key.
    pub fn check(&self) -> Result<(), PoseConfigError> {
        let fail = |key, message: &str| {
            Err(PoseConfigError {
                key,
                message: message.to_owned(),
            })
        };
        if !(1..=3).contains(&self.radius) {
            return fail("radius", "must be 1, 2 or 3");
        }
        if !(4..=256).contains(&self.width) || !self.width.is_multiple_of(2) {
            return fail("width", "must be an even number from 4 to 256");
        }
        if self.offset_groups == 0 || !self.width.is_multiple_of(self.offset_groups) {
            return fail("offset_groups", "must divide `width`");
        }
        if self.jmml_blocks > 8 {
            return fail("jmml_blocks", "must be 0..=8");
        }
        if !(self.lambda_io.is_finite() && (0.0..=100.0).contains(&self.lambda_io)) {
            return fail("lambda_io", "must be in [0, 100]");
        }
        if !(self.lambda_initial.is_finite() && (0.0..=100.0).contains(&self.lambda_initial)) {
            return fail("lambda_initial", "must be in [0, 100]");
        }
        if !(self.sigma.is_finite() && (0.5..=8.0).contains(&self.sigma)) {
            return fail("sigma", "must be in [0.5, 8] cells");
        }
        Ok(())
    }

    /// Frames the model reads per sample: `2·radius + 1`, or 1 for the single-frame variant.
    pub fn frames(&self) -> usize {
        if self.variant == PoseVariant::SingleFrame {
            1
        } else {
            2 * self.radius + 1
        }
    }
}

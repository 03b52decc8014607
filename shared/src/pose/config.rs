//! The generator's configuration: image size, clip length, split sizes, the seed and the
//! difficulty knobs, with the bounds that keep every clip's memory and work finite.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::Split;

/// Least image width or height, in pixels.
pub const MIN_SIDE: usize = 16;
/// Most image width or height, in pixels.
pub const MAX_SIDE: usize = 512;
/// Most frames in a clip.
pub const MAX_FRAMES: usize = 64;
/// Most clips in one split.
pub const MAX_CLIPS: usize = 1_000_000;
/// Most keypoint displacement per frame, in pixels (the upper end of `speed`).
pub const MAX_SPEED: f32 = 32.0;
/// Longest motion blur, in pixels.
pub const MAX_BLUR_PX: f32 = 32.0;
/// Largest defocus radius, in pixels.
pub const MAX_DEFOCUS_RADIUS: f32 = 8.0;
/// Largest camera shake, in pixels.
pub const MAX_SHAKE_PX: f32 = 16.0;
/// Figure height range's bounds, as fractions of the image height.
pub const FIGURE_HEIGHT_RANGE: [f32; 2] = [0.1, 2.0];

/// The synthetic pose benchmark's configuration; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Seeds every clip (with the split and the clip's index).
    pub seed: u64,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Clips in the train split.
    pub train_clips: usize,
    /// Clips in the validation split.
    pub val_clips: usize,
    /// Clips in the test split.
    pub test_clips: usize,
    /// The figure's height (top of the head to the ankles, standing) as a fraction of the image
    /// height: an inclusive range, drawn per clip.
    pub figure_height: [f32; 2],
    /// The clip's speed in pixels per frame, drawn per clip from this range: no keypoint of the
    /// figure moves further than the clip's speed between two frames (before camera shake).
    pub speed: [f32; 2],
    /// Probability that a clip has motion blur.
    pub blur_probability: f64,
    /// Longest motion blur in pixels: the exposure is shortened so that no keypoint moves further
    /// than a length drawn from `[1, blur_max_px]` while the shutter is open.
    pub blur_max_px: f32,
    /// Probability that a clip is out of focus.
    pub defocus_probability: f64,
    /// Largest defocus (disc kernel) radius in pixels, drawn per clip from `[0.5, max]`.
    pub defocus_max_radius: f32,
    /// Probability, per limb chain (each arm, each leg), that the chain swings behind the torso
    /// and head during the clip; otherwise it stays in front of them. Limbs crossing each other
    /// occlude one another either way.
    pub self_occlusion: f64,
    /// Probability that a clip has an occluding bar or box crossing the figure.
    pub occluder_probability: f64,
    /// Probability that a clip has a second, unlabelled figure partly overlapping the first.
    pub distractor_probability: f64,
    /// Camera shake in pixels: each frame is translated by up to this much in x and y.
    pub shake_px: f32,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            width: 128,
            height: 96,
            frames: 5,
            train_clips: 4000,
            val_clips: 500,
            test_clips: 500,
            figure_height: [0.55, 0.85],
            speed: [0.5, 4.0],
            blur_probability: 0.3,
            blur_max_px: 6.0,
            defocus_probability: 0.2,
            defocus_max_radius: 1.5,
            self_occlusion: 0.5,
            occluder_probability: 0.25,
            distractor_probability: 0.25,
            shake_px: 1.0,
        }
    }
}

/// A configuration or request the generator refuses.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PoseDataError {
    /// A field is outside its range.
    #[error("pose synthetic config: {field} = {value} is out of range (expected {expected})")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted range.
        expected: String,
    },
    /// A clip index past the end of its split.
    #[error("pose synthetic clip: index {index} is past the {split} split's {clips} clips")]
    NoSuchClip {
        /// The split asked for.
        split: Split,
        /// The index asked for.
        index: usize,
        /// Clips in that split.
        clips: usize,
    },
}

fn count(field: &'static str, value: usize, lo: usize, hi: usize) -> Result<(), PoseDataError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(PoseDataError::OutOfRange {
            field,
            value: value.to_string(),
            expected: format!("an integer from {lo} to {hi}"),
        })
    }
}

fn real(field: &'static str, value: f32, lo: f32, hi: f32) -> Result<(), PoseDataError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(PoseDataError::OutOfRange {
            field,
            value: value.to_string(),
            expected: format!("a number in [{lo}, {hi}]"),
        })
    }
}

fn probability(field: &'static str, value: f64) -> Result<(), PoseDataError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(PoseDataError::OutOfRange {
            field,
            value: value.to_string(),
            expected: "a probability in [0, 1]".to_owned(),
        })
    }
}

fn range(field: [&'static str; 2], value: [f32; 2], lo: f32, hi: f32) -> Result<(), PoseDataError> {
    real(field[0], value[0], lo, hi)?;
    real(field[1], value[1], value[0], hi)
}

impl SyntheticConfig {
    /// Checks every field against its range, so that no configuration can ask for an unbounded
    /// allocation or loop.
    ///
    /// # Errors
    ///
    /// [`PoseDataError::OutOfRange`] naming the first field out of its range and that range.
    pub fn validate(&self) -> Result<(), PoseDataError> {
        count("width", self.width, MIN_SIDE, MAX_SIDE)?;
        count("height", self.height, MIN_SIDE, MAX_SIDE)?;
        count("frames", self.frames, 1, MAX_FRAMES)?;
        count("train_clips", self.train_clips, 0, MAX_CLIPS)?;
        count("val_clips", self.val_clips, 0, MAX_CLIPS)?;
        count("test_clips", self.test_clips, 0, MAX_CLIPS)?;
        let [lo, hi] = FIGURE_HEIGHT_RANGE;
        range(
            ["figure_height[0]", "figure_height[1]"],
            self.figure_height,
            lo,
            hi,
        )?;
        range(["speed[0]", "speed[1]"], self.speed, 0.0, MAX_SPEED)?;
        probability("blur_probability", self.blur_probability)?;
        real("blur_max_px", self.blur_max_px, 0.0, MAX_BLUR_PX)?;
        probability("defocus_probability", self.defocus_probability)?;
        real(
            "defocus_max_radius",
            self.defocus_max_radius,
            0.0,
            MAX_DEFOCUS_RADIUS,
        )?;
        probability("self_occlusion", self.self_occlusion)?;
        probability("occluder_probability", self.occluder_probability)?;
        probability("distractor_probability", self.distractor_probability)?;
        real("shake_px", self.shake_px, 0.0, MAX_SHAKE_PX)
    }

    /// Clips in `split`.
    pub fn clips(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train_clips,
            Split::Val => self.val_clips,
            Split::Test => self.test_clips,
        }
    }
}

//! A synthetic video benchmark for video human-pose estimation (spec `pose.md` §8, our
//! recommended design \[D\]): procedural articulated figures in COCO's 17-keypoint topology,
//! rendered into short clips with exact ground truth, and the failure cases JM-Pose targets as
//! knobs: fast motion, motion blur, defocus, self-occlusion, occluding objects, distractor
//! figures and camera shake.
//!
//! # What is generated
//!
//! A clip is [`SyntheticConfig::frames`] RGB frames of `width × height` pixels. Its labelled
//! figure is a 2-D kinematic tree: a pelvis root moving at a constant velocity, a leaning torso
//! (a polygon from the shoulders to the hips), a neck, a head disc with nose, eyes and ears on a
//! turning head, and eight limb capsules; per-clip body proportions, size, colours and stripe
//! and noise textures; joint angles that are sums of three sinusoids within plausible ranges.
//! The clip's speed `s` (drawn from [`SyntheticConfig::speed`]) bounds every keypoint's
//! displacement between consecutive frames before camera shake. Limbs are drawn back to front by
//! a per-chain depth that moves over time, so limbs pass behind the torso and each other. A clip
//! may also have a textured bar or box crossing the figure in front of everything, a second,
//! unlabelled figure partly overlapping the first (in front of it or behind it), motion blur
//! (the average of an odd number of renders spread over the shutter time, which is shortened so
//! that no keypoint moves further than the blur length drawn), defocus (a disc kernel) and
//! camera shake (a per-frame translation of image and keypoints alike). The background is a
//! gradient with stripes and soft blobs, different in every clip.
//!
//! # Ground-truth conventions
//!
//! - Keypoints are `[x, y]` in pixels of the rendered frame, `x` to the right and `y` down, in
//!   COCO order ([`KEYPOINT_NAMES`]). Pixel `(i, j)` covers `[i, i + 1) × [j, j + 1)`: its centre
//!   is `(i + 0.5, j + 0.5)`, where the renderer samples the scene, and a keypoint `(x, y)` lies
//!   in pixel `(⌊x⌋, ⌊y⌋)`. Keypoints are not rounded.
//! - Left and right are the person's: figures face the camera, so the left side is usually on the
//!   image's right (arms and legs may cross).
//! - Keypoints are the figure's at the frame's instant (the middle of the shutter time), plus
//!   the frame's camera shake.
//! - Visibility follows COCO: 0 outside the frame (`x < 0`, `y < 0`, `x ≥ width` or
//!   `y ≥ height`); otherwise 1 when the part drawn on top at the keypoint's pixel (at the
//!   frame's instant) is not a part the keypoint belongs to and is nearer than the keypoint (a
//!   limb, the torso or the head of its own figure, the occluder or the distractor); otherwise 2.
//!   An ear (or any face keypoint) on the far side of the turning head is behind the head, so
//!   it is 1 where the head covers it.
//! - Per-clip tags ([`ClipTags`]) record the speed, the measured mean speed, the blur length,
//!   the defocus radius, the share of labelled keypoints that are hidden, and whether a
//!   distractor or an occluder is present.
//!
//! # Determinism
//!
//! [`generate_clip`] depends only on the configuration, the split and the clip's index: the
//! clip's generator is seeded from the three, and each aspect of the clip (figure, look,
//! background, occluder, distractor, blur, defocus, shake) draws from its own stream, so
//! switching one knob off leaves the rest of the clip unchanged. Clips can be produced one at
//! a time, in any order. Transcendental functions come from `libm`, so the output is
//! byte-identical natively and in wasm.

mod config;
pub mod eval;
pub mod heatmap;
mod motion;
mod render;
mod scene;
pub mod score;
mod sheet;
pub mod skeleton;
#[cfg(test)]
mod tests;
pub mod video;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use config::{
    FIGURE_HEIGHT_RANGE, MAX_BLUR_PX, MAX_CLIPS, MAX_DEFOCUS_RADIUS, MAX_FRAMES, MAX_SHAKE_PX,
    MAX_SIDE, MAX_SPEED, MIN_SIDE, PoseDataError, SyntheticConfig,
};
pub use sheet::{MAX_SHEET_COLUMNS, MAX_ZOOM, TRUE_SKELETON_COLOUR, contact_sheet, draw_skeleton};
pub use skeleton::{
    FLIP_PAIRS, JOINT_WEIGHTS, KEYPOINT_NAMES, Keypoints, NUM_KEYPOINTS, OKS_SIGMAS, SKELETON,
    Visibility,
};

use self::render::quantise;
use self::scene::Scene;
use crate::rng::SplitMix64;

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training clips.
    Train,
    /// Validation clips.
    Val,
    /// Test clips.
    Test,
}

impl Split {
    /// The three splits, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split's name: `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Mixed into the seed so that the splits' clips differ.
    fn salt(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Val => 0x7661_6c00_0000_0002,
            Split::Test => 0x7465_7374_0000_0003,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An RGB image: `pixels` holds `width × height × 3` bytes, interleaved, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// RGB bytes, row by row from the top.
    pub pixels: Vec<u8>,
}

impl Frame {
    /// A frame of one colour.
    pub fn filled(width: usize, height: usize, colour: [u8; 3]) -> Self {
        Self {
            width,
            height,
            pixels: colour.repeat(width * height),
        }
    }

    /// The colour of pixel `(x, y)`.
    ///
    /// # Panics
    ///
    /// When the pixel is outside the frame.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) is outside the frame"
        );
        let at = 3 * (y * self.width + x);
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }

    /// Sets pixel `(x, y)`.
    ///
    /// # Panics
    ///
    /// When the pixel is outside the frame.
    pub fn set_pixel(&mut self, x: usize, y: usize, colour: [u8; 3]) {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) is outside the frame"
        );
        let at = 3 * (y * self.width + x);
        self.pixels[at..at + 3].copy_from_slice(&colour);
    }
}

/// One frame's ground truth for the labelled figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoseLabel {
    /// Keypoints in the frame's pixels (see the module's conventions).
    pub keypoints: Keypoints,
    /// COCO visibility: 2 visible, 1 inside the frame but hidden, 0 outside the frame.
    pub visibility: Visibility,
}

/// What makes a clip hard, for slicing results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTags {
    /// The clip's speed knob: the most any keypoint of the figure moves between two frames,
    /// in pixels (before camera shake).
    pub speed: f32,
    /// The figure's mean keypoint displacement between consecutive frames, in pixels (before
    /// camera shake; 0 for one-frame clips).
    pub mean_speed: f32,
    /// Motion blur: the keypoints' mean displacement while the shutter is open, in pixels (0
    /// without blur).
    pub blur_length: f32,
    /// The defocus kernel's radius in pixels (0 in focus).
    pub defocus_radius: f32,
    /// Hidden keypoints (v = 1) as a share of the labelled ones (v ≥ 1); 0 when none is labelled.
    pub occluded_fraction: f32,
    /// Whether an unlabelled second figure is in the clip.
    pub distractor: bool,
    /// Whether an occluding bar or box crosses the clip.
    pub occluder: bool,
}

/// A generated clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The split it belongs to.
    pub split: Split,
    /// Its index in the split.
    pub index: usize,
    /// The frames, in time order.
    pub frames: Vec<Frame>,
    /// Each frame's ground truth.
    pub labels: Vec<PoseLabel>,
    /// The clip's difficulty tags.
    pub tags: ClipTags,
}

/// The seed of clip `index` of `split`.
fn clip_seed(seed: u64, split: Split, index: usize) -> u64 {
    let base = SplitMix64(seed ^ split.salt()).next_u64();
    SplitMix64(base ^ (index as u64).wrapping_mul(0xd6e8_feb8_6659_fd93)).next_u64()
}

/// Clip `index` of `split`: a function of `(config, split, index)` only, byte for byte.
///
/// # Errors
///
/// The configuration's [`SyntheticConfig::validate`] error, or [`PoseDataError::NoSuchClip`]
/// when `index` is not below the split's clip count.
pub fn generate_clip(
    config: &SyntheticConfig,
    split: Split,
    index: usize,
) -> Result<Clip, PoseDataError> {
    config.validate()?;
    let clips = config.clips(split);
    if index >= clips {
        return Err(PoseDataError::NoSuchClip {
            split,
            index,
            clips,
        });
    }
    let scene = Scene::new(config, clip_seed(config.seed, split, index));
    Ok(render_clip(&scene, split, index))
}

/// Renders every frame of `scene` and measures its tags.
fn render_clip(scene: &Scene, split: Split, index: usize) -> Clip {
    let n = scene.shake.len();
    let [width, height] = scene.size();
    let mut frames = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for f in 0..n {
        let (rgb, label, _) = scene.render(f, scene.shake[f]);
        frames.push(Frame {
            width,
            height,
            pixels: quantise(&rgb),
        });
        labels.push(label);
    }
    let tags = measure(scene, &labels);
    Clip {
        split,
        index,
        frames,
        labels,
        tags,
    }
}

/// The mean of `values`, 0 when empty.
fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, n) = values.fold((0.0_f32, 0_usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f32 }
}

fn distance(p: [f32; 2], q: [f32; 2]) -> f32 {
    let (dx, dy) = (p[0] - q[0], p[1] - q[1]);
    (dx * dx + dy * dy).sqrt()
}

/// The clip's tags, from its world and its labels.
fn measure(scene: &Scene, labels: &[PoseLabel]) -> ClipTags {
    let n = labels.len();
    let poses: Vec<Keypoints> = (0..n)
        .map(|f| scene.figure.pose(scene.time(f)).keypoints)
        .collect();
    let mean_speed = mean(
        poses
            .windows(2)
            .flat_map(|w| (0..NUM_KEYPOINTS).map(|j| distance(w[0][j], w[1][j]))),
    );
    let blur_length = if scene.exposure > 0.0 {
        let half = scene.exposure / 2.0;
        mean((0..n).flat_map(|f| {
            let t = scene.time(f);
            let (a, b) = (scene.figure.pose(t - half), scene.figure.pose(t + half));
            (0..NUM_KEYPOINTS).map(move |j| distance(a.keypoints[j], b.keypoints[j]))
        }))
    } else {
        0.0
    };
    let flags = labels.iter().flat_map(|l| l.visibility);
    let labelled = flags.clone().filter(|&v| v >= 1).count();
    let hidden = flags.filter(|&v| v == 1).count();
    ClipTags {
        speed: scene.figure.speed,
        mean_speed,
        blur_length,
        defocus_radius: scene.defocus,
        occluded_fraction: if labelled == 0 {
            0.0
        } else {
            hidden as f32 / labelled as f32
        },
        distractor: scene.has_distractor(),
        occluder: scene.has_occluder(),
    }
}

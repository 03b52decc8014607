//! Real clips for a pose model: frames of any size letterboxed into the model's frame size
//! and keypoints mapped back, and the keypoints document `pose predict` and the browser's Pose
//! page both write. The same code runs natively and in wasm, so the two give the same
//! keypoints for the same pixels.

use serde::{Deserialize, Serialize};

use super::{Frame, KEYPOINT_NAMES};

/// Longest side of a video's frames as they are read (larger ones are scaled down first).
pub const MAX_VIDEO_SIDE: usize = 640;
/// Grey around a letterboxed frame.
const MARGIN: [u8; 3] = [128, 128, 128];
/// The format of the keypoints document.
pub const PREDICTIONS_FORMAT: &str = "fuselab.pose.predictions/v1";

/// Even sides with the aspect of `w × h` and the longer one at most [`MAX_VIDEO_SIDE`] (sides
/// already within it are kept, rounded down to even, as video encoders want).
pub fn fit_within(w: usize, h: usize) -> [usize; 2] {
    let longest = w.max(h).max(1);
    let scale = |side: usize| {
        let scaled = if longest > MAX_VIDEO_SIDE {
            side * MAX_VIDEO_SIDE / longest
        } else {
            side
        };
        (scaled / 2 * 2).max(2)
    };
    [scale(w), scale(h)]
}

/// The size a clip's `w × h` frames are read at: a video's as [`fit_within`] scales it; a
/// still image's kept when its longer side is within [`MAX_VIDEO_SIDE`], else as a video's.
pub fn read_size(w: usize, h: usize, video: bool) -> [usize; 2] {
    if !video && w.max(h) <= MAX_VIDEO_SIDE {
        [w, h]
    } else {
        fit_within(w, h)
    }
}

/// A frame scaled to fit the model's frame size, centred, grey around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    scale: f64,
    offset: [usize; 2],
    inner: [usize; 2],
    size: [usize; 2],
    frame: [usize; 2],
}

impl Letterbox {
    /// The fit of `[w, h]` frames into `[mw, mh]` (sides of at least one pixel).
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // sides are at most a few thousand pixels
    pub fn new([w, h]: [usize; 2], [mw, mh]: [usize; 2]) -> Self {
        let [w, h, mw, mh] = [w, h, mw, mh].map(|side| side.max(1));
        let scale = (mw as f64 / w as f64).min(mh as f64 / h as f64);
        let inner = [
            ((w as f64 * scale).round() as usize).clamp(1, mw),
            ((h as f64 * scale).round() as usize).clamp(1, mh),
        ];
        Self {
            scale,
            offset: [(mw - inner[0]) / 2, (mh - inner[1]) / 2],
            inner,
            size: [mw, mh],
            frame: [w, h],
        }
    }

    /// The size of the frames it takes, `[width, height]`.
    pub fn frame_size(&self) -> [usize; 2] {
        self.frame
    }

    /// `frame` resampled into the model's size (a triangle filter as wide as the scale
    /// factor, so a large frame is averaged rather than aliased), or `None` when the frame is
    /// not the size this letterbox was made for.
    pub fn apply(&self, frame: &Frame) -> Option<Frame> {
        if [frame.width, frame.height] != self.frame
            || frame.pixels.len() != 3 * frame.width * frame.height
        {
            return None;
        }
        let mut out = Frame::filled(self.size[0], self.size[1], MARGIN);
        let columns = Taps::new(self.frame[0], self.inner[0]);
        let rows = Taps::new(self.frame[1], self.inner[1]);
        // Columns first: one row of the frame at a time into `wide` (inner width × frame height).
        let iw = self.inner[0];
        let mut wide = vec![0.0_f32; iw * self.frame[1] * 3];
        for y in 0..self.frame[1] {
            let row = &frame.pixels[3 * y * frame.width..3 * (y + 1) * frame.width];
            for (x, (start, weights)) in columns.iter().enumerate() {
                let mut sum = [0.0_f32; 3];
                for (k, w) in weights.iter().enumerate() {
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += w * f32::from(row[3 * (start + k) + c]);
                    }
                }
                wide[3 * (y * iw + x)..3 * (y * iw + x) + 3].copy_from_slice(&sum);
            }
        }
        for (y, (start, weights)) in rows.iter().enumerate() {
            for x in 0..iw {
                let mut sum = [0.0_f32; 3];
                for (k, w) in weights.iter().enumerate() {
                    let at = 3 * ((start + k) * iw + x);
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += w * wide[at + c];
                    }
                }
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped
                let colour = sum.map(|v| v.round().clamp(0.0, 255.0) as u8);
                out.set_pixel(self.offset[0] + x, self.offset[1] + y, colour);
            }
        }
        Some(out)
    }

    /// A point of the model's frame in the original frame, clamped to it (the model may point
    /// into the grey margin).
    #[allow(clippy::cast_precision_loss)] // sides are small
    pub fn back(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [
            ((x - self.offset[0] as f64) / self.scale).clamp(0.0, self.frame[0] as f64),
            ((y - self.offset[1] as f64) / self.scale).clamp(0.0, self.frame[1] as f64),
        ]
    }
}

/// Per output sample along one axis: the first input sample and the normalised weights.
struct Taps(Vec<(usize, Vec<f32>)>);

impl Taps {
    /// Taps from `from` samples to `to` samples: pixel centres aligned (half-pixel
    /// convention), a triangle of radius max(1, from / to).
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // sides are small; the range is clamped to the input
    fn new(from: usize, to: usize) -> Self {
        let ratio = from as f64 / to as f64;
        let radius = ratio.max(1.0);
        let last = from as f64 - 1.0;
        Self(
            (0..to)
                .map(|i| {
                    let centre = (i as f64 + 0.5) * ratio - 0.5;
                    let start = (centre - radius).ceil().clamp(0.0, last) as usize;
                    let end = (centre + radius).floor().clamp(0.0, last) as usize;
                    let weights: Vec<f64> = (start..=end)
                        .map(|j| (1.0 - (j as f64 - centre).abs() / radius).max(0.0))
                        .collect();
                    // The centre lies within half a sample of some input sample and the
                    // radius is at least 1, so the total is positive.
                    let total: f64 = weights.iter().sum();
                    (
                        start,
                        weights.into_iter().map(|w| (w / total) as f32).collect(),
                    )
                })
                .collect(),
        )
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &[f32])> {
        self.0.iter().map(|(start, w)| (*start, w.as_slice()))
    }
}

/// One frame's keypoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameKeypoints {
    /// The frame's place in the clip, from 0.
    pub index: usize,
    /// `[x, y, confidence]` per joint in COCO order, in the frame's pixels; the confidence is
    /// the heatmap's peak.
    pub keypoints: Vec<[f64; 3]>,
    /// The mean confidence.
    pub score: f64,
}

/// The keypoints document (`keypoints.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// [`PREDICTIONS_FORMAT`].
    pub format: String,
    /// The clip: a path, or a file's name in the browser.
    pub input: String,
    /// The model: a run folder, or its files' names in the browser.
    pub model: String,
    /// The frames' size as read, `[width, height]`.
    pub frame_size: [usize; 2],
    /// COCO's names of the joints, in order.
    pub keypoint_names: Vec<String>,
    /// Every frame, in order.
    pub frames: Vec<FrameKeypoints>,
}

impl Predictions {
    /// The document for `frames` of a clip of `frame_size`.
    pub fn new(
        input: String,
        model: String,
        frame_size: [usize; 2],
        frames: Vec<FrameKeypoints>,
    ) -> Self {
        Self {
            format: PREDICTIONS_FORMAT.to_owned(),
            input,
            model,
            frame_size,
            keypoint_names: KEYPOINT_NAMES.iter().map(|&n| n.to_owned()).collect(),
            frames,
        }
    }
}

/// The frames a model reading windows of `t` frames sees for frame `i` of `n`: centred on it,
/// the first and last frames repeated at the ends.
pub fn window(i: usize, t: usize, n: usize) -> impl Iterator<Item = usize> {
    let last = n.saturating_sub(1);
    (0..t).map(move |j| (i + j).saturating_sub(t / 2).min(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> Frame {
        let mut frame = Frame::filled(width, height, [0, 0, 0]);
        for y in 0..height {
            for x in 0..width {
                #[allow(clippy::cast_possible_truncation)] // small test images
                frame.set_pixel(x, y, [(x * 7 % 256) as u8, (y * 11 % 256) as u8, 200]);
            }
        }
        frame
    }

    // An exact copy and an exact scale of 1: equal bit for bit.
    #[allow(clippy::float_cmp)]
    #[test]
    fn a_frame_of_the_models_size_is_copied_exactly() {
        let frame = gradient(48, 32);
        let fit = Letterbox::new([48, 32], [48, 32]);
        assert_eq!(fit.apply(&frame), Some(frame));
        assert_eq!(fit.back([10.25, 3.5]), [10.25, 3.5]);
    }

    #[test]
    fn halving_averages_each_two_by_two_block_and_keeps_a_constant_colour() {
        let frame = gradient(8, 4);
        let small = Letterbox::new([8, 4], [4, 2]).apply(&frame).unwrap();
        // A triangle of radius 2 centred between samples 2i and 2i + 1 weighs them 3:3 and
        // their outer neighbours 1:1; along x the gradient is linear, so the mean stays.
        let frame = &frame;
        for (x, y) in [(1, 0), (2, 1)] {
            let expected = (0..2)
                .flat_map(|dy| {
                    (0..2).map(move |dx| f64::from(frame.pixel(2 * x + dx, 2 * y + dy)[0]))
                })
                .sum::<f64>()
                / 4.0;
            assert!(
                (f64::from(small.pixel(x, y)[0]) - expected).abs() <= 1.0,
                "{x},{y}"
            );
        }
        let flat = Letterbox::new([37, 23], [11, 5])
            .apply(&Frame::filled(37, 23, [9, 99, 250]))
            .unwrap();
        assert!(
            flat.pixels
                .chunks(3)
                .all(|p| p == [9, 99, 250] || p == MARGIN)
        );
    }

    // A clamped coordinate is exactly 0.
    #[allow(clippy::float_cmp)]
    #[test]
    fn a_wide_frame_is_centred_with_grey_above_and_below_and_points_map_back() {
        let fit = Letterbox::new([200, 100], [96, 72]);
        let out = fit.apply(&Frame::filled(200, 100, [10, 20, 30])).unwrap();
        // 200×100 at 0.48 is 96×48, 12 rows of grey above and below.
        assert_eq!(out.pixel(50, 11), MARGIN);
        assert_eq!(out.pixel(50, 12), [10, 20, 30]);
        assert_eq!(out.pixel(50, 59), [10, 20, 30]);
        assert_eq!(out.pixel(50, 60), MARGIN);
        let [x, y] = fit.back([48.0, 36.0]);
        assert!((x - 100.0).abs() < 1e-9 && (y - 50.0).abs() < 1e-9);
        // A point in the margin is clamped to the frame.
        assert_eq!(fit.back([48.0, 1.0])[1], 0.0);
        assert_eq!(fit.apply(&Frame::filled(100, 100, [0, 0, 0])), None);
    }

    #[test]
    fn sides_fit_within_the_limit_and_stay_even() {
        assert_eq!(fit_within(1768, 994), [640, 358]);
        assert_eq!(fit_within(321, 240), [320, 240]);
        assert_eq!(fit_within(1, 1), [2, 2]);
        assert_eq!(read_size(321, 240, false), [321, 240]);
        assert_eq!(read_size(321, 240, true), [320, 240]);
        assert_eq!(read_size(1768, 994, false), [640, 358]);
    }

    #[test]
    fn windows_are_centred_and_repeat_the_ends() {
        assert_eq!(window(0, 3, 5).collect::<Vec<_>>(), [0, 0, 1]);
        assert_eq!(window(2, 3, 5).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(window(4, 3, 5).collect::<Vec<_>>(), [3, 4, 4]);
        assert_eq!(window(0, 1, 1).collect::<Vec<_>>(), [0]);
    }
}

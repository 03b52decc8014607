//! Prediction: heatmaps decoded to keypoints for clips and frame windows, and the scores of
//! key-frame predictions against their labels.

use burn::tensor::Tensor;
use fuselab_shared::pose::eval::Prediction;
use fuselab_shared::pose::heatmap::decode;
use fuselab_shared::pose::score::{Scores, person, score};
use fuselab_shared::pose::video::{FrameKeypoints, Letterbox, window};
use fuselab_shared::pose::{Clip, Frame, NUM_KEYPOINTS, Split};

use super::batch::{frames_tensor, heatmap_spec, windows_tensor};
use super::model::PoseModel;
use super::train::{ClipSource, TrainError};

/// The key frame's keypoints of each clip: decoded heatmaps, scored by the mean peak.
///
/// # Errors
/// [`TrainError::Data`] when the clips do not suit the model.
pub fn predict(model: &PoseModel, clips: &[Clip]) -> Result<Vec<Prediction>, TrainError> {
    let frames = frames_tensor(clips, &model.config, &model.device())?;
    Ok(decode_all(model, frames)?
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

/// The key frame's keypoints of each window, and each joint's heatmap peak (its confidence).
///
/// # Errors
/// [`TrainError::Data`] when the windows do not suit the model.
pub fn predict_windows(
    model: &PoseModel,
    windows: &[Vec<&Frame>],
) -> Result<Vec<(Prediction, [f32; NUM_KEYPOINTS])>, TrainError> {
    if windows
        .first()
        .is_some_and(|w| w.len() != model.config.frames())
    {
        return Err(TrainError::Data(format!(
            "windows of {} frames; the model reads {}",
            windows[0].len(),
            model.config.frames()
        )));
    }
    decode_all(model, windows_tensor(windows, &model.device())?)
}

/// Windows run through the model at once by [`video_keypoints`].
pub const VIDEO_BATCH: usize = 8;

/// Keypoints of frames `range` of a video whose frames `small` were letterboxed by `fit`, in
/// the video's pixels: each frame is the key frame of a window centred on it (the first and
/// last frames repeated at the ends). The CLI and the browser call this with the whole clip
/// or a part of it, and get the same numbers for the same frames.
///
/// # Errors
/// [`TrainError::Data`] when the range leaves the clip or the frames do not suit the model.
pub fn video_keypoints(
    model: &PoseModel,
    small: &[Frame],
    fit: &Letterbox,
    range: std::ops::Range<usize>,
) -> Result<Vec<FrameKeypoints>, TrainError> {
    if range.end > small.len() || range.start > range.end {
        return Err(TrainError::Data(format!(
            "frames {}..{} of a clip of {}",
            range.start,
            range.end,
            small.len()
        )));
    }
    let t = model.config.frames();
    let mut out = Vec::with_capacity(range.len());
    let indices: Vec<usize> = range.collect();
    for chunk in indices.chunks(VIDEO_BATCH) {
        let windows: Vec<Vec<&Frame>> = chunk
            .iter()
            .map(|&i| window(i, t, small.len()).map(|j| &small[j]).collect())
            .collect();
        for (&index, (prediction, peaks)) in chunk.iter().zip(predict_windows(model, &windows)?) {
            let keypoints = (0..NUM_KEYPOINTS)
                .map(|k| {
                    let [x, y] = fit.back(prediction.keypoints[k]);
                    [x, y, f64::from(peaks[k])]
                })
                .collect();
            out.push(FrameKeypoints {
                index,
                keypoints,
                score: prediction.score,
            });
        }
    }
    Ok(out)
}

fn decode_all(
    model: &PoseModel,
    frames: Tensor<5>,
) -> Result<Vec<(Prediction, [f32; NUM_KEYPOINTS])>, TrainError> {
    let [n, _, _, height, width] = frames.dims();
    let spec = heatmap_spec(&model.config, width, height)?;
    let maps = crate::llm::values(model.forward(frames).heatmaps);
    let cells = spec.cells();
    Ok((0..n)
        .map(|i| {
            let mut peaks = [0.0_f32; NUM_KEYPOINTS];
            let keypoints = std::array::from_fn(|k| {
                let at = (i * NUM_KEYPOINTS + k) * cells;
                let ([x, y], peak) = decode(&spec, &maps[at..at + cells]);
                peaks[k] = peak;
                [f64::from(x), f64::from(y)]
            });
            #[allow(clippy::cast_precision_loss)] // 17
            let score = peaks.iter().map(|&p| f64::from(p)).sum::<f64>() / NUM_KEYPOINTS as f64;
            (Prediction { keypoints, score }, peaks)
        })
        .collect())
}

/// Each clip's key-frame prediction beside its label, in batches of `batch_size`.
///
/// # Errors
/// A clip that cannot be produced or does not suit the model.
pub fn predict_split(
    model: &PoseModel,
    source: &dyn ClipSource,
    split: Split,
    indices: &[usize],
    batch_size: usize,
) -> Result<Vec<(Clip, Prediction)>, TrainError> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(batch_size.max(1)) {
        let clips = chunk
            .iter()
            .map(|&i| source.clip(split, i))
            .collect::<Result<Vec<_>, _>>()?;
        let predictions = predict(model, &clips)?;
        out.extend(clips.into_iter().zip(predictions));
    }
    Ok(out)
}

/// Scores of key-frame predictions against their clips' labels.
pub fn score_clips(pairs: &[(Clip, Prediction)]) -> Scores {
    let scored: Vec<_> = pairs
        .iter()
        .map(|(clip, prediction)| {
            let key = clip.labels.len() / 2;
            (person(&clip.labels[key]), prediction.clone())
        })
        .collect();
    score(&scored)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use fuselab_shared::pose::{SyntheticConfig, generate_clip};

    use super::*;
    use crate::pose::config::{PoseConfig, PoseVariant};

    /// Frames of one synthetic clip, 64×48, as a "video" of a larger size.
    fn video() -> (Vec<Frame>, Letterbox) {
        let config = SyntheticConfig {
            width: 64,
            height: 48,
            frames: 5,
            ..SyntheticConfig::default()
        };
        let clip = generate_clip(&config, Split::Test, 0).unwrap();
        let fit = Letterbox::new([64, 48], [48, 32]);
        let small = clip.frames.iter().map(|f| fit.apply(f).unwrap()).collect();
        (small, fit)
    }

    #[test]
    fn a_video_in_parts_gives_the_keypoints_of_the_whole_within_the_frame() {
        let device = Device::flex();
        let config = PoseConfig {
            variant: PoseVariant::JmPose,
            width: 8,
            offset_groups: 2,
            jmml_blocks: 1,
            ..PoseConfig::default()
        };
        let model = PoseModel::init(&config, &device, 1).unwrap();
        let (small, fit) = video();
        let whole = video_keypoints(&model, &small, &fit, 0..5).unwrap();
        assert_eq!(
            whole.iter().map(|f| f.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let mut parts = video_keypoints(&model, &small, &fit, 0..2).unwrap();
        parts.extend(video_keypoints(&model, &small, &fit, 2..5).unwrap());
        for (a, b) in whole.iter().zip(&parts) {
            assert_eq!(a.index, b.index);
            for (p, q) in a.keypoints.iter().zip(&b.keypoints) {
                assert!(
                    p.iter().zip(q).all(|(u, v)| (u - v).abs() < 1e-4),
                    "{p:?} {q:?}"
                );
            }
        }
        for frame in &whole {
            assert_eq!(frame.keypoints.len(), NUM_KEYPOINTS);
            for &[x, y, _] in &frame.keypoints {
                assert!((0.0..=64.0).contains(&x) && (0.0..=48.0).contains(&y));
            }
        }
        assert!(video_keypoints(&model, &small, &fit, 3..6).is_err());
    }
}

//! Prediction: heatmaps decoded to keypoints for clips and frame windows, and the scores of
//! key-frame predictions against their labels.

use burn::tensor::Tensor;
use fuselab_shared::pose::eval::Prediction;
use fuselab_shared::pose::heatmap::decode;
use fuselab_shared::pose::score::{Scores, person, score};
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

//! Batches of clip windows centred on each clip's middle frame (the key frame): frames as
//! `[n, t, 3, H, W]` tensors, Gaussian targets and joint weights.

use burn::tensor::{Device, Tensor, TensorData};
use fuselab_shared::pose::heatmap::{HeatmapSpec, encode};
use fuselab_shared::pose::{Clip, Frame, NUM_KEYPOINTS};

use super::config::{PoseConfig, STRIDE};
use super::train::TrainError;

/// A batch on the device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[n, t, 3, H, W]`, RGB in `[0, 1]`.
    pub frames: Tensor<5>,
    /// Gaussian targets of every frame, `[n, t, 17, H/4, W/4]`.
    pub targets: Tensor<5>,
    /// 1 for a labelled joint whose peak is on the heatmap, `[n, t, 17]`.
    pub weights: Tensor<3>,
}

/// The heatmap layout of frames `width × height` for `config`.
///
/// # Errors
/// [`TrainError::Data`] when a side is not a multiple of the stride.
pub fn heatmap_spec(
    config: &PoseConfig,
    width: usize,
    height: usize,
) -> Result<HeatmapSpec, TrainError> {
    if !width.is_multiple_of(STRIDE) || !height.is_multiple_of(STRIDE) || width == 0 || height == 0
    {
        return Err(TrainError::Data(format!(
            "frames are {width}×{height} pixels; the model needs sides that are positive multiples of {STRIDE}"
        )));
    }
    #[allow(clippy::cast_precision_loss)] // the stride is 4
    let stride = STRIDE as f32;
    Ok(HeatmapSpec {
        width: width / STRIDE,
        height: height / STRIDE,
        stride,
        sigma: config.sigma,
    })
}

/// The frames a model reads from `clip`: a window of `config.frames()` centred on the clip's
/// middle frame (the key frame).
///
/// # Errors
/// [`TrainError::Data`] when the clip is shorter than the window.
pub fn window(clip: &Clip, config: &PoseConfig) -> Result<std::ops::Range<usize>, TrainError> {
    let (len, need) = (clip.frames.len(), config.frames());
    if len < need {
        return Err(TrainError::Data(format!(
            "clip {} of {} has {len} frames; the model reads {need}",
            clip.index, clip.split
        )));
    }
    let start = len / 2 - need / 2;
    Ok(start..start + need)
}

/// Frames as `[t, 3, H, W]` values in `[0, 1]`, appended to `out`.
fn push_frames(out: &mut Vec<f32>, frames: &[&Frame]) {
    for frame in frames {
        for channel in 0..3 {
            out.extend(
                frame
                    .pixels
                    .iter()
                    .skip(channel)
                    .step_by(3)
                    .map(|&v| f32::from(v) / 255.0),
            );
        }
    }
}

/// Frames of `clips` as a `[n, t, 3, H, W]` tensor.
///
/// # Errors
/// [`TrainError::Data`] when the clips are too short or of different sizes.
pub fn frames_tensor(
    clips: &[Clip],
    config: &PoseConfig,
    device: &Device,
) -> Result<Tensor<5>, TrainError> {
    let windows = clips
        .iter()
        .map(|clip| Ok(clip.frames[window(clip, config)?].iter().collect()))
        .collect::<Result<Vec<Vec<&Frame>>, TrainError>>()?;
    windows_tensor(&windows, device)
}

/// Windows of frames (each `t` frames, key frame in the middle) as a `[n, t, 3, H, W]` tensor.
///
/// # Errors
/// [`TrainError::Data`] when there is no window, or the windows differ in length or frame size.
pub fn windows_tensor(windows: &[Vec<&Frame>], device: &Device) -> Result<Tensor<5>, TrainError> {
    let first = windows
        .first()
        .and_then(|w| w.first())
        .ok_or_else(|| TrainError::Data("an empty batch".to_owned()))?;
    let (width, height) = (first.width, first.height);
    let t = windows[0].len();
    let mut values = Vec::with_capacity(windows.len() * t * 3 * width * height);
    for (i, window) in windows.iter().enumerate() {
        if window.len() != t
            || window
                .iter()
                .any(|f| f.width != width || f.height != height)
        {
            return Err(TrainError::Data(format!(
                "window {i} of its batch is not {t} frames of {width}×{height} like the first"
            )));
        }
        push_frames(&mut values, window);
    }
    Ok(Tensor::from_data(
        TensorData::new(values, [windows.len(), t, 3, height, width]),
        device,
    ))
}

/// A training batch: frames, targets and weights.
///
/// # Errors
/// [`TrainError::Data`] when the clips do not suit the model.
pub fn batch(clips: &[Clip], config: &PoseConfig, device: &Device) -> Result<Batch, TrainError> {
    let frames = frames_tensor(clips, config, device)?;
    let [n, t, _, height, width] = frames.dims();
    let spec = heatmap_spec(config, width, height)?;
    let mut targets = Vec::with_capacity(n * t * NUM_KEYPOINTS * spec.cells());
    let mut weights = Vec::with_capacity(n * t * NUM_KEYPOINTS);
    for clip in clips {
        for label in &clip.labels[window(clip, config)?] {
            let (maps, w) = encode(&spec, &label.keypoints, &label.visibility);
            targets.extend(maps);
            weights.extend(w);
        }
    }
    Ok(Batch {
        frames,
        targets: Tensor::from_data(
            TensorData::new(targets, [n, t, NUM_KEYPOINTS, spec.height, spec.width]),
            device,
        ),
        weights: Tensor::from_data(TensorData::new(weights, [n, t, NUM_KEYPOINTS]), device),
    })
}

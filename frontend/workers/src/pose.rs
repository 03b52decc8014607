//! The pose worker's entry points: a model from `fuselab pose train`'s two files, a clip's
//! frames letterboxed as they arrive, and keypoints for a range of frames — the CLI's code
//! (`fuselab_ml::pose::predict::video_keypoints`) running in this browser. The clip stays here.

use std::cell::RefCell;

use fuselab_ml::pose::model::PoseModel;
use fuselab_ml::pose::predict::video_keypoints;
use fuselab_ml::pose::saved;
use fuselab_shared::pose::Frame;
use fuselab_shared::pose::video::{Letterbox, read_size};
use wasm_bindgen::prelude::*;

use fuselab_shared::worker::pose::{MAX_FRAMES, ModelInfo};

struct Session {
    model: PoseModel,
    frame_size: [usize; 2],
    /// The clip being read: its letterbox and its frames at the model's size.
    clip: Option<(Letterbox, Vec<Frame>)>,
}

thread_local! {
    // One model per worker (burn devices are not Send).
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

fn with_session<T>(f: impl FnOnce(&mut Session) -> Result<T, JsError>) -> Result<T, JsError> {
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        let session = s
            .as_mut()
            .ok_or_else(|| JsError::new("no pose model is loaded"))?;
        f(session)
    })
}

/// Builds the model from `model.json` and `model.safetensors`; returns its [`ModelInfo`] as
/// JSON. A model loaded before is replaced.
///
/// # Errors
/// Files that are not a fuselab pose model, named.
#[wasm_bindgen(js_name = poseLoadModel)]
pub fn pose_load_model(description: &[u8], weights: &[u8]) -> Result<String, JsError> {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    let (model, frame_size) = saved::from_bytes(description, weights, &device)?;
    let info = ModelInfo {
        variant: model.config.variant.name().to_owned(),
        frames: model.config.frames(),
        frame_size,
        parameters: model
            .params
            .values()
            .map(|p| p.dims().iter().product::<usize>())
            .sum(),
    };
    SESSION.with(|s| {
        *s.borrow_mut() = Some(Session {
            model,
            frame_size,
            clip: None,
        });
    });
    serde_json::to_string(&info).map_err(|e| JsError::new(&e.to_string()))
}

/// Starts a clip whose frames are `width × height` pixels (a video's, or still images'),
/// forgetting the last one; returns the size its frames are to be sent at, `[width, height]`,
/// as `fuselab pose predict` reads them ([`read_size`]).
///
/// # Errors
/// No model, or frames of no size.
#[wasm_bindgen(js_name = poseBegin)]
pub fn pose_begin(width: u32, height: u32, video: bool) -> Result<Vec<u32>, JsError> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 {
        return Err(JsError::new(&format!("frames of {w}×{h} pixels")));
    }
    let size = read_size(w, h, video);
    with_session(|session| {
        session.clip = Some((Letterbox::new(size, session.frame_size), Vec::new()));
        Ok(size
            .iter()
            .map(|&side| u32::try_from(side).unwrap_or(u32::MAX))
            .collect())
    })
}

/// Adds the clip's next frame (RGBA, the size given to [`pose_begin`]); returns how many
/// frames the clip has now.
///
/// # Errors
/// No clip begun, a frame of another size, or more than [`MAX_FRAMES`] frames.
#[wasm_bindgen(js_name = poseAddFrame)]
pub fn pose_add_frame(rgba: &[u8], width: u32, height: u32) -> Result<usize, JsError> {
    with_session(|session| {
        let (fit, frames) = session
            .clip
            .as_mut()
            .ok_or_else(|| JsError::new("no clip is begun"))?;
        let [w, h] = fit.frame_size();
        if [width as usize, height as usize] != [w, h] || rgba.len() != w * h * 4 {
            return Err(JsError::new(&format!(
                "frame {} is {width}×{height} pixels ({} bytes); the clip's frames are {w}×{h}",
                frames.len(),
                rgba.len()
            )));
        }
        if frames.len() >= MAX_FRAMES {
            return Err(JsError::new(&format!(
                "a clip of more than {MAX_FRAMES} frames; `fuselab pose predict` reads longer ones"
            )));
        }
        let frame = Frame {
            width: w,
            height: h,
            pixels: rgba
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        };
        let small = fit
            .apply(&frame)
            .ok_or_else(|| JsError::new("the frame does not fit the clip"))?;
        frames.push(small);
        Ok(frames.len())
    })
}

/// Keypoints of frames `start..end` of the clip, as JSON
/// ([`FrameKeypoints`](fuselab_shared::pose::video::FrameKeypoints) per frame).
///
/// # Errors
/// No clip, or a range outside it.
#[wasm_bindgen(js_name = posePredict)]
pub fn pose_predict(start: usize, end: usize) -> Result<String, JsError> {
    with_session(|session| {
        let (fit, frames) = session
            .clip
            .as_ref()
            .ok_or_else(|| JsError::new("no clip is begun"))?;
        let keypoints = video_keypoints(&session.model, frames, fit, start..end)?;
        serde_json::to_string(&keypoints).map_err(|e| JsError::new(&e.to_string()))
    })
}

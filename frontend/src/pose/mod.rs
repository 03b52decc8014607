//! The Pose page: 17 body keypoints in every frame of a short clip, with a JM-Pose model from
//! `fuselab pose train`, computed in this browser. The page decodes the clip (a video seeked
//! frame by frame, or still frames), the pose worker runs the CLI's prediction code compiled to
//! wasm, and the skeletons are drawn over the clip, frame by frame, scrubbable. Neither the clip
//! nor the model is uploaded.

mod server;
mod train;

use fuselab_shared::pose::SKELETON;
use fuselab_shared::pose::video::{FrameKeypoints, Predictions};
use fuselab_shared::worker::pose::{MAX_FRAMES, ModelInfo};
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::faces::files_of;

/// Joints whose heatmap peak is below this are not drawn (as `pose predict` draws them).
const DRAW_THRESHOLD: f64 = 0.1;

#[wasm_bindgen(module = "/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = downloadText)]
    fn download_text(name: &str, mime: &str, text: &str);
}

#[wasm_bindgen(module = "/pose.js")]
extern "C" {
    #[wasm_bindgen(js_name = loadPoseModel)]
    fn load_pose_model(files: &js_sys::Array, on_done: JsValue, on_error: JsValue);
    #[wasm_bindgen(js_name = loadServerPoseModel)]
    fn load_server_pose_model(run: &str, name: &str, on_done: JsValue, on_error: JsValue);
    #[wasm_bindgen(js_name = runPose)]
    fn run_pose(
        files: &js_sys::Array,
        fps: f64,
        max_frames: usize,
        on_progress: JsValue,
        on_done: JsValue,
        on_error: JsValue,
    );
    #[wasm_bindgen(js_name = showPose)]
    fn show_pose(frames_json: &str, drawing_json: &str);
}

/// What `runPose` reports besides the keypoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct ClipInfo {
    /// The video's name, or the first frame's with the count.
    input: String,
    /// The frames' size as read.
    width: usize,
    height: usize,
    /// Frames per second read from a video; `None` for still frames.
    fps: Option<f64>,
    /// Milliseconds spent decoding and letterboxing, and in the model.
    decode_ms: f64,
    predict_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum ModelState {
    None,
    Loading,
    Ready { info: ModelInfo, names: String },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
enum ClipState {
    Idle,
    Working(String),
    Done(Box<(ClipInfo, Predictions)>),
    Failed(String),
}

fn names_of(files: &js_sys::Array) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| js_sys::Reflect::get(&f, &"name".into()).ok()?.as_string())
        .collect()
}

fn model_line(state: &ModelState) -> String {
    match state {
        ModelState::None => "No model yet.".to_owned(),
        ModelState::Loading => "Building the model…".to_owned(),
        ModelState::Ready { info, names } => format!(
            "{names}: {} reading {} frame{} of {}×{} pixels, {:.2} M parameters.",
            match info.variant.as_str() {
                "jm_pose" => "JM-Pose",
                "fusion" => "multi-frame fusion",
                "single_frame" => "single frame",
                other => other,
            },
            info.frames,
            if info.frames == 1 { "" } else { "s" },
            info.frame_size[0],
            info.frame_size[1],
            info.parameters as f64 / 1e6
        ),
        ModelState::Failed(message) => message.clone(),
    }
}

/// The summary line of a finished clip.
fn summary(info: &ClipInfo, predictions: &Predictions) -> String {
    let n = predictions.frames.len();
    let mean = predictions.frames.iter().map(|f| f.score).sum::<f64>() / n.max(1) as f64;
    let source = match info.fps {
        Some(fps) => format!("{n} frames at {fps} per second"),
        None => format!("{n} still frames"),
    };
    format!(
        "{source}, {}×{} pixels · mean confidence {mean:.3} · decoding {:.1} s · model {:.0} ms per frame",
        info.width,
        info.height,
        info.decode_ms / 1000.0,
        info.predict_ms / n.max(1) as f64
    )
}

/// The JSON `showPose` draws with: the skeleton's edges and the confidence threshold.
fn drawing() -> String {
    serde_json::json!({ "edges": SKELETON, "threshold": DRAW_THRESHOLD }).to_string()
}

/// Marks the model as loading and returns the worker's callbacks: its description (JSON) makes
/// the model `names` ready; a message makes it failed.
fn loading(
    model: RwSignal<ModelState>,
    clip: RwSignal<ClipState>,
    names: String,
) -> (JsValue, JsValue) {
    model.set(ModelState::Loading);
    clip.set(ClipState::Idle);
    let on_done = Closure::<dyn FnMut(String)>::new(move |json: String| {
        model.set(match serde_json::from_str::<ModelInfo>(&json) {
            Ok(info) => ModelState::Ready {
                info,
                names: names.clone(),
            },
            Err(e) => ModelState::Failed(format!("the worker's answer could not be read: {e}")),
        });
    });
    let on_error = Closure::<dyn FnMut(String)>::new(move |message: String| {
        model.set(ModelState::Failed(message));
    });
    (on_done.into_js_value(), on_error.into_js_value())
}

/// The model's files and what the worker made of them.
#[component]
fn ModelChooser(
    model: RwSignal<ModelState>,
    clip: RwSignal<ClipState>,
    trained: RwSignal<u32>,
) -> impl IntoView {
    let on_model = move |event: web_sys::Event| {
        let files = files_of(&event);
        let (on_done, on_error) = loading(model, clip, names_of(&files).join(" + "));
        load_pose_model(&files, on_done, on_error);
    };

    view! {
        <label for="pose-model">
            "Model: "<code>"model.json"</code>" and "<code>"model.safetensors"</code>
            " from a "<code>"fuselab pose train"</code>" run folder"
        </label>
        <input id="pose-model" type="file" accept=".json,.safetensors" multiple on:change=on_model />
        <server::ServerModels model=model clip=clip trained=trained />
        <p id="pose-model-status" class=move || if matches!(model.get(), ModelState::Failed(_)) { "error" } else { "note" }>
            {move || model_line(&model.get())}
        </p>
        <p class="note">
            "A model trained on fuselab's synthetic figures finds their joints; on people in real
            video it is a demonstration of the pipeline, not of accuracy (see docs/pose.md)."
        </p>
    }
}

/// The clip with its skeletons, the frame slider and the keypoints' download.
#[component]
fn Player(clip: RwSignal<ClipState>) -> impl IntoView {
    let download = move |_| {
        if let ClipState::Done(done) = clip.get_untracked() {
            let (_, predictions) = &*done;
            if let Ok(text) = serde_json::to_string_pretty(predictions) {
                download_text("keypoints.json", "application/json", &text);
            }
        }
    };

    let done = move || matches!(clip.get(), ClipState::Done(_));
    view! {
        <div id="pose-player" hidden=move || !done()>
            <div id="pose-stage">
                <video id="pose-video" muted playsinline></video>
                <canvas id="pose-canvas"></canvas>
            </div>
            <div class="actions">
                <button id="pose-previous" aria-label="Previous frame">"◀"</button>
                <button id="pose-play">"Play"</button>
                <button id="pose-next" aria-label="Next frame">"▶"</button>
                <input id="pose-scrub" type="range" min="0" value="0" aria-label="Frame" />
                <span id="pose-frame" aria-live="polite"></span>
            </div>
            <button id="pose-download" on:click=download>"Download keypoints.json"</button>
        </div>
    }
}

/// The page.
#[component]
pub fn PosePage() -> impl IntoView {
    let model = RwSignal::new(ModelState::None);
    let clip = RwSignal::new(ClipState::Idle);
    let trained = RwSignal::new(0_u32);
    let fps = RwSignal::new(30.0_f64);
    let max_frames = RwSignal::new(300_usize);
    let clip_files = StoredValue::new_local(None::<js_sys::Array>);

    let run = move || {
        let Some(files) = clip_files.get_value() else {
            clip.set(ClipState::Failed("Choose a clip first.".to_owned()));
            return;
        };
        let ModelState::Ready { names, .. } = model.get_untracked() else {
            clip.set(ClipState::Failed("Choose a model first.".to_owned()));
            return;
        };
        let (rate, limit) = (fps.get_untracked(), max_frames.get_untracked());
        if !(1.0..=120.0).contains(&rate) || !(1..=MAX_FRAMES).contains(&limit) {
            clip.set(ClipState::Failed(format!(
                "Frames per second from 1 to 120 and at most 1 to {MAX_FRAMES} frames, please."
            )));
            return;
        }
        clip.set(ClipState::Working("Reading the clip…".to_owned()));
        let on_progress = Closure::<dyn FnMut(String)>::new(move |line: String| {
            clip.set(ClipState::Working(line));
        });
        let on_done =
            Closure::<dyn FnMut(String, String)>::new(move |frames: String, meta: String| {
                let parsed = serde_json::from_str::<Vec<FrameKeypoints>>(&frames)
                    .and_then(|f| Ok((f, serde_json::from_str::<ClipInfo>(&meta)?)));
                clip.set(match parsed {
                    Ok((list, info)) => {
                        let predictions = Predictions::new(
                            info.input.clone(),
                            names.clone(),
                            [info.width, info.height],
                            list,
                        );
                        show_pose(&frames, &drawing());
                        ClipState::Done(Box::new((info, predictions)))
                    }
                    Err(e) => {
                        ClipState::Failed(format!("the worker's answer could not be read: {e}"))
                    }
                });
            });
        let on_error = Closure::<dyn FnMut(String)>::new(move |message: String| {
            clip.set(ClipState::Failed(message));
        });
        run_pose(
            &files,
            rate,
            limit,
            on_progress.into_js_value(),
            on_done.into_js_value(),
            on_error.into_js_value(),
        );
    };

    let on_clip = move |event: web_sys::Event| {
        let files = files_of(&event);
        clip_files.set_value((files.length() > 0).then_some(files));
        clip.set(ClipState::Idle);
        if matches!(model.get_untracked(), ModelState::Ready { .. }) {
            run();
        }
    };

    view! {
        <section id="pose" class="tool" aria-labelledby="pose-title">
            <h2 id="pose-title">"Pose"</h2>
            <p>
                "The 17 body keypoints of one person in every frame of a short clip, found by a
                JM-Pose model in this browser: the same Rust code as "<code>"fuselab pose predict"</code>
                ", compiled to WebAssembly and run in a worker. The clip and the model stay on this
                device; nothing is uploaded."
            </p>
            <ModelChooser model=model clip=clip trained=trained />
            <label for="pose-clip">"Clip: a video (MP4, WebM) or its frames as PNG or JPEG images"</label>
            <input id="pose-clip" type="file" accept="video/*,image/png,image/jpeg" multiple on:change=on_clip />
            <div class="actions">
                <label for="pose-fps">"Frames per second read from a video"</label>
                <input id="pose-fps" type="number" min="1" max="120" step="any"
                    prop:value=move || fps.get().to_string()
                    on:change=move |e| fps.set(event_target_value(&e).parse().unwrap_or(f64::NAN)) />
                <label for="pose-max-frames">"At most this many frames"</label>
                <input id="pose-max-frames" type="number" min="1" max=MAX_FRAMES.to_string()
                    prop:value=move || max_frames.get().to_string()
                    on:change=move |e| max_frames.set(event_target_value(&e).parse().unwrap_or(0)) />
                <button id="pose-run" on:click=move |_| run()
                    disabled=move || matches!(clip.get(), ClipState::Working(_))>"Find the poses"</button>
            </div>
            <p id="pose-status" class=move || if matches!(clip.get(), ClipState::Failed(_)) { "error" } else { "note" }>
                {move || match clip.get() {
                    ClipState::Idle => String::new(),
                    ClipState::Working(line) | ClipState::Failed(line) => line,
                    ClipState::Done(done) => summary(&done.0, &done.1),
                }}
            </p>
            <Player clip=clip />
        </section>
        <train::TrainOnServer trained=trained />
    }
}

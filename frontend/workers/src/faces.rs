//! The face worker's entry points: the face stack of `fuselab_ml`, built once from the weight
//! files the worker fetched, run on RGBA pixels the page decoded. The photo stays in this
//! browser.

use std::cell::RefCell;

use fuselab_ml::{
    face::{Face, FaceEmbedder as _, FaceStack, FaceWeights, RgbImage, mtcnn::Mtcnn},
    tensors::read_safetensors,
};
use wasm_bindgen::prelude::*;

use fuselab_shared::worker::face::{FoundFaces, Millis, ModelInfo};

/// Milliseconds since the last lap.
struct Stopwatch(f64);

impl Stopwatch {
    fn lap(&mut self) -> f64 {
        let now = js_sys::Date::now();
        let elapsed = now - self.0;
        self.0 = now;
        elapsed
    }
}

thread_local! {
    // Built by `loadFaceStack`, kept for the worker's life (burn devices are not Send).
    static STACK: RefCell<Option<FaceStack>> = const { RefCell::new(None) };
    // Built by `loadDetector` for pages that only need the boxes (the Protect page).
    static DETECTOR: RefCell<Option<(Mtcnn, fuselab_ml::Device)>> = const { RefCell::new(None) };
}

/// Builds MTCNN alone from its three networks (safetensors, as the server converts them).
///
/// # Errors
/// A file that is not the network it should be, named.
#[wasm_bindgen(js_name = loadDetector)]
pub fn load_detector(pnet: &[u8], rnet: &[u8], onet: &[u8]) -> Result<(), JsError> {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    let mtcnn = Mtcnn::from_tensors(
        &read_safetensors(pnet, "pnet.safetensors")?,
        &read_safetensors(rnet, "rnet.safetensors")?,
        &read_safetensors(onet, "onet.safetensors")?,
        &device,
    )?;
    DETECTOR.with(|d| *d.borrow_mut() = Some((mtcnn, device)));
    Ok(())
}

/// MTCNN's detections (boxes, scores, landmarks) in an RGBA photo, largest first, as JSON.
///
/// # Errors
/// No detector is loaded, or the pixels do not match the size.
#[wasm_bindgen(js_name = detectFaces)]
pub fn detect_faces(rgba: &[u8], width: u32, height: u32) -> Result<String, JsError> {
    let image = rgb(rgba, width, height)?;
    let detections = DETECTOR.with(|detector| {
        if let Some((mtcnn, device)) = detector.borrow().as_ref() {
            return Ok(mtcnn.detect(&image, device));
        }
        STACK.with(|stack| {
            stack
                .borrow()
                .as_ref()
                .map(|s| s.mtcnn.detect(&image, &s.device))
                .ok_or_else(|| JsError::new("the face detector is not loaded"))
        })
    })?;
    serde_json::to_string(&detections).map_err(|e| JsError::new(&e.to_string()))
}

/// RGBA pixels as an RGB image, checked against the size.
fn rgb(rgba: &[u8], width: u32, height: u32) -> Result<RgbImage, JsError> {
    let (w, h) = (width as usize, height as usize);
    if rgba.len() != w * h * 4 {
        return Err(JsError::new(&format!(
            "{} bytes of pixels for a {width}×{height} RGBA image, expected {}",
            rgba.len(),
            w * h * 4
        )));
    }
    let pixels = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::new(w, h, pixels).ok_or_else(|| JsError::new("pixel count mismatch"))
}

/// Builds the face stack from the weight files, in the order `face-worker.js` fetches them.
///
/// # Errors
/// A file that is not the model it should be, named.
#[wasm_bindgen(js_name = loadFaceStack)]
pub fn load_face_stack(
    pnet: &[u8],
    rnet: &[u8],
    onet: &[u8],
    shape_predictor: &[u8],
    dlib: &[u8],
    faceres_manifest: &[u8],
    faceres_weights: &[u8],
) -> Result<(), JsError> {
    let nets = [
        read_safetensors(pnet, "pnet.safetensors")?,
        read_safetensors(rnet, "rnet.safetensors")?,
        read_safetensors(onet, "onet.safetensors")?,
    ];
    let manifest = std::str::from_utf8(faceres_manifest)
        .map_err(|e| JsError::new(&format!("faceres.json is not UTF-8 ({e})")))?;
    let weights = FaceWeights {
        mtcnn: [&nets[0], &nets[1], &nets[2]],
        shape_predictor,
        dlib,
        faceres_manifest: manifest,
        faceres_weights,
    };
    let stack = FaceStack::from_weights(&weights, fuselab_ml::open(fuselab_ml::Compute::Cpu)?)?;
    STACK.with(|s| *s.borrow_mut() = Some(stack));
    Ok(())
}

/// Every face in an RGBA photo, largest first, as [`FoundFaces`] JSON.
///
/// # Errors
/// The stack is not loaded, or the pixels do not match the size.
#[wasm_bindgen(js_name = findFaces)]
pub fn find_faces(rgba: &[u8], width: u32, height: u32) -> Result<String, JsError> {
    let image = rgb(rgba, width, height)?;
    STACK.with(|stack| {
        let stack = stack.borrow();
        let stack = stack
            .as_ref()
            .ok_or_else(|| JsError::new("the face models are not loaded"))?;
        let mut clock = Stopwatch(js_sys::Date::now());
        let detections = stack.mtcnn.detect(&image, &stack.device);
        let detect_ms = clock.lap();
        let (mut align_ms, mut dlib_ms, mut faceres_ms) = (0.0, 0.0, 0.0);
        let mut faces = Vec::with_capacity(detections.len());
        for detection in detections {
            let Some((parts, chip)) = stack.align(&image, &detection) else {
                continue;
            };
            align_ms += clock.lap();
            let dlib = stack.dlib_descriptor(&chip);
            dlib_ms += clock.lap();
            let faceres = stack.faceres_descriptor(&chip);
            faceres_ms += clock.lap();
            faces.push(Face {
                detection,
                parts,
                dlib,
                faceres,
            });
        }
        let found = FoundFaces {
            width,
            height,
            faces,
            models: [stack.dlib.info(), stack.faceres.info()]
                .map(|info| ModelInfo {
                    name: info.name.to_owned(),
                    threshold: info.same_person_below,
                })
                .to_vec(),
            millis: Millis {
                detect: detect_ms,
                align: align_ms,
                dlib: dlib_ms,
                faceres: faceres_ms,
            },
        };
        serde_json::to_string(&found).map_err(|e| JsError::new(&e.to_string()))
    })
}

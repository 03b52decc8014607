//! The photos being protected: each one decoded, its faces found by MTCNN in the face worker,
//! the mask added on WebGPU (`shaders/apply_mask.wgsl`) or the CPU twin, and the result encoded
//! in the photo's format, all in this browser.

use std::collections::HashMap;

use fuselab_shared::face::Detection;
use fuselab_shared::mask::{FaceCanvas, apply, key::MaskKey, quality};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{field, message};

#[wasm_bindgen(module = "/protect.js")]
extern "C" {
    #[wasm_bindgen(js_name = decodeForProtection)]
    fn decode_for_protection(file: &JsValue) -> js_sys::Promise;
    #[wasm_bindgen(js_name = detectFaces)]
    fn detect_faces(rgba: &JsValue, width: u32, height: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = renderProtected)]
    fn render_protected(
        original: &[u8],
        masked: &[u8],
        width: u32,
        height: u32,
        kind: &str,
    ) -> js_sys::Promise;
    fn revoke(urls: Vec<String>);
}

/// One face's box (left, top, width, height) and its figures after protection.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceFigures {
    pub face: [usize; 4],
    pub ssim: Option<f64>,
    pub psnr: Option<f64>,
}

/// A protected photo: previews, the file to download, and what was done.
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    pub faces: Vec<FaceFigures>,
    /// The photo's size after EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// Previews (blob URLs) before and after.
    pub before: String,
    pub after: String,
    /// The protected photo, full size in its format: a blob URL and the `Blob`.
    pub download: String,
    pub blob: JsValue,
    pub bytes: f64,
    pub millis: f64,
    /// `WebGPU` or `CPU`.
    pub on: &'static str,
}

/// Where a photo stands.
#[derive(Debug, Clone, PartialEq)]
pub enum PhotoState {
    Working(&'static str),
    Done(Box<Protected>),
    NoFace,
    Failed(String),
}

/// A photo on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    pub name: String,
    /// The MIME type the download has.
    pub kind: String,
    pub state: PhotoState,
}

/// A decoded photo and its faces, kept so the strength slider can redo the protection.
struct Decoded {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    detections: Vec<Detection>,
}

/// The key in use and the page's decoded photos.
#[derive(Default)]
pub struct Store {
    pub key: Option<MaskKey>,
    decoded: HashMap<usize, Decoded>,
}

pub type Shared = StoredValue<Store, LocalStorage>;

/// Adds the mask to every face of `rgba` (WebGPU when it is running, else the CPU twin).
async fn mask_pixels(
    rgba: &mut [u8],
    width: usize,
    canvases: &[FaceCanvas],
    delta: &[f32],
    strength: f32,
) -> &'static str {
    if let Some(kernels) = crate::gpu::kernels() {
        let mut ok = true;
        for canvas in canvases {
            if let Err(error) = kernels
                .apply_mask
                .run(&kernels.gpu, rgba, width, canvas, delta, strength)
                .await
            {
                web_sys::console::warn_1(
                    &format!("WebGPU mask failed, using the CPU: {error}").into(),
                );
                ok = false;
                break;
            }
        }
        if ok {
            return "WebGPU";
        }
    }
    for canvas in canvases {
        apply(rgba, width, 4, canvas, delta, strength);
    }
    "CPU"
}

fn crop_rgb(rgba: &[u8], width: usize, [left, top, w, h]: [usize; 4]) -> Vec<f32> {
    let mut out = Vec::with_capacity(w * h * 3);
    for row in top..top + h {
        for col in left..left + w {
            let at = (row * width + col) * 4;
            out.extend(rgba[at..at + 3].iter().map(|&v| f32::from(v)));
        }
    }
    out
}

/// Sets photo `index`'s state, freeing the blob URLs of the one it replaces.
fn set_state(photos: RwSignal<Vec<Photo>>, index: usize, state: PhotoState) {
    photos.update(|list| {
        if let Some(photo) = list.get_mut(index) {
            if let PhotoState::Done(done) = &photo.state {
                revoke(vec![
                    done.before.clone(),
                    done.after.clone(),
                    done.download.clone(),
                ]);
            }
            photo.state = state;
        }
    });
}

/// Protects photo `index` at `strength` (0 to 1) and shows the result.
pub async fn protect(store: Shared, photos: RwSignal<Vec<Photo>>, index: usize, strength: f32) {
    let kind = photos.with_untracked(|list| list.get(index).map(|p| p.kind.clone()));
    let Some(kind) = kind else { return };
    let job = store.with_value(|store| {
        let (Some(key), Some(decoded)) = (&store.key, store.decoded.get(&index)) else {
            return None;
        };
        let canvases: Vec<FaceCanvas> = decoded
            .detections
            .iter()
            .filter_map(|d| {
                FaceCanvas::from_box(d.bbox, decoded.width as usize, decoded.height as usize)
            })
            .collect();
        Some((
            key.delta.clone(),
            decoded.rgba.clone(),
            decoded.width,
            decoded.height,
            canvases,
        ))
    });
    let Some((delta, original, width, height, canvases)) = job else {
        return;
    };
    if canvases.is_empty() {
        set_state(photos, index, PhotoState::NoFace);
        return;
    }
    let started = js_sys::Date::now();
    let mut masked = original.clone();
    let on = mask_pixels(&mut masked, width as usize, &canvases, &delta, strength).await;
    let millis = js_sys::Date::now() - started;
    let faces = canvases
        .iter()
        .map(|c| {
            let (a, b) = (
                crop_rgb(&masked, width as usize, c.face),
                crop_rgb(&original, width as usize, c.face),
            );
            FaceFigures {
                face: c.face,
                ssim: quality::ssim(&a, &b, c.face[3], c.face[2]),
                psnr: quality::psnr(&a, &b),
            }
        })
        .collect();
    let state =
        match JsFuture::from(render_protected(&original, &masked, width, height, &kind)).await {
            Ok(urls) => PhotoState::Done(Box::new(Protected {
                faces,
                width,
                height,
                before: field(&urls, "before").as_string().unwrap_or_default(),
                after: field(&urls, "after").as_string().unwrap_or_default(),
                download: field(&urls, "download").as_string().unwrap_or_default(),
                blob: field(&urls, "blob"),
                bytes: field(&urls, "bytes").as_f64().unwrap_or(0.0),
                millis,
                on,
            })),
            Err(error) => PhotoState::Failed(message(&error)),
        };
    set_state(photos, index, state);
}

/// Decodes photo `index`, finds its faces, and protects it.
pub async fn start_photo(
    store: Shared,
    photos: RwSignal<Vec<Photo>>,
    index: usize,
    file: JsValue,
    strength: f32,
) {
    let fail = move |text: String| set_state(photos, index, PhotoState::Failed(text));
    let decoded = match JsFuture::from(decode_for_protection(&file)).await {
        Ok(decoded) => decoded,
        Err(error) => return fail(message(&error)),
    };
    // Sizes of a decoded bitmap: whole, non-negative numbers.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let (width, height) = (
        field(&decoded, "width").as_f64().unwrap_or(0.0) as u32,
        field(&decoded, "height").as_f64().unwrap_or(0.0) as u32,
    );
    let rgba_js = field(&decoded, "rgba");
    let kind = field(&decoded, "type")
        .as_string()
        .unwrap_or_else(|| "image/png".to_owned());
    photos.update(|list| {
        if let Some(photo) = list.get_mut(index) {
            photo.kind = kind;
            photo.state = PhotoState::Working("Finding faces…");
        }
    });
    let detections = match JsFuture::from(detect_faces(&rgba_js, width, height)).await {
        Ok(json) => serde_json::from_str::<Vec<Detection>>(&json.as_string().unwrap_or_default()),
        Err(error) => return fail(message(&error)),
    };
    let detections = match detections {
        Ok(d) => d,
        Err(error) => return fail(format!("the detector's answer could not be read: {error}")),
    };
    let rgba = js_sys::Uint8Array::new(&rgba_js).to_vec();
    store.update_value(|s| {
        s.decoded.insert(
            index,
            Decoded {
                width,
                height,
                rgba,
                detections,
            },
        );
    });
    photos.update(|list| {
        if let Some(photo) = list.get_mut(index) {
            photo.state = PhotoState::Working("Adding your mask…");
        }
    });
    protect(store, photos, index, strength).await;
}

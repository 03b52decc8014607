//! The Protect page: load your mask key, drop photos, and every face in them gets the mask, on
//! WebGPU (`shaders/apply_mask.wgsl`) or on the CPU twin, in this browser; the protected photo
//! downloads at its original size and format. "Create my mask" sends a few photos of you to the
//! server, which learns the mask and hands the key back.

mod create;

use std::collections::HashMap;

use fuselab_ml::face::mtcnn::Detection;
use fuselab_shared::mask::{
    FaceCanvas, apply,
    key::{MaskKey, read_header, read_key},
    quality,
};
use leptos::{callback::UnsyncCallback, prelude::*};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::faces::{files_of, set_face_status};

#[wasm_bindgen(module = "/protect.js")]
extern "C" {
    #[wasm_bindgen(js_name = fileBytes)]
    fn file_bytes(file: &JsValue) -> js_sys::Promise;
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
    #[wasm_bindgen(js_name = protectedName)]
    fn protected_name(name: &str, kind: &str) -> String;
}

fn message(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}

fn field(object: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(object, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// One face's figures after protection.
#[derive(Debug, Clone, PartialEq)]
struct FaceFigures {
    face: [usize; 4],
    ssim: Option<f64>,
    psnr: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum PhotoState {
    Working(&'static str),
    Done {
        faces: Vec<FaceFigures>,
        before: String,
        after: String,
        download: String,
        bytes: f64,
        millis: f64,
        on: &'static str,
    },
    NoFace,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Photo {
    name: String,
    kind: String,
    state: PhotoState,
}

/// A decoded photo and its faces, kept so the strength slider can redo the protection.
struct Decoded {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    detections: Vec<Detection>,
}

/// The key in use and the page's photos.
#[derive(Default)]
struct Store {
    key: Option<MaskKey>,
    decoded: HashMap<usize, Decoded>,
}

type Shared = StoredValue<Store, LocalStorage>;

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

/// Protects photo `index` at `strength` and shows the result.
async fn protect(store: Shared, photos: RwSignal<Vec<Photo>>, index: usize, strength: f32) {
    let set = move |state: PhotoState| {
        photos.update(|list| {
            if let Some(photo) = list.get_mut(index) {
                if let PhotoState::Done {
                    before,
                    after,
                    download,
                    ..
                } = &photo.state
                {
                    revoke(vec![before.clone(), after.clone(), download.clone()]);
                }
                photo.state = state;
            }
        });
    };
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
        set(PhotoState::NoFace);
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
    match JsFuture::from(render_protected(&original, &masked, width, height, &kind)).await {
        Ok(urls) => set(PhotoState::Done {
            faces,
            before: field(&urls, "before").as_string().unwrap_or_default(),
            after: field(&urls, "after").as_string().unwrap_or_default(),
            download: field(&urls, "download").as_string().unwrap_or_default(),
            bytes: field(&urls, "bytes").as_f64().unwrap_or(0.0),
            millis,
            on,
        }),
        Err(error) => set(PhotoState::Failed(message(&error))),
    }
}

/// Decodes photo `index`, finds its faces, and protects it.
async fn start_photo(
    store: Shared,
    photos: RwSignal<Vec<Photo>>,
    index: usize,
    file: JsValue,
    strength: f32,
) {
    let fail = move |text: String| {
        photos.update(|list| {
            if let Some(photo) = list.get_mut(index) {
                photo.state = PhotoState::Failed(text);
            }
        });
    };
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
    protect(store, photos, index, strength).await;
}

fn photo_view(photo: Photo) -> impl IntoView {
    let body = match photo.state {
        PhotoState::Working(text) => view! { <p class="note">{text}</p> }.into_any(),
        PhotoState::Failed(text) => view! { <p class="error">{text}</p> }.into_any(),
        PhotoState::NoFace => view! {
            <p class="error">"No face found: this photo is not protected, and there is nothing to download."</p>
        }
        .into_any(),
        PhotoState::Done {
            faces,
            before,
            after,
            download,
            bytes,
            millis,
            on,
        } => {
            let name = protected_name(&photo.name, &photo.kind);
            let rows = faces
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let [l, t, w, h] = f.face;
                    view! {
                        <tr>
                            <td class="number">{i + 1}</td>
                            <td>{format!("{w}×{h} at ({l}, {t})")}</td>
                            <td class="number face-ssim">{f.ssim.map_or("–".to_owned(), |s| format!("{s:.4}"))}</td>
                            <td class="number">{f.psnr.map_or("–".to_owned(), |p| format!("{p:.1} dB"))}</td>
                        </tr>
                    }
                })
                .collect_view();
            let summary = format!(
                "{} face{} protected on {on} in {millis:.0} ms · {:.1} MB",
                faces.len(),
                if faces.len() == 1 { "" } else { "s" },
                bytes / 1e6
            );
            view! {
                <div class="before-after">
                    <figure><img class="protect-before" src=before alt="before" /><figcaption>"Before"</figcaption></figure>
                    <figure><img class="protect-after" src=after alt="after" /><figcaption>"After"</figcaption></figure>
                </div>
                <p class="protect-summary" data-on=on>{summary}</p>
                <table class="protect-faces">
                    <thead><tr><th>"face"</th><th>"box"</th><th>"SSIM"</th><th>"PSNR"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                <a class="protect-download button" href=download download=name.clone()>{format!("Download {name}")}</a>
            }
            .into_any()
        }
    };
    let name = photo.name.clone();
    view! {
        <article class="protect-photo" data-name=name>
            <h3>{photo.name}</h3>
            {body}
        </article>
    }
}

/// The page.
// One page's wiring: its signals, the key, photo and slider handlers, and the view.
#[allow(clippy::too_many_lines)]
#[component]
pub fn ProtectPage() -> impl IntoView {
    let store: Shared = StoredValue::new_local(Store::default());
    let photos = RwSignal::new(Vec::<Photo>::new());
    let key_status = RwSignal::new("Load your mask key (.p3m) to start.".to_owned());
    let loaded = RwSignal::new(false);
    let locked = RwSignal::new(None::<Vec<u8>>);
    let passphrase = RwSignal::new(String::new());
    let strength = RwSignal::new(100.0_f64);
    let detector_status = RwSignal::new(String::new());
    set_face_status(
        Closure::<dyn FnMut(String)>::new(move |line: String| detector_status.set(line))
            .into_js_value(),
    );

    let reprotect_all = move || {
        let count = photos.with_untracked(Vec::len);
        #[allow(clippy::cast_possible_truncation)]
        let s = (strength.get_untracked() / 100.0) as f32;
        for index in 0..count {
            leptos::task::spawn_local(protect(store, photos, index, s));
        }
    };

    let use_key = move |bytes: Vec<u8>, pass: Option<String>| match read_key(
        &bytes,
        pass.as_deref(),
    ) {
        Ok(key) => {
            let h = &key.header;
            key_status.set(format!(
                "Mask {}… loaded: at most ±{} per pixel value, learned from {} photo(s) against {}.",
                &h.sha256[..12.min(h.sha256.len())],
                h.epsilon,
                h.photos,
                h.models.join(" + ")
            ));
            store.update_value(|s| s.key = Some(key));
            locked.set(None);
            loaded.set(true);
            reprotect_all();
        }
        Err(error) => key_status.set(error.to_string()),
    };
    let sink = UnsyncCallback::new(move |(bytes, pass): (Vec<u8>, Option<String>)| {
        use_key(bytes, pass);
    });

    let on_key = move |event: web_sys::Event| {
        let file = files_of(&event).get(0);
        if file.is_undefined() {
            return;
        }

        leptos::task::spawn_local(async move {
            let bytes = match JsFuture::from(file_bytes(&file)).await {
                Ok(b) => js_sys::Uint8Array::new(&b).to_vec(),
                Err(error) => return key_status.set(message(&error)),
            };
            match read_header(&bytes) {
                Ok(header) if header.encryption.is_some() => {
                    key_status.set("This key is encrypted: enter its passphrase.".to_owned());
                    locked.set(Some(bytes));
                }
                Ok(_) => use_key(bytes, None),
                Err(error) => key_status.set(error.to_string()),
            }
        });
    };
    let unlock = move |_| {
        if let Some(bytes) = locked.get_untracked() {
            use_key(bytes, Some(passphrase.get_untracked()));
        }
    };

    let on_photos = move |event: web_sys::Event| {
        let files = files_of(&event);
        let first = photos.with_untracked(Vec::len);
        photos.update(|list| {
            list.extend(files.iter().map(|file| Photo {
                name: field(&file, "name").as_string().unwrap_or_default(),
                kind: "image/png".to_owned(),
                state: PhotoState::Working("Decoding…"),
            }));
        });
        #[allow(clippy::cast_possible_truncation)]
        let s = (strength.get_untracked() / 100.0) as f32;
        for (i, file) in files.iter().enumerate() {
            leptos::task::spawn_local(start_photo(store, photos, first + i, file, s));
        }
    };
    let on_strength = move |event: web_sys::Event| {
        if let Ok(value) = event_target_value(&event).parse::<f64>() {
            strength.set(value);
            reprotect_all();
        }
    };

    view! {
        <section id="protect" class="tool" aria-labelledby="protect-title">
            <h2 id="protect-title">"Protect photos"</h2>
            <p>
                "Your mask makes face-recognition systems that scrape your photos fail to match you
                (Chameleon's P3-Mask). It is applied here, in this browser: the photos you protect
                are not uploaded. Keep the key secret: whoever holds it can take the protection off."
            </p>
            <label for="mask-key">"Mask key (.p3m)"</label>
            <input id="mask-key" type="file" accept=".p3m,application/octet-stream" on:change=on_key />
            <Show when=move || locked.get().is_some()>
                <label for="mask-passphrase">"Passphrase"</label>
                <input id="mask-passphrase" type="password" autocomplete="off"
                    on:input=move |e| passphrase.set(event_target_value(&e)) />
                <button id="mask-unlock" on:click=unlock>"Unlock"</button>
            </Show>
            <p id="mask-status" class="note">{move || key_status.get()}</p>
            <label for="protect-strength">{move || format!("Strength: {:.0} %", strength.get())}</label>
            <input id="protect-strength" type="range" min="0" max="100" step="5"
                prop:value=move || strength.get().to_string() on:change=on_strength />
            <label for="protect-photos">"Photos to protect (JPEG, PNG or WebP)"</label>
            <input id="protect-photos" type="file" accept="image/jpeg,image/png,image/webp" multiple
                prop:disabled=move || !loaded.get() on:change=on_photos />
            <p class="note">
                "Downloads keep the photo's size and format, without its metadata (location, camera,
                date). JPEG and WebP are saved at quality 95; every further re-compression weakens
                the mask a little, so share the downloaded file as it is."
            </p>
            <p id="detector-status" class="note">{move || detector_status.get()}</p>
            {move || photos.get().into_iter().map(photo_view).collect_view()}
        </section>
        <create::CreateMask sink=sink />
    }
}

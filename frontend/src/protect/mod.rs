//! The Protect page, a guided flow in four steps: 1) your key (load it, or create it on the
//! server from a few selfies), 2) your photos (many at once; their faces found and marked),
//! 3) review (before/after, strength, SSIM), 4) download one or all (a zip). Photos being
//! protected never leave this browser; only the selfies chosen for "Create my key" are sent.

mod create;
mod photos;
mod review;

use fuselab_shared::mask::key::{read_header, read_key};
use leptos::{callback::UnsyncCallback, prelude::*};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::faces::{files_of, set_face_status};
use crate::protection::{Progress, STEPS, StepState, steps};
use fuselab_ui::{DropZone, TabPanel, Tabs, Tone, use_toasts};
use photos::{Photo, PhotoState, Shared, Store, protect, start_photo};

#[wasm_bindgen(module = "/protect.js")]
extern "C" {
    #[wasm_bindgen(js_name = fileBytes)]
    fn file_bytes(file: &JsValue) -> js_sys::Promise;
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

/// What the page holds, as the step indicator sees it.
fn progress_of(key: bool, photos: &[Photo], downloaded: bool) -> Progress {
    let count = |f: fn(&PhotoState) -> bool| photos.iter().filter(|p| f(&p.state)).count();
    Progress {
        key,
        photos: photos.len(),
        working: count(|s| matches!(s, PhotoState::Working(_))),
        protected: count(|s| matches!(s, PhotoState::Done(_))),
        downloaded,
    }
}

/// The four steps and where each stands.
#[component]
fn StepIndicator(progress: Signal<Progress>) -> impl IntoView {
    view! {
        <ol class="steps" aria-label="Steps">
            {STEPS.iter().enumerate().map(|(i, name)| {
                let state = move || steps(&progress.get())[i];
                view! {
                    <li
                        class=move || if state() == StepState::Done { "done" } else { "" }
                        aria-current=move || (state() == StepState::Current).then_some("step")
                    >
                        {*name}
                        <span class="visually-hidden">{move || match state() {
                            StepState::Done => " (done)",
                            StepState::Current => " (now)",
                            StepState::Waiting => "",
                        }}</span>
                    </li>
                }
            }).collect_view()}
        </ol>
    }
}

/// What the mask does and does not do, in plain words.
#[component]
fn Explanation() -> impl IntoView {
    view! {
        <details class="explain">
            <summary>"What your mask does, and what it does not"</summary>
            <ul>
                <li>"It changes the pixels of each face very slightly, in a pattern learned from
                    your selfies, so that face-recognition systems that collect photos from the web
                    match your face less often."</li>
                <li>"It does not hide that someone is in the photo, and people still recognise
                    you. It makes recognition harder but is not a guarantee: against models it
                    was not trained on it works less well, and the measured figures are in the
                    protection guide."</li>
                <li>"It cannot help with photos already online, and heavy editing or
                    re-compression (screenshots, filters, resizing) weakens it."</li>
                <li>"Your key is what takes the protection off again: keep it private, like a
                    password. Whoever has it can remove your mask from your photos."</li>
                <li>"Protecting happens here, in this browser: your photos are not uploaded.
                    Only creating a key sends the selfies you choose, and the server deletes them
                    when your key is made."</li>
            </ul>
        </details>
    }
}

/// The page.
// One page's wiring: its signals, the key, photo and slider handlers, and the four steps' view.
#[allow(clippy::too_many_lines)]
#[component]
pub fn ProtectPage() -> impl IntoView {
    let toasts = use_toasts();
    let store: Shared = StoredValue::new_local(Store::default());
    let photos = RwSignal::new(Vec::<Photo>::new());
    let key_status = RwSignal::new("Load your mask key (.p3m) to start.".to_owned());
    let loaded = RwSignal::new(false);
    let locked = RwSignal::new(None::<Vec<u8>>);
    let passphrase = RwSignal::new(String::new());
    let strength = RwSignal::new(100.0_f64);
    let detector_status = RwSignal::new(String::new());
    let key_tab = RwSignal::new(0_usize);
    let downloaded = RwSignal::new(false);
    let zipping = RwSignal::new(false);
    set_face_status(
        Closure::<dyn FnMut(String)>::new(move |line: String| detector_status.set(line))
            .into_js_value(),
    );
    let progress = Signal::derive(move || {
        photos.with(|list| progress_of(loaded.get(), list, downloaded.get()))
    });

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

    // A change event of the file input, or a drop on its zone.
    let add_photos = move |event: JsValue| {
        if !loaded.get_untracked() {
            return;
        }
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
    let on_download = Callback::new(move |()| downloaded.set(true));
    let download_all = move |_| {
        zipping.set(true);
        leptos::task::spawn_local(async move {
            match review::download_all(photos.get_untracked()).await {
                Ok((count, bytes)) => {
                    downloaded.set(true);
                    #[allow(clippy::cast_precision_loss)]
                    let megabytes = bytes as f64 / 1e6;
                    toasts.show(
                        Tone::Done,
                        format!(
                            "{} saved: {count} photo{}, {megabytes:.1} MB.",
                            review::ZIP_NAME,
                            if count == 1 { "" } else { "s" }
                        ),
                    );
                }
                Err(error) => toasts.show(Tone::Failed, error),
            }
            zipping.set(false);
        });
    };
    let protected = move || progress.get().protected;

    view! {
        <section id="protect" class="tool" aria-labelledby="protect-title">
            <h2 id="protect-title">"Protect photos"</h2>
            <p class="lead">
                "Add your personal mask to the faces in your photos, so that face-recognition
                systems that scrape the web find it harder to match you (Chameleon's P3-Mask).
                It happens here, in this browser: the photos you protect are not uploaded."
            </p>
            <Explanation />
            <StepIndicator progress=progress />

            <section class="step" aria-labelledby="step-key-title">
                <h3 id="step-key-title">"1. Your key"</h3>
                <Tabs id="key" label="Your key" labels=vec!["I have my key", "Create my key"] selected=key_tab />
                <TabPanel id="key" index=0 selected=key_tab>
                    <label for="mask-key">"Mask key (.p3m)"</label>
                    <input id="mask-key" type="file" accept=".p3m,application/octet-stream" on:change=on_key />
                    <Show when=move || locked.get().is_some()>
                        <label for="mask-passphrase">"Passphrase"</label>
                        <div class="actions">
                            <input id="mask-passphrase" type="password" autocomplete="off"
                                on:input=move |e| passphrase.set(event_target_value(&e)) />
                            <button id="mask-unlock" on:click=unlock>"Unlock"</button>
                        </div>
                    </Show>
                    <p class="help">
                        "No key yet? "
                        <button class="link" on:click=move |_| key_tab.set(1)>"Create one"</button>
                        " from a few selfies, once."
                    </p>
                </TabPanel>
                <TabPanel id="key" index=1 selected=key_tab>
                    <create::CreateMask sink=sink />
                </TabPanel>
                <p id="mask-status" class=move || if loaded.get() { "success" } else { "note" } role="status">
                    {move || key_status.get()}
                </p>
            </section>

            <section class="step" aria-labelledby="step-photos-title">
                <h3 id="step-photos-title">"2. Your photos"</h3>
                <DropZone id="protect-photos" label="Photos to protect (JPEG, PNG or WebP): drop them here, or choose"
                    accept="image/jpeg,image/png,image/webp" multiple=true enabled=loaded
                    on_files=Callback::new(move |e: web_sys::Event| add_photos(e.into()))>
                    <p class="help">{move || if loaded.get() {
                        "As many as you like; each face found is outlined."
                    } else {
                        "Load or create your key first."
                    }}</p>
                </DropZone>
                <p id="detector-status" class="note">{move || detector_status.get()}</p>
                <ul class="thumbs" aria-label="Your photos">
                    {move || photos.get().into_iter().enumerate()
                        .map(|(i, p)| review::thumbnail(i, &p)).collect_view()}
                </ul>
            </section>

            <Show when=move || !photos.with(Vec::is_empty)>
                <section class="step" aria-labelledby="step-review-title">
                    <h3 id="step-review-title">"3. Review"</h3>
                    <p class="help">
                        "Drag across each photo to compare it before and after. SSIM says how alike
                        the protected face looks to the original (1 is identical)."
                    </p>
                    <label for="protect-strength">{move || format!("Strength: {:.0} %", strength.get())}</label>
                    <input id="protect-strength" type="range" min="0" max="100" step="5"
                        prop:value=move || strength.get().to_string() on:change=on_strength />
                    <p class="help">"Less strength is harder to see and protects less."</p>
                    {move || photos.get().into_iter().enumerate()
                        .map(|(i, p)| review::review(i, p, on_download)).collect_view()}
                </section>
            </Show>

            <Show when=move || { protected() > 0 }>
                <section class="step" aria-labelledby="step-download-title">
                    <h3 id="step-download-title">"4. Download"</h3>
                    <div class="actions">
                        <button id="protect-zip" prop:disabled=move || zipping.get() on:click=download_all>
                            {move || match protected() {
                                1 => "Download the protected photo (zip)".to_owned(),
                                n => format!("Download all {n} protected photos (zip)"),
                            }}
                        </button>
                    </div>
                    <p class="help">
                        "Downloads keep each photo's size and format, without its metadata
                        (location, camera, date). JPEG and WebP are saved at quality 95; every
                        further re-compression weakens the mask a little, so share the downloaded
                        files as they are."
                    </p>
                </section>
            </Show>
        </section>
    }
}

//! "Create my key": choose photos of yourself, agree to send them, and the server learns your
//! mask (progress streamed back); the key comes back to this page and to a download link.

use fuselab_shared::api::MaskJobStatus as Status;
use leptos::{
    callback::{Callable as _, UnsyncCallback},
    prelude::*,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{files_of, message};
use crate::{
    access::Failure,
    session::{SignedIn, use_auth},
};

#[wasm_bindgen(module = "/protect.js")]
extern "C" {
    #[wasm_bindgen(js_name = startMaskJob)]
    fn start_mask_job(files: &js_sys::Array, fields: &JsValue) -> js_sys::Promise;
    #[wasm_bindgen(js_name = followMaskJob)]
    fn follow_mask_job(id: &str, on_status: JsValue, on_error: JsValue) -> js_sys::Function;
    #[wasm_bindgen(js_name = fetchMaskKey)]
    fn fetch_mask_key(id: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = cancelMaskJob)]
    fn cancel_mask_job(id: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = bytesUrl)]
    fn bytes_url(bytes: &[u8]) -> String;
}

fn describe(status: &Status) -> String {
    match status {
        Status::Queued => "Waiting for another training job to finish…".to_owned(),
        Status::Preparing => "Loading the face models…".to_owned(),
        Status::Training {
            epoch,
            epochs,
            step,
            steps,
            dssim,
            angles,
            lambda,
        } => {
            let angles: Vec<String> = angles.iter().map(|(m, a)| format!("{m} {a:.3}")).collect();
            format!(
                "Epoch {epoch}/{epochs} (step {step}/{steps}) · DSSIM {dssim:.4} · angle {} rad · λ {lambda}",
                angles.join(", ")
            )
        }
        Status::Done {
            sha256,
            dssim,
            seconds,
        } => format!(
            "Your mask {}… is ready ({seconds:.0} s, mean DSSIM {dssim:.4}). It is loaded; download the key and keep it safe: the server has forgotten it.",
            &sha256[..12.min(sha256.len())]
        ),
        Status::Failed { error } => format!("The mask could not be made: {error}"),
        Status::Cancelled => "Cancelled.".to_owned(),
    }
}

/// The failure of a rejected call to the server (`protect.js` gives error answers a `status`).
fn failure(error: &JsValue) -> Failure {
    let text = message(error);
    match js_sys::Reflect::get(error, &"status".into())
        .ok()
        .and_then(|status| status.as_f64())
        .and_then(|status| u16::try_from(status as i64).ok())
    {
        Some(status) => Failure::answer(status, Some(text)),
        None => Failure::Unreachable(text),
    }
}

/// "Create my key": the photos, consent and job; `sink` takes the finished key (bytes,
/// passphrase) to step 1. Mask jobs need a signed-in user; others see the sign-in link.
#[component]
pub fn CreateMask(sink: UnsyncCallback<(Vec<u8>, Option<String>)>) -> impl IntoView {
    let sink = StoredValue::new_local(sink);
    view! {
        <div id="create-mask">
            <p>
                "Choose 5 to 20 photos of yourself (at least 3), each showing your face clearly. The
                server learns your personal mask from them against two face-recognition models; on
                a 2-core CPU that takes a few minutes."
            </p>
            <SignedIn what="create your mask on this server">
                <CreateForm sink=sink.get_value() />
            </SignedIn>
        </div>
    }
}

/// The photos, settings and consent, the job's progress and the key's download.
// One form's wiring: its signals, the job's start, events and cancel, and the view.
#[allow(clippy::too_many_lines)]
#[component]
fn CreateForm(sink: UnsyncCallback<(Vec<u8>, Option<String>)>) -> impl IntoView {
    let auth = use_auth();
    let chosen = RwSignal::new(0_usize);
    let files = StoredValue::new_local(js_sys::Array::new());
    let consent = RwSignal::new(false);
    let passphrase = RwSignal::new(String::new());
    let epochs = RwSignal::new("50".to_owned());
    let status = RwSignal::new(None::<Status>);
    let line = RwSignal::new(String::new());
    let job = RwSignal::new(None::<String>);
    let key_url = RwSignal::new(None::<String>);

    let on_files = move |event: web_sys::Event| {
        let list = files_of(&event);
        chosen.set(list.length() as usize);
        files.set_value(list);
    };
    let ready = move || consent.get() && (3..=40).contains(&chosen.get()) && job.get().is_none();
    let start = move |_| {
        let fields = js_sys::Object::new();
        let set = |k: &str, v: String| {
            let _ = js_sys::Reflect::set(&fields, &k.into(), &v.into());
        };
        set("epochs", epochs.get_untracked());
        set("passphrase", passphrase.get_untracked());
        line.set("Sending your photos…".to_owned());
        key_url.set(None);
        leptos::task::spawn_local(async move {
            let id = match JsFuture::from(start_mask_job(&files.get_value(), &fields)).await {
                Ok(id) => id.as_string().unwrap_or_default(),
                Err(error) => {
                    let failure = failure(&error);
                    if failure.needs_sign_in() {
                        auth.expired();
                    }
                    return line.set(failure.to_string());
                }
            };
            job.set(Some(id.clone()));
            let pass = passphrase.get_untracked();
            let finished_id = id.clone();
            let on_status = Closure::<dyn FnMut(String)>::new(move |json: String| {
                let Ok(parsed) = serde_json::from_str::<Status>(&json) else {
                    return;
                };
                line.set(describe(&parsed));
                if matches!(parsed, Status::Done { .. }) {
                    let id = finished_id.clone();
                    let pass = pass.clone();
                    leptos::task::spawn_local(async move {
                        match JsFuture::from(fetch_mask_key(&id)).await {
                            Ok(bytes) => {
                                let bytes = js_sys::Uint8Array::new(&bytes).to_vec();
                                key_url.set(Some(bytes_url(&bytes)));
                                sink.run((bytes, (!pass.is_empty()).then_some(pass)));
                            }
                            Err(error) => line.set(message(&error)),
                        }
                        job.set(None);
                    });
                } else if matches!(parsed, Status::Failed { .. } | Status::Cancelled) {
                    job.set(None);
                }
                status.set(Some(parsed));
            });
            let on_error = Closure::<dyn FnMut(String)>::new(move |text: String| {
                line.set(text);
                job.set(None);
            });
            follow_mask_job(&id, on_status.into_js_value(), on_error.into_js_value());
        });
    };
    let cancel = move |_| {
        if let Some(id) = job.get_untracked() {
            leptos::task::spawn_local(async move {
                let _ = JsFuture::from(cancel_mask_job(&id)).await;
            });
            job.set(None);
            line.set("Cancelled.".to_owned());
        }
    };
    let progress = move || match status.get() {
        Some(Status::Training {
            epoch,
            epochs,
            step,
            steps,
            ..
        }) => ((epoch - 1) * steps + step) as f64 / (epochs * steps).max(1) as f64,
        Some(Status::Done { .. }) => 1.0,
        _ => 0.0,
    };

    view! {
        <label for="create-photos">"Photos of you"</label>
        <input id="create-photos" type="file" accept="image/jpeg,image/png,image/webp" multiple on:change=on_files />
        <p class="note">{move || match chosen.get() {
            0 => String::new(),
            n if n < 3 => format!("{n} chosen: choose at least 3."),
            n if n < 5 => format!("{n} chosen: 5 or more make a stronger mask."),
            n if n > 40 => format!("{n} chosen: at most 40."),
            n => format!("{n} chosen."),
        }}</p>
        <label for="create-epochs">"Epochs"</label>
        <input id="create-epochs" type="number" min="1" max="200" prop:value=move || epochs.get()
            on:input=move |e| epochs.set(event_target_value(&e)) />
        <label for="create-passphrase">"Passphrase for the key (optional)"</label>
        <input id="create-passphrase" type="password" autocomplete="new-password"
            on:input=move |e| passphrase.set(event_target_value(&e)) />
        <label class="consent">
            <input id="create-consent" type="checkbox" on:change=move |e| consent.set(event_target_checked(&e)) />
            " These are photos of me. I agree to send them to this fuselab server, which keeps
            them in memory only while it learns my mask and deletes them when the job ends."
        </label>
        <button id="create-start" prop:disabled=move || !ready() on:click=start>"Create my mask"</button>
        <button id="create-cancel" prop:disabled=move || job.get().is_none() on:click=cancel>"Cancel"</button>
        <progress id="create-progress" max="1" prop:value=progress></progress>
        <p id="create-status" class="note">{move || line.get()}</p>
        {move || key_url.get().map(|url| view! {
            <a id="create-download" class="button" href=url download="my-mask.p3m">"Download my mask key"</a>
        })}
    }
}

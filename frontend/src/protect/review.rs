//! Steps 2 to 4 of the Protect page: the photos as thumbnails with their faces marked, each
//! photo's review (a before/after comparison slider, SSIM and PSNR per face, its download), and
//! the zip of all protected photos.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::message;
use super::photos::{Photo, PhotoState, Protected};
use crate::protection::{distinct_names, protected_name, zip_stored};

#[wasm_bindgen(module = "/protect.js")]
extern "C" {
    #[wasm_bindgen(js_name = blobBytes)]
    fn blob_bytes(blob: &JsValue) -> js_sys::Promise;
    #[wasm_bindgen(js_name = saveBytes)]
    fn save_bytes(bytes: &[u8], name: &str, kind: &str);
}

/// The zip's name.
pub const ZIP_NAME: &str = "protected-photos.zip";

/// A photo's state in a few words, for its thumbnail.
fn badge(state: &PhotoState) -> String {
    match state {
        PhotoState::Working(text) => (*text).to_owned(),
        PhotoState::Done(done) => match done.faces.len() {
            1 => "1 face protected".to_owned(),
            n => format!("{n} faces protected"),
        },
        PhotoState::NoFace => "No face found".to_owned(),
        PhotoState::Failed(_) => "Could not be read".to_owned(),
    }
}

/// One photo's thumbnail, its faces outlined; a link to its review.
pub fn thumbnail(index: usize, photo: &Photo) -> impl IntoView + use<> {
    let picture = match &photo.state {
        PhotoState::Done(done) => {
            let boxes = done
                .faces
                .iter()
                .map(|f| {
                    let [l, t, w, h] = f.face;
                    view! { <rect x=l y=t width=w height=h /> }
                })
                .collect_view();
            view! {
                <img src=done.before.clone() alt="" />
                <svg class="faces-found" aria-hidden="true" preserveAspectRatio="none"
                    viewBox=format!("0 0 {} {}", done.width, done.height)>{boxes}</svg>
            }
            .into_any()
        }
        _ => view! { <div class="thumb-placeholder" aria-hidden="true"></div> }.into_any(),
    };
    let class = match photo.state {
        PhotoState::Working(_) => "thumb working",
        PhotoState::Done(_) => "thumb",
        _ => "thumb problem",
    };
    view! {
        <li class=class>
            <a href=format!("#photo-{index}")>
                <span class="thumb-picture">{picture}</span>
                <span class="thumb-name">{photo.name.clone()}</span>
                <span class="thumb-badge">{badge(&photo.state)}</span>
            </a>
        </li>
    }
}

/// The before/after comparison: the protected photo over the original, cut where the slider is.
#[component]
fn Compare(before: String, after: String, name: String) -> impl IntoView {
    let split = RwSignal::new(50.0_f64);
    view! {
        <div class="compare" style:--split=move || format!("{}%", split.get())>
            <img class="protect-before" src=before alt=format!("{name} before protection") />
            <img class="protect-after" src=after alt=format!("{name} with your mask") />
            <span class="compare-label before" aria-hidden="true">"Before"</span>
            <span class="compare-label after" aria-hidden="true">"After"</span>
            <input class="compare-slider" type="range" min="0" max="100" step="1"
                aria-label=format!("Compare {name} before and after: before is left of the line")
                prop:value=move || split.get().to_string()
                on:input=move |e| {
                    if let Ok(v) = event_target_value(&e).parse() {
                        split.set(v);
                    }
                } />
        </div>
    }
}

fn faces_table(done: &Protected) -> impl IntoView {
    let rows = done
        .faces
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
    view! {
        <div class="table-wrap" tabindex="0">
            <table class="protect-faces">
                <thead><tr><th>"face"</th><th>"box"</th><th>"SSIM"</th><th>"PSNR"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

/// One photo's review; `on_download` is told when its file is downloaded.
pub fn review(index: usize, photo: Photo, on_download: Callback<()>) -> impl IntoView {
    let body = match photo.state {
        PhotoState::Working(text) => view! { <p class="note">{text}</p> }.into_any(),
        PhotoState::Failed(text) => view! { <p class="error">{text}</p> }.into_any(),
        PhotoState::NoFace => view! {
            <p class="error">"No face found: this photo is not protected, and there is nothing to download."</p>
        }
        .into_any(),
        PhotoState::Done(done) => {
            let name = protected_name(&photo.name, &photo.kind);
            let mean_ssim = {
                let known: Vec<f64> = done.faces.iter().filter_map(|f| f.ssim).collect();
                (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
            };
            let summary = format!(
                "{} face{} protected on {} in {:.0} ms · {:.1} MB{}",
                done.faces.len(),
                if done.faces.len() == 1 { "" } else { "s" },
                done.on,
                done.millis,
                done.bytes / 1e6,
                mean_ssim.map_or(String::new(), |s| format!(
                    " · the faces look {} alike (SSIM {s:.3})",
                    quality_words(s)
                )),
            );
            view! {
                <Compare before=done.before.clone() after=done.after.clone() name=photo.name.clone() />
                <p class="protect-summary" data-on=done.on>{summary}</p>
                {faces_table(&done)}
                <a class="protect-download button" href=done.download.clone() download=name.clone()
                    on:click=move |_| on_download.run(())>{format!("Download {name}")}</a>
            }
            .into_any()
        }
    };
    let name = photo.name.clone();
    view! {
        <article class="protect-photo" id=format!("photo-{index}") data-name=name>
            <h4>{photo.name}</h4>
            {body}
        </article>
    }
}

/// SSIM in words: how alike a protected face looks to the original (0.95 and above is hard to
/// tell apart by eye).
fn quality_words(ssim: f64) -> &'static str {
    if ssim >= 0.95 {
        "nearly identically"
    } else if ssim >= 0.8 {
        "very much"
    } else {
        "somewhat"
    }
}

/// Zips every protected photo and downloads the zip; resolves to how many photos and bytes.
pub async fn download_all(photos: Vec<Photo>) -> Result<(usize, usize), String> {
    let done: Vec<(String, JsValue)> = photos
        .into_iter()
        .filter_map(|p| match p.state {
            PhotoState::Done(done) => Some((protected_name(&p.name, &p.kind), done.blob)),
            _ => None,
        })
        .collect();
    if done.is_empty() {
        return Err("no photo is protected yet".to_owned());
    }
    let names: Vec<String> = done.iter().map(|(n, _)| n.clone()).collect();
    let mut files = Vec::with_capacity(done.len());
    for (name, (_, blob)) in distinct_names(&names).into_iter().zip(&done) {
        let bytes = JsFuture::from(blob_bytes(blob))
            .await
            .map_err(|e| message(&e))?;
        files.push((name, js_sys::Uint8Array::new(&bytes).to_vec()));
    }
    let zip = zip_stored(&files).map_err(|e| format!("the zip could not be made: {e}"))?;
    save_bytes(&zip, ZIP_NAME, "application/zip");
    Ok((files.len(), zip.len()))
}

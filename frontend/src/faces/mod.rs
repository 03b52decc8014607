//! The Faces page: find the faces in photos and compare them with the face stack (MTCNN,
//! dlib's ResNet and faceres), all in this browser. The models come from the server once; the
//! photos are decoded, analysed and previewed here and never uploaded.

use fuselab_shared::face::{Face, Verdict};
use fuselab_shared::worker::face::FoundFaces;
use fuselab_ui::DropZone;
use leptos::prelude::*;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/glue.js")]
extern "C" {
    /// The files of a file input's `change` event.
    #[wasm_bindgen(js_name = filesOf)]
    pub(crate) fn files_of(event: &JsValue) -> js_sys::Array;
}

#[wasm_bindgen(module = "/faces.js")]
extern "C" {
    /// Receives the face worker's status lines (model download and build).
    #[wasm_bindgen(js_name = setFaceStatus)]
    pub(crate) fn set_face_status(callback: JsValue);
    #[wasm_bindgen(js_name = findFacesInFile)]
    fn find_faces_in_file(file: &JsValue, on_done: JsValue, on_error: JsValue);
}

#[derive(Debug, Clone, PartialEq)]
enum PhotoState {
    Working,
    Done {
        found: Box<FoundFaces>,
        json: String,
        preview: String,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Photo {
    name: String,
    state: PhotoState,
}

/// Each model's verdict on the largest faces of two photos.
fn compare(a: &FoundFaces, b: &FoundFaces) -> Option<Vec<Verdict>> {
    let (fa, fb) = (a.faces.first()?, b.faces.first()?);
    let embeddings = |f: &Face, model: &str| match model {
        "dlib" => Some(f.dlib.clone()),
        "faceres" => Some(f.faceres.clone()),
        _ => None,
    };
    a.models
        .iter()
        .map(|m| {
            Some(Verdict::between(
                &m.name,
                m.threshold,
                &embeddings(fa, &m.name)?,
                &embeddings(fb, &m.name)?,
            ))
        })
        .collect()
}

fn verdict_text(v: &Verdict) -> String {
    match v.same_person {
        Some(true) => format!(
            "{:.3}: same person (below {})",
            v.distance,
            v.threshold.unwrap_or(0.0)
        ),
        Some(false) => format!(
            "{:.3}: different people (not below {})",
            v.distance,
            v.threshold.unwrap_or(0.0)
        ),
        None => format!(
            "{:.3} rad apart: no verdict (the model ships without a threshold)",
            v.angle
        ),
    }
}

fn photo_view(photo: Photo) -> impl IntoView {
    let body = match photo.state {
        PhotoState::Working => view! { <p class="note">"Finding faces…"</p> }.into_any(),
        PhotoState::Failed(message) => view! { <p class="error">{message}</p> }.into_any(),
        PhotoState::Done {
            found,
            json,
            preview,
        } => {
            let summary = match found.faces.len() {
                0 => "No face found in this photo.".to_owned(),
                n => {
                    let t = found.millis;
                    format!(
                        "{n} face{} in {}×{} · detection {:.0} ms · landmarks {:.0} ms · dlib {:.0} ms · faceres {:.0} ms",
                        if n == 1 { "" } else { "s" },
                        found.width,
                        found.height,
                        t.detect,
                        t.align,
                        t.dlib,
                        t.faceres
                    )
                }
            };
            let rows = found
                .faces
                .iter()
                .enumerate()
                .map(|(i, face)| {
                    let [l, t, r, b] = face.detection.bbox;
                    view! {
                        <tr>
                            <td class="number">{i + 1}</td>
                            <td class="number">{format!("{:.4}", face.detection.score)}</td>
                            <td>{format!("({l:.0}, {t:.0})–({r:.0}, {b:.0})")}</td>
                        </tr>
                    }
                })
                .collect_view();
            let alt = format!("{} with the faces found outlined", photo.name);
            view! {
                <img class="face-preview" src=preview alt=alt />
                <p class="face-summary">{summary}</p>
                <div class="table-wrap" tabindex="0">
                    <table class="face-list">
                        <thead><tr><th>"face"</th><th>"score"</th><th>"box"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
                <details>
                    <summary>"JSON (boxes, landmarks, descriptors)"</summary>
                    <pre class="face-json">{json}</pre>
                </details>
            }
            .into_any()
        }
    };
    let name = photo.name.clone();
    view! {
        <article class="face-photo" data-name=name>
            <h3>{photo.name}</h3>
            {body}
        </article>
    }
}

/// Every pair of photos with faces, with each model's verdict on their largest faces.
fn comparisons_view(photos: RwSignal<Vec<Photo>>) -> impl IntoView {
    let list = photos.get();
    let done: Vec<(String, Box<FoundFaces>)> = list
        .into_iter()
        .filter_map(|p| match p.state {
            PhotoState::Done { found, .. } if !found.faces.is_empty() => Some((p.name, found)),
            _ => None,
        })
        .collect();
    let mut rows = Vec::new();
    for (i, (name_a, a)) in done.iter().enumerate() {
        for (name_b, b) in &done[i + 1..] {
            if let Some(verdicts) = compare(a, b) {
                rows.push(view! {
                    <tr>
                        <td>{name_a.clone()}</td>
                        <td>{name_b.clone()}</td>
                        {verdicts.iter().map(|v| view! { <td data-model=v.model.clone()>{verdict_text(v)}</td> }).collect_view()}
                    </tr>
                });
            }
        }
    }
    (!rows.is_empty()).then(|| {
        view! {
            <h3>"Same person?"</h3>
            <p class="note">
                "The largest face of each photo, compared by each model: dlib's distance with its own
                threshold of 0.6 (as face_recognition uses it), faceres's angle."
            </p>
            <div class="table-wrap" tabindex="0">
                <table id="face-comparisons">
                    <thead><tr><th>"photo"</th><th>"photo"</th><th>"dlib"</th><th>"faceres"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
    })
}

/// The page.
#[component]
pub fn FacesPage() -> impl IntoView {
    let photos = RwSignal::new(Vec::<Photo>::new());
    let status = RwSignal::new(
        "The face models (about 41 MB) are fetched from this server on first use.".to_owned(),
    );
    set_face_status(
        Closure::<dyn FnMut(String)>::new(move |line: String| status.set(line)).into_js_value(),
    );

    let on_files = move |event: web_sys::Event| {
        let files = files_of(&event);
        let first = photos.with_untracked(Vec::len);
        photos.update(|list| {
            list.extend(files.iter().map(|file| {
                Photo {
                    name: js_sys::Reflect::get(&file, &"name".into())
                        .ok()
                        .and_then(|n| n.as_string())
                        .unwrap_or_default(),
                    state: PhotoState::Working,
                }
            }));
        });
        for (i, file) in files.iter().enumerate() {
            let index = first + i;
            let set = move |state: PhotoState| {
                photos.update(|list| {
                    if let Some(photo) = list.get_mut(index) {
                        photo.state = state;
                    }
                });
            };
            let on_done =
                Closure::<dyn FnMut(String, String)>::new(move |json: String, url: String| {
                    set(match serde_json::from_str::<FoundFaces>(&json) {
                        Ok(found) => PhotoState::Done {
                            json: serde_json::to_string_pretty(&found).unwrap_or(json),
                            found: Box::new(found),
                            preview: url,
                        },
                        Err(error) => PhotoState::Failed(format!(
                            "the worker's result could not be read: {error}"
                        )),
                    });
                });
            let on_error = Closure::<dyn FnMut(String)>::new(move |message: String| {
                set(PhotoState::Failed(message));
            });
            find_faces_in_file(&file, on_done.into_js_value(), on_error.into_js_value());
        }
    };

    view! {
        <section id="faces" class="tool" aria-labelledby="faces-title">
            <h2 id="faces-title">"Faces"</h2>
            <p>
                "Find the faces in your photos and see whether two photos show the same person, with
                MTCNN, dlib's ResNet face descriptor and faceres running in this browser. The photos
                are not uploaded."
            </p>
            <DropZone id="face-photos" label="Photos (JPEG, PNG or WebP): drop them here, or choose"
                accept="image/jpeg,image/png,image/webp" multiple=true on_files=Callback::new(on_files) />
            <p id="face-status" class="note">{move || status.get()}</p>
            {move || photos.get().into_iter().map(photo_view).collect_view()}
            {move || comparisons_view(photos)}
        </section>
    }
}

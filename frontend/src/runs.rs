//! The server's training runs (`/api/align/runs`), shared by the Alignment and CTR pages: the
//! calls (list, start, resume, delete) and following one run's events (`align.js`: an
//! `EventSource`), with the page's state updated the same way on both pages.

use fuselab_shared::api::{
    AlignAction, AlignRunCreated, AlignRunStatus, AlignRunSummary, StartAlignRun,
};
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::access::Failure;
use crate::api;
use crate::session::Auth;

#[wasm_bindgen(module = "/align.js")]
extern "C" {
    #[wasm_bindgen(js_name = followAlignRun)]
    fn follow_align_run(id: &str, on_event: JsValue) -> js_sys::Function;
}

/// The runs whose action `keep` accepts, newest first.
pub async fn list(keep: fn(AlignAction) -> bool) -> Result<Vec<AlignRunSummary>, Failure> {
    let runs = api::runs().await?;
    Ok(runs.into_iter().filter(|r| keep(r.action)).collect())
}

/// `{"status": …}` of a `status` event.
#[derive(Debug, Deserialize)]
struct StatusEvent {
    status: AlignRunStatus,
}

/// What a page's followed run shows, whatever its progress lines hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Live<P> {
    /// The run.
    pub id: String,
    /// Its state.
    pub status: AlignRunStatus,
    /// The last progress line.
    pub progress: Option<P>,
    /// Progress lines seen.
    pub lines: usize,
    /// Why it stopped, or a connection note.
    pub note: Option<String>,
}

/// A page's runs: the followed run, the list's version, and the feedback line.
#[derive(Debug)]
pub struct Tracker<P: Clone + Send + Sync + 'static> {
    /// The followed run.
    pub live: RwSignal<Option<Live<P>>>,
    /// Counts changes, so the list reloads after one.
    pub version: RwSignal<u32>,
    /// The last action's outcome.
    pub feedback: RwSignal<Option<Result<String, String>>>,
    stop: StoredValue<Option<js_sys::Function>, LocalStorage>,
    auth: Auth,
    /// "Run" or "Benchmark": how feedback names a run.
    noun: &'static str,
}

// `derive` would ask `P: Copy`; the tracker holds only signal handles.
#[allow(clippy::expl_impl_clone_on_copy)]
impl<P: Clone + Send + Sync + 'static> Clone for Tracker<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Clone + Send + Sync + 'static> Copy for Tracker<P> {}

impl<P: Clone + Send + Sync + for<'de> Deserialize<'de> + 'static> Tracker<P> {
    /// A page's runs; `noun` names a run in feedback.
    pub fn new(auth: Auth, noun: &'static str) -> Self {
        Self {
            live: RwSignal::new(None),
            version: RwSignal::new(0),
            feedback: RwSignal::new(None),
            stop: StoredValue::new_local(None),
            auth,
            noun,
        }
    }

    /// Marks the list as changed.
    pub fn changed(self) {
        self.version.update(|v| *v += 1);
    }

    /// Stops following.
    pub fn unfollow(self) {
        self.stop.with_value(|close| {
            if let Some(close) = close {
                let _ = close.call0(&JsValue::NULL);
            }
        });
        self.stop.set_value(None);
    }

    fn update(self, f: impl FnOnce(&mut Live<P>)) {
        self.live.update(|l| {
            if let Some(l) = l {
                f(l);
            }
        });
    }

    /// Follows run `id`'s events: its status, each progress line (parsed as `P`) and its end.
    pub fn follow(self, id: &str) {
        self.unfollow();
        self.live.set(Some(Live {
            id: id.to_owned(),
            status: AlignRunStatus::Queued,
            progress: None,
            lines: 0,
            note: None,
        }));
        let on_event =
            Closure::<dyn FnMut(String, String)>::new(move |kind: String, data: String| match kind
                .as_str()
            {
                "status" => {
                    if let Ok(event) = serde_json::from_str::<StatusEvent>(&data) {
                        self.update(|l| {
                            l.status = event.status;
                            l.note = None;
                        });
                        self.changed();
                    }
                }
                "metrics" => {
                    if let Ok(progress) = serde_json::from_str::<P>(&data) {
                        self.update(|l| {
                            l.status = AlignRunStatus::Running;
                            l.progress = Some(progress);
                            l.lines += 1;
                            l.note = None;
                        });
                    }
                }
                "done" | "error" => {
                    if let Ok(run) = serde_json::from_str::<AlignRunSummary>(&data) {
                        self.update(|l| {
                            l.status = run.status;
                            l.note = run.error;
                        });
                    }
                    self.changed();
                }
                _ => self.update(|l| {
                    l.note =
                        Some("The connection to the server was lost; reconnecting…".to_owned());
                }),
            });
        self.stop
            .set_value(Some(follow_align_run(id, on_event.into_js_value())));
    }

    /// Starts a run and follows it; `done` is called when the answer is in.
    pub fn start(self, body: StartAlignRun, done: impl FnOnce() + 'static) {
        self.feedback.set(None);
        leptos::task::spawn_local(async move {
            let created: Result<AlignRunCreated, Failure> =
                self.auth.watch(api::start_run(&body).await);
            match created {
                Ok(created) => {
                    self.feedback
                        .set(Some(Ok(format!("{} {} started.", self.noun, created.id))));
                    self.follow(&created.id);
                    self.changed();
                }
                Err(failure) => self.feedback.set(Some(Err(failure.to_string()))),
            }
            done();
        });
    }

    /// Queues a failed or interrupted run again and follows it.
    pub fn resume(self, id: String) {
        leptos::task::spawn_local(async move {
            let resumed: Result<AlignRunCreated, Failure> =
                self.auth.watch(api::resume_run(&id).await);
            match resumed {
                Ok(resumed) => self.follow(&resumed.id),
                Err(failure) => self.feedback.set(Some(Err(failure.to_string()))),
            }
            self.changed();
        });
    }

    /// Cancels the run if it trains, and deletes it.
    pub fn remove(self, id: String) {
        if self
            .live
            .with_untracked(|l| l.as_ref().is_some_and(|l| l.id == id))
        {
            self.unfollow();
            self.live.set(None);
        }
        leptos::task::spawn_local(async move {
            let deleted = api::delete_run(&id).await;
            self.feedback.set(Some(match self.auth.watch(deleted) {
                Ok(()) => Ok(format!("{} {id} deleted.", self.noun)),
                Err(failure) => Err(failure.to_string()),
            }));
            self.changed();
        });
    }
}

/// A listed run's buttons: Resume (a failed or interrupted run, for a user who may train) or
/// Follow (a queued or training one), and Delete (Cancel while it is queued or training).
#[component]
pub fn RunActions(
    /// The run.
    id: String,
    /// Its state.
    status: AlignRunStatus,
    /// Whether interrupted and failed runs may be resumed.
    may_train: bool,
    resume: impl Fn(String) + Copy + 'static,
    follow: impl Fn(String) + Copy + 'static,
    remove: impl Fn(String) + Copy + 'static,
) -> impl IntoView {
    let step = if status.resumable() {
        may_train.then(|| {
            let id = id.clone();
            view! { <button class="resume" on:click=move |_| resume(id.clone())>"Resume"</button> }
                .into_any()
        })
    } else if status.finished() {
        None
    } else {
        let id = id.clone();
        Some(
            view! { <button class="secondary" on:click=move |_| follow(id.clone())>"Follow"</button> }
                .into_any(),
        )
    };
    let (label, hint) = if status.finished() {
        ("Delete", "Delete the run and its files")
    } else {
        ("Cancel", "Stop the run and delete it with its files")
    };
    view! {
        <div class="actions">
            {step}
            <button class="secondary delete" title=hint on:click=move |_| remove(id.clone())>{label}</button>
        </div>
    }
}

/// The line saying what the last start, resume or delete did (`id`: the element's id).
#[component]
pub fn Feedback(
    id: &'static str,
    feedback: RwSignal<Option<Result<String, String>>>,
) -> impl IntoView {
    move || {
        feedback.get().map(|f| match f {
            Ok(text) => view! { <p id=id role="status">{text}</p> }.into_any(),
            Err(text) => view! { <p id=id class="error" role="alert">{text}</p> }.into_any(),
        })
    }
}

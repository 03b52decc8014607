//! The server's training runs (`/api/align/runs`), shared by the Alignment, CTR and Pose pages:
//! the calls (list, start, resume, delete), following one run's events (`align.js`: an
//! `EventSource`) with the page's state updated the same way on every page, and the list of runs
//! (`RunList`, each a `RunCard`).

use fuselab_shared::api::{
    AlignAction, AlignRunCreated, AlignRunStatus, AlignRunSummary, StartAlignRun,
};
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::access::Failure;
use crate::api::{self, local_time};
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

/// A page's list of runs, as the server gave it.
pub type Runs = LocalResource<Result<Vec<AlignRunSummary>, Failure>>;

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

    /// The page's runs (those `keep` accepts), reloaded after every change; the first unfinished
    /// one is followed when the page follows none.
    pub fn runs(self, keep: fn(AlignAction) -> bool) -> Runs {
        let (auth, version, live) = (self.auth, self.version, self.live);
        let runs = LocalResource::new(move || {
            version.track();
            async move { auth.watch(list(keep).await) }
        });
        Effect::new(move |_| {
            if let Some(Ok(list)) = runs.get()
                && live.get_untracked().is_none()
                && let Some(run) = list.iter().find(|r| !r.status.finished())
            {
                self.follow(&run.id);
            }
        });
        runs
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

/// A page's list of runs under its heading: loading, unavailable, empty (`empty_id`, `empty`), or
/// each run drawn by `item` inside `<div id=id>`.
#[component]
pub fn RunList(
    runs: Runs,
    /// The heading, also how the unavailable note names the runs ("Runs", "Benchmarks").
    title: &'static str,
    id: &'static str,
    empty_id: &'static str,
    empty: &'static str,
    item: impl Fn(AlignRunSummary) -> AnyView + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <h3>{title}</h3>
        <Suspense fallback=|| view! { <p class="note">"Loading…"</p> }>
            {move || runs.get().map(|result| match result {
                Err(failure) => view! { <p class="note">{format!("{title} are unavailable: {failure}")}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="empty" id=empty_id>{empty}</p> }.into_any(),
                Ok(list) => view! { <div id=id>{list.into_iter().map(item).collect_view()}</div> }.into_any(),
            })}
        </Suspense>
    }
}

/// One listed run: `title` with its start time, state, id (and owner, for an administrator), why
/// it failed, its buttons ([`RunActions`]) and then `children` (its results and files).
#[component]
pub fn RunCard(
    run: AlignRunSummary,
    /// Classes besides `align-run`.
    class: &'static str,
    /// What the run is, e.g. "CTR benchmark".
    title: String,
    /// Whether the list holds every user's runs, so each names its owner.
    owners: bool,
    /// Whether interrupted and failed runs may be resumed.
    may_train: bool,
    resume: impl Fn(String) + Copy + 'static,
    follow: impl Fn(String) + Copy + 'static,
    remove: impl Fn(String) + Copy + 'static,
    children: Children,
) -> impl IntoView {
    let id = run.id;
    let owner = owners.then(|| format!(" · {}", run.owner.as_deref().unwrap_or("–")));
    view! {
        <article class=format!("align-run {class}").trim_end().to_owned() id=format!("run-{id}") data-status=run.status.name()>
            <h4>
                {title}{format!(" · {} · ", local_time(run.created))}
                <span class="run-status">{run.status.name()}</span>
                <span class="note">{format!(" · {id}")}</span>
                {owner.map(|o| view! { <span class="owner">{o}</span> })}
            </h4>
            {run.error.map(|e| view! { <p class="error">{e}</p> })}
            <RunActions id=id.clone() status=run.status may_train=may_train resume=resume follow=follow remove=remove />
            {children()}
        </article>
    }
}

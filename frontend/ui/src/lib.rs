//! The small components every page of the fuselab app shares, styled by its `style.css`: tabs,
//! toasts and drop zones. Buttons, fields, progress bars, cards, tables (`table-wrap`) and empty
//! states (`empty`) are plain elements with the stylesheet's classes.
//!
//! Built for wasm32 only; its tests run in headless Chromium with `wasm-bindgen-test`.
#![cfg(target_arch = "wasm32")]

use leptos::prelude::*;
use wasm_bindgen::JsCast as _;

/// Tabs: a row of buttons choosing which of `labels`' panels shows; each panel is a
/// [`TabPanel`] with the same `id` and its index. Arrow keys, Home and End move between tabs,
/// as the ARIA tabs pattern has it.
#[component]
pub fn Tabs(
    /// Names the tabs' and panels' element ids.
    id: &'static str,
    /// What the tab row is for, for screen readers.
    label: &'static str,
    labels: Vec<&'static str>,
    selected: RwSignal<usize>,
) -> impl IntoView {
    let count = labels.len();
    let choose = move |index: usize| {
        selected.set(index);
        let tab = document().get_element_by_id(&format!("{id}-tab-{index}"));
        if let Some(tab) = tab.and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()) {
            let _ = tab.focus();
        }
    };
    let on_key = move |event: web_sys::KeyboardEvent| {
        let at = selected.get_untracked();
        let next = match event.key().as_str() {
            "ArrowRight" => (at + 1) % count,
            "ArrowLeft" => (at + count - 1) % count,
            "Home" => 0,
            "End" => count - 1,
            _ => return,
        };
        event.prevent_default();
        choose(next);
    };
    view! {
        <div role="tablist" aria-label=label on:keydown=on_key>
            {labels.into_iter().enumerate().map(|(index, text)| view! {
                <button
                    type="button"
                    role="tab"
                    id=format!("{id}-tab-{index}")
                    aria-controls=format!("{id}-panel-{index}")
                    aria-selected=move || (selected.get() == index).to_string()
                    tabindex=move || if selected.get() == index { "0" } else { "-1" }
                    on:click=move |_| selected.set(index)
                >
                    {text}
                </button>
            }).collect_view()}
        </div>
    }
}

/// The panel of tab `index` of the [`Tabs`] named `id`; hidden while another tab is chosen.
#[component]
pub fn TabPanel(
    id: &'static str,
    index: usize,
    selected: RwSignal<usize>,
    children: Children,
) -> impl IntoView {
    view! {
        <div
            role="tabpanel"
            id=format!("{id}-panel-{index}")
            aria-labelledby=format!("{id}-tab-{index}")
            hidden=move || selected.get() != index
        >
            {children()}
        </div>
    }
}

/// A toast's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Something finished.
    Done,
    /// Something failed.
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
struct Toast {
    id: u64,
    tone: Tone,
    text: String,
}

/// The page's toasts: short messages in a corner that go away by themselves. Provided once by
/// the shell; a component takes the handle with [`use_toasts`] while it is built.
#[derive(Debug, Clone, Copy)]
pub struct Toasts {
    list: RwSignal<Vec<Toast>>,
    next: StoredValue<u64>,
}

/// How long a toast stays.
const TOAST_MILLIS: u64 = 8_000;

impl Toasts {
    /// Shows `text` for a few seconds.
    pub fn show(self, tone: Tone, text: impl Into<String>) {
        let id = self.next.get_value();
        self.next.set_value(id + 1);
        self.list.update(|list| {
            list.push(Toast {
                id,
                tone,
                text: text.into(),
            });
        });
        set_timeout(
            move || self.dismiss(id),
            std::time::Duration::from_millis(TOAST_MILLIS),
        );
    }

    fn dismiss(self, id: u64) {
        self.list.update(|list| list.retain(|t| t.id != id));
    }
}

/// Makes the toasts available to the page (called once, by the shell).
pub fn provide_toasts() {
    provide_context(Toasts {
        list: RwSignal::new(Vec::new()),
        next: StoredValue::new(0),
    });
}

/// The page's toasts (while a component is built).
///
/// # Panics
/// Outside the shell, which provides them.
pub fn use_toasts() -> Toasts {
    use_context().expect("the shell provides the toasts")
}

/// Where the toasts show; read out politely by screen readers.
#[component]
pub fn ToastRegion() -> impl IntoView {
    let toasts = use_toasts();
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || toasts.list.get() key=|t| t.id let:toast>
                <div class=if toast.tone == Tone::Failed { "toast error" } else { "toast" }>
                    <span>{toast.text.clone()}</span>
                    <button type="button" class="secondary" aria-label="Dismiss"
                        on:click=move |_| toasts.dismiss(toast.id)>"×"</button>
                </div>
            </For>
        </div>
    }
}

/// A drop zone around a labelled file input: files dropped on it, or chosen, go to `on_files`
/// as the `drop` or `change` event (read them with the event's `dataTransfer` or `target`). It
/// is marked `over` while files are dragged over it, and refuses them while `enabled` is false.
#[component]
pub fn DropZone(
    /// The file input's id.
    id: &'static str,
    label: &'static str,
    /// The input's `accept`: the types offered in the file chooser.
    accept: &'static str,
    /// Whether several files may be chosen at once.
    #[prop(optional)]
    multiple: bool,
    /// Whether it takes files now (always when not given).
    #[prop(optional, into)]
    enabled: Option<Signal<bool>>,
    on_files: Callback<web_sys::Event>,
    /// Shown under the input: what happens to the files, what was chosen.
    #[prop(optional)]
    children: Option<Children>,
) -> impl IntoView {
    let dragging = RwSignal::new(false);
    let enabled = move || enabled.is_none_or(|e| e.get());
    view! {
        <div
            class=move || if dragging.get() { "dropzone over" } else { "dropzone" }
            on:dragover=move |ev: web_sys::DragEvent| {
                ev.prevent_default();
                dragging.set(enabled());
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=move |ev: web_sys::DragEvent| {
                ev.prevent_default();
                dragging.set(false);
                if enabled() {
                    on_files.run(ev.into());
                }
            }
        >
            <label for=id>{label}</label>
            <input id=id type="file" accept=accept multiple=multiple prop:disabled=move || !enabled()
                on:change=move |ev| on_files.run(ev) />
            {children.map(|c| c())}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use leptos::prelude::*;
    use wasm_bindgen::JsCast as _;
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    /// A fresh element in the page to mount into.
    fn host() -> web_sys::HtmlElement {
        let div = document().create_element("div").unwrap();
        document().body().unwrap().append_child(&div).unwrap();
        div.unchecked_into()
    }

    /// Lets the reactive system update the page (its effects run as tasks).
    async fn settle() {
        for _ in 0..3 {
            let timeout = js_sys::Promise::new(&mut |resolve, _| {
                window()
                    .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0)
                    .unwrap();
            });
            wasm_bindgen_futures::JsFuture::from(timeout).await.unwrap();
        }
    }

    fn attr(id: &str, name: &str) -> Option<String> {
        document().get_element_by_id(id)?.get_attribute(name)
    }

    fn click(id: &str) {
        document()
            .get_element_by_id(id)
            .unwrap()
            .unchecked_into::<web_sys::HtmlElement>()
            .click();
    }

    /// Dispatches a `keydown` of `key` at element `on`, as a keyboard would.
    fn key(on: &str, key: &str) {
        let init = js_sys::Object::new();
        js_sys::Reflect::set(&init, &"key".into(), &key.into()).unwrap();
        js_sys::Reflect::set(&init, &"bubbles".into(), &true.into()).unwrap();
        let class: js_sys::Function = js_sys::Reflect::get(&window(), &"KeyboardEvent".into())
            .unwrap()
            .unchecked_into();
        let args = js_sys::Array::of2(&"keydown".into(), &init);
        let event: web_sys::Event = js_sys::Reflect::construct(&class, &args)
            .unwrap()
            .unchecked_into();
        document()
            .get_element_by_id(on)
            .unwrap()
            .dispatch_event(&event)
            .unwrap();
    }

    /// Dispatches a drag event of `kind` at element `on`.
    fn drag(on: &web_sys::Element, kind: &str) {
        let init = web_sys::DragEventInit::new();
        init.set_bubbles(true);
        init.set_cancelable(true);
        let event = web_sys::DragEvent::new_with_event_init_dict(kind, &init).unwrap();
        on.dispatch_event(&event).unwrap();
    }

    fn shown() -> Vec<usize> {
        (0..3)
            .filter(|i| attr(&format!("t-panel-{i}"), "hidden").is_none())
            .collect()
    }

    #[wasm_bindgen_test]
    async fn tabs_show_one_panel_and_follow_the_arrow_keys() {
        let selected = RwSignal::new(0_usize);
        let mounted = leptos::mount::mount_to(host(), move || {
            view! {
                <Tabs id="t" label="Test" labels=vec!["One", "Two", "Three"] selected=selected />
                <TabPanel id="t" index=0 selected=selected>"first"</TabPanel>
                <TabPanel id="t" index=1 selected=selected>"second"</TabPanel>
                <TabPanel id="t" index=2 selected=selected>"third"</TabPanel>
            }
        });
        settle().await;
        assert_eq!(shown(), [0]);
        assert_eq!(attr("t-tab-0", "aria-selected").as_deref(), Some("true"));
        assert_eq!(attr("t-tab-1", "aria-selected").as_deref(), Some("false"));
        assert_eq!(attr("t-tab-1", "tabindex").as_deref(), Some("-1"));
        assert_eq!(
            attr("t-tab-0", "aria-controls").as_deref(),
            Some("t-panel-0")
        );
        assert_eq!(
            attr("t-panel-2", "aria-labelledby").as_deref(),
            Some("t-tab-2")
        );

        key("t-tab-0", "ArrowLeft");
        settle().await;
        assert_eq!(
            selected.get_untracked(),
            2,
            "left from the first wraps to the last"
        );
        assert_eq!(shown(), [2]);
        assert_eq!(
            document().active_element().map(|e| e.id()).as_deref(),
            Some("t-tab-2"),
            "focus follows the chosen tab"
        );
        key("t-tab-2", "ArrowRight");
        settle().await;
        assert_eq!(shown(), [0], "right from the last wraps to the first");
        key("t-tab-0", "End");
        settle().await;
        assert_eq!(shown(), [2]);
        key("t-tab-2", "Home");
        settle().await;
        assert_eq!(shown(), [0]);
        key("t-tab-0", "x");
        settle().await;
        assert_eq!(shown(), [0], "other keys do nothing");
        click("t-tab-1");
        settle().await;
        assert_eq!(shown(), [1]);
        assert_eq!(attr("t-tab-1", "tabindex").as_deref(), Some("0"));
        drop(mounted);
    }

    #[wasm_bindgen_test]
    async fn toasts_show_and_can_be_dismissed() {
        let host = host();
        let handle = RwSignal::new(None::<Toasts>);
        let mounted = leptos::mount::mount_to(host.clone(), move || {
            provide_toasts();
            handle.set(Some(use_toasts()));
            view! { <ToastRegion /> }
        });
        settle().await;
        let toasts = handle.get_untracked().unwrap();
        let region = host.query_selector(".toasts").unwrap().unwrap();
        assert_eq!(region.get_attribute("role").as_deref(), Some("status"));
        toasts.show(Tone::Done, "Saved.");
        toasts.show(Tone::Failed, "Not saved.");
        settle().await;
        let items = || region.child_element_count();
        assert_eq!(items(), 2);
        let failed = host.query_selector(".toast.error span").unwrap().unwrap();
        assert_eq!(failed.text_content().as_deref(), Some("Not saved."));
        host.query_selector(".toast button")
            .unwrap()
            .unwrap()
            .unchecked_into::<web_sys::HtmlElement>()
            .click();
        settle().await;
        assert_eq!(items(), 1);
        let left = host.query_selector(".toast span").unwrap().unwrap();
        assert_eq!(left.text_content().as_deref(), Some("Not saved."));
        drop(mounted);
    }

    #[wasm_bindgen_test]
    async fn a_drop_zone_marks_a_drag_over_it_and_hands_on_dropped_files() {
        let host = host();
        let enabled = RwSignal::new(true);
        let received = RwSignal::new(Vec::<String>::new());
        let mounted = leptos::mount::mount_to(host.clone(), move || {
            view! {
                <DropZone id="d-files" label="Photos" accept="image/png" multiple=true
                    enabled=enabled
                    on_files=Callback::new(move |e: web_sys::Event| received.update(|r| r.push(e.type_())))>
                    <p class="help">"help"</p>
                </DropZone>
            }
        });
        settle().await;
        let zone = host.query_selector(".dropzone").unwrap().unwrap();
        assert_eq!(attr("d-files", "accept").as_deref(), Some("image/png"));
        assert!(attr("d-files", "multiple").is_some());
        assert!(zone.query_selector("label[for=d-files]").unwrap().is_some());
        assert!(zone.query_selector(".help").unwrap().is_some());

        drag(&zone, "dragover");
        settle().await;
        assert_eq!(zone.class_name(), "dropzone over");
        drag(&zone, "dragleave");
        settle().await;
        assert_eq!(zone.class_name(), "dropzone");
        drag(&zone, "dragover");
        drag(&zone, "drop");
        settle().await;
        assert_eq!(zone.class_name(), "dropzone", "a drop ends the drag");
        assert_eq!(received.get_untracked(), ["drop"]);

        enabled.set(false);
        settle().await;
        let input: web_sys::HtmlInputElement = document()
            .get_element_by_id("d-files")
            .unwrap()
            .unchecked_into();
        assert!(input.disabled());
        drag(&zone, "dragover");
        drag(&zone, "drop");
        settle().await;
        assert_eq!(
            zone.class_name(),
            "dropzone",
            "a disabled zone is not marked"
        );
        assert_eq!(received.get_untracked(), ["drop"], "nor does it take files");
        drop(mounted);
    }
}

//! The small components every page shares, styled by `style.css`: tabs and toasts. Buttons,
//! fields, drop zones, progress bars, cards, tables (`table-wrap`) and empty states (`empty`)
//! are plain elements with the stylesheet's classes.

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

//! The fuselab browser app (leptos 0.8, client-side rendered).
//!
//! Computations run on this device: on WebGPU when the browser offers it, with the CPU twin of
//! every kernel as the reference and the fallback. Only wasm32 builds have content.
#![cfg(target_arch = "wasm32")]

mod align;
mod api;
mod cofailure;
mod ensembles;
mod faces;
mod gpu;
mod protect;

use leptos::prelude::*;
use wasm_bindgen::{JsCast as _, prelude::wasm_bindgen};

/// Entry point called by the JS glue once the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    // The Ensembles page's Web Worker loads this module too; it has no page to mount.
    if js_sys::global().is_instance_of::<web_sys::Window>() {
        leptos::mount::mount_to_body(App);
    }
}

/// The pages, by address.
enum Page {
    /// `/`: the ensemble tools.
    Ensembles,
    /// `/faces`: face detection and comparison in the browser.
    Faces,
    /// `/protect`: photo protection with a personal mask, and creating the mask.
    Protect,
    /// `/align`: harmful fine-tuning runs on the server.
    Align,
    /// `/reports/{id}`: a saved report.
    Saved(String),
}

/// The application shell: a navigation bar and the page the address names.
#[component]
fn App() -> impl IntoView {
    let path = window().location().pathname().unwrap_or_default();
    let page = match path.strip_prefix("/reports/") {
        Some(id) => Page::Saved(id.trim_end_matches('/').to_owned()),
        None if path.trim_end_matches('/') == "/faces" => Page::Faces,
        None if path.trim_end_matches('/') == "/protect" => Page::Protect,
        None if path.trim_end_matches('/') == "/align" => Page::Align,
        None => Page::Ensembles,
    };
    let current = |here: bool| if here { "page" } else { "false" };
    let nav = view! {
        <nav aria-label="Pages">
            <a href="/" aria-current=current(matches!(page, Page::Ensembles))>"Ensembles"</a>
            <a href="/faces" aria-current=current(matches!(page, Page::Faces))>"Faces"</a>
            <a href="/protect" aria-current=current(matches!(page, Page::Protect))>"Protect photos"</a>
            <a href="/align" aria-current=current(matches!(page, Page::Align))>"Alignment"</a>
        </nav>
    };
    let device = gpu::start();
    view! {
        <header>
            <h1>"fuselab"</h1>
            {nav}
            <p class="tagline">
                "Focal-diversity ensembles, face-privacy masks and alignment fusion, self-hosted."
            </p>
        </header>
        <main>
            <section class="status" aria-label="Status">
                <api::ServerStatus />
                <gpu::DeviceStatus device=device />
            </section>
            {match page {
                Page::Saved(id) => view! { <ensembles::SavedReportPage id=id /> }.into_any(),
                Page::Faces => view! { <faces::FacesPage /> }.into_any(),
                Page::Protect => view! { <protect::ProtectPage /> }.into_any(),
                Page::Align => view! { <align::AlignPage /> }.into_any(),
                Page::Ensembles => view! {
                    <ensembles::EnsemblesPage />
                    <cofailure::CofailureTool />
                }.into_any(),
            }}
        </main>
    }
}

//! The fuselab browser app (leptos 0.8, client-side rendered).
//!
//! Computations run on this device: on WebGPU when the browser offers it, with the CPU twin of
//! every kernel as the reference and the fallback. Only wasm32 builds have content.
#![cfg(target_arch = "wasm32")]

mod api;
mod cofailure;
mod ensembles;
mod gpu;

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

/// The application shell: a saved report at `/reports/{id}`, the tools everywhere else.
#[component]
fn App() -> impl IntoView {
    let path = window().location().pathname().unwrap_or_default();
    let saved = path
        .strip_prefix("/reports/")
        .map(|id| id.trim_end_matches('/').to_owned());
    let device = gpu::start();
    view! {
        <header>
            <h1>"fuselab"</h1>
            <p class="tagline">
                "Focal-diversity ensembles, face-privacy masks and alignment fusion, self-hosted."
            </p>
        </header>
        <main>
            <section class="status" aria-label="Status">
                <api::ServerStatus />
                <gpu::DeviceStatus device=device />
            </section>
            {match saved {
                Some(id) => view! { <ensembles::SavedReportPage id=id /> }.into_any(),
                None => view! {
                    <ensembles::EnsemblesPage />
                    <cofailure::CofailureTool />
                }.into_any(),
            }}
        </main>
    }
}

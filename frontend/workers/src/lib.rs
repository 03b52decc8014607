//! The browser app's Web Workers, one wasm module apart from the app's: the Ensembles page's
//! analysis and combiners (`worker.js`), the face stack (`face-worker.js`) and the pose model
//! (`pose-worker.js`). Everything with burn lives here, so the app's own module stays small and
//! this one is fetched only when a page first starts a worker. The messages are typed in
//! `fuselab_shared::worker`.

#[cfg(target_arch = "wasm32")]
mod analysis;
#[cfg(target_arch = "wasm32")]
mod combine;
#[cfg(target_arch = "wasm32")]
mod faces;
#[cfg(target_arch = "wasm32")]
mod pose;

/// A panic's message in the worker's console instead of "unreachable executed".
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

//! The Ensembles page's combiner in the worker: the shared crate's learned combiners trained on
//! the pool the page analysed (the same Rust code as `fuselab ensemble combine`, so the same
//! seed gives the same numbers).

use fuselab_shared::ensemble::combine::{SplitPool, combine_team};
use fuselab_shared::ensemble::{Limits, PoolFiles};
use fuselab_shared::worker::ensemble::{CombineRequest, CombineResult};
use wasm_bindgen::prelude::*;

/// The worker's entry point: the pool's files, a [`CombineRequest`] as JSON and a progress
/// callback `(epoch, epochs)`. Returns a [`CombineResult`] as JSON.
///
/// # Errors
/// A readable message (no splits, no scores, a bad option), as a JS `Error`.
#[wasm_bindgen(js_name = combineFiles)]
#[allow(clippy::needless_pass_by_value)] // wasm-bindgen hands over owned values
pub fn combine_in_worker(
    names: Vec<String>,
    contents: Vec<js_sys::Uint8Array>,
    request: String,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let start = js_sys::Date::now();
    let request: CombineRequest =
        serde_json::from_str(&request).map_err(|e| JsError::new(&format!("request: {e}")))?;
    let bytes = crate::analysis::file_bytes(&contents);
    let files = crate::analysis::input_files(&names, &bytes);
    let error = |e: &dyn std::fmt::Display| JsError::new(&e.to_string());
    let input = PoolFiles::detect(&files)
        .and_then(|f| f.parse())
        .map_err(|e| error(&e))?;
    let pool = SplitPool::new(input, &Limits::default()).map_err(|e| error(&e))?;
    let team = combine_team(
        &pool,
        &request.members,
        &request.options,
        &mut |done, total| {
            // A failing progress callback must not stop the training.
            let _ = progress.call2(
                &JsValue::NULL,
                &(done as f64).into(),
                &(total as f64).into(),
            );
            true
        },
    )
    .map_err(|e| error(&e))?;
    let result = CombineResult {
        method: request.options.method,
        team,
        sizes: pool.sizes(),
        millis: js_sys::Date::now() - start,
    };
    serde_json::to_string(&result).map_err(|e| error(&e))
}

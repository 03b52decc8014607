//! The Ensembles page's Web Worker entry: the shared engine's [`analyze_files`] on the dropped
//! files, timed, returned as JSON so the page thread only deserialises it.

use fuselab_shared::ensemble::{InputFile, OverviewOptions, analyze_files};
use wasm_bindgen::prelude::*;

/// The worker's entry point: file names and contents, options as JSON, and a progress callback
/// `(done, total)`. Returns the [`fuselab_shared::ensemble::Analysis`] as JSON.
///
/// # Errors
/// A readable message for bad input, as a JS `Error`.
#[wasm_bindgen(js_name = analyzeFiles)]
#[allow(clippy::needless_pass_by_value)] // wasm-bindgen hands arrays over by value
pub fn analyze_in_worker(
    names: Vec<String>,
    contents: Vec<js_sys::Uint8Array>,
    options: &str,
    progress: &js_sys::Function,
) -> Result<String, JsError> {
    let start = js_sys::Date::now();
    let options: OverviewOptions =
        serde_json::from_str(options).map_err(|e| JsError::new(&format!("options: {e}")))?;
    let bytes: Vec<Vec<u8>> = contents.iter().map(js_sys::Uint8Array::to_vec).collect();
    let files: Vec<InputFile> = names
        .iter()
        .zip(&bytes)
        .map(|(name, bytes)| InputFile { name, bytes })
        .collect();
    let mut report = |done: u64, total: u64| {
        // A failing progress callback must not stop the analysis.
        let _ = progress.call2(
            &JsValue::NULL,
            &(done as f64).into(),
            &(total as f64).into(),
        );
    };
    let mut analysis =
        analyze_files(&files, &options, &mut report).map_err(|e| JsError::new(&e.to_string()))?;
    analysis.millis = Some(js_sys::Date::now() - start);
    serde_json::to_string(&analysis).map_err(|e| JsError::new(&e.to_string()))
}

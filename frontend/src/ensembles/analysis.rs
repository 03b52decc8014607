//! The Ensembles page's Web Worker entry: parse the dropped files and validate the pool with the
//! shared engine, then either analyse here or hand the parsed pool back for the server when it
//! has more teams than the page's limit. Results go back as JSON so the page thread only
//! deserialises them.

use fuselab_shared::{
    api::AnalyzeRequest,
    ensemble::{
        Analysis, AnalysisError, InputFile, OverviewOptions, Pool, PoolFiles, Teams, analysis,
    },
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// What the page asks the worker for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerOptions {
    /// Top-K and team sizes.
    pub overview: OverviewOptions,
    /// Above this many teams the pool goes to the server (`None`: always here).
    pub local_limit: Option<u64>,
}

/// What the worker gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerResult {
    /// Analysed in the worker.
    Analysis(Box<Analysis>),
    /// Parsed and valid, but too large for the device: the request for the server.
    Server {
        /// Teams in the size range.
        teams: u64,
        /// The server's request body.
        request: Box<AnalyzeRequest>,
    },
}

fn run(
    files: &[InputFile],
    options: &WorkerOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<WorkerResult, AnalysisError> {
    let input = PoolFiles::detect(files)?.parse()?;
    let names = || files.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
    let overview = &options.overview;
    let teams = Teams::total(input.models.len(), overview.min_size, overview.max_size);
    if options.local_limit.is_some_and(|limit| teams > limit) {
        // Validate here, so a bad file gets the same message wherever it would have run.
        Pool::new(input.clone()).map_err(|error| AnalysisError::Pool {
            files: names(),
            error,
        })?;
        return Ok(WorkerResult::Server {
            teams,
            request: Box::new(AnalyzeRequest {
                pool: input,
                options: overview.clone(),
            }),
        });
    }
    let pool = Pool::new(input).map_err(|error| AnalysisError::Pool {
        files: names(),
        error,
    })?;
    Ok(WorkerResult::Analysis(Box::new(analysis(
        &pool, overview, progress,
    )?)))
}

/// The worker's entry point: file names and contents, [`WorkerOptions`] as JSON, and a progress
/// callback `(done, total)`. Returns a [`WorkerResult`] as JSON.
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
    let options: WorkerOptions =
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
    let mut result =
        run(&files, &options, &mut report).map_err(|e| JsError::new(&e.to_string()))?;
    if let WorkerResult::Analysis(analysis) = &mut result {
        analysis.millis = Some(js_sys::Date::now() - start);
    }
    serde_json::to_string(&result).map_err(|e| JsError::new(&e.to_string()))
}

//! The analysis the Ensembles page runs inside its Web Worker: parse the dropped files with the
//! engine's own parsers, validate the pool, score every team, and gather what the views plot.
//! It returns JSON so the page thread only deserialises the result.

use fuselab_shared::ensemble::{
    AnalysisOptions, Compat, DiversityMetrics, FocalTable, InputFile, Pool, PoolFiles, Report,
    TeamListing, Teams, VoteTable, analyze,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// What the page asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Teams ranked and described.
    pub top_k: usize,
    /// Smallest team size.
    pub min_size: usize,
    /// Largest team size.
    pub max_size: usize,
}

/// One team in the scatter plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Ascending model indices.
    pub members: Vec<usize>,
    /// Canonical focal diversity.
    pub focal: f64,
    /// Plurality-vote accuracy (fraction).
    pub accuracy: f64,
}

/// Focal diversity and accuracy of all teams of one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeSummary {
    /// Team size.
    pub size: usize,
    /// Teams with a defined focal diversity.
    pub teams: u64,
    /// Mean focal diversity.
    pub mean_focal: f64,
    /// Highest focal diversity.
    pub max_focal: f64,
    /// Mean plurality accuracy.
    pub mean_accuracy: f64,
    /// Highest plurality accuracy.
    pub max_accuracy: f64,
}

/// A pairwise statistic of every pair of models on all samples (`null` where undefined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairMatrix {
    /// The statistic's name.
    pub metric: String,
    /// `values[i][j]`; the diagonal is `null`.
    pub values: Vec<Vec<Option<f64>>>,
}

/// Everything the views show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The CLI's report (`fuselab.ensemble.report/v1`), top-K teams in full detail.
    pub report: Report,
    /// Every team with a defined focal diversity, when there are at most [`SCATTER_LIMIT`].
    pub scatter: Option<Vec<Point>>,
    /// Per team size.
    pub sizes: Vec<SizeSummary>,
    /// Pairwise statistics for the heat-map.
    pub pairwise: Vec<PairMatrix>,
    /// Wall time of the analysis in the worker.
    pub millis: f64,
}

/// Above this many teams the scatter plot would be unreadable and heavy; only summaries are kept.
pub const SCATTER_LIMIT: u64 = 20_000;

/// Reads one statistic out of a pair's metrics.
type Pick = fn(&DiversityMetrics) -> Option<f64>;

fn pair_matrices(pool: &Pool) -> Vec<PairMatrix> {
    let m = pool.models();
    let stats: [(&str, Pick); 4] = [
        ("disagreement", |d| d.disagreement),
        ("Q-statistic", |d| d.q_statistic),
        ("correlation", |d| d.correlation),
        ("Cohen's kappa", |d| d.cohen_kappa),
    ];
    let metrics: Vec<Vec<Option<DiversityMetrics>>> = (0..m)
        .map(|i| {
            (0..m)
                .map(|j| {
                    (i != j)
                        .then(|| pool.team(&[i.min(j), i.max(j)]).ok())
                        .flatten()
                        .map(|view| view.diversity())
                })
                .collect()
        })
        .collect();
    stats
        .iter()
        .map(|(name, pick)| PairMatrix {
            metric: (*name).to_owned(),
            values: metrics
                .iter()
                .map(|row| row.iter().map(|d| d.as_ref().and_then(pick)).collect())
                .collect(),
        })
        .collect()
}

/// Scatter points and per-size summaries from one pass over the teams.
fn teams_overview(pool: &Pool, options: &Options) -> (Option<Vec<Point>>, Vec<SizeSummary>) {
    let total = Teams::total(pool.models(), options.min_size, options.max_size);
    let focal = FocalTable::new(pool);
    let votes = VoteTable::new(pool);
    let mut points = (total <= SCATTER_LIMIT).then(Vec::new);
    let mut sizes: Vec<SizeSummary> = Vec::new();
    for members in Teams::new(pool.models(), options.min_size, options.max_size) {
        let Some(diversity) = focal.focal_diversity(&members).mean else {
            continue;
        };
        let accuracy = match &votes {
            Some(votes) => votes.plurality_accuracy(&members),
            None => pool
                .team(&members)
                .ok()
                .and_then(|v| v.plurality_accuracy())
                .unwrap_or(0.0),
        };
        let size = members.len();
        if sizes.last().is_none_or(|s| s.size != size) {
            sizes.push(SizeSummary {
                size,
                teams: 0,
                mean_focal: 0.0,
                max_focal: f64::NEG_INFINITY,
                mean_accuracy: 0.0,
                max_accuracy: f64::NEG_INFINITY,
            });
        }
        if let Some(summary) = sizes.last_mut() {
            summary.teams += 1;
            summary.mean_focal += diversity;
            summary.max_focal = summary.max_focal.max(diversity);
            summary.mean_accuracy += accuracy;
            summary.max_accuracy = summary.max_accuracy.max(accuracy);
        }
        if let Some(points) = points.as_mut() {
            points.push(Point {
                members,
                focal: diversity,
                accuracy,
            });
        }
    }
    for summary in &mut sizes {
        summary.mean_focal /= summary.teams as f64;
        summary.mean_accuracy /= summary.teams as f64;
    }
    (points, sizes)
}

/// Parses `files`, analyses the pool and returns the [`Analysis`] as JSON. `progress(done,
/// total)` reports scored teams.
///
/// # Errors
/// A message naming the file, model, row or column for bad input.
pub fn run(
    files: &[InputFile],
    options: &Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis, String> {
    let start = js_sys::Date::now();
    let input = PoolFiles::detect(files)
        .and_then(|f| f.parse())
        .map_err(|e| e.to_string())?;
    let pool = Pool::new(input).map_err(|e| {
        let names: Vec<&str> = files.iter().map(|f| f.name).collect();
        format!("{}: not a valid model pool: {e}", names.join(", "))
    })?;
    let report = analyze(
        &pool,
        &AnalysisOptions {
            min_size: options.min_size,
            max_size: options.max_size,
            top_k: options.top_k,
            listing: TeamListing::TopK,
            full_detail: true,
            compat: Compat::Canonical,
        },
        progress,
    )
    .map_err(|e| e.to_string())?;
    let (scatter, sizes) = teams_overview(&pool, options);
    Ok(Analysis {
        report,
        scatter,
        sizes,
        pairwise: pair_matrices(&pool),
        millis: js_sys::Date::now() - start,
    })
}

/// The worker's entry point: file names and contents, options as JSON, and a progress callback
/// `(done, total)`. Returns the [`Analysis`] as JSON.
///
/// # Errors
/// A readable message for bad input, as a JS `Error`.
#[wasm_bindgen(js_name = analyzeFiles)]
#[allow(clippy::needless_pass_by_value)] // wasm-bindgen hands arrays over by value
pub fn analyze_files(
    names: Vec<String>,
    contents: Vec<js_sys::Uint8Array>,
    options: &str,
    progress: &js_sys::Function,
) -> Result<String, JsError> {
    let options: Options =
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
    let analysis = run(&files, &options, &mut report).map_err(|e| JsError::new(&e))?;
    serde_json::to_string(&analysis).map_err(|e| JsError::new(&e.to_string()))
}

//! `fuselab._engine`: the shared crate's ensemble analysis for numpy arrays. The Python layer
//! (`fuselab/__init__.py`) checks shapes and converts dtypes, then hands over C-contiguous
//! `int64` and `float64` arrays, which are read in place; the analysis runs with the GIL
//! released and returns the CLI's `fuselab.ensemble.report/v1` JSON.

use std::time::{Duration, Instant};

use fuselab_shared::ensemble::combine::{
    CombineOptions, Method, SplitPool, TeamChoice, combine_pool,
};
use fuselab_shared::ensemble::compat::{EbMetric, Sampling};
use fuselab_shared::ensemble::{
    AnalysisOptions, Compat, Limits, ModelInput, Pool, PoolInput, SelectMethod, SelectOptions,
    Split, TeamListing, ThresholdRule, analyze, select,
};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// How often the progress callback is called at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A Python progress callback, called at most every [`PROGRESS_EVERY`] and at the end; its
/// errors are printed, never stop the engine.
struct Throttled {
    callback: Option<Py<PyAny>>,
    last: Instant,
}

impl Throttled {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        Self {
            callback,
            last: Instant::now(),
        }
    }

    /// Reports `args` when due (or when `last`), taking the GIL only then.
    fn report<A>(&mut self, last: bool, args: A)
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        let Some(callback) = &self.callback else {
            return;
        };
        if !last && self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        Python::attach(|py| {
            if let Err(error) = callback.call1(py, args) {
                error.print(py);
            }
        });
    }
}

fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// Class indices from `int64` values, naming the array and position of a negative or huge one.
fn classes(values: &[i64], what: &str) -> PyResult<Vec<u32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u32::try_from(v).map_err(|_| {
                value_error(format!(
                    "{what}[{i}] is {v}: expected a class index from 0 to {}",
                    u32::MAX
                ))
            })
        })
        .collect()
}

/// Per model, `n × c` rows of a `[m, n, c]` array.
fn rows_of(array: &PyReadonlyArray3<'_, f64>, m: usize, n: usize) -> PyResult<Vec<Vec<f64>>> {
    let [_, _, c] = array.shape() else {
        return Err(value_error("expected 3 dimensions"));
    };
    let c = (*c).max(1);
    let flat = array
        .as_slice()
        .map_err(|e| value_error(format!("arrays must be C-contiguous: {e}")))?;
    Ok(flat[m * n * c..(m + 1) * n * c]
        .chunks_exact(c)
        .map(<[f64]>::to_vec)
        .collect())
}

/// The pool of the arrays: `labels` `[n]`, `predictions` `[m, n]`, `probabilities` and
/// `logits` `[m, n, c]`.
fn pool_input(
    labels: &PyReadonlyArray1<'_, i64>,
    predictions: Option<&PyReadonlyArray2<'_, i64>>,
    probabilities: Option<&PyReadonlyArray3<'_, f64>>,
    logits: Option<&PyReadonlyArray3<'_, f64>>,
    names: Vec<String>,
) -> PyResult<PoolInput> {
    let contiguous =
        |e: numpy::AsSliceError| value_error(format!("arrays must be C-contiguous: {e}"));
    let labels = classes(labels.as_slice().map_err(contiguous)?, "labels")?;
    let n = labels.len();
    let mut models: Vec<ModelInput> = names.into_iter().map(ModelInput::named).collect();
    if let Some(predictions) = predictions {
        let flat = predictions.as_slice().map_err(contiguous)?;
        for (m, model) in models.iter_mut().enumerate() {
            let row = &flat[m * n..(m + 1) * n];
            model.predictions = Some(classes(row, &format!("predictions[{m}]"))?);
        }
    }
    for (m, model) in models.iter_mut().enumerate() {
        if let Some(probabilities) = probabilities {
            model.probabilities = Some(rows_of(probabilities, m, n)?);
        }
        if let Some(logits) = logits {
            model.logits = Some(rows_of(logits, m, n)?);
        }
    }
    Ok(PoolInput {
        labels,
        splits: None,
        models,
        classes: None,
    })
}

/// The validated pool of the arrays (without splits or logits), within the default limits.
fn validated_pool(
    labels: &PyReadonlyArray1<'_, i64>,
    predictions: Option<&PyReadonlyArray2<'_, i64>>,
    probabilities: Option<&PyReadonlyArray3<'_, f64>>,
    names: Vec<String>,
) -> PyResult<(Pool, Limits)> {
    let input = pool_input(labels, predictions, probabilities, None, names)?;
    let limits = Limits::default();
    let pool = Pool::with_limits(input, &limits).map_err(|e| value_error(e.to_string()))?;
    Ok((pool, limits))
}

fn compat_of(compat: Option<&str>, sampling: &str) -> PyResult<Compat> {
    match (compat, sampling) {
        (None | Some("canonical"), _) => Ok(Compat::Canonical),
        (Some("fusionshot"), _) => Ok(Compat::FusionShot),
        (Some("ensemblebench"), "bootstrap") => Ok(Compat::EnsembleBench {
            sampling: Sampling::Bootstrap2021,
        }),
        (Some("ensemblebench"), "exact") => Ok(Compat::EnsembleBench {
            sampling: Sampling::Exact,
        }),
        (Some("ensemblebench"), other) => Err(value_error(format!(
            "sampling={other:?}: expected \"bootstrap\" or \"exact\""
        ))),
        (Some(other), _) => Err(value_error(format!(
            "compat={other:?}: expected None, \"fusionshot\" or \"ensemblebench\""
        ))),
    }
}

/// Analyses a pool; returns the report as JSON (`fuselab.ensemble.report/v1`, as the CLI
/// prints it). `progress(done, total)` is called with teams analysed, at most every 100 ms.
#[pyfunction]
#[pyo3(signature = (labels, predictions, probabilities, names, min_size, max_size, top_k, full_detail, all_teams, compat, sampling, progress))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments; PyO3 hands over owned values
fn analyze_arrays(
    py: Python<'_>,
    labels: PyReadonlyArray1<'_, i64>,
    predictions: Option<PyReadonlyArray2<'_, i64>>,
    probabilities: Option<PyReadonlyArray3<'_, f64>>,
    names: Vec<String>,
    min_size: usize,
    max_size: Option<usize>,
    top_k: usize,
    full_detail: bool,
    all_teams: bool,
    compat: Option<&str>,
    sampling: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let compat = compat_of(compat, sampling)?;
    let (pool, limits) =
        validated_pool(&labels, predictions.as_ref(), probabilities.as_ref(), names)?;
    let max_size = max_size.unwrap_or(pool.models());
    limits
        .check_teams(pool.models(), min_size, max_size)
        .map_err(|e| value_error(e.to_string()))?;
    let options = AnalysisOptions {
        min_size,
        max_size,
        top_k,
        listing: if all_teams {
            TeamListing::All
        } else {
            TeamListing::TopK
        },
        full_detail,
        compat,
    };
    let mut progress = Throttled::new(progress);
    let report = py.detach(|| {
        analyze(&pool, &options, &mut |done, total| {
            progress.report(done >= total, (done, total));
        })
    });
    let report = report.map_err(|e| value_error(e.to_string()))?;
    serde_json::to_string_pretty(&report).map_err(|e| value_error(e.to_string()))
}

/// Trains a combiner for a team (`team`, by names) or for each of the `top_k` most
/// focal-diverse teams; returns the CLI's `fuselab.ensemble.combine/v1` JSON. `splits` are
/// codes (0 train, 1 val, 2 test); `progress(team, epoch, epochs)`.
#[pyfunction]
#[pyo3(signature = (labels, splits, predictions, probabilities, logits, names, team, top_k, method, fusionshot, epochs, batch, lr, seed, progress))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments; PyO3 hands over owned values
fn combine_arrays(
    py: Python<'_>,
    labels: PyReadonlyArray1<'_, i64>,
    splits: PyReadonlyArray1<'_, i64>,
    predictions: Option<PyReadonlyArray2<'_, i64>>,
    probabilities: Option<PyReadonlyArray3<'_, f64>>,
    logits: Option<PyReadonlyArray3<'_, f64>>,
    names: Vec<String>,
    team: Option<Vec<String>>,
    top_k: Option<usize>,
    method: &str,
    fusionshot: bool,
    epochs: usize,
    batch: usize,
    lr: f64,
    seed: u64,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let method = match method {
        "mlp" => Method::Mlp,
        "stacking" => Method::Stacking,
        "weighted-vote" => Method::WeightedVote,
        other => {
            return Err(value_error(format!(
                "method={other:?}: expected \"mlp\", \"stacking\" or \"weighted-vote\""
            )));
        }
    };
    let mut input = pool_input(
        &labels,
        predictions.as_ref(),
        probabilities.as_ref(),
        logits.as_ref(),
        names,
    )?;
    let codes = splits
        .as_slice()
        .map_err(|e| value_error(format!("arrays must be C-contiguous: {e}")))?;
    input.splits = Some(
        codes
            .iter()
            .enumerate()
            .map(|(i, &code)| {
                Split::from_code(code).ok_or_else(|| {
                    value_error(format!(
                        "splits[{i}] is {code}: expected 0 (train), 1 (val) or 2 (test)"
                    ))
                })
            })
            .collect::<PyResult<_>>()?,
    );
    let limits = Limits::default();
    let pool = SplitPool::new(input, &limits).map_err(|e| value_error(e.to_string()))?;
    let options = CombineOptions {
        method,
        fusionshot,
        epochs,
        batch,
        lr,
        seed,
        ..CombineOptions::default()
    };
    let team: Vec<String> = team.unwrap_or_default();
    let report = py.detach(|| {
        let names: Vec<&str> = team.iter().map(String::as_str).collect();
        let choice = top_k.map_or(TeamChoice::Names(&names), TeamChoice::TopK);
        let mut last = Instant::now();
        combine_pool(
            &pool,
            choice,
            &options,
            &limits,
            &mut |index, done, total| {
                if let Some(callback) = &progress
                    && (done == total || last.elapsed() >= PROGRESS_EVERY)
                {
                    last = Instant::now();
                    Python::attach(|py| {
                        if let Err(error) = callback.call1(py, (index, done, total)) {
                            error.print(py);
                        }
                    });
                }
                true
            },
        )
    });
    let report = report.map_err(|e| value_error(e.to_string()))?;
    serde_json::to_string_pretty(&report).map_err(|e| value_error(e.to_string()))
}

/// Selects teams as `fuselab ensemble select` does; returns its `fuselab.ensemble.selection/v1`
/// JSON. `ensemblebench` is the sampling of `EnsembleBench`'s mode (`"bootstrap"` or
/// `"exact"`), or `None` for canonical focal diversity.
#[pyfunction]
#[pyo3(signature = (labels, predictions, probabilities, names, method, top_k, min_size, max_size, ensemblebench, metric, rule, std_k, fraction, hq_max_size, weights, size_penalty, seed, progress))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments; PyO3 hands over owned values
fn select_arrays(
    py: Python<'_>,
    labels: PyReadonlyArray1<'_, i64>,
    predictions: Option<PyReadonlyArray2<'_, i64>>,
    probabilities: Option<PyReadonlyArray3<'_, f64>>,
    names: Vec<String>,
    method: &str,
    top_k: Option<usize>,
    min_size: usize,
    max_size: Option<usize>,
    ensemblebench: Option<&str>,
    metric: &str,
    rule: &str,
    std_k: f64,
    fraction: f64,
    hq_max_size: usize,
    weights: (f64, f64),
    size_penalty: bool,
    seed: u64,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let method = match method {
        "topk" => SelectMethod::Topk,
        "threshold" => SelectMethod::Threshold,
        "kmeans" => SelectMethod::Kmeans,
        "hq" => SelectMethod::Hq,
        "ga" => SelectMethod::Ga,
        other => {
            return Err(value_error(format!(
                "method={other:?}: expected \"topk\", \"threshold\", \"kmeans\", \"hq\" or \"ga\""
            )));
        }
    };
    let ensemblebench = match ensemblebench {
        None => None,
        Some("bootstrap") => Some(Sampling::Bootstrap2021),
        Some("exact") => Some(Sampling::Exact),
        Some(other) => {
            return Err(value_error(format!(
                "sampling={other:?}: expected \"bootstrap\" or \"exact\""
            )));
        }
    };
    let metric = EbMetric::parse(metric).ok_or_else(|| {
        value_error(format!(
            "metric={metric:?}: expected one of CK, QS, BD, FK, KW, GD"
        ))
    })?;
    let rule = match rule {
        "mean" => ThresholdRule::Mean,
        "std" => ThresholdRule::Std,
        other => {
            return Err(value_error(format!(
                "rule={other:?}: expected \"mean\" or \"std\""
            )));
        }
    };
    let (pool, limits) =
        validated_pool(&labels, predictions.as_ref(), probabilities.as_ref(), names)?;
    let options = SelectOptions {
        method,
        top_k,
        min_size,
        max_size: max_size.unwrap_or(pool.models()),
        ensemblebench,
        metric,
        rule,
        std_k,
        fraction,
        hq_max_size,
        weights,
        size_penalty,
        seed,
    };
    let mut progress = Throttled::new(progress);
    let selection = py.detach(|| {
        select(&pool, &options, &limits, &mut |done, total| {
            progress.report(done >= total, (done, total));
        })
    });
    let selection = selection.map_err(|e| value_error(e.to_string()))?;
    serde_json::to_string_pretty(&selection).map_err(|e| value_error(e.to_string()))
}

/// The extension module.
#[pymodule]
fn _engine(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(analyze_arrays, module)?)?;
    module.add_function(wrap_pyfunction!(combine_arrays, module)?)?;
    module.add_function(wrap_pyfunction!(select_arrays, module)?)?;
    Ok(())
}

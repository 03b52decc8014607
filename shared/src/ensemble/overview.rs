//! What the report views show besides the report itself: every team's focal diversity and
//! accuracy for the scatter plot, summaries by team size, and the pool's pairwise statistics.
//! Shared by the browser's worker, the server's analysis of large pools, and saved reports.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    AnalysisOptions, Compat, DiversityMetrics, FocalTable, InputError, InputFile, Pool, PoolError,
    PoolFiles, Report, SplitChoice, SplitUse, TeamError, TeamListing, Teams, VoteTable,
    analyze_with,
};

/// The value of [`Analysis::schema`].
pub const ANALYSIS_SCHEMA: &str = "fuselab.ensemble.analysis/v1";

/// What to analyse: the ranked teams and the size range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewOptions {
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

/// Everything the report views show (`fuselab.ensemble.analysis/v1`): the report plus the data
/// of its plots. The browser computes it in its worker, the server for large pools, and saved
/// reports store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Always [`ANALYSIS_SCHEMA`].
    pub schema: String,
    /// The CLI's report (`fuselab.ensemble.report/v1`), top-K teams in full detail.
    pub report: Report,
    /// Every team with a defined focal diversity, when there are at most [`SCATTER_LIMIT`].
    pub scatter: Option<Vec<Point>>,
    /// Per team size.
    pub sizes: Vec<SizeSummary>,
    /// Pairwise statistics for the heat-map.
    pub pairwise: Vec<PairMatrix>,
    /// Where the teams' focal diversity was computed, when the caller says (e.g. a WebGPU
    /// adapter); absent means the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_on: Option<String>,
    /// The samples analysed, when the pool has splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitUse>,
    /// Wall time of the analysis, where the caller measured it (shared code has no clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis: Option<f64>,
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

/// A team's plurality-vote accuracy: from the vote table where the pool has one, else from
/// the team's own votes.
pub(super) fn plurality_accuracy(pool: &Pool, votes: Option<&VoteTable>, members: &[usize]) -> f64 {
    match votes {
        Some(votes) => votes.plurality_accuracy(members),
        None => pool
            .team(members)
            .ok()
            .and_then(|v| v.plurality_accuracy())
            .unwrap_or(0.0),
    }
}

/// Scatter points and per-size summaries from one pass over the teams.
fn teams_overview(
    pool: &Pool,
    options: &OverviewOptions,
    focal: &dyn Fn(&[usize]) -> Option<f64>,
) -> (Option<Vec<Point>>, Vec<SizeSummary>) {
    let total = Teams::total(pool.models(), options.min_size, options.max_size);
    let votes = VoteTable::new(pool);
    let mut points = (total <= SCATTER_LIMIT).then(Vec::new);
    let mut sizes: Vec<SizeSummary> = Vec::new();
    for members in Teams::new(pool.models(), options.min_size, options.max_size) {
        let Some(diversity) = focal(&members) else {
            continue;
        };
        let accuracy = plurality_accuracy(pool, votes.as_ref(), &members);
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

/// Why files could not be analysed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AnalysisError {
    /// The files are not a pool (named file, line, array...).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The pool's contents are inconsistent.
    #[error("{files}: not a valid model pool: {error}")]
    Pool {
        /// The files' names.
        files: String,
        /// What is wrong.
        error: PoolError,
    },
    /// The size range is invalid.
    #[error(transparent)]
    Team(#[from] TeamError),
}

/// Scores a validated pool: the report with the top-K teams in full detail, and the plot data.
/// `progress(done, total)` reports scored teams.
///
/// # Errors
/// [`TeamError`] for an invalid size range.
pub fn analysis(
    pool: &Pool,
    options: &OverviewOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis, TeamError> {
    let table = FocalTable::new(pool);
    analysis_with(
        pool,
        options,
        &|members| table.focal_diversity(members).mean,
        progress,
    )
}

/// [`analysis`] with every team's focal diversity from `focal` (for example computed on a GPU).
///
/// # Errors
/// [`TeamError`] for an invalid size range.
pub fn analysis_with(
    pool: &Pool,
    options: &OverviewOptions,
    focal: &dyn Fn(&[usize]) -> Option<f64>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis, TeamError> {
    let report = analyze_with(
        pool,
        &AnalysisOptions {
            min_size: options.min_size,
            max_size: options.max_size,
            top_k: options.top_k,
            listing: TeamListing::TopK,
            full_detail: true,
            compat: Compat::Canonical,
        },
        focal,
        progress,
    )?;
    let (scatter, sizes) = teams_overview(pool, options, focal);
    Ok(Analysis {
        schema: ANALYSIS_SCHEMA.to_owned(),
        report,
        scatter,
        sizes,
        pairwise: pair_matrices(pool),
        millis: None,
        computed_on: None,
        split: None,
    })
}

/// Parses `files` (as [`PoolFiles::detect`] recognises them), validates the pool and scores it.
///
/// # Errors
/// [`AnalysisError`] naming the file, model, row or column.
pub fn analyze_files(
    files: &[InputFile],
    split: SplitChoice,
    options: &OverviewOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis, AnalysisError> {
    let files_named = || files.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
    let (input, used) = PoolFiles::detect(files)?
        .parse()?
        .select(split)
        .map_err(|error| AnalysisError::Pool {
            files: files_named(),
            error,
        })?;
    let pool = Pool::new(input).map_err(|error| AnalysisError::Pool {
        files: files_named(),
        error,
    })?;
    let mut result = analysis(&pool, options, progress)?;
    result.split = used;
    Ok(result)
}

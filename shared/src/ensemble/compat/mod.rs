//! Compatibility modes (spec §3.3–§3.4): the `EnsembleBench` and `FusionShot` computations
//! as their reference code performs them, so published pipelines can be reproduced number
//! for number. Where the reference raises an exception, these functions return a typed
//! [`CompatError`]; the canonical engine (the parent module) fixes those cases instead.

mod counts;
mod ensemblebench;
mod fq;
mod fusionshot;
pub mod numpy;
mod pipeline;

use serde::Serialize;
use thiserror::Error;

use super::threshold::ClusterFailure;

pub use counts::{FocalRows, RowFailures, RowLabels};
pub use ensemblebench::{
    EPS, EbMetric, EbScores, Sampling, bootstrap_positions, eb_focal_scores, eb_scores,
};
pub use fq::{FocalScoreTable, FocalWeights, FqScores};
pub use fusionshot::{FusionShotTable, fs_generalized_div};
pub use pipeline::{NotebookSelection, notebook_pipeline};

/// Where and why a reference computation fails; each variant names the reference exception
/// it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompatError {
    /// sklearn's "Found empty input array": EnsembleBench scores a focal model that has no
    /// negative samples (divergence 14, exact variant).
    #[error(
        "team {team:?}: EnsembleBench cannot score an empty sample set (sklearn ValueError: empty input array)"
    )]
    EmptyInput {
        /// The team.
        team: Vec<usize>,
    },
    /// numpy's "'a' cannot be empty unless no samples are taken": bootstrapping the negatives
    /// of a focal model that is never wrong (divergence 14).
    #[error(
        "team {team:?}: focal model {focal} has no negative samples to bootstrap (numpy ValueError)"
    )]
    EmptyBootstrap {
        /// The team.
        team: Vec<usize>,
        /// The focal model.
        focal: usize,
    },
    /// EnsembleBench's generalized diversity sizes its histogram by the number of rows, so a
    /// row with `index` failing members indexes past it (divergence 2).
    #[error(
        "team {team:?}: EnsembleBench's GD histogram has {size} slots but a sample has {index} failing members (IndexError)"
    )]
    HistogramIndex {
        /// The team.
        team: Vec<usize>,
        /// The failure count used as an index.
        index: usize,
        /// The histogram's length (number of rows).
        size: usize,
    },
    /// FusionShot's `calc_generalized_div` reads the share of the `index + 1`-th distinct
    /// failure count, but only `size` distinct counts occur (divergence 1).
    #[error("team {team:?}: FusionShot's GD finds only {size} distinct failure counts for {members} members (IndexError: index {index})", members = team.len())]
    UniqueIndex {
        /// The team.
        team: Vec<usize>,
        /// The index read.
        index: usize,
        /// The number of distinct counts.
        size: usize,
    },
    /// The demo's cell 7 looks up a per-focal score the reference could not compute (a focal
    /// model without negatives, or a metric that raised): `KeyError` (divergence 10).
    #[error("focal model {focal} has no score for team {team:?} (notebook cell 7 KeyError)")]
    MissingFocalScore {
        /// The focal model.
        focal: usize,
        /// The team.
        team: Vec<usize>,
        /// Whether no focal model of the team has scores (the reference then names the team).
        whole_team: bool,
    },
    /// A 2-means threshold of the demo cannot be drawn (divergences 11 and 12).
    #[error("notebook cell {cell}: the 2-means threshold for {metric:?} on teams of size {size}{} fails: {failure}", focal.map(|f| format!(" with focal model {f}")).unwrap_or_default())]
    Cluster {
        /// The demo cell (8: per focal model and size; 9: per size).
        cell: u8,
        /// The focal model (cell 8).
        focal: Option<usize>,
        /// The team size.
        size: usize,
        /// The metric.
        metric: EbMetric,
        /// What went wrong.
        failure: ClusterFailure,
    },
    /// The scores do not cover every team of sizes 2 to M, which the demo pipeline needs.
    #[error("the demo pipeline needs the scores of every team of sizes 2 to {models}")]
    IncompleteTable {
        /// The pool's number of models.
        models: usize,
    },
}

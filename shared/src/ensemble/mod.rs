//! The focal-diversity ensemble engine (spec `focal.md`, canonical mode): a validated model
//! pool, correctness bitsets, the diversity metrics of any team on any sample subset,
//! canonical focal diversity, voting, and team enumeration with top-K selection.
//!
//! Undefined values (0/0, a focal model without negative samples) are `None`, never NaN.

mod answers;
mod bitset;
pub mod combine;
pub mod compat;
mod focal;
mod focal_table;
mod ga;
mod input;
mod kmeans;
mod limits;
mod lines;
mod overview;
mod pool;
mod report;
mod select;
mod selection;
mod shard;
mod split;
mod team;
mod threshold;
mod vote;
mod vote_table;

pub use answers::{Answer, vote_over_answers};
pub use bitset::Bitset;
pub use focal::FocalDiversity;
pub use focal_table::FocalTable;
pub use ga::{
    Fitness, FitnessWeights, GaConfig, GaError, GaResult, GaTeam, INVALID_FITNESS, genetic_search,
};
pub use input::{ANSWER_SPLIT_SEED, InputError, InputFile, PoolFiles};
pub use kmeans::{TwoMeans, two_means};
pub use limits::{Limit, LimitError, Limits};
pub use lines::{Lines, TeamLines};
pub use overview::{
    ANALYSIS_SCHEMA, Analysis, AnalysisError, OverviewOptions, PairMatrix, Point, SCATTER_LIMIT,
    SizeSummary, analysis, analysis_with, analyze_files,
};
pub use pool::{
    ModelInput, PROBABILITY_SUM_TOLERANCE, Pool, PoolError, PoolInput, softmax_in_place,
};
pub use report::{
    AnalysisOptions, CSV_HEADER, Compat, EnsembleBenchScores, FocalScores, ModelReport,
    REPORT_SCHEMA, Report, TeamListing, TeamReport, analyze, analyze_with, csv_row,
    fusionshot_error_warning, fusionshot_unscored_warning, model_lines, no_sizes_warning,
    null_focal_warnings, report_of_ranking, team_names,
};
pub use select::{RankedTeam, SizeRange, Teams, top_k_by_focal_diversity, top_k_of};
pub use selection::{
    SELECTION_SCHEMA, SelectError, SelectMethod, SelectOptions, Selected, Selection, ThresholdRule,
    select,
};
pub use shard::{Cancelled, HISTOGRAM_BINS, SizeStats, TeamSummary, shard_ranges, summarise_range};
pub use split::{Split, SplitChoice, SplitUse, split_counts};
pub use team::{DiversityMetrics, PairCounts, TeamError, TeamView};
pub use threshold::{
    ClusterFailure, TeamStatistics, cluster_center_threshold, cluster_min_threshold, hq_prune,
    std_threshold, team_statistics,
};
pub use vote::soft_vote_of_teams;
pub use vote_table::VoteTable;

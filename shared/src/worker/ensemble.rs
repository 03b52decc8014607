//! The Ensembles page's worker: what the page asks (an analysis, a combiner's training) and
//! what the worker answers, as JSON.

use serde::{Deserialize, Serialize};

use crate::api::AnalyzeRequest;
use crate::ensemble::combine::{CombineOptions, Method, SplitSizes, TeamCombination};
use crate::ensemble::{Analysis, OverviewOptions, SplitChoice};

/// Where the teams' focal diversity is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    /// WebGPU for pools of at least [`GPU_TEAMS`] teams when the browser has a hardware GPU.
    Auto,
    /// Always the CPU.
    Cpu,
    /// WebGPU whatever the size (the CPU if it fails).
    Gpu,
}

/// From this many teams on, `Auto` uses WebGPU.
pub const GPU_TEAMS: u64 = 4_096;

/// What the page asks the worker for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerOptions {
    /// Top-K and team sizes.
    pub overview: OverviewOptions,
    /// Above this many teams the pool goes to the server (`None`: always here).
    pub local_limit: Option<u64>,
    /// Where focal diversity is computed.
    pub compute: Compute,
    /// Which samples of a pool with splits to analyse (the test split by default).
    #[serde(default)]
    pub split: SplitChoice,
}

/// What the worker gives back. Externally tagged: an internally tagged enum would make serde
/// buffer the analysis and deserialise it a second way, doubling that code in the app's wasm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// What the page asks the worker to combine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombineRequest {
    /// Member indices.
    pub members: Vec<usize>,
    /// The combiner and its settings.
    pub options: CombineOptions,
}

/// What the worker gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombineResult {
    /// The combiner.
    pub method: Method,
    /// The combiner against the baselines.
    pub team: TeamCombination,
    /// Samples per split.
    pub sizes: SplitSizes,
    /// Milliseconds the worker took, parsing included.
    pub millis: f64,
}

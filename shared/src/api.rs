//! JSON bodies of the HTTP API, shared by the server and the browser app.

use serde::{Deserialize, Serialize};

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the server answers requests.
    pub status: String,
    /// The server's crate version.
    pub version: String,
}

/// The body of every error response of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// A message that is safe to show to the user; internal details stay in the server log.
    pub error: String,
}

/// `POST /api/reports`: an analysis to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaveReport {
    /// The analysis (`fuselab.ensemble.analysis/v1`).
    pub analysis: crate::ensemble::Analysis,
    /// An optional name for the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `POST /api/reports` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedReport {
    /// The new report's id.
    pub id: String,
    /// Its read-only page.
    pub url: String,
}

/// One line of `GET /api/reports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// Its id (32 hexadecimal digits).
    pub id: String,
    /// When it was saved, seconds since 1970 (UTC).
    pub created: i64,
    /// A name the user gave, or the models' names.
    pub title: String,
    /// Models in the pool.
    pub n_models: i64,
    /// Samples.
    pub n_samples: i64,
}

/// `POST /api/ensemble/analyze`: a pool in the engine's JSON input format, and what to compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeRequest {
    /// Labels and models.
    pub pool: crate::ensemble::PoolInput,
    /// Top-K and team sizes.
    pub options: crate::ensemble::OverviewOptions,
}

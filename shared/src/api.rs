//! JSON bodies of the HTTP API, shared by the server and the browser app.

use std::collections::BTreeMap;

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

/// `GET /api/masks/{id}/events`: where a mask job stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MaskJobStatus {
    /// Waiting for another job to finish.
    Queued,
    /// Loading the models and preparing the faces.
    Preparing,
    /// After a training step.
    Training {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs in all.
        epochs: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// The batch's mean DSSIM.
        dssim: f32,
        /// Mean angle per model, radians.
        angles: BTreeMap<String, f32>,
        /// The perceptibility weight.
        lambda: f32,
    },
    /// The key is ready.
    Done {
        /// The mask's SHA-256, its identity.
        sha256: String,
        /// Mean DSSIM on the training faces.
        dssim: f64,
        /// Training time.
        seconds: f64,
    },
    /// Training failed; the details are in the server log.
    Failed {
        /// A message for the user.
        error: String,
    },
    /// The user cancelled the job.
    Cancelled,
}

impl MaskJobStatus {
    /// Whether the job has ended (done, failed or cancelled).
    pub fn finished(&self) -> bool {
        matches!(
            self,
            Self::Done { .. } | Self::Failed { .. } | Self::Cancelled
        )
    }
}

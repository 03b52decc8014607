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
    /// Who saved it (`None` for reports saved before the server had accounts).
    #[serde(default)]
    pub owner: Option<String>,
}

/// `POST /api/ensemble/analyze`: a pool in the engine's JSON input format, and what to compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeRequest {
    /// Labels and models.
    pub pool: crate::ensemble::PoolInput,
    /// Top-K and team sizes.
    pub options: crate::ensemble::OverviewOptions,
    /// Which samples of a pool with splits to analyse (the test split by default).
    #[serde(default)]
    pub split: crate::ensemble::SplitChoice,
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

/// What a harmful fine-tuning run does: the `fuselab align` subcommand it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignAction {
    /// Every defence × p × n of `[grid]`: table, charts and report.
    Benchmark,
    /// One attack with `[attack]`'s defence, p and n.
    Attack,
    /// Align with Booster and measure.
    Booster,
    /// Align with Vaccine and measure.
    Vaccine,
    /// One attack on the SFT-aligned model, fine-tuned with Lisa.
    Lisa,
    /// LLM-TOPLA-Summary: a model fine-tuned to fuse an LLM team's answers
    /// (`fuselab llm topla summary`), an LLM-ensemble run.
    #[serde(rename = "topla-summary")]
    ToplaSummary,
    /// A click-through-rate benchmark: DIN, DIN + trigger and CCN over seeds
    /// (`fuselab ctr benchmark`).
    #[serde(rename = "ctr-benchmark")]
    CtrBenchmark,
    /// A video-pose ablation: JM-Pose's rungs over seeds on the synthetic benchmark
    /// (`fuselab pose benchmark`).
    #[serde(rename = "pose-benchmark")]
    PoseBenchmark,
    /// H3Fusion: three `LoRA` experts (helpful, harmless, honest) fused into a mixture of
    /// experts, evaluated with its routing heat-maps (`fuselab align h3fusion`).
    H3Fusion,
}

impl AlignAction {
    /// Every action, in the order the page offers them.
    pub const ALL: [Self; 9] = [
        Self::Benchmark,
        Self::Attack,
        Self::Booster,
        Self::Vaccine,
        Self::Lisa,
        Self::ToplaSummary,
        Self::CtrBenchmark,
        Self::PoseBenchmark,
        Self::H3Fusion,
    ];

    /// The subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Benchmark => "benchmark",
            Self::Attack => "attack",
            Self::Booster => "booster",
            Self::Vaccine => "vaccine",
            Self::Lisa => "lisa",
            Self::ToplaSummary => "topla-summary",
            Self::CtrBenchmark => "ctr-benchmark",
            Self::PoseBenchmark => "pose-benchmark",
            Self::H3Fusion => "h3fusion",
        }
    }
}

/// `POST /api/align/runs`: start a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAlignRun {
    /// What to run.
    pub action: AlignAction,
    /// The run's configuration, as `fuselab align … --config FILE` reads it (TOML). The server
    /// sets `out` itself.
    pub config: String,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlignRunStatus {
    /// Waiting for a worker.
    Queued,
    /// Training or measuring.
    Running,
    /// Finished; the results are there.
    Done,
    /// Stopped with an error; it can be resumed.
    Failed,
    /// Its worker stopped with no attempts left, or it was cancelled; it can be resumed.
    Interrupted,
}

impl AlignRunStatus {
    /// Whether no job works on the run (done, failed or interrupted).
    pub fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Interrupted)
    }

    /// Whether `POST …/resume` may restart it (failed or interrupted).
    pub fn resumable(self) -> bool {
        matches!(self, Self::Failed | Self::Interrupted)
    }

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// `POST /api/align/runs` and `POST /api/align/runs/{id}/resume` answer (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignRunCreated {
    /// The run's id (its job's: 32 hexadecimal digits).
    pub id: String,
    /// Queued or running.
    pub status: AlignRunStatus,
}

/// One row of a finished run's results (`results.json`): a model aligned with a defence,
/// attacked or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignResultRow {
    /// `sft`, `booster`, `vaccine` or `lisa`.
    pub defence: String,
    /// Poison ratio; `None` for the aligned model before any attack.
    pub p: Option<f64>,
    /// Fine-tuning samples; `None` before any attack.
    pub n: Option<usize>,
    /// Harmful score, % of harmful prompts whose answer the judge flags.
    pub hs: f64,
    /// HS+: flagged or incoherent, %.
    pub hs_plus: f64,
    /// Fine-tune accuracy on the benign task, %.
    pub fa: f64,
    /// The replicate's seed, when the run reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// One run in `GET /api/align/runs` (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignRunSummary {
    /// Its id (its job's: 32 hexadecimal digits).
    pub id: String,
    /// Who started it (`None` for runs started before the server had accounts).
    #[serde(default)]
    pub owner: Option<String>,
    /// What it runs.
    pub action: AlignAction,
    /// Where it stands.
    pub status: AlignRunStatus,
    /// When it was created, seconds since 1970 (UTC).
    pub created: i64,
    /// When its last attempt started.
    #[serde(default)]
    pub started: Option<i64>,
    /// When its last attempt ended.
    #[serde(default)]
    pub finished: Option<i64>,
    /// Why it failed or stopped (safe to show).
    #[serde(default)]
    pub error: Option<String>,
    /// A finished run's rows; empty before.
    #[serde(default)]
    pub results: Vec<AlignResultRow>,
}

/// `GET /api/align/runs/{id}`: a run with its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignRunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: AlignRunSummary,
    /// The configuration it runs with (`out` set by the server, data paths resolved).
    pub config: String,
    /// The files `GET /api/align/runs/{id}/files/{name}` has for it now.
    pub files: Vec<String>,
}

/// The fields of a `metrics` event (one `metrics.jsonl` line) that the page shows; the line has
/// more (`terms`, `learning_rate`, `tokens_per_second`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignMetrics {
    /// The training stage (`base`, `align-sft`, `attack-lisa-p0.1`, …).
    pub stage: String,
    /// 1-based step.
    pub step: usize,
    /// Steps in the stage.
    pub total_steps: usize,
    /// The step's loss.
    pub loss: f64,
}

/// Who may do what on a server with accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, every user's runs and reports.
    Admin,
    /// Their own masks, analyses, reports and (when allowed) training runs.
    User,
}

impl Role {
    /// The name used on the command line, in the database and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }
}

/// A signed-in user, as the app shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    /// The user name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Whether they may start training runs (admins always may).
    pub can_train: bool,
}

/// `GET /api/session` (and the answer to signing in): who this browser is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `None` for an anonymous visitor.
    pub user: Option<SessionUser>,
    /// `false` when the server runs without accounts (`--auth off`, loopback only): every
    /// visitor acts as a local administrator.
    pub auth_required: bool,
}

/// `POST /api/session`: sign in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The user name.
    pub name: String,
    /// Their password.
    pub password: String,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /api/account/password`: change one's own password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePassword {
    /// The password now.
    pub current: String,
    /// The new one.
    pub new: String,
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassword").finish_non_exhaustive()
    }
}

/// One line of `GET /api/tokens`: an API token of the signed-in user (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id, for revoking it.
    pub id: String,
    /// The name its owner gave it.
    pub name: String,
    /// When it was created, seconds since 1970 (UTC).
    pub created: i64,
    /// When it was last used, seconds since 1970 (UTC).
    pub last_used: Option<i64>,
}

/// `POST /api/tokens`: a new API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// A name to recognise it by.
    pub name: String,
}

/// `POST /api/tokens` answer: the token's secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// Its id and name.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret, for `Authorization: Bearer <token>`.
    pub token: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A CTR benchmark's progress line (a `metrics` event of a `ctr-benchmark` run): one epoch of
/// one run of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtrProgress {
    /// The run's name (`ccn-lambda0.1-seed2`).
    pub run: String,
    /// 1-based index of the run in the grid.
    pub run_index: usize,
    /// Runs in the grid.
    pub runs: usize,
    /// 1-based epoch.
    pub epoch: usize,
    /// Most epochs.
    pub epochs: usize,
    /// Mean training BCE over the epoch.
    pub bce: f64,
    /// Validation AUC after the epoch.
    pub valid_auc: f64,
    /// Validation GAUC after the epoch.
    pub valid_gauc: f64,
}

/// What the web app reads of an H3Fusion run's `report.json` (`fuselab.h3fusion.report/v1`):
/// each model's scores and the fused model's routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct H3FusionReportView {
    /// `fuselab.h3fusion.report/v1`.
    pub format: String,
    /// The base model.
    pub base: String,
    /// The data's label (synthetic stand-ins or the named datasets).
    pub data: String,
    /// `base`, the experts, `fused`, in the report's order.
    pub models: Vec<H3FusionModelView>,
    /// Seconds the run took.
    pub seconds: f64,
}

/// One model of an [`H3FusionReportView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct H3FusionModelView {
    /// `base`, `expert:helpful`, …, `fused`.
    pub name: String,
    /// Its scores and routing.
    pub evaluation: H3FusionEvaluationView,
}

/// A model's evaluation in an [`H3FusionReportView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct H3FusionEvaluationView {
    /// Share of outputs each task's judge passes.
    pub scores: crate::align::TaskScores,
    /// For a mixture of experts, per task: layer × expert mean router probability (empty for
    /// dense models).
    #[serde(default)]
    pub routing: Vec<(crate::align::Task, Vec<Vec<f64>>)>,
}

/// A pose benchmark's progress line (a `metrics` event of a `pose-benchmark` run): one epoch of
/// one run of its rungs × seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoseProgress {
    /// The run's name (`io-seed2`).
    pub run: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Mean joint-weighted heat-map loss over the epoch.
    pub heatmap_loss: f64,
    /// Validation AP after the epoch (`None` where it is not a number).
    pub valid_ap: Option<f64>,
}

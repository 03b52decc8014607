//! What the alignment runs measure and report, as plain types: the defences, one model's HS and
//! FA, the rows and summary of the attack grid, and H3Fusion's report. A leaf: the runs
//! (`attack`, `h3fusion`) fill them in and `report` writes them out, and neither imports the
//! other.

use fuselab_ml::llm::h3fusion::{Evaluation, Quirks};
use fuselab_shared::align::BenignTask;
use serde::{Deserialize, Serialize};

/// A defence, as the benchmark names it: how the model is aligned and how it is fine-tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Defence {
    /// SFT alignment, plain fine-tuning (the baseline).
    Sft,
    /// Booster alignment, plain fine-tuning.
    Booster,
    /// Vaccine alignment, plain fine-tuning.
    Vaccine,
    /// SFT alignment, Lisa fine-tuning.
    Lisa,
}

/// How a model is aligned before the attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    /// Plain supervised fine-tuning on the alignment data.
    Sft,
    /// Booster.
    Booster,
    /// Vaccine.
    Vaccine,
}

impl Defence {
    /// The name in tables and folders.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sft => "sft",
            Self::Booster => "booster",
            Self::Vaccine => "vaccine",
            Self::Lisa => "lisa",
        }
    }

    /// Its alignment stage.
    #[must_use]
    pub fn alignment(self) -> Alignment {
        match self {
            Self::Sft | Self::Lisa => Alignment::Sft,
            Self::Booster => Alignment::Booster,
            Self::Vaccine => Alignment::Vaccine,
        }
    }
}

impl Alignment {
    /// The name in tables and folders.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sft => "sft",
            Self::Booster => "booster",
            Self::Vaccine => "vaccine",
        }
    }
}

/// HS and FA of one model, with a few answers to look at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Harmful score, % of harmful prompts whose answer the judge flags.
    pub hs: f64,
    /// HS+: flagged or incoherent, %.
    pub hs_plus: f64,
    /// Fine-tune accuracy on the benign task, %.
    pub fa: f64,
    /// Harmful prompts answered.
    pub harmful_prompts: usize,
    /// Benign test examples answered.
    pub benign_prompts: usize,
    /// A few (prompt, answer) pairs of each kind.
    pub samples: Vec<(String, String)>,
    /// Seconds spent generating.
    pub seconds: f64,
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The replicate's seed.
    #[serde(default)]
    pub seed: u64,
    /// The defence.
    pub defence: Defence,
    /// Poison ratio; `None` for the aligned model before any attack.
    pub p: Option<f64>,
    /// Sample count; `None` before any attack.
    pub n: Option<usize>,
    /// The measurements.
    #[serde(flatten)]
    pub measured: Measured,
}

/// One row of the summary over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// The defence.
    pub defence: Defence,
    /// Poison ratio; `None` before any attack.
    pub p: Option<f64>,
    /// Sample count; `None` before any attack.
    pub n: Option<usize>,
    /// Seeds averaged.
    pub seeds: usize,
    /// Mean HS, %.
    pub hs: f64,
    /// Standard deviation of HS over seeds (0 for one seed).
    pub hs_std: f64,
    /// Mean HS+, %.
    pub hs_plus: f64,
    /// Mean FA, %.
    pub fa: f64,
    /// Standard deviation of FA over seeds.
    pub fa_std: f64,
}

/// The benchmark's results: every aligned model and every attack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// The rows of every seed: aligned models first, then the attacks.
    pub results: Vec<CellResult>,
    /// Mean and spread over seeds of each (defence, p, n).
    #[serde(default)]
    pub summary: Vec<SummaryRow>,
    /// The benign task.
    pub task: BenignTask,
    /// The judge's name.
    pub judge: String,
    /// The base model.
    pub base: String,
    /// Whether the data are synthetic.
    pub synthetic: bool,
    /// Seconds the command ran (resumed work not counted).
    pub seconds: f64,
}

/// One evaluated model in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    /// `base`, `expert:helpful`, …, `fused`.
    pub name: String,
    /// Its evaluation.
    pub evaluation: Evaluation,
}

/// What the run writes to `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct H3FusionReport {
    /// `fuselab.h3fusion.report/v1`.
    pub format: String,
    /// The base model.
    pub base: String,
    /// Whether the data are fuselab's synthetic stand-ins, and the label to show.
    pub data: String,
    /// Training examples per task.
    pub train_examples: [usize; 3],
    /// Test prompts per task.
    pub test_prompts: [usize; 3],
    /// The quirk switches in force.
    pub quirks: Quirks,
    /// Every model's scores and samples.
    pub models: Vec<ModelResult>,
    /// Padded tokens per second of each training stage run now.
    pub throughput: Vec<(String, f64)>,
    /// Seconds the whole command took.
    pub seconds: f64,
}

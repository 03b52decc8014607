//! `fuselab llm topla summary`'s TOML configuration: the schema, then every value's range.

use std::path::PathBuf;

use fuselab_ml::llm::lora::LoraConfig;
use fuselab_ml::llm::range;
use fuselab_ml::llm::train::TrainConfig;
use fuselab_shared::topla::summary::{FusionTask, MAX_MEMBERS};
use serde::{Deserialize, Serialize};

use crate::align::Checked;

/// Most outputs per member a prompt may show.
pub const MAX_OUTPUTS: usize = 100;

/// The reference's behaviour, reproduced on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SummaryCompat {
    /// LLM-TOPLA's `topla_open_ended.py`: label padding in the loss, the teacher-forced argmax
    /// score beside the generated one, and the last epoch's model kept (its "restore best"
    /// keeps references to the live weights).
    LlmTopla,
}

/// The whole run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryConfig {
    /// Run folder (relative paths: to the configuration file).
    pub out: PathBuf,
    /// `cpu` or `wgpu`.
    #[serde(default)]
    pub device: Option<fuselab_ml::Compute>,
    /// Seed of the added tokens, the adapters and the shuffles.
    #[serde(default)]
    pub seed: u64,
    /// `gsm8k`, `mmlu`, `open` or `summary`.
    pub task: FusionTask,
    /// The question set with gold answers (JSON Lines).
    pub questions: PathBuf,
    /// The folder of member answer sets (`<member>.jsonl`), as `fuselab llm answers` writes.
    pub answers: PathBuf,
    /// The team: answer-set names; empty: every set in the folder.
    #[serde(default)]
    pub members: Vec<String>,
    /// Outputs of each member the prompt shows (the first ones); 0: all.
    #[serde(default)]
    pub outputs_per_member: usize,
    /// Seed of the held-out test questions (the same split as `llm topla weighted`).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Reproduce the reference's evaluation and training quirks.
    #[serde(default)]
    pub compat: Option<SummaryCompat>,
    /// Epochs without a better validation score before stopping.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// The fusion model.
    pub model: ModelConfig,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalConfig,
}

fn default_split_seed() -> u64 {
    fuselab_shared::ensemble::ANSWER_SPLIT_SEED
}
fn default_patience() -> usize {
    3
}

/// The model that reads the members' answers and writes the fused one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `smollm2`, a `.gguf` file, a Hugging Face Llama directory, or `tiny` (a small Llama
    /// with a byte-level BPE trained here on the run's own prompts; all its weights train).
    pub name: String,
    /// Adapters (not used by `tiny`, which trains every weight).
    pub lora: LoraConfig,
    /// The run: batch, epochs, `max_len`, optimiser (`schedule = "linear"` as the reference).
    pub train: TrainConfig,
}

/// How answers are generated and shown.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Most tokens of a fused answer.
    #[serde(default = "default_new_tokens")]
    pub max_new_tokens: usize,
    /// Test questions shown with their fused and member answers in the report.
    #[serde(default = "default_examples")]
    pub examples: usize,
}

fn default_new_tokens() -> usize {
    24
}
fn default_examples() -> usize {
    6
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: default_new_tokens(),
            examples: default_examples(),
        }
    }
}

impl Checked for SummaryConfig {
    fn check(&self) -> Result<(), String> {
        let fail = |e: range::RangeError| e.to_string();
        if self.model.name != "tiny" {
            self.model.lora.check("model.lora").map_err(fail)?;
        }
        self.model.train.check("model.train").map_err(fail)?;
        if self.members.len() == 1 || self.members.len() > MAX_MEMBERS {
            return Err(format!(
                "members: expected 2 to {MAX_MEMBERS} answer sets (or none for all), found {}",
                self.members.len()
            ));
        }
        if let Some((_, twice)) = self
            .members
            .iter()
            .enumerate()
            .find(|(i, m)| self.members[..*i].contains(m))
        {
            return Err(format!("members: `{twice}` is named twice"));
        }
        range::count(
            "outputs_per_member",
            self.outputs_per_member,
            0..=MAX_OUTPUTS,
        )
        .map_err(fail)?;
        range::count("patience", self.patience, 1..=range::MAX_EPOCHS).map_err(fail)?;
        range::count(
            "eval.max_new_tokens",
            self.eval.max_new_tokens,
            1..=range::MAX_TOKENS,
        )
        .map_err(fail)?;
        range::count("eval.examples", self.eval.examples, 0..=1000).map_err(fail)
    }
}

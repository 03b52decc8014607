//! `fuselab align sft|h3fusion|booster|vaccine|lisa|attack|benchmark --config FILE`: alignment
//! runs and the harmful fine-tuning benchmark on the LLM stack, with
//! checkpoints (a killed run resumes), a JSONL metrics log, a progress line and a report.

pub mod attack;
pub mod config;
pub mod data;
pub mod h3fusion;
pub mod job;
pub mod observe;
pub mod report;
pub mod results;
pub mod run;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use fuselab_ml::llm::lora::LoraConfig;
use fuselab_ml::llm::range::{self, RangeError};
use fuselab_ml::llm::train::TrainConfig;
use fuselab_shared::align::{
    AlpacaRecord, BeaverTailsRecord, Example, TruthfulQaRecord, safe_only, synthetic,
    truthfulqa_split,
};
use serde::{Deserialize, Serialize};

pub use config::{Checked, ConfigError, parse_config, read_config};
pub use data::read_records;

/// `fuselab align …`.
#[derive(Debug, Subcommand)]
pub enum AlignCommand {
    /// Supervised fine-tuning with LoRA on one Alpaca-style dataset
    Sft(ConfigArgs),
    /// H3Fusion: three aligned experts (helpful, harmless, honest) fused as a mixture of experts
    H3fusion(ConfigArgs),
    /// Align with Booster (harmful-perturbation attenuation) and measure HS / FA
    Booster(ConfigArgs),
    /// Align with Vaccine (perturbation-aware alignment) and measure HS / FA
    Vaccine(ConfigArgs),
    /// Attack the SFT-aligned model with `[attack]`'s p and n, fine-tuning with Lisa
    Lisa(ConfigArgs),
    /// Attack an aligned model: fine-tune on n samples, a share p harmful; measure HS / FA
    Attack(ConfigArgs),
    /// Every defence × p × n of `[grid]`: results table, charts and report
    Benchmark(ConfigArgs),
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The run's TOML configuration (see examples/*.toml)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override the configuration's `device`
    #[arg(long, value_name = "cpu|wgpu")]
    pub device: Option<fuselab_ml::Compute>,
    /// Print the final report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// The model a run starts from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BaseConfig {
    /// `tiny` (a small Llama trained here from scratch on the synthetic unaligned data, with a
    /// byte-level BPE trained on the same text), `smollm2`, a `.gguf` file or a Hugging Face
    /// directory.
    pub model: String,
    /// Vocabulary of the tiny model's tokenizer.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Pretraining of the tiny model (ignored for other models).
    pub pretrain: Option<TrainConfig>,
}

fn default_vocab() -> usize {
    512
}

impl BaseConfig {
    /// Checks the tiny model's vocabulary and pretraining (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::count(
            format_args!("{key}.vocab_size"),
            self.vocab_size,
            256..=65_536,
        )?;
        match &self.pretrain {
            Some(train) => train.check(&format!("{key}.pretrain")),
            None => Ok(()),
        }
    }
}

/// Where the three tasks' data come from: JSON, JSONL or Parquet files (see [`read_records`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Generate seeded synthetic stand-ins instead of reading files.
    #[serde(default)]
    pub synthetic: bool,
    /// Synthetic: training examples per task.
    #[serde(default = "default_train")]
    pub train_per_task: usize,
    /// Synthetic: test prompts per task.
    #[serde(default = "default_test")]
    pub test_per_task: usize,
    /// Alpaca JSON/JSONL/Parquet (`instruction`, `input`, `output`): the helpful training set.
    pub alpaca: Option<PathBuf>,
    /// AlpacaEval-style prompts with reference outputs: the helpful test set.
    pub alpaca_eval: Option<PathBuf>,
    /// BeaverTails `30k_train` JSON/JSONL/Parquet: the harmless training set (safe rows only).
    pub beavertails_train: Option<PathBuf>,
    /// BeaverTails `30k_test`: the harmless test prompts.
    pub beavertails_test: Option<PathBuf>,
    /// TruthfulQA (generation config, validation split): first half trains, second half tests.
    pub truthfulqa: Option<PathBuf>,
    /// Test prompts per task to generate for (0: all).
    #[serde(default)]
    pub eval_limit: usize,
}

impl DataConfig {
    /// Checks the synthetic sizes and the evaluation limit (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        config::rows(&format!("{key}.train_per_task"), self.train_per_task)?;
        config::rows(&format!("{key}.test_per_task"), self.test_per_task)?;
        config::rows(&format!("{key}.eval_limit"), self.eval_limit)
    }
}

fn default_train() -> usize {
    200
}
fn default_test() -> usize {
    30
}

/// The three tasks' training examples and test sets.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// Training examples of each task, in task order.
    pub train: [Vec<Example>; 3],
    /// Test sets.
    pub test: fuselab_ml::llm::h3fusion::EvalSets,
    /// Whether these are fuselab's synthetic stand-ins.
    pub synthetic: bool,
}

impl DataConfig {
    /// Loads or generates the data.
    ///
    /// # Errors
    /// A missing or malformed file, named with its row and field.
    pub fn load(&self, seed: u64) -> anyhow::Result<TaskData> {
        let limit = |n: usize| {
            if self.eval_limit == 0 {
                n
            } else {
                n.min(self.eval_limit)
            }
        };
        if self.synthetic {
            let (train_n, test_n) = (self.train_per_task, self.test_per_task);
            let alpaca = synthetic::alpaca(train_n + test_n, seed);
            let beavertails = synthetic::beavertails(2 * train_n, seed.wrapping_add(1));
            let beaver_test = synthetic::beavertails(2 * test_n, seed.wrapping_add(2));
            let truthful = synthetic::truthfulqa(2 * test_n.max(train_n / 2), seed.wrapping_add(3));
            let (truth_train, truth_test) = truthfulqa_split(&truthful);
            let helpful_train: Vec<Example> = alpaca[..train_n]
                .iter()
                .map(AlpacaRecord::example)
                .collect();
            let honest_train: Vec<Example> = truth_train
                .iter()
                .flat_map(TruthfulQaRecord::train_examples)
                .take(train_n)
                .collect();
            return Ok(TaskData {
                train: [helpful_train, safe_only(&beavertails), honest_train],
                test: fuselab_ml::llm::h3fusion::EvalSets {
                    helpful: alpaca[train_n..]
                        .iter()
                        .take(limit(test_n))
                        .cloned()
                        .collect(),
                    harmless: beaver_test
                        .into_iter()
                        .filter(|r| r.is_safe)
                        .take(limit(test_n))
                        .collect(),
                    honest: truth_test.into_iter().take(limit(test_n)).collect(),
                },
                synthetic: true,
            });
        }
        let need = |p: &Option<PathBuf>, field: &str| {
            p.clone().with_context(|| {
                format!("[data] {field} is missing: give the file, or set synthetic = true")
            })
        };
        let alpaca: Vec<AlpacaRecord> = read_records(&need(&self.alpaca, "alpaca")?)?;
        let helpful_test: Vec<AlpacaRecord> = match &self.alpaca_eval {
            Some(p) => read_records(p)?,
            None => Vec::new(),
        };
        let beaver_train: Vec<BeaverTailsRecord> =
            read_records(&need(&self.beavertails_train, "beavertails_train")?)?;
        let beaver_test: Vec<BeaverTailsRecord> = match &self.beavertails_test {
            Some(p) => read_records(p)?,
            None => Vec::new(),
        };
        let truthful: Vec<TruthfulQaRecord> = read_records(&need(&self.truthfulqa, "truthfulqa")?)?;
        let (truth_train, truth_test) = truthfulqa_split(&truthful);
        Ok(TaskData {
            train: [
                alpaca.iter().map(AlpacaRecord::example).collect(),
                safe_only(&beaver_train),
                truth_train
                    .iter()
                    .flat_map(TruthfulQaRecord::train_examples)
                    .collect(),
            ],
            test: fuselab_ml::llm::h3fusion::EvalSets {
                helpful: helpful_test.into_iter().take(limit(usize::MAX)).collect(),
                harmless: beaver_test.into_iter().take(limit(usize::MAX)).collect(),
                honest: truth_test.into_iter().take(limit(usize::MAX)).collect(),
            },
            synthetic: false,
        })
    }
}

/// One LoRA training stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// The adapters.
    pub lora: LoraConfig,
    /// The run.
    pub train: TrainConfig,
}

impl StageConfig {
    /// Checks the adapters and the run (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        self.lora.check(&format!("{key}.lora"))?;
        self.train.check(&format!("{key}.train"))
    }
}

/// Generation for evaluation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Most new tokens per answer.
    #[serde(default = "default_new_tokens")]
    pub max_new_tokens: usize,
    /// 0: greedy (the default, reproducible); the reference samples at 0.6.
    #[serde(default)]
    pub temperature: f32,
    /// Top-k when sampling (the reference's pipeline default is 50).
    #[serde(default)]
    pub top_k: usize,
    /// Top-p when sampling.
    #[serde(default = "default_top_p")]
    pub top_p: f32,
}

fn default_new_tokens() -> usize {
    32
}
fn default_top_p() -> f32 {
    1.0
}

impl GenerationConfig {
    /// Checks the answer length and the sampling settings (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::count(
            format_args!("{key}.max_new_tokens"),
            self.max_new_tokens,
            1..=range::MAX_TOKENS,
        )?;
        range::real(
            format_args!("{key}.temperature"),
            f64::from(self.temperature),
            0.0..=100.0,
        )?;
        range::count(format_args!("{key}.top_k"), self.top_k, 0..=1_000_000)?;
        range::positive(format_args!("{key}.top_p"), f64::from(self.top_p), 1.0)
    }
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: default_new_tokens(),
            temperature: 0.0,
            top_k: 0,
            top_p: default_top_p(),
        }
    }
}

/// Runs `fuselab align …`.
///
/// # Errors
/// A bad configuration or data file, or a failed run.
pub fn run(command: &AlignCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        AlignCommand::H3fusion(args) => h3fusion::command(args, data_dir),
        AlignCommand::Sft(args) => run::sft_command(args, data_dir),
        AlignCommand::Booster(args) => attack::command(attack::Action::Booster, args, data_dir),
        AlignCommand::Vaccine(args) => attack::command(attack::Action::Vaccine, args, data_dir),
        AlignCommand::Lisa(args) => attack::command(attack::Action::Lisa, args, data_dir),
        AlignCommand::Attack(args) => attack::command(attack::Action::Attack, args, data_dir),
        AlignCommand::Benchmark(args) => attack::command(attack::Action::Benchmark, args, data_dir),
    }
}

/// Resolves a path in a configuration relative to the configuration's folder.
#[must_use]
pub fn relative_to(config: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(path)
    }
}

/// Checks a run directory can be created.
///
/// # Errors
/// The directory cannot be created.
pub fn ensure_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("out = {}: exists and is not a folder", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

/// Records the settings a run or stage folder was made with, or checks that they are unchanged: a
/// finished run or stage is reused, so a changed setting must not silently reuse it.
///
/// # Errors
/// The folder was made with other settings (the message names the sections that differ).
pub fn check_settings(dir: &Path, settings: &serde_json::Value) -> anyhow::Result<()> {
    ensure_out(dir)?;
    let path = dir.join("settings.json");
    if path.is_file() {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let saved: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if &saved != settings {
            let changed: Vec<String> = settings
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| saved.get(k.as_str()) != Some(*v))
                .map(|(k, _)| format!("[{k}]"))
                .collect();
            bail!(
                "{} was made with other settings ({} changed); give the run a new `out` folder, \
                 or delete that folder to redo the stage",
                dir.display(),
                changed.join(", ")
            );
        }
        return Ok(());
    }
    run::write_atomic(&path, &serde_json::to_vec_pretty(settings)?)
}

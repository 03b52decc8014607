//! The attack's data: the alignment, harmful and benign sets, read from files or made
//! synthetic, and the judge (marker, trained or a Hugging Face classifier).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use fuselab_ml::llm::judge::{self, CATEGORIES, Labelled, Moderation, NeuralJudge};
use fuselab_ml::llm::model::LlamaConfig;
use fuselab_ml::llm::tokenizer::TokenizerCodec;
use fuselab_ml::tensors::write_safetensors;
use fuselab_shared::align::{
    BeaverTailsRecord, BenignTask, Example, RefusalRecord, hs_prompts, synthetic,
    synthetic_refusals,
};
use serde::{Deserialize, Serialize};

use super::{EvalConfig, JudgeConfig};
use crate::align::data::parquet_jsonl;
use crate::align::run::{Base, load_model_tensors, model_tensors, read_tensors, write_atomic};
use crate::align::{ensure_out, read_records};

/// Where the data come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttackDataConfig {
    /// Generate seeded synthetic stand-ins instead of reading files.
    #[serde(default)]
    pub synthetic: bool,
    /// The user's benign task: `sst2`, `agnews` or `gsm8k`.
    #[serde(default = "default_task")]
    pub task: BenignTask,
    /// Synthetic: alignment examples (harmful prompt → refusal; Booster's harmful set uses the
    /// same prompts with harmful answers).
    #[serde(default = "default_alignment_size")]
    pub alignment_size: usize,
    /// Synthetic: benign training examples available to the attack.
    #[serde(default = "default_benign_size")]
    pub benign_train_size: usize,
    /// Synthetic: benign test examples.
    #[serde(default = "default_test_size")]
    pub benign_test_size: usize,
    /// Synthetic: harmful rows available to the attack.
    #[serde(default = "default_benign_size")]
    pub harmful_pool_size: usize,
    /// Synthetic: harmful test rows.
    #[serde(default = "default_test_size")]
    pub harmful_test_size: usize,
    /// `RepNoise`'s `beavertails_with_refusals_train.json`: alignment (question → refusal) and
    /// Booster's harmful set (prompt → response), rows strictly between `window` bounds.
    pub refusals: Option<PathBuf>,
    /// Rows of `refusals` used, exclusive bounds (the reference: 5000, 10000).
    #[serde(default = "default_window")]
    pub window: (usize, usize),
    /// `BeaverTails` `30k_train`: the attack's harmful rows (unsafe ones, in file order).
    pub beavertails_train: Option<PathBuf>,
    /// `BeaverTails` `30k_test`: the harmful test prompts.
    pub beavertails_test: Option<PathBuf>,
    /// The benign task's training export (JSON/JSONL/Parquet).
    pub benign_train: Option<PathBuf>,
    /// The benign task's test export.
    pub benign_test: Option<PathBuf>,
}

fn default_task() -> BenignTask {
    BenignTask::Sst2
}
fn default_alignment_size() -> usize {
    200
}
fn default_benign_size() -> usize {
    1000
}
fn default_test_size() -> usize {
    100
}
fn default_window() -> (usize, usize) {
    (5000, 10000)
}

/// Everything a run trains and evaluates on.
#[derive(Debug, Clone)]
pub struct AttackData {
    /// Alignment examples: harmful prompts → refusals.
    pub alignment: Vec<Example>,
    /// Booster's harmful set: the same prompts → harmful answers.
    pub harmful: Vec<Example>,
    /// The attack's harmful rows, in order.
    pub attack_harmful: Vec<Example>,
    /// The benign task's training examples.
    pub benign_train: Vec<Example>,
    /// The benign task's test examples.
    pub benign_test: Vec<Example>,
    /// Harmful test prompts.
    pub harmful_test: Vec<String>,
    /// Whether these are fuselab's synthetic stand-ins.
    pub synthetic: bool,
}

impl AttackDataConfig {
    /// Loads or generates the data; relative paths are taken from `config`'s folder.
    ///
    /// # Errors
    /// A missing or malformed file, named with its row and field.
    pub fn load(&self, config: &Path, eval: &EvalConfig, seed: u64) -> anyhow::Result<AttackData> {
        if self.synthetic {
            let refusals = synthetic_refusals(self.alignment_size, seed);
            let pool = synthetic::beavertails(2 * self.harmful_pool_size, seed.wrapping_add(11));
            let test = synthetic::beavertails(2 * self.harmful_test_size, seed.wrapping_add(12));
            return Ok(AttackData {
                alignment: refusals
                    .iter()
                    .filter_map(RefusalRecord::alignment_example)
                    .collect(),
                harmful: refusals
                    .iter()
                    .map(RefusalRecord::harmful_example)
                    .collect(),
                attack_harmful: unsafe_examples(&pool),
                benign_train: self
                    .task
                    .synthetic_examples(self.benign_train_size, seed.wrapping_add(13)),
                benign_test: self
                    .task
                    .synthetic_examples(self.benign_test_size, seed.wrapping_add(14)),
                harmful_test: hs_prompts(&test, eval.hs_prompt_filter, eval.harmful_prompts)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                synthetic: true,
            });
        }
        let need = |p: &Option<PathBuf>, field: &str| {
            p.as_ref()
                .map(|p| crate::align::relative_to(config, p))
                .with_context(|| {
                    format!("[data] {field} is missing: give the file, or set synthetic = true")
                })
        };
        let refusals: Vec<RefusalRecord> = read_records(&need(&self.refusals, "refusals")?)?;
        let (lo, hi) = self.window;
        let window = fuselab_shared::align::open_window(&refusals, lo, hi);
        if window.is_empty() {
            bail!(
                "[data] window = [{lo}, {hi}] selects no row of the refusals file ({} rows)",
                refusals.len()
            );
        }
        let train: Vec<BeaverTailsRecord> =
            read_records(&need(&self.beavertails_train, "beavertails_train")?)?;
        let test: Vec<BeaverTailsRecord> =
            read_records(&need(&self.beavertails_test, "beavertails_test")?)?;
        let benign = |p: &Option<PathBuf>, field: &str| -> anyhow::Result<Vec<Example>> {
            let path = need(p, field)?;
            read_task_examples(self.task, &path)
        };
        Ok(AttackData {
            alignment: window
                .iter()
                .filter_map(RefusalRecord::alignment_example)
                .collect(),
            harmful: window.iter().map(RefusalRecord::harmful_example).collect(),
            attack_harmful: unsafe_examples(&train),
            benign_train: benign(&self.benign_train, "benign_train")?,
            benign_test: benign(&self.benign_test, "benign_test")?
                .into_iter()
                .take(eval.benign_prompts)
                .collect(),
            harmful_test: hs_prompts(&test, eval.hs_prompt_filter, eval.harmful_prompts)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            synthetic: false,
        })
    }
}

/// A benign task's export (JSON, JSONL or Parquet) as examples.
fn read_task_examples(task: BenignTask, path: &Path) -> anyhow::Result<Vec<Example>> {
    let name = path.display().to_string();
    let text = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        parquet_jsonl(path)?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?
    };
    Ok(task.parse_examples(&text, &name)?)
}

/// The small judge: a tiny Llama classifier with the base's tokenizer, trained on synthetic
/// `BeaverTails` rows (unsafe: their category; safe refusals: none) and the benign task's
/// examples (none); saved in `out/judge` and reused.
pub(super) fn trained_judge(
    base: &Base,
    config: &JudgeConfig,
    data: &AttackData,
    out: &Path,
    device: &burn::tensor::Device,
    seed: u64,
) -> anyhow::Result<NeuralJudge<TokenizerCodec>> {
    let llama = LlamaConfig::tiny(base.codec.0.get_vocab_size(true));
    let mut judge = NeuralJudge {
        model: Moderation::init(&llama, device, seed ^ 0x7D6E)?,
        codec: base.codec.clone(),
        eos: base.special.eos,
        pad: base.special.pad,
        max_len: config.max_len.min(llama.max_position_embeddings),
        name: "small classifier trained here on fuselab's synthetic harmful / benign data"
            .to_owned(),
    };
    let dir = out.join("judge");
    ensure_out(&dir)?;
    let path = dir.join("judge.safetensors");
    if path.is_file() {
        load_model_tensors(&mut judge.model.model, &read_tensors(&path)?, &path)?;
        return Ok(judge);
    }
    let mut examples: Vec<Labelled> = synthetic::beavertails(config.synthetic_rows, seed ^ 0x7D6F)
        .iter()
        .map(|row| Labelled {
            ids: judge.encode(&row.prompt, &row.response),
            labels: row.category_labels(),
        })
        .collect();
    examples.extend(
        data.benign_train
            .iter()
            .take(config.synthetic_rows / 2)
            .map(|e| Labelled {
                ids: judge.encode(&format!("{}\n{}", e.instruction, e.input), &e.output),
                labels: [0.0; CATEGORIES],
            }),
    );
    let losses = judge::train(&mut judge.model, &examples, judge.pad, &config.training);
    tracing::info!(
        first = losses.first().copied().unwrap_or(f64::NAN),
        last = losses.last().copied().unwrap_or(f64::NAN),
        examples = examples.len(),
        "trained the judge"
    );
    write_atomic(
        &path,
        &write_safetensors(&model_tensors(&judge.model.model)),
    )?;
    Ok(judge)
}

fn unsafe_examples(rows: &[BeaverTailsRecord]) -> Vec<Example> {
    rows.iter()
        .filter(|r| !r.is_safe)
        .map(BeaverTailsRecord::example)
        .collect()
}

//! The harmful fine-tuning attack and its defences: `fuselab align booster|vaccine` (alignment
//! with a defence), `lisa|attack` (one fine-tuning attack on an aligned model) and `benchmark`
//! (a grid of defences × poison ratio p × sample count n), each measured by the harmful score HS
//! (share of answers to harmful prompts the judge flags) and the fine-tune accuracy FA.
//!
//! Every stage trains in its own folder with checkpoints, and every finished evaluation is saved,
//! so a killed run resumes where it stopped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use fuselab_ml::llm::defence::{BoosterConfig, LisaConfig, VaccineConfig};
use fuselab_ml::llm::generate::{StopRule, generate};
use fuselab_ml::llm::judge::{self, CATEGORIES, JudgeTraining, Labelled, Moderation, NeuralJudge};
use fuselab_ml::llm::lora;
use fuselab_ml::llm::model::Llama;
use fuselab_ml::llm::model::LlamaConfig;
use fuselab_ml::llm::range::{self, RangeError};
use fuselab_ml::llm::tokenizer::TokenizerCodec;
use fuselab_ml::llm::train::{Codec as _, Method};
use fuselab_ml::tensors::write_safetensors;
use fuselab_shared::align::{
    BeaverTailsRecord, BenignTask, Example, HarmJudge, HsPromptFilter, MarkerJudge, PromptFormat,
    RefusalRecord, SYNTHETIC_LABEL, harmful_scores, hs_prompts, poisoned_mix, synthetic,
    synthetic_refusals,
};
use serde::{Deserialize, Serialize};

use super::config::rows;
use super::data::parquet_jsonl;
use super::run::{
    Adapters, Base, LoraRun, TinyCorpus, base_model, encode_all, generate_options,
    load_model_tensors, model_tensors, read_tensors, write_atomic,
};
use super::{BaseConfig, ConfigArgs, GenerationConfig, StageConfig, ensure_out, read_records};

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

/// `fuselab align booster|vaccine|lisa|attack|benchmark`'s configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttackConfig {
    /// Run directory (relative paths: to the configuration file).
    pub out: PathBuf,
    /// `cpu` or `wgpu`.
    #[serde(default)]
    pub device: Option<fuselab_ml::Compute>,
    /// Seed of data, initialisation, shuffling and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The base model.
    pub base: BaseConfig,
    /// The data.
    pub data: AttackDataConfig,
    /// The alignment stage (shared by SFT, Booster and Vaccine).
    pub alignment: StageConfig,
    /// Booster's λ, α and harmful batch.
    #[serde(default)]
    pub booster: BoosterConfig,
    /// Vaccine's ρ.
    #[serde(default)]
    pub vaccine: VaccineConfig,
    /// The user's fine-tuning (the attack).
    pub finetune: FinetuneConfig,
    /// Lisa's K1, K2 and ρ.
    #[serde(default)]
    pub lisa: LisaConfig,
    /// The single attack of `fuselab align attack` and `lisa`.
    #[serde(default)]
    pub attack: AttackCell,
    /// The grid of `fuselab align benchmark`.
    #[serde(default)]
    pub grid: GridConfig,
    /// What is measured.
    #[serde(default)]
    pub eval: EvalConfig,
    /// Which judge flags harmful answers.
    #[serde(default)]
    pub judge: JudgeConfig,
}

fn default_seed() -> u64 {
    42
}

/// The attack's fine-tuning.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Fresh adapters on the merged aligned model: Lisa's (the reference: r 8, alpha 4, dropout
    /// 0.1 on q, v), and every defence's when `continue_alignment_adapter` is false.
    pub lora: fuselab_ml::llm::lora::LoraConfig,
    /// The run (the references: lr 1e-5, constant, 20 epochs, batch 10 or 5).
    pub train: fuselab_ml::llm::train::TrainConfig,
    /// Booster's reference keeps training the alignment adapter during the attack (so the
    /// attack moves the weights Booster hardened); false attaches fresh adapters instead.
    #[serde(default = "yes")]
    pub continue_alignment_adapter: bool,
}

fn yes() -> bool {
    true
}

/// One attack: a defence, a poison ratio and a sample count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackCell {
    /// The defence.
    #[serde(default = "default_defence")]
    pub defence: Defence,
    /// Share of harmful samples in the user's data.
    #[serde(default = "default_p")]
    pub p: f64,
    /// Samples in the user's data.
    #[serde(default = "default_n")]
    pub n: usize,
}

fn default_defence() -> Defence {
    Defence::Sft
}
fn default_p() -> f64 {
    0.1
}
fn default_n() -> usize {
    1000
}

impl Default for AttackCell {
    fn default() -> Self {
        Self {
            defence: default_defence(),
            p: default_p(),
            n: default_n(),
        }
    }
}

/// The benchmark's grid.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Defences, each run at every (p, n).
    #[serde(default = "default_defences")]
    pub defences: Vec<Defence>,
    /// Poison ratios.
    #[serde(default = "default_ps")]
    pub p: Vec<f64>,
    /// Sample counts.
    #[serde(default = "default_ns")]
    pub n: Vec<usize>,
    /// Replicates: the whole pipeline (data, base, alignment, attacks) once per seed, in
    /// `out/seed-<s>` (the configuration's own seed in `out`); empty: the configuration's seed.
    /// The report gives each seed's rows and the mean and standard deviation over seeds.
    #[serde(default)]
    pub seeds: Vec<u64>,
}

fn default_defences() -> Vec<Defence> {
    vec![
        Defence::Sft,
        Defence::Booster,
        Defence::Vaccine,
        Defence::Lisa,
    ]
}
fn default_ps() -> Vec<f64> {
    vec![0.0, 0.05, 0.1, 0.2]
}
fn default_ns() -> Vec<usize> {
    vec![1000]
}

impl Default for GridConfig {
    fn default() -> Self {
        Self {
            defences: default_defences(),
            p: default_ps(),
            n: default_ns(),
            seeds: Vec::new(),
        }
    }
}

/// What the evaluation measures.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Harmful prompts answered for HS (Booster and Lisa: 1000).
    #[serde(default = "default_eval_prompts")]
    pub harmful_prompts: usize,
    /// Benign test examples answered for FA (1000).
    #[serde(default = "default_eval_prompts")]
    pub benign_prompts: usize,
    /// Which harmful test rows count: `unsafe` (Booster) or `all` (Lisa).
    #[serde(default)]
    pub hs_prompt_filter: HsPromptFilter,
    /// Greedy by default; the papers use 512 new tokens for HS and 200 for FA.
    #[serde(default)]
    pub generation: GenerationConfig,
}

fn default_eval_prompts() -> usize {
    1000
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            harmful_prompts: default_eval_prompts(),
            benign_prompts: default_eval_prompts(),
            hs_prompt_filter: HsPromptFilter::default(),
            generation: GenerationConfig::default(),
        }
    }
}

/// The moderation judge.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// `marker` (the default; flags the synthetic data's harm markers), `trained` (a small
    /// classifier trained here on the synthetic harmful / benign data) or `model` (a
    /// `beaver-dam`-style classifier from a Hugging Face directory).
    #[serde(default)]
    pub kind: JudgeKind,
    /// `kind = "model"`: the directory (config.json, tokenizer.json, *.safetensors with
    /// `score.weight` [14, d]).
    pub model: Option<PathBuf>,
    /// Longest input in tokens (`beaver-dam`: 256).
    #[serde(default = "default_judge_len")]
    pub max_len: usize,
    /// `kind = "trained"`: synthetic `BeaverTails` rows to train on.
    #[serde(default = "default_judge_rows")]
    pub synthetic_rows: usize,
    /// `kind = "trained"`: the training run.
    #[serde(default)]
    pub training: JudgeTraining,
}

fn default_judge_len() -> usize {
    256
}
fn default_judge_rows() -> usize {
    600
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            kind: JudgeKind::default(),
            model: None,
            max_len: default_judge_len(),
            synthetic_rows: default_judge_rows(),
            training: JudgeTraining::default(),
        }
    }
}

/// Which judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    /// [`MarkerJudge`].
    #[default]
    Marker,
    /// A small classifier trained here on the synthetic data.
    Trained,
    /// A moderation classifier from a Hugging Face directory.
    Model,
}

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
                .map(|p| super::relative_to(config, p))
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
fn trained_judge(
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

/// A run in progress: the configuration, the base model, the data and the judge.
pub struct Session {
    config: AttackConfig,
    out: PathBuf,
    base: Base,
    data: AttackData,
    format: PromptFormat,
    judge: Box<dyn HarmJudge>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("out", &self.out)
            .field("judge", &self.judge.name())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Prepares `config`'s data and base model in `out` (training the tiny one on first use);
    /// `args` names the configuration file (relative paths) and the device flag.
    ///
    /// # Errors
    /// A bad configuration or data, or a failed base model.
    pub fn open(
        config: AttackConfig,
        out: PathBuf,
        args: &ConfigArgs,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        ensure_out(&out)?;
        let device = super::run::device(config.device, args.device)?;
        let data = config.data.load(&args.config, &config.eval, config.seed)?;
        let format = PromptFormat::booster();
        let mut vocabulary = data.alignment.clone();
        vocabulary.extend(data.harmful.iter().cloned());
        vocabulary.extend(data.benign_train.iter().cloned());
        if config.base.model == "tiny" {
            check_settings(
                &out.join("base"),
                &serde_json::json!({ "seed": config.seed, "base": config.base, "data": config.data }),
            )?;
        }
        let base = base_model(
            &config.base,
            &format,
            TinyCorpus {
                vocabulary: &vocabulary,
                skills: &data.benign_train,
            },
            &out,
            data_dir,
            &device,
            config.seed,
        )?;
        let judge: Box<dyn HarmJudge> = match config.judge.kind {
            JudgeKind::Marker => Box::new(MarkerJudge),
            JudgeKind::Trained => Box::new(trained_judge(
                &base,
                &config.judge,
                &data,
                &out,
                &device,
                config.seed,
            )?),
            JudgeKind::Model => {
                let dir = config.judge.model.as_ref().with_context(|| {
                    format!(
                        "{}: [judge] kind = \"model\" needs model = \"DIR\" (a Hugging Face \
                         sequence classifier such as beaver-dam-7b)",
                        args.config.display()
                    )
                })?;
                let dir = super::relative_to(&args.config, dir);
                let (model, hf) = crate::llm::load_moderation_dir(&dir, &device)?;
                let eos = hf.token("eos_token_id");
                Box::new(NeuralJudge {
                    model,
                    pad: hf.token("pad_token_id").or(eos).unwrap_or(0),
                    eos,
                    codec: TokenizerCodec(hf.tokenizer),
                    max_len: config.judge.max_len,
                    name: format!("moderation classifier from {}", dir.display()),
                })
            }
        };
        Ok(Self {
            config,
            out,
            base,
            data,
            format,
            judge,
        })
    }

    fn stage<'a>(&'a self, dir: &'a Path, name: &'a str, stage: &'a StageConfig) -> LoraRun<'a> {
        LoraRun {
            dir,
            stage: name,
            base: &self.base,
            stage_config: stage,
            format: &self.format,
            seed: self.config.seed,
        }
    }

    /// What an alignment stage depends on.
    fn alignment_settings(&self, alignment: Alignment) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "seed": c.seed,
            "base": c.base,
            "data": c.data,
            "alignment": c.alignment,
            "booster": (alignment == Alignment::Booster).then_some(&c.booster),
            "vaccine": (alignment == Alignment::Vaccine).then_some(c.vaccine),
        })
    }

    /// What an attack depends on.
    fn attack_settings(&self, cell: AttackCell) -> serde_json::Value {
        let c = &self.config;
        let mut settings = self.alignment_settings(cell.defence.alignment());
        settings["finetune"] = serde_json::json!(c.finetune);
        settings["lisa"] = serde_json::json!((cell.defence == Defence::Lisa).then_some(c.lisa));
        settings["attack"] = serde_json::json!(cell);
        settings
    }

    /// What a measurement depends on besides the model.
    fn measure_settings(&self) -> serde_json::Value {
        serde_json::json!({ "eval": self.config.eval, "judge": self.config.judge })
    }

    /// Reuses `dir`'s saved measurement when it was made with the current settings, otherwise
    /// measures `model()` and saves it.
    fn measured(
        &self,
        dir: &Path,
        model: impl FnOnce() -> anyhow::Result<Llama>,
    ) -> anyhow::Result<Measured> {
        let path = dir.join("result.json");
        let settings = self.measure_settings();
        if same_measurement(dir, &settings)
            && let Some(measured) = read_saved(&path)?
        {
            return Ok(measured);
        }
        let measured = self.measure(&model()?);
        write_atomic(&path, &serde_json::to_vec_pretty(&measured)?)?;
        write_atomic(
            &dir.join("measure.json"),
            &serde_json::to_vec_pretty(&settings)?,
        )?;
        Ok(measured)
    }

    /// The model aligned with `alignment` (trained on first use, then loaded).
    ///
    /// # Errors
    /// A failed or unresumable stage.
    pub fn aligned(&self, alignment: Alignment) -> anyhow::Result<Llama> {
        let dir = self.out.join("align").join(alignment.name());
        let method = match alignment {
            Alignment::Sft => Method::Plain,
            Alignment::Booster => Method::Booster {
                config: self.config.booster.clone(),
                harmful: encode_all(
                    &self.base.codec,
                    &self.format,
                    self.base.special,
                    &self.data.harmful,
                    self.config.alignment.train.max_len,
                ),
            },
            Alignment::Vaccine => Method::Vaccine(self.config.vaccine),
        };
        check_settings(&dir, &self.alignment_settings(alignment))?;
        let name = format!("align-{}", alignment.name());
        let (model, _) = self.stage(&dir, &name, &self.config.alignment).train(
            self.base.model.clone(),
            &self.data.alignment,
            method,
            Adapters::Fresh,
        )?;
        Ok(model)
    }

    /// The aligned model's HS and FA before any attack (saved, then reused).
    ///
    /// # Errors
    /// A failed stage or an unwritable result.
    pub fn measure_aligned(&self, defence: Defence) -> anyhow::Result<CellResult> {
        let alignment = defence.alignment();
        let dir = self.out.join("align").join(alignment.name());
        check_settings(&dir, &self.alignment_settings(alignment))?;
        let measured = self.measured(&dir, || self.aligned(alignment))?;
        Ok(CellResult {
            seed: self.config.seed,
            defence,
            p: None,
            n: None,
            measured,
        })
    }

    /// One attack: the aligned model fine-tuned on `n` samples of which a share `p` is harmful,
    /// with the defence's fine-tuning method, then measured.
    ///
    /// # Errors
    /// Too little data for the mix, or a failed stage.
    pub fn attack(&self, cell: AttackCell) -> anyhow::Result<CellResult> {
        let dir = self.out.join("attack").join(format!(
            "{}-p{}-n{}",
            cell.defence.name(),
            cell.p,
            cell.n
        ));
        check_settings(&dir, &self.attack_settings(cell))?;
        let measured = self.measured(&dir, || self.attacked(cell, &dir))?;
        Ok(result(self.config.seed, cell, measured))
    }

    /// The aligned model after the attack's fine-tuning (trained on first use, then loaded).
    fn attacked(&self, cell: AttackCell, dir: &Path) -> anyhow::Result<Llama> {
        let mix = poisoned_mix(
            &self.data.attack_harmful,
            &self.data.benign_train,
            cell.n,
            cell.p,
            self.config.seed,
        )
        .with_context(|| format!("attack p = {}, n = {}", cell.p, cell.n))?;
        let mut start = self.aligned(cell.defence.alignment())?;
        let continued =
            cell.defence != Defence::Lisa && self.config.finetune.continue_alignment_adapter;
        let stage = if continued {
            StageConfig {
                lora: self.config.alignment.lora.clone(),
                train: self.config.finetune.train.clone(),
            }
        } else {
            lora::merge_and_unload(&mut start);
            StageConfig {
                lora: self.config.finetune.lora.clone(),
                train: self.config.finetune.train.clone(),
            }
        };
        let adapters = if continued {
            Adapters::Continue
        } else {
            Adapters::Fresh
        };
        let method = match cell.defence {
            Defence::Lisa => Method::Lisa {
                config: self.config.lisa,
                guide: encode_all(
                    &self.base.codec,
                    &self.format,
                    self.base.special,
                    &self.data.alignment,
                    self.config.finetune.train.max_len,
                ),
            },
            Defence::Sft | Defence::Booster | Defence::Vaccine => Method::Plain,
        };
        let name = format!("attack-{}-p{}-n{}", cell.defence.name(), cell.p, cell.n);
        let (model, _) = self
            .stage(&dir.join("finetune"), &name, &stage)
            .train(start, &mix, method, adapters)?;
        Ok(model)
    }

    /// HS on the harmful test prompts and FA on the benign test set.
    #[must_use]
    pub fn measure(&self, model: &Llama) -> Measured {
        let started = Instant::now();
        let options = generate_options(
            &self.config.eval.generation,
            &self.base,
            StopRule::Suffix,
            self.config.seed,
        );
        let answer = |instruction: &str, input: &str| {
            let mut ids: Vec<u32> = self.base.special.bos.into_iter().collect();
            ids.extend(
                self.base
                    .codec
                    .encode(&self.format.prompt(instruction, input)),
            );
            let generated = generate(model, &ids, &options, |_| {});
            self.format
                .strip_response(&self.base.codec.decode(&generated.tokens))
        };
        let harmful: Vec<(String, String)> = self
            .data
            .harmful_test
            .iter()
            .map(|prompt| (prompt.clone(), answer(prompt, "")))
            .collect();
        let benign: Vec<(&Example, String)> = self
            .data
            .benign_test
            .iter()
            .take(self.config.eval.benign_prompts)
            .map(|e| (e, answer(&e.instruction, &e.input)))
            .collect();
        let scores = harmful_scores(
            self.judge.as_ref(),
            harmful.iter().map(|(p, a)| (p.as_str(), a.as_str())),
        );
        let fa = self.config.data.task.accuracy(
            benign
                .iter()
                .map(|(e, answer)| (e.output.as_str(), answer.as_str())),
        );
        let mut samples: Vec<(String, String)> = harmful.iter().take(3).cloned().collect();
        samples.extend(benign.iter().take(3).map(|(e, a)| {
            (
                format!(
                    "{} | {}",
                    e.instruction.lines().next().unwrap_or(""),
                    e.input
                ),
                a.clone(),
            )
        }));
        Measured {
            hs: scores.hs,
            hs_plus: scores.hs_plus,
            fa,
            harmful_prompts: harmful.len(),
            benign_prompts: benign.len(),
            samples,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Records the settings a stage folder was made with, or checks that they are unchanged: a
/// finished stage is reused, so a changed setting must not silently reuse it.
///
/// # Errors
/// The folder was made with other settings (the message names the sections that differ).
fn check_settings(dir: &Path, settings: &serde_json::Value) -> anyhow::Result<()> {
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
    write_atomic(&path, &serde_json::to_vec_pretty(settings)?)
}

/// Whether a saved measurement was made with these evaluation settings.
fn same_measurement(dir: &Path, settings: &serde_json::Value) -> bool {
    std::fs::read(dir.join("measure.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|saved| &saved == settings)
}

fn result(seed: u64, cell: AttackCell, measured: Measured) -> CellResult {
    CellResult {
        seed,
        defence: cell.defence,
        p: Some(cell.p),
        n: Some(cell.n),
        measured,
    }
}

fn read_saved(path: &Path) -> anyhow::Result<Option<Measured>> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let measured = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a fuselab result (delete it to measure again)",
            path.display()
        )
    })?;
    Ok(Some(measured))
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

/// Which `fuselab align` subcommand runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Align with Booster and measure.
    Booster,
    /// Align with Vaccine and measure.
    Vaccine,
    /// One attack on the SFT-aligned model fine-tuned with Lisa.
    Lisa,
    /// One attack with `[attack]`'s defence.
    Attack,
    /// The grid.
    Benchmark,
}

/// Runs one of the commands; returns the rows it measured.
///
/// # Errors
/// A bad configuration or data, or a failed stage.
pub fn run(action: Action, args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<BenchmarkReport> {
    let started = Instant::now();
    let config: AttackConfig = super::read_config(&args.config)?;
    let out = super::relative_to(&args.config, &config.out);
    let seeds = if action == Action::Benchmark && !config.grid.seeds.is_empty() {
        config.grid.seeds.clone()
    } else {
        vec![config.seed]
    };
    let mut results = Vec::new();
    let mut about = None;
    for seed in seeds {
        let (replicate, dir) = if seed == config.seed {
            (config.clone(), out.clone())
        } else {
            (
                AttackConfig {
                    seed,
                    ..config.clone()
                },
                out.join(format!("seed-{seed}")),
            )
        };
        let session = Session::open(replicate, dir, args, data_dir)?;
        session.run(action, &mut results)?;
        about.get_or_insert_with(|| {
            (
                session.judge.name().to_owned(),
                session.base.description.clone(),
                session.data.synthetic,
            )
        });
    }
    let (judge, base, synthetic) = about.unwrap_or_default();
    let report = BenchmarkReport {
        summary: summarise(&results),
        results,
        task: config.data.task,
        judge,
        base,
        synthetic,
        seconds: started.elapsed().as_secs_f64(),
    };
    if action == Action::Benchmark {
        write_benchmark(&out, &report)?;
    }
    Ok(report)
}

impl super::Checked for AttackConfig {
    /// What the types cannot check: a non-empty grid, ratios in [0, 1], counts below
    /// [`super::config::MAX_COUNT`], every stage's and the evaluation's ranges, a known device.
    fn check(&self) -> Result<(), String> {
        let grid = &self.grid;
        if grid.defences.is_empty() || grid.p.is_empty() || grid.n.is_empty() {
            return Err("[grid] needs at least one defence, one p and one n".to_owned());
        }
        if grid.seeds.len() > MAX_SEEDS {
            return Err(format!(
                "grid.seeds has {} seeds; at most {MAX_SEEDS} replicates per run",
                grid.seeds.len()
            ));
        }
        self.ranges().map_err(|e| e.to_string())
    }
}

/// Most replicates of one benchmark.
const MAX_SEEDS: usize = 100;

impl AttackConfig {
    fn ranges(&self) -> Result<(), RangeError> {
        for (i, &p) in self.grid.p.iter().enumerate() {
            range::real(format_args!("grid.p[{i}]"), p, 0.0..=1.0)?;
        }
        for (i, &n) in self.grid.n.iter().enumerate() {
            rows(&format!("grid.n[{i}]"), n)?;
        }
        range::real("attack.p", self.attack.p, 0.0..=1.0)?;
        rows("attack.n", self.attack.n)?;
        let data = &self.data;
        for (key, value) in [
            ("data.alignment_size", data.alignment_size),
            ("data.benign_train_size", data.benign_train_size),
            ("data.benign_test_size", data.benign_test_size),
            ("data.harmful_pool_size", data.harmful_pool_size),
            ("data.harmful_test_size", data.harmful_test_size),
            ("data.window[0]", data.window.0),
            ("data.window[1]", data.window.1),
            ("eval.harmful_prompts", self.eval.harmful_prompts),
            ("eval.benign_prompts", self.eval.benign_prompts),
            ("judge.synthetic_rows", self.judge.synthetic_rows),
        ] {
            rows(key, value)?;
        }
        range::count("judge.max_len", self.judge.max_len, 1..=range::MAX_TOKENS)?;
        self.judge.training.check("judge.training")?;
        self.base.check("base")?;
        self.alignment.check("alignment")?;
        self.finetune.lora.check("finetune.lora")?;
        self.finetune.train.check("finetune.train")?;
        self.booster.check("booster")?;
        self.vaccine.check("vaccine")?;
        self.lisa.check("lisa")?;
        self.eval.generation.check("eval.generation")
    }
}

impl Session {
    /// Runs `action` on this replicate, appending its rows.
    fn run(&self, action: Action, results: &mut Vec<CellResult>) -> anyhow::Result<()> {
        let config = &self.config;
        match action {
            Action::Booster => results.push(self.measure_aligned(Defence::Booster)?),
            Action::Vaccine => results.push(self.measure_aligned(Defence::Vaccine)?),
            Action::Lisa => results.push(self.attack(AttackCell {
                defence: Defence::Lisa,
                ..config.attack
            })?),
            Action::Attack => results.push(self.attack(config.attack)?),
            Action::Benchmark => {
                let mut seen = Vec::new();
                for &defence in &config.grid.defences {
                    if !seen.contains(&defence.alignment()) {
                        seen.push(defence.alignment());
                        results.push(self.measure_aligned(defence)?);
                    }
                }
                for &n in &config.grid.n {
                    for &p in &config.grid.p {
                        for &defence in &config.grid.defences {
                            results.push(self.attack(AttackCell { defence, p, n })?);
                        }
                    }
                }
            }
        }
        Ok(())
    }
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

/// Mean and (sample) standard deviation of every (defence, p, n) over its seeds, in first-seen
/// order.
#[must_use]
pub fn summarise(results: &[CellResult]) -> Vec<SummaryRow> {
    let mut keys: Vec<(Defence, Option<f64>, Option<usize>)> = Vec::new();
    for r in results {
        let key = (r.defence, r.p, r.n);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let stats = |values: &[f64]| {
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
        } else {
            0.0
        };
        (mean, var.sqrt())
    };
    keys.into_iter()
        .map(|(defence, p, n)| {
            let rows: Vec<&Measured> = results
                .iter()
                .filter(|r| r.defence == defence && r.p == p && r.n == n)
                .map(|r| &r.measured)
                .collect();
            let hs: Vec<f64> = rows.iter().map(|m| m.hs).collect();
            let plus: Vec<f64> = rows.iter().map(|m| m.hs_plus).collect();
            let fa: Vec<f64> = rows.iter().map(|m| m.fa).collect();
            let (hs, hs_std) = stats(&hs);
            let (fa, fa_std) = stats(&fa);
            SummaryRow {
                defence,
                p,
                n,
                seeds: rows.len(),
                hs,
                hs_std,
                hs_plus: stats(&plus).0,
                fa,
                fa_std,
            }
        })
        .collect()
}

/// Writes `results.json`, `results.csv`, `results.md`, `hs.svg`, `fa.svg` and `report.html`.
///
/// # Errors
/// A file that cannot be written.
pub fn write_benchmark(out: &Path, report: &BenchmarkReport) -> anyhow::Result<()> {
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    let header = [
        "seed",
        "defence",
        "p",
        "n",
        "hs",
        "hs_plus",
        "fa",
        "harmful_prompts",
        "benign_prompts",
    ]
    .map(str::to_owned);
    let rows = report.results.iter().map(|r| {
        [
            r.seed.to_string(),
            r.defence.name().to_owned(),
            r.p.map_or(String::new(), |p| p.to_string()),
            r.n.map_or(String::new(), |n| n.to_string()),
            format!("{:.2}", r.measured.hs),
            format!("{:.2}", r.measured.hs_plus),
            format!("{:.2}", r.measured.fa),
            r.measured.harmful_prompts.to_string(),
            r.measured.benign_prompts.to_string(),
        ]
    });
    let csv = fuselab_shared::table::write(std::iter::once(header).chain(rows));
    write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    write_atomic(&out.join("results.md"), markdown(report).as_bytes())?;
    let hs = super::report::line_chart_svg(
        "Harmful score (HS, %) after the attack",
        &series(report, |m| m.hs),
    );
    let fa = super::report::line_chart_svg(
        "Fine-tune accuracy (FA, %) after the attack",
        &series(report, |m| m.fa),
    );
    write_atomic(&out.join("hs.svg"), hs.as_bytes())?;
    write_atomic(&out.join("fa.svg"), fa.as_bytes())?;
    write_atomic(
        &out.join("report.html"),
        super::report::attack_html(report, &markdown(report), &hs, &fa).as_bytes(),
    )?;
    Ok(())
}

/// The results as a Markdown table.
#[must_use]
pub fn markdown(report: &BenchmarkReport) -> String {
    let mut text = String::new();
    if report.synthetic {
        let _ = writeln!(text, "> {SYNTHETIC_LABEL}\n");
    }
    let _ = writeln!(
        text,
        "Benign task: {}; judge: {}; base: {}\n",
        report.task, report.judge, report.base
    );
    let seeds = report.summary.iter().map(|r| r.seeds).max().unwrap_or(1);
    if seeds > 1 {
        let _ = writeln!(text, "Mean ± standard deviation over {seeds} seeds:\n");
        text.push_str("| defence | p | n | HS % | HS+ % | FA % |\n|---|---|---|---|---|---|\n");
        for r in &report.summary {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {:.1} ± {:.1} | {:.1} | {:.1} ± {:.1} |",
                r.defence.name(),
                r.p.map_or("aligned".to_owned(), |p| p.to_string()),
                r.n.map_or("–".to_owned(), |n| n.to_string()),
                r.hs,
                r.hs_std,
                r.hs_plus,
                r.fa,
                r.fa_std
            );
        }
        text.push_str("\nEach seed:\n\n");
    }
    text.push_str(
        "| seed | defence | p | n | HS % | HS+ % | FA % |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &report.results {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            r.seed,
            r.defence.name(),
            r.p.map_or("aligned".to_owned(), |p| p.to_string()),
            r.n.map_or("–".to_owned(), |n| n.to_string()),
            r.measured.hs,
            r.measured.hs_plus,
            r.measured.fa
        );
    }
    text
}

/// One line per (defence, n): the metric's mean over seeds against p.
fn series(
    report: &BenchmarkReport,
    metric: impl Fn(&SummaryRow) -> f64,
) -> Vec<super::report::Series> {
    let mut out: Vec<super::report::Series> = Vec::new();
    for r in &report.summary {
        let (Some(p), Some(n)) = (r.p, r.n) else {
            continue;
        };
        let label = format!("{} (n {n})", r.defence.name());
        let point = (p, metric(r));
        match out.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(point),
            None => out.push(super::report::Series {
                label,
                points: vec![point],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// `fuselab align booster|vaccine|lisa|attack|benchmark`.
///
/// # Errors
/// Those of [`run`].
pub fn command(action: Action, args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<()> {
    let report = run(action, args, data_dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", markdown(&report));
    }
    Ok(())
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::align::Checked as _;

    #[test]
    fn a_pool_size_of_ten_trillion_is_refused_naming_the_key() {
        let example = include_str!("../../../examples/attack-small.toml");
        let config: AttackConfig = toml::from_str(example).unwrap();
        assert_eq!(config.check(), Ok(()));
        let hostile = example.replace(
            "harmful_pool_size = 40",
            "harmful_pool_size = 10000000000000",
        );
        let config: AttackConfig = toml::from_str(&hostile).unwrap();
        let error = config.check().unwrap_err();
        assert_eq!(
            error,
            "data.harmful_pool_size = 10000000000000: expected a whole number from 0 to 10000000"
        );
    }
}

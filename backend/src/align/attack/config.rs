//! `fuselab align booster|vaccine|lisa|attack|benchmark`'s configuration: the schema with its
//! defaults, then every value's range.

use std::path::PathBuf;

use fuselab_ml::llm::defence::{BoosterConfig, LisaConfig, VaccineConfig};
use fuselab_ml::llm::judge::JudgeTraining;
use fuselab_ml::llm::range::{self, RangeError};
use fuselab_shared::align::HsPromptFilter;
use serde::{Deserialize, Serialize};

use super::AttackDataConfig;
use crate::align::config::rows;
use crate::align::results::Defence;
use crate::align::{BaseConfig, GenerationConfig, StageConfig};

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

impl crate::align::Checked for AttackConfig {
    /// What the types cannot check: a non-empty grid, ratios in [0, 1], counts below
    /// [`crate::align::config::MAX_COUNT`], every stage's and the evaluation's ranges, a known device.
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

#[cfg(test)]
mod limit_tests {
    use super::AttackConfig;
    use crate::align::Checked as _;

    #[test]
    fn a_pool_size_of_ten_trillion_is_refused_naming_the_key() {
        let example = include_str!("../../../../examples/attack-small.toml");
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

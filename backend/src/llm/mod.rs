//! `fuselab llm generate`, `llm questions`, `llm answers` and `llm topla`, and loading language models: SmolLM2 from its GGUF file (fetched by
//! `fuselab models fetch`) or a Hugging Face directory (`config.json`, `tokenizer.json`,
//! `*.safetensors` read with burn-store).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use burn_store::{ModuleStore as _, SafetensorsStore};
use clap::{Args, Subcommand};
use fuselab_ml::llm::generate::{Finish, GenerateOptions, Sampling, StopRule, generate};
use fuselab_ml::llm::gguf::Gguf;
use fuselab_ml::llm::judge::{CATEGORIES, Moderation};
use fuselab_ml::llm::load::{from_gguf, from_hf_tensors};
use fuselab_ml::llm::model::{Llama, LlamaConfig, RopeStyle};
use fuselab_ml::llm::tokenizer::{self, TokenizerCodec};
use fuselab_ml::llm::train::Codec as _;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::models;

mod answers;
pub mod summary;
mod topla;

pub use answers::{AnswersArgs, QuestionsArgs};
pub use topla::ToplaCommand;

/// Where SmolLM2's GGUF file is cached under the data directory's models folder.
pub const SMOLLM2: &str = "llm/SmolLM2-135M-Instruct.Q4_1.gguf";

/// `fuselab llm …`.
#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// Continue a prompt with a language model
    Generate(GenerateArgs),
    /// Write a generated question set with known answers (GSM8K or MMLU format)
    Questions(QuestionsArgs),
    /// Sample K answers per question from a model, as JSON Lines (resumable)
    Answers(AnswersArgs),
    /// LLM-TOPLA: answer sets as a pool, and LLM-TOPLA-Weighted
    #[command(subcommand)]
    Topla(ToplaCommand),
}

/// `fuselab llm generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// `smollm2` (SmolLM2-135M-Instruct, fetched by `fuselab models fetch`) or a Hugging Face
    /// model directory (config.json, tokenizer.json, *.safetensors)
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// The text to continue
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt in the model's chat template (ChatML for SmolLM2) as a user turn
    #[arg(long)]
    pub chat: bool,
    /// Most tokens to generate
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// 0 picks the most likely token (greedy)
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0: all)
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sample within the smallest set of tokens holding this probability
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Sampling seed
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this text (may repeat)
    #[arg(long = "stop", value_name = "TEXT")]
    pub stops: Vec<String>,
    /// Where burn runs the model
    #[arg(long, value_name = "cpu|wgpu", default_value_t = fuselab_ml::Compute::Cpu)]
    pub device: fuselab_ml::Compute,
    /// Print one JSON object instead of streaming text
    #[arg(long)]
    pub json: bool,
}

/// A loaded language model with its tokenizer.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model.
    pub model: Llama,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// End-of-sequence ids.
    pub eos: Vec<u32>,
    /// Beginning-of-sequence id the tokenizer expects before a text, if any.
    pub bos: Option<u32>,
    /// Where it came from.
    pub source: String,
}

/// Loads `smollm2` or a Hugging Face directory onto `device`.
///
/// # Errors
/// A missing file (with the command that fetches it), unreadable or malformed weights.
pub fn load(spec: &str, data_dir: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    if spec == "smollm2" {
        let path = models::require(data_dir, SMOLLM2)?;
        return load_gguf(&path, device);
    }
    let path = PathBuf::from(spec);
    if path.is_dir() {
        return load_hf_dir(&path, device);
    }
    if path.extension().is_some_and(|e| e == "gguf") && path.is_file() {
        return load_gguf(&path, device);
    }
    bail!(
        "--model `{spec}`: expected `smollm2`, a .gguf file or a Hugging Face model directory \
         (config.json, tokenizer.json, *.safetensors)"
    )
}

fn load_gguf(path: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let gguf = Gguf::parse(&bytes, &path.display().to_string())?;
    let model = from_gguf(&gguf, device)?;
    let tokenizer = tokenizer::from_gguf(&gguf)?;
    let id = |key: &str| gguf.uint(key).ok().map(|v| v as u32);
    Ok(LoadedModel {
        model,
        tokenizer,
        eos: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
        bos: None,
        source: path.display().to_string(),
    })
}

/// A Hugging Face directory's contents, read: `config.json`, the tokenizer and every tensor
/// of every safetensors shard (converted to `f32`).
#[derive(Debug)]
pub struct HfDir {
    /// The Llama configuration (rotary embeddings in Hugging Face's half-split layout).
    pub config: LlamaConfig,
    /// `config.json` as JSON, for the ids it names.
    pub raw: serde_json::Value,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Every tensor by name: shape and values.
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl HfDir {
    /// An id `config.json` names (`eos_token_id`, `bos_token_id`, `pad_token_id`).
    #[must_use]
    pub fn token(&self, key: &str) -> Option<u32> {
        self.raw
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }
}

/// Reads a Hugging Face directory.
///
/// # Errors
/// A missing or malformed `config.json`, `tokenizer.json` or shard, each named.
pub fn read_hf_dir(dir: &Path) -> anyhow::Result<HfDir> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", config_path.display()))?;
    let mut config: LlamaConfig = serde_json::from_value(raw.clone())
        .with_context(|| format!("{}: not a Llama configuration", config_path.display()))?;
    config.rope_style = RopeStyle::HalfSplit;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e} (convert a SentencePiece tokenizer.model to tokenizer.json once \
             with `transformers`)",
            tokenizer_path.display()
        )
    })?;
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        bail!("{}: no *.safetensors file", dir.display());
    }
    let mut tensors: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for shard in &shards {
        let mut store = SafetensorsStore::from_file(shard);
        let all = store
            .get_all_tensors()
            .map_err(|e| anyhow::anyhow!("{}: {e}", shard.display()))?;
        for (name, tensor) in all {
            let data = burn_store::bridge::to_data(tensor)
                .map_err(|e| anyhow::anyhow!("{}: tensor `{name}`: {e:?}", shard.display()))?;
            let shape = data.shape().to_vec();
            let values = data
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{}: tensor `{name}`: {e:?}", shard.display()))?;
            tensors.insert(name.clone(), (shape, values));
        }
    }
    Ok(HfDir {
        config,
        raw,
        tokenizer,
        tensors,
    })
}

/// A Hugging Face directory: the config, the tokenizer and every safetensors shard.
fn load_hf_dir(dir: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    let mut hf = read_hf_dir(dir)?;
    let model = from_hf_tensors(&hf.config, &mut hf.tensors, device)
        .with_context(|| format!("{}: weights do not fit config.json", dir.display()))?;
    Ok(LoadedModel {
        model,
        eos: hf.token("eos_token_id").into_iter().collect(),
        bos: hf.token("bos_token_id"),
        tokenizer: hf.tokenizer,
        source: dir.display().to_string(),
    })
}

/// A `LlamaForSequenceClassification` moderation model (such as `beaver-dam-7b`) from a Hugging
/// Face directory: the backbone (`model.*`) and `score.weight` `[14, d]`, with its tokenizer.
///
/// # Errors
/// Those of [`read_hf_dir`], a missing or misshapen `score.weight`, or weights that do not fit
/// `config.json`.
pub fn load_moderation_dir(dir: &Path, device: &Device) -> anyhow::Result<(Moderation, HfDir)> {
    let mut hf = read_hf_dir(dir)?;
    let (shape, values) = hf.tensors.remove("score.weight").with_context(|| {
        format!(
            "{}: no `score.weight`: not a sequence classifier (LlamaForSequenceClassification)",
            dir.display()
        )
    })?;
    let d = hf.config.hidden_size;
    if shape != [CATEGORIES, d] {
        bail!(
            "{}: `score.weight` has shape {shape:?}, expected [{CATEGORIES}, {d}] (14 BeaverTails categories)",
            dir.display()
        );
    }
    let score = burn::tensor::Tensor::<2>::from_data(
        burn::tensor::TensorData::new(values, [CATEGORIES, d]),
        device,
    )
    .transpose();
    // The classifier has no language-model head.
    let mut config = hf.config.clone();
    config.tie_word_embeddings = true;
    let backbone = from_hf_tensors(&config, &mut hf.tensors, device)
        .with_context(|| format!("{}: weights do not fit config.json", dir.display()))?;
    Ok((Moderation::new(backbone, score)?, hf))
}

/// Runs `fuselab llm …`.
///
/// # Errors
/// A model that cannot be loaded.
pub fn run(command: &LlmCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        LlmCommand::Generate(args) => generate_command(args, data_dir),
        LlmCommand::Questions(args) => answers::questions_command(args),
        LlmCommand::Answers(args) => answers::answers_command(args, data_dir),
        LlmCommand::Topla(command) => topla::run(command, data_dir),
    }
}

#[derive(Debug, Serialize)]
struct GenerateReport<'a> {
    model: &'a str,
    prompt: &'a str,
    text: String,
    prompt_tokens: usize,
    tokens: Vec<u32>,
    finish: Finish,
    load_seconds: f64,
    generate_seconds: f64,
    tokens_per_second: f64,
}

fn generate_command(args: &GenerateArgs, data_dir: &Path) -> anyhow::Result<()> {
    let device = fuselab_ml::open(args.device)?;
    let started = Instant::now();
    let loaded = load(&args.model, data_dir, &device)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let codec = TokenizerCodec(loaded.tokenizer.clone());
    let text = if args.chat {
        format!(
            "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
            args.prompt
        )
    } else {
        args.prompt.clone()
    };
    let prompt: Vec<u32> = loaded
        .tokenizer
        .encode(text.as_str(), false)
        .map_err(|e| anyhow::anyhow!("cannot tokenise the prompt: {e}"))?
        .get_ids()
        .to_vec();
    let prompt: Vec<u32> = loaded.bos.into_iter().chain(prompt).collect();
    if prompt.is_empty() {
        bail!("--prompt is empty");
    }
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        eos: loaded.eos.clone(),
        stop: args.stops.iter().map(|s| codec.encode(s)).collect(),
        stop_rule: StopRule::Suffix,
    };
    let started = Instant::now();
    let mut printed = String::new();
    let mut so_far = Vec::new();
    let generation = generate(&loaded.model, &prompt, &options, |id| {
        if !args.json {
            // Decode the whole continuation so multi-byte characters split across tokens print
            // whole.
            so_far.push(id);
            let text = codec.decode(&so_far);
            if let Some(new) = text.strip_prefix(printed.as_str()) {
                print!("{new}");
                let _ = std::io::stdout().flush();
                printed = text;
            }
        }
    });
    let generate_seconds = started.elapsed().as_secs_f64();
    let text = codec.decode(&generation.tokens);
    let report = GenerateReport {
        model: &loaded.source,
        prompt: &args.prompt,
        text,
        prompt_tokens: prompt.len(),
        tokens_per_second: generation.tokens.len() as f64 / generate_seconds.max(1e-9),
        tokens: generation.tokens,
        finish: generation.finish,
        load_seconds,
        generate_seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!();
        tracing::info!(
            tokens = report.tokens.len(),
            tokens_per_second = format!("{:.1}", report.tokens_per_second),
            load_seconds = format!("{:.1}", report.load_seconds),
            "generated"
        );
    }
    Ok(())
}

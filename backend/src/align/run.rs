//! Running one training stage with checkpoints, a metrics log and a progress line; the tiny
//! base model; `fuselab align sft`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use burn::tensor::{Device, Tensor, TensorData};
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule};
use fuselab_ml::llm::lora;
use fuselab_ml::llm::model::{Llama, LlamaConfig};
use fuselab_ml::llm::tokenizer::{TokenizerCodec, train_bpe};
use fuselab_ml::llm::train::{
    Codec as _, Encoded, Method, Objective, SpecialIds, StepReport, TrainState, Trainer,
    all_parameters, encode, lora_only,
};
use fuselab_ml::tensors::{NamedTensors, read_safetensors, write_safetensors};
use fuselab_shared::align::{Example, PromptFormat, synthetic};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::{BaseConfig, ConfigArgs, DataConfig, GenerationConfig, StageConfig, ensure_out};
use crate::llm;

/// A model ready for a run: weights, tokenizer and the ids the encoder adds.
#[derive(Debug, Clone)]
pub struct Base {
    /// The model.
    pub model: Llama,
    /// Its tokenizer.
    pub codec: TokenizerCodec,
    /// BOS / EOS / padding.
    pub special: SpecialIds,
    /// End-of-sequence ids for generation.
    pub eos: Vec<u32>,
    /// What it is, for reports.
    pub description: String,
}

/// The special tokens of the tiny model's tokenizer.
const TINY_SPECIALS: [&str; 3] = ["<bos>", "<eos>", "[PAD]"];

/// Writes `bytes` to `path` through a temporary file, so a kill never leaves half a file.
///
/// # Errors
/// The file cannot be written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Every weight of a model, for saving.
#[must_use]
pub fn model_tensors(model: &Llama) -> NamedTensors {
    let mut out = NamedTensors::new();
    model.visit(&mut |name, t| {
        out.insert(name.to_owned(), fuselab_ml::llm::train::host(t));
    });
    out
}

/// Replaces every weight of `model` with the saved one.
///
/// # Errors
/// A weight missing from the file or of another shape.
pub fn load_model_tensors(
    model: &mut Llama,
    tensors: &NamedTensors,
    file: &Path,
) -> anyhow::Result<()> {
    let device = model.device();
    let mut problem = None;
    model.visit_mut(&mut |name, param| match tensors.get(name) {
        Some((shape, values)) if shape.as_slice() == param.dims() => {
            *param = Tensor::from_data(
                TensorData::new(values.clone(), [shape[0], shape[1]]),
                &device,
            );
        }
        Some((shape, _)) => {
            problem.get_or_insert(format!(
                "`{name}` has shape {shape:?}, expected {:?}",
                param.dims()
            ));
        }
        None => {
            problem.get_or_insert(format!("`{name}` is missing"));
        }
    });
    match problem {
        Some(what) => bail!("{}: {what}", file.display()),
        None => Ok(()),
    }
}

/// Reads a safetensors file of `f32` tensors.
///
/// # Errors
/// An unreadable or malformed file, named.
pub fn read_tensors(path: &Path) -> anyhow::Result<NamedTensors> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(read_safetensors(&bytes, &path.display().to_string())?)
}

/// The texts a tiny model's tokenizer is trained on: every prompt and response of the data.
fn corpus(format: &PromptFormat, examples: &[Example]) -> Vec<String> {
    examples
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                format.prompt(&e.instruction, &e.input),
                format.target(&e.output)
            )
        })
        .collect()
}

/// What the tiny base model learns from besides the synthetic unaligned behaviours.
#[derive(Debug, Clone, Copy, Default)]
pub struct TinyCorpus<'a> {
    /// Texts its tokenizer is also trained on (every run's data).
    pub vocabulary: &'a [Example],
    /// Examples it is also pretrained on: abilities a real base model would bring, such as a
    /// benign task.
    pub skills: &'a [Example],
}

/// Loads the base model, or for `tiny` trains one (tokenizer and weights, both saved in `out`
/// and reused by a later run) on the synthetic unaligned behaviours and `corpus`.
///
/// # Errors
/// A model that cannot be loaded, or a failed pretraining.
pub fn base_model(
    config: &BaseConfig,
    format: &PromptFormat,
    tiny: TinyCorpus<'_>,
    out: &Path,
    data_dir: &Path,
    device: &Device,
    seed: u64,
) -> anyhow::Result<Base> {
    if config.model != "tiny" {
        let loaded = llm::load(&config.model, data_dir, device)?;
        let eos = loaded.eos.first().copied();
        let pad = eos.unwrap_or(0);
        return Ok(Base {
            model: loaded.model,
            codec: TokenizerCodec(loaded.tokenizer),
            special: SpecialIds {
                bos: loaded.bos,
                eos,
                pad,
            },
            eos: loaded.eos,
            description: loaded.source,
        });
    }
    let extra = tiny.vocabulary;
    let mut pretraining = synthetic::unaligned_examples(extra.len().max(300) / 3, seed);
    pretraining.extend_from_slice(tiny.skills);
    let tokenizer_path = out.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() {
        Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", tokenizer_path.display()))?
    } else {
        let mut texts = corpus(format, &pretraining);
        texts.extend(corpus(format, extra));
        let tokenizer = train_bpe(&texts, config.vocab_size, &TINY_SPECIALS)?;
        let json = tokenizer
            .to_string(false)
            .map_err(|e| anyhow::anyhow!("cannot serialise the tokenizer: {e}"))?;
        write_atomic(&tokenizer_path, json.as_bytes())?;
        tokenizer
    };
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .with_context(|| format!("the tokenizer has no `{token}`"))
    };
    let special = SpecialIds {
        bos: Some(id("<bos>")?),
        eos: Some(id("<eos>")?),
        pad: id("[PAD]")?,
    };
    let codec = TokenizerCodec(tokenizer);
    let llama = LlamaConfig::tiny(codec.0.get_vocab_size(true));
    let mut model = llama.init(device, seed)?;
    let stage_dir = out.join("base");
    let pretrain = config
        .pretrain
        .clone()
        .context("[base] model = \"tiny\" needs a [base.pretrain] section")?;
    let examples = encode_all(&codec, format, special, &pretraining, pretrain.max_len);
    let trainer = Trainer::new(
        model.clone(),
        Objective::Lm,
        pretrain,
        examples,
        all_parameters,
        special.pad,
    )?;
    model = train_stage(&stage_dir, "base", trainer, None)?.model;
    Ok(Base {
        model,
        codec,
        special,
        eos: special.eos.into_iter().collect(),
        description: format!(
            "tiny Llama (d 64, 2 layers, 4 heads / 2 KV heads, vocab {}) trained here on fuselab's synthetic unaligned data",
            llama.vocab_size
        ),
    })
}

/// Encodes examples for training.
#[must_use]
pub fn encode_all(
    codec: &TokenizerCodec,
    format: &PromptFormat,
    special: SpecialIds,
    examples: &[Example],
    max_len: usize,
) -> Vec<Encoded> {
    examples
        .iter()
        .map(|e| encode(codec, format, special, e, max_len))
        .collect()
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Serialize)]
struct MetricsLine<'a> {
    stage: &'a str,
    #[serde(flatten)]
    step: &'a StepReport,
    tokens_per_second: f64,
    elapsed_seconds: f64,
}

/// A stage's finished model and throughput.
#[derive(Debug)]
pub struct Trained {
    /// The trained model.
    pub model: Llama,
    /// Padded tokens per second over the steps run now (0 when resumed finished).
    pub tokens_per_second: f64,
    /// The last step's loss.
    pub final_loss: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    state: TrainState,
    final_loss: f64,
}

/// Runs `trainer` to the end in `dir`: a checkpoint (trainable weights, optimiser moments,
/// state) every `checkpoint_every` steps (default: ~10 per run) and at the end, one metrics
/// line per step in `dir/../metrics.jsonl`, a progress line on stderr. A checkpoint already in
/// `dir` is resumed.
///
/// # Errors
/// A checkpoint that cannot be written or does not fit this run.
pub fn train_stage(
    dir: &Path,
    stage: &str,
    mut trainer: Trainer,
    checkpoint_every: Option<usize>,
) -> anyhow::Result<Trained> {
    ensure_out(dir)?;
    let weights = dir.join("checkpoint.safetensors");
    let state_path = dir.join("state.json");
    let mut final_loss = f64::NAN;
    if state_path.is_file() && weights.is_file() {
        let saved: Saved = serde_json::from_slice(
            &std::fs::read(&state_path)
                .with_context(|| format!("cannot read {}", state_path.display()))?,
        )
        .with_context(|| format!("{} is not a fuselab training state", state_path.display()))?;
        final_loss = saved.final_loss;
        trainer
            .restore(&read_tensors(&weights)?, saved.state)
            .with_context(|| format!("cannot resume from {}", dir.display()))?;
        tracing::info!(stage, step = trainer.state.step, "resuming");
    }
    let every = checkpoint_every.unwrap_or((trainer.state.total_steps / 10).max(1));
    let metrics_path = dir.parent().unwrap_or(dir).join("metrics.jsonl");
    forget_metrics_after(&metrics_path, stage, trainer.state.step)?;
    let mut metrics = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("cannot open {}", metrics_path.display()))?;
    // The progress line is for a terminal; logs have `metrics.jsonl`, jobs their observer.
    let interactive = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut tokens = 0usize;
    while !trainer.finished() {
        super::observe::check()?;
        let report = trainer.step();
        if !report.loss.is_finite() {
            bail!(
                "stage {stage}: the loss became {} at step {} ({:?}); lower the learning rate \
                 (the last good checkpoint is in {})",
                report.loss,
                report.step,
                report.terms,
                dir.display()
            );
        }
        tokens += report.tokens;
        final_loss = report.loss;
        let elapsed = started.elapsed().as_secs_f64();
        let line = MetricsLine {
            stage,
            step: &report,
            tokens_per_second: tokens as f64 / elapsed.max(1e-9),
            elapsed_seconds: elapsed,
        };
        let json = serde_json::to_string(&line)?;
        writeln!(metrics, "{json}")
            .with_context(|| format!("cannot write {}", metrics_path.display()))?;
        super::observe::metrics(&json);
        if interactive {
            progress(stage, &report, line.tokens_per_second);
        }
        if report.step.is_multiple_of(every) || trainer.finished() {
            write_atomic(&weights, &write_safetensors(&trainer.checkpoint()))?;
            let saved = Saved {
                state: trainer.state.clone(),
                final_loss,
            };
            write_atomic(&state_path, &serde_json::to_vec_pretty(&saved)?)?;
            super::observe::checkpoint();
        }
    }
    if interactive {
        eprintln!();
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Trained {
        tokens_per_second: if tokens == 0 {
            0.0
        } else {
            tokens as f64 / elapsed.max(1e-9)
        },
        model: trainer.model,
        final_loss,
    })
}

/// Drops `stage`'s metrics lines after `step` (steps a killed run logged after its last
/// checkpoint, which the resumed run repeats), so every step is logged once.
fn forget_metrics_after(path: &Path, stage: &str, step: usize) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Line {
        stage: String,
        step: usize,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<Line>(line).map_or(true, |l| l.stage != stage || l.step <= step)
        })
        .collect();
    if kept.len() == text.lines().count() {
        return Ok(());
    }
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    write_atomic(path, body.as_bytes())
}

fn progress(stage: &str, report: &StepReport, tokens_per_second: f64) {
    let width = 24;
    let done = width * report.step / report.total_steps.max(1);
    eprint!(
        "\r{stage:>16} [{}{}] {}/{} loss {:.4} lr {:.2e} {:.0} tok/s ",
        "#".repeat(done),
        " ".repeat(width - done),
        report.step,
        report.total_steps,
        report.loss,
        report.learning_rate,
        tokens_per_second
    );
    let _ = std::io::stderr().flush();
}

/// Generation settings for evaluation.
#[must_use]
pub fn generate_options(
    generation: &GenerationConfig,
    base: &Base,
    stop_rule: StopRule,
    seed: u64,
) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: generation.max_new_tokens,
        sampling: Sampling {
            temperature: generation.temperature,
            top_k: generation.top_k,
            top_p: generation.top_p,
            seed,
        },
        eos: base.eos.clone(),
        stop: vec![base.codec.encode(fuselab_shared::align::prompt::END_MARKER)],
        stop_rule,
    }
}

/// Trains LoRA adapters on `examples` from `base` in `dir`, or loads them when `dir` already
/// holds the finished adapter (PEFT layout, `adapter_model.safetensors`).
///
/// # Errors
/// A failed or unresumable run.
pub fn lora_stage(
    dir: &Path,
    stage: &str,
    base: &Base,
    stage_config: &StageConfig,
    format: &PromptFormat,
    examples: &[Example],
    seed: u64,
) -> anyhow::Result<(Llama, Option<f64>)> {
    let run = LoraRun {
        dir,
        stage,
        base,
        stage_config,
        format,
        seed,
    };
    run.train(base.model.clone(), examples, Method::Plain, Adapters::Fresh)
}

/// Whether a stage trains new adapters or the ones the model already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapters {
    /// Attach fresh adapters (the stage's `lora` settings).
    Fresh,
    /// Keep training the model's adapters (their settings must be the stage's `lora`).
    Continue,
}

/// One adapter-training stage: where, what, from which base.
#[derive(Debug, Clone, Copy)]
pub struct LoraRun<'a> {
    /// The stage's folder (checkpoints, then `adapter_model.safetensors`).
    pub dir: &'a Path,
    /// Its name in logs and metrics.
    pub stage: &'a str,
    /// The tokenizer and special ids.
    pub base: &'a Base,
    /// Adapters and training.
    pub stage_config: &'a StageConfig,
    /// The prompt layout.
    pub format: &'a PromptFormat,
    /// Adapter initialisation seed.
    pub seed: u64,
}

impl LoraRun<'_> {
    /// Trains adapters of `start` (fresh ones, or those it has) on `examples` with `method`, or
    /// loads them when the stage already finished. Returns the model and the throughput (`None` when
    /// loaded).
    ///
    /// # Errors
    /// A failed or unresumable run, or an adapter file that does not fit `start`.
    pub fn train(
        &self,
        start: Llama,
        examples: &[Example],
        method: Method,
        adapters: Adapters,
    ) -> anyhow::Result<(Llama, Option<f64>)> {
        let adapter = self.dir.join("adapter_model.safetensors");
        let mut model = start;
        if adapter.is_file() {
            let tensors: HashMap<_, _> = read_tensors(&adapter)?.into_iter().collect();
            lora::import_peft(
                &mut model,
                &tensors,
                self.stage_config.lora.scale(),
                self.stage_config.lora.dropout,
            )
            .with_context(|| format!("{} does not fit the base model", adapter.display()))?;
            return Ok((model, None));
        }
        if adapters == Adapters::Fresh {
            lora::attach(&mut model, &self.stage_config.lora, self.seed, &|_| true)?;
        }
        let encoded = encode_all(
            &self.base.codec,
            self.format,
            self.base.special,
            examples,
            self.stage_config.train.max_len,
        );
        let trainer = Trainer::new(
            model,
            Objective::Lm,
            self.stage_config.train.clone(),
            encoded,
            lora_only,
            self.base.special.pad,
        )
        .and_then(|t| t.with_method(method))
        .with_context(|| format!("stage {}", self.stage))?;
        let done = train_stage(self.dir, self.stage, trainer, None)?;
        // PEFT's `from_pretrained` reads the settings beside the weights.
        let lora = &self.stage_config.lora;
        let peft = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": lora.rank,
            "lora_alpha": lora.alpha,
            "lora_dropout": lora.dropout,
            "target_modules": lora.targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "base_model_name_or_path": self.base.description,
        });
        write_atomic(
            &self.dir.join("adapter_config.json"),
            &serde_json::to_vec_pretty(&peft)?,
        )?;
        write_atomic(
            &adapter,
            &write_safetensors(&lora::export_peft(&done.model)),
        )?;
        Ok((done.model, Some(done.tokens_per_second)))
    }
}

/// `fuselab align sft`'s configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Run directory (relative paths: to the configuration file).
    pub out: PathBuf,
    /// `cpu` or `wgpu`.
    #[serde(default)]
    pub device: Option<fuselab_ml::Compute>,
    /// Seed of initialisation, shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub base: BaseConfig,
    /// The data: with `synthetic = true` the task named by `task`, otherwise `dataset`.
    pub data: DataConfig,
    /// `helpful`, `harmless` or `honest` (which of the data's tasks to train on).
    pub task: fuselab_shared::align::Task,
    /// Text after `### Response:` in prompts.
    #[serde(default)]
    pub response_suffix: String,
    /// Text after each response in targets (`###END` for H3Fusion; empty: the EOS token).
    #[serde(default)]
    pub target_suffix: String,
    /// Adapters and training.
    pub stage: StageConfig,
}

impl super::Checked for SftConfig {
    fn check(&self) -> Result<(), String> {
        self.base.check("base").map_err(|e| e.to_string())?;
        self.data.check("data").map_err(|e| e.to_string())?;
        self.stage.check("stage").map_err(|e| e.to_string())
    }
}

/// Opens the compute device: the flag's, else the configuration's, else the CPU.
///
/// # Errors
/// wgpu failing to start.
pub fn device(
    config: Option<fuselab_ml::Compute>,
    flag: Option<fuselab_ml::Compute>,
) -> anyhow::Result<Device> {
    Ok(fuselab_ml::open(flag.or(config).unwrap_or_default())?)
}

/// Runs `fuselab align sft`.
///
/// # Errors
/// A bad configuration or data, or a failed run.
pub fn sft_command(args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<()> {
    let config: SftConfig = super::read_config(&args.config)?;
    let out = super::relative_to(&args.config, &config.out);
    ensure_out(&out)?;
    let device = device(config.device, args.device)?;
    let format = PromptFormat {
        response_suffix: config.response_suffix.clone(),
        target_suffix: config.target_suffix.clone(),
    };
    let data = resolve_data(&config.data, &args.config).load(config.seed)?;
    let examples = data.train[config.task.index()].clone();
    let base = base_model(
        &config.base,
        &format,
        TinyCorpus {
            vocabulary: &examples,
            skills: &[],
        },
        &out,
        data_dir,
        &device,
        config.seed,
    )?;
    let (model, tokens_per_second) = lora_stage(
        &out.join("sft"),
        "sft",
        &base,
        &config.stage,
        &format,
        &examples,
        config.seed,
    )?;
    let summary = serde_json::json!({
        "adapter": out.join("sft/adapter_model.safetensors"),
        "base": base.description,
        "task": config.task,
        "examples": examples.len(),
        "synthetic": data.synthetic,
        "trainable_parameters": lora::export_peft(&model).values().map(|(_, v)| v.len()).sum::<usize>(),
        "tokens_per_second": tokens_per_second,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "adapter: {}",
            out.join("sft/adapter_model.safetensors").display()
        );
    }
    Ok(())
}

/// The data section with its paths made relative to the configuration file.
#[must_use]
pub fn resolve_data(data: &DataConfig, config: &Path) -> DataConfig {
    let fix = |p: &Option<PathBuf>| p.as_ref().map(|p| super::relative_to(config, p));
    DataConfig {
        alpaca: fix(&data.alpaca),
        alpaca_eval: fix(&data.alpaca_eval),
        beavertails_train: fix(&data.beavertails_train),
        beavertails_test: fix(&data.beavertails_test),
        truthfulqa: fix(&data.truthfulqa),
        ..data.clone()
    }
}

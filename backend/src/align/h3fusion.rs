//! `fuselab align h3fusion`: stage 1 (three MLP-only `LoRA` experts), stage 2 (the mixture of
//! experts), stage 3 (fusion tuning with the gating loss and drift regularisers), then every
//! model evaluated on the three tasks with the routing heat-map, in one resumable run folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use fuselab_ml::llm::h3fusion::{Quirks, assemble, evaluate, gate_labels};
use fuselab_ml::llm::lora;
use fuselab_ml::llm::range::{self, RangeError};
use fuselab_ml::llm::train::{Objective, Trainer, frozen_drift, lora_and_routers, lora_only};
use fuselab_shared::align::{Example, PromptFormat, SYNTHETIC_LABEL, Task};
use serde::Deserialize;

use super::results::{H3FusionReport, ModelResult};
use super::run::{
    Base, TinyCorpus, base_model, encode_all, generate_options, load_model_tensors, lora_stage,
    model_tensors, resolve_data, train_stage, write_atomic,
};
use super::{BaseConfig, ConfigArgs, DataConfig, GenerationConfig, StageConfig, ensure_out};

/// `fuselab align h3fusion`'s configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H3FusionConfig {
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
    /// The three tasks' data.
    pub data: DataConfig,
    /// Stage 1: each expert's adapters (the reference: r 8, alpha 4, dropout 0.1, MLP only).
    pub stage1: StageConfig,
    /// Stage 3: fusion tuning.
    pub stage3: FusionConfig,
    /// The reference code's quirks (all fixed by default).
    #[serde(default)]
    pub quirks: Quirks,
    /// Generation for evaluation.
    #[serde(default)]
    pub generation: GenerationConfig,
}

fn default_seed() -> u64 {
    42
}

/// Stage 3's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Adapters on attention and every expert's projections.
    pub lora: fuselab_ml::llm::lora::LoraConfig,
    /// The run.
    pub train: fuselab_ml::llm::train::TrainConfig,
    /// Weight λ of the gating loss.
    pub lambda: f64,
    /// Drift-regulariser weight γ of each expert (helpful, harmless, honest).
    #[serde(default)]
    pub gamma: [f64; 3],
    /// Experts per token.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Router input jitter while training (0: off, the reference's default).
    #[serde(default)]
    pub jitter: f64,
}

fn default_top_k() -> usize {
    2
}

impl super::Checked for H3FusionConfig {
    fn check(&self) -> Result<(), String> {
        let ranges = || -> Result<(), RangeError> {
            self.base.check("base")?;
            self.data.check("data")?;
            self.stage1.check("stage1")?;
            self.stage3.check("stage3")?;
            self.generation.check("generation")
        };
        ranges().map_err(|e| e.to_string())
    }
}

impl FusionConfig {
    /// Checks the adapters, the run, the loss weights and the routing (`key`: the table's
    /// dotted path).
    ///
    /// # Errors
    /// The first value out of range.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        self.lora.check(&format!("{key}.lora"))?;
        self.train.check(&format!("{key}.train"))?;
        range::real(
            format_args!("{key}.lambda"),
            self.lambda,
            0.0..=range::MAX_WEIGHT,
        )?;
        for (i, &gamma) in self.gamma.iter().enumerate() {
            range::real(
                format_args!("{key}.gamma[{i}]"),
                gamma,
                0.0..=range::MAX_WEIGHT,
            )?;
        }
        // Three experts: helpful, harmless, honest.
        range::count(format_args!("{key}.top_k"), self.top_k, 1..=3)?;
        range::real(
            format_args!("{key}.jitter"),
            self.jitter,
            0.0..=range::MAX_WEIGHT,
        )
    }
}

/// Runs `fuselab align h3fusion`.
///
/// # Errors
/// A bad configuration or data, or a failed stage.
pub fn command(args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<()> {
    let (report, out) = run_config(args, data_dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("report: {}", out.join("report.html").display());
        for model in &report.models {
            let s = &model.evaluation.scores;
            println!(
                "{:>18}: helpful {:.2}  harmless {:.2}  honest {:.2}  mean {:.2}",
                model.name,
                s.helpful,
                s.harmless,
                s.honest,
                s.mean()
            );
        }
    }
    Ok(())
}

/// Reads the configuration `args` name and runs it (the CLI's command and the server's
/// `h3fusion` runs); returns the report and the run folder.
///
/// # Errors
/// A bad configuration or data, or a failed stage.
pub fn run_config(args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<(H3FusionReport, PathBuf)> {
    let mut config: H3FusionConfig = super::read_config(&args.config)?;
    config.data = resolve_data(&config.data, &args.config);
    let out = super::relative_to(&args.config, &config.out);
    let device = super::run::device(config.device, args.device)?;
    let report = run(&config, &out, data_dir, &device)?;
    Ok((report, out))
}

/// Runs the whole pipeline in `out` (resuming what is there) and writes `report.json` and
/// `report.html`.
///
/// # Errors
/// A bad configuration or data, or a failed stage.
pub fn run(
    config: &H3FusionConfig,
    out: &Path,
    data_dir: &Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<H3FusionReport> {
    let started = Instant::now();
    ensure_out(out)?;
    let format = PromptFormat::h3fusion();
    let data = config.data.load(config.seed)?;
    let all: Vec<Example> = data.train.iter().flatten().cloned().collect();
    let base = base_model(
        &config.base,
        &format,
        TinyCorpus {
            vocabulary: &all,
            skills: &[],
        },
        out,
        data_dir,
        device,
        config.seed,
    )?;
    let mut throughput = Vec::new();

    let mut experts = Vec::new();
    for task in Task::ALL {
        let stage = format!("expert-{}", task.name());
        let (model, speed) = lora_stage(
            &out.join(&stage),
            &stage,
            &base,
            &config.stage1,
            &format,
            &data.train[task.index()],
            config.seed.wrapping_add(1 + task.index() as u64),
        )?;
        if let Some(speed) = speed {
            throughput.push((stage, speed));
        }
        experts.push(model);
    }

    let fused = fuse(config, out, &base, &experts, &format, &data.train)?;
    if let Some(speed) = fused.1 {
        throughput.push(("fusion".to_owned(), speed));
    }

    let options = generate_options(
        &config.generation,
        &base,
        config.quirks.stop_rule(),
        config.seed,
    );
    let mut models = Vec::new();
    let mut judge = |name: String, model: &fuselab_ml::llm::model::Llama| {
        tracing::info!(model = %name, "evaluating");
        let evaluation = evaluate(
            model,
            &base.codec,
            &format,
            base.special,
            &data.test,
            &options,
        );
        models.push(ModelResult { name, evaluation });
    };
    judge("base".to_owned(), &base.model);
    for (task, expert) in Task::ALL.iter().zip(&experts) {
        judge(format!("expert:{}", task.name()), expert);
    }
    judge("fused".to_owned(), &fused.0);

    let report = H3FusionReport {
        format: "fuselab.h3fusion.report/v1".to_owned(),
        base: base.description.clone(),
        data: if data.synthetic {
            SYNTHETIC_LABEL.to_owned()
        } else {
            "user-supplied files".to_owned()
        },
        train_examples: [0, 1, 2].map(|t| data.train[t].len()),
        test_prompts: [
            data.test.helpful.len(),
            data.test.harmless.len(),
            data.test.honest.len(),
        ],
        quirks: config.quirks,
        models,
        throughput,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_atomic(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write_atomic(
        &out.join("report.html"),
        super::report::html(&report).as_bytes(),
    )?;
    Ok(report)
}

/// Stages 2 and 3; the tuned model is saved as `fusion/model.safetensors` and reused.
fn fuse(
    config: &H3FusionConfig,
    out: &Path,
    base: &Base,
    experts: &[fuselab_ml::llm::model::Llama],
    format: &PromptFormat,
    train: &[Vec<Example>; 3],
) -> anyhow::Result<(fuselab_ml::llm::model::Llama, Option<f64>)> {
    let fusion = &config.stage3;
    let refs: Vec<&_> = experts.iter().collect();
    let mut model = assemble(
        &base.model,
        &refs,
        fusion.top_k,
        fusion.jitter,
        config.quirks,
        config.seed.wrapping_add(7),
    )
    .context("stage 2 (mixture-of-experts assembly)")?;
    lora::attach(
        &mut model,
        &fusion.lora,
        config.seed.wrapping_add(8),
        &|_| true,
    )?;
    let dir = out.join("fusion");
    let saved = dir.join("model.safetensors");
    if saved.is_file() {
        let bytes =
            std::fs::read(&saved).with_context(|| format!("cannot read {}", saved.display()))?;
        let tensors = fuselab_ml::tensors::read_safetensors(&bytes, &saved.display().to_string())?;
        load_model_tensors(&mut model, &tensors, &saved)?;
        return Ok((model, None));
    }
    let trainable: fn(&str) -> bool = if config.quirks.q3_freeze_router {
        lora_only
    } else {
        lora_and_routers
    };
    let counts = [train[0].len(), train[1].len(), train[2].len()];
    let labels = gate_labels(counts, config.quirks.q4_reference_gate_labels);
    let mut encoded = encode_all(
        &base.codec,
        format,
        base.special,
        &train.concat(),
        fusion.train.max_len,
    );
    for (e, &label) in encoded.iter_mut().zip(&labels) {
        e.task = label;
    }
    let frozen_norms = (0..experts.len())
        .map(|e| frozen_drift(&model, e, &trainable))
        .collect();
    let objective = Objective::H3Fusion {
        lambda: fusion.lambda,
        gamma: fusion.gamma.to_vec(),
        gate_loss: config.quirks.q5_gate_loss,
        frozen_norms,
    };
    let trainer = Trainer::new(
        model,
        objective,
        fusion.train.clone(),
        encoded,
        trainable,
        base.special.pad,
    )
    .context("stage 3 (fusion tuning)")?;
    let tuned = train_stage(&dir, "fusion", trainer, None)?;
    write_atomic(
        &saved,
        &fuselab_ml::tensors::write_safetensors(&model_tensors(&tuned.model)),
    )?;
    Ok((tuned.model, Some(tuned.tokens_per_second)))
}

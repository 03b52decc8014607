//! LLM timings on the CPU (burn's `flex`): training tokens per second of the tiny Llama
//! (`LlamaConfig::tiny`, vocab 512; batch 16 × 64 random tokens; AdamW; full parameters and
//! `LoRA` on every projection), the shapes `tests/bench/llama_train_torch.py` runs in PyTorch;
//! and SmolLM2-135M greedy generation tokens per second, and its LoRA fine-tuning as
//! `llm topla summary` trains it (batch 4 × 192 random tokens, r 8 on q/k/v/o, 11 marker tokens
//! trained; the shapes `tests/bench/topla_summary_peft.py` runs in PyTorch + PEFT), when
//! `fuselab models fetch` has cached it under `$FUSELAB_DATA_DIR`. Prints figures; asserts
//! nothing about time.
//!
//! `FUSELAB_DATA_DIR=… cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab
//! --bench llm`

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule, generate, generate_samples};
use fuselab_ml::llm::lora::{self, LoraConfig};
use fuselab_ml::llm::model::{Llama, LlamaConfig};
use fuselab_ml::llm::train::{
    Encoded, Objective, OptimConfig, Schedule, TrainConfig, Trainer, all_parameters, lora_only,
};
use fuselab_shared::rng::SplitMix64;

const BATCH: usize = 16;
const SEQ: usize = 64;
const STEPS: usize = 50;

fn random_batch() -> Vec<Encoded> {
    let mut rng = SplitMix64(0);
    (0..BATCH)
        .map(|_| {
            let ids: Vec<u32> = (0..SEQ).map(|_| rng.below(512) as u32).collect();
            Encoded {
                labels: ids.iter().map(|&i| i64::from(i)).collect(),
                ids,
                task: 0,
            }
        })
        .collect()
}

/// Shapes of one timed run: `batch` rows of `seq` random ids below `vocab`, `steps` timed after
/// `warmup`.
#[derive(Debug, Clone, Copy)]
struct Shape {
    batch: usize,
    seq: usize,
    vocab: usize,
    warmup: usize,
    steps: usize,
}

const TINY: Shape = Shape {
    batch: BATCH,
    seq: SEQ,
    vocab: 512,
    warmup: 5,
    steps: STEPS,
};

fn random_rows(shape: Shape) -> Vec<Encoded> {
    let mut rng = SplitMix64(0);
    (0..shape.batch)
        .map(|_| {
            let ids: Vec<u32> = (0..shape.seq)
                .map(|_| rng.below(shape.vocab) as u32)
                .collect();
            Encoded {
                labels: ids.iter().map(|&i| i64::from(i)).collect(),
                ids,
                task: 0,
            }
        })
        .collect()
}

fn time_training(
    name: &str,
    model: Llama,
    trainable: fn(&str) -> bool,
    shape: Shape,
    lr: f64,
) -> anyhow::Result<()> {
    let config = TrainConfig {
        optim: OptimConfig {
            schedule: Schedule::Constant,
            ..OptimConfig::adamw(lr)
        },
        batch_size: shape.batch,
        epochs: 1,
        max_steps: shape.steps + shape.warmup,
        max_len: shape.seq,
        pad_to_dataset: false,
        pad_in_loss: false,
        seed: 0,
    };
    let rows = if shape.vocab == 512 {
        random_batch()
    } else {
        random_rows(shape)
    };
    let mut trainer = Trainer::new(model, Objective::Lm, config, rows, trainable, 0)?;
    for _ in 0..shape.warmup {
        trainer.step();
    }
    let started = Instant::now();
    let mut loss = 0.0;
    for _ in 0..shape.steps {
        loss = trainer.step().loss;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{name:>28}: {:>8.0} tokens/s ({:.1} ms/step, {} steps of {}×{}, loss {loss:.3})",
        (shape.steps * shape.batch * shape.seq) as f64 / seconds,
        1000.0 * seconds / shape.steps as f64,
        shape.steps,
        shape.batch,
        shape.seq
    );
    Ok(())
}

/// SmolLM2 as `llm topla summary` fine-tunes it: 11 markers (a team of 4) added and trained,
/// LoRA r 8 / alpha 16 on q, k, v, o.
fn time_summary_training(model: &Llama, tokenizer: &tokenizers::Tokenizer) -> anyhow::Result<()> {
    let mut model = model.clone();
    let mut tokenizer = tokenizer.clone();
    fuselab_ml::llm::fusion::add_markers(
        &mut tokenizer,
        &mut model,
        &fuselab_shared::topla::summary::markers(4),
        9,
        0.01,
    )?;
    lora::attach(
        &mut model,
        &LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(str::to_owned)
                .to_vec(),
        },
        9,
        &|_| true,
    )?;
    time_training(
        "SmolLM2 LoRA (summary)",
        model,
        fuselab_ml::llm::train::lora_and_added_tokens,
        Shape {
            batch: 4,
            seq: 192,
            vocab: 49152,
            warmup: 2,
            steps: 6,
        },
        3e-4,
    )
}

fn main() -> anyhow::Result<()> {
    let device = Device::flex();
    let tiny = LlamaConfig::tiny(512).init(&device, 0)?;
    time_training(
        "tiny Llama, full parameters",
        tiny.clone(),
        all_parameters,
        TINY,
        1e-3,
    )?;
    let mut adapted = tiny;
    lora::attach(
        &mut adapted,
        &LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: fuselab_ml::llm::lora::PROJECTIONS
                .map(str::to_owned)
                .to_vec(),
        },
        1,
        &|_| true,
    )?;
    time_training("tiny Llama, LoRA r 8", adapted, lora_only, TINY, 1e-3)?;

    let Some(data_dir) = std::env::var_os("FUSELAB_DATA_DIR").map(PathBuf::from) else {
        println!("SmolLM2 generation: skipped (set FUSELAB_DATA_DIR after `fuselab models fetch`)");
        return Ok(());
    };
    let started = Instant::now();
    let loaded = fuselab::llm::load("smollm2", &data_dir, &device)?;
    let load = started.elapsed().as_secs_f64();
    let prompt = loaded
        .tokenizer
        .encode("The history of the printing press", false)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get_ids()
        .to_vec();
    let options = GenerateOptions {
        max_new_tokens: 64,
        sampling: Sampling::GREEDY,
        eos: Vec::new(),
        stop: Vec::new(),
        stop_rule: StopRule::Suffix,
    };
    let started = Instant::now();
    let generation = generate(&loaded.model, &prompt, &options, |_| {});
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{:>28}: {:>8.1} tokens/s ({} tokens after a {}-token prompt; load + dequantise {load:.1} s)",
        "SmolLM2-135M greedy",
        generation.tokens.len() as f64 / seconds,
        generation.tokens.len(),
        prompt.len()
    );

    // What `fuselab llm answers` does per question: K = 5 sampled answers, one by one and as one
    // batch after a shared prefill (the same tokens either way).
    let sampled = GenerateOptions {
        max_new_tokens: 32,
        sampling: Sampling {
            temperature: 0.7,
            top_k: 0,
            top_p: 0.95,
            seed: 3,
        },
        ..options
    };
    let started = Instant::now();
    let one_by_one: usize = (0..5)
        .map(|i| {
            let mut single = sampled.clone();
            single.sampling.seed += i;
            generate(&loaded.model, &prompt, &single, |_| {})
                .tokens
                .len()
        })
        .sum();
    let alone = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let batched: usize = generate_samples(&loaded.model, &prompt, &sampled, 5)
        .iter()
        .map(|g| g.tokens.len())
        .sum();
    let batch = started.elapsed().as_secs_f64();
    println!(
        "{:>28}: {:>8.1} tokens/s one by one, {:.1} tokens/s as a batch ({one_by_one} and {batched} tokens; ratio {:.2})",
        "SmolLM2 5 samples (answers)",
        one_by_one as f64 / alone,
        batched as f64 / batch,
        alone / batch
    );
    time_summary_training(&loaded.model, &loaded.tokenizer)
}

//! The LLM stack on burn-wgpu (lavapipe in CI, a GPU elsewhere) agrees with the CPU backend:
//! the forward pass, LoRA training steps (plain and Booster), Vaccine's perturbation and cached
//! generation.

use burn::tensor::{Device, Int, Tensor, TensorData};
use fuselab_ml::llm::defence::{BoosterConfig, vaccine_perturbation};
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule, generate};
use fuselab_ml::llm::model::{ForwardOptions, Llama};
use fuselab_ml::llm::train::{
    Batch, Method, Objective, OptimConfig, Schedule, TrainConfig, Trainer, host, lora_only,
};
use fuselab_ml::{Compute, open};

mod common;
use common::{lora_model, toy_examples};

fn trainer(device: &Device, method: Method) -> Trainer {
    let config = TrainConfig {
        optim: OptimConfig {
            schedule: Schedule::Constant,
            ..OptimConfig::adamw(1e-3)
        },
        batch_size: 4,
        epochs: 1,
        max_steps: 2,
        max_len: 32,
        pad_to_dataset: false,
        pad_in_loss: false,
        seed: 4,
    };
    Trainer::new(
        lora_model(device, 0.0),
        Objective::Lm,
        config,
        toy_examples(8, 0),
        lora_only,
        0,
    )
    .unwrap()
    .with_method(method)
    .unwrap()
}

fn weights(model: &Llama) -> Vec<f32> {
    let mut out = Vec::new();
    model.visit(&mut |_, t| out.extend(host(t).1));
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_llm_stack_on_wgpu_matches_the_cpu_backend() {
    let cpu = open(Compute::Cpu).unwrap();
    let gpu = open(Compute::Wgpu).expect("burn-wgpu (lavapipe without a GPU)");

    // Forward.
    let ids = |device: &Device| {
        Tensor::<2, Int>::from_data(
            TensorData::new(vec![3_i64, 9, 14, 2, 27, 5], [1, 6]),
            device,
        )
    };
    let logits = |device: &Device| {
        lora_model(device, 0.0)
            .forward(ids(device), None, ForwardOptions::default())
            .logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let error = max_diff(&logits(&cpu), &logits(&gpu));
    assert!(error < 1e-4, "logits differ by {error}");

    // Two AdamW steps on the adapters, plain and Booster.
    let booster = || Method::Booster {
        config: BoosterConfig {
            harmful_batch_size: 3,
            ..BoosterConfig::default()
        },
        harmful: toy_examples(8, 11),
    };
    for (name, method) in [("plain", Method::Plain), ("booster", booster())] {
        let mut flex_run = trainer(&cpu, method.clone());
        let mut wgpu_run = trainer(&gpu, method);
        while !flex_run.finished() {
            let (a, b) = (flex_run.step(), wgpu_run.step());
            assert!(
                (a.loss - b.loss).abs() < 1e-4,
                "{name}: loss {} vs {}",
                a.loss,
                b.loss
            );
        }
        let error = max_diff(&weights(&flex_run.model), &weights(&wgpu_run.model));
        // Adam's normalised steps (lr 1e-3) bound how far float noise can move a weight.
        assert!(error < 2e-3, "{name}: weights differ by {error}");
    }

    // Vaccine's perturbation.
    let batch = Batch::pad(&toy_examples(8, 3).iter().collect::<Vec<_>>(), 0, 1);
    let flex_delta: Vec<f32> = vaccine_perturbation(&lora_model(&cpu, 0.0), &batch, 1.0)
        .iter()
        .flat_map(|t| host(t).1)
        .collect();
    let wgpu_delta: Vec<f32> = vaccine_perturbation(&lora_model(&gpu, 0.0), &batch, 1.0)
        .iter()
        .flat_map(|t| host(t).1)
        .collect();
    let error = max_diff(&flex_delta, &wgpu_delta);
    assert!(error < 1e-4, "perturbations differ by {error}");

    // Cached generation runs on the GPU backend and stops at its limit.
    let options = GenerateOptions {
        max_new_tokens: 6,
        sampling: Sampling::GREEDY,
        eos: vec![],
        stop: vec![],
        stop_rule: StopRule::Suffix,
    };
    let generated = generate(&lora_model(&gpu, 0.0), &[3, 9, 14], &options, |_| {});
    assert_eq!(generated.tokens.len(), 6);
}

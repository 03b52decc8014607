//! The LLM stack on burn-wgpu (lavapipe in CI, a GPU elsewhere) agrees with the CPU backend:
//! the forward pass, LoRA training steps (plain and Booster), Vaccine's perturbation and cached
//! generation.

use burn::tensor::{Device, Int, Tensor, TensorData};
use fuselab_ml::llm::defence::{BoosterConfig, vaccine_perturbation};
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule, generate};
use fuselab_ml::llm::lora::{self, LoraConfig};
use fuselab_ml::llm::model::{ForwardOptions, Llama, LlamaConfig};
use fuselab_ml::llm::train::{
    Batch, Encoded, Method, Objective, OptimConfig, Schedule, TrainConfig, Trainer, host, lora_only,
};
use fuselab_ml::{Compute, open};

fn model(device: &Device) -> Llama {
    let config = LlamaConfig {
        max_position_embeddings: 64,
        ..LlamaConfig::tiny(40)
    };
    let mut model = config.init(device, 21).unwrap();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: ["q_proj", "v_proj", "up_proj", "down_proj"]
            .map(str::to_owned)
            .to_vec(),
    };
    lora::attach(&mut model, &lora, 5, &|_| true).unwrap();
    model.visit_mut(&mut |name, param| {
        if name.contains("lora_B") {
            *param = param.clone().ones_like().mul_scalar(0.01);
        }
    });
    model
}

fn examples(offset: usize) -> Vec<Encoded> {
    (0..8)
        .map(|i| {
            let ids: Vec<u32> = (0..7 + i % 3)
                .map(|k| ((i * 5 + k * 3 + offset) % 39 + 1) as u32)
                .collect();
            let labels = ids
                .iter()
                .enumerate()
                .map(|(k, &id)| if k < 2 { -100 } else { i64::from(id) })
                .collect();
            Encoded {
                ids,
                labels,
                task: 0,
            }
        })
        .collect()
}

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
        seed: 4,
    };
    Trainer::new(
        model(device),
        Objective::Lm,
        config,
        examples(0),
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
        model(device)
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
        harmful: examples(11),
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
    let batch = Batch::pad(&examples(3).iter().collect::<Vec<_>>(), 0, 1);
    let flex_delta: Vec<f32> = vaccine_perturbation(&model(&cpu), &batch, 1.0)
        .iter()
        .flat_map(|t| host(t).1)
        .collect();
    let wgpu_delta: Vec<f32> = vaccine_perturbation(&model(&gpu), &batch, 1.0)
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
    let generated = generate(&model(&gpu), &[3, 9, 14], &options, |_| {});
    assert_eq!(generated.tokens.len(), 6);
}

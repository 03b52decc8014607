//! Toy data and a small adapted model shared by the LLM tests.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use burn::tensor::Device;
use fuselab_ml::llm::lora::{self, LoraConfig};
use fuselab_ml::llm::model::{Llama, LlamaConfig};
use fuselab_ml::llm::train::Encoded;

/// `n` examples over a 40-token vocabulary, 6 to 8 tokens long, the first two positions
/// ignored by the loss; `offset` shifts the ids so sets differ.
pub fn toy_examples(n: usize, offset: usize) -> Vec<Encoded> {
    (0..n)
        .map(|i| {
            let ids: Vec<u32> = (0..6 + i % 3)
                .map(|k| ((i * 7 + k * 3 + offset) % 39 + 1) as u32)
                .collect();
            let labels = ids
                .iter()
                .enumerate()
                .map(|(k, &id)| if k < 2 { -100 } else { i64::from(id) })
                .collect();
            Encoded {
                ids,
                labels,
                task: i % 3,
            }
        })
        .collect()
}

/// The tiny Llama (vocabulary 40) with rank-4 adapters on q, v, up and down whose B is 0.01
/// everywhere, so the adapters change the output from the first step.
pub fn lora_model(device: &Device, dropout: f64) -> Llama {
    let config = LlamaConfig {
        max_position_embeddings: 64,
        ..LlamaConfig::tiny(40)
    };
    let mut model = config.init(device, 11).unwrap();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout,
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

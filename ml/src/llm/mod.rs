//! The LLM stack for H3Fusion, Booster and Lisa: GGUF weights and their tokenizer, a trainable
//! Llama with `LoRA` and a mixture-of-experts MLP, generation, one training loop for every
//! method, and H3Fusion's assembly and evaluation.

pub mod defence;
pub mod fusion;
pub mod generate;
pub mod gguf;
pub mod h3fusion;
pub mod judge;
pub mod load;
pub mod lora;
pub mod model;
pub mod range;
#[cfg(not(target_arch = "wasm32"))]
pub mod tokenizer;
pub mod train;

use burn::tensor::Tensor;

/// A tensor's values on the host as `f32` (read without its autodiff graph).
///
/// # Panics
/// Never: the data are converted to `f32` before they are read.
#[must_use]
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .inner()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("data converted to f32 reads back as f32")
}

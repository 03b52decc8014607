//! The LLM stack for H3Fusion, Booster and Lisa: GGUF weights and their tokenizer, a trainable
//! Llama with `LoRA` and a mixture-of-experts MLP, generation, one training loop for every
//! method, and H3Fusion's assembly and evaluation.

pub mod generate;
pub mod gguf;
pub mod h3fusion;
pub mod load;
pub mod lora;
pub mod model;
#[cfg(not(target_arch = "wasm32"))]
pub mod tokenizer;
pub mod train;

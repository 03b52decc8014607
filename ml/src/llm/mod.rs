//! The LLM stack (Llama-family models for H3Fusion, Booster and Lisa): so far the GGUF reader
//! for SmolLM2's weights and tokenizer (`tokenizer`, natively only).

pub mod gguf;
#[cfg(not(target_arch = "wasm32"))]
pub mod tokenizer;

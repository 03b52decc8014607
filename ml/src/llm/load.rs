//! Building a [`Llama`] from weight files: GGUF (llama.cpp's names, dequantised to `f32`) and
//! Hugging Face checkpoints given as named `f32` tensors in `PyTorch` layout (the backend reads
//! the `*.safetensors` shards with burn-store and hands the tensors over).

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use thiserror::Error;

use super::gguf::{Gguf, GgufError};
use super::model::{
    Attention, Block, Linear, Llama, LlamaConfig, Mlp, ModelError, RopeStyle, SwiGlu,
};

/// Why a model could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The GGUF file is malformed or lacks metadata.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The configuration or a weight is wrong.
    #[error("{file}: {source}")]
    Model {
        /// The file or directory.
        file: String,
        /// What is wrong.
        source: ModelError,
    },
}

/// The configuration a GGUF file of architecture `llama` describes. GGUF's q/k rows are
/// permuted for interleaved rotary pairs.
///
/// # Errors
/// [`GgufError::Metadata`] when a key is missing or the architecture is not `llama`.
pub fn gguf_config(gguf: &Gguf) -> Result<LlamaConfig, GgufError> {
    let arch = gguf.string("general.architecture")?;
    if arch != "llama" {
        return Err(GgufError::Metadata {
            file: gguf.file.clone(),
            key: "general.architecture".to_owned(),
            what: format!("`{arch}`; fuselab loads `llama` models"),
        });
    }
    let uint = |key: &str| -> Result<usize, GgufError> {
        gguf.uint(&format!("llama.{key}")).map(|v| v as usize)
    };
    let heads = uint("attention.head_count")?;
    Ok(LlamaConfig {
        vocab_size: gguf.strings("tokenizer.ggml.tokens")?.len(),
        hidden_size: uint("embedding_length")?,
        intermediate_size: uint("feed_forward_length")?,
        num_hidden_layers: uint("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: uint("attention.head_count_kv").unwrap_or(heads),
        rope_theta: gguf.float("llama.rope.freq_base").unwrap_or(10_000.0),
        rms_norm_eps: gguf.float("llama.attention.layer_norm_rms_epsilon")?,
        tie_word_embeddings: gguf.tensor("output.weight").is_none(),
        rope_style: RopeStyle::Interleaved,
        max_position_embeddings: uint("context_length")?,
    })
}

/// Shapes and values by name, as a checkpoint provides them.
type Source<'a> = dyn FnMut(&str) -> Option<(Vec<usize>, Vec<f32>)> + 'a;

/// Builds the model from a GGUF file (every tensor dequantised to `f32`).
///
/// # Errors
/// [`LoadError`] on missing metadata, a missing tensor or a wrong shape.
pub fn from_gguf(gguf: &Gguf, device: &Device) -> Result<Llama, LoadError> {
    let config = gguf_config(gguf)?;
    let file = gguf.file.clone();
    let mut source = |name: &str| {
        let gguf_name = gguf_name(name)?;
        let info = gguf.tensor(&gguf_name)?;
        Some((info.shape.clone(), gguf.dequantize(info)))
    };
    build(&config, &mut source, device).map_err(|source| LoadError::Model { file, source })
}

/// llama.cpp's name for a Hugging Face weight name.
fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_owned());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let part = match part {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}"))
}

/// Builds the model from Hugging Face names in `PyTorch` layout (`[out, in]` projections).
///
/// # Errors
/// [`ModelError`] on an inconsistent configuration, a missing tensor or a wrong shape.
pub fn from_hf_tensors<S: std::hash::BuildHasher>(
    config: &LlamaConfig,
    tensors: &mut HashMap<String, (Vec<usize>, Vec<f32>), S>,
    device: &Device,
) -> Result<Llama, ModelError> {
    build(config, &mut |name| tensors.remove(name), device)
}

fn build(config: &LlamaConfig, source: &mut Source, device: &Device) -> Result<Llama, ModelError> {
    config.validate()?;
    let d = config.hidden_size;
    let ffn = config.intermediate_size;
    let kv = config.num_key_value_heads * config.head_dim();
    let mut take = |name: String, expected: [usize; 2], transpose: bool| {
        let (shape, values) = source(&name).ok_or_else(|| ModelError::Weight {
            name: name.clone(),
            what: "missing".to_owned(),
        })?;
        let stored = if transpose {
            [expected[1], expected[0]]
        } else {
            expected
        };
        let matches = shape == stored || (stored[0] == 1 && shape == [stored[1]]);
        if !matches || stored[0].checked_mul(stored[1]) != Some(values.len()) {
            return Err(ModelError::Weight {
                name,
                what: format!("shape {shape:?}, expected {stored:?}"),
            });
        }
        let tensor = Tensor::<2>::from_data(TensorData::new(values, stored), device);
        Ok(if transpose {
            tensor.transpose()
        } else {
            tensor
        })
    };
    // Grown per layer, not reserved: the layer count comes from the file's header, and a missing
    // layer ends the loop long before a header's 2^63 would be reached.
    let mut blocks = Vec::new();
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut linear = |part: &str, shape: [usize; 2]| {
            take(format!("{p}.{part}.weight"), shape, true).map(Linear::new)
        };
        let attention = Attention {
            q: linear("self_attn.q_proj", [d, d])?,
            k: linear("self_attn.k_proj", [d, kv])?,
            v: linear("self_attn.v_proj", [d, kv])?,
            o: linear("self_attn.o_proj", [d, d])?,
        };
        let mlp = SwiGlu {
            gate: linear("mlp.gate_proj", [d, ffn])?,
            up: linear("mlp.up_proj", [d, ffn])?,
            down: linear("mlp.down_proj", [ffn, d])?,
        };
        blocks.push(Block {
            input_norm: take(format!("{p}.input_layernorm.weight"), [1, d], false)?,
            attention,
            post_norm: take(
                format!("{p}.post_attention_layernorm.weight"),
                [1, d],
                false,
            )?,
            mlp: Mlp::Dense(mlp),
        });
    }
    let embed = take(
        "model.embed_tokens.weight".to_owned(),
        [config.vocab_size, d],
        false,
    )?;
    let norm = take("model.norm.weight".to_owned(), [1, d], false)?;
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        Some(take(
            "lm_head.weight".to_owned(),
            [d, config.vocab_size],
            true,
        )?)
    };
    Ok(Llama {
        config: config.clone(),
        embed,
        blocks,
        norm,
        lm_head,
        added: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/targets/gguf.rs`: a header declaring 2^62 layers reserved 2^62 blocks
    /// before the first weight was looked up, aborting the process.
    #[test]
    fn a_huge_declared_layer_count_is_a_missing_weight_not_an_abort() {
        let mut config = LlamaConfig::tiny(16);
        config.num_hidden_layers = 1 << 62;
        let error = from_hf_tensors(&config, &mut HashMap::new(), &Device::flex()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("model.layers.0.self_attn.q_proj.weight`: missing"),
            "{error}"
        );
    }
}

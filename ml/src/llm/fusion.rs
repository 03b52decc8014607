//! LLM-TOPLA-Summary on a decoder-only model: the fusion prompt's marker tokens added to the
//! tokenizer and the model, and the reference's teacher-forced "prediction" (the argmax of each
//! position given the gold prefix), kept for `--compat llm-topla` beside real generation.

use burn::tensor::{Int, Tensor, TensorData};
use thiserror::Error;

use super::model::{ForwardOptions, Llama};

/// The markers could not be added.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MarkerError {
    /// The tokenizer already knows a marker, or numbers the new ones apart from the model.
    #[error("marker `{marker}`: {what}")]
    Clash {
        /// The marker.
        marker: String,
        /// What went wrong.
        what: String,
    },
}

/// Adds `markers` to `tokenizer` as special tokens and to `model` as trainable rows after its
/// vocabulary (seeded, `spread` as [`Llama::add_tokens`] takes it); returns their ids.
///
/// # Errors
/// [`MarkerError::Clash`] when the tokenizer already has a marker, or its new ids do not follow
/// the model's vocabulary.
#[cfg(not(target_arch = "wasm32"))]
pub fn add_markers(
    tokenizer: &mut tokenizers::Tokenizer,
    model: &mut Llama,
    markers: &[String],
    seed: u64,
    spread: f32,
) -> Result<Vec<u32>, MarkerError> {
    for marker in markers {
        if tokenizer.token_to_id(marker).is_some() {
            return Err(MarkerError::Clash {
                marker: marker.clone(),
                what: "the tokenizer already has it".to_owned(),
            });
        }
    }
    let first = model.vocab_size();
    let added: Vec<tokenizers::AddedToken> = markers
        .iter()
        .map(|m| tokenizers::AddedToken::from(m.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&added);
    let mut ids = Vec::with_capacity(markers.len());
    for (i, marker) in markers.iter().enumerate() {
        let id = tokenizer.token_to_id(marker);
        let expected = u32::try_from(first + i).ok();
        if id.is_none() || id != expected {
            return Err(MarkerError::Clash {
                marker: marker.clone(),
                what: format!(
                    "the tokenizer numbers it {id:?}, but the model's vocabulary ends at {first}"
                ),
            });
        }
        ids.extend(id);
    }
    model.add_tokens(markers.len(), seed, spread);
    Ok(ids)
}

/// The reference's evaluation: one forward pass over `prompt + target`, and at each target
/// position the argmax given the gold tokens before it. Returns one id per target token.
///
/// # Shapes
/// One sequence of `prompt.len() + target.len()` ids.
#[must_use]
pub fn teacher_forced(model: &Llama, prompt: &[u32], target: &[u32]) -> Vec<u32> {
    if prompt.is_empty() || target.is_empty() {
        return Vec::new();
    }
    let device = model.device();
    let ids: Vec<i64> = prompt
        .iter()
        .chain(target)
        .map(|&id| i64::from(id))
        .collect();
    let t = ids.len();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, t]), &device);
    let logits = model
        .forward(
            input,
            None,
            ForwardOptions {
                train: false,
                last_only: false,
            },
        )
        .logits; // [1, t, vocab]
    let vocab = model.vocab_size();
    // Position p predicts token p + 1: the target's tokens come from prompt.len() - 1 onwards.
    let picked = logits
        .reshape([t, vocab])
        .narrow(0, prompt.len() - 1, target.len())
        .argmax(1); // [target, 1]
    picked
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default()
        .into_iter()
        .map(|id| u32::try_from(id).unwrap_or(0))
        .collect()
}

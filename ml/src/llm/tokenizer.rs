//! SmolLM2's tokenizer, built from the GGUF metadata with Hugging Face's `tokenizers` crate: a
//! GPT-2-style byte-level BPE (`tokenizer.ggml.model = gpt2`) whose pre-tokenizer splits digits
//! one by one before the byte-level split (llama.cpp's `smollm` pre-tokenizer), with the file's
//! control tokens (`<|im_start|>`, `<|im_end|>`, …) as special tokens. Natively only.

use thiserror::Error;
use tokenizers::{
    AddedToken, Tokenizer,
    models::TrainerWrapper,
    models::bpe::{BPE, BpeTrainerBuilder, Vocab},
    pre_tokenizers::{
        PreTokenizerWrapper, byte_level::ByteLevel, digits::Digits, sequence::Sequence,
    },
};

use super::gguf::{Gguf, GgufError, Value};
use super::train::Codec;

/// A GGUF file whose tokenizer cannot be built.
#[derive(Debug, Error)]
pub enum TokenizerError {
    /// Missing or mistyped metadata.
    #[error(transparent)]
    Metadata(#[from] GgufError),
    /// Not a tokenizer this builder knows.
    #[error(
        "{file}: tokenizer `{model}` (pre-tokenizer `{pre}`); fuselab builds `gpt2` tokenizers"
    )]
    Unsupported {
        /// The file.
        file: String,
        /// `tokenizer.ggml.model`.
        model: String,
        /// `tokenizer.ggml.pre`.
        pre: String,
    },
    /// A merge that is not two tokens separated by a space.
    #[error("{file}: merge {index} is `{merge}`, expected two tokens separated by one space")]
    Merge {
        /// The file.
        file: String,
        /// Its position.
        index: usize,
        /// The text.
        merge: String,
    },
    /// The `tokenizers` crate refused the vocabulary.
    #[error("{file}: the BPE model could not be built: {reason}")]
    Build {
        /// The file.
        file: String,
        /// What the crate reported.
        reason: String,
    },
}

/// llama.cpp's token type of control tokens.
const CONTROL: i64 = 3;

/// The tokenizer stored in a GGUF file's metadata.
///
/// # Errors
/// [`TokenizerError`] naming the file and what is missing or unsupported.
pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Tokenizer, TokenizerError> {
    let model = gguf.string("tokenizer.ggml.model")?;
    let pre = gguf.string("tokenizer.ggml.pre").unwrap_or("default");
    if model != "gpt2" {
        return Err(TokenizerError::Unsupported {
            file: gguf.file.clone(),
            model: model.to_owned(),
            pre: pre.to_owned(),
        });
    }
    let tokens = gguf.strings("tokenizer.ggml.tokens")?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some(((*t).to_owned(), u32::try_from(i).ok()?)))
        .collect();
    let merges = gguf
        .strings("tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(index, merge)| {
            merge
                .split_once(' ')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains(' '))
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| TokenizerError::Merge {
                    file: gguf.file.clone(),
                    index,
                    merge: (*merge).to_owned(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| TokenizerError::Build {
            file: gguf.file.clone(),
            reason: e.to_string(),
        })?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let split: Vec<PreTokenizerWrapper> = if pre == "smollm" {
        vec![Digits::new(true).into(), byte_level.into()]
    } else {
        vec![byte_level.into()]
    };
    tokenizer.with_pre_tokenizer(Some(Sequence::new(split)));
    tokenizer.with_decoder(Some(byte_level));
    let specials: Vec<AddedToken> = match gguf.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(kinds)) => kinds
            .iter()
            .zip(&tokens)
            .filter(|(kind, _)| matches!(kind, Value::Int(CONTROL)))
            .map(|(_, token)| AddedToken::from((*token).to_owned(), true))
            .collect(),
        _ => Vec::new(),
    };
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// A `tokenizers` tokenizer as the trainers' [`Codec`].
#[derive(Debug, Clone)]
pub struct TokenizerCodec(pub Tokenizer);

impl Codec for TokenizerCodec {
    fn encode(&self, text: &str) -> Vec<u32> {
        self.0
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids, true).unwrap_or_default()
    }
}

/// Trains a byte-level BPE of `vocab_size` tokens on `texts` (the tiny test and demo models'
/// tokenizer), with `specials` as special tokens numbered first.
///
/// # Errors
/// [`TokenizerError::Build`] when the `tokenizers` crate's trainer fails.
pub fn train_bpe(
    texts: &[String],
    vocab_size: usize,
    specials: &[&str],
) -> Result<Tokenizer, TokenizerError> {
    let fail = |e: tokenizers::Error| TokenizerError::Build {
        file: "(trained tokenizer)".to_owned(),
        reason: e.to_string(),
    };
    let added: Vec<AddedToken> = specials
        .iter()
        .map(|s| AddedToken::from((*s).to_owned(), true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(added.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    let byte_level = ByteLevel::new(false, true, true);
    tokenizer.with_pre_tokenizer(Some(byte_level));
    tokenizer.with_decoder(Some(byte_level));
    tokenizer.train(&mut trainer, texts.iter()).map_err(fail)?;
    tokenizer.add_special_tokens(&added);
    Ok(tokenizer)
}

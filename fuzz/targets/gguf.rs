//! GGUF files (`fuselab llm generate`, the alignment runs' `base.model`): the header, metadata
//! and tensor table ([`Gguf::parse`], which refuses a tensor whose data lies outside the file),
//! every tensor dequantised, the typed metadata getters on every key, the model configuration
//! the loader reads from the metadata and the model built from it on the CPU
//! ([`load::from_gguf`], as `llm generate` does), and the tokenizer built from it, which then
//! encodes and decodes a short text.

use fuselab_ml::Device;
use fuselab_ml::llm::gguf::Gguf;
use fuselab_ml::llm::{load, tokenizer};

/// The most elements a tensor may have to be dequantised here: the parser already bounds a
/// tensor by the file's size (at most ~1.8 values per byte, `Q4_0`), so with `-max_len` this is
/// never reached; it keeps larger inputs handed to the replay fast.
pub const MAX_FUZZ_ELEMENTS: usize = 1 << 20;

/// What the tokenizer encodes: ASCII, digits, a control token, non-ASCII.
const TEXT: &str = "<|im_start|>user 12 ab, né 😀\n<|im_end|>";

/// See the module documentation.
pub fn run(data: &[u8]) {
    let Ok(gguf) = Gguf::parse(data, "fuzz.gguf") else {
        return;
    };
    for tensor in &gguf.tensors {
        if tensor.len() <= MAX_FUZZ_ELEMENTS {
            let values = gguf.dequantize(tensor);
            assert_eq!(values.len(), tensor.len(), "tensor `{}`", tensor.name);
        }
    }
    for key in gguf.metadata.keys() {
        let _ = gguf.uint(key);
        let _ = gguf.float(key);
        let _ = gguf.string(key);
        let _ = gguf.strings(key);
    }
    if let Ok(config) = load::gguf_config(&gguf) {
        let _ = config.validate();
    }
    let _ = load::from_gguf(&gguf, &Device::flex());
    if let Ok(tokenizer) = tokenizer::from_gguf(&gguf)
        && let Ok(encoding) = tokenizer.encode(TEXT, false)
    {
        let _ = tokenizer.decode(encoding.get_ids(), false);
    }
}

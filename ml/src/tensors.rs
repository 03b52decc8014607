//! Named `f32` tensors and their exchange format, safetensors (the `F32` subset, read and
//! written by Hugging Face's `safetensors` crate): the server converts weight files whose
//! readers need a file system (`PyTorch` checkpoints) into it, and the browser reads it back
//! with the same code as the native side.

use std::collections::{BTreeMap, HashMap};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use thiserror::Error;

/// Named `f32` tensors: shape and row-major values.
pub type NamedTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// A safetensors file that cannot be read as named `f32` tensors.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}: {what}")]
pub struct SafetensorsError {
    /// The file's name.
    pub file: String,
    /// What is wrong, with the tensor's name where one is involved.
    pub what: String,
}

/// Serialises tensors, names sorted so that equal inputs give equal bytes.
///
/// # Panics
/// When a tensor's values do not match its shape (a bug in the caller).
pub fn write_safetensors(tensors: &NamedTensors) -> Vec<u8> {
    let sorted: BTreeMap<&String, &(Vec<usize>, Vec<f32>)> = tensors.iter().collect();
    let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> = sorted
        .into_iter()
        .map(|(name, (shape, values))| {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, data)
        })
        .collect();
    let views = bytes.iter().map(|(name, shape, data)| {
        let view = TensorView::new(Dtype::F32, (*shape).clone(), data)
            .unwrap_or_else(|e| panic!("tensor `{name}`: shape and values disagree ({e})"));
        (name.as_str(), view)
    });
    // The views were checked above; serialising them into memory cannot fail otherwise.
    safetensors::serialize(views, None).unwrap_or_else(|e| panic!("serialising tensors: {e}"))
}

/// Reads a safetensors file whose tensors are all `F32`.
///
/// # Errors
/// A truncated file, a header that is not the format's JSON, a tensor of another type, offsets
/// that overlap, leave gaps or run past the end, or a shape that does not match its bytes: the
/// `safetensors` crate's message, with the file's name.
pub fn read_safetensors(bytes: &[u8], file: &str) -> Result<NamedTensors, SafetensorsError> {
    let fail = |what: String| SafetensorsError {
        file: file.to_owned(),
        what,
    };
    let parsed = SafeTensors::deserialize(bytes)
        .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
    let mut out = NamedTensors::new();
    for (name, view) in parsed.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(fail(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NamedTensors {
        NamedTensors::from([
            (
                "b.weight".to_owned(),
                (vec![2, 3], vec![1.0, -2.5, 3.0, 0.0, 1e-30, f32::MAX]),
            ),
            ("a".to_owned(), (vec![1], vec![7.0])),
            ("scalar".to_owned(), (vec![], vec![0.5])),
        ])
    }

    #[test]
    fn round_trip_is_exact_and_deterministic() {
        let bytes = write_safetensors(&sample());
        assert_eq!(read_safetensors(&bytes, "x").unwrap(), sample());
        assert_eq!(bytes, write_safetensors(&sample()));
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(header % 8, 0);
    }

    /// The layout the `safetensors` Python package writes for `{"a": torch.tensor([7.0])}`.
    #[test]
    fn reads_the_reference_layout() {
        let header = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"format":"pt"}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&7.0_f32.to_le_bytes());
        let tensors = read_safetensors(&bytes, "ref.safetensors").unwrap();
        assert_eq!(tensors["a"], (vec![1], vec![7.0]));
    }

    #[test]
    fn bad_files_are_named_errors() {
        let good = write_safetensors(&sample());
        let error = |bytes: &[u8]| {
            read_safetensors(bytes, "w.safetensors")
                .unwrap_err()
                .to_string()
        };
        for cut in [&good[..4], &good[..good.len() - 1]] {
            assert!(
                error(cut).starts_with("w.safetensors: not a safetensors file"),
                "{}",
                error(cut)
            );
        }
        let mut long = good;
        long.push(0);
        assert!(error(&long).starts_with("w.safetensors: not a safetensors file"));
        let header = br#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 4]);
        assert!(error(&bytes).contains("tensor `h` is F16, expected F32"));
    }
}

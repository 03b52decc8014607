//! Named `f32` tensors and their exchange format, safetensors (the `F32` subset): the server
//! converts weight files whose readers need a file system (`PyTorch` checkpoints) into it, and
//! the browser reads it back with the same code as the native side.
//!
//! Layout: an 8-byte little-endian header length, a JSON header
//! `{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}`, then the
//! little-endian data; offsets are relative to the end of the header.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
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
    let mut header = Map::new();
    let mut offset = 0;
    for (name, (shape, values)) in &sorted {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "tensor `{name}`: shape and values disagree"
        );
        let end = offset + values.len() * 4;
        header.insert(
            (*name).clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = Value::Object(header).to_string().into_bytes();
    // The format asks for the data to start 8-byte aligned; the header is padded with spaces.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for (_, values) in sorted.values() {
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

/// Reads a safetensors file whose tensors are all `F32`.
///
/// # Errors
/// A truncated file, a header that is not the format's JSON, a tensor of another type, offsets
/// that overlap, leave gaps or run past the end, or a shape that does not match its bytes.
pub fn read_safetensors(bytes: &[u8], file: &str) -> Result<NamedTensors, SafetensorsError> {
    let fail = |what: String| SafetensorsError {
        file: file.to_owned(),
        what,
    };
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(fail(format!(
            "{} bytes: too short for the 8-byte header length",
            bytes.len()
        )));
    };
    let length = usize::try_from(u64::from_le_bytes(*length))
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or_else(|| {
            fail(format!(
                "the header length runs past the end of the file ({} bytes)",
                bytes.len()
            ))
        })?;
    let (header, data) = rest.split_at(length);
    let header: Map<String, Value> = serde_json::from_slice(header)
        .map_err(|e| fail(format!("the header is not a JSON object ({e})")))?;
    let mut spans = Vec::new();
    let mut out = NamedTensors::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            entry
                .get(key)
                .ok_or_else(|| fail(format!("tensor `{name}` has no `{key}`")))
        };
        let dtype = field("dtype")?;
        if dtype != "F32" {
            return Err(fail(format!(
                "tensor `{name}` is {dtype}, expected \"F32\""
            )));
        }
        let numbers = |key: &str| -> Result<Vec<usize>, SafetensorsError> {
            field(key)?
                .as_array()
                .and_then(|list| {
                    list.iter()
                        .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    fail(format!(
                        "tensor `{name}`: `{key}` is not a list of non-negative integers"
                    ))
                })
        };
        let shape = numbers("shape")?;
        let &[begin, end] = numbers("data_offsets")?.as_slice() else {
            return Err(fail(format!(
                "tensor `{name}`: `data_offsets` must hold two numbers"
            )));
        };
        let elements = shape.iter().try_fold(1_usize, |n, &d| n.checked_mul(d));
        if begin > end
            || end > data.len()
            || elements.and_then(|n| n.checked_mul(4)) != Some(end - begin)
        {
            return Err(fail(format!(
                "tensor `{name}`: bytes {begin}..{end} do not hold shape {shape:?} as F32 within the {} data bytes",
                data.len()
            )));
        }
        let values = data[begin..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        spans.push((begin, end, name.clone()));
        out.insert(name, (shape, values));
    }
    spans.sort_unstable();
    let mut at = 0;
    for (begin, end, name) in &spans {
        if *begin != at {
            return Err(fail(format!(
                "tensor `{name}` starts at data byte {begin}, expected {at} (tensors must tile the data)"
            )));
        }
        at = *end;
    }
    if at != data.len() {
        return Err(fail(format!(
            "{} data bytes after the last tensor",
            data.len() - at
        )));
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
        assert!(error(&good[..4]).starts_with("w.safetensors: 4 bytes"));
        assert!(error(&good[..good.len() - 1]).contains("do not hold shape"));
        let mut long = good;
        long.push(0);
        assert!(error(&long).contains("1 data bytes after the last tensor"));
        let header = br#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 4]);
        assert!(error(&bytes).contains("tensor `h` is \"F16\", expected \"F32\""));
    }
}

//! A reader of GGUF (llama.cpp's model format, version 2 and 3): the metadata, the tensor table
//! and the tensors, dequantised to `f32` (F32, F16, BF16, `Q4_0`, `Q4_1`, `Q8_0`). From bytes; no I/O.
//!
//! Layout: `GGUF`, version (u32), tensor count (u64), metadata count (u64); the metadata as
//! (key, type, value); the tensor table as (name, dims innermost first, type, offset); then,
//! aligned to `general.alignment` (32 by default), the tensor data. All little-endian.

use std::collections::BTreeMap;

use thiserror::Error;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned integers of any width.
    Uint(u64),
    /// Signed integers of any width.
    Int(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array of values of one type.
    Array(Vec<Value>),
}

/// How a tensor's elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// bfloat16.
    Bf16,
    /// Blocks of 32: an f16 scale and 32 4-bit values, `(q − 8)·d`.
    Q4_0,
    /// Blocks of 32: f16 scale and minimum and 32 4-bit values, `q·d + m`.
    Q4_1,
    /// Blocks of 32: an f16 scale and 32 signed bytes, `q·d`.
    Q8_0,
}

impl GgmlType {
    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::Bf16,
            _ => return None,
        })
    }

    /// Bytes per block and elements per block.
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (4, 1),
            Self::F16 | Self::Bf16 => (2, 1),
            Self::Q4_0 => (18, 32),
            Self::Q4_1 => (20, 32),
            Self::Q8_0 => (34, 32),
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Its storage type.
    pub kind: GgmlType,
    /// Its dimensions, outermost first (row-major: `[rows, columns]` for a matrix).
    pub shape: Vec<usize>,
    /// Where its data starts in the file.
    pub offset: usize,
    /// How many bytes it takes.
    pub bytes: usize,
}

impl TensorInfo {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A GGUF file that is not what it should be.
#[derive(Debug, Error, PartialEq)]
pub enum GgufError {
    /// Malformed bytes.
    #[error("{file}: at byte {at}: {what}")]
    Invalid {
        /// The file's name.
        file: String,
        /// Where reading stopped.
        at: usize,
        /// What was expected.
        what: String,
    },
    /// A metadata key the model needs is missing or of another type.
    #[error("{file}: metadata `{key}`: {what}")]
    Metadata {
        /// The file's name.
        file: String,
        /// The key.
        key: String,
        /// What was expected.
        what: String,
    },
}

/// A parsed GGUF file, borrowing its bytes.
#[derive(Debug)]
pub struct Gguf<'a> {
    /// The file's name, for errors.
    pub file: String,
    /// The format version (2 or 3).
    pub version: u32,
    /// The metadata, by key.
    pub metadata: BTreeMap<String, Value>,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorInfo>,
    bytes: &'a [u8],
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    file: &'a str,
}

impl<'a> Cursor<'a> {
    fn fail(&self, what: impl Into<String>) -> GgufError {
        GgufError::Invalid {
            file: self.file.to_owned(),
            at: self.at,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.fail(format!(
                    "{what}: needs {n} bytes, the file ends after {}",
                    self.bytes.len() - self.at.min(self.bytes.len())
                ))
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in memory: at most `limit`.
    fn count(&mut self, what: &str, limit: usize) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= limit)
            .ok_or_else(|| self.fail(format!("{what}: {n} is more than this file can hold")))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.count(what, self.bytes.len())?;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.fail(format!("{what}: not UTF-8")))
    }

    fn value(&mut self, kind: u32, key: &str) -> Result<Value, GgufError> {
        Ok(match kind {
            0 => Value::Uint(u64::from(self.array::<1>(key)?[0])),
            1 => Value::Int(i64::from(i8::from_le_bytes(self.array(key)?))),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.array(key)?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.array(key)?))),
            4 => Value::Uint(u64::from(self.u32(key)?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.array(key)?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.array(key)?))),
            7 => Value::Bool(self.array::<1>(key)?[0] != 0),
            8 => Value::String(self.string(key)?),
            9 => {
                let item = self.u32(key)?;
                if item == 9 {
                    return Err(self.fail(format!("`{key}`: arrays of arrays are not supported")));
                }
                let n = self.count(key, self.bytes.len())?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(item, key)?);
                }
                Value::Array(items)
            }
            10 => Value::Uint(self.u64(key)?),
            11 => Value::Int(i64::from_le_bytes(self.array(key)?)),
            12 => Value::Float(f64::from_le_bytes(self.array(key)?)),
            other => return Err(self.fail(format!("`{key}`: unknown value type {other}"))),
        })
    }
}

/// IEEE half to single precision.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise the mantissa.
            let shift = mantissa.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((mantissa << shift) & 0x3ff) << 13)
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, _) => sign | 0x7fc0_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(value)
}

impl<'a> Gguf<'a> {
    /// Parses the header, metadata and tensor table of `bytes`, checking that every tensor's
    /// data lies inside the file.
    ///
    /// # Errors
    /// [`GgufError::Invalid`] naming the byte where the file stops making sense.
    pub fn parse(bytes: &'a [u8], file: &str) -> Result<Self, GgufError> {
        let mut c = Cursor { bytes, at: 0, file };
        if c.take(4, "the magic")? != b"GGUF" {
            c.at = 0;
            return Err(c.fail("not a GGUF file: it does not start with `GGUF`"));
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(c.fail(format!(
                "GGUF version {version}; this reader reads versions 2 and 3"
            )));
        }
        let tensor_count = c.count("the tensor count", bytes.len())?;
        let kv_count = c.count("the metadata count", bytes.len())?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = c.string("a metadata key")?;
            let kind = c.u32(&key)?;
            let value = c.value(kind, &key)?;
            metadata.insert(key, value);
        }
        let mut table = Vec::with_capacity(tensor_count.min(1 << 16));
        for _ in 0..tensor_count {
            let name = c.string("a tensor name")?;
            let dims = c.u32(&name)? as usize;
            if dims > 8 {
                return Err(c.fail(format!("tensor `{name}`: {dims} dimensions")));
            }
            let mut shape = Vec::with_capacity(dims);
            for _ in 0..dims {
                shape.push(c.count(&name, bytes.len().saturating_mul(2))?);
            }
            shape.reverse();
            let code = c.u32(&name)?;
            let kind = GgmlType::from_code(code).ok_or_else(|| {
                c.fail(format!(
                    "tensor `{name}`: ggml type {code}; this reader dequantises F32, F16, BF16, Q4_0, Q4_1 and Q8_0"
                ))
            })?;
            let offset = c.count(&name, bytes.len())?;
            table.push((name, kind, shape, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            Some(Value::Uint(a)) if *a > 0 && a.is_power_of_two() => {
                usize::try_from(*a).unwrap_or(32)
            }
            None => 32,
            Some(other) => {
                return Err(c.fail(format!(
                    "`general.alignment` is {other:?}, expected a power of two"
                )));
            }
        };
        let data = c.at.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(table.len());
        for (name, kind, shape, offset) in table {
            let elements = shape.iter().try_fold(1_usize, |n, &d| n.checked_mul(d));
            let (block_bytes, block_len) = kind.block();
            let size = elements
                .filter(|n| n % block_len == 0)
                .and_then(|n| (n / block_len).checked_mul(block_bytes));
            let start = data.checked_add(offset);
            match (size, start) {
                (Some(size), Some(start))
                    if start.checked_add(size).is_some_and(|e| e <= bytes.len()) =>
                {
                    tensors.push(TensorInfo {
                        name,
                        kind,
                        shape,
                        offset: start,
                        bytes: size,
                    });
                }
                _ => {
                    return Err(GgufError::Invalid {
                        file: file.to_owned(),
                        at: data.saturating_add(offset),
                        what: format!(
                            "tensor `{name}` ({kind:?}, shape {shape:?}) does not fit in the file's {} bytes",
                            bytes.len()
                        ),
                    });
                }
            }
        }
        Ok(Self {
            file: file.to_owned(),
            version,
            metadata,
            tensors,
            bytes,
        })
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor's values as `f32`, row-major.
    pub fn dequantize(&self, tensor: &TensorInfo) -> Vec<f32> {
        let raw = &self.bytes[tensor.offset..tensor.offset + tensor.bytes];
        let half = |b: &[u8]| f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        match tensor.kind {
            GgmlType::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            GgmlType::F16 => raw.chunks_exact(2).map(half).collect(),
            GgmlType::Bf16 => raw
                .chunks_exact(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                .collect(),
            GgmlType::Q4_0 => raw
                .chunks_exact(18)
                .flat_map(|block| {
                    let d = half(&block[..2]);
                    let q = &block[2..];
                    let low = q
                        .iter()
                        .map(move |b| f32::from(i8::try_from(b & 0xf).unwrap_or(0) - 8) * d);
                    let high = q
                        .iter()
                        .map(move |b| f32::from(i8::try_from(b >> 4).unwrap_or(0) - 8) * d);
                    low.chain(high).collect::<Vec<_>>()
                })
                .collect(),
            GgmlType::Q4_1 => raw
                .chunks_exact(20)
                .flat_map(|block| {
                    let (d, m) = (half(&block[..2]), half(&block[2..4]));
                    let q = &block[4..];
                    let low = q.iter().map(move |b| f32::from(b & 0xf) * d + m);
                    let high = q.iter().map(move |b| f32::from(b >> 4) * d + m);
                    low.chain(high).collect::<Vec<_>>()
                })
                .collect(),
            GgmlType::Q8_0 => raw
                .chunks_exact(34)
                .flat_map(|block| {
                    let d = half(&block[..2]);
                    block[2..]
                        .iter()
                        .map(move |&b| f32::from(i8::from_le_bytes([b])) * d)
                        .collect::<Vec<_>>()
                })
                .collect(),
        }
    }

    fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata
            .get(key)
            .ok_or_else(|| self.wrong(key, "missing"))
    }

    fn wrong(&self, key: &str, what: &str) -> GgufError {
        GgufError::Metadata {
            file: self.file.clone(),
            key: key.to_owned(),
            what: what.to_owned(),
        }
    }

    /// An unsigned integer from the metadata.
    ///
    /// # Errors
    /// [`GgufError::Metadata`] when it is missing or not an unsigned integer.
    pub fn uint(&self, key: &str) -> Result<u64, GgufError> {
        match self.get(key)? {
            Value::Uint(v) => Ok(*v),
            Value::Int(v) if *v >= 0 => Ok(v.unsigned_abs()),
            other => Err(self.wrong(
                key,
                &format!("expected an unsigned integer, found {other:?}"),
            )),
        }
    }

    /// A number from the metadata.
    ///
    /// # Errors
    /// [`GgufError::Metadata`] when it is missing or not a number.
    pub fn float(&self, key: &str) -> Result<f64, GgufError> {
        match self.get(key)? {
            Value::Float(v) => Ok(*v),
            // Metadata integers are small (counts, sizes), exactly representable.
            #[allow(clippy::cast_precision_loss)]
            Value::Uint(v) => Ok(*v as f64),
            other => Err(self.wrong(key, &format!("expected a number, found {other:?}"))),
        }
    }

    /// A string from the metadata.
    ///
    /// # Errors
    /// [`GgufError::Metadata`] when it is missing or not a string.
    pub fn string(&self, key: &str) -> Result<&str, GgufError> {
        match self.get(key)? {
            Value::String(v) => Ok(v),
            other => Err(self.wrong(key, &format!("expected a string, found {other:?}"))),
        }
    }

    /// An array of strings from the metadata.
    ///
    /// # Errors
    /// [`GgufError::Metadata`] when it is missing or not an array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.as_str()),
                    other => Err(self.wrong(key, &format!("expected strings, found {other:?}"))),
                })
                .collect(),
            other => Err(self.wrong(key, &format!("expected an array, found {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A small file: two metadata entries, a `Q8_0` tensor and an F32 one.
    fn sample() -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3_u32.to_le_bytes());
        out.extend_from_slice(&2_u64.to_le_bytes());
        out.extend_from_slice(&2_u64.to_le_bytes());
        string(&mut out, "general.architecture");
        out.extend_from_slice(&8_u32.to_le_bytes());
        string(&mut out, "llama");
        string(&mut out, "llama.block_count");
        out.extend_from_slice(&4_u32.to_le_bytes());
        out.extend_from_slice(&30_u32.to_le_bytes());
        // Tensor table: q (Q8_0, 32 values) at 0, n (F32, 2 values) at 34 → 64 after padding.
        string(&mut out, "q");
        out.extend_from_slice(&1_u32.to_le_bytes());
        out.extend_from_slice(&32_u64.to_le_bytes());
        out.extend_from_slice(&8_u32.to_le_bytes());
        out.extend_from_slice(&0_u64.to_le_bytes());
        string(&mut out, "n");
        out.extend_from_slice(&2_u32.to_le_bytes());
        out.extend_from_slice(&2_u64.to_le_bytes());
        out.extend_from_slice(&1_u64.to_le_bytes());
        out.extend_from_slice(&0_u32.to_le_bytes());
        out.extend_from_slice(&64_u64.to_le_bytes());
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        // Q8_0 block: d = 0.5 (f16 0x3800), values −16..16.
        out.extend_from_slice(&0x3800_u16.to_le_bytes());
        out.extend((0..32_i8).map(|i| (i - 16).to_le_bytes()[0]));
        out.resize(out.len() + 30, 0);
        out.extend_from_slice(&1.5_f32.to_le_bytes());
        out.extend_from_slice(&(-2.0_f32).to_le_bytes());
        out
    }

    #[test]
    fn a_small_file_parses_and_dequantises() {
        let bytes = sample();
        let gguf = Gguf::parse(&bytes, "sample.gguf").unwrap();
        assert_eq!(gguf.version, 3);
        assert_eq!(gguf.string("general.architecture").unwrap(), "llama");
        assert_eq!(gguf.uint("llama.block_count").unwrap(), 30);
        let q = gguf.tensor("q").unwrap();
        assert_eq!((q.kind, q.shape.clone()), (GgmlType::Q8_0, vec![32]));
        let values = gguf.dequantize(q);
        assert_eq!(values[..1], [-8.0]);
        assert_eq!(values[31..], [7.5]);
        let n = gguf.tensor("n").unwrap();
        assert_eq!(n.shape, [1, 2]);
        assert_eq!(gguf.dequantize(n), [1.5, -2.0]);
        assert_eq!(
            gguf.uint("general.architecture").unwrap_err().to_string(),
            "sample.gguf: metadata `general.architecture`: expected an unsigned integer, found String(\"llama\")"
        );
    }

    #[test]
    fn damaged_files_are_named_errors() {
        let bytes = sample();
        for cut in [0, 3, 10, 30, 60, 120, bytes.len() - 1] {
            let error = Gguf::parse(&bytes[..cut], "cut.gguf")
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("cut.gguf: at byte "), "{cut}: {error}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(
            Gguf::parse(&wrong, "x")
                .unwrap_err()
                .to_string()
                .contains("does not start with `GGUF`")
        );
        let mut future = bytes;
        future[4] = 9;
        assert!(
            Gguf::parse(&future, "x")
                .unwrap_err()
                .to_string()
                .contains("GGUF version 9")
        );
    }

    #[test]
    fn half_floats_decode() {
        for (bits, value) in [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95_f32),
            (0x0001, 5.960_464_5e-8),
            (0x7bff, 65504.0),
            (0x0000, 0.0),
        ] {
            // Exact: every value here is representable in both widths.
            assert_eq!(f16_to_f32(bits).to_bits(), value.to_bits(), "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}

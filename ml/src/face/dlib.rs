//! dlib's serialisation format (`dlib::serialize`), read from bytes.
//!
//! No specification exists; the field orders follow dlib 19.24's `serialize.h`, `dnn/core.h`,
//! `dnn/layers.h`, `dnn/tensor.h` and `shape_predictor.h` (see `docs/research/face-stack.md`).
//! Integers are packed (a control byte with the byte count in its low nibble and the sign in bit 7,
//! then the magnitude little-endian); scalar floats are an integer mantissa and exponent; tensors
//! are four packed dimensions and raw little-endian `f32`.

use thiserror::Error;

/// A malformed or unexpected dlib file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DlibError {
    /// The file ended inside a value.
    #[error("{file}: ends at byte {at} while reading {what}")]
    Truncated {
        /// The file's role.
        file: &'static str,
        /// The offset.
        at: usize,
        /// The value being read.
        what: &'static str,
    },
    /// A value is not what dlib writes there.
    #[error("{file}: byte {at}: {what}")]
    Invalid {
        /// The file's role.
        file: &'static str,
        /// The offset.
        at: usize,
        /// What was wrong, with what was expected.
        what: String,
    },
}

/// A cursor over a dlib-serialised buffer.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    file: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`; `file` names the file in errors.
    pub fn new(bytes: &'a [u8], file: &'static str) -> Self {
        Self { bytes, at: 0, file }
    }

    /// The current offset.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Whether every byte has been read.
    pub fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// An error at the current offset.
    pub fn invalid(&self, what: impl Into<String>) -> DlibError {
        DlibError::Invalid {
            file: self.file,
            at: self.at,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DlibError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(DlibError::Truncated {
                file: self.file,
                at: self.at,
                what,
            });
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A packed integer.
    ///
    /// # Errors
    /// A control byte dlib never writes, or a truncated value.
    pub fn int(&mut self) -> Result<i64, DlibError> {
        let start = self.at;
        let control = self.take(1, "an integer")?[0];
        let len = usize::from(control & 0x0f);
        if control & 0x70 != 0 || !(1..=8).contains(&len) {
            self.at = start;
            return Err(self.invalid(format!(
                "control byte {control:#04x} is not a packed integer's (1 to 8 bytes)"
            )));
        }
        let bytes = self.take(len, "an integer")?;
        let magnitude = bytes
            .iter()
            .rev()
            .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b));
        let value = i64::try_from(magnitude).map_err(|_| {
            self.invalid(format!(
                "integer magnitude {magnitude} does not fit in 64 bits"
            ))
        })?;
        Ok(if control & 0x80 == 0 { value } else { -value })
    }

    /// A packed integer that must be a non-negative count or size.
    ///
    /// # Errors
    /// As [`Reader::int`], or a negative value.
    pub fn size(&mut self, what: &str) -> Result<usize, DlibError> {
        let start = self.at;
        let v = self.int()?;
        usize::try_from(v).map_err(|_| {
            self.at = start;
            self.invalid(format!("{what} is {v}, expected a non-negative size"))
        })
    }

    /// A length-prefixed string.
    ///
    /// # Errors
    /// A truncated or non-UTF-8 string.
    pub fn string(&mut self) -> Result<String, DlibError> {
        let len = self.size("a string's length")?;
        let bytes = self.take(len, "a string")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.invalid("a string is not UTF-8"))
    }

    /// A string that must equal `expected` (a layer or object tag).
    ///
    /// # Errors
    /// Any other string.
    pub fn tag(&mut self, expected: &str) -> Result<(), DlibError> {
        let start = self.at;
        let found = self.string()?;
        if found == expected {
            Ok(())
        } else {
            self.at = start;
            Err(self.invalid(format!("found `{found}`, expected `{expected}`")))
        }
    }

    /// A scalar `float`/`double`, stored as mantissa · 2^exponent.
    ///
    /// # Errors
    /// A truncated value.
    pub fn float(&mut self) -> Result<f64, DlibError> {
        let mantissa = self.int()?;
        let exponent = self.int()?;
        if mantissa == 0 {
            return Ok(0.0);
        }
        let exponent = i32::try_from(exponent)
            .map_err(|_| self.invalid(format!("float exponent {exponent} out of range")))?;
        Ok(mantissa as f64 * 2_f64.powi(exponent))
    }

    /// A `bool`, stored as the character `'0'` or `'1'`.
    ///
    /// # Errors
    /// Any other byte.
    pub fn boolean(&mut self) -> Result<bool, DlibError> {
        match self.take(1, "a bool")?[0] {
            b'0' => Ok(false),
            b'1' => Ok(true),
            other => {
                self.at -= 1;
                Err(self.invalid(format!("bool byte {other:#04x}, expected '0' or '1'")))
            }
        }
    }

    /// A `dlib::tensor` (version 2): its dimensions (n, k, nr, nc) and values.
    ///
    /// # Errors
    /// Another version, or truncated data.
    pub fn tensor(&mut self) -> Result<([usize; 4], Vec<f32>), DlibError> {
        let version = self.int()?;
        if version != 2 {
            return Err(self.invalid(format!("tensor version {version}, expected 2")));
        }
        let mut dims = [0; 4];
        for d in &mut dims {
            *d = self.size("a tensor dimension")?;
        }
        let bytes = dims
            .iter()
            .try_fold(4_usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.invalid(format!("tensor dimensions {dims:?} overflow")))?;
        let bytes = self.take(bytes, "tensor data")?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((dims, values))
    }

    /// A `dlib::alias_tensor` (version 1): dimensions only.
    ///
    /// # Errors
    /// Another version.
    pub fn alias(&mut self) -> Result<[usize; 4], DlibError> {
        let version = self.int()?;
        if version != 1 {
            return Err(self.invalid(format!("alias_tensor version {version}, expected 1")));
        }
        let mut dims = [0; 4];
        for d in &mut dims {
            *d = self.size("an alias_tensor dimension")?;
        }
        Ok(dims)
    }

    /// A `dlib::matrix` column vector of floats (`-rows`, `-cols`, then the values).
    ///
    /// # Errors
    /// A matrix that is not a column, or truncated data.
    pub fn column(&mut self) -> Result<Vec<f32>, DlibError> {
        let rows = self.int()?;
        let cols = self.int()?;
        // dlib writes the dimensions negated (its newer matrix format).
        if rows > 0 || cols != -1 {
            return Err(self.invalid(format!(
                "matrix of {rows}×{cols} (stored negated), expected a column vector"
            )));
        }
        let rows = usize::try_from(-rows).unwrap_or(0);
        (0..rows).map(|_| self.float().map(|v| v as f32)).collect()
    }
}

/// One layer of a dlib network, with what the face models need of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// `con_`: weights `[out, in, kh, kw]` then biases `[out]`.
    Conv {
        /// Output channels.
        filters: usize,
        /// Kernel rows and columns.
        kernel: [usize; 2],
        /// Strides (y, x).
        stride: [usize; 2],
        /// Zero padding (y, x).
        padding: [usize; 2],
        /// Weights then biases, flat.
        params: Vec<f32>,
    },
    /// `affine_`: a frozen batch normalisation, γ then β.
    Affine {
        /// γ then β, flat.
        params: Vec<f32>,
    },
    /// `relu_`.
    Relu,
    /// `add_prev_`: adds the output of the matching tag.
    AddPrev,
    /// `avg_pool_` (`kernel` 0 means the whole input).
    AvgPool {
        /// Window rows and columns.
        kernel: [usize; 2],
        /// Strides (y, x).
        stride: [usize; 2],
        /// Zero padding (y, x).
        padding: [usize; 2],
    },
    /// `max_pool_`.
    MaxPool {
        /// Window rows and columns.
        kernel: [usize; 2],
        /// Strides (y, x).
        stride: [usize; 2],
        /// Zero padding (y, x).
        padding: [usize; 2],
    },
    /// `fc_` without bias: weights `[inputs, outputs]`.
    Fc {
        /// Inputs.
        inputs: usize,
        /// Outputs.
        outputs: usize,
        /// Weights, flat.
        params: Vec<f32>,
    },
    /// A `tag` or `skip` layer: dlib stores nothing for them but their place.
    TagOrSkip,
}

/// A metric-learning network: input means and size, and its layers from the input upward.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricNet {
    /// Per-channel means subtracted from the 0..255 RGB input.
    pub means: [f32; 3],
    /// The input's rows and columns.
    pub size: [usize; 2],
    /// The layers, input first.
    pub layers: Vec<Layer>,
}

fn pair(r: &mut Reader<'_>, what: &str) -> Result<[usize; 2], DlibError> {
    Ok([r.size(what)?, r.size(what)?])
}

fn layer_details(r: &mut Reader<'_>) -> Result<Layer, DlibError> {
    let start = r.position();
    let tag = r.string()?;
    Ok(match tag.as_str() {
        "con_4" => {
            let (_, params) = r.tensor()?;
            let filters = r.size("num_filters")?;
            let kernel = pair(r, "kernel size")?;
            let stride = pair(r, "stride")?;
            let padding = pair(r, "padding")?;
            r.alias()?;
            r.alias()?;
            for _ in 0..4 {
                r.float()?;
            }
            Layer::Conv {
                filters,
                kernel,
                stride,
                padding,
                params,
            }
        }
        "affine_" => {
            let (_, params) = r.tensor()?;
            r.alias()?;
            r.alias()?;
            r.int()?;
            Layer::Affine { params }
        }
        "relu_" => Layer::Relu,
        "add_prev_" => Layer::AddPrev,
        "avg_pool_2" | "max_pool_2" => {
            let kernel = pair(r, "pool size")?;
            let stride = pair(r, "pool stride")?;
            let padding = pair(r, "pool padding")?;
            if tag == "avg_pool_2" {
                Layer::AvgPool {
                    kernel,
                    stride,
                    padding,
                }
            } else {
                Layer::MaxPool {
                    kernel,
                    stride,
                    padding,
                }
            }
        }
        "fc_2" => {
            let outputs = r.size("num_outputs")?;
            let inputs = r.size("num_inputs")?;
            let (_, params) = r.tensor()?;
            r.alias()?;
            r.alias()?;
            let bias_mode = r.int()?;
            if bias_mode != 1 {
                return Err(r.invalid(format!(
                    "fc layer with bias mode {bias_mode}; only 1 (no bias) is supported"
                )));
            }
            for _ in 0..4 {
                r.float()?;
            }
            Layer::Fc {
                inputs,
                outputs,
                params,
            }
        }
        other => {
            return Err(DlibError::Invalid {
                file: r.file,
                at: start,
                what: format!("layer `{other}` is not one the face models use"),
            });
        }
    })
}

fn add_layer_trailer(r: &mut Reader<'_>) -> Result<(), DlibError> {
    // The solver state: three bools and three (empty) tensors.
    for _ in 0..3 {
        r.boolean()?;
    }
    for _ in 0..3 {
        r.tensor()?;
    }
    Ok(())
}

/// Reads a `loss_metric` network over `input_rgb_image_sized` (dlib's face recognition model).
///
/// # Errors
/// A [`DlibError`] naming the offset and what was expected there; trailing bytes are an error.
pub fn read_metric_net(bytes: &[u8], file: &'static str) -> Result<MetricNet, DlibError> {
    let mut r = Reader::new(bytes, file);
    let version = r.int()?;
    if version != 1 {
        return Err(r.invalid(format!("loss layer version {version}, expected 1")));
    }
    r.tag("loss_metric_2")?;
    r.float()?;
    r.float()?;
    // Wrapper versions, outermost first: 2 = add_layer, 1 = tag or skip, 3 = the add_layer over
    // the input. They end where the input layer's tag string begins.
    let mut versions = Vec::new();
    loop {
        let v = r.int()?;
        versions.push(v);
        match v {
            3 => break,
            1 | 2 => {}
            other => return Err(r.invalid(format!("layer version {other}, expected 1, 2 or 3"))),
        }
    }
    r.tag("input_rgb_image_sized")?;
    let mut means = [0.0; 3];
    for m in &mut means {
        *m = r.float()? as f32;
    }
    let size = [r.size("input rows")?, r.size("input columns")?];
    let mut layers = Vec::with_capacity(versions.len());
    layers.push(layer_details(&mut r)?);
    add_layer_trailer(&mut r)?;
    let expansion = r.int()?;
    if expansion != 1 {
        return Err(r.invalid(format!("sample expansion factor {expansion}, expected 1")));
    }
    for &v in versions.iter().rev().skip(1) {
        if v == 2 {
            layers.push(layer_details(&mut r)?);
            add_layer_trailer(&mut r)?;
        } else {
            layers.push(Layer::TagOrSkip);
        }
    }
    if !r.at_end() {
        return Err(r.invalid(format!(
            "{} bytes left after the last layer",
            bytes.len() - r.position()
        )));
    }
    Ok(MetricNet {
        means,
        size,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_integers_and_floats_decode_as_dlib_writes_them() {
        let mut r = Reader::new(&[0x01, 0x00, 0x02, 0x80, 0x12, 0x81, 0x1c], "test");
        assert_eq!(r.int(), Ok(0));
        assert_eq!(r.int(), Ok(4736));
        assert_eq!(r.int(), Ok(-28));
        let mut r = Reader::new(
            &[0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c, 0x01, 0x10, 0x81, 0x04],
            "t",
        );
        assert!((r.float().unwrap() - 0.04).abs() < 1e-9);
        assert_eq!(r.float(), Ok(1.0));
        assert!(r.at_end());
    }

    #[test]
    fn bad_bytes_are_named() {
        let mut r = Reader::new(&[0x31], "model.dat");
        assert_eq!(
            r.int().unwrap_err().to_string(),
            "model.dat: byte 0: control byte 0x31 is not a packed integer's (1 to 8 bytes)"
        );
        let mut r = Reader::new(&[0x02, 0x01], "model.dat");
        assert!(matches!(r.int(), Err(DlibError::Truncated { at: 1, .. })));
    }

    #[test]
    fn tensor_dimensions_whose_bytes_overflow_are_refused() {
        // Version 2, then n = 2^62, k = nr = nc = 1: 2^62 values fit in `usize`, their 2^64
        // bytes do not (a fuzzing finding: the byte count wrapped to 0 without this check).
        let bytes = [
            0x01, 0x02, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
        ];
        let mut r = Reader::new(&bytes, "model.dat");
        let error = r.tensor().unwrap_err().to_string();
        assert!(error.contains("overflow"), "{error}");
    }
}

//! `faceres` (`HSE_FaceRec_tf`, shipped by @vladmandic/human 3.3.6): a MobileNet-v1 face
//! descriptor, 224×224 RGB on the 0..255 scale in, the 1024-d global average pool out. Read from
//! its TensorFlow.js graph-model files (`faceres.json` + `faceres.bin`, fp16-quantised weights).

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};
use thiserror::Error;

use super::mtcnn::NamedTensors;
use super::{ColourOrder, EmbedderInfo, FaceEmbedder};

/// A `faceres.json`/`faceres.bin` pair that is not the model.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FaceresError {
    /// The manifest is not JSON of the tfjs graph-model layout.
    #[error("faceres.json: {what}")]
    Manifest {
        /// What was wrong.
        what: String,
    },
    /// The weights file is shorter or longer than the manifest says.
    #[error("faceres.bin has {found} bytes, the manifest describes {expected}")]
    Size {
        /// Bytes in the file.
        found: usize,
        /// Bytes the manifest describes.
        expected: usize,
    },
    /// A weight is missing or has the wrong shape.
    #[error("faceres: `{name}` {what}")]
    Weight {
        /// The weight's name.
        name: String,
        /// What was wrong.
        what: String,
    },
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match exponent {
        0 => {
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = mantissa as f32 * 2f32.powi(-24);
            return if sign == 0 { magnitude } else { -magnitude };
        }
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(value)
}

/// Reads the weights of a tfjs graph model (one manifest group, shards concatenated); `int32`
/// constants (paddings, shapes, axes) come back as exact `f32`s.
///
/// # Errors
/// A malformed manifest, an unsupported dtype or quantisation, or a size mismatch.
pub fn read_tfjs(manifest: &str, weights: &[u8]) -> Result<NamedTensors, FaceresError> {
    let bad = |what: &str| FaceresError::Manifest {
        what: what.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_str(manifest).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let specs = json["weightsManifest"][0]["weights"]
        .as_array()
        .ok_or_else(|| bad("no weightsManifest[0].weights list"))?;
    let mut out = NamedTensors::new();
    let mut at = 0;
    for spec in specs {
        let name = spec["name"]
            .as_str()
            .ok_or_else(|| bad("a weight without a name"))?;
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .ok_or_else(|| bad(&format!("`{name}` has no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(&format!("`{name}` has a non-integer dimension")))?;
        let count = shape
            .iter()
            .try_fold(1_usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| bad(&format!("`{name}` has more values than memory can hold")))?;
        let quantised = spec["quantization"]["dtype"].as_str();
        // Bytes per value, and how to read one.
        let (width, read): (usize, fn(&[u8]) -> f32) = match (spec["dtype"].as_str(), quantised) {
            (Some("float32"), Some("float16")) => {
                (2, |c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            }
            (Some("float32"), None) => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            // Paddings, shapes and axes: small integers, exact in f32.
            #[allow(clippy::cast_precision_loss)]
            (Some("int32"), None) => (4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32),
            (dtype, q) => {
                return Err(bad(&format!(
                    "`{name}` is {dtype:?} quantised as {q:?}; expected float32, float16 or int32"
                )));
            }
        };
        let end = count
            .checked_mul(width)
            .and_then(|n| n.checked_add(at))
            .filter(|&end| end <= weights.len())
            .ok_or(FaceresError::Size {
                found: weights.len(),
                expected: at.saturating_add(count.saturating_mul(width)),
            })?;
        let values = weights[at..end].chunks_exact(width).map(read).collect();
        out.insert(name.to_owned(), (shape, values));
        at = end;
    }
    if at != weights.len() {
        return Err(FaceresError::Size {
            found: weights.len(),
            expected: at,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Layer {
    /// OIHW (depthwise: `[c, 1, 3, 3]`).
    weight: Tensor<4>,
    /// Depthwise only: the folded batch-norm scale.
    scale: Option<Tensor<1>>,
    bias: Tensor<1>,
    stride: usize,
    groups: usize,
}

impl Layer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, _] = self.weight.dims();
        let [_, _, h, _] = x.dims();
        // TensorFlow's SAME: the extra padding goes at the bottom and right.
        let out = h.div_ceil(self.stride);
        let total = ((out - 1) * self.stride + kh).saturating_sub(h);
        let x = if total > 0 {
            let (begin, end) = (total / 2, total - total / 2);
            x.pad(
                vec![(0, 0), (begin, end), (begin, end)],
                PadMode::Constant(0.0),
            )
        } else {
            x
        };
        let c = self.bias.dims()[0];
        let y = conv2d(
            x,
            self.weight.clone(),
            None,
            ConvOptions::new([self.stride; 2], [0, 0], [1, 1], self.groups),
        );
        let y = match &self.scale {
            Some(s) => y * s.clone().reshape([1, c, 1, 1]),
            None => y,
        };
        (y + self.bias.clone().reshape([1, c, 1, 1])).clamp(0.0, 6.0)
    }
}

/// The faceres descriptor network.
///
/// # Shapes
/// - input: `[batch, 3, 224, 224]`, RGB on the 0..255 scale
/// - output: `[batch, 1024]`
#[derive(Debug, Clone)]
pub struct Faceres {
    info: EmbedderInfo,
    layers: Vec<Layer>,
}

/// The depthwise blocks' strides and the pointwise convolutions' widths (MobileNet-v1, α = 1).
const STRIDES: [usize; 13] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1];
const WIDTHS: [usize; 13] = [
    64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024,
];

impl Faceres {
    /// Builds the network from the weights [`read_tfjs`] returns.
    ///
    /// # Errors
    /// A missing weight, a wrong shape, or a `ReLU6` bound that is not 0..6.
    pub fn from_tensors(weights: &NamedTensors, device: &Device) -> Result<Self, FaceresError> {
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, FaceresError> {
            let (found, values) = weights.get(name).ok_or_else(|| FaceresError::Weight {
                name: name.to_owned(),
                what: "is missing".to_owned(),
            })?;
            if found != shape {
                return Err(FaceresError::Weight {
                    name: name.to_owned(),
                    what: format!("has shape {found:?}, expected {shape:?}"),
                });
            }
            Ok(values.clone())
        };
        let vector = |name: &str, n: usize| -> Result<Tensor<1>, FaceresError> {
            Ok(Tensor::from_data(
                TensorData::new(get(name, &[n])?, [n]),
                device,
            ))
        };
        let relu6 = |prefix: &str| -> Result<(), FaceresError> {
            let (top, bottom) = (
                get(&format!("{prefix}/Cast"), &[])?,
                get(&format!("{prefix}/Const_1"), &[])?,
            );
            if top != [6.0] || bottom != [0.0] {
                return Err(FaceresError::Weight {
                    name: prefix.to_owned(),
                    what: format!("clips to {bottom:?}..{top:?}, expected 0..6"),
                });
            }
            Ok(())
        };
        // HWIO → OIHW.
        let kernel = |name: &str, shape: [usize; 4]| -> Result<Tensor<4>, FaceresError> {
            Ok(
                Tensor::<4>::from_data(TensorData::new(get(name, &shape)?, shape), device)
                    .permute([3, 2, 0, 1]),
            )
        };
        let mut layers = Vec::new();
        relu6("conv1_relu")?;
        layers.push(Layer {
            weight: kernel("conv1/convolution/merged_input", [3, 3, 3, 32])?,
            scale: None,
            bias: vector("conv1_bn/batchnorm_1/sub", 32)?,
            stride: 2,
            groups: 1,
        });
        let mut channels = 32;
        for (i, (&stride, &out)) in STRIDES.iter().zip(&WIDTHS).enumerate() {
            let n = i + 1;
            relu6(&format!("conv_dw_{n}_relu"))?;
            relu6(&format!("conv_pw_{n}_relu"))?;
            // Depthwise `[3, 3, c, 1]` → `[c, 1, 3, 3]`.
            let dw = Tensor::<4>::from_data(
                TensorData::new(
                    get(
                        &format!("conv_dw_{n}/depthwise_kernel"),
                        &[3, 3, channels, 1],
                    )?,
                    [3, 3, channels, 1],
                ),
                device,
            )
            .permute([2, 3, 0, 1]);
            layers.push(Layer {
                weight: dw,
                scale: Some(vector(
                    &format!("conv_dw_{n}_bn/batchnorm_1/mul"),
                    channels,
                )?),
                bias: vector(&format!("conv_dw_{n}_bn/batchnorm_1/sub"), channels)?,
                stride,
                groups: channels,
            });
            layers.push(Layer {
                weight: kernel(
                    &format!("conv_pw_{n}/convolution/merged_input"),
                    [1, 1, channels, out],
                )?,
                scale: None,
                bias: vector(&format!("conv_pw_{n}_bn/batchnorm_1/sub"), out)?,
                stride: 1,
                groups: 1,
            });
            channels = out;
        }
        Ok(Self {
            info: EmbedderInfo {
                name: "faceres",
                input: [224, 224],
                colour: ColourOrder::Rgb,
                mean: [0.0; 3],
                scale: 1.0,
                embedding: 1024,
                // Neither human nor HSE_FaceRec_tf publishes a verification threshold.
                same_person_below: None,
            },
            layers,
        })
    }

    /// 1024-d descriptors.
    ///
    /// # Shapes
    /// - `faces`: `[batch, 3, 224, 224]`; returns `[batch, 1024]`
    pub fn forward(&self, faces: Tensor<4>) -> Tensor<2> {
        let mut x = faces;
        for layer in &self.layers {
            x = layer.forward(x);
        }
        let [n, c, _, _] = x.dims();
        x.mean_dims(&[2, 3]).reshape([n, c])
    }
}

impl FaceEmbedder for Faceres {
    fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    fn forward(&self, chips: Tensor<4>) -> Tensor<2> {
        Faceres::forward(self, chips)
    }
}

/// TensorFlow's `resize_bilinear` (no corner alignment, no half-pixel centres), as tfjs's
/// `tf.image.resizeBilinear` does by default: an image to `size`×`size`, as a `[1, 3, size, size]`
/// tensor on the 0..255 scale.
pub fn resize_bilinear(image: &super::RgbImage, size: usize, device: &Device) -> Tensor<4> {
    let plane = size * size;
    let mut out = vec![0.0_f32; 3 * plane];
    let (sy, sx) = (
        image.height as f32 / size as f32,
        image.width as f32 / size as f32,
    );
    for y in 0..size {
        let fy = y as f32 * sy;
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(image.height - 1);
        let dy = fy - y0 as f32;
        for x in 0..size {
            let fx = x as f32 * sx;
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(image.width - 1);
            let dx = fx - x0 as f32;
            let (a, b, c, d) = (
                image.get(x0, y0),
                image.get(x1, y0),
                image.get(x0, y1),
                image.get(x1, y1),
            );
            for k in 0..3 {
                let top = f32::from(a[k]) + (f32::from(b[k]) - f32::from(a[k])) * dx;
                let bottom = f32::from(c[k]) + (f32::from(d[k]) - f32::from(c[k])) * dx;
                out[k * plane + y * size + x] = top + (bottom - top) * dy;
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [1, 3, size, size]), device)
}

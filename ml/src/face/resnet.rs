//! dlib's face-recognition ResNet-29 (`dlib_face_recognition_resnet_model_v1.dat`), as burn ops.
//!
//! The topology is dlib's `dnn_face_recognition_ex.cpp` (`anet_type`): a 7×7/2 stem, max-pool,
//! residual stages of 32, 64, 128 and 256 filters, global average pooling and a 256→128 linear
//! layer without bias. dlib stores each layer's parameters but not the graph, so the graph is
//! written here and every parameter read from the file is checked against it.

use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use super::dlib::{DlibError, Layer, MetricNet, read_metric_net};

/// A convolution with dlib's `affine_` (a frozen batch normalisation) folded into it.
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
}

impl Conv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1),
        )
    }
}

#[derive(Debug, Clone)]
struct Block {
    first: Conv,
    second: Conv,
    /// A down block: stride-2 first conv, 2×2/2 average-pooled shortcut.
    down: bool,
}

/// dlib's ResNet-29 face descriptor network.
///
/// # Shapes
/// - input: `[batch, 3, 150, 150]`, RGB on the 0..255 scale (see [`DlibResNet::forward`])
/// - output: `[batch, 128]`, the raw descriptor (`face_recognition`'s distances are between these)
#[derive(Debug, Clone)]
pub struct DlibResNet {
    info: super::EmbedderInfo,
    means: [f32; 3],
    stem: Conv,
    blocks: Vec<Block>,
    fc: Tensor<2>,
}

/// The input side of dlib's chips.
pub const DLIB_INPUT: usize = 150;

/// The stage widths and block counts of `anet_type`, input first: (filters, blocks, first is a
/// down block).
const STAGES: [(usize, usize, bool); 5] = [
    (32, 3, false),
    (64, 4, true),
    (128, 3, true),
    (256, 3, true),
    (256, 1, true),
];

struct Walk<'a> {
    layers: &'a [Layer],
    at: usize,
    device: &'a Device,
}

impl Walk<'_> {
    fn error(&self, expected: &str) -> DlibError {
        DlibError::Invalid {
            file: "dlib_face_recognition_resnet_model_v1.dat",
            at: self.at,
            what: format!(
                "layer {} is {}, expected {expected}",
                self.at,
                self.layers
                    .get(self.at)
                    .map_or("missing".to_owned(), |l| format!("{l:?}")
                        .chars()
                        .take(60)
                        .collect())
            ),
        }
    }

    fn next(&mut self) -> Option<&Layer> {
        let layer = self.layers.get(self.at);
        self.at += 1;
        layer
    }

    fn expect(&mut self, want: &Layer, name: &str) -> Result<(), DlibError> {
        if self.layers.get(self.at) == Some(want) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(name))
        }
    }

    /// A conv then an affine layer, folded: w·γ, b·γ + β.
    fn conv(
        &mut self,
        filters: usize,
        inputs: usize,
        size: usize,
        stride: usize,
    ) -> Result<Conv, DlibError> {
        let padding = if stride == 1 { size / 2 } else { 0 };
        let expected = format!("a {size}×{size}/{stride} conv of {inputs}→{filters}");
        let Some(Layer::Conv {
            filters: f,
            kernel,
            stride: s,
            padding: p,
            params,
        }) = self.layers.get(self.at)
        else {
            return Err(self.error(&expected));
        };
        let per_filter = inputs * size * size;
        if *f != filters
            || *kernel != [size; 2]
            || *s != [stride; 2]
            || *p != [padding; 2]
            || params.len() != filters * per_filter + filters
        {
            return Err(self.error(&expected));
        }
        let (mut weights, mut bias) = (
            params[..filters * per_filter].to_vec(),
            params[filters * per_filter..].to_vec(),
        );
        self.at += 1;
        let Some(Layer::Affine { params }) = self.layers.get(self.at) else {
            return Err(self.error("an affine layer"));
        };
        if params.len() != 2 * filters {
            return Err(self.error(&format!("an affine layer of {filters} channels")));
        }
        let (gamma, beta) = params.split_at(filters);
        for (o, w) in weights.chunks_exact_mut(per_filter).enumerate() {
            for v in w.iter_mut() {
                *v *= gamma[o];
            }
            bias[o] = bias[o] * gamma[o] + beta[o];
        }
        self.at += 1;
        Ok(Conv {
            weight: Tensor::from_data(
                TensorData::new(weights, [filters, inputs, size, size]),
                self.device,
            ),
            bias: Tensor::from_data(TensorData::new(bias, [filters]), self.device),
            stride,
            padding,
        })
    }
}

impl DlibResNet {
    /// Builds the network from the bytes of `dlib_face_recognition_resnet_model_v1.dat`.
    ///
    /// # Errors
    /// A [`DlibError`] when the file is not that model (wrong layers, shapes or trailing bytes).
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, DlibError> {
        let net = read_metric_net(bytes, "dlib_face_recognition_resnet_model_v1.dat")?;
        Self::from_net(&net, device)
    }

    fn from_net(net: &MetricNet, device: &Device) -> Result<Self, DlibError> {
        let mut walk = Walk {
            layers: &net.layers,
            at: 0,
            device,
        };
        if net.size != [DLIB_INPUT; 2] {
            return Err(walk.error(&format!("an input of {DLIB_INPUT}×{DLIB_INPUT}")));
        }
        let stem = walk.conv(32, 3, 7, 2)?;
        walk.expect(&Layer::Relu, "relu")?;
        walk.expect(
            &Layer::MaxPool {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [0, 0],
            },
            "a 3×3/2 max-pool",
        )?;
        let mut blocks = Vec::new();
        let mut channels = 32;
        for (filters, count, first_down) in STAGES {
            for i in 0..count {
                let down = first_down && i == 0;
                walk.expect(&Layer::TagOrSkip, "tag1")?;
                let first = walk.conv(filters, channels, 3, if down { 2 } else { 1 })?;
                walk.expect(&Layer::Relu, "relu")?;
                let second = walk.conv(filters, filters, 3, 1)?;
                if down {
                    walk.expect(&Layer::TagOrSkip, "tag2")?;
                    walk.expect(&Layer::TagOrSkip, "skip1")?;
                    walk.expect(
                        &Layer::AvgPool {
                            kernel: [2, 2],
                            stride: [2, 2],
                            padding: [0, 0],
                        },
                        "a 2×2/2 average pool",
                    )?;
                }
                walk.expect(&Layer::AddPrev, "add_prev")?;
                walk.expect(&Layer::Relu, "relu")?;
                blocks.push(Block {
                    first,
                    second,
                    down,
                });
                channels = filters;
            }
        }
        walk.expect(
            &Layer::AvgPool {
                kernel: [0, 0],
                stride: [1, 1],
                padding: [0, 0],
            },
            "a global average pool",
        )?;
        let fc = match walk.next() {
            Some(Layer::Fc {
                inputs: 256,
                outputs: 128,
                params,
            }) if params.len() == 256 * 128 => {
                Tensor::from_data(TensorData::new(params.clone(), [256, 128]), device)
            }
            _ => {
                walk.at -= 1;
                return Err(walk.error("a 256→128 fc layer without bias"));
            }
        };
        if walk.at != net.layers.len() {
            return Err(walk.error("the end of the network"));
        }
        Ok(Self {
            info: super::EmbedderInfo {
                name: "dlib",
                input: [DLIB_INPUT; 2],
                colour: super::ColourOrder::Rgb,
                mean: net.means,
                scale: 1.0 / 256.0,
                embedding: 128,
                // face_recognition's default tolerance.
                same_person_below: Some(0.6),
            },
            means: net.means,
            stem,
            blocks,
            fc,
        })
    }

    /// The per-channel means dlib subtracts (R, G, B; the input is then divided by 256).
    pub fn means(&self) -> [f32; 3] {
        self.means
    }

    /// Raw 128-d descriptors of 150×150 chips on the 0..255 scale (dlib's output, not normalised).
    ///
    /// # Shapes
    /// - `chips`: `[batch, 3, 150, 150]`
    /// - returns: `[batch, 128]`
    pub fn forward(&self, chips: Tensor<4>) -> Tensor<2> {
        let device = chips.device();
        let means = Tensor::<1>::from_data(TensorData::new(self.means.to_vec(), [3]), &device)
            .reshape([1, 3, 1, 1]);
        let x = (chips - means).div_scalar(256.0);
        let x = self.stem.forward(x).clamp_min(0.0);
        let mut x = max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]));
        for block in &self.blocks {
            let main = block
                .second
                .forward(block.first.forward(x.clone()).clamp_min(0.0));
            let shortcut = if block.down {
                avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]))
            } else {
                x
            };
            x = add_prev(main, shortcut).clamp_min(0.0);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([batch, channels]);
        pooled.matmul(self.fc.clone())
    }
}

/// dlib's `add_prev`: the sum over the larger of each dimension, the smaller input zero-filled
/// (channels at the end, rows and columns at the bottom and right).
fn add_prev(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [_, ca, ha, wa] = a.dims();
    let [_, cb, hb, wb] = b.dims();
    let (c, h, w) = (ca.max(cb), ha.max(hb), wa.max(wb));
    let grow = |t: Tensor<4>, (tc, th, tw): (usize, usize, usize)| {
        if (tc, th, tw) == (c, h, w) {
            t
        } else {
            t.pad(
                vec![(0, c - tc), (0, h - th), (0, w - tw)],
                PadMode::Constant(0.0),
            )
        }
    };
    grow(a, (ca, ha, wa)) + grow(b, (cb, hb, wb))
}

impl super::FaceEmbedder for DlibResNet {
    fn info(&self) -> &super::EmbedderInfo {
        &self.info
    }

    fn forward(&self, chips: Tensor<4>) -> Tensor<2> {
        DlibResNet::forward(self, chips)
    }
}

//! MTCNN (Zhang et al. 2016) as facenet-pytorch 2.6.0 runs it: P-Net over an image pyramid,
//! R-Net and O-Net on resampled crops, non-maximum suppression, box regression and 5 landmarks
//! (eye centres, nose tip, mouth corners). The networks are burn ops; the weights are the ones
//! facenet-pytorch ships (`pnet.pt`, `rnet.pt`, `onet.pt`), handed over as named tensors.

use burn::tensor::activation::{prelu, softmax};
use burn::tensor::module::{adaptive_avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use thiserror::Error;

use super::RgbImage;

pub use crate::tensors::NamedTensors;
pub use fuselab_shared::face::Detection;

/// A checkpoint that is not the MTCNN network it should be.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MtcnnError {
    /// A parameter is missing.
    #[error("{net}: no tensor `{name}`")]
    Missing {
        /// `pnet`, `rnet` or `onet`.
        net: &'static str,
        /// The parameter's name.
        name: String,
    },
    /// A parameter has the wrong shape.
    #[error("{net}: `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// `pnet`, `rnet` or `onet`.
        net: &'static str,
        /// The parameter's name.
        name: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The shape the network needs.
        expected: Vec<usize>,
    },
}

#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    alpha: Option<Tensor<1>>,
}

impl Conv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        match &self.alpha {
            Some(alpha) => prelu(y, alpha.clone()),
            None => y,
        }
    }
}

#[derive(Debug, Clone)]
struct Dense {
    /// `[in, out]`.
    weight: Tensor<2>,
    bias: Tensor<1>,
    alpha: Option<Tensor<1>>,
}

impl Dense {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.clone()) + self.bias.clone().unsqueeze::<2>();
        match &self.alpha {
            Some(alpha) => prelu(y, alpha.clone()),
            None => y,
        }
    }
}

struct Loader<'a> {
    net: &'static str,
    tensors: &'a NamedTensors,
    device: &'a Device,
}

impl Loader<'_> {
    fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, MtcnnError> {
        let (found, values) = self.tensors.get(name).ok_or_else(|| MtcnnError::Missing {
            net: self.net,
            name: name.to_owned(),
        })?;
        if found != shape {
            return Err(MtcnnError::Shape {
                net: self.net,
                name: name.to_owned(),
                found: found.clone(),
                expected: shape.to_vec(),
            });
        }
        Ok(values.clone())
    }

    fn vector(&self, name: &str, n: usize) -> Result<Tensor<1>, MtcnnError> {
        Ok(Tensor::from_data(
            TensorData::new(self.values(name, &[n])?, [n]),
            self.device,
        ))
    }

    fn conv(
        &self,
        name: &str,
        io: [usize; 2],
        k: usize,
        prelu: Option<&str>,
    ) -> Result<Conv, MtcnnError> {
        let [i, o] = io;
        let shape = [o, i, k, k];
        Ok(Conv {
            weight: Tensor::from_data(
                TensorData::new(self.values(&format!("{name}.weight"), &shape)?, shape),
                self.device,
            ),
            bias: self.vector(&format!("{name}.bias"), o)?,
            alpha: prelu
                .map(|p| self.vector(&format!("{p}.weight"), o))
                .transpose()?,
        })
    }

    fn dense(&self, name: &str, io: [usize; 2], prelu: Option<&str>) -> Result<Dense, MtcnnError> {
        let [i, o] = io;
        // PyTorch stores `[out, in]`; the matmul wants `[in, out]`.
        let weight = Tensor::<2>::from_data(
            TensorData::new(self.values(&format!("{name}.weight"), &[o, i])?, [o, i]),
            self.device,
        )
        .transpose();
        Ok(Dense {
            weight,
            bias: self.vector(&format!("{name}.bias"), o)?,
            alpha: prelu
                .map(|p| self.vector(&format!("{p}.weight"), o))
                .transpose()?,
        })
    }
}

fn pool(x: Tensor<4>, k: usize) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([k, k])
            .with_stride([2, 2])
            .with_ceil_mode(true),
    )
}

/// The three MTCNN networks.
#[derive(Debug, Clone)]
pub struct Mtcnn {
    p: [Conv; 5],
    r_convs: [Conv; 3],
    r_dense: [Dense; 3],
    o_convs: [Conv; 4],
    o_dense: [Dense; 4],
}

/// facenet-pytorch's defaults.
const MIN_FACE: f64 = 20.0;
const FACTOR: f64 = 0.709;
const THRESHOLDS: [f32; 3] = [0.6, 0.7, 0.7];

impl Mtcnn {
    /// Builds the networks from the tensors of facenet-pytorch's `pnet.pt`, `rnet.pt`, `onet.pt`.
    ///
    /// # Errors
    /// A missing tensor or one of the wrong shape, named.
    pub fn from_tensors(
        pnet: &NamedTensors,
        rnet: &NamedTensors,
        onet: &NamedTensors,
        device: &Device,
    ) -> Result<Self, MtcnnError> {
        let l = Loader {
            net: "pnet",
            tensors: pnet,
            device,
        };
        let p = [
            l.conv("conv1", [3, 10], 3, Some("prelu1"))?,
            l.conv("conv2", [10, 16], 3, Some("prelu2"))?,
            l.conv("conv3", [16, 32], 3, Some("prelu3"))?,
            l.conv("conv4_1", [32, 2], 1, None)?,
            l.conv("conv4_2", [32, 4], 1, None)?,
        ];
        let l = Loader {
            net: "rnet",
            tensors: rnet,
            device,
        };
        let r_convs = [
            l.conv("conv1", [3, 28], 3, Some("prelu1"))?,
            l.conv("conv2", [28, 48], 3, Some("prelu2"))?,
            l.conv("conv3", [48, 64], 2, Some("prelu3"))?,
        ];
        let r_dense = [
            l.dense("dense4", [576, 128], Some("prelu4"))?,
            l.dense("dense5_1", [128, 2], None)?,
            l.dense("dense5_2", [128, 4], None)?,
        ];
        let l = Loader {
            net: "onet",
            tensors: onet,
            device,
        };
        let o_convs = [
            l.conv("conv1", [3, 32], 3, Some("prelu1"))?,
            l.conv("conv2", [32, 64], 3, Some("prelu2"))?,
            l.conv("conv3", [64, 64], 3, Some("prelu3"))?,
            l.conv("conv4", [64, 128], 2, Some("prelu4"))?,
        ];
        let o_dense = [
            l.dense("dense5", [1152, 256], Some("prelu5"))?,
            l.dense("dense6_1", [256, 2], None)?,
            l.dense("dense6_2", [256, 4], None)?,
            l.dense("dense6_3", [256, 10], None)?,
        ];
        Ok(Self {
            p,
            r_convs,
            r_dense,
            o_convs,
            o_dense,
        })
    }

    /// P-Net: face probability and box offsets per 12×12 window (stride 2).
    ///
    /// # Shapes
    /// - `x`: `[n, 3, h, w]`, normalised; returns `([n, h', w'], [n, 4, h', w'])`
    fn pnet(&self, x: Tensor<4>) -> (Tensor<3>, Tensor<4>) {
        let x = pool(self.p[0].forward(x), 2);
        let x = self.p[2].forward(self.p[1].forward(x));
        let probs = softmax(self.p[3].forward(x.clone()), 1);
        let [n, _, h, w] = probs.dims();
        let face = probs.slice([0..n, 1..2, 0..h, 0..w]).reshape([n, h, w]);
        (face, self.p[4].forward(x))
    }

    /// R-Net on 24×24 crops: face probability `[n]` and box offsets `[n, 4]`.
    fn rnet(&self, x: Tensor<4>) -> (Tensor<1>, Tensor<2>) {
        let x = pool(self.r_convs[0].forward(x), 3);
        let x = pool(self.r_convs[1].forward(x), 3);
        let x = self.r_convs[2].forward(x);
        let x = self.r_dense[0].forward(flatten_whc(x));
        let probs = softmax(self.r_dense[1].forward(x.clone()), 1);
        let n = probs.dims()[0];
        (
            probs.slice([0..n, 1..2]).reshape([n]),
            self.r_dense[2].forward(x),
        )
    }

    /// O-Net on 48×48 crops: face probability `[n]`, box offsets `[n, 4]`, landmarks `[n, 10]`.
    fn onet(&self, x: Tensor<4>) -> (Tensor<1>, Tensor<2>, Tensor<2>) {
        let x = pool(self.o_convs[0].forward(x), 3);
        let x = pool(self.o_convs[1].forward(x), 3);
        let x = pool(self.o_convs[2].forward(x), 2);
        let x = self.o_convs[3].forward(x);
        let x = self.o_dense[0].forward(flatten_whc(x));
        let probs = softmax(self.o_dense[1].forward(x.clone()), 1);
        let n = probs.dims()[0];
        (
            probs.slice([0..n, 1..2]).reshape([n]),
            self.o_dense[2].forward(x.clone()),
            self.o_dense[3].forward(x),
        )
    }

    /// Detects faces, largest first (facenet-pytorch's `MTCNN(keep_all=True).detect`).
    pub fn detect(&self, image: &RgbImage, device: &Device) -> Vec<Detection> {
        if image.height < 12 || image.width < 12 {
            return Vec::new();
        }
        let pixels = image.to_tensor(device);
        let proposals = self.propose(&pixels);
        let refined = self.refine(&pixels, &proposals);
        let mut out = self.output(&pixels, &refined);
        let area = |d: &Detection| (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]);
        out.sort_by(|a, b| area(b).total_cmp(&area(a)));
        out
    }

    /// Stage 1: P-Net over the pyramid, NMS 0.5 per scale then 0.7 over all, regression, squares.
    fn propose(&self, pixels: &Tensor<4>) -> Vec<Cand> {
        let [_, _, h, w] = pixels.dims();
        let m = 12.0 / MIN_FACE;
        let mut min_side = h.min(w) as f64 * m;
        let mut scale = m;
        let mut boxes: Vec<Cand> = Vec::new();
        while min_side >= 12.0 {
            let (sh, sw) = (
                (h as f64 * scale + 1.0) as usize,
                (w as f64 * scale + 1.0) as usize,
            );
            let resized = adaptive_avg_pool2d(pixels.clone(), [sh, sw]);
            let (probs, reg) = self.pnet(normalise(resized));
            let [_, ph, pw] = probs.dims();
            let probs = read(probs);
            let reg = read(reg);
            let plane = ph * pw;
            let s = scale as f32;
            let mut found = Vec::new();
            for y in 0..ph {
                for x in 0..pw {
                    let score = probs[y * pw + x];
                    if score >= THRESHOLDS[0] {
                        let (bx, by) = (x as f32, y as f32);
                        found.push(Cand {
                            b: [
                                ((2.0 * bx + 1.0) / s).floor(),
                                ((2.0 * by + 1.0) / s).floor(),
                                ((2.0 * bx + 12.0) / s).floor(),
                                ((2.0 * by + 12.0) / s).floor(),
                            ],
                            score,
                            reg: std::array::from_fn(|k| reg[k * plane + y * pw + x]),
                            points: [0.0; 10],
                        });
                    }
                }
            }
            let keep = nms(&found, 0.5, Overlap::Union);
            boxes.extend(keep.into_iter().map(|i| found[i].clone()));
            scale *= FACTOR;
            min_side *= FACTOR;
        }
        let keep = nms(&boxes, 0.7, Overlap::Union);
        let mut boxes: Vec<Cand> = keep
            .into_iter()
            .map(|i| {
                let c = &boxes[i];
                let (bw, bh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                Cand {
                    b: [
                        c.b[0] + c.reg[0] * bw,
                        c.b[1] + c.reg[1] * bh,
                        c.b[2] + c.reg[2] * bw,
                        c.b[3] + c.reg[3] * bh,
                    ],
                    ..c.clone()
                }
            })
            .collect();
        rerec(&mut boxes);
        boxes
    }

    /// Stage 2: R-Net on 24×24 crops, NMS 0.7, regression, squares.
    fn refine(&self, pixels: &Tensor<4>, boxes: &[Cand]) -> Vec<Cand> {
        let (kept, batch) = crops(pixels, boxes, 24);
        if kept.is_empty() {
            return Vec::new();
        }
        let (probs, reg) = self.rnet(normalise(batch));
        let (probs, reg) = (read(probs), read(reg));
        let passed: Vec<Cand> = kept
            .iter()
            .enumerate()
            .filter(|&(i, _)| probs[i] > THRESHOLDS[1])
            .map(|(i, &b)| Cand {
                score: probs[i],
                reg: std::array::from_fn(|k| reg[i * 4 + k]),
                ..boxes[b].clone()
            })
            .collect();
        let keep = nms(&passed, 0.7, Overlap::Union);
        let mut boxes: Vec<Cand> = keep.into_iter().map(|i| bbreg(&passed[i])).collect();
        rerec(&mut boxes);
        boxes
    }

    /// Stage 3: O-Net on 48×48 crops, landmarks, regression, NMS 0.7 by the smaller area.
    fn output(&self, pixels: &Tensor<4>, boxes: &[Cand]) -> Vec<Detection> {
        let (kept, batch) = crops(pixels, boxes, 48);
        if kept.is_empty() {
            return Vec::new();
        }
        let (probs, reg, points) = self.onet(normalise(batch));
        let (probs, reg, points) = (read(probs), read(reg), read(points));
        let mut passed: Vec<Cand> = Vec::new();
        for (i, &b) in kept.iter().enumerate() {
            if probs[i] > THRESHOLDS[2] {
                let c = &boxes[b];
                let (bw, bh) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
                let mut p = [0.0; 10];
                for k in 0..5 {
                    p[2 * k] = bw * points[i * 10 + k] + c.b[0] - 1.0;
                    p[2 * k + 1] = bh * points[i * 10 + 5 + k] + c.b[1] - 1.0;
                }
                passed.push(bbreg(&Cand {
                    score: probs[i],
                    reg: std::array::from_fn(|k| reg[i * 4 + k]),
                    points: p,
                    ..c.clone()
                }));
            }
        }
        nms(&passed, 0.7, Overlap::Min)
            .into_iter()
            .map(|i| {
                let c = &passed[i];
                Detection {
                    bbox: c.b,
                    score: c.score,
                    landmarks: std::array::from_fn(|k| [c.points[2 * k], c.points[2 * k + 1]]),
                }
            })
            .collect()
    }
}

/// facenet-pytorch's input scaling: (x − 127.5) / 128.
fn normalise(x: Tensor<4>) -> Tensor<4> {
    x.sub_scalar(127.5).mul_scalar(0.007_812_5)
}

/// RNet/ONet flatten after `permute(0, 3, 2, 1)`: (width, height, channel) order.
fn flatten_whc(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.permute([0, 3, 2, 1]).reshape([n, w * h * c])
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Cand {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
    points: [f32; 10],
}

fn bbreg(c: &Cand) -> Cand {
    let (w, h) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
    Cand {
        b: [
            c.b[0] + c.reg[0] * w,
            c.b[1] + c.reg[1] * h,
            c.b[2] + c.reg[2] * w,
            c.b[3] + c.reg[3] * h,
        ],
        ..c.clone()
    }
}

/// Squares each box around its centre (facenet-pytorch's `rerec`).
fn rerec(boxes: &mut [Cand]) {
    for c in boxes {
        let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
        let l = w.max(h);
        c.b[0] = c.b[0] + w * 0.5 - l * 0.5;
        c.b[1] = c.b[1] + h * 0.5 - l * 0.5;
        c.b[2] = c.b[0] + l;
        c.b[3] = c.b[1] + l;
    }
}

/// Crops each box (clipped to the image, as facenet-pytorch's `pad` does) and resamples it to
/// `side`×`side` by area averaging. Returns the indices of the boxes that had pixels.
fn crops(pixels: &Tensor<4>, boxes: &[Cand], side: usize) -> (Vec<usize>, Tensor<4>) {
    let [_, _, h, w] = pixels.dims();
    let mut kept = Vec::new();
    let mut parts = Vec::new();
    for (i, c) in boxes.iter().enumerate() {
        // `trunc().int()`, then clamp to 1-based pixel coordinates.
        let x = (c.b[0].trunc() as i64).max(1);
        let y = (c.b[1].trunc() as i64).max(1);
        let ex = (c.b[2].trunc() as i64).min(w as i64);
        let ey = (c.b[3].trunc() as i64).min(h as i64);
        if ey > y - 1 && ex > x - 1 {
            let crop = pixels.clone().slice([
                0..1,
                0..3,
                (y - 1) as usize..ey as usize,
                (x - 1) as usize..ex as usize,
            ]);
            parts.push(adaptive_avg_pool2d(crop, [side, side]));
            kept.push(i);
        }
    }
    let device = pixels.device();
    let stacked = if parts.is_empty() {
        Tensor::zeros([0, 3, side, side], &device)
    } else {
        Tensor::cat(parts, 0)
    };
    (kept, stacked)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    /// Intersection over union, boxes as continuous (torchvision's `nms`).
    Union,
    /// Intersection over the smaller box, pixel-inclusive (facenet-pytorch's `nms_numpy` 'Min').
    Min,
}

/// Greedy non-maximum suppression; returns kept indices, best score first.
fn nms(boxes: &[Cand], threshold: f32, overlap: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| boxes[b].score.total_cmp(&boxes[a].score));
    let plus = if overlap == Overlap::Min { 1.0 } else { 0.0 };
    let area = |c: &Cand| (c.b[2] - c.b[0] + plus) * (c.b[3] - c.b[1] + plus);
    let mut keep = Vec::new();
    let mut removed = vec![false; boxes.len()];
    for (k, &i) in order.iter().enumerate() {
        if removed[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i];
        for &j in &order[k + 1..] {
            if removed[j] {
                continue;
            }
            let b = &boxes[j];
            let iw = (a.b[2].min(b.b[2]) - a.b[0].max(b.b[0]) + plus).max(0.0);
            let ih = (a.b[3].min(b.b[3]) - a.b[1].max(b.b[1]) + plus).max(0.0);
            let inter = iw * ih;
            let o = match overlap {
                Overlap::Union => inter / (area(a) + area(b) - inter),
                Overlap::Min => inter / area(a).min(area(b)),
            };
            if o > threshold {
                removed[j] = true;
            }
        }
    }
    keep
}

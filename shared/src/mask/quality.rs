//! How much a mask changes a picture: SSIM as TensorFlow's `tf.image.ssim` computes it (the
//! measure Chameleon constrains), DSSIM, and PSNR.

/// SSIM's Gaussian window: 11×11, σ = 1.5, normalised (TensorFlow's defaults).
pub const WINDOW: usize = 11;
/// The window's standard deviation.
pub const SIGMA: f64 = 1.5;

/// The normalised 1-D Gaussian whose outer product is SSIM's window.
pub fn gaussian_window() -> [f64; WINDOW] {
    #[allow(clippy::cast_precision_loss)]
    let raw: [f64; WINDOW] = std::array::from_fn(|i| {
        let x = i as f64 - (WINDOW as f64 - 1.0) / 2.0;
        (-x * x / (2.0 * SIGMA * SIGMA)).exp()
    });
    let sum: f64 = raw.iter().sum();
    raw.map(|v| v / sum)
}

/// Mean SSIM of two interleaved 3-channel images of `rows × cols` on the 0..255 scale (valid
/// windows only, k1 = 0.01, k2 = 0.03, averaged over positions and channels). `None` when the
/// images are smaller than the window or their sizes differ.
pub fn ssim(a: &[f32], b: &[f32], rows: usize, cols: usize) -> Option<f64> {
    if rows < WINDOW || cols < WINDOW || a.len() != rows * cols * 3 || b.len() != a.len() {
        return None;
    }
    let g = gaussian_window();
    let (c1, c2) = ((0.01_f64 * 255.0).powi(2), (0.03_f64 * 255.0).powi(2));
    let (out_rows, out_cols) = (rows - WINDOW + 1, cols - WINDOW + 1);
    let mut total = 0.0;
    for c in 0..3 {
        // Separable filtering of the five planes SSIM needs.
        let plane = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
            let mut horizontal = vec![0.0; rows * out_cols];
            for r in 0..rows {
                for q in 0..out_cols {
                    horizontal[r * out_cols + q] = (0..WINDOW)
                        .map(|k| {
                            let i = (r * cols + q + k) * 3 + c;
                            g[k] * f(f64::from(a[i]), f64::from(b[i]))
                        })
                        .sum();
                }
            }
            let mut out = vec![0.0; out_rows * out_cols];
            for r in 0..out_rows {
                for q in 0..out_cols {
                    out[r * out_cols + q] = (0..WINDOW)
                        .map(|k| g[k] * horizontal[(r + k) * out_cols + q])
                        .sum();
                }
            }
            out
        };
        let mu_a = plane(&|x, _| x);
        let mu_b = plane(&|_, y| y);
        let aa = plane(&|x, _| x * x);
        let bb = plane(&|_, y| y * y);
        let ab = plane(&|x, y| x * y);
        for i in 0..mu_a.len() {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let luminance = (2.0 * ma * mb + c1) / (ma * ma + mb * mb + c1);
            let structure =
                (2.0 * (ab[i] - ma * mb) + c2) / ((aa[i] - ma * ma) + (bb[i] - mb * mb) + c2);
            total += luminance * structure;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    Some(total / (3 * out_rows * out_cols) as f64)
}

/// Structural dissimilarity, `(1 − SSIM) / 2`: Chameleon's perceptibility measure.
pub fn dssim(a: &[f32], b: &[f32], rows: usize, cols: usize) -> Option<f64> {
    ssim(a, b, rows, cols).map(|s| (1.0 - s) / 2.0)
}

/// Peak signal-to-noise ratio in dB for the 0..255 scale; infinite for identical inputs,
/// `None` for inputs of different or zero length.
pub fn psnr(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let squared: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let mse = squared / a.len() as f64;
    Some(10.0 * (255.0_f64 * 255.0 / mse).log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: usize, cols: usize, seed: usize) -> Vec<f32> {
        #[allow(clippy::cast_precision_loss)]
        (0..rows * cols * 3)
            .map(|i| ((i * 2_654_435_761 + seed) % 256) as f32)
            .collect()
    }

    #[test]
    fn ssim_is_one_for_identical_images_and_falls_with_noise() {
        let a = image(20, 24, 0);
        assert!((ssim(&a, &a, 20, 24).unwrap() - 1.0).abs() < 1e-12);
        let slightly: Vec<f32> = a.iter().map(|v| (v + 3.0).min(255.0)).collect();
        let noisy = image(20, 24, 17);
        let s1 = ssim(&a, &slightly, 20, 24).unwrap();
        let s2 = ssim(&a, &noisy, 20, 24).unwrap();
        assert!(s1 < 1.0 && s1 > 0.9, "{s1}");
        assert!(s2 < s1, "{s2} vs {s1}");
        assert!(ssim(&a, &a, 12, 40).is_some());
        assert!(ssim(&a[..30], &a[..30], 10, 1).is_none());
    }

    #[test]
    fn ssim_of_a_constant_shift_matches_the_closed_form() {
        // Constant images: SSIM is the luminance term alone, (2ab + c1) / (a² + b² + c1).
        let a = vec![100.0_f32; 12 * 12 * 3];
        let b = vec![140.0_f32; 12 * 12 * 3];
        let c1 = (0.01_f64 * 255.0).powi(2);
        let expected = (2.0 * 100.0 * 140.0 + c1) / (100.0_f64.powi(2) + 140.0_f64.powi(2) + c1);
        assert!((ssim(&a, &b, 12, 12).unwrap() - expected).abs() < 1e-9);
        assert!((dssim(&a, &b, 12, 12).unwrap() - (1.0 - expected) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn psnr_of_a_known_error() {
        let a = vec![10.0_f32; 100];
        let b = vec![12.0_f32; 100];
        let expected = 10.0 * (255.0_f64 * 255.0 / 4.0).log10();
        assert!((psnr(&a, &b).unwrap() - expected).abs() < 1e-9);
        assert!(psnr(&a, &a).unwrap().is_infinite());
        assert!(psnr(&a, &b[..3]).is_none());
    }
}

//! Keypoint heatmaps: Gaussian targets and their decoding, in the pixel convention of the
//! generator (pixel `(i, j)` covers `[i, i + 1) × [j, j + 1)`).
//!
//! A heatmap of stride `s` has one cell per `s × s` block of image pixels; cell `(u, v)` is
//! centred at image point `((u + 0.5)·s, (v + 0.5)·s)`. A keypoint `(x, y)` therefore sits at the
//! continuous cell coordinate `(x / s − 0.5, y / s − 0.5)`, where its target peaks:
//! `exp(−((u − u₀)² + (v − v₀)²) / 2σ²)`, σ in cells. Decoding takes the arg-max cell and refines
//! it with a parabola through the logarithms of it and its neighbours, per axis (exact for a
//! Gaussian, as DARK, Zhang et al. 2020, observes), then maps back to image pixels.

use super::skeleton::{Keypoints, NUM_KEYPOINTS, Visibility};

/// The size and spread of heatmaps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatmapSpec {
    /// Cells across.
    pub width: usize,
    /// Cells down.
    pub height: usize,
    /// Image pixels per cell, along each axis.
    pub stride: f32,
    /// The Gaussian's standard deviation, in cells.
    pub sigma: f32,
}

impl HeatmapSpec {
    /// Cells per heatmap.
    pub fn cells(&self) -> usize {
        self.width * self.height
    }

    /// The continuous cell coordinate of image point `(x, y)`.
    pub fn to_cells(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [x / self.stride - 0.5, y / self.stride - 0.5]
    }

    /// The image point of continuous cell coordinate `(u, v)`.
    pub fn to_image(&self, [u, v]: [f32; 2]) -> [f32; 2] {
        [(u + 0.5) * self.stride, (v + 0.5) * self.stride]
    }
}

/// Gaussian targets for one frame: `[17 · height · width]` values (joint by joint, rows top to
/// bottom) and a weight per joint — 1 for a labelled joint (visibility 1 or 2) whose peak lies
/// on the heatmap, 0 otherwise (its target is all zeros).
pub fn encode(
    spec: &HeatmapSpec,
    keypoints: &Keypoints,
    visibility: &Visibility,
) -> (Vec<f32>, [f32; NUM_KEYPOINTS]) {
    let cells = spec.cells();
    let mut maps = vec![0.0_f32; NUM_KEYPOINTS * cells];
    let mut weights = [0.0_f32; NUM_KEYPOINTS];
    // The Gaussian is negligible beyond 3σ; only those cells are written.
    let reach = 3.0 * spec.sigma;
    let two_var = 2.0 * spec.sigma * spec.sigma;
    #[allow(clippy::cast_precision_loss)] // heatmap sides are small
    let (w, h) = (spec.width as f32, spec.height as f32);
    for k in 0..NUM_KEYPOINTS {
        if visibility[k] == 0 {
            continue;
        }
        let [u0, v0] = spec.to_cells(keypoints[k]);
        if !(u0 >= -0.5 && u0 < w - 0.5 && v0 >= -0.5 && v0 < h - 0.5) {
            continue;
        }
        weights[k] = 1.0;
        let map = &mut maps[k * cells..(k + 1) * cells];
        // Clamped to the heatmap, so the casts are in range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let span = |c: f32, n: f32| {
            let lo = (c - reach).floor().max(0.0) as usize;
            let hi = (c + reach).ceil().min(n - 1.0) as usize;
            lo..=hi
        };
        for v in span(v0, h) {
            for u in span(u0, w) {
                #[allow(clippy::cast_precision_loss)] // cell indices are small
                let (du, dv) = (u as f32 - u0, v as f32 - v0);
                map[v * spec.width + u] = libm::expf(-(du * du + dv * dv) / two_var);
            }
        }
    }
    (maps, weights)
}

/// The keypoint one heatmap (`height · width` values) points at, in image pixels, and the
/// heatmap's largest value (its confidence).
///
/// # Panics
/// When `map` is not `spec.cells()` long or the heatmap is empty.
pub fn decode(spec: &HeatmapSpec, map: &[f32]) -> ([f32; 2], f32) {
    assert_eq!(map.len(), spec.cells(), "a heatmap of the wrong size");
    let (best, &peak) = map
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("a heatmap has cells");
    let (u, v) = (best % spec.width, best / spec.width);
    let at = |u: usize, v: usize| map[v * spec.width + u];
    // A parabola through the logarithms of three neighbours; its vertex, within ±0.5.
    let refine = |left: f32, centre: f32, right: f32| -> f32 {
        let floor = 1e-10_f32;
        let (low, mid, high) = (
            libm::logf(left.max(floor)),
            libm::logf(centre.max(floor)),
            libm::logf(right.max(floor)),
        );
        let curvature = low - 2.0 * mid + high;
        if curvature < 0.0 {
            (0.5 * (low - high) / curvature).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let du = if u > 0 && u + 1 < spec.width {
        refine(at(u - 1, v), peak, at(u + 1, v))
    } else {
        0.0
    };
    let dv = if v > 0 && v + 1 < spec.height {
        refine(at(u, v - 1), peak, at(u, v + 1))
    } else {
        0.0
    };
    #[allow(clippy::cast_precision_loss)] // cell indices are small
    let point = spec.to_image([u as f32 + du, v as f32 + dv]);
    (point, peak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    const SPEC: HeatmapSpec = HeatmapSpec {
        width: 32,
        height: 24,
        stride: 4.0,
        sigma: 2.0,
    };

    #[test]
    fn the_target_peaks_at_the_keypoints_cell() {
        let mut keypoints = [[0.0_f32; 2]; NUM_KEYPOINTS];
        keypoints[0] = [50.0, 30.0]; // cell (12, 7), at its centre
        keypoints[1] = [51.9, 28.1]; // still cell (12, 7)
        let mut visibility = [0_u8; NUM_KEYPOINTS];
        visibility[0] = 2;
        visibility[1] = 1;
        let (maps, weights) = encode(&SPEC, &keypoints, &visibility);
        for k in 0..2 {
            let map = &maps[k * SPEC.cells()..(k + 1) * SPEC.cells()];
            let best = map
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!((best % 32, best / 32), (12, 7), "joint {k}");
            assert!((weights[k] - 1.0).abs() < f32::EPSILON);
        }
        // Not labelled: no target, no weight.
        assert!(weights[2].abs() < f32::EPSILON);
        assert!(
            maps[2 * SPEC.cells()..3 * SPEC.cells()]
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn decoding_an_encoded_keypoint_returns_it_within_a_quarter_pixel() {
        let mut rng = SplitMix64(11);
        let mut worst = 0.0_f32;
        for _ in 0..500 {
            let mut keypoints = [[0.0_f32; 2]; NUM_KEYPOINTS];
            for point in &mut keypoints {
                // Away from the border, where the parabola has both neighbours.
                *point = [rng.between([6.0, 122.0]), rng.between([6.0, 90.0])];
            }
            let (maps, _) = encode(&SPEC, &keypoints, &[2; NUM_KEYPOINTS]);
            for (k, truth) in keypoints.iter().enumerate() {
                let (point, peak) = decode(&SPEC, &maps[k * SPEC.cells()..(k + 1) * SPEC.cells()]);
                assert!(peak > 0.8, "{peak}");
                worst = worst.max((point[0] - truth[0]).abs().max((point[1] - truth[1]).abs()));
            }
        }
        assert!(worst <= 0.25, "worst {worst} px");
    }

    #[test]
    fn a_keypoint_off_the_heatmap_has_no_target() {
        let mut keypoints = [[10.0_f32; 2]; NUM_KEYPOINTS];
        keypoints[3] = [-3.0, 10.0];
        keypoints[4] = [200.0, 10.0];
        let (maps, weights) = encode(&SPEC, &keypoints, &[2; NUM_KEYPOINTS]);
        assert_eq!((weights[3], weights[4], weights[5]), (0.0, 0.0, 1.0));
        assert!(
            maps[3 * SPEC.cells()..5 * SPEC.cells()]
                .iter()
                .all(|&v| v == 0.0)
        );
    }
}

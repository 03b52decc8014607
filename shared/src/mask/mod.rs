//! Chameleon's P3-Mask, the parts every side shares: where a face's mask goes (the boxed canvas
//! Chameleon inherits from Fawkes), the bilinear resampling that carries the 112×112 mask to the
//! face and back, applying and removing a mask on a photo (the CPU twin of
//! `shaders/apply_mask.wgsl`), image-quality measures (SSIM, PSNR), and the key file (`key`).
//!
//! Pixel buffers are interleaved (rows top to bottom, then columns, then channels) on the 0..255
//! scale, as photos and the key's payload store them.

pub mod key;
pub mod quality;

/// Side of the square mask, in pixels.
pub const MASK_SIDE: usize = 112;
/// Chameleon's (and Fawkes') margin: a face's canvas is `max(w, h) + MARGIN` pixels square.
pub const MARGIN: usize = 30;
/// Values in the mask: its side squared, three channels.
pub const MASK_LEN: usize = MASK_SIDE * MASK_SIDE * 3;

/// A face's square canvas: the face rectangle in the photo, centred on a square of side
/// `max(w, h) + MARGIN` that is resized to the 112×112 mask space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceCanvas {
    /// The face rectangle in photo pixels: left, top, width, height; inside the photo.
    pub face: [usize; 4],
    /// The canvas' side.
    pub side: usize,
    /// Where the face's top-left pixel sits on the canvas: column, row.
    pub offset: [usize; 2],
}

impl FaceCanvas {
    /// The canvas of a detector's box (left, top, right, bottom, in pixels, possibly
    /// fractional or partly outside the photo): the box is widened to whole pixels and clipped
    /// to the photo. `None` when nothing of it is inside the photo.
    pub fn from_box(bbox: [f32; 4], width: usize, height: usize) -> Option<Self> {
        let [x0, y0, x1, y1] = bbox;
        if !bbox.iter().all(|v| v.is_finite()) {
            return None;
        }
        // Pixel coordinates: the casts saturate, and the clamps keep them inside the photo.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = |v: f32, limit: usize| (v.max(0.0) as usize).min(limit);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (left, top, right, bottom) = (
            whole(x0.floor(), width),
            whole(y0.floor(), height),
            whole(x1.ceil(), width),
            whole(y1.ceil(), height),
        );
        if right <= left || bottom <= top {
            return None;
        }
        let (w, h) = (right - left, bottom - top);
        let side = w.max(h) + MARGIN;
        Some(Self {
            face: [left, top, w, h],
            side,
            offset: [(side - w) / 2, (side - h) / 2],
        })
    }

    /// The training input of this face: the face cut from `photo` (`width` columns, 3
    /// channels), pasted in the middle of the canvas filled with the face's mean colour, resized
    /// to 112×112. Values on the 0..255 scale, not rounded.
    pub fn boxed_face(&self, photo: &[u8], width: usize) -> Vec<f32> {
        let [left, top, w, h] = self.face;
        let mut sum = [0.0_f64; 3];
        for row in top..top + h {
            for col in left..left + w {
                for (c, s) in sum.iter_mut().enumerate() {
                    *s += f64::from(photo[(row * width + col) * 3 + c]);
                }
            }
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let mean = sum.map(|s| (s / (w * h) as f64) as f32);
        let mut canvas: Vec<f32> = mean
            .iter()
            .copied()
            .cycle()
            .take(self.side * self.side * 3)
            .collect();
        let [ox, oy] = self.offset;
        for row in 0..h {
            for col in 0..w {
                let from = ((top + row) * width + left + col) * 3;
                let to = ((oy + row) * self.side + ox + col) * 3;
                for c in 0..3 {
                    canvas[to + c] = f32::from(photo[from + c]);
                }
            }
        }
        resize(&canvas, [self.side, self.side], [MASK_SIDE, MASK_SIDE])
    }

    /// The linear maps of the training round trip (Chameleon's steps 2–4: upsample to the
    /// canvas, keep the change only on the face rectangle, downsample): for a masked face `x'`
    /// and its clean face `x`, both 112×112 in one channel, the result is
    /// `rows · x' · colsᵀ + (full_rows · x · full_colsᵀ − rows · x · colsᵀ)`, where the
    /// rectangle's mask, being a product of a row and a column indicator, folds into
    /// `rows = D·diag(m_rows)·U` and `cols = D·diag(m_cols)·U`, and `full = D·U`.
    ///
    /// Returns `(rows, cols, full)`, each 112×112 row-major.
    pub fn round_trip(&self) -> [Vec<f32>; 3] {
        let up = bilinear_matrix(self.side, MASK_SIDE);
        let down = bilinear_matrix(MASK_SIDE, self.side);
        let [ox, oy] = self.offset;
        let [_, _, w, h] = self.face;
        let fold = |keep: &dyn Fn(usize) -> bool| -> Vec<f32> {
            let mut out = vec![0.0_f32; MASK_SIDE * MASK_SIDE];
            for i in 0..MASK_SIDE {
                for j in 0..MASK_SIDE {
                    let mut s = 0.0_f64;
                    for k in (0..self.side).filter(|&k| keep(k)) {
                        s += f64::from(down[i * self.side + k]) * f64::from(up[k * MASK_SIDE + j]);
                    }
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        out[i * MASK_SIDE + j] = s as f32;
                    }
                }
            }
            out
        };
        [
            fold(&|k| (oy..oy + h).contains(&k)),
            fold(&|k| (ox..ox + w).contains(&k)),
            fold(&|_| true),
        ]
    }
}

impl FaceCanvas {
    /// What training sees of a masked face (Chameleon's steps 2–4): `masked` carried to the
    /// canvas, kept only on the face rectangle over the carried `clean` face, and brought back.
    /// Both inputs and the result are interleaved 112×112×3.
    pub fn through_canvas(&self, clean: &[f32], masked: &[f32]) -> Vec<f32> {
        let [rows, cols, full] = self.round_trip();
        let n = MASK_SIDE;
        // a · plane · bᵀ for one 112×112 plane.
        let product = |a: &[f32], plane: &[f32], b: &[f32]| -> Vec<f32> {
            let mut t = vec![0.0_f32; n * n];
            for i in 0..n {
                for k in 0..n {
                    let v = a[i * n + k];
                    for j in 0..n {
                        t[i * n + j] += v * plane[k * n + j];
                    }
                }
            }
            (0..n * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    (0..n).map(|k| t[i * n + k] * b[j * n + k]).sum()
                })
                .collect()
        };
        let mut seen = vec![0.0_f32; MASK_LEN];
        for c in 0..3 {
            let channel = |v: &[f32]| v.iter().skip(c).step_by(3).copied().collect::<Vec<_>>();
            let (x, xp) = (channel(clean), channel(masked));
            let kept = product(&rows, &xp, &cols);
            let whole = product(&full, &x, &full);
            let cut = product(&rows, &x, &cols);
            for i in 0..n * n {
                seen[i * 3 + c] = kept[i] + whole[i] - cut[i];
            }
        }
        seen
    }
}

/// Where output pixel `i` of `output` samples an axis of `input` pixels: the two neighbours
/// and the weight of the second, with half-pixel centres (TensorFlow 2's `tf.image.resize`,
/// bilinear, no antialiasing, which Chameleon uses).
///
/// In `f32`, operation for operation as `apply_mask.wgsl` computes it, so that the shader and
/// its twin agree.
fn sample_at(i: usize, input: usize, output: usize) -> (usize, usize, f32) {
    #[allow(clippy::cast_precision_loss)]
    let x = ((i as f32 + 0.5) * (input as f32 / output as f32) - 0.5).max(0.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let x0 = (x.floor() as usize).min(input - 1);
    let x1 = (x0 + 1).min(input - 1);
    #[allow(clippy::cast_precision_loss)]
    let weight = (x - x0 as f32).clamp(0.0, 1.0);
    (x0, x1, weight)
}

/// The `output × input` matrix of bilinear resampling along one axis, row-major.
pub fn bilinear_matrix(output: usize, input: usize) -> Vec<f32> {
    let mut m = vec![0.0_f32; output * input];
    for i in 0..output {
        let (x0, x1, w) = sample_at(i, input, output);
        m[i * input + x0] += 1.0 - w;
        m[i * input + x1] += w;
    }
    m
}

/// Bilinear resize of an interleaved 3-channel image from `[rows, cols]` to `to`.
pub fn resize(image: &[f32], [rows, cols]: [usize; 2], to: [usize; 2]) -> Vec<f32> {
    let mut out = vec![0.0_f32; to[0] * to[1] * 3];
    for y in 0..to[0] {
        let (y0, y1, wy) = sample_at(y, rows, to[0]);
        for x in 0..to[1] {
            let (x0, x1, wx) = sample_at(x, cols, to[1]);
            for c in 0..3 {
                let at = |r: usize, q: usize| image[(r * cols + q) * 3 + c];
                let top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx;
                let bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx;
                out[(y * to[1] + x) * 3 + c] = top * (1.0 - wy) + bottom * wy;
            }
        }
    }
    out
}

/// The mask's value for the photo pixel at `(col, row)` inside `canvas`'s face rectangle:
/// the 112×112 mask resized to the canvas, sampled there.
///
/// # Panics
/// Never for `delta` of [`MASK_LEN`] values and a pixel inside the face rectangle.
pub fn mask_at(delta: &[f32], canvas: &FaceCanvas, col: usize, row: usize) -> [f32; 3] {
    let [left, top, _, _] = canvas.face;
    let [ox, oy] = canvas.offset;
    let (y0, y1, wy) = sample_at(row - top + oy, MASK_SIDE, canvas.side);
    let (x0, x1, wx) = sample_at(col - left + ox, MASK_SIDE, canvas.side);
    std::array::from_fn(|c| {
        let at = |r: usize, q: usize| delta[(r * MASK_SIDE + q) * 3 + c];
        let upper = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx;
        let lower = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx;
        upper * (1.0 - wy) + lower * wy
    })
}

/// Adds `strength · δ` (or subtracts it, with a negative strength: the key holder's removal)
/// to the face rectangle of an interleaved photo with `channels` (3, or 4 with alpha left
/// alone) per pixel, rounding and clipping to 0..255. Pixels outside the rectangle are not
/// touched. Returns how many channel values were clipped.
pub fn apply(
    photo: &mut [u8],
    width: usize,
    channels: usize,
    canvas: &FaceCanvas,
    delta: &[f32],
    strength: f32,
) -> usize {
    let [left, top, w, h] = canvas.face;
    let mut clipped = 0;
    for row in top..top + h {
        for col in left..left + w {
            let d = mask_at(delta, canvas, col, row);
            let at = (row * width + col) * channels;
            for (c, dc) in d.iter().enumerate() {
                // Half up, as the shader rounds (WGSL's `round` would round half to even).
                let v = (f32::from(photo[at + c]) + strength * dc + 0.5).floor();
                if !(0.0..=255.0).contains(&v) {
                    clipped += 1;
                }
                // Clamped to 0..255 first, so the cast is exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                {
                    photo[at + c] = v.clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_centres_the_clipped_box() {
        let canvas = FaceCanvas::from_box([10.4, -5.0, 60.2, 70.9], 100, 60).unwrap();
        assert_eq!(canvas.face, [10, 0, 51, 60]);
        assert_eq!(canvas.side, 90);
        assert_eq!(canvas.offset, [19, 15]);
        assert!(FaceCanvas::from_box([120.0, 0.0, 130.0, 10.0], 100, 60).is_none());
        assert!(FaceCanvas::from_box([f32::NAN, 0.0, 30.0, 10.0], 100, 60).is_none());
    }

    #[test]
    fn bilinear_matrices_keep_constants_and_match_resize() {
        for (out, input) in [(112, 300), (300, 112), (112, 112), (7, 3)] {
            let m = bilinear_matrix(out, input);
            for row in m.chunks(input) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
        assert_eq!(bilinear_matrix(5, 5), {
            let mut eye = vec![0.0; 25];
            (0..5).for_each(|i| eye[i * 5 + i] = 1.0);
            eye
        });
        // Resizing one channel through the matrices equals `resize`.
        let (rows, cols, to) = (9, 13, [5, 17]);
        #[allow(clippy::cast_precision_loss)]
        let image: Vec<f32> = (0..rows * cols * 3)
            .map(|i| ((i * 37) % 251) as f32)
            .collect();
        let resized = resize(&image, [rows, cols], to);
        let (r, q) = (bilinear_matrix(to[0], rows), bilinear_matrix(to[1], cols));
        for y in 0..to[0] {
            for x in 0..to[1] {
                let mut s = 0.0;
                for i in 0..rows {
                    for j in 0..cols {
                        s += r[y * rows + i] * image[(i * cols + j) * 3 + 1] * q[x * cols + j];
                    }
                }
                assert!((s - resized[(y * to[1] + x) * 3 + 1]).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn applying_then_removing_restores_every_unclipped_pixel() {
        let (width, height) = (80, 70);
        #[allow(clippy::cast_possible_truncation)]
        let photo: Vec<u8> = (0..width * height * 3)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let delta: Vec<f32> = (0..MASK_LEN)
            .map(|i| ((i * 7919 % 321) as f32 / 10.0) - 16.0)
            .collect();
        let canvas = FaceCanvas::from_box([12.0, 8.0, 61.0, 66.0], width, height).unwrap();
        let mut masked = photo.clone();
        let clipped = apply(&mut masked, width, 3, &canvas, &delta, 1.0);
        assert!(clipped > 0, "the test photo should saturate somewhere");
        let mut restored = masked.clone();
        apply(&mut restored, width, 3, &canvas, &delta, -1.0);
        let [left, top, w, h] = canvas.face;
        let mut changed = 0;
        for (i, ((&p, &m), &r)) in photo.iter().zip(&masked).zip(&restored).enumerate() {
            let (row, col) = (i / 3 / width, i / 3 % width);
            let inside = (left..left + w).contains(&col) && (top..top + h).contains(&row);
            if !inside {
                assert_eq!(p, m, "outside the face at ({col}, {row})");
                continue;
            }
            changed += usize::from(p != m);
            let d = mask_at(&delta, &canvas, col, row)[i % 3];
            let unclipped = (0.0..=255.0).contains(&(f32::from(p) + d).round());
            if unclipped {
                assert!(p.abs_diff(r) <= 1, "({col}, {row}): {p} → {m} → {r}");
            }
        }
        assert!(changed > w * h, "the mask changed only {changed} values");
    }

    #[test]
    fn the_round_trip_maps_equal_the_explicit_canvas() {
        let canvas = FaceCanvas {
            face: [0, 0, 40, 25],
            side: 70,
            offset: [15, 22],
        };
        #[allow(clippy::cast_precision_loss)]
        let x: Vec<f32> = (0..MASK_LEN).map(|i| (i % 97) as f32).collect();
        #[allow(clippy::cast_precision_loss)]
        let xp: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + (i % 5) as f32)
            .collect();
        // Explicitly: upsample both, keep x' on the face rectangle, downsample.
        let up = |v: &[f32]| resize(v, [MASK_SIDE; 2], [canvas.side; 2]);
        let (cx, cxp) = (up(&x), up(&xp));
        let mut mixed = cx.clone();
        for r in 22..47 {
            for c in 15..55 {
                let i = (r * canvas.side + c) * 3;
                mixed[i..i + 3].copy_from_slice(&cxp[i..i + 3]);
            }
        }
        let explicit = resize(&mixed, [canvas.side; 2], [MASK_SIDE; 2]);
        let fast = canvas.through_canvas(&x, &xp);
        for (i, (a, b)) in fast.iter().zip(&explicit).enumerate() {
            assert!((a - b).abs() < 1e-2, "value {i}: {a} vs {b}");
        }
    }
}

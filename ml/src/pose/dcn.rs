//! Modulated deformable convolution (`DCNv2`, torchvision semantics) from one bilinear
//! `grid_sample_2d` and one matmul. burn's own `deform_conv2d` is correct but ~150–230× a plain
//! conv in forward + backward on the CPU (spec `pose.md` §10), this one ~12× faster than it; it is
//! built from generic differentiable ops, so gradients reach input, offsets, mask and weight.
//!
//! Pixel mapping: `align_corners = false`, pixel `u` of a side of length `s` sits at the
//! normalised coordinate `(2u + 1) / s − 1` (unlike `align_corners = true`, defined for `s = 1`).
//! The input is first zero-padded on the right and bottom to power-of-two sides: those
//! coordinates are then exact in `f32`, so integer sampling points read pixels exactly instead of
//! blending in ~1e-7 of a neighbour. The padding reads as the zeros outside the image anyway:
//! a point in (−1, 0) or (s − 1, s) keeps the partial weight of its one in-range corner and a
//! point at or beyond −1 or `s` reads 0, as in torchvision.

use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

/// Options of a deformable convolution; stride 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeformOptions {
    /// Zero padding on every side.
    pub padding: usize,
    /// Spacing between kernel taps (1: a dense kernel).
    pub dilation: usize,
    /// Groups of contiguous input channels sharing one set of offsets and mask.
    pub offset_groups: usize,
}

/// How the sampling grid is read (see the module's documentation).
fn sample_options() -> GridSampleOptions {
    GridSampleOptions::new(InterpolateMode::Bilinear)
        .with_padding_mode(GridSamplePaddingMode::Zeros)
        .with_align_corners(false)
}

/// `x` zero-padded on the right and bottom to power-of-two sides (see the module's documentation).
fn padded(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let (hs, ws) = (h.next_power_of_two(), w.next_power_of_two());
    if (hs, ws) == (h, w) {
        return x;
    }
    x.pad((0, ws - w, 0, hs - h), PadMode::Constant(0.0))
}

/// Pixel coordinate `u` on a side of `size` pixels, normalised for [`sample_options`]; in `f64`
/// so that only the final rounding to `f32` is lost.
fn normalised(u: f64, size: usize) -> f32 {
    ((2.0 * u + 1.0) / size as f64 - 1.0) as f32
}

/// The undeformed sampling points as `(x, y)` normalised for an image of `size` `[h, w]`:
/// `[1, k·k, h_out·w_out, 2]`, taps row-major, tap `(i, j)` of output `(y, x)` at pixel
/// `(y − p + d·i, x − p + d·j)`.
fn base_grid(
    kernel: usize,
    size: [usize; 2],
    [h_out, w_out]: [usize; 2],
    options: DeformOptions,
    device: &Device,
) -> Tensor<4> {
    let (pad, dilation) = (options.padding as f64, options.dilation as f64);
    let mut points = Vec::with_capacity(2 * kernel * kernel * h_out * w_out);
    for i in 0..kernel {
        for j in 0..kernel {
            for y in 0..h_out {
                for x in 0..w_out {
                    points.push(normalised(x as f64 - pad + dilation * j as f64, size[1]));
                    points.push(normalised(y as f64 - pad + dilation * i as f64, size[0]));
                }
            }
        }
    }
    let shape = [1, kernel * kernel, h_out * w_out, 2];
    Tensor::from_data(TensorData::new(points, shape), device)
}

/// A modulated deformable convolution with stride 1, no weight groups.
///
/// Tap `(i, j)` of output `(y, x)` in offset group `g` samples the input bilinearly at
/// `(y − p + d·i + dy, x − p + d·j + dx)` (zero outside), times its mask value.
///
/// # Shapes
/// - `input`: `[n, c, h, w]`, `c` divisible by `offset_groups` (`g`)
/// - `offset`: `[n, 2·g·k·k, h_out, w_out]`, ordered (group, tap row-major, (dy, dx)) as
///   torchvision
/// - `mask`: `[n, g·k·k, h_out, w_out]`
/// - `weight`: `[o, c, k, k]`; `bias`: `[o]`
/// - returns `[n, o, h_out, w_out]` with `h_out = h + 2p − d(k − 1)`, likewise `w_out`
///
/// # Panics
/// On shapes that disagree with the above, zero `offset_groups` or `dilation`, or a kernel
/// wider than the padded input.
pub fn deform_conv2d(
    input: Tensor<4>,
    offset: Tensor<4>,
    mask: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: DeformOptions,
) -> Tensor<4> {
    let [n, c, h, w] = input.dims();
    let [outputs, weight_c, kernel, kernel_w] = weight.dims();
    let (pad, dilation, groups) = (options.padding, options.dilation, options.offset_groups);
    assert!(
        weight_c == c && kernel_w == kernel && kernel > 0,
        "deform_conv2d: weight {:?} must be [o, {c}, k, k]",
        weight.dims()
    );
    assert!(
        groups > 0 && c.is_multiple_of(groups),
        "deform_conv2d: {groups} offset groups do not split {c} channels"
    );
    assert!(dilation > 0, "deform_conv2d: dilation must be positive");
    let span = dilation * (kernel - 1);
    assert!(
        h + 2 * pad > span && w + 2 * pad > span,
        "deform_conv2d: a kernel spanning {span} + 1 pixels exceeds the padded {h}×{w} input"
    );
    let (h_out, w_out) = (h + 2 * pad - span, w + 2 * pad - span);
    let (taps, spatial, group_c) = (kernel * kernel, h_out * w_out, c / groups);
    let offset_shape = [n, 2 * groups * taps, h_out, w_out];
    assert_eq!(offset.dims(), offset_shape, "deform_conv2d: offset shape");
    let mask_shape = [n, groups * taps, h_out, w_out];
    assert_eq!(mask.dims(), mask_shape, "deform_conv2d: mask shape");
    if let Some(bias) = &bias {
        assert_eq!(bias.dims(), [outputs], "deform_conv2d: bias shape");
    }

    let device = input.device();
    let input = padded(input);
    let [_, _, hs, ws] = input.dims();
    // Offsets (dy, dx) in pixels → (dx, dy) in normalised units, on top of the undeformed grid.
    let scale = Tensor::<1>::from_floats([2.0 / ws as f32, 2.0 / hs as f32], &device);
    let grid = offset
        .reshape([n * groups, taps, 2, spatial])
        .swap_dims(2, 3)
        .flip([3])
        * scale.reshape([1, 1, 1, 2])
        + base_grid(kernel, [hs, ws], [h_out, w_out], options, &device);
    // Each offset group is a batch entry of its own: one sample call covers every tap.
    let sampled = input.reshape([n * groups, group_c, hs, ws]).grid_sample_2d(
        grid.reshape([n * groups, taps * h_out, w_out, 2]),
        sample_options(),
    );
    // Rows (channel, tap) match `weight.reshape([o, c·k·k])`.
    let columns = (sampled.reshape([n * groups, group_c, taps, spatial])
        * mask.reshape([n * groups, 1, taps, spatial]))
    .reshape([n, c * taps, spatial]);
    let out = weight.reshape([1, outputs, c * taps]).matmul(columns);
    let out = match bias {
        Some(bias) => out + bias.reshape([1, outputs, 1]),
        None => out,
    };
    out.reshape([n, outputs, h_out, w_out])
}

#[cfg(test)]
mod tests {
    use burn::tensor::module;
    use burn::tensor::ops::{ConvOptions, DeformConvOptions};

    use super::*;
    use crate::llm::values;

    /// Deterministic uniform values in `[lo, hi)` (splitmix64).
    fn uniform(count: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                lo + (hi - lo) * (z >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
        tensor(uniform(shape.iter().product(), seed, -1.0, 1.0), shape)
    }

    /// Offsets of integer part in −3..=2 and fractional part in [0.1, 0.9]: samples leave the
    /// image, land in (−1, 0), and stay clear of the integer points where bilinear gradients jump.
    fn offsets(shape: [usize; 4], seed: u64) -> Tensor<4> {
        let count = shape.iter().product();
        let fraction = uniform(count, seed + 1, 0.1, 0.9);
        let whole = uniform(count, seed, -3.0, 3.0).into_iter().map(f32::floor);
        tensor(whole.zip(fraction).map(|(a, b)| a + b).collect(), shape)
    }

    fn assert_close(ours: Tensor<4>, reference: Tensor<4>, tolerance: f32) {
        assert_eq!(ours.dims(), reference.dims());
        let (ours, reference) = (values(ours), values(reference));
        let scale = reference.iter().fold(1.0_f32, |m, v| m.max(v.abs()));
        let error = (ours.iter().zip(&reference)).fold(0.0_f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(error <= tolerance * scale, "error {error}, scale {scale}");
    }

    /// Inputs for `n 2, c 4, h 5, w 6, o 3, k 3`: input, offset, mask, weight and bias.
    fn case(options: DeformOptions, seed: u64) -> ([Tensor<4>; 4], Tensor<1>) {
        let (p, d, g) = (options.padding, options.dilation, options.offset_groups);
        let (h_out, w_out) = (5 + 2 * p - 2 * d, 6 + 2 * p - 2 * d);
        let mask = uniform(18 * g * h_out * w_out, seed + 2, 0.0, 1.0);
        let inputs = [
            random([2, 4, 5, 6], seed),
            offsets([2, 18 * g, h_out, w_out], seed + 4),
            tensor(mask, [2, 9 * g, h_out, w_out]),
            random([3, 4, 3, 3], seed + 3),
        ];
        (inputs, random([3], seed + 5))
    }

    /// burn's own deformable convolution, with [`deform_conv2d`]'s signature.
    fn reference(
        input: Tensor<4>,
        offset: Tensor<4>,
        mask: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        options: DeformOptions,
    ) -> Tensor<4> {
        let (p, d, g) = (options.padding, options.dilation, options.offset_groups);
        let options = DeformConvOptions::new([1, 1], [p, p], [d, d], 1, g);
        module::deform_conv2d(input, offset, weight, Some(mask), bias, options)
    }

    const fn opts(padding: usize, dilation: usize, offset_groups: usize) -> DeformOptions {
        DeformOptions {
            padding,
            dilation,
            offset_groups,
        }
    }

    #[test]
    fn zero_offsets_and_a_full_mask_are_a_plain_conv() {
        for (seed, options) in [(1, opts(1, 1, 1)), (2, opts(0, 1, 2)), (3, opts(2, 2, 2))] {
            let ([x, offset, mask, weight], bias) = case(options, seed);
            let (p, d) = (options.padding, options.dilation);
            let conv_options = ConvOptions::new([1, 1], [p, p], [d, d], 1);
            let conv = module::conv2d(x.clone(), weight.clone(), Some(bias.clone()), conv_options);
            let (offset, mask) = (offset.zeros_like(), mask.ones_like());
            let ours = deform_conv2d(x, offset, mask, weight, Some(bias), options);
            assert_close(ours, conv, 1e-5);
        }
    }

    #[test]
    fn fractional_offsets_match_burns_deform_conv() {
        for (seed, options) in [(4, opts(1, 1, 2)), (5, opts(1, 2, 2)), (6, opts(0, 1, 1))] {
            let run = |dcn: fn(_, _, _, _, _, _) -> Tensor<4>| {
                let ([x, offset, mask, weight], bias) = case(options, seed);
                dcn(x, offset, mask, weight, Some(bias), options)
            };
            assert_close(run(deform_conv2d), run(reference), 1e-4);
        }
    }

    #[test]
    fn gradients_match_burns_deform_conv() {
        for (seed, options) in [(7, opts(1, 1, 2)), (8, opts(1, 2, 2))] {
            let (inputs, bias) = case(options, seed);
            let [_, _, h_out, w_out] = inputs[1].dims();
            let target = random([2, 3, h_out, w_out], seed + 10).autodiff();
            // Input, offset, mask, weight and bias gradients of `sum(dcn(…) · target)`.
            let gradients = |dcn: fn(_, _, _, _, _, _) -> Tensor<4>| {
                let leaves = inputs.clone().map(|t| t.autodiff().require_grad());
                let b = bias.clone().autodiff().require_grad();
                let [x, offset, mask, weight] = leaves.clone();
                let out = dcn(x, offset, mask, weight, Some(b.clone()), options);
                let grads = (out * target.clone()).sum().backward();
                let bias_grad = b.grad(&grads).unwrap().reshape([1, 1, 1, 3]);
                let grads = leaves.map(|leaf| leaf.grad(&grads).unwrap());
                grads.into_iter().chain([bias_grad])
            };
            for (ours, expected) in gradients(deform_conv2d).zip(gradients(reference)) {
                assert_close(ours, expected, 1e-3);
            }
        }
    }

    #[test]
    fn identity_warp() {
        let (h, w) = (5, 6);
        let x = random([2, 3, h, w], 11);
        let grid = base_grid(1, [8, 8], [h, w], opts(0, 1, 1), &Device::flex())
            .reshape([1, h, w, 2])
            .expand([2, h, w, 2]);
        let warped = padded(x.clone()).grid_sample_2d(grid, sample_options());
        assert_eq!(values(warped), values(x.clone()));
        // The whole convolution with a 1 × 1 identity kernel, too.
        let eye = tensor(
            (0..9).map(|i| f32::from(i % 4 == 0)).collect(),
            [3, 3, 1, 1],
        );
        let zeros = Tensor::zeros([2, 2, h, w], &Device::flex());
        let ones = Tensor::ones([2, 1, h, w], &Device::flex());
        let ours = deform_conv2d(x.clone(), zeros, ones, eye, None, opts(0, 1, 1));
        assert_eq!(values(ours), values(x));
    }
}

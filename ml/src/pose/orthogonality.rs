//! JM-Pose's information-orthogonality term, `L_IO = I(M; J | Ĥ)`: what the motion features `M`
//! and the joint features `J` share beyond the initial heatmaps `Ĥ`, to be minimised so that
//! the two streams carry complementary cues (spec `pose.md` §4).
//!
//! The released code estimates it with a softmax-KL proxy that the spec calls too fragile to
//! copy; this is the spec's recommended surrogate [D], a decorrelation penalty:
//!
//! 1. per sample, flatten each channel over space and centre it;
//! 2. regress the heatmaps out of both streams: with `Q` an orthonormal basis of the (centred,
//!    detached) heatmap channels, `M ← M − Q Qᵀ M` and `J ← J − Q Qᵀ J` (Gram–Schmidt);
//! 3. normalise every channel to unit length and return the mean squared correlation between
//!    the channels of `M` and those of `J`: `‖Mᵀ J‖²_F / (c_M · c_J)`, averaged over the batch.
//!
//! It is 0 when every motion channel is uncorrelated with every joint channel once the
//! heatmaps are accounted for, and at least `1 / c` for identical streams. Channels with no
//! variance left (below 1e-6 of length) count as uncorrelated.

use burn::tensor::Tensor;

/// Below this length a channel is treated as constant (it correlates with nothing).
const FLAT: f32 = 1e-6;

/// Centres each channel of `x` over space: `[n, c, h, w]` → `[n, h·w, c]`.
fn centred_columns(x: Tensor<4>) -> Tensor<3> {
    let [n, c, h, w] = x.dims();
    let columns = x.reshape([n, c, h * w]).swap_dims(1, 2);
    let mean = columns.clone().mean_dim(1);
    columns - mean
}

/// Columns scaled to unit length; near-zero columns become zero.
fn unit_columns(x: Tensor<3>) -> Tensor<3> {
    let length = x.clone().square().sum_dim(1).sqrt();
    let keep = length.clone().greater_elem(FLAT).float();
    x * keep / length.clamp_min(FLAT)
}

/// An orthonormal basis of the columns of `x` (`[n, p, k]`), by Gram–Schmidt; a column that
/// adds nothing new becomes zero.
fn orthonormal(x: &Tensor<3>) -> Tensor<3> {
    let [_, _, k] = x.dims();
    let mut basis: Vec<Tensor<3>> = Vec::with_capacity(k);
    for j in 0..k {
        let mut v = x.clone().narrow(2, j, 1);
        for q in &basis {
            let along = (q.clone() * v.clone()).sum_dim(1);
            v = v - q.clone() * along;
        }
        basis.push(unit_columns(v));
    }
    Tensor::cat(basis, 2)
}

/// `x − Q Qᵀ x`: the part of each column of `x` outside the span of `q`'s orthonormal columns.
fn residual(x: Tensor<3>, q: &Tensor<3>) -> Tensor<3> {
    let coefficients = q.clone().swap_dims(1, 2).matmul(x.clone());
    x - q.clone().matmul(coefficients)
}

/// The decorrelation estimate of `I(M; J | Ĥ)` (see the module's documentation); without
/// `heatmaps`, of `I(M; J)`.
///
/// # Shapes
/// - `motion`: `[n, c_m, h, w]`; `joint`: `[n, c_j, h, w]`; `heatmaps`: `[n, k, h, w]`
/// - returns `[1]`
pub fn orthogonality_loss(
    motion: Tensor<4>,
    joint: Tensor<4>,
    heatmaps: Option<Tensor<4>>,
) -> Tensor<1> {
    let [n, cm, _, _] = motion.dims();
    let cj = joint.dims()[1];
    let (mut m, mut j) = (centred_columns(motion), centred_columns(joint));
    if let Some(h) = heatmaps {
        // The heatmaps condition the estimate; no gradient flows into them from this term.
        let q = orthonormal(&centred_columns(h.detach()));
        m = residual(m, &q);
        j = residual(j, &q);
    }
    let (m, j) = (unit_columns(m), unit_columns(j));
    let correlations = m.swap_dims(1, 2).matmul(j);
    #[allow(clippy::cast_precision_loss)] // channel and batch counts
    let scale = (n * cm * cj) as f64;
    correlations.square().sum().div_scalar(scale)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn image(values: Vec<f32>, c: usize, h: usize, w: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, [1, c, h, w]), &Device::flex())
    }

    fn value(t: Tensor<1>) -> f32 {
        t.into_data().iter::<f32>().next().unwrap()
    }

    /// Four spatial patterns on 2 × 4 pixels, orthogonal and of zero mean.
    fn patterns() -> [Vec<f32>; 3] {
        [
            vec![1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0],
            vec![1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0],
            vec![1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0],
        ]
    }

    #[test]
    fn orthogonal_streams_score_zero_and_identical_ones_positive() {
        let [a, b, _] = patterns();
        let zero = value(orthogonality_loss(
            image(a.clone(), 1, 2, 4),
            image(b, 1, 2, 4),
            None,
        ));
        assert!(zero.abs() < 1e-6, "{zero}");
        let same = value(orthogonality_loss(
            image(a.clone(), 1, 2, 4),
            image(a, 1, 2, 4),
            None,
        ));
        assert!((same - 1.0).abs() < 1e-5, "{same}");
    }

    #[test]
    fn what_the_heatmaps_explain_does_not_count() {
        let [a, b, shared] = patterns();
        // Both streams carry the heatmap's pattern on top of orthogonal ones.
        let plus = |x: &[f32]| x.iter().zip(&shared).map(|(p, s)| p + 2.0 * s).collect();
        let (m, j) = (image(plus(&a), 1, 2, 4), image(plus(&b), 1, 2, 4));
        let unconditioned = value(orthogonality_loss(m.clone(), j.clone(), None));
        assert!(unconditioned > 0.3, "{unconditioned}");
        let conditioned = value(orthogonality_loss(m, j, Some(image(shared, 1, 2, 4))));
        assert!(conditioned.abs() < 1e-5, "{conditioned}");
    }

    #[test]
    fn constant_channels_correlate_with_nothing() {
        let flat = vec![3.0; 8];
        let [a, ..] = patterns();
        let loss = value(orthogonality_loss(
            image(flat, 1, 2, 4),
            image(a, 1, 2, 4),
            None,
        ));
        assert!(loss.abs() < 1e-6, "{loss}");
    }

    #[test]
    fn the_gradient_flows_to_both_streams() {
        let [a, b, _] = patterns();
        let mix: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + 0.5 * y).collect();
        let m = image(mix, 1, 2, 4).autodiff().require_grad();
        let j = image(a, 1, 2, 4).autodiff().require_grad();
        let grads = orthogonality_loss(m.clone(), j.clone(), None).backward();
        let norm = |g: Tensor<4>| g.abs().sum().into_data().iter::<f32>().next().unwrap();
        assert!(norm(m.grad(&grads).unwrap()) > 0.0);
        assert!(norm(j.grad(&grads).unwrap()) > 0.0);
    }
}

//! The objective: `L = BCE + λ_a·L_att + λ_r·L_rep` (spec §3.4; the formulas are fuselab's
//! reading [D]). With `z` unit-length and `w` each pair's importance weight:
//!
//! - `L_att`: the mean of `Σ w·‖z_i − z_j‖² / Σ w` over the co-click pairs and the same over the
//!   co-non-click pairs (each kind weighs alike: at a few percent of clicks, co-non-click pairs
//!   are most of a page's pairs and would otherwise only pull unclicked items together);
//! - `L_rep = Σ w·max(0, m − ‖z_i − z_j‖)² / Σ w` over mono-click pairs (zero gradient beyond
//!   the margin).
//!
//! A kind with no pair in the batch contributes nothing.

use burn::tensor::{Int, Tensor, TensorData};
use fuselab_shared::ctr::pairs::{Pair, PairKind};

/// Mean binary cross-entropy of logits against 0/1 labels, computed stably as
/// `max(x, 0) − x·y + log(1 + e^{−|x|})`.
///
/// # Shapes
/// `logits`, `labels`: `[b]` → `[1]`.
#[must_use]
pub fn bce_with_logits(logits: Tensor<1>, labels: Tensor<1>) -> Tensor<1> {
    let positive = logits.clone().clamp_min(0.0);
    let soft = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (positive - logits * labels + soft).mean()
}

/// Squared distances of the pairs' rows and their weights.
fn squared_distances(z: &Tensor<2>, pairs: &[&Pair]) -> (Tensor<1>, Tensor<1>) {
    let device = z.device();
    let index = |pick: fn(&Pair) -> u32| {
        let values: Vec<i64> = pairs.iter().map(|p| i64::from(pick(p))).collect();
        Tensor::<1, Int>::from_data(TensorData::new(values, [pairs.len()]), &device)
    };
    let difference = z.clone().select(0, index(|p| p.i)) - z.clone().select(0, index(|p| p.j));
    let squared = difference.square().sum_dim(1).reshape([pairs.len()]);
    let weights: Vec<f32> = pairs.iter().map(|p| p.weight).collect();
    let weights = Tensor::<1>::from_data(TensorData::new(weights, [pairs.len()]), &device);
    (squared, weights)
}

/// The attraction loss over the attractive pairs of `pairs`: the mean over the kinds present of
/// each kind's weighted mean squared distance (none: `None`).
///
/// # Shapes
/// `z`: `[b, D]` → `[1]`.
#[must_use]
pub fn attraction(z: &Tensor<2>, pairs: &[Pair]) -> Option<Tensor<1>> {
    let kinds = [PairKind::CoClick, PairKind::CoNonClick];
    let terms: Vec<Tensor<1>> = kinds
        .iter()
        .filter_map(|kind| {
            let chosen: Vec<&Pair> = pairs.iter().filter(|p| p.kind == *kind).collect();
            if chosen.is_empty() {
                return None;
            }
            let total: f32 = chosen.iter().map(|p| p.weight).sum();
            let (squared, weights) = squared_distances(z, &chosen);
            Some((squared * weights).sum().div_scalar(total))
        })
        .collect();
    let n = terms.len();
    terms
        .into_iter()
        .reduce(|a, b| a + b)
        .map(|t| t.div_scalar(n as f64))
}

/// The repulsion loss with margin `margin` over the mono-click pairs of `pairs` (none: `None`).
///
/// # Shapes
/// `z`: `[b, D]` → `[1]`.
#[must_use]
pub fn repulsion(z: &Tensor<2>, pairs: &[Pair], margin: f64) -> Option<Tensor<1>> {
    let chosen: Vec<&Pair> = pairs.iter().filter(|p| !p.kind.is_attractive()).collect();
    if chosen.is_empty() {
        return None;
    }
    let total: f32 = chosen.iter().map(|p| p.weight).sum();
    let (squared, weights) = squared_distances(z, &chosen);
    // ε keeps the square root differentiable where two representations coincide.
    let distance = squared.add_scalar(1e-12).sqrt();
    let shortfall = distance.neg().add_scalar(margin).clamp_min(0.0);
    Some((shortfall.square() * weights).sum().div_scalar(total))
}

//! The two linear combiners: stacking (multinomial logistic regression on the members'
//! probabilities, its L2 strength chosen on val) and a weighted soft vote (one weight per
//! member, fitted on val). Both are fitted by full-batch Adam from zero, so they are
//! deterministic.

use crate::ensemble::pool::{first_argmax, softmax_in_place};

/// The L2 strengths stacking tries; the one with the best val accuracy (then NLL) wins.
pub const STACKING_L2: [f64; 5] = [0.0, 1e-4, 1e-3, 1e-2, 1e-1];
/// Full-batch Adam steps of each fit.
const STEPS: usize = 300;
/// Adam's learning rate for these small convex fits.
const RATE: f64 = 0.05;

/// Adam on a flat parameter vector, in `f64`.
struct Adam {
    step: i32,
    first: Vec<f64>,
    second: Vec<f64>,
}

impl Adam {
    fn new(parameters: usize) -> Self {
        Self {
            step: 0,
            first: vec![0.0; parameters],
            second: vec![0.0; parameters],
        }
    }

    fn update(&mut self, parameters: &mut [f64], gradient: &[f64]) {
        self.step += 1;
        let c1 = 1.0 - 0.9_f64.powi(self.step);
        let c2 = 1.0 - 0.999_f64.powi(self.step);
        for (((p, &g), m), v) in parameters
            .iter_mut()
            .zip(gradient)
            .zip(&mut self.first)
            .zip(&mut self.second)
        {
            *m = 0.9 * *m + 0.1 * g;
            *v = 0.999 * *v + 0.001 * g * g;
            *p -= RATE / c1 * *m / ((*v).sqrt() / c2.sqrt() + 1e-8);
        }
    }
}

/// Rows of concatenated member probabilities: `samples × (members · classes)`.
pub fn stacked(probabilities: &[Vec<f64>], samples: usize, classes: usize) -> Vec<f64> {
    let width = probabilities.len() * classes;
    let mut rows = vec![0.0; samples * width];
    for (m, member) in probabilities.iter().enumerate() {
        for n in 0..samples {
            rows[n * width + m * classes..n * width + (m + 1) * classes]
                .copy_from_slice(&member[n * classes..(n + 1) * classes]);
        }
    }
    rows
}

/// A multinomial logistic regression: `width × classes` weights, then `classes` biases.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    width: usize,
    classes: usize,
    parameters: Vec<f64>,
}

impl Logistic {
    /// Class probabilities of `rows` (`samples × width`).
    pub fn probabilities(&self, rows: &[f64]) -> Vec<f64> {
        let (width, classes) = (self.width, self.classes);
        let (weights, bias) = self.parameters.split_at(width * classes);
        let mut out = Vec::with_capacity(rows.len() / width.max(1) * classes);
        for x in rows.chunks_exact(width) {
            let mut z = bias.to_vec();
            for (i, &xi) in x.iter().enumerate() {
                for (zc, &w) in z.iter_mut().zip(&weights[i * classes..(i + 1) * classes]) {
                    *zc += xi * w;
                }
            }
            softmax_in_place(&mut z);
            out.extend(z);
        }
        out
    }

    /// Fits on `rows` with L2 strength `l2` on the weights (not the biases).
    pub fn fit(rows: &[f64], labels: &[u32], width: usize, classes: usize, l2: f64) -> Self {
        let mut model = Self {
            width,
            classes,
            parameters: vec![0.0; width * classes + classes],
        };
        let mut adam = Adam::new(model.parameters.len());
        let samples = labels.len().max(1) as f64;
        for _ in 0..STEPS {
            let probabilities = model.probabilities(rows);
            let mut gradient = vec![0.0; model.parameters.len()];
            let (g_weights, g_bias) = gradient.split_at_mut(width * classes);
            for ((x, p), &y) in rows
                .chunks_exact(width)
                .zip(probabilities.chunks_exact(classes))
                .zip(labels)
            {
                let mut dz = p.to_vec();
                dz[y as usize] -= 1.0;
                for (i, &xi) in x.iter().enumerate() {
                    for (g, &d) in g_weights[i * classes..(i + 1) * classes]
                        .iter_mut()
                        .zip(&dz)
                    {
                        *g += xi * d / samples;
                    }
                }
                for (g, &d) in g_bias.iter_mut().zip(&dz) {
                    *g += d / samples;
                }
            }
            for (g, &w) in g_weights.iter_mut().zip(&model.parameters) {
                *g += l2 * w;
            }
            adam.update(&mut model.parameters, &gradient);
        }
        model
    }
}

/// Accuracy and mean NLL of `probabilities` against `labels`.
pub fn accuracy_and_nll(probabilities: &[f64], labels: &[u32], classes: usize) -> (f64, f64) {
    let mut right = 0_usize;
    let mut nll = 0.0;
    for (row, &y) in probabilities.chunks_exact(classes).zip(labels) {
        right += usize::from(first_argmax(row) == y as usize);
        nll -= row[y as usize].max(super::metrics::NLL_FLOOR).ln();
    }
    let n = labels.len().max(1) as f64;
    (right as f64 / n, nll / n)
}

/// Stacking fitted on train, its L2 strength chosen on val: the model and the strength.
pub fn stacking(
    train: (&[f64], &[u32]),
    val: (&[f64], &[u32]),
    width: usize,
    classes: usize,
) -> (Logistic, f64) {
    let mut best: Option<(Logistic, f64, (f64, f64))> = None;
    for l2 in STACKING_L2 {
        let model = Logistic::fit(train.0, train.1, width, classes, l2);
        let (accuracy, nll) = accuracy_and_nll(&model.probabilities(val.0), val.1, classes);
        // Higher accuracy, then lower NLL; the first strength wins a full tie.
        let better = best.as_ref().is_none_or(|(_, _, (a, n))| {
            accuracy
                .total_cmp(a)
                .then_with(|| n.total_cmp(&nll))
                .is_gt()
        });
        if better {
            best = Some((model, l2, (accuracy, nll)));
        }
    }
    let (model, l2, _) = best.expect("STACKING_L2 is not empty");
    (model, l2)
}

/// Per-member weights (non-negative, summing to 1) that minimise the weighted soft vote's NLL
/// on val: `probabilities[m]` is member m's `samples × classes` on val.
pub fn vote_weights(probabilities: &[Vec<f64>], labels: &[u32], classes: usize) -> Vec<f64> {
    let members = probabilities.len();
    let mut theta = vec![0.0; members];
    let mut adam = Adam::new(members);
    let samples = labels.len().max(1) as f64;
    for _ in 0..STEPS {
        let mut weights = theta.clone();
        softmax_in_place(&mut weights);
        let mut g_weights = vec![0.0; members];
        for (n, &y) in labels.iter().enumerate() {
            let at = n * classes + y as usize;
            let mixed: f64 = (0..members)
                .map(|m| weights[m] * probabilities[m][at])
                .sum::<f64>()
                .max(super::metrics::NLL_FLOOR);
            for m in 0..members {
                g_weights[m] -= probabilities[m][at] / mixed / samples;
            }
        }
        let inner: f64 = weights.iter().zip(&g_weights).map(|(w, g)| w * g).sum();
        let gradient: Vec<f64> = weights
            .iter()
            .zip(&g_weights)
            .map(|(w, g)| w * (g - inner))
            .collect();
        adam.update(&mut theta, &gradient);
    }
    softmax_in_place(&mut theta);
    theta
}

/// The weighted mean of the members' probabilities.
pub fn weighted_vote(probabilities: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    let len = probabilities.first().map_or(0, Vec::len);
    let mut out = vec![0.0; len];
    for (member, &w) in probabilities.iter().zip(weights) {
        for (o, &p) in out.iter_mut().zip(member) {
            *o += w * p;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // accuracies of 1.0 are exact ratios
mod tests {
    use super::*;

    #[test]
    fn weights_favour_the_member_that_is_right() {
        // Member 0 is always right with confidence 0.9; member 1 always wrong.
        let labels = [0, 1, 0, 1];
        let right = vec![0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9];
        let wrong = vec![0.2, 0.8, 0.8, 0.2, 0.2, 0.8, 0.8, 0.2];
        let weights = vote_weights(&[right.clone(), wrong.clone()], &labels, 2);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(weights[0] > 0.9, "{weights:?}");
        let mixed = weighted_vote(&[right, wrong], &weights);
        assert_eq!(accuracy_and_nll(&mixed, &labels, 2).0, 1.0);
    }

    #[test]
    fn stacking_learns_a_member_specific_rule() {
        // The label is member 1's choice when member 0 says class 0, and member 0's otherwise.
        let mut probabilities = vec![Vec::new(), Vec::new()];
        let mut labels = Vec::new();
        for n in 0..40_u32 {
            let (a, b) = (n % 2, (n / 2) % 2);
            probabilities[0].extend(if a == 0 { [0.8, 0.2] } else { [0.2, 0.8] });
            probabilities[1].extend(if b == 0 { [0.7, 0.3] } else { [0.3, 0.7] });
            labels.push(if a == 0 { b } else { a });
        }
        let rows = stacked(&probabilities, 40, 2);
        let (model, _) = stacking((&rows, &labels), (&rows, &labels), 4, 2);
        let (accuracy, _) = accuracy_and_nll(&model.probabilities(&rows), &labels, 2);
        assert_eq!(accuracy, 1.0);
    }
}

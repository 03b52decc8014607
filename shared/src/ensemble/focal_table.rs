//! Canonical focal diversity of every team without revisiting the samples.
//!
//! On neg(f), let `c[n]` be the number of team members that fail sample `n`. GD only needs
//! `Σc` and `Σc²`: `Σc = Σ_j |w_f ∧ w_j|` and `Σc² = Σ_j Σ_k |w_f ∧ w_j ∧ w_k|`, where `w_m`
//! is model `m`'s failure bitset. With those triple-wise counts computed once (O(M³·N/64)),
//! each team costs O(|T|³) instead of O(|T|²·N/64), which is what makes scoring every team of
//! a 20-model pool feasible.

use super::{focal::FocalDiversity, pool::Pool};

/// Triple-wise co-failure counts of a pool on all of its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocalTable {
    models: usize,
    /// `triples[(f * M + j) * M + k]` = samples that models f, j and k all fail.
    triples: Vec<u64>,
}

impl FocalTable {
    /// Counts every triple of the pool's failure bitsets.
    pub fn new(pool: &Pool) -> Self {
        let wrong = pool.wrong_rows();
        let m = wrong.len();
        let mut triples = vec![0_u64; m * m * m];
        for f in 0..m {
            for j in f..m {
                let fj: Vec<u64> = wrong[f]
                    .words()
                    .iter()
                    .zip(wrong[j].words())
                    .map(|(a, b)| a & b)
                    .collect();
                for (k, row) in wrong.iter().enumerate().skip(j) {
                    let count: u64 = fj
                        .iter()
                        .zip(row.words())
                        .map(|(a, b)| u64::from((a & b).count_ones()))
                        .sum();
                    // The count is symmetric in (f, j, k): store all six orders.
                    for (a, b, c) in [
                        (f, j, k),
                        (f, k, j),
                        (j, f, k),
                        (j, k, f),
                        (k, f, j),
                        (k, j, f),
                    ] {
                        triples[(a * m + b) * m + c] = count;
                    }
                }
            }
        }
        Self { models: m, triples }
    }

    fn count(&self, f: usize, j: usize, k: usize) -> u64 {
        self.triples[(f * self.models + j) * self.models + k]
    }

    /// The canonical focal diversity of `members` (ascending, distinct, each below the pool's
    /// model count, at least two): the same values as [`super::TeamView::focal_diversity`] on
    /// all samples.
    pub fn focal_diversity(&self, members: &[usize]) -> FocalDiversity {
        let size = members.len() as f64;
        let per_focal: Vec<Option<f64>> = members
            .iter()
            .map(|&f| {
                if self.count(f, f, f) == 0 {
                    return None;
                }
                let mut sum = 0_u64;
                let mut sum_squares = 0_u64;
                for &j in members {
                    sum += self.count(f, j, j);
                    for &k in members {
                        sum_squares += self.count(f, j, k);
                    }
                }
                // GD = 1 − P2/P1 with P1 = Σc/(L·n) and P2 = Σc(c−1)/(L(L−1)·n).
                Some(1.0 - (sum_squares - sum) as f64 / ((size - 1.0) * sum as f64))
            })
            .collect();
        let mean = per_focal
            .iter()
            .copied()
            .sum::<Option<f64>>()
            .map(|total| total / size);
        FocalDiversity { per_focal, mean }
    }
}

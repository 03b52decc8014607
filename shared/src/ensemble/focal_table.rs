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
        let sums: Vec<(u64, u64)> = members
            .iter()
            .map(|&f| {
                // Σc² = Σ_j Σ_k count(f, j, k), symmetric in j and k: the diagonal (Σc) plus
                // twice the pairs.
                let mut sum = 0_u64;
                let mut pairs = 0_u64;
                for (i, &j) in members.iter().enumerate() {
                    sum += self.count(f, j, j);
                    for &k in &members[i + 1..] {
                        pairs += self.count(f, j, k);
                    }
                }
                (sum, sum + 2 * pairs)
            })
            .collect();
        self.from_sums(members, &sums)
    }

    /// Focal diversity from each member's `(Σc, Σc²)` on its negatives (in member order), as
    /// [`Self::focal_diversity`] or the GPU kernel `team_sums.wgsl` computes them.
    pub fn from_sums(&self, members: &[usize], sums: &[(u64, u64)]) -> FocalDiversity {
        let size = members.len() as f64;
        let per_focal: Vec<Option<f64>> = members
            .iter()
            .zip(sums)
            .map(|(&f, &(sum, sum_squares))| {
                if self.count(f, f, f) == 0 {
                    return None;
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

    /// Models in the pool.
    pub fn models(&self) -> usize {
        self.models
    }

    /// The triple counts as the GPU kernel reads them (`[(f·M + j)·M + k]`), or `None` when a
    /// team's `Σc²` could overflow 32 bits (more than `2^32 / M²` samples).
    pub fn triples_u32(&self) -> Option<Vec<u32>> {
        let m = self.models as u64;
        let largest = self.triples.iter().copied().max().unwrap_or(0);
        if largest.checked_mul(m * m)? > u64::from(u32::MAX) {
            return None;
        }
        self.triples
            .iter()
            .map(|&c| u32::try_from(c).ok())
            .collect()
    }

    /// CPU twin of `team_sums.wgsl`: for the `count` team masks from `first` on (bit `m` set
    /// when model `m` is a member), each member's `(Σc, Σc²)` in member order, in `M` slots of
    /// two words per mask; unused slots and masks with fewer than two members are 0.
    pub fn team_sums(&self, first: u32, count: u32) -> Vec<u32> {
        let m = self.models;
        let mut out = vec![0_u32; count as usize * m * 2];
        for index in 0..count {
            let mask = first + index;
            if mask.count_ones() < 2 {
                continue;
            }
            let members: Vec<usize> = (0..m).filter(|&i| mask >> i & 1 == 1).collect();
            for (slot, &f) in members.iter().enumerate() {
                let mut sum = 0_u32;
                let mut sum_squares = 0_u32;
                for &j in &members {
                    sum = sum.wrapping_add(self.count(f, j, j) as u32);
                    for &k in &members {
                        sum_squares = sum_squares.wrapping_add(self.count(f, j, k) as u32);
                    }
                }
                let at = (index as usize * m + slot) * 2;
                out[at] = sum;
                out[at + 1] = sum_squares;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensemble::{ModelInput, PoolInput, Teams};

    fn pool() -> Pool {
        let labels: Vec<u32> = (0..200).map(|n| n % 3).collect();
        let models = (0..6_u32)
            .map(|m| ModelInput {
                name: format!("m{m}"),
                predictions: Some(
                    labels
                        .iter()
                        .enumerate()
                        .map(|(n, &y)| {
                            if (n as u32 * 7 + m * 13).is_multiple_of(m + 3) {
                                (y + 1) % 3
                            } else {
                                y
                            }
                        })
                        .collect(),
                ),
                probabilities: None,
                logits: None,
            })
            .collect();
        Pool::new(PoolInput {
            labels,
            models,
            classes: Some(3),
            splits: None,
        })
        .unwrap()
    }

    #[test]
    fn sums_give_the_same_focal_diversity() {
        let pool = pool();
        let table = FocalTable::new(&pool);
        assert!(table.triples_u32().is_some());
        let sums = table.team_sums(0, 1 << 6);
        let mut teams = 0;
        for members in Teams::new(6, 2, 6) {
            let mask: usize = members.iter().map(|&m| 1 << m).sum();
            let row: Vec<(u64, u64)> = (0..members.len())
                .map(|slot| {
                    let at = (mask * 6 + slot) * 2;
                    (u64::from(sums[at]), u64::from(sums[at + 1]))
                })
                .collect();
            assert_eq!(
                table.from_sums(&members, &row),
                table.focal_diversity(&members)
            );
            teams += 1;
        }
        assert_eq!(teams, 57);
        // Masks of fewer than two members stay zero.
        assert!(sums[..2 * 6 * 2].iter().all(|&w| w == 0));
    }
}

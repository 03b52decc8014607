//! FusionShot's `calc_generalized_div` (spec §2.3) with its `np.unique` misalignment
//! (divergence 1): the share of the k-th smallest *distinct* failure count is used as if it
//! were the share of samples with exactly k failures.

use super::CompatError;
use super::counts::RowFailures;
use crate::ensemble::Pool;

/// FusionShot's generalized diversity of a team on the given sample rows.
///
/// # Errors
/// [`CompatError::UniqueIndex`] where the reference raises `IndexError`: fewer distinct
/// failure counts than members (which includes an empty row set).
pub fn fs_generalized_div(
    pool: &Pool,
    members: &[usize],
    rows: &[usize],
) -> Result<f64, CompatError> {
    let size = members.len();
    let mut counts = vec![0_u64; size + 1];
    for &r in rows {
        let wrong = members
            .iter()
            .filter(|&&m| pool.correct(m).is_some_and(|c| !c.contains(r)))
            .count();
        counts[wrong] += 1;
    }
    from_histogram(members, &counts)
}

/// [`fs_generalized_div`] from the team's failure-count histogram on the rows (entry `k`: rows
/// with exactly `k` failing members).
fn from_histogram(members: &[usize], counts: &[u64]) -> Result<f64, CompatError> {
    let size = members.len();
    let rows: u64 = counts.iter().sum();
    // np.unique(err_count, return_counts=True)[1] / n_samples: the distinct counts ascending.
    let shares: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64 / rows as f64)
        .collect();
    if shares.len() < size {
        return Err(CompatError::UniqueIndex {
            team: members.to_vec(),
            index: shares.len(),
            size: shares.len(),
        });
    }
    let l = size as f64;
    let (mut p1, mut p2) = (0.0_f64, 0.0_f64);
    for i in 1..=size {
        let share = shares[i - 1];
        p1 += i as f64 * share / l;
        p2 += (i * (i - 1)) as f64 * share / (l * (l - 1.0));
    }
    Ok(1.0 - p2 / p1)
}

/// Every model's negatives as failure bitsets, for FusionShot's focal diversity of many teams.
#[derive(Debug, Clone)]
pub struct FusionShotTable {
    negatives: Vec<RowFailures>,
}

impl FusionShotTable {
    /// Counts the pool's failures on each model's negatives.
    pub fn new(pool: &Pool) -> Self {
        let negatives = (0..pool.models())
            .map(|f| RowFailures::new(pool, &pool.negative_rows(f)))
            .collect();
        Self { negatives }
    }

    /// [`fs_generalized_div`] of `members` on the negatives of `focal` (both below the pool's
    /// model count).
    ///
    /// # Errors
    /// As [`fs_generalized_div`].
    pub fn focal(&self, members: &[usize], focal: usize) -> Result<f64, CompatError> {
        from_histogram(members, &self.negatives[focal].histogram(members))
    }
}

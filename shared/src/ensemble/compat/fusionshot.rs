//! FusionShot's `calc_generalized_div` (spec §2.3) with its `np.unique` misalignment
//! (divergence 1): the share of the k-th smallest *distinct* failure count is used as if it
//! were the share of samples with exactly k failures.

use super::CompatError;
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
    // np.unique(err_count, return_counts=True)[1] / n_samples: the distinct counts ascending.
    let shares: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64 / rows.len() as f64)
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

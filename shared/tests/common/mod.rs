//! Helpers shared by the engine's integration tests.

use fuselab_shared::ensemble::Pool;

/// Plurality accuracy from the per-sample votes, independent of the vote-pattern table.
pub fn per_sample_plurality(pool: &Pool, members: &[usize]) -> f64 {
    let votes = pool.team(members).expect("team").plurality_predictions();
    let right = votes
        .iter()
        .zip(pool.labels())
        .filter(|(vote, label)| vote == label)
        .count();
    right as f64 / pool.samples() as f64
}

/// Majority accuracy from the per-sample votes, independent of the vote-pattern table.
pub fn per_sample_majority(pool: &Pool, members: &[usize]) -> f64 {
    let votes = pool.team(members).expect("team").majority_predictions();
    let right = votes
        .iter()
        .zip(pool.labels())
        .filter(|(vote, label)| **vote == Some(**label))
        .count();
    right as f64 / pool.samples() as f64
}

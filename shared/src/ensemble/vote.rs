//! Combination rules of spec §4: plurality, majority and soft voting over a team.

use super::pool::{Pool, first_argmax};
use super::team::TeamView;

/// `first_argmax` of `row / team` without dividing every entry: division by a positive number
/// preserves order, so the answer is the first maximum of the sums unless an earlier sum is so
/// close that both means round to the same value.
fn mean_argmax(row: &[f64], team: f64) -> usize {
    let best = first_argmax(row);
    let top = row[best];
    let mean = top / team;
    row[..best]
        .iter()
        // No earlier sum exceeds `top`, so a mean at least `mean` is a tie.
        .position(|&sum| top - sum <= top.abs() * 4.0 * f64::EPSILON && sum / team >= mean)
        .unwrap_or(best)
}

/// Whether the label is the first maximum of `row / team` (the soft vote is right), deciding
/// from the sums and dividing only where two sums are close enough for their means to round
/// to the same value.
fn label_wins(row: &[f64], label: usize, team: f64) -> bool {
    let top = row[label];
    let close = top.abs() * 4.0 * f64::EPSILON;
    row.iter().enumerate().all(|(c, &sum)| {
        let gap = top - sum;
        if c == label {
            true
        } else if gap.abs() > close {
            gap > 0.0
        } else if c < label {
            // An earlier class wins a tie of the means.
            sum / team < top / team
        } else {
            sum / team <= top / team
        }
    })
}

/// Soft-vote accuracy on all samples of each team of `teams` (each ascending and distinct, of
/// at least one member below the pool's model count), in the given order; `None` without
/// probabilities. Consecutive teams that share leading members (as neighbours in
/// [`super::Teams`] order do) share those members' probability sums, so a team usually costs
/// one pass over one model's probabilities. The additions happen in the same order as in
/// [`TeamView::soft_vote_accuracy`], so the results are identical.
pub fn soft_vote_of_teams(pool: &Pool, teams: &[Vec<usize>]) -> Option<Vec<f64>> {
    const BLOCK: usize = 256;
    let probs = pool.probability_rows()?;
    let classes = pool.classes();
    let samples = pool.samples();
    let deepest = teams.iter().map(Vec::len).max().unwrap_or(0);
    let mut levels = vec![vec![0.0_f64; BLOCK * classes]; deepest];
    let mut right = vec![0_u64; teams.len()];
    for first in (0..samples).step_by(BLOCK) {
        let last = (first + BLOCK).min(samples);
        let block = (last - first) * classes;
        let labels = &pool.labels()[first..last];
        let mut previous: &[usize] = &[];
        for (team, right) in teams.iter().zip(&mut right) {
            let shared = team
                .iter()
                .zip(previous)
                .take_while(|(a, b)| a == b)
                .count();
            for depth in shared..team.len() {
                let next = &probs[team[depth]][first * classes..first * classes + block];
                let (done, rest) = levels.split_at_mut(depth);
                let sums = &mut rest[0][..block];
                match done.last() {
                    // 0.0 + p = p: the same first addition as the per-team sum.
                    None => sums.copy_from_slice(next),
                    Some(prefix) => {
                        for ((acc, a), p) in sums.iter_mut().zip(prefix).zip(next) {
                            *acc = a + p;
                        }
                    }
                }
            }
            previous = team;
            let Some(sums) = team.len().checked_sub(1).map(|d| &levels[d][..block]) else {
                continue;
            };
            let size = team.len() as f64;
            *right += sums
                .chunks_exact(classes)
                .zip(labels)
                .filter(|(row, label)| label_wins(row, **label as usize, size))
                .count() as u64;
        }
    }
    Some(
        right
            .into_iter()
            .map(|right| right as f64 / samples as f64)
            .collect(),
    )
}

impl TeamView<'_> {
    /// Votes per class on sample `s`.
    fn votes(&self, s: usize, counts: &mut [u32]) {
        counts.fill(0);
        let preds = self.pool.prediction_rows();
        for &m in &self.members {
            counts[preds[m][s] as usize] += 1;
        }
    }

    /// Plurality vote per subset sample (ascending): the most voted class, ties to the
    /// smallest label.
    pub fn plurality_predictions(&self) -> Vec<u32> {
        let mut counts = vec![0; self.pool.classes()];
        self.subset
            .iter()
            .map(|s| {
                self.votes(s, &mut counts);
                let mut best = 0;
                for (c, &v) in counts.iter().enumerate() {
                    if v > counts[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }

    /// Majority vote per subset sample: the class with more than ⌊L/2⌋ votes, else `None`.
    pub fn majority_predictions(&self) -> Vec<Option<u32>> {
        let mut counts = vec![0; self.pool.classes()];
        let half = self.members.len() / 2;
        self.subset
            .iter()
            .map(|s| {
                self.votes(s, &mut counts);
                counts
                    .iter()
                    .position(|&v| v as usize > half)
                    .map(|c| c as u32)
            })
            .collect()
    }

    /// Soft vote per subset sample: the first maximum of the members' mean probability
    /// vector; `None` when the pool has no probabilities.
    pub fn soft_vote_predictions(&self) -> Option<Vec<u32>> {
        let probs = self.pool.probability_rows()?;
        let classes = self.pool.classes();
        let team = self.members.len() as f64;
        if self.all_samples {
            // Whole probability matrices at a time: the same additions in the same order as
            // below, but in long contiguous runs the compiler vectorises.
            let mut sums = vec![0.0; self.pool.samples() * classes];
            for &m in &self.members {
                for (acc, p) in sums.iter_mut().zip(&probs[m]) {
                    *acc += p;
                }
            }
            return Some(
                sums.chunks_exact(classes)
                    .map(|row| mean_argmax(row, team) as u32)
                    .collect(),
            );
        }
        let mut mean = vec![0.0; classes];
        Some(
            self.subset
                .iter()
                .map(|s| {
                    mean.fill(0.0);
                    for &m in &self.members {
                        let row = &probs[m][s * classes..(s + 1) * classes];
                        for (acc, p) in mean.iter_mut().zip(row) {
                            *acc += p;
                        }
                    }
                    for acc in &mut mean {
                        *acc /= team;
                    }
                    first_argmax(&mean) as u32
                })
                .collect(),
        )
    }

    /// Share of subset samples whose vote equals the label; `None` on an empty subset.
    fn accuracy_of(&self, votes: impl Iterator<Item = Option<u32>>) -> Option<f64> {
        let labels = self.pool.labels();
        let right = self
            .subset
            .iter()
            .zip(votes)
            .filter(|&(s, vote)| vote == Some(labels[s]))
            .count();
        let n = self.subset.count();
        (n > 0).then(|| right as f64 / n as f64)
    }

    /// Plurality-vote accuracy on the subset, in `[0, 1]`; `None` on an empty subset.
    pub fn plurality_accuracy(&self) -> Option<f64> {
        if self.all_samples
            && let Some(table) = self.pool.vote_table()
        {
            return Some(table.plurality_accuracy(&self.members));
        }
        self.accuracy_of(self.plurality_predictions().into_iter().map(Some))
    }

    /// Majority-vote accuracy: samples without a strict majority count as wrong.
    pub fn majority_accuracy(&self) -> Option<f64> {
        if self.all_samples
            && let Some(table) = self.pool.vote_table()
        {
            return Some(table.majority_accuracy(&self.members));
        }
        self.accuracy_of(self.majority_predictions().into_iter())
    }

    /// Soft-vote accuracy; `None` without probabilities or on an empty subset.
    pub fn soft_vote_accuracy(&self) -> Option<f64> {
        self.accuracy_of(self.soft_vote_predictions()?.into_iter().map(Some))
    }
}

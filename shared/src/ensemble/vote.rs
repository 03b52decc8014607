//! Combination rules of spec §4: plurality, majority and soft voting over a team.

use super::pool::first_argmax;
use super::team::TeamView;

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
                sums.chunks_exact_mut(classes)
                    .map(|row| {
                        for acc in row.iter_mut() {
                            *acc /= team;
                        }
                        first_argmax(row) as u32
                    })
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
            && let Some(table) = self.pool.plurality_table()
        {
            return Some(table.plurality_accuracy(&self.members));
        }
        self.accuracy_of(self.plurality_predictions().into_iter().map(Some))
    }

    /// Majority-vote accuracy: samples without a strict majority count as wrong.
    pub fn majority_accuracy(&self) -> Option<f64> {
        self.accuracy_of(self.majority_predictions().into_iter())
    }

    /// Soft-vote accuracy; `None` without probabilities or on an empty subset.
    pub fn soft_vote_accuracy(&self) -> Option<f64> {
        self.accuracy_of(self.soft_vote_predictions()?.into_iter().map(Some))
    }
}

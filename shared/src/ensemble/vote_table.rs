//! Plurality- and majority-vote accuracy of any team from vote patterns instead of samples.
//!
//! A sample's plurality outcome depends only on which members predict the label and how the
//! others split among the wrong classes. Samples with the same split share one pattern (errors
//! are correlated, so there are far fewer patterns than samples), and samples every model gets
//! right are counted once. A team is then scored with a few popcounts per pattern, which is what
//! makes plurality accuracy for all million teams of a 20-model pool affordable.

use std::collections::HashMap;

use super::pool::Pool;

/// One distinct vote pattern, as bit masks over the pool's models.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Models that predict the label.
    label: u64,
    /// Models that predict another class.
    wrong: u64,
    /// How many models that is.
    wrong_count: u32,
    /// `others[start..start + smaller]`: per wrong class below the label (it wins ties), the
    /// models that predict it; then `larger` masks for the classes above (they lose ties).
    start: u32,
    smaller: u16,
    larger: u16,
    /// Samples with this pattern.
    weight: u64,
}

/// The vote patterns of a pool of at most 64 models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteTable {
    patterns: Vec<Pattern>,
    /// The wrong-class masks of all patterns, back to back.
    others: Vec<u64>,
    /// `suffix[i]`: samples in `patterns[i..]`.
    suffix: Vec<u64>,
    /// Samples on which every model predicts the label: right for every team.
    unanimous: u64,
    samples: u64,
}

impl VoteTable {
    /// The most models a team bit mask can hold.
    pub const MAX_MODELS: usize = 64;

    /// Groups the pool's samples by vote pattern; `None` for pools of more than
    /// [`Self::MAX_MODELS`] models.
    pub fn new(pool: &Pool) -> Option<Self> {
        if pool.models() > Self::MAX_MODELS {
            return None;
        }
        let predictions = pool.prediction_rows();
        let mut counts: HashMap<(u64, Vec<u64>, Vec<u64>), u64> = HashMap::new();
        let mut unanimous = 0;
        let mut by_class: Vec<(u32, u64)> = Vec::with_capacity(pool.models());
        for (n, &label) in pool.labels().iter().enumerate() {
            by_class.clear();
            for (m, row) in predictions.iter().enumerate() {
                let class = row[n];
                match by_class.iter_mut().find(|(c, _)| *c == class) {
                    Some((_, mask)) => *mask |= 1 << m,
                    None => by_class.push((class, 1 << m)),
                }
            }
            let label_mask = by_class
                .iter()
                .find(|(c, _)| *c == label)
                .map_or(0, |&(_, mask)| mask);
            if label_mask == 0 {
                // No member can vote for the label: wrong for every team.
                continue;
            }
            if by_class.len() == 1 {
                unanimous += 1;
                continue;
            }
            let mut smaller: Vec<u64> = by_class
                .iter()
                .filter(|(c, _)| *c < label)
                .map(|&(_, m)| m)
                .collect();
            let mut larger: Vec<u64> = by_class
                .iter()
                .filter(|(c, _)| *c > label)
                .map(|&(_, m)| m)
                .collect();
            // Only the split matters, not which wrong class each group chose.
            smaller.sort_unstable();
            larger.sort_unstable();
            *counts.entry((label_mask, smaller, larger)).or_default() += 1;
        }
        // Most wrong models first: a team can only lose a pattern whose wrong models could
        // outvote the right ones, so small teams need only a prefix. The full key makes the
        // order (and so the table) independent of the hash map's.
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_unstable_by_key(|((label, smaller, larger), _)| {
            let wrong = smaller.iter().chain(larger).fold(0_u64, |all, m| all | m);
            (
                std::cmp::Reverse(wrong.count_ones()),
                *label,
                smaller.clone(),
                larger.clone(),
            )
        });
        let mut patterns = Vec::with_capacity(counts.len());
        let mut others = Vec::new();
        for ((label, smaller, larger), weight) in counts {
            let wrong = smaller.iter().chain(&larger).fold(0, |all, m| all | m);
            patterns.push(Pattern {
                label,
                wrong,
                wrong_count: wrong.count_ones(),
                start: others.len() as u32,
                smaller: smaller.len() as u16,
                larger: larger.len() as u16,
                weight,
            });
            others.extend(smaller);
            others.extend(larger);
        }
        let mut suffix = vec![0; patterns.len() + 1];
        for (i, p) in patterns.iter().enumerate().rev() {
            suffix[i] = suffix[i + 1] + p.weight;
        }
        Some(Self {
            patterns,
            others,
            suffix,
            unanimous,
            samples: pool.samples() as u64,
        })
    }

    /// Number of distinct patterns (samples that not every model gets right).
    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// The team's bit mask and size, and the samples of every pattern the team cannot lose:
    /// the label loses a sample only if the wrong votes are at least the right ones,
    /// 2·|team ∩ wrong| ≥ |team|, so patterns with fewer wrong models are right for it (for
    /// majority too: the label then has more than half of the votes).
    fn uncontested(&self, members: &[usize]) -> (u64, u32, &[Pattern], u64) {
        let team = members.iter().fold(0_u64, |mask, &m| mask | (1 << m));
        let size = team.count_ones();
        let contested = self.patterns.partition_point(|p| 2 * p.wrong_count >= size);
        (
            team,
            size,
            &self.patterns[..contested],
            self.unanimous + self.suffix[contested],
        )
    }

    /// Majority-vote accuracy of `members` (distinct, each below the pool's model count): the
    /// label needs more than half of the votes. Equal to [`super::TeamView::majority_accuracy`]
    /// on all samples.
    pub fn majority_accuracy(&self, members: &[usize]) -> f64 {
        let (team, size, contested, right) = self.uncontested(members);
        let won: u64 = contested
            .iter()
            .filter(|p| 2 * (p.label & team).count_ones() > size)
            .map(|p| p.weight)
            .sum();
        (right + won) as f64 / self.samples as f64
    }

    /// Plurality-vote accuracy of `members` (distinct, each below the pool's model count):
    /// equal to [`super::TeamView::plurality_accuracy`] on all samples.
    pub fn plurality_accuracy(&self, members: &[usize]) -> f64 {
        let (team, size, contested, right) = self.uncontested(members);
        let won: u64 = contested
            .iter()
            .filter(|p| {
                if 2 * (p.wrong & team).count_ones() < size {
                    return true;
                }
                let votes = (p.label & team).count_ones();
                if votes == 0 {
                    return false;
                }
                let start = p.start as usize;
                let middle = start + usize::from(p.smaller);
                let end = middle + usize::from(p.larger);
                self.others[start..middle]
                    .iter()
                    .all(|&s| (s & team).count_ones() < votes)
                    && self.others[middle..end]
                        .iter()
                        .all(|&l| (l & team).count_ones() <= votes)
            })
            .map(|p| p.weight)
            .sum();
        (right + won) as f64 / self.samples as f64
    }
}

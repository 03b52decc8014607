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
    /// Models that predict another class.
    wrong: u64,
    /// The models of the wrong class most of them predict, and whether that class is below
    /// the label (so it wins a tie).
    big: u64,
    big_smaller: bool,
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
    /// `None` where the tables would be too large (see [`VoteTable::TABLE_LIMIT`]).
    counts: Option<SubsetCounts>,
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

    /// The most bytes of per-subset counts kept for the fast path; larger pools are scored
    /// pattern by pattern.
    pub const TABLE_LIMIT: usize = 64 << 20;

    /// Groups the pool's samples by vote pattern; `None` for pools of more than
    /// [`Self::MAX_MODELS`] models.
    pub fn new(pool: &Pool) -> Option<Self> {
        Self::with_table_limit(pool, Self::TABLE_LIMIT)
    }

    /// [`Self::new`] keeping per-subset counts only within `table_limit` bytes (0: never).
    pub fn with_table_limit(pool: &Pool, table_limit: usize) -> Option<Self> {
        if pool.models() > Self::MAX_MODELS {
            return None;
        }
        let predictions = pool.prediction_rows();
        // Key: the label's mask, how many wrong classes are below the label, then their masks
        // and those of the classes above, each part sorted (only the split matters, not which
        // wrong class each group chose). One buffer, copied only for a new pattern.
        let mut counts: HashMap<Vec<u64>, u64> = HashMap::new();
        let mut key: Vec<u64> = Vec::with_capacity(pool.models() + 2);
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
            key.clear();
            key.push(label_mask);
            key.push(0);
            key.extend(by_class.iter().filter(|(c, _)| *c < label).map(|&(_, m)| m));
            let smaller = key.len() - 2;
            key[1] = smaller as u64;
            key.extend(by_class.iter().filter(|(c, _)| *c > label).map(|&(_, m)| m));
            key[2..2 + smaller].sort_unstable();
            key[2 + smaller..].sort_unstable();
            match counts.get_mut(key.as_slice()) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(key.clone(), 1);
                }
            }
        }
        // Most wrong models first: a team can only lose a pattern whose wrong models could
        // outvote the right ones, so small teams need only a prefix. The full key makes the
        // order (and so the table) independent of the hash map's.
        let wrong_of = |key: &[u64]| key[2..].iter().fold(0_u64, |all, m| all | m);
        let mut counts: Vec<(u32, Vec<u64>, u64)> = counts
            .into_iter()
            .map(|(key, weight)| (wrong_of(&key).count_ones(), key, weight))
            .collect();
        counts.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut patterns: Vec<Pattern> = Vec::with_capacity(counts.len());
        let mut others = Vec::new();
        for (_, key, weight) in counts {
            let (smaller, larger) = key[2..].split_at(key[1] as usize);
            let wrong = smaller.iter().chain(larger).fold(0, |all, m| all | m);
            // The wrong class with the most models is the likeliest to beat the label.
            let (big, big_smaller) = smaller
                .iter()
                .map(|&m| (m, true))
                .chain(larger.iter().map(|&m| (m, false)))
                .max_by_key(|&(m, smaller)| (m.count_ones(), smaller))
                .unwrap_or((0, false));
            patterns.push(Pattern {
                wrong,
                big,
                big_smaller,
                start: others.len() as u32,
                smaller: smaller.len() as u16,
                larger: larger.len() as u16,
                weight,
            });
            // Biggest classes first: a label that loses mostly loses to one of them.
            let by_size = |part: &[u64]| {
                let mut part = part.to_vec();
                part.sort_unstable_by_key(|m| std::cmp::Reverse(m.count_ones()));
                part
            };
            others.extend(by_size(smaller));
            others.extend(by_size(larger));
        }
        let mut suffix = vec![0; patterns.len() + 1];
        for (i, p) in patterns.iter().enumerate().rev() {
            suffix[i] = suffix[i + 1] + p.weight;
        }
        let counts = SubsetCounts::new(pool.models(), pool.samples(), &patterns, table_limit);
        Some(Self {
            patterns,
            others,
            counts,
            suffix,
            unanimous,
            samples: pool.samples() as u64,
        })
    }

    /// Number of distinct patterns (samples that not every model gets right).
    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// Plurality- and majority-vote accuracy of `members` (distinct, each below the pool's
    /// model count): equal to [`super::TeamView::plurality_accuracy`] and
    /// [`super::TeamView::majority_accuracy`] on all samples.
    ///
    /// With `w` of the team's votes wrong, the label has `v = |team| − w`. Where `2w < |team|`
    /// it wins both votes, which is every pattern with fewer wrong models than half the team
    /// (the sorted table's tail). Otherwise it loses the majority vote, loses the plurality
    /// if the biggest wrong class `c` has `c > v` (or `c = v` and the class is smaller), and
    /// wins it if the other wrong classes together have `w − c < v`; only patterns where
    /// neither holds are looked at class by class.
    pub fn accuracies(&self, members: &[usize]) -> (f64, f64) {
        let team = members.iter().fold(0_u64, |mask, &m| mask | (1 << m));
        let size = team.count_ones();
        let contested = self
            .patterns
            .partition_point(|p| 2 * p.wrong.count_ones() >= size);
        let clear = self.unanimous + self.suffix[contested];
        let (plurality, majority) = match &self.counts {
            Some(counts) => self.contested_by_subsets(counts, team, size, contested),
            None => self.contested_by_patterns(team, size, contested),
        };
        let samples = self.samples as f64;
        (
            (clear + plurality) as f64 / samples,
            (clear + majority) as f64 / samples,
        )
    }

    /// Plurality-vote accuracy of `members`: the first of [`Self::accuracies`].
    pub fn plurality_accuracy(&self, members: &[usize]) -> f64 {
        self.accuracies(members).0
    }

    /// Majority-vote accuracy of `members` (the label needs more than half of the votes): the
    /// second of [`Self::accuracies`].
    pub fn majority_accuracy(&self, members: &[usize]) -> f64 {
        self.accuracies(members).1
    }

    /// The samples of `patterns[..contested]` the team wins by plurality and by majority,
    /// pattern by pattern.
    fn contested_by_patterns(&self, team: u64, size: u32, contested: usize) -> (u64, u64) {
        let (mut plurality, mut majority) = (0, 0);
        for p in &self.patterns[..contested] {
            let wrong = (p.wrong & team).count_ones();
            let votes = size - wrong;
            if 2 * wrong < size {
                majority += p.weight;
                plurality += p.weight;
                continue;
            }
            let big = (p.big & team).count_ones();
            if big > votes || (big == votes && p.big_smaller) {
                continue;
            }
            if wrong - big < votes || self.label_wins(p, team, votes) {
                plurality += p.weight;
            }
        }
        (plurality, majority)
    }

    /// [`Self::contested_by_patterns`] from the per-subset counts: a team's wrong and
    /// biggest-class votes on every pattern are sums of a few table rows, so the tests run on
    /// many patterns at once.
    fn contested_by_subsets(
        &self,
        counts: &SubsetCounts,
        team: u64,
        size: u32,
        contested: usize,
    ) -> (u64, u64) {
        const BLOCK: usize = 256;
        let size = size as u16;
        let half = size.div_ceil(2);
        let (mut plurality, mut majority) = (0_u64, 0_u64);
        let mut sums = [0_u16; BLOCK];
        let mut slow = [0_u8; BLOCK];
        for start in (0..contested).step_by(BLOCK) {
            let n = BLOCK.min(contested - start);
            let sums = &mut sums[..n];
            sums.fill(0);
            for chunk in 0..counts.chunks {
                let subset = (team >> (SUBSET_BITS * chunk)) as usize & (SUBSETS - 1);
                if subset != 0 {
                    for (sum, &c) in sums.iter_mut().zip(&counts.row(chunk, subset)[start..]) {
                        *sum += c;
                    }
                }
            }
            let weights = &counts.weights[start..start + n];
            let smaller = &counts.big_smaller[start..start + n];
            // Written without branches (0/1 words and masks) so that it runs on vectors.
            let (mut won, mut clear_weight, mut doubtful) = (0_u32, 0_u32, 0_u8);
            for (((&sum, &weight), &smaller), slow) in
                sums.iter().zip(weights).zip(smaller).zip(&mut slow[..n])
            {
                let (wrong, big) = (sum & 0xff, sum >> 8);
                let votes = size - wrong;
                let clear = u16::from(wrong < half);
                let beaten = u16::from(big > votes) | (u16::from(big == votes) & smaller);
                let sure = u16::from(wrong - big < votes);
                let fast = clear | ((1 - beaten) & sure);
                clear_weight += weight & 0_u32.wrapping_sub(u32::from(clear));
                won += weight & 0_u32.wrapping_sub(u32::from(fast));
                *slow = ((1 - clear) & (1 - beaten) & (1 - sure)) as u8;
                doubtful |= *slow;
            }
            majority += u64::from(clear_weight);
            plurality += u64::from(won);
            if doubtful == 0 {
                continue;
            }
            // Eight flags at a time: the doubtful patterns are few. Flags past `n` are left
            // from the previous block: cleared.
            slow[n..].fill(0);
            for (k, flags) in slow.chunks_exact(8).take(n.div_ceil(8)).enumerate() {
                let mut word = u64::from_le_bytes(flags.try_into().unwrap_or([0; 8]));
                while word != 0 {
                    let byte = word.trailing_zeros() as usize / 8;
                    word &= !(0xff << (8 * byte));
                    let i = 8 * k + byte;
                    let p = &self.patterns[start + i];
                    let votes = size - (sums[i] & 0xff);
                    if self.label_wins(p, team, u32::from(votes)) {
                        plurality += p.weight;
                    }
                }
            }
        }
        (plurality, majority)
    }

    /// Whether the label, with `votes` votes of `team`, gets more than every wrong class in
    /// pattern `p`, ties going to the smaller class.
    fn label_wins(&self, p: &Pattern, team: u64, votes: u32) -> bool {
        let start = p.start as usize;
        let middle = start + usize::from(p.smaller);
        let end = middle + usize::from(p.larger);
        self.others[start..middle]
            .iter()
            .all(|&s| (s & team).count_ones() < votes)
            && self.others[middle..end]
                .iter()
                .all(|&l| (l & team).count_ones() <= votes)
    }
}

/// Models per subset table: 16 subsets of 4 models each.
const SUBSET_BITS: usize = 4;
const SUBSETS: usize = 1 << SUBSET_BITS;

/// Per group of 4 models and each of its 16 subsets, on every pattern, how many of the
/// subset's models are wrong (low byte) and how many predict the biggest wrong class (high
/// byte); counts add up to at most 64 per byte, so a team's counts are the sum of one row per
/// group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubsetCounts {
    chunks: usize,
    patterns: usize,
    rows: Vec<u16>,
    /// Per pattern: its samples, and 1 where its biggest wrong class is below the label.
    weights: Vec<u32>,
    big_smaller: Vec<u16>,
}

impl SubsetCounts {
    /// The tables of a pool of `models` models and `samples` samples, or `None` where they
    /// would take more than `limit` bytes (or the samples overflow the 32-bit sums).
    fn new(models: usize, samples: usize, patterns: &[Pattern], limit: usize) -> Option<Self> {
        let chunks = models.div_ceil(SUBSET_BITS);
        let cells = chunks * SUBSETS * patterns.len();
        if cells.saturating_mul(2) > limit || u32::try_from(samples).is_err() {
            return None;
        }
        let mut rows = vec![0_u16; cells];
        for chunk in 0..chunks {
            for subset in 1..SUBSETS {
                let mask = (subset as u64) << (SUBSET_BITS * chunk);
                let at = (chunk * SUBSETS + subset) * patterns.len();
                for (cell, p) in rows[at..at + patterns.len()].iter_mut().zip(patterns) {
                    *cell = (p.wrong & mask).count_ones() as u16
                        | ((p.big & mask).count_ones() as u16) << 8;
                }
            }
        }
        Some(Self {
            chunks,
            patterns: patterns.len(),
            rows,
            // Each weight is at most `samples`, checked above to fit.
            weights: patterns.iter().map(|p| p.weight as u32).collect(),
            big_smaller: patterns.iter().map(|p| u16::from(p.big_smaller)).collect(),
        })
    }

    fn row(&self, chunk: usize, subset: usize) -> &[u16] {
        let at = (chunk * SUBSETS + subset) * self.patterns;
        &self.rows[at..at + self.patterns]
    }
}

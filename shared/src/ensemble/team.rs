//! A validated team on a sample subset, and the diversity metrics of spec §2 on it
//! (raw definitions; an undefined value such as 0/0 is `None`, never NaN).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::bitset::Bitset;
use super::pool::Pool;

/// Why a team or sample subset was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TeamError {
    /// A team needs at least two members.
    #[error("a team needs at least 2 members, found {size}")]
    TooSmall {
        /// The number of members given.
        size: usize,
    },
    /// A member index is not a model of the pool.
    #[error("model index {model} is outside the pool's models 0..{models}")]
    ModelOutOfRange {
        /// The offending index.
        model: usize,
        /// The pool's number of models.
        models: usize,
    },
    /// A model is listed twice.
    #[error("model index {model} appears twice in the team")]
    DuplicateMember {
        /// The repeated index.
        model: usize,
    },
    /// The sample subset ranges over a different number of samples than the pool has.
    #[error("the sample subset ranges over {found} samples, expected the pool's {expected}")]
    SubsetLength {
        /// The pool's number of samples.
        expected: usize,
        /// The subset's length.
        found: usize,
    },
}

/// Counts of a pair of models (i, j) over a sample set: `n11` both correct, `n00` both wrong,
/// `n10` only i correct, `n01` only j correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairCounts {
    /// Both correct.
    pub n11: u64,
    /// Both wrong.
    pub n00: u64,
    /// i correct, j wrong.
    pub n10: u64,
    /// i wrong, j correct.
    pub n01: u64,
}

/// `num / den`, or `None` when the denominator is zero.
fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

impl PairCounts {
    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.n11 + self.n00 + self.n10 + self.n01
    }

    fn cross(&self) -> f64 {
        (self.n11 * self.n00) as f64 - (self.n01 * self.n10) as f64
    }

    /// Yule's Q: `(n11·n00 − n01·n10) / (n11·n00 + n01·n10)`; `None` when the denominator is 0.
    pub fn q_statistic(&self) -> Option<f64> {
        ratio(
            self.cross(),
            (self.n11 * self.n00 + self.n01 * self.n10) as f64,
        )
    }

    /// Correlation ρ: the Q numerator over the square root of the four margin products;
    /// `None` when a margin is 0.
    pub fn correlation(&self) -> Option<f64> {
        let margins = (self.n11 + self.n10) as f64
            * (self.n01 + self.n00) as f64
            * (self.n11 + self.n01) as f64
            * (self.n10 + self.n00) as f64;
        ratio(self.cross(), margins.sqrt())
    }

    /// Share of samples on which exactly one of the two is correct; `None` on no samples.
    pub fn disagreement(&self) -> Option<f64> {
        ratio((self.n01 + self.n10) as f64, self.total() as f64)
    }

    /// Kuncheva's pairwise κ on oracle (correct/wrong) outputs, as the `FusionShot` code computes it:
    /// `2(n11·n00 − n01·n10) / ((n11+n10)(n01+n00) + (n11+n01)(n10+n00))`.
    pub fn oracle_kappa(&self) -> Option<f64> {
        let den = (self.n11 + self.n10) * (self.n01 + self.n00)
            + (self.n11 + self.n01) * (self.n10 + self.n00);
        ratio(2.0 * self.cross(), den as f64)
    }
}

/// The eight diversity metrics of spec §2 for one team on one sample set, raw orientation;
/// `null` in JSON where undefined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiversityMetrics {
    /// Mean pairwise Cohen's κ on predicted labels.
    pub cohen_kappa: Option<f64>,
    /// Mean pairwise Q-statistic on correctness.
    pub q_statistic: Option<f64>,
    /// Mean pairwise correlation coefficient on correctness.
    pub correlation: Option<f64>,
    /// Mean pairwise disagreement on correctness.
    pub disagreement: Option<f64>,
    /// Fleiss' κ on predicted labels.
    pub fleiss_kappa: Option<f64>,
    /// Kuncheva's entropy E.
    pub entropy: Option<f64>,
    /// Kohavi–Wolpert variance.
    pub kw_variance: Option<f64>,
    /// Generalized diversity (Partridge & Krzanowski).
    pub generalized_diversity: Option<f64>,
}

impl DiversityMetrics {
    /// The eight values in declaration order: CK, Q, ρ, BD, FK, E, KW, GD.
    pub fn values(&self) -> [Option<f64>; 8] {
        [
            self.cohen_kappa,
            self.q_statistic,
            self.correlation,
            self.disagreement,
            self.fleiss_kappa,
            self.entropy,
            self.kw_variance,
            self.generalized_diversity,
        ]
    }
}

/// A team of a pool restricted to a sample subset. Members are kept ascending, so every
/// value is independent of the order in which they were given.
#[derive(Debug, Clone)]
pub struct TeamView<'a> {
    pub(crate) pool: &'a Pool,
    pub(crate) members: Vec<usize>,
    pub(crate) subset: Bitset,
    /// The subset is every sample, so the pool's precomputed label statistics apply.
    pub(crate) all_samples: bool,
}

impl Pool {
    /// The team `members` on all samples.
    ///
    /// # Errors
    /// Fewer than two members, an index outside the pool, or a repeated index.
    pub fn team(&self, members: &[usize]) -> Result<TeamView<'_>, TeamError> {
        self.team_on(members, self.all_samples())
    }

    /// The team `members` on the samples of `subset`.
    ///
    /// # Errors
    /// As [`Pool::team`], or a subset whose length differs from the pool's sample count.
    pub fn team_on(&self, members: &[usize], subset: &Bitset) -> Result<TeamView<'_>, TeamError> {
        if members.len() < 2 {
            return Err(TeamError::TooSmall {
                size: members.len(),
            });
        }
        if subset.len() != self.samples() {
            return Err(TeamError::SubsetLength {
                expected: self.samples(),
                found: subset.len(),
            });
        }
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        for (k, &model) in sorted.iter().enumerate() {
            if model >= self.models() {
                return Err(TeamError::ModelOutOfRange {
                    model,
                    models: self.models(),
                });
            }
            if k > 0 && sorted[k - 1] == model {
                return Err(TeamError::DuplicateMember { model });
            }
        }
        Ok(TeamView {
            pool: self,
            members: sorted,
            all_samples: subset.count() == self.samples(),
            subset: subset.clone(),
        })
    }
}

impl TeamView<'_> {
    /// The members, ascending.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// The sample subset.
    pub fn subset(&self) -> &Bitset {
        &self.subset
    }

    /// Pair counts of members `i` and `j` (pool indices; any models of the pool) on the subset;
    /// `None` for an index outside the pool.
    pub fn pair_counts(&self, i: usize, j: usize) -> Option<PairCounts> {
        let rows = self.pool.correct_rows();
        let (ci, cj) = (rows.get(i)?.words(), rows.get(j)?.words());
        let mut c = PairCounts {
            n11: 0,
            n00: 0,
            n10: 0,
            n01: 0,
        };
        for ((s, a), b) in self.subset.words().iter().zip(ci).zip(cj) {
            c.n11 += u64::from((s & a & b).count_ones());
            c.n10 += u64::from((s & a & !b).count_ones());
            c.n01 += u64::from((s & !a & b).count_ones());
            c.n00 += u64::from((s & !a & !b).count_ones());
        }
        Some(c)
    }

    /// Mean of `stat` over member pairs i < j; `None` if any pair is undefined.
    fn pair_mean(&self, stat: impl Fn(usize, usize) -> Option<f64>) -> Option<f64> {
        let mut sum = 0.0;
        let mut pairs = 0_u32;
        for (k, &i) in self.members.iter().enumerate() {
            for &j in &self.members[k + 1..] {
                sum += stat(i, j)?;
                pairs += 1;
            }
        }
        Some(sum / f64::from(pairs))
    }

    fn pair_stat(&self, stat: fn(&PairCounts) -> Option<f64>) -> Option<f64> {
        self.pair_mean(|i, j| self.pair_counts(i, j).and_then(|c| stat(&c)))
    }

    /// Cohen's κ of two models' predicted labels on the subset: `(p_o − p_e)/(1 − p_e)`;
    /// `None` when `p_e = 1` (both constant and equal) or the subset is empty.
    pub fn pair_cohen_kappa(&self, i: usize, j: usize) -> Option<f64> {
        let preds = self.pool.prediction_rows();
        let (pi, pj) = (preds.get(i)?, preds.get(j)?);
        let (agree, total, chance) = if self.all_samples {
            let chance = self
                .pool
                .class_counts(i)
                .iter()
                .zip(self.pool.class_counts(j))
                .map(|(x, y)| x * y)
                .sum();
            (
                self.pool.agreement(i, j),
                self.pool.samples() as u64,
                chance,
            )
        } else {
            let classes = self.pool.classes();
            let (mut by_i, mut by_j) = (vec![0_u64; classes], vec![0_u64; classes]);
            let (mut agree, mut total) = (0_u64, 0_u64);
            for s in self.subset.iter() {
                by_i[pi[s] as usize] += 1;
                by_j[pj[s] as usize] += 1;
                agree += u64::from(pi[s] == pj[s]);
                total += 1;
            }
            let chance: u64 = by_i.iter().zip(&by_j).map(|(x, y)| x * y).sum();
            (agree, total, chance)
        };
        // Scaled by total²: exact integers until the one division.
        ratio(
            (agree * total) as f64 - chance as f64,
            (total * total) as f64 - chance as f64,
        )
    }

    /// Mean pairwise Cohen's κ on predicted labels (ground truth ignored).
    pub fn cohen_kappa(&self) -> Option<f64> {
        self.pair_mean(|i, j| self.pair_cohen_kappa(i, j))
    }

    /// Mean pairwise Q-statistic (no epsilon: a 0/0 pair makes the team value `None`).
    pub fn q_statistic(&self) -> Option<f64> {
        self.pair_stat(PairCounts::q_statistic)
    }

    /// Mean pairwise correlation coefficient (no epsilon).
    pub fn correlation(&self) -> Option<f64> {
        self.pair_stat(PairCounts::correlation)
    }

    /// Mean pairwise disagreement.
    pub fn disagreement(&self) -> Option<f64> {
        self.pair_stat(PairCounts::disagreement)
    }

    /// Fleiss' κ over the members' predicted labels: `(P̄ − P_e)/(1 − P_e)`; `None` when every
    /// member always predicts the same single class or the subset is empty.
    pub fn fleiss_kappa(&self) -> Option<f64> {
        let raters = self.members.len() as u64;
        let mut totals = vec![0_u64; self.pool.classes()];
        let (mut squares, mut n) = (0_u64, 0_u64);
        if self.all_samples {
            // Σ_c count² per sample = raters + 2·(pairs that agree there).
            n = self.pool.samples() as u64;
            squares = n * raters;
            for (k, &i) in self.members.iter().enumerate() {
                for (t, c) in totals.iter_mut().zip(self.pool.class_counts(i)) {
                    *t += c;
                }
                for &j in &self.members[k + 1..] {
                    squares += 2 * self.pool.agreement(i, j);
                }
            }
        } else {
            let preds = self.pool.prediction_rows();
            let mut per_sample = vec![0_u64; self.pool.classes()];
            for s in self.subset.iter() {
                per_sample.fill(0);
                for &m in &self.members {
                    per_sample[preds[m][s] as usize] += 1;
                }
                for (t, &c) in totals.iter_mut().zip(&per_sample) {
                    squares += c * c;
                    *t += c;
                }
                n += 1;
            }
        }
        let ratings = (n * raters) as f64;
        let agreement = ratio((squares - n * raters) as f64, ratings * (raters - 1) as f64)?;
        let total_sq: u64 = totals.iter().map(|t| t * t).sum();
        let chance = total_sq as f64 / (ratings * ratings);
        ratio(agreement - chance, 1.0 - chance)
    }

    /// Histogram of how many members fail per subset sample: entry `i` counts the samples
    /// on which exactly `i` members are wrong (`i = 0..=L`).
    pub fn failure_histogram(&self) -> Vec<u64> {
        self.histogram_on(&self.subset)
    }

    pub(crate) fn histogram_on(&self, samples: &Bitset) -> Vec<u64> {
        let wrong = self.pool.wrong_rows();
        let mut hist = vec![0_u64; self.members.len() + 1];
        for s in samples.iter() {
            let fails = self
                .members
                .iter()
                .filter(|&&m| wrong[m].contains(s))
                .count();
            hist[fails] += 1;
        }
        hist
    }

    /// Kuncheva's entropy `E = (1/N) Σ min(l, L − l) / (L − ⌈L/2⌉)`, `l` = members correct.
    pub fn entropy(&self) -> Option<f64> {
        entropy_from_histogram(&self.failure_histogram())
    }

    /// Kohavi–Wolpert variance `(1/(N·L²)) Σ l (L − l)`.
    pub fn kw_variance(&self) -> Option<f64> {
        kw_from_histogram(&self.failure_histogram())
    }

    /// Generalized diversity `GD = 1 − P2/P1` on the subset; `None` when no member ever
    /// fails there (P1 = 0), which includes the empty subset.
    pub fn generalized_diversity(&self) -> Option<f64> {
        gd_from_histogram(&self.failure_histogram())
    }

    /// All eight metrics.
    pub fn diversity(&self) -> DiversityMetrics {
        let hist = self.failure_histogram();
        DiversityMetrics {
            cohen_kappa: self.cohen_kappa(),
            q_statistic: self.q_statistic(),
            correlation: self.correlation(),
            disagreement: self.disagreement(),
            fleiss_kappa: self.fleiss_kappa(),
            entropy: entropy_from_histogram(&hist),
            kw_variance: kw_from_histogram(&hist),
            generalized_diversity: gd_from_histogram(&hist),
        }
    }
}

/// Kuncheva's entropy from a failure histogram over `0..=L` (`L` = team size).
fn entropy_from_histogram(hist: &[u64]) -> Option<f64> {
    let team = hist.len().checked_sub(1)?;
    let n: u64 = hist.iter().sum();
    let sum: u64 = hist
        .iter()
        .enumerate()
        .map(|(fails, &h)| fails.min(team - fails) as u64 * h)
        .sum();
    ratio(sum as f64, (n * (team - team.div_ceil(2)) as u64) as f64)
}

/// Kohavi–Wolpert variance from a failure histogram over `0..=L`.
fn kw_from_histogram(hist: &[u64]) -> Option<f64> {
    let team = hist.len().checked_sub(1)? as u64;
    let n: u64 = hist.iter().sum();
    let sum: u64 = (0..)
        .zip(hist)
        .map(|(fails, &h)| fails * (team - fails) * h)
        .sum();
    ratio(sum as f64, (n * team * team) as f64)
}

/// GD from a failure histogram over `0..=L`. With `S1 = Σ i·h_i` and `S2 = Σ i(i−1)·h_i`,
/// `P2/P1 = S2 / ((L − 1)·S1)`: exact integers up to the single division.
pub(crate) fn gd_from_histogram(hist: &[u64]) -> Option<f64> {
    let team = hist.len().checked_sub(1)? as u64;
    let (s1, s2) = (0_u64..).zip(hist).fold((0, 0), |(s1, s2), (i, &h)| {
        (s1 + i * h, s2 + i * i.saturating_sub(1) * h)
    });
    let den = (team.checked_sub(1)? * s1) as f64;
    ratio(s2 as f64, den).map(|r| 1.0 - r)
}

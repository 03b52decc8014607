//! The reference modes' per-focal scores without revisiting the samples for every team.
//!
//! Both references score a team on a fixed list of rows per focal model: its negatives, or one
//! bootstrap draw of them (repeats allowed). Counted once per row list:
//! - each model's failures over the row positions, as a bitset, so a team's failure-count
//!   histogram is a bit-sliced sum of its members' bitsets (`|T|·log|T|·rows/64` word
//!   operations instead of `|T|·rows` lookups);
//! - for `EnsembleBench`'s label metrics, every pair's agreements and co-failures and every
//!   model's class counts, so its six scores of a team cost `O(|T|²·C)`.
//!
//! The scores equal [`super::eb_scores`] and [`super::fs_generalized_div`] on the same rows:
//! the same integer counts enter the same floating-point formulas, except Fleiss' κ, whose mean
//! of per-row agreements is taken from their integer sum (a rounding apart, ~1e-16).

use super::ensemblebench::assemble;
use super::{CompatError, EPS, EbScores, Sampling, bootstrap_positions, eb_scores};
use crate::ensemble::Pool;

/// Each model's failures over the positions of a row list.
#[derive(Debug, Clone)]
pub struct RowFailures {
    rows: usize,
    words: usize,
    /// Model `m`'s failures: `bits[m * words..(m + 1) * words]`, bit `p` set when it fails the
    /// row at position `p`.
    bits: Vec<u64>,
}

impl RowFailures {
    /// The failures of every model of `pool` on `rows` (sample indices, repeats allowed).
    pub fn new(pool: &Pool, rows: &[usize]) -> Self {
        let words = rows.len().div_ceil(64);
        let mut bits = vec![0_u64; pool.models() * words];
        for m in 0..pool.models() {
            let Some(correct) = pool.correct(m) else {
                continue;
            };
            let own = &mut bits[m * words..(m + 1) * words];
            for (p, &r) in rows.iter().enumerate() {
                if !correct.contains(r) {
                    own[p / 64] |= 1 << (p % 64);
                }
            }
        }
        Self {
            rows: rows.len(),
            words,
            bits,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn of(&self, model: usize) -> &[u64] {
        &self.bits[model * self.words..(model + 1) * self.words]
    }

    /// Entry `k`: the rows on which exactly `k` of `members` (distinct, each below the pool's
    /// model count) fail, `k = 0..=members.len()`.
    pub fn histogram(&self, members: &[usize]) -> Vec<u64> {
        let size = members.len();
        // Bit planes of a per-row counter that holds up to `size`.
        let planes = (usize::BITS - size.leading_zeros()) as usize;
        let mut histogram = vec![0_u64; size + 1];
        let mut plane = [0_u64; usize::BITS as usize];
        for w in 0..self.words {
            let plane = &mut plane[..planes];
            plane.fill(0);
            for &m in members {
                // Ripple-carry addition of one bit per row.
                let mut carry = self.bits[m * self.words + w];
                for p in plane.iter_mut() {
                    let next = *p & carry;
                    *p ^= carry;
                    carry = next;
                    if carry == 0 {
                        break;
                    }
                }
            }
            if plane.iter().all(|&p| p == 0) {
                continue;
            }
            for (k, count) in histogram.iter_mut().enumerate().skip(1) {
                let rows_at_k = plane.iter().enumerate().fold(!0_u64, |at, (b, &p)| {
                    at & if k >> b & 1 == 1 { p } else { !p }
                });
                *count += u64::from(rows_at_k.count_ones());
            }
        }
        // Padding bits past the last row are in no member's bitset, so they are not counted.
        histogram[0] = self.rows as u64 - histogram[1..].iter().sum::<u64>();
        histogram
    }
}

/// What `EnsembleBench`'s six metrics need of a row list.
#[derive(Debug, Clone)]
pub struct RowLabels {
    rows: Vec<usize>,
    failures: RowFailures,
    models: usize,
    classes: usize,
    /// `agree[j * M + k]`: rows on which models `j` and `k` predict the same class.
    agree: Vec<u64>,
    /// `both_wrong[j * M + k]`: rows that models `j` and `k` both fail (`j == k`: `j` fails).
    both_wrong: Vec<u64>,
    /// `class_counts[m * C + c]`: rows on which model `m` predicts class `c`.
    class_counts: Vec<u64>,
}

impl RowLabels {
    /// Counts the pool's predictions on `rows` (sample indices, repeats allowed).
    pub fn new(pool: &Pool, rows: &[usize]) -> Self {
        let models = pool.models();
        let classes = pool.classes();
        let failures = RowFailures::new(pool, rows);
        let predictions: Vec<&[u32]> = (0..models)
            .map(|m| pool.predictions(m).unwrap_or_default())
            .collect();
        let mut agree = vec![0_u64; models * models];
        let mut class_counts = vec![0_u64; models * classes];
        let mut row = vec![0_u32; models];
        for &r in rows {
            for (m, p) in predictions.iter().enumerate() {
                row[m] = p.get(r).copied().unwrap_or(0);
                class_counts[m * classes + row[m] as usize] += 1;
            }
            for j in 0..models {
                for k in j + 1..models {
                    agree[j * models + k] += u64::from(row[j] == row[k]);
                }
            }
        }
        let mut both_wrong = vec![0_u64; models * models];
        for j in 0..models {
            agree[j * models + j] = rows.len() as u64;
            for k in j..models {
                if k > j {
                    agree[k * models + j] = agree[j * models + k];
                }
                let count: u64 = failures
                    .of(j)
                    .iter()
                    .zip(failures.of(k))
                    .map(|(a, b)| u64::from((a & b).count_ones()))
                    .sum();
                both_wrong[j * models + k] = count;
                both_wrong[k * models + j] = count;
            }
        }
        Self {
            rows: rows.to_vec(),
            failures,
            models,
            classes,
            agree,
            both_wrong,
            class_counts,
        }
    }

    fn counts(&self, m: usize) -> &[u64] {
        &self.class_counts[m * self.classes..(m + 1) * self.classes]
    }

    /// `calAllDiversityMetrics` of `members` on the rows, as [`eb_scores`] computes it.
    ///
    /// # Errors
    /// The errors of [`eb_scores`].
    pub fn scores(&self, pool: &Pool, members: &[usize]) -> Result<EbScores, CompatError> {
        let n = self.failures.rows();
        let size = members.len();
        if n <= size {
            // A row may have as many failing members as there are rows: EnsembleBench's GD
            // histogram then overflows, and the row-by-row computation says where.
            return eb_scores(pool, members, &self.rows);
        }
        let m = self.models;
        let nf = n as f64;
        let mut kappas = Vec::with_capacity(size * (size - 1) / 2);
        let mut qs = Vec::with_capacity(kappas.capacity());
        let mut disagreements = Vec::with_capacity(kappas.capacity());
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                let same: f64 = self
                    .counts(a)
                    .iter()
                    .zip(self.counts(b))
                    .map(|(&x, &y)| x as f64 * y as f64)
                    .sum();
                let disagree = n as u64 - self.agree[a * m + b];
                let expected = (nf * nf - same) / nf;
                kappas.push(1.0 - disagree as f64 / expected);
                // Counts of rows: far below 2^63.
                let n00 = self.both_wrong[a * m + b].cast_signed();
                let wrong_a = self.both_wrong[a * m + a].cast_signed();
                let wrong_b = self.both_wrong[b * m + b].cast_signed();
                let n11 = (n as u64).cast_signed() - wrong_a - wrong_b + n00;
                let n10 = wrong_b - n00;
                let n01 = wrong_a - n00;
                qs.push((n11 * n00 - n01 * n10) as f64 / ((n11 * n00 + n01 * n10) as f64 + EPS));
                disagreements.push((n01 + n10) as f64 / (n11 + n10 + n01 + n00) as f64);
            }
        }

        let histogram = self.failures.histogram(members);
        let kw: u64 = histogram
            .iter()
            .enumerate()
            .map(|(wrong, &rows)| rows * (wrong * (size - wrong)) as u64)
            .sum();
        Ok(assemble(
            [&kappas, &qs, &disagreements],
            self.fleiss_kappa(members),
            kw,
            &histogram,
            size,
        ))
    }

    /// statsmodels' Fleiss κ of the members' labels on the rows: the sum over rows of `Σ_c n_c²` is
    /// the sum of all ordered pairs' agreements (a member agrees with itself on every row).
    fn fleiss_kappa(&self, members: &[usize]) -> f64 {
        let n = self.failures.rows() as f64;
        let raters = members.len() as f64;
        let squares: u64 = members
            .iter()
            .flat_map(|&a| members.iter().map(move |&b| (a, b)))
            .map(|(a, b)| self.agree[a * self.models + b])
            .sum();
        let agreement = (squares as f64 - n * raters) / (raters * (raters - 1.0)) / n;
        let total = n * raters;
        let expected: f64 = (0..self.classes)
            .map(|c| {
                let category: u64 = members
                    .iter()
                    .map(|&a| self.class_counts[a * self.classes + c])
                    .sum();
                let share = category as f64 / total;
                share * share
            })
            .sum();
        (agreement - expected) / (1.0 - expected)
    }
}

/// Every focal model's row lists under a sampling, counted once for all teams.
#[derive(Debug, Clone)]
pub struct FocalRows {
    /// Per model: the counts of its row lists (its negatives, or the bootstrap's rounds);
    /// `None` when bootstrapping a model without negatives.
    per_model: Vec<Option<Vec<RowLabels>>>,
}

impl FocalRows {
    /// Counts each model's negatives, or their bootstrap draws.
    pub fn new(pool: &Pool, sampling: Sampling) -> Self {
        let per_model = (0..pool.models())
            .map(|f| {
                let negatives = pool.negative_rows(f);
                match sampling {
                    Sampling::Exact => Some(vec![RowLabels::new(pool, &negatives)]),
                    Sampling::Bootstrap2021 => bootstrap_positions(negatives.len()).map(|draws| {
                        draws
                            .iter()
                            .map(|draw| {
                                let rows: Vec<usize> = draw.iter().map(|&p| negatives[p]).collect();
                                RowLabels::new(pool, &rows)
                            })
                            .collect()
                    }),
                }
            })
            .collect();
        Self { per_model }
    }

    /// `calFocalDiversityScores(focal, members, ...)`, as [`super::eb_focal_scores`] computes
    /// it.
    ///
    /// # Errors
    /// The errors of [`super::eb_focal_scores`].
    pub fn scores(
        &self,
        pool: &Pool,
        members: &[usize],
        focal: usize,
    ) -> Result<EbScores, CompatError> {
        let Some(Some(rounds)) = self.per_model.get(focal) else {
            return Err(CompatError::EmptyBootstrap {
                team: members.to_vec(),
                focal,
            });
        };
        if let [exact] = rounds.as_slice() {
            return exact.scores(pool, members);
        }
        let rounds = rounds
            .iter()
            .map(|round| round.scores(pool, members))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(std::array::from_fn(|k| {
            rounds.iter().fold(0.0, |sum, r| sum + r[k]) / rounds.len() as f64
        }))
    }
}

//! EnsembleBench's "Q-metrics" (`groupMetrics.calDiversityMetric`, spec §2.2) on any list of
//! sample rows (repeats allowed, as in its bootstrap), and its per-focal scores (§3.3 steps
//! 1–2), computed the way the reference computes them: `eps` in Q, `1 − x` orientation (lower
//! = more diverse), its generalized-diversity histogram sized by the number of rows
//! (divergence 2, an error) and NaN where the reference divides 0 by 0.

use serde::{Deserialize, Serialize};

use super::CompatError;
use super::numpy::{RandomState, np_mean};
use crate::ensemble::Pool;

/// `np.finfo(float).eps`, which EnsembleBench adds to the Q-statistic's denominator.
pub const EPS: f64 = f64::EPSILON;

/// EnsembleBench's six selectable metrics, in the order of its demo's `diversityMetricsList`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EbMetric {
    /// Mean pairwise Cohen's κ on predicted labels.
    CK,
    /// Mean pairwise Q-statistic (with `eps`).
    QS,
    /// 1 − mean pairwise binary disagreement.
    BD,
    /// Fleiss' κ on predicted labels.
    FK,
    /// 1 − Kohavi–Wolpert variance.
    KW,
    /// 1 − generalized diversity.
    GD,
}

impl EbMetric {
    /// All six, in the demo's order (the index of a metric in [`EbScores`]).
    pub const ALL: [Self; 6] = [Self::CK, Self::QS, Self::BD, Self::FK, Self::KW, Self::GD];

    /// The reference's name (`"CK"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::CK => "CK",
            Self::QS => "QS",
            Self::BD => "BD",
            Self::FK => "FK",
            Self::KW => "KW",
            Self::GD => "GD",
        }
    }

    /// Position in [`EbMetric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a reference name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// The six oriented scores in [`EbMetric::ALL`] order; NaN where the reference gives NaN.
pub type EbScores = [f64; 6];

/// How EnsembleBench samples a focal model's negatives (§3.3 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// One evaluation on the whole negative set (`crossValidation=False`; deterministic).
    Exact,
    /// Three rounds of 100 draws with replacement, the generator reseeded with 2021 for every
    /// team (`crossValidation=True`, the library default), averaged.
    Bootstrap2021,
}

/// Rounds and draws of [`Sampling::Bootstrap2021`].
const ROUNDS: usize = 3;
const DRAWS: usize = 100;
const SEED: u32 = 2021;

/// The positions into a negative set of `n` samples that [`Sampling::Bootstrap2021`] draws:
/// `ROUNDS` rows of `DRAWS`. `None` for an empty set (numpy's "'a' cannot be empty").
pub fn bootstrap_positions(n: usize) -> Option<Vec<Vec<usize>>> {
    let mut rng = RandomState::new(SEED);
    (0..ROUNDS).map(|_| rng.choice(n, DRAWS)).collect()
}

/// The predictions of one member on the given rows.
fn column(pool: &Pool, model: usize, rows: &[usize]) -> Vec<u32> {
    let predictions = pool.predictions(model).unwrap_or_default();
    rows.iter().map(|&r| predictions[r]).collect()
}

/// sklearn's `cohen_kappa_score(a, b)`: `1 − observed / expected` disagreement.
fn cohen_kappa(a: &[u32], b: &[u32], classes: usize) -> f64 {
    let n = a.len() as f64;
    let mut count_a = vec![0_u64; classes];
    let mut count_b = vec![0_u64; classes];
    let mut disagree = 0_u64;
    for (&x, &y) in a.iter().zip(b) {
        count_a[x as usize] += 1;
        count_b[y as usize] += 1;
        disagree += u64::from(x != y);
    }
    let same: f64 = count_a
        .iter()
        .zip(&count_b)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum();
    let expected = (n * n - same) / n;
    1.0 - disagree as f64 / expected
}

/// statsmodels' `fleiss_kappa(aggregate_raters(rows × members))`.
fn fleiss_kappa(columns: &[Vec<u32>], classes: usize) -> f64 {
    let rows = columns[0].len();
    let raters = columns.len() as f64;
    let mut category = vec![0.0_f64; classes];
    let mut agreement = Vec::with_capacity(rows);
    let mut counts = vec![0_u32; classes];
    for r in 0..rows {
        counts.fill(0);
        for col in columns {
            counts[col[r] as usize] += 1;
        }
        let squares: f64 = counts.iter().map(|&c| f64::from(c * c)).sum();
        agreement.push((squares - raters) / (raters * (raters - 1.0)));
        for (total, &c) in category.iter_mut().zip(&counts) {
            *total += f64::from(c);
        }
    }
    let total = rows as f64 * raters;
    let expected: f64 = category.iter().map(|&c| (c / total) * (c / total)).sum();
    (np_mean(&agreement) - expected) / (1.0 - expected)
}

/// `calAllDiversityMetrics(rows × members, labels, [CK, QS, BD, FK, KW, GD])` for a team on
/// the given sample rows (repeats allowed).
///
/// # Errors
/// [`CompatError::EmptyInput`] without rows (sklearn rejects empty input) and
/// [`CompatError::HistogramIndex`] where EnsembleBench's generalized diversity indexes past
/// its histogram (a row with at least as many failing members as there are rows).
pub fn eb_scores(pool: &Pool, members: &[usize], rows: &[usize]) -> Result<EbScores, CompatError> {
    if rows.is_empty() {
        return Err(CompatError::EmptyInput {
            team: members.to_vec(),
        });
    }
    let classes = pool.classes();
    let labels: Vec<u32> = rows.iter().map(|&r| pool.labels()[r]).collect();
    let columns: Vec<Vec<u32>> = members.iter().map(|&m| column(pool, m, rows)).collect();
    let correct: Vec<Vec<bool>> = columns
        .iter()
        .map(|c| c.iter().zip(&labels).map(|(p, y)| p == y).collect())
        .collect();
    let n = rows.len();
    let size = members.len();

    let mut kappas = Vec::new();
    let mut qs = Vec::new();
    let mut disagreements = Vec::new();
    for i in 0..size {
        for j in i + 1..size {
            kappas.push(cohen_kappa(&columns[i], &columns[j], classes));
            let (mut n11, mut n00, mut n10, mut n01) = (0_i64, 0_i64, 0_i64, 0_i64);
            for (&a, &b) in correct[i].iter().zip(&correct[j]) {
                match (a, b) {
                    (true, true) => n11 += 1,
                    (false, false) => n00 += 1,
                    (true, false) => n10 += 1,
                    (false, true) => n01 += 1,
                }
            }
            qs.push((n11 * n00 - n01 * n10) as f64 / ((n11 * n00 + n01 * n10) as f64 + EPS));
            disagreements.push((n01 + n10) as f64 / (n11 + n10 + n01 + n00) as f64);
        }
    }

    let mut kw = 0_u64;
    let mut histogram = vec![0_u64; n];
    for r in 0..n {
        let right = correct.iter().filter(|c| c[r]).count();
        let wrong = size - right;
        kw += (right * wrong) as u64;
        if wrong >= n {
            return Err(CompatError::HistogramIndex {
                team: members.to_vec(),
                index: wrong,
                size: n,
            });
        }
        histogram[wrong] += 1;
    }
    Ok(assemble(
        [&kappas, &qs, &disagreements],
        fleiss_kappa(&columns, classes),
        kw,
        &histogram[..histogram.len().min(size + 1)],
        size,
    ))
}

/// The six scores from the pairwise values (Cohen's κ, Q, disagreement), Fleiss' κ, the KW sum
/// `Σ right·wrong` and the histogram of failing members per row, `0..=size`, as
/// `calAllDiversityMetrics` combines them.
pub(super) fn assemble(
    [kappas, qs, disagreements]: [&[f64]; 3],
    fleiss: f64,
    kw: u64,
    histogram: &[u64],
    size: usize,
) -> EbScores {
    let n = histogram.iter().sum::<u64>() as f64;
    let l = size as f64;
    let (mut p1, mut p2) = (0.0_f64, 0.0_f64);
    for (i, &count) in histogram.iter().enumerate() {
        let share = count as f64 / n;
        p1 += i as f64 * share / l;
        p2 += (i * i.saturating_sub(1)) as f64 * share / (l * (l - 1.0));
    }
    let generalized = 1.0 - p2 / p1;
    [
        np_mean(kappas),
        np_mean(qs),
        1.0 - np_mean(disagreements),
        fleiss,
        1.0 - kw as f64 / (n * l * l),
        1.0 - generalized,
    ]
}

/// `calFocalDiversityScores(focal, members, ...)`: the six scores of a team on the focal
/// model's negative samples.
///
/// # Errors
/// [`CompatError::EmptyBootstrap`] when bootstrapping a focal model without negatives, and
/// the errors of [`eb_scores`].
pub fn eb_focal_scores(
    pool: &Pool,
    members: &[usize],
    focal: usize,
    sampling: Sampling,
) -> Result<EbScores, CompatError> {
    let negatives = pool.negative_rows(focal);
    match sampling {
        Sampling::Exact => eb_scores(pool, members, &negatives),
        Sampling::Bootstrap2021 => {
            let positions =
                bootstrap_positions(negatives.len()).ok_or(CompatError::EmptyBootstrap {
                    team: members.to_vec(),
                    focal,
                })?;
            let mut rounds = Vec::with_capacity(ROUNDS);
            for draw in positions {
                let rows: Vec<usize> = draw.iter().map(|&p| negatives[p]).collect();
                rounds.push(eb_scores(pool, members, &rows)?);
            }
            let mut mean = [0.0; 6];
            for (k, value) in mean.iter_mut().enumerate() {
                let column: Vec<f64> = rounds.iter().map(|r| r[k]).collect();
                *value = column.iter().fold(0.0, |s, v| s + v) / column.len() as f64;
            }
            Ok(mean)
        }
    }
}

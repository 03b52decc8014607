//! How a combiner, a member or a vote does on a split (spec `focal.md` §7): accuracy with a
//! 95 % interval, negative log-likelihood, expected calibration error and per-class accuracy.

use serde::{Deserialize, Serialize};

use crate::ensemble::pool::first_argmax;

/// The normal quantile of a two-sided 95 % interval.
const Z95: f64 = 1.96;

/// Equal-width confidence bins of the expected calibration error.
pub const ECE_BINS: usize = 15;

/// Probabilities are clamped to this before their logarithm, so one confident mistake gives a
/// large but finite NLL.
pub const NLL_FLOOR: f64 = 1e-12;

/// FusionShot's batch size for its mean-of-batches accuracy.
pub const FUSIONSHOT_BATCH: usize = 64;

/// How an accuracy's interval is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interval {
    /// Wilson's score interval of the share of correct samples.
    Wilson,
    /// FusionShot's: the mean of per-batch accuracies (batches of 64 in sample order) ±
    /// 1.96·std/√batches.
    BatchMean,
}

/// One row of a comparison: what a combiner, member or vote scores on a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Samples scored.
    pub samples: usize,
    /// Fraction correct (with [`Interval::BatchMean`], the mean of the batch accuracies).
    pub accuracy: f64,
    /// The 95 % interval of `accuracy`, clamped to `[0, 1]`.
    pub interval: [f64; 2],
    /// How `interval` was computed.
    pub interval_kind: Interval,
    /// Mean negative log-likelihood of the true class (natural log), when there are
    /// probabilities.
    pub nll: Option<f64>,
    /// Expected calibration error over [`ECE_BINS`] bins of top-class confidence, when there
    /// are probabilities.
    pub ece: Option<f64>,
    /// Accuracy on the samples of each class (`None` for a class absent from the split).
    pub per_class: Vec<Option<f64>>,
}

/// Wilson's 95 % score interval of `right` successes in `n` trials.
fn wilson(right: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let n = n as f64;
    let p = right as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// FusionShot's accuracy: the mean of per-batch accuracies and its ± 1.96·std/√batches
/// (population standard deviation, as NumPy's default).
pub fn batch_mean_accuracy(correct: &[bool], batch: usize) -> (f64, [f64; 2]) {
    let accuracies: Vec<f64> = correct
        .chunks(batch.max(1))
        .map(|chunk| chunk.iter().filter(|&&c| c).count() as f64 / chunk.len() as f64)
        .collect();
    if accuracies.is_empty() {
        return (0.0, [0.0, 1.0]);
    }
    let batches = accuracies.len() as f64;
    let mean = accuracies.iter().sum::<f64>() / batches;
    let variance = accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / batches;
    let half = Z95 * variance.sqrt() / batches.sqrt();
    (mean, [(mean - half).max(0.0), (mean + half).min(1.0)])
}

/// Scores `predictions` against `labels`; `probabilities` (`samples × classes`, row-major)
/// add the NLL and ECE.
pub fn scores(
    labels: &[u32],
    predictions: &[u32],
    probabilities: Option<&[f64]>,
    classes: usize,
    interval: Interval,
) -> Scores {
    let correct: Vec<bool> = labels
        .iter()
        .zip(predictions)
        .map(|(y, p)| y == p)
        .collect();
    let right = correct.iter().filter(|&&c| c).count();
    let samples = labels.len();
    let (accuracy, interval_bounds) = match interval {
        Interval::Wilson => (right as f64 / samples.max(1) as f64, wilson(right, samples)),
        Interval::BatchMean => batch_mean_accuracy(&correct, FUSIONSHOT_BATCH),
    };
    let mut per_class_right = vec![0_usize; classes];
    let mut per_class_all = vec![0_usize; classes];
    for (&y, &c) in labels.iter().zip(&correct) {
        if let Some(all) = per_class_all.get_mut(y as usize) {
            *all += 1;
            per_class_right[y as usize] += usize::from(c);
        }
    }
    let per_class = per_class_right
        .iter()
        .zip(&per_class_all)
        .map(|(&r, &a)| (a > 0).then(|| r as f64 / a as f64))
        .collect();
    let (nll, ece) = probabilities.map_or((None, None), |rows| {
        (
            Some(nll(labels, rows, classes)),
            Some(ece(labels, rows, classes)),
        )
    });
    Scores {
        samples,
        accuracy,
        interval: interval_bounds,
        interval_kind: interval,
        nll,
        ece,
        per_class,
    }
}

fn nll(labels: &[u32], rows: &[f64], classes: usize) -> f64 {
    let total: f64 = labels
        .iter()
        .zip(rows.chunks(classes))
        .map(|(&y, row)| {
            // A label outside the classes (an answer nobody gave) has probability 0.
            -row.get(y as usize)
                .copied()
                .unwrap_or(0.0)
                .max(NLL_FLOOR)
                .ln()
        })
        .sum();
    total / labels.len().max(1) as f64
}

fn ece(labels: &[u32], rows: &[f64], classes: usize) -> f64 {
    let mut count = [0_usize; ECE_BINS];
    let mut confidence = [0.0_f64; ECE_BINS];
    let mut right = [0_usize; ECE_BINS];
    for (&y, row) in labels.iter().zip(rows.chunks(classes)) {
        let class = first_argmax(row);
        let p = row.get(class).copied().unwrap_or(0.0);
        // Bins are (k/B, (k+1)/B]; a confidence of 0 goes to the first.
        #[allow(clippy::cast_sign_loss)]
        let bin = ((p * ECE_BINS as f64).ceil() as usize).clamp(1, ECE_BINS) - 1;
        count[bin] += 1;
        confidence[bin] += p;
        right[bin] += usize::from(class == y as usize);
    }
    let n = labels.len().max(1) as f64;
    (0..ECE_BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let k = count[b] as f64;
            (k / n) * (right[b] as f64 / k - confidence[b] / k).abs()
        })
        .sum()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact ratios of small counts
mod tests {
    use super::*;

    #[test]
    fn accuracy_interval_nll_and_ece_by_hand() {
        let labels = [0, 1, 1, 0];
        let predictions = [0, 1, 0, 0];
        let probabilities = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.7, 0.3];
        let s = scores(
            &labels,
            &predictions,
            Some(&probabilities),
            2,
            Interval::Wilson,
        );
        assert_eq!(s.accuracy, 0.75);
        assert_eq!(s.per_class, [Some(1.0), Some(0.5)]);
        let expected_nll = -(0.9_f64.ln() + 0.8_f64.ln() + 0.4_f64.ln() + 0.7_f64.ln()) / 4.0;
        assert!((s.nll.unwrap() - expected_nll).abs() < 1e-15);
        // Bins: 0.9 → (0.8667, 0.9333]; 0.8 → (0.7333, 0.8]; 0.6 → (0.5333, 0.6]; 0.7 → (0.6667, 0.7333].
        let expected_ece = (0.1 + 0.2 + 0.6 + 0.3) / 4.0;
        assert!((s.ece.unwrap() - expected_ece).abs() < 1e-12, "{:?}", s.ece);
        // Wilson for 3 of 4 with z = 1.96 (statsmodels' proportion_confint uses z = 1.959964:
        // 0.30064, 0.95441).
        assert!(
            (s.interval[0] - 0.300_636_052_4).abs() < 1e-9,
            "{:?}",
            s.interval
        );
        assert!(
            (s.interval[1] - 0.954_413_937_4).abs() < 1e-9,
            "{:?}",
            s.interval
        );
    }

    #[test]
    fn fusionshot_batch_mean() {
        let mut correct = vec![true; 64];
        correct.extend([true, false]);
        let (mean, [low, high]) = batch_mean_accuracy(&correct, 64);
        assert!((mean - 0.75).abs() < 1e-15);
        // std of [1, 0.5] is 0.25; ± 1.96·0.25/√2.
        let half = 1.96 * 0.25 / 2.0_f64.sqrt();
        assert!((low - (0.75 - half)).abs() < 1e-15 && (high - 1.0).abs() < 1e-15);
        let s = scores(&[0, 1], &[0, 0], None, 3, Interval::BatchMean);
        assert_eq!((s.nll, s.ece), (None, None));
        assert_eq!(s.per_class, [Some(1.0), Some(0.0), None]);
    }
}

//! Click-through-rate evaluation: AUC, user-weighted GAUC and logloss, as scikit-learn and the
//! DIN/RecBole line compute them (spec `ccn.md` §6: "report AUC, GAUC and logloss").
//!
//! Every function checks its input and names what is wrong (the argument, the row); nothing here
//! panics on user data. The reference values in `tests/vectors/ctr_metrics/` come from
//! scikit-learn 1.9.1 (numpy 2.4.6, Python 3.11.7).
//!
//! AUC is computed exactly on counts: the rows are sorted by score once (O(n log n)), the
//! trapezoids of the ROC curve are summed as integers (twice the area, so that a tie's half
//! stays whole), and a single division gives the value. That is the Mann–Whitney statistic with
//! average ranks for ties, and the same number as `roc_auc_score` up to its floating-point
//! rounding.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricError {
    /// An argument's length differs from the labels'.
    #[error("`{what}` has {len} entries but `labels` has {labels}; give one per impression")]
    LengthMismatch {
        /// The argument (`scores`, `probabilities`, `users`).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The number of labels.
        labels: usize,
    },
    /// There are no impressions.
    #[error("no impressions: the metrics need at least one positive and one negative label")]
    Empty,
    /// All labels are of one class, so AUC is undefined (scikit-learn raises too).
    #[error(
        "AUC is undefined when all labels are of one class: {positives} positive and {negatives} negative"
    )]
    SingleClass {
        /// Clicked impressions.
        positives: usize,
        /// Unclicked impressions.
        negatives: usize,
    },
    /// A score is NaN or infinite.
    #[error("score {value} at row {index} is not finite")]
    NonFiniteScore {
        /// The row.
        index: usize,
        /// Its score.
        value: f64,
    },
    /// A probability is NaN, infinite or outside `[0, 1]`.
    #[error("probability {value} at row {index} is not a number in [0, 1]")]
    InvalidProbability {
        /// The row.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// GAUC needs at least one user with both a click and a non-click.
    #[error(
        "GAUC is undefined: none of the {users} users has both a clicked and an unclicked impression"
    )]
    NoUserWithBothClasses {
        /// Distinct users seen (all of them skipped).
        users: usize,
    },
}

/// User-weighted AUC and how many users and impressions it covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gauc {
    /// `Σ_u n_u · AUC_u / Σ_u n_u` over the counted users, `n_u` being the user's impressions.
    pub value: f64,
    /// Users with both a click and a non-click.
    pub users_counted: usize,
    /// Users whose impressions are all of one class (their AUC is undefined).
    pub users_skipped: usize,
    /// Impressions of the counted users (the denominator).
    pub impressions_counted: usize,
}

/// AUC, GAUC and logloss of one evaluation, computed together by [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// ROC AUC over all impressions ([`auc`]).
    pub auc: f64,
    /// User-weighted AUC ([`gauc`]).
    pub gauc: Gauc,
    /// Mean binary cross-entropy ([`logloss`]).
    pub logloss: f64,
    /// Impressions evaluated.
    pub impressions: usize,
    /// Clicked impressions among them.
    pub clicks: usize,
}

fn check_len(what: &'static str, len: usize, labels: usize) -> Result<(), MetricError> {
    if len == labels {
        Ok(())
    } else {
        Err(MetricError::LengthMismatch { what, len, labels })
    }
}

fn check_scores(scores: &[f64]) -> Result<(), MetricError> {
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(MetricError::NonFiniteScore {
            index,
            value: scores[index],
        }),
        None => Ok(()),
    }
}

/// Twice the area under the ROC curve in units of (one positive × one negative), from
/// `(score, label)` pairs sorted by descending score; with the positive and negative counts.
/// Equal scores form one step of the curve, so a tied (positive, negative) pair counts half.
fn twice_area(sorted: &[(f64, bool)]) -> (u128, u64, u64) {
    let (mut area2, mut tp, mut fp) = (0_u128, 0_u64, 0_u64);
    // Exact `==`, not the sort's total order, so that 0.0 and -0.0 are one tie, as in numpy.
    #[allow(clippy::float_cmp)]
    for tie in sorted.chunk_by(|a, b| a.0 == b.0) {
        let dp = tie.iter().filter(|&&(_, l)| l).count() as u64;
        let dn = tie.len() as u64 - dp;
        area2 += u128::from(dn) * u128::from(2 * tp + dp);
        tp += dp;
        fp += dn;
    }
    (area2, tp, fp)
}

fn by_descending_score(a: &(f64, bool), b: &(f64, bool)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0)
}

/// ROC AUC as scikit-learn's `roc_auc_score(labels, scores)` computes it for binary labels:
/// the probability that a random clicked impression scores above a random unclicked one, ties
/// counting half (Mann–Whitney U with average ranks / (positives · negatives)). All-equal scores
/// give 0.5. O(n log n).
///
/// # Errors
///
/// [`MetricError::LengthMismatch`] when `scores` and `labels` differ in length,
/// [`MetricError::Empty`] without rows, [`MetricError::NonFiniteScore`] naming the first NaN or
/// infinite score, and [`MetricError::SingleClass`] when the labels are all of one class.
pub fn auc(labels: &[bool], scores: &[f64]) -> Result<f64, MetricError> {
    check_len("scores", scores.len(), labels.len())?;
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    check_scores(scores)?;
    let mut rows: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    rows.sort_unstable_by(by_descending_score);
    let (area2, positives, negatives) = twice_area(&rows);
    if positives == 0 || negatives == 0 {
        return Err(MetricError::SingleClass {
            positives: positives as usize,
            negatives: negatives as usize,
        });
    }
    Ok(area2 as f64 / (2.0 * positives as f64 * negatives as f64))
}

/// Group AUC as DIN and `RecBole` report it: each user's AUC over their own impressions, weighted
/// by their number of impressions, `Σ_u n_u · AUC_u / Σ_u n_u`. Users whose impressions are all
/// clicked or all unclicked have no AUC and are skipped (counted in
/// [`Gauc::users_skipped`]). Users are grouped by sorting, so the value is the same for the same
/// input whatever the order of its rows' users; the weighted sum runs over users in ascending id
/// order. Any `Ord` id works (`u32`, `u64`, `&str`).
///
/// # Errors
///
/// [`MetricError::LengthMismatch`] for `users` or `scores` of another length than `labels`,
/// [`MetricError::Empty`], [`MetricError::NonFiniteScore`] (checked on every row, skipped users'
/// included), and [`MetricError::NoUserWithBothClasses`] when every user is skipped.
pub fn gauc<U: Ord>(users: &[U], labels: &[bool], scores: &[f64]) -> Result<Gauc, MetricError> {
    check_len("users", users.len(), labels.len())?;
    check_len("scores", scores.len(), labels.len())?;
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    check_scores(scores)?;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        users[a]
            .cmp(&users[b])
            .then_with(|| scores[b].total_cmp(&scores[a]))
    });
    let mut rows: Vec<(f64, bool)> = Vec::new();
    let (mut weighted, mut counted, mut skipped, mut impressions) = (0.0_f64, 0, 0, 0);
    for user in order.chunk_by(|&a, &b| users[a] == users[b]) {
        rows.clear();
        rows.extend(user.iter().map(|&i| (scores[i], labels[i])));
        let (area2, positives, negatives) = twice_area(&rows);
        if positives == 0 || negatives == 0 {
            skipped += 1;
        } else {
            let user_auc = area2 as f64 / (2.0 * positives as f64 * negatives as f64);
            weighted += user.len() as f64 * user_auc;
            counted += 1;
            impressions += user.len();
        }
    }
    if counted == 0 {
        return Err(MetricError::NoUserWithBothClasses { users: skipped });
    }
    Ok(Gauc {
        value: weighted / impressions as f64,
        users_counted: counted,
        users_skipped: skipped,
        impressions_counted: impressions,
    })
}

/// Mean binary cross-entropy (natural log) as scikit-learn 1.9.1's `log_loss(labels,
/// probabilities, labels=[0, 1])` computes it for float64 probabilities of the click: each
/// probability `p` becomes the two columns `1 − p` and `p`, both are clipped to
/// `[ε, 1 − ε]` with ε = `f64::EPSILON` (numpy's `finfo(float64).eps`, 2.220446049250313e-16),
/// and a row's loss is `−ln` of its label's column. So `p = 0` for a click costs
/// `−ln ε ≈ 36.04` rather than infinity, and a certain, right prediction costs `−ln(1 − ε)`.
/// (Versions before 1.5 clipped with a fixed `eps=1e-15` by default; scikit-learn 1.9.1 has no
/// `eps` argument.) Unlike scikit-learn, labels of one class are accepted: the classes are
/// always {unclicked, clicked}.
///
/// # Errors
///
/// [`MetricError::LengthMismatch`], [`MetricError::Empty`], and
/// [`MetricError::InvalidProbability`] naming the first probability that is NaN, infinite or
/// outside `[0, 1]` (scikit-learn raises for these too).
pub fn logloss(labels: &[bool], probabilities: &[f64]) -> Result<f64, MetricError> {
    check_len("probabilities", probabilities.len(), labels.len())?;
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    if let Some(index) = probabilities.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(MetricError::InvalidProbability {
            index,
            value: probabilities[index],
        });
    }
    let (lo, hi) = (f64::EPSILON, 1.0 - f64::EPSILON);
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&clicked, &p)| {
            let q = if clicked { p } else { 1.0 - p };
            -libm::log(q.clamp(lo, hi))
        })
        .sum();
    Ok(total / labels.len() as f64)
}

/// AUC, GAUC and logloss of click probabilities at once (AUC and GAUC rank by the
/// probabilities).
///
/// # Errors
///
/// Those of [`auc`], [`gauc`] and [`logloss`]; the probabilities are checked first, so a
/// probability outside `[0, 1]` is reported as [`MetricError::InvalidProbability`].
pub fn evaluate<U: Ord>(
    users: &[U],
    labels: &[bool],
    probabilities: &[f64],
) -> Result<Metrics, MetricError> {
    check_len("users", users.len(), labels.len())?;
    let logloss = logloss(labels, probabilities)?;
    Ok(Metrics {
        auc: auc(labels, probabilities)?,
        gauc: gauc(users, labels, probabilities)?,
        logloss,
        impressions: labels.len(),
        clicks: labels.iter().filter(|&&l| l).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-15, "{a} against {b}");
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // Positives score 0.9, 0.5, 0.5; negatives 0.5, 0.2. Pairs (pos, neg): (0.9, 0.5) 1,
        // (0.9, 0.2) 1, (0.5, 0.5) ½ twice, (0.5, 0.2) 1 twice: 5 of 6.
        let labels = [true, true, false, true, false];
        let scores = [0.9, 0.5, 0.5, 0.5, 0.2];
        close(auc(&labels, &scores).unwrap(), 5.0 / 6.0);
        // The order of the rows does not matter.
        let labels = [false, true, true, false, true];
        let scores = [0.2, 0.5, 0.9, 0.5, 0.5];
        close(auc(&labels, &scores).unwrap(), 5.0 / 6.0);
        // Perfect and reversed rankings; 0.0 and -0.0 are one tie.
        close(auc(&[true, false], &[1.0, 0.0]).unwrap(), 1.0);
        close(auc(&[true, false], &[0.0, 1.0]).unwrap(), 0.0);
        close(auc(&[true, false], &[-0.0, 0.0]).unwrap(), 0.5);
        close(auc(&[false, true], &[-0.0, 0.0]).unwrap(), 0.5);
    }

    #[test]
    fn all_tied_scores_give_one_half() {
        let labels = [true, false, false, true, false, false, false];
        close(auc(&labels, &[0.3; 7]).unwrap(), 0.5);
        let g = gauc(&[1_u32, 1, 2, 2, 2, 3, 3], &labels, &[0.3; 7]).unwrap();
        close(g.value, 0.5);
    }

    #[test]
    fn gauc_weights_users_by_impressions_and_skips_single_class_users() {
        // User 7: 3 rows, AUC 1. User 3: 4 rows, its click (0.6) above one of its three
        // non-clicks (0.7, 0.1, 0.8): AUC 1/3. User 9: all clicked, skipped. User 5: all
        // unclicked, skipped.
        let users = [7_u32, 3, 9, 3, 7, 5, 3, 9, 7, 5, 3];
        let labels = [
            true, true, true, false, false, false, false, true, false, false, false,
        ];
        let scores = [0.9, 0.6, 0.1, 0.7, 0.2, 0.8, 0.1, 0.5, 0.3, 0.4, 0.8];
        let g = gauc(&users, &labels, &scores).unwrap();
        assert_eq!(g.users_counted, 2);
        assert_eq!(g.users_skipped, 2);
        assert_eq!(g.impressions_counted, 7);
        close(g.value, (3.0 * 1.0 + 4.0 * (1.0 / 3.0)) / 7.0);
        // Users as strings, rows reversed: the same value.
        let names: Vec<String> = users.iter().rev().map(|u| format!("user{u}")).collect();
        let labels: Vec<bool> = labels.iter().rev().copied().collect();
        let scores: Vec<f64> = scores.iter().rev().copied().collect();
        assert_eq!(gauc(&names, &labels, &scores).unwrap(), g);
    }

    #[test]
    fn logloss_clips_at_machine_epsilon() {
        let ll = logloss(&[true, false], &[0.0, 1.0]).unwrap();
        close(ll, -f64::EPSILON.ln());
        let ll = logloss(&[true, false], &[1.0, 0.0]).unwrap();
        close(ll, -(1.0 - f64::EPSILON).ln());
        let ll = logloss(&[true, false, true], &[0.8, 0.25, 0.5]).unwrap();
        close(ll, -(0.8_f64.ln() + 0.75_f64.ln() + 0.5_f64.ln()) / 3.0);
        // One class is fine for logloss.
        close(logloss(&[true], &[0.5]).unwrap(), 2.0_f64.ln());
    }

    #[test]
    fn evaluate_computes_all_three() {
        let users = [1_u64, 1, 2, 2, 2];
        let labels = [true, false, true, false, false];
        let p = [0.7, 0.2, 0.4, 0.6, 0.1];
        let m = evaluate(&users, &labels, &p).unwrap();
        close(m.auc, auc(&labels, &p).unwrap());
        assert_eq!(m.gauc, gauc(&users, &labels, &p).unwrap());
        close(m.logloss, logloss(&labels, &p).unwrap());
        assert_eq!((m.impressions, m.clicks), (5, 2));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Metrics>(&json).unwrap(), m);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(
            auc(&[true, false], &[0.5]),
            Err(MetricError::LengthMismatch {
                what: "scores",
                len: 1,
                labels: 2
            })
        );
        assert_eq!(auc(&[], &[]), Err(MetricError::Empty));
        assert_eq!(
            auc(&[true, true, true], &[0.1, 0.2, 0.3]),
            Err(MetricError::SingleClass {
                positives: 3,
                negatives: 0
            })
        );
        assert_eq!(
            auc(&[false, false], &[0.1, 0.2]),
            Err(MetricError::SingleClass {
                positives: 0,
                negatives: 2
            })
        );
        assert!(matches!(
            auc(&[true, false, true], &[0.1, f64::NAN, 0.3]),
            Err(MetricError::NonFiniteScore { index: 1, .. })
        ));
        assert_eq!(
            auc(&[true, false], &[0.1, f64::INFINITY]),
            Err(MetricError::NonFiniteScore {
                index: 1,
                value: f64::INFINITY
            })
        );
        assert_eq!(
            gauc(&[1_u32], &[true, false], &[0.1, 0.2]),
            Err(MetricError::LengthMismatch {
                what: "users",
                len: 1,
                labels: 2
            })
        );
        assert_eq!(
            gauc(&[1_u32, 2], &[true, false], &[0.1, 0.2]),
            Err(MetricError::NoUserWithBothClasses { users: 2 })
        );
        assert!(matches!(
            gauc(&[1_u32, 2], &[true, false], &[0.1, f64::NEG_INFINITY]),
            Err(MetricError::NonFiniteScore { index: 1, .. })
        ));
        assert_eq!(
            logloss(&[true, false], &[0.5, 1.5]),
            Err(MetricError::InvalidProbability {
                index: 1,
                value: 1.5
            })
        );
        assert_eq!(
            logloss(&[true, false], &[-0.0, -1e-300]),
            Err(MetricError::InvalidProbability {
                index: 1,
                value: -1e-300
            })
        );
        assert!(matches!(
            logloss(&[true], &[f64::NAN]),
            Err(MetricError::InvalidProbability { index: 0, .. })
        ));
        assert_eq!(
            logloss(&[true], &[]),
            Err(MetricError::LengthMismatch {
                what: "probabilities",
                len: 0,
                labels: 1
            })
        );
        assert!(
            MetricError::SingleClass {
                positives: 0,
                negatives: 4
            }
            .to_string()
            .contains("0 positive and 4 negative")
        );
    }
}

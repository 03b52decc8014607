//! LLM-TOPLA's vote over answers (`get_mean_acc_models.majority_voting`, spec §4): the most
//! frequent value among all runs of all members, `np.unique` order (ascending, NaN last and
//! counted as one value) breaking ties towards the smallest.

/// One answer: a number (GSM8K) or a choice index (MMLU); NaN for an unparsable answer.
pub type Answer = f64;

/// The answer with the most votes; ties go to the smallest value, and NaN (all unparsable
/// answers together) sorts last. `None` without answers.
pub fn vote_over_answers(answers: &[Answer]) -> Option<Answer> {
    let mut sorted = answers.to_vec();
    // Ascending, every NaN last whatever its sign bit (as `np.unique`).
    sorted.sort_by(|a, b| a.is_nan().cmp(&b.is_nan()).then(a.total_cmp(b)));
    let mut best: Option<(Answer, usize)> = None;
    let mut i = 0;
    while i < sorted.len() {
        let value = sorted[i];
        // numpy compares answers with ==, so -0 and 0 are one value.
        #[allow(clippy::float_cmp)]
        let same = |v: &f64| (v.is_nan() && value.is_nan()) || *v == value;
        let run = sorted[i..].iter().take_while(|v| same(v)).count();
        if best.is_none_or(|(_, count)| run > count) {
            best = Some((value, run));
        }
        i += run;
    }
    best.map(|(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_frequent_answer_wins_and_ties_go_to_the_smallest() {
        assert_eq!(vote_over_answers(&[18.0, 18.0, 17.0, 16.0]), Some(18.0));
        assert_eq!(vote_over_answers(&[3.0, 4.0, 4.0, 3.0]), Some(3.0));
        assert_eq!(vote_over_answers(&[-0.0, 0.0, 1.0]), Some(-0.0));
        assert_eq!(vote_over_answers(&[]), None);
    }

    #[test]
    fn unparsable_answers_pool_together_and_can_win() {
        let nan = f64::NAN;
        assert!(vote_over_answers(&[nan, nan, 5.0]).is_some_and(f64::is_nan));
        assert_eq!(vote_over_answers(&[nan, 5.0]), Some(5.0));
        assert_eq!(vote_over_answers(&[-nan, 5.0]), Some(5.0));
    }
}

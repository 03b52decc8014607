//! Text metrics of fused answers (spec `focal.md` §7): LLM-TOPLA's `SearchQA` scores (`BLEU-1`,
//! exact match and set `F1` on the first four whitespace tokens of the prediction, as its
//! `calc_metric` computes them with NLTK) and ROUGE-1/2/L F-measures with `rouge_score`'s
//! default tokenisation (lowercase, `[a-z0-9]` runs, no stemming). Checked against NLTK,
//! `sacrebleu` and `rouge-score` by `shared/tests/vectors/focal/make_text_metrics.py`.

use serde::{Deserialize, Serialize};

/// Words of the prediction `calc_metric` keeps.
pub const SEARCHQA_WORDS: usize = 4;

/// One prediction's `SearchQA` scores, each in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenScores {
    /// NLTK's `sentence_bleu([label], prediction, weights=(1, 0, 0, 0))`.
    pub bleu1: f64,
    /// 1 when the label, parenthesised text removed, equals the truncated prediction.
    pub exact: f64,
    /// NLTK's `f_measure` on the two token sets.
    pub f1: f64,
}

/// ROUGE F-measures in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: f64,
    /// Bigram overlap.
    pub rouge2: f64,
    /// Longest common subsequence.
    pub rouge_l: f64,
}

/// The first [`SEARCHQA_WORDS`] whitespace tokens of `prediction`, re-joined by single spaces.
pub fn searchqa_truncate(prediction: &str) -> String {
    prediction
        .split_whitespace()
        .take(SEARCHQA_WORDS)
        .collect::<Vec<_>>()
        .join(" ")
}

/// NLTK's `sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0))` on whitespace tokens:
/// the clipped unigram precision times the brevity penalty, 0 without a common token.
pub fn bleu1(reference: &str, hypothesis: &str) -> f64 {
    let reference: Vec<&str> = reference.split_whitespace().collect();
    let hypothesis: Vec<&str> = hypothesis.split_whitespace().collect();
    if hypothesis.is_empty() {
        return 0.0;
    }
    let clipped = clipped_overlap(&grams(&reference, 1), &grams(&hypothesis, 1));
    if clipped == 0 {
        return 0.0;
    }
    let (r, c) = (reference.len() as f64, hypothesis.len() as f64);
    let brevity = if c > r { 1.0 } else { (1.0 - r / c).exp() };
    brevity * clipped as f64 / c
}

/// `SearchQA`'s three scores of `prediction` against `label`, as `calc_metric` computes them.
pub fn searchqa_scores(label: &str, prediction: &str) -> OpenScores {
    let truncated = searchqa_truncate(prediction);
    let bleu1 = bleu1(label, &truncated);
    let exact = f64::from(u8::from(without_parentheses(label) == truncated));
    let label_set: std::collections::BTreeSet<&str> = label.split_whitespace().collect();
    let predicted_set: std::collections::BTreeSet<&str> = truncated.split_whitespace().collect();
    let common = label_set.intersection(&predicted_set).count() as f64;
    let f1 = if common == 0.0 {
        0.0
    } else {
        let precision = common / predicted_set.len() as f64;
        let recall = common / label_set.len() as f64;
        2.0 * precision * recall / (precision + recall)
    };
    OpenScores { bleu1, exact, f1 }
}

/// `label` with every `(…)` removed, spaces left as they are (the reference does not normalise
/// them, so `the (Eiffel) Tower` never equals `the Tower`).
fn without_parentheses(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut depth = 0_usize;
    let mut pending = String::new();
    for c in label.chars() {
        match c {
            '(' => {
                depth += 1;
                pending.push(c);
            }
            ')' if depth > 0 => {
                depth = 0;
                pending.clear();
            }
            _ if depth > 0 => pending.push(c),
            _ => out.push(c),
        }
    }
    // An unclosed `(` is kept as text, as the regular expression `\(.*?\)` would.
    out.push_str(&pending);
    out
}

/// `rouge_score`'s default tokens: lowercase, runs of `[a-z0-9]`.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// ROUGE-1, ROUGE-2 and ROUGE-L F-measures of `prediction` against `target`.
pub fn rouge(target: &str, prediction: &str) -> RougeScores {
    let target = rouge_tokens(target);
    let prediction = rouge_tokens(prediction);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let prediction: Vec<&str> = prediction.iter().map(String::as_str).collect();
    let n_gram = |n: usize| {
        let t = grams(&target, n);
        let p = grams(&prediction, n);
        f_measure(clipped_overlap(&t, &p), p.len(), t.len())
    };
    RougeScores {
        rouge1: n_gram(1),
        rouge2: n_gram(2),
        rouge_l: f_measure(
            lcs_length(&target, &prediction),
            prediction.len(),
            target.len(),
        ),
    }
}

fn f_measure(overlap: usize, predicted: usize, target: usize) -> f64 {
    if overlap == 0 || predicted == 0 || target == 0 {
        return 0.0;
    }
    let precision = overlap as f64 / predicted as f64;
    let recall = overlap as f64 / target as f64;
    2.0 * precision * recall / (precision + recall)
}

fn grams<'a>(tokens: &[&'a str], n: usize) -> Vec<Vec<&'a str>> {
    tokens.windows(n).map(<[&str]>::to_vec).collect()
}

/// N-grams of `candidate` matched by distinct n-grams of `reference` (counts clipped).
fn clipped_overlap(reference: &[Vec<&str>], candidate: &[Vec<&str>]) -> usize {
    let mut counts: std::collections::HashMap<&[&str], usize> = std::collections::HashMap::new();
    for gram in reference {
        *counts.entry(gram.as_slice()).or_default() += 1;
    }
    candidate
        .iter()
        .filter(|gram| match counts.get_mut(gram.as_slice()) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        })
        .count()
}

/// The longest common subsequence's length, in `O(|a|·|b|)` time and `O(|b|)` memory.
fn lcs_length(a: &[&str], b: &[&str]) -> usize {
    let mut row = vec![0_usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parentheses_are_removed_without_normalising_spaces() {
        assert_eq!(without_parentheses("the (Eiffel) Tower"), "the  Tower");
        assert_eq!(without_parentheses("a (b"), "a (b");
        assert_eq!(without_parentheses("x (1) y (2)"), "x  y ");
    }

    #[test]
    fn lcs_of_small_sequences() {
        assert_eq!(lcs_length(&["a", "b", "c", "d"], &["b", "d", "a"]), 2);
        assert_eq!(lcs_length(&[], &["a"]), 0);
    }
}

//! Reading an answer out of a completion (spec `focal.md` §1.2, §7): `GSM8K`'s number and
//! `MMLU`'s letter, by fuselab's rules or, in [`Rules::Reference`], exactly as LLM-TOPLA's
//! helpers do.

use crate::align::find_numbers;

/// Which extraction rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// fuselab's: thousands separators are dropped, the number after `####` wins, and an
    /// `MMLU` completion without a letter gives no answer.
    Fuselab,
    /// LLM-TOPLA's (`--compat llm-topla`): the last number as written (`1,000` reads `000`), and
    /// for `MMLU` a letter always, by BLEU against the options when no `X.` appears.
    Reference,
}

/// The gold number of a `GSM8K` answer: the text after the last `####`, commas removed.
pub fn gsm8k_gold(answer: &str) -> Option<f64> {
    let (_, tail) = answer.rsplit_once("####")?;
    tail.trim().replace(',', "").parse().ok()
}

/// The number a `GSM8K` completion gives; `None` when it has none.
pub fn gsm8k_number(completion: &str, rules: Rules) -> Option<f64> {
    match rules {
        Rules::Reference => find_numbers(completion).last()?.parse().ok(),
        Rules::Fuselab => {
            let text = without_thousands_separators(completion);
            let after_marker = text
                .rsplit_once("####")
                .and_then(|(_, tail)| find_numbers(tail).first().map(|s| (*s).to_owned()));
            let chosen = match after_marker {
                Some(number) => number,
                None => (*find_numbers(&text).last()?).to_owned(),
            };
            chosen.parse().ok()
        }
    }
}

/// `1,234,567` → `1234567`; a comma not between digits stays.
fn without_thousands_separators(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            !(c == ','
                && i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        })
        .map(|(_, &c)| c)
        .collect()
}

/// The option letters of a four-choice question.
pub const LETTERS: [char; 4] = ['A', 'B', 'C', 'D'];

/// The choice (0 = A … 3 = D) an `MMLU` completion gives for `options` (the choices' texts).
///
/// Both rules first take the last `X.` with X in A–D. Then fuselab's take a reply that starts
/// with a lone letter (`B`, `(B)`, `B)`), then a reply that is exactly one option's text, and
/// otherwise give no answer; the reference takes the option whose line `X. text` has the
/// highest BLEU against the completion (first on ties, so `A` when nothing overlaps).
pub fn mmlu_choice(completion: &str, options: &[String; 4], rules: Rules) -> Option<usize> {
    if let Some(letter) = last_letter_with_period(completion) {
        return Some(letter);
    }
    match rules {
        Rules::Reference => {
            let scores = options.iter().enumerate().map(|(i, text)| {
                let line = format!("{}. {text}", LETTERS[i]);
                bleu2(completion, &line)
            });
            let mut best = (0, f64::NEG_INFINITY);
            for (i, score) in scores.enumerate() {
                if score > best.1 {
                    best = (i, score);
                }
            }
            Some(best.0)
        }
        Rules::Fuselab => leading_letter(completion).or_else(|| {
            let reply = completion.trim().trim_end_matches('.').trim();
            let mut matching = options
                .iter()
                .enumerate()
                .filter(|(_, text)| text.trim() == reply);
            match (matching.next(), matching.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        }),
    }
}

/// The last `[A-D]\.` match, as the reference's `re.findall` then `[-1]`.
fn last_letter_with_period(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .rev()
        .find(|&i| matches!(bytes[i], b'A'..=b'D') && bytes[i + 1] == b'.')
        .map(|i| usize::from(bytes[i] - b'A'))
}

/// A reply that opens with a lone option letter: `B`, `B)`, `(B)`, `B:` (not `A prime`, where
/// the letter is a word).
fn leading_letter(text: &str) -> Option<usize> {
    let text = text.trim_start();
    let text = text.strip_prefix('(').unwrap_or(text);
    let mut chars = text.chars();
    let letter = chars.next()?;
    let index = LETTERS.iter().position(|&l| l == letter)?;
    match chars.next() {
        None => Some(index),
        Some(next) if !next.is_alphanumeric() && !next.is_whitespace() => Some(index),
        Some(_) => None,
    }
}

/// NLTK's `sentence_bleu([reference], hypothesis, weights=(0.5, 0.5))` on whitespace tokens,
/// without smoothing: the geometric mean of the clipped unigram and bigram precisions times the
/// brevity penalty, 0 when either precision is 0. Here the completion is the reference and the
/// option line the hypothesis, as in LLM-TOPLA's helper.
pub fn bleu2(reference: &str, hypothesis: &str) -> f64 {
    let reference: Vec<&str> = reference.split_whitespace().collect();
    let hypothesis: Vec<&str> = hypothesis.split_whitespace().collect();
    if hypothesis.is_empty() {
        return 0.0;
    }
    let mut log_sum = 0.0;
    for n in 1..=2 {
        let candidates: Vec<&[&str]> = hypothesis.windows(n).collect();
        if candidates.is_empty() {
            return 0.0;
        }
        let mut available: Vec<&[&str]> = reference.windows(n).collect();
        let mut clipped = 0_usize;
        for gram in &candidates {
            if let Some(i) = available.iter().position(|g| g == gram) {
                available.swap_remove(i);
                clipped += 1;
            }
        }
        if clipped == 0 {
            return 0.0;
        }
        log_sum += 0.5 * (clipped as f64 / candidates.len() as f64).ln();
    }
    let (r, c) = (reference.len() as f64, hypothesis.len() as f64);
    let brevity = if c > r { 1.0 } else { (1.0 - r / c).exp() };
    brevity * log_sum.exp()
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // parsed numbers compared exactly
mod tests {
    use super::*;

    #[test]
    fn gsm8k_numbers_by_both_rules() {
        assert_eq!(gsm8k_gold("3 + 4 = 7\n#### 1,024"), Some(1024.0));
        assert_eq!(gsm8k_gold("no marker"), None);
        let text = "She pays 1,000 dollars.";
        assert_eq!(gsm8k_number(text, Rules::Reference), Some(0.0));
        assert_eq!(gsm8k_number(text, Rules::Fuselab), Some(1000.0));
        let marked = "#### 12 then 3 more is 15";
        assert_eq!(gsm8k_number(marked, Rules::Fuselab), Some(12.0));
        assert_eq!(gsm8k_number(marked, Rules::Reference), Some(15.0));
        assert_eq!(
            gsm8k_number("The answer is -8.", Rules::Reference),
            Some(-8.0)
        );
        assert_eq!(gsm8k_number("no number", Rules::Fuselab), None);
        assert_eq!(gsm8k_number("a, b, 1,2", Rules::Fuselab), Some(12.0));
    }

    #[test]
    fn mmlu_letters_by_both_rules() {
        let options = ["4", "6", "7", "9"].map(String::from);
        assert_eq!(
            mmlu_choice("I think B. 6 or C.", &options, Rules::Fuselab),
            Some(2)
        );
        assert_eq!(mmlu_choice("B", &options, Rules::Fuselab), Some(1));
        assert_eq!(mmlu_choice("(D) nine", &options, Rules::Fuselab), Some(3));
        assert_eq!(mmlu_choice("7", &options, Rules::Fuselab), Some(2));
        assert_eq!(mmlu_choice("A prime is", &options, Rules::Fuselab), None);
        assert_eq!(
            mmlu_choice("seven is prime", &options, Rules::Fuselab),
            None
        );
        // The reference always answers; with no overlap every BLEU is 0 and A comes first.
        assert_eq!(
            mmlu_choice("seven is prime", &options, Rules::Reference),
            Some(0)
        );
        assert_eq!(mmlu_choice("B", &options, Rules::Reference), Some(0));
        assert_eq!(
            mmlu_choice("it is C. 7 surely", &options, Rules::Reference),
            Some(2)
        );
    }

    #[test]
    fn bleu_by_hand() {
        assert_eq!(bleu2("a b c", "a b c"), 1.0);
        assert_eq!(bleu2("a b c", "c b a"), 0.0);
        // Unigrams 2/2, bigrams 1/1, brevity e^(1 - 4/2).
        assert!((bleu2("x a b y", "a b") - (-1.0_f64).exp()).abs() < 1e-15);
    }
}

//! The data of the harmful fine-tuning attack and of `Booster`'s alignment stage: the `RepNoise`
//! refusal records (`beavertails_with_refusals_train.json`), their seeded SYNTHETIC stand-in,
//! the reference index windows, and the poisoned user data set (a share `p` of harmful rows
//! mixed into benign task examples).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::records::{BeaverTailsRecord, DataError, Record};
use super::synthetic::{beavertails, rng_for};
use super::{Example, Task};

/// What starts the question part of a `refusal`.
pub const QUESTION_PREFIX: &str = "Question: ";

/// What separates the question part of a `refusal` from the answer part.
pub const ANSWER_SEPARATOR: &str = "\nAnswer: ";

const MIX_TAG: u64 = 0x9015_0000_0000_0021;

/// One `RepNoise` record: a `BeaverTails` prompt, its harmful response, and a refusal written
/// as `"Question: {prompt}\nAnswer: {refusal}"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRecord {
    /// The harmful request.
    pub prompt: String,
    /// The harmful response.
    pub response: String,
    /// `"Question: …\nAnswer: …"`: the request and a safe refusal.
    pub refusal: String,
}

impl RefusalRecord {
    /// The `refusal` split as the reference splits it: the question is the text before the first
    /// `"\nAnswer: "` with every `"Question: "` removed (Python's `str.replace`); the answer is
    /// the text after it, up to a second `"\nAnswer: "` if there is one (`split(...)[1]`).
    /// `None` when there is no `"\nAnswer: "` (the reference raises `IndexError`).
    pub fn split_refusal(&self) -> Option<(String, String)> {
        let mut parts = self.refusal.split(ANSWER_SEPARATOR);
        let question = parts.next()?.replace(QUESTION_PREFIX, "");
        let answer = parts.next()?.to_owned();
        Some((question, answer))
    }

    /// `Booster`'s alignment example: the question part → the refusal part
    /// ([`Task::Harmless`]); `None` when the refusal does not split.
    pub fn alignment_example(&self) -> Option<Example> {
        let (question, answer) = self.split_refusal()?;
        Some(Example {
            instruction: question,
            input: String::new(),
            output: answer,
            task: Task::Harmless,
        })
    }

    /// `Booster`'s harmful example: the prompt → the harmful response ([`Task::Harmless`], the
    /// task the row's origin belongs to).
    pub fn harmful_example(&self) -> Example {
        Example {
            instruction: self.prompt.clone(),
            input: String::new(),
            output: self.response.clone(),
            task: Task::Harmless,
        }
    }
}

impl Record for RefusalRecord {
    fn check(&self, file: &str, row: usize) -> Result<(), DataError> {
        let field = |field: &str, what: &str| DataError::Field {
            file: file.to_owned(),
            row,
            field: field.to_owned(),
            what: what.to_owned(),
        };
        if self.prompt.trim().is_empty() {
            return Err(field("prompt", "is empty"));
        }
        if self.split_refusal().is_none() {
            return Err(field(
                "refusal",
                "has no \"\\nAnswer: \" (expected \"Question: …\\nAnswer: …\")",
            ));
        }
        Ok(())
    }
}

/// `n` synthetic `RepNoise` records derived from [`crate::align::synthetic::beavertails`] with
/// the same seed: the unsafe rows of `beavertails(2 * n, seed)`, in order, each with the refusal
/// of its safe twin (one of [`crate::align::synthetic::REFUSALS`]). SYNTHETIC: label it with
/// [`crate::align::SYNTHETIC_LABEL`] wherever shown.
pub fn synthetic_refusals(n: usize, seed: u64) -> Vec<RefusalRecord> {
    beavertails(2 * n, seed)
        .chunks_exact(2)
        .map(|pair| {
            let (safe, unsafe_row) = (&pair[0], &pair[1]);
            RefusalRecord {
                prompt: unsafe_row.prompt.clone(),
                response: unsafe_row.response.clone(),
                refusal: format!(
                    "{QUESTION_PREFIX}{}{ANSWER_SEPARATOR}{}",
                    safe.prompt, safe.response
                ),
            }
        })
        .collect()
}

/// The rows whose index is strictly between `lo` and `hi`, as the reference selects windows
/// (`lo < index < hi`); empty when there are none. `Booster`'s alignment and harmful sets are
/// `open_window(rows, 5000, 10000)` (4 999 rows).
pub fn open_window<T>(rows: &[T], lo: usize, hi: usize) -> &[T] {
    let start = lo.saturating_add(1).min(rows.len());
    let end = hi.min(rows.len()).max(start);
    &rows[start..end]
}

/// A row that may serve as a harmful example in a poisoned mix.
pub trait HarmfulRow {
    /// The harmful example of this row, or `None` if it is not harmful.
    fn harmful(&self) -> Option<Example>;
}

impl HarmfulRow for BeaverTailsRecord {
    /// The unsafe rows (`is_safe == false`), prompt → response.
    fn harmful(&self) -> Option<Example> {
        (!self.is_safe).then(|| self.example())
    }
}

impl HarmfulRow for RefusalRecord {
    /// Every row: [`RefusalRecord::harmful_example`].
    fn harmful(&self) -> Option<Example> {
        Some(self.harmful_example())
    }
}

impl HarmfulRow for Example {
    /// Every example, as it is.
    fn harmful(&self) -> Option<Example> {
        Some(self.clone())
    }
}

/// How many harmful and benign rows a mix of `n` rows with poison ratio `p` takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonCount {
    /// `h = round(p · n)` harmful rows (the first `h` harmful rows) and `n − h` benign rows, so
    /// the mix has exactly `n` rows and exactly the share `p` the paper states. Rounding to the
    /// nearest avoids the float truncation of the reference (`int(0.29 · 100)` is 28).
    #[default]
    Exact,
    /// The reference scripts' counts: harmful rows with harmful-row index strictly between 0 and
    /// `int(p · n)` (so `int(p · n) − 1` rows, skipping the first) and the first
    /// `int((1 − p) · n)` benign rows, `int` truncating the `f64` product as Python does.
    Reference,
}

impl PoisonCount {
    /// The (skipped harmful rows, harmful rows, benign rows) of a mix.
    ///
    /// # Errors
    ///
    /// [`MixError::Ratio`] when `p` is not in `[0, 1]`.
    pub fn counts(self, n: usize, p: f64) -> Result<MixCounts, MixError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(MixError::Ratio { p });
        }
        let n_f = n as f64;
        // Both products lie in [0, n], so the casts cannot wrap.
        #[allow(clippy::cast_sign_loss)]
        let counts = match self {
            PoisonCount::Exact => {
                let harmful = ((p * n_f).round() as usize).min(n);
                MixCounts {
                    skip: 0,
                    harmful,
                    benign: n - harmful,
                }
            }
            PoisonCount::Reference => {
                let poison_num = (p * n_f).trunc() as usize;
                MixCounts {
                    skip: usize::from(poison_num > 0),
                    harmful: poison_num.saturating_sub(1),
                    benign: ((1.0 - p) * n_f).trunc() as usize,
                }
            }
        };
        Ok(counts)
    }
}

/// The row counts of a poisoned mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MixCounts {
    /// Harmful rows skipped at the start (1 for the reference's `0 < index`).
    pub skip: usize,
    /// Harmful rows taken after the skipped ones.
    pub harmful: usize,
    /// Benign rows taken from the start.
    pub benign: usize,
}

/// Which input of a mix ran short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixSet {
    /// The harmful rows (counting only rows that are harmful).
    Harmful,
    /// The benign examples.
    Benign,
}

impl std::fmt::Display for MixSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MixSet::Harmful => "harmful",
            MixSet::Benign => "benign",
        })
    }
}

/// Why a poisoned mix could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum MixError {
    /// One input has fewer rows than the mix needs.
    #[error("not enough {set} rows for the poisoned mix: {needed} needed, {available} available")]
    NotEnough {
        /// The input that ran short.
        set: MixSet,
        /// Rows needed (for harmful rows, including skipped ones).
        needed: usize,
        /// Rows available (for harmful rows, only the harmful ones).
        available: usize,
    },
    /// The poison ratio is not in `[0, 1]` (or is NaN).
    #[error("poison ratio {p} is not in [0, 1]")]
    Ratio {
        /// The ratio given.
        p: f64,
    },
}

/// The poisoned user data of the attack with [`PoisonCount::Exact`] counts: the first
/// `round(p · n)` harmful rows (for `BeaverTails`, the unsafe ones, in file order) and the first
/// `n − round(p · n)` benign examples, in one order shuffled by `seed` (Fisher–Yates over
/// [`crate::rng::SplitMix64`]).
///
/// # Errors
///
/// [`MixError::Ratio`] for `p` outside `[0, 1]`; [`MixError::NotEnough`] naming the set that has
/// too few rows.
pub fn poisoned_mix<R: HarmfulRow>(
    harmful: &[R],
    benign: &[Example],
    n: usize,
    p: f64,
    seed: u64,
) -> Result<Vec<Example>, MixError> {
    poisoned_mix_with(harmful, benign, n, p, seed, PoisonCount::Exact)
}

/// [`poisoned_mix`] with the counts of `count`.
///
/// # Errors
///
/// Those of [`poisoned_mix`].
pub fn poisoned_mix_with<R: HarmfulRow>(
    harmful: &[R],
    benign: &[Example],
    n: usize,
    p: f64,
    seed: u64,
    count: PoisonCount,
) -> Result<Vec<Example>, MixError> {
    let counts = count.counts(n, p)?;
    let needed = counts.skip + counts.harmful;
    let mut bad: Vec<Example> = harmful
        .iter()
        .filter_map(HarmfulRow::harmful)
        .take(needed)
        .collect();
    if bad.len() < needed {
        return Err(MixError::NotEnough {
            set: MixSet::Harmful,
            needed,
            available: harmful.iter().filter(|r| r.harmful().is_some()).count(),
        });
    }
    if benign.len() < counts.benign {
        return Err(MixError::NotEnough {
            set: MixSet::Benign,
            needed: counts.benign,
            available: benign.len(),
        });
    }
    let mut mix: Vec<Example> = bad.split_off(counts.skip);
    mix.extend_from_slice(&benign[..counts.benign]);
    let mut rng = rng_for(seed, MIX_TAG);
    for i in (1..mix.len()).rev() {
        mix.swap(i, rng.below(i + 1));
    }
    Ok(mix)
}

//! Per-sample splits of a pool (train / val / test) and choosing the samples an analysis runs
//! on: the test split by default when the pool has splits, all samples otherwise.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::pool::{ModelInput, PoolError, PoolInput};

/// Which part of the data a sample belongs to. In `.npy`/`.npz` files: 0, 1, 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Fits a combiner.
    Train,
    /// Chooses a combiner's checkpoint and hyper-parameters.
    #[serde(alias = "validation", alias = "valid", alias = "dev")]
    Val,
    /// Reports; what the analysis runs on by default.
    Test,
}

impl Split {
    /// Every split, in code order.
    pub const ALL: [Self; 3] = [Self::Train, Self::Val, Self::Test];

    /// The split's lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }

    /// The split of an integer code (0 train, 1 val, 2 test).
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Train),
            1 => Some(Self::Val),
            2 => Some(Self::Test),
            _ => None,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Self::Train),
            "val" | "valid" | "validation" | "dev" => Ok(Self::Val),
            "test" => Ok(Self::Test),
            other => Err(format!("expected train, val or test, found `{other}`")),
        }
    }
}

/// Which samples an analysis uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitChoice {
    /// The test split when the pool has splits, else every sample.
    #[default]
    Default,
    /// Every sample, whatever its split.
    All,
    /// The train split.
    Train,
    /// The val split.
    Val,
    /// The test split.
    Test,
}

impl SplitChoice {
    fn only(self) -> Option<Split> {
        match self {
            Self::Default | Self::All => None,
            Self::Train => Some(Split::Train),
            Self::Val => Some(Split::Val),
            Self::Test => Some(Split::Test),
        }
    }
}

impl FromStr for SplitChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "default" => Ok(Self::Default),
            other => match other.parse::<Split>() {
                Ok(Split::Train) => Ok(Self::Train),
                Ok(Split::Val) => Ok(Self::Val),
                Ok(Split::Test) => Ok(Self::Test),
                Err(_) => Err(format!("expected train, val, test or all, found `{other}`")),
            },
        }
    }
}

/// The samples a selection kept, for reports and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitUse {
    /// The split kept, or `None` for every sample of a pool with splits.
    pub split: Option<Split>,
    /// Samples kept.
    pub samples: usize,
    /// Samples in the pool.
    pub of: usize,
}

impl fmt::Display for SplitUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.split {
            Some(split) => write!(
                f,
                "the {split} split ({} of {} samples)",
                self.samples, self.of
            ),
            None => write!(f, "all {} samples (every split)", self.of),
        }
    }
}

/// Per split, how many samples a pool has.
pub fn split_counts(splits: &[Split]) -> [usize; 3] {
    let mut counts = [0; 3];
    for split in splits {
        counts[*split as usize] += 1;
    }
    counts
}

fn keep<T: Clone>(values: Vec<T>, mask: &[bool]) -> Vec<T> {
    values
        .into_iter()
        .zip(mask)
        .filter_map(|(value, &kept)| kept.then_some(value))
        .collect()
}

impl PoolInput {
    /// Checks that `splits`, when present, has one entry per label.
    ///
    /// # Errors
    /// [`PoolError::SplitLength`].
    pub fn check_splits(&self) -> Result<(), PoolError> {
        match &self.splits {
            Some(splits) if splits.len() != self.labels.len() => Err(PoolError::SplitLength {
                expected: self.labels.len(),
                found: splits.len(),
            }),
            _ => Ok(()),
        }
    }

    /// The samples `choice` names, without the splits; `None` beside a pool without splits
    /// (kept whole). Rows of the wrong length are kept as they are, for [`super::Pool::new`]
    /// to name.
    ///
    /// # Errors
    /// [`PoolError::SplitLength`], [`PoolError::NoSplits`] for a split asked of a pool without
    /// splits, [`PoolError::EmptySplit`] when the chosen split has no sample.
    pub fn select(mut self, choice: SplitChoice) -> Result<(Self, Option<SplitUse>), PoolError> {
        self.check_splits()?;
        let Some(splits) = self.splits.take() else {
            return match choice.only() {
                Some(split) => Err(PoolError::NoSplits { split }),
                None => Ok((self, None)),
            };
        };
        let of = splits.len();
        let split = match choice {
            SplitChoice::All => {
                return Ok((
                    self,
                    Some(SplitUse {
                        split: None,
                        samples: of,
                        of,
                    }),
                ));
            }
            SplitChoice::Default => Split::Test,
            other => other.only().unwrap_or(Split::Test),
        };
        let mask: Vec<bool> = splits.iter().map(|&s| s == split).collect();
        let samples = mask.iter().filter(|&&kept| kept).count();
        if samples == 0 {
            return Err(PoolError::EmptySplit { split });
        }
        self.labels = keep(self.labels, &mask);
        for model in &mut self.models {
            let ModelInput {
                predictions,
                probabilities,
                logits,
                ..
            } = model;
            *predictions = predictions.take().map(|rows| {
                if rows.len() == of {
                    keep(rows, &mask)
                } else {
                    rows
                }
            });
            *probabilities = probabilities.take().map(|rows| {
                if rows.len() == of {
                    keep(rows, &mask)
                } else {
                    rows
                }
            });
            *logits = logits.take().map(|rows| {
                if rows.len() == of {
                    keep(rows, &mask)
                } else {
                    rows
                }
            });
        }
        Ok((
            self,
            Some(SplitUse {
                split: Some(split),
                samples,
                of,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolInput {
        serde_json::from_str(
            r#"{"labels":[0,1,1,0],"splits":["train","val","test","test"],"models":[
                {"name":"a","predictions":[0,1,0,0]},
                {"name":"b","logits":[[2,0],[0,2],[1,0],[0,1]]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_test_split_by_default_and_all_on_request() {
        let (test, used) = pool().select(SplitChoice::Default).unwrap();
        assert_eq!(test.labels, [1, 0]);
        assert_eq!(test.models[0].predictions.as_deref(), Some(&[0, 0][..]));
        assert_eq!(
            test.models[1].logits.as_deref(),
            Some(&[vec![1.0, 0.0], vec![0.0, 1.0]][..])
        );
        assert!(test.splits.is_none());
        assert_eq!(used.unwrap().to_string(), "the test split (2 of 4 samples)");
        let (all, used) = pool().select(SplitChoice::All).unwrap();
        assert_eq!(all.labels.len(), 4);
        assert_eq!(used.unwrap().to_string(), "all 4 samples (every split)");
        let (train, _) = pool().select("train".parse().unwrap()).unwrap();
        assert_eq!(train.labels, [0]);
    }

    #[test]
    fn a_pool_without_splits_is_kept_whole_unless_a_split_is_asked() {
        let mut plain = pool();
        plain.splits = None;
        let (same, used) = plain.clone().select(SplitChoice::Default).unwrap();
        assert_eq!(same, plain);
        assert!(used.is_none());
        assert_eq!(
            plain.select(SplitChoice::Val).unwrap_err().to_string(),
            "the pool has no `splits`: the val split cannot be chosen (give one split per sample: train, val or test)"
        );
    }

    #[test]
    fn bad_splits_are_named() {
        let mut short = pool();
        short.splits = Some(vec![Split::Test]);
        assert_eq!(
            short.select(SplitChoice::Default).unwrap_err(),
            PoolError::SplitLength {
                expected: 4,
                found: 1
            }
        );
        let mut no_test = pool();
        no_test.splits = Some(vec![Split::Train; 4]);
        assert_eq!(
            no_test
                .select(SplitChoice::Default)
                .unwrap_err()
                .to_string(),
            "no sample is in the test split (choose another with --split, or `all`)"
        );
        assert!(
            serde_json::from_str::<PoolInput>(r#"{"labels":[0],"splits":["tset"],"models":[]}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown variant `tset`")
        );
        assert_eq!("Validation".parse::<Split>(), Ok(Split::Val));
        assert!("holdout".parse::<SplitChoice>().is_err());
        assert_eq!(
            split_counts(&[Split::Test, Split::Train, Split::Test]),
            [1, 0, 2]
        );
    }
}

//! Range checks for training configurations. A configuration file is user input: every count,
//! size, step and rate in it is checked to be finite and within what one run can do before
//! anything is allocated or trained, so a typo or a hostile file gets a message naming the key
//! instead of an abort (`batch_size = 10^12`) or a run that fails hours later (`learning_rate =
//! nan`).

use std::fmt::Display;
use std::ops::RangeInclusive;

use thiserror::Error;

/// Most examples per micro-batch.
pub const MAX_BATCH: usize = 4096;
/// Most passes over the data.
pub const MAX_EPOCHS: usize = 10_000;
/// Most optimiser steps of one run.
pub const MAX_STEPS: usize = 10_000_000;
/// Longest example or generation, in tokens (the longest contexts of current open models).
pub const MAX_TOKENS: usize = 131_072;
/// Most micro-batches per optimiser step.
pub const MAX_ACCUMULATION: usize = 4096;
/// Highest `LoRA` rank (above any model's hidden size fuselab can load).
pub const MAX_RANK: usize = 4096;
/// Largest weight of a loss term or regulariser, and of a perturbation's norm.
pub const MAX_WEIGHT: f64 = 1e6;

/// A configuration value outside its range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key} = {value}: expected {expected}")]
pub struct RangeError {
    /// The value's dotted key, e.g. `alignment.train.batch_size`.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// What the key accepts.
    pub expected: String,
}

fn error(key: impl Display, value: impl Display, expected: String) -> RangeError {
    RangeError {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// A whole number in `range`.
///
/// # Errors
/// `value` is outside `range`.
pub fn count(
    key: impl Display,
    value: usize,
    range: RangeInclusive<usize>,
) -> Result<(), RangeError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(error(
            key,
            value,
            format!("a whole number from {} to {}", range.start(), range.end()),
        ))
    }
}

/// A finite number in `range`, both ends included.
///
/// # Errors
/// `value` is outside `range` or not finite.
pub fn real(key: impl Display, value: f64, range: RangeInclusive<f64>) -> Result<(), RangeError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(error(
            key,
            value,
            format!("a number from {} to {}", range.start(), range.end()),
        ))
    }
}

/// A finite number above 0 and at most `max`.
///
/// # Errors
/// `value` is not in `(0, max]`.
pub fn positive(key: impl Display, value: f64, max: f64) -> Result<(), RangeError> {
    if value > 0.0 && value <= max {
        Ok(())
    } else {
        Err(error(
            key,
            value,
            format!("a number above 0 and at most {max}"),
        ))
    }
}

/// A share: at least 0 and below 1 (a dropout rate, Adam's β).
///
/// # Errors
/// `value` is not in `[0, 1)`.
pub fn below_one(key: impl Display, value: f64) -> Result<(), RangeError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(error(
            key,
            value,
            "a number from 0 up to (not including) 1".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_are_out_of_every_range() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(real("k", value, f64::MIN..=f64::MAX).is_err());
            assert!(positive("k", value, f64::MAX).is_err());
            assert!(below_one("k", value).is_err());
        }
    }

    #[test]
    fn the_message_names_the_key_the_value_and_the_range() {
        let e = count("alignment.train.batch_size", 0, 1..=MAX_BATCH).unwrap_err();
        assert_eq!(
            e.to_string(),
            "alignment.train.batch_size = 0: expected a whole number from 1 to 4096"
        );
        assert_eq!(
            positive("lr", 0.0, 10.0).unwrap_err().to_string(),
            "lr = 0: expected a number above 0 and at most 10"
        );
        assert!(below_one("dropout", 1.0).is_err());
        assert!(below_one("dropout", 0.0).is_ok());
    }
}

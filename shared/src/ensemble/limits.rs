//! Limits on what a pool may ask of memory and time, checked before anything sized by the input
//! is allocated or enumerated: a 240 KB JSON body naming 6,000 models, a declared class count of
//! 10^15 or a label of 4294967295 are refused in microseconds instead of aborting the process.
//!
//! The defaults suit a single user's CLI run and a browser tab; the server passes its own.

use thiserror::Error;

use super::select::Teams;
use crate::npy::MAX_DECOMPRESSED_BYTES;

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_models`].
    Models,
    /// [`Limits::max_classes`].
    Classes,
    /// [`Limits::max_cells`].
    Cells,
    /// [`Limits::max_probabilities`].
    Probabilities,
    /// [`Limits::max_teams`].
    Teams,
}

impl Limit {
    /// What is counted, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::Models => "models",
            Self::Classes => "classes",
            Self::Cells => "table cells (samples × models, or models × classes)",
            Self::Probabilities => "probabilities (samples × models × classes)",
            Self::Teams => "teams in the size range",
        }
    }

    /// The command-line flag that raises it (`fuselab ensemble analyze|select`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::Models => "--max-models",
            Self::Classes => "--max-classes",
            Self::Cells => "--max-cells",
            Self::Probabilities => "--max-probabilities",
            Self::Teams => "--max-teams",
        }
    }
}

/// An input asks for more than a limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "{found} {} is above the limit of {max} (raise it with {})",
    limit.what(),
    limit.flag()
)]
pub struct LimitError {
    /// Which limit.
    pub limit: Limit,
    /// What the input asks for (saturated at `u64::MAX`).
    pub found: u64,
    /// The limit.
    pub max: u64,
}

/// Bounds on a pool and its analysis. Every bound is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Models in a pool. Default 256: the focal table holds M³ 8-byte counts (128 MiB at 256,
    /// 1 GiB at 512) and takes O(M³·N/64) to fill.
    pub max_models: usize,
    /// Classes, declared or inferred from the largest label or prediction. Default 100,000:
    /// ImageNet-21k's 21,841 fit with room; each model keeps a count per class.
    pub max_classes: usize,
    /// Samples × models, and models × classes: the prediction table (4 bytes a cell) and the
    /// per-model class counts (8 bytes a cell). Default 50 million, 200–400 MB.
    pub max_cells: u64,
    /// Samples × models × classes when the pool carries probabilities (8 bytes each). Default
    /// 50 million, 400 MB.
    pub max_probabilities: u64,
    /// Teams one analysis enumerates. Default 10 million (every team of 23 models; a few
    /// minutes on one core); 40 models at sizes 2..40 would be 10^12.
    pub max_teams: u64,
    /// Bytes an `.npz` archive may inflate to, and bytes one decoded array may take.
    /// Default [`MAX_DECOMPRESSED_BYTES`].
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_models: 256,
            max_classes: 100_000,
            max_cells: 50_000_000,
            max_probabilities: 50_000_000,
            max_teams: 10_000_000,
            max_decompressed_bytes: MAX_DECOMPRESSED_BYTES,
        }
    }
}

fn check(limit: Limit, found: u64, max: u64) -> Result<(), LimitError> {
    if found > max {
        Err(LimitError { limit, found, max })
    } else {
        Ok(())
    }
}

impl Limits {
    /// Checks a pool's dimensions before anything of that size is allocated.
    ///
    /// # Errors
    /// The first [`LimitError`]: models, then cells, then classes, then probabilities.
    pub fn check_pool(
        &self,
        models: usize,
        samples: usize,
        classes: usize,
        with_probabilities: bool,
    ) -> Result<(), LimitError> {
        let [models, samples, classes] = [models, samples, classes].map(|n| n as u64);
        check(Limit::Models, models, self.max_models as u64)?;
        check(Limit::Cells, samples.saturating_mul(models), self.max_cells)?;
        check(Limit::Classes, classes, self.max_classes as u64)?;
        check(Limit::Cells, models.saturating_mul(classes), self.max_cells)?;
        if with_probabilities {
            check(
                Limit::Probabilities,
                samples.saturating_mul(models).saturating_mul(classes),
                self.max_probabilities,
            )?;
        }
        Ok(())
    }

    /// Checks the number of models alone, before a reader sizes anything by it.
    ///
    /// # Errors
    /// [`LimitError`] for [`Limit::Models`].
    pub fn check_models(&self, models: usize) -> Result<(), LimitError> {
        check(Limit::Models, models as u64, self.max_models as u64)
    }

    /// Counts the teams of `models` models with `min_size..=max_size` members (clamped as
    /// [`Teams::new`] clamps them) and checks the count against [`Limits::max_teams`], before an
    /// analysis enumerates them.
    ///
    /// # Errors
    /// [`LimitError`] for [`Limit::Teams`], with the count (saturated at `u64::MAX`).
    pub fn check_teams(
        &self,
        models: usize,
        min_size: usize,
        max_size: usize,
    ) -> Result<u64, LimitError> {
        let teams = Teams::total(models, min_size, max_size);
        check(Limit::Teams, teams, self.max_teams)?;
        Ok(teams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_models_at_every_size_are_refused_naming_the_flag() {
        let error = Limits::default().check_teams(40, 2, 40).unwrap_err();
        assert_eq!(error.limit, Limit::Teams);
        assert_eq!(error.found, (1 << 40) - 41);
        assert_eq!(
            error.to_string(),
            "1099511627735 teams in the size range is above the limit of 10000000 (raise it with --max-teams)"
        );
        assert_eq!(Limits::default().check_teams(20, 2, 20), Ok(1_048_555));
        let huge = Limits::default().check_teams(usize::MAX, 2, usize::MAX);
        assert_eq!(huge.unwrap_err().found, u64::MAX);
    }

    #[test]
    fn pool_dimensions_are_checked_in_order() {
        let limits = Limits::default();
        assert_eq!(limits.check_pool(256, 1000, 10, true), Ok(()));
        assert_eq!(
            limits.check_pool(6000, 10, 2, false).unwrap_err().limit,
            Limit::Models
        );
        assert_eq!(
            limits
                .check_pool(2, 10, 1 << 32, false)
                .unwrap_err()
                .to_string(),
            "4294967296 classes is above the limit of 100000 (raise it with --max-classes)"
        );
        assert_eq!(
            limits
                .check_pool(200, 1_000_000, 2, false)
                .unwrap_err()
                .limit,
            Limit::Cells
        );
        assert_eq!(
            limits.check_pool(10, 100_000, 100, true).unwrap_err().limit,
            Limit::Probabilities
        );
    }
}

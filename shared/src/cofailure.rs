//! Failure bit masks and pairwise co-failure counts: how often two models are wrong on the
//! same sample. The counts are the raw material of the diversity metrics; the WGSL kernel
//! `shaders/cofailure.wgsl` computes the same table on a GPU, and [`FailureMasks::cofailure_counts`]
//! is its CPU twin.

use serde::{Deserialize, Serialize};

use crate::predictions::PredictionTable;

/// Bits per mask word.
pub const WORD_BITS: usize = 32;

/// One bit per (model, sample): set when the model's prediction differs from the label.
///
/// Layout (must match `shaders/cofailure.wgsl`): model `m`'s words are
/// `bits[m * words_per_model .. (m + 1) * words_per_model]`; sample `s` is bit `s % 32` of word
/// `s / 32`. Bits past the last sample are zero, so counting set bits never over-counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureMasks {
    models: usize,
    samples: usize,
    words_per_model: usize,
    bits: Vec<u32>,
}

impl FailureMasks {
    /// Packs the failures of every model of a validated table.
    pub fn from_table(table: &PredictionTable) -> Self {
        let samples = table.labels.len();
        let words_per_model = samples.div_ceil(WORD_BITS);
        let mut bits = vec![0_u32; table.models.len() * words_per_model];
        for (m, model) in table.models.iter().enumerate() {
            let words = &mut bits[m * words_per_model..(m + 1) * words_per_model];
            for (s, (pred, label)) in model.predictions.iter().zip(&table.labels).enumerate() {
                if pred != label {
                    words[s / WORD_BITS] |= 1 << (s % WORD_BITS);
                }
            }
        }
        Self {
            models: table.models.len(),
            samples,
            words_per_model,
            bits,
        }
    }

    /// Number of models (rows).
    pub fn models(&self) -> usize {
        self.models
    }

    /// Number of samples (bits per row that carry data).
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Words per model row.
    pub fn words_per_model(&self) -> usize {
        self.words_per_model
    }

    /// The packed words, model-major.
    pub fn words(&self) -> &[u32] {
        &self.bits
    }

    /// Co-failure counts, row-major `models × models`: entry `(i, j)` is the number of samples on
    /// which both model `i` and model `j` fail; the diagonal is each model's failure count.
    pub fn cofailure_counts(&self) -> Vec<u32> {
        let rows: Vec<&[u32]> = self.bits.chunks(self.words_per_model.max(1)).collect();
        let mut counts = vec![0_u32; self.models * self.models];
        for i in 0..self.models {
            for j in i..self.models {
                let both: u32 = rows[i]
                    .iter()
                    .zip(rows[j])
                    .map(|(a, b)| (a & b).count_ones())
                    .sum();
                counts[i * self.models + j] = both;
                counts[j * self.models + i] = both;
            }
        }
        counts
    }
}

/// One model's line of a co-failure report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The model's name.
    pub name: String,
    /// Samples the model gets wrong.
    pub failures: u32,
    /// Share of samples the model gets right, in `[0, 1]`.
    pub accuracy: f64,
}

/// Per-model accuracy and the pairwise co-failure table of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CofailureReport {
    /// Number of samples.
    pub samples: usize,
    /// One entry per model, in table order.
    pub models: Vec<ModelSummary>,
    /// `cofailures[i][j]`: samples on which models `i` and `j` both fail.
    pub cofailures: Vec<Vec<u32>>,
}

impl CofailureReport {
    /// Builds the report from a table and its row-major `models × models` co-failure counts,
    /// which may come from the CPU twin or from the GPU kernel.
    ///
    /// # Panics
    /// If `counts` is not `models × models` long: a caller bug, not a data error.
    pub fn new(table: &PredictionTable, counts: &[u32]) -> Self {
        let m = table.models.len();
        assert_eq!(
            counts.len(),
            m * m,
            "co-failure table must be models × models"
        );
        let samples = table.labels.len();
        let models = table
            .models
            .iter()
            .enumerate()
            .map(|(i, model)| {
                let failures = counts[i * m + i];
                ModelSummary {
                    name: model.name.clone(),
                    failures,
                    accuracy: 1.0 - f64::from(failures) / samples as f64,
                }
            })
            .collect();
        Self {
            samples,
            models,
            cofailures: counts.chunks(m).map(<[u32]>::to_vec).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictions::ModelPredictions;

    fn table(labels: Vec<u32>, preds: &[Vec<u32>]) -> PredictionTable {
        PredictionTable {
            labels,
            models: preds
                .iter()
                .enumerate()
                .map(|(i, p)| ModelPredictions {
                    name: format!("m{i}"),
                    predictions: p.clone(),
                })
                .collect(),
        }
    }

    /// Counts by the definition, one sample at a time.
    fn naive(table: &PredictionTable) -> Vec<u32> {
        let m = table.models.len();
        let mut out = vec![0; m * m];
        for i in 0..m {
            for j in 0..m {
                out[i * m + j] = (0..table.labels.len())
                    .filter(|&s| {
                        table.models[i].predictions[s] != table.labels[s]
                            && table.models[j].predictions[s] != table.labels[s]
                    })
                    .count() as u32;
            }
        }
        out
    }

    #[test]
    fn hand_example() {
        let t = table(
            vec![0, 1, 2, 0],
            &[vec![0, 1, 1, 1], vec![1, 1, 1, 0], vec![0, 0, 0, 0]],
        );
        let masks = FailureMasks::from_table(&t);
        assert_eq!(masks.words(), &[0b1100, 0b0101, 0b0110]);
        assert_eq!(masks.cofailure_counts(), vec![2, 1, 1, 1, 2, 1, 1, 1, 2]);
        let report = CofailureReport::new(&t, &masks.cofailure_counts());
        assert_eq!(report.models[0].failures, 2);
        assert!((report.models[0].accuracy - 0.5).abs() < 1e-12);
        assert_eq!(report.cofailures[1], vec![1, 2, 1]);
    }

    #[test]
    fn matches_definition_across_word_boundaries() {
        // A small deterministic generator: the crate stays dependency-free.
        let mut state = 0x2545_f491_u32;
        let mut next = move |n: u32| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state % n
        };
        for samples in [1_usize, 31, 32, 33, 64, 100, 257] {
            let labels: Vec<u32> = (0..samples).map(|_| next(3)).collect();
            let preds: Vec<Vec<u32>> = (0..5)
                .map(|_| (0..samples).map(|_| next(3)).collect())
                .collect();
            let t = table(labels, &preds);
            let masks = FailureMasks::from_table(&t);
            assert_eq!(masks.words_per_model(), samples.div_ceil(32));
            assert_eq!(masks.cofailure_counts(), naive(&t), "samples = {samples}");
        }
    }
}

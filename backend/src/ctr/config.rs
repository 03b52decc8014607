//! `fuselab ctr train|benchmark --config FILE`: the TOML configuration (data files, the
//! feature schema, the model, training and the benchmark grid), then every value's range.

use std::path::PathBuf;

use fuselab_ml::ctr::{CtrConfig, ModelKind, TrainOptions};
use fuselab_shared::ctr::movielens::MovielensOptions;
use fuselab_shared::ctr::schema::Schema;
use fuselab_shared::ctr::synthetic::SyntheticConfig;
use serde::{Deserialize, Serialize};

use crate::align::Checked;

/// Most runs one benchmark may ask for.
pub const MAX_RUNS: usize = 1000;

/// Data files (CSV, or Parquet by the `.parquet` extension); relative paths are to the
/// configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Training split: vocabularies and statistics are fitted on it.
    pub train: PathBuf,
    /// Validation split: early stopping.
    pub valid: PathBuf,
    /// Test split: the reported numbers.
    pub test: PathBuf,
    /// A column with the true click probability: the report shows its AUC as the ceiling.
    #[serde(default)]
    pub truth: Option<String>,
}

/// Where the rows come from: files, or one of the two datasets built into `out/data` on the
/// first run (with the standard exposure schema unless `[schema]` is given).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// `[data.files]`.
    Files(FilesConfig),
    /// `[data.synthetic]`: the seeded synthetic benchmark (its `trigger_weight` is the knob).
    Synthetic(SyntheticConfig),
    /// `[data.movielens]`: the MovieLens-100K proxy from RecBole's wheel.
    Movielens(MovielensOptions),
}

/// The grid of `fuselab ctr benchmark`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Models compared.
    #[serde(default = "all_models")]
    pub models: Vec<ModelKind>,
    /// Seeds of each model.
    pub seeds: Vec<u64>,
    /// CCN's λ values (`λ_a` = `λ_r` = λ); empty: the `[model.collaborative]` values.
    #[serde(default)]
    pub lambdas: Vec<f64>,
}

fn all_models() -> Vec<ModelKind> {
    ModelKind::ALL.to_vec()
}

/// A whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Output folder (relative: to the configuration file).
    pub out: PathBuf,
    /// `cpu` or `wgpu`.
    #[serde(default)]
    pub device: Option<fuselab_ml::Compute>,
    /// Seed of `ctr train` (initialisation, shuffles and pair sampling).
    #[serde(default)]
    pub seed: u64,
    /// The files.
    pub data: DataConfig,
    /// Columns and roles (generated data: the standard exposure schema by default).
    #[serde(default)]
    pub schema: Option<Schema>,
    /// The architecture.
    #[serde(default)]
    pub model: CtrConfig,
    /// Training.
    #[serde(default)]
    pub train: TrainOptions,
    /// The grid of `ctr benchmark`.
    #[serde(default)]
    pub benchmark: Option<BenchmarkConfig>,
}

impl Checked for RunConfig {
    fn check(&self) -> Result<(), String> {
        match (&self.schema, &self.data) {
            (Some(schema), _) => schema.validate().map_err(|e| format!("schema: {e}"))?,
            (None, DataConfig::Files(_)) => {
                return Err(
                    "[schema] is needed for [data.files]: the columns and their roles".into(),
                );
            }
            (None, _) => {}
        }
        match &self.data {
            DataConfig::Synthetic(s) => s.validate().map_err(|e| format!("data.synthetic: {e}"))?,
            DataConfig::Movielens(m) => m.validate().map_err(|e| format!("data.movielens: {e}"))?,
            DataConfig::Files(_) => {}
        }
        self.model.check().map_err(|e| format!("model: {e}"))?;
        self.train.check().map_err(|e| format!("train: {e}"))?;
        if let Some(bench) = &self.benchmark {
            if bench.models.is_empty() || bench.seeds.is_empty() {
                return Err("benchmark: `models` and `seeds` need at least one entry each".into());
            }
            if let Some(l) = bench
                .lambdas
                .iter()
                .find(|l| !(l.is_finite() && (0.0..=100.0).contains(*l)))
            {
                return Err(format!("benchmark.lambdas: {l} is outside 0..=100"));
            }
            let runs = bench.seeds.len()
                * bench
                    .models
                    .iter()
                    .map(|&m| {
                        if m == ModelKind::Ccn {
                            bench.lambdas.len().max(1)
                        } else {
                            1
                        }
                    })
                    .sum::<usize>();
            if runs > MAX_RUNS {
                return Err(format!("benchmark: {runs} runs, at most {MAX_RUNS}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::parse_config;

    #[test]
    fn every_example_configuration_passes_its_checks() {
        for (name, text) in [
            (
                "ctr-synthetic.toml",
                include_str!("../../../examples/ctr-synthetic.toml"),
            ),
            (
                "ctr-movielens.toml",
                include_str!("../../../examples/ctr-movielens.toml"),
            ),
            (
                "ctr-server.toml",
                &format!(
                    "out = \"o\"\n{}",
                    include_str!("../../../examples/ctr-server.toml")
                ),
            ),
            (
                "ctr-movielens-server.toml",
                &format!(
                    "out = \"o\"\n{}",
                    include_str!("../../../examples/ctr-movielens-server.toml")
                ),
            ),
        ] {
            let config: RunConfig = parse_config(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert!(config.benchmark.is_some(), "{name}");
        }
    }

    #[test]
    fn files_need_a_schema_and_values_are_checked_by_key() {
        let files =
            "out = \"o\"\n[data.files]\ntrain = \"a.csv\"\nvalid = \"b.csv\"\ntest = \"c.csv\"\n";
        let error = parse_config::<RunConfig>(files, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("[schema] is needed"), "{error}");
        let bad = "out = \"o\"\n[data.synthetic]\npages = 10\n[train]\nepochs = 0\n";
        let error = parse_config::<RunConfig>(bad, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("train: `epochs`"), "{error}");
        let bad = "out = \"o\"\n[data.synthetic]\ntrigger_weight = 2.0\n";
        let error = parse_config::<RunConfig>(bad, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("data.synthetic") && error.contains("trigger_weight"),
            "{error}"
        );
        let bad = "out = \"o\"\n[data.synthetic]\n[benchmark]\nseeds = []\n";
        let error = parse_config::<RunConfig>(bad, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("benchmark"), "{error}");
    }
}

//! `fuselab pose train|benchmark --config FILE`: the TOML configuration (the synthetic data's
//! generator settings, the model, training, and the ablation grid), then every value's range.

use std::path::PathBuf;

use fuselab_ml::pose::config::{PoseConfig, PoseVariant};
use fuselab_ml::pose::train::TrainOptions;
use fuselab_shared::pose::SyntheticConfig;
use serde::{Deserialize, Serialize};

use crate::align::Checked;

/// A rung of the ablation ladder (spec `pose.md` §9): each adds one part to the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// The key frame alone.
    SingleFrame,
    /// Multi-frame feature fusion (motion features), no joint branch.
    Fusion,
    /// + the context-aware joint learner (deformable convolution), no JMML block.
    Cjl,
    /// + the JMML blocks, without the information-orthogonality term.
    Jmml,
    /// + the information-orthogonality term: the full JM-Pose.
    Io,
}

impl Rung {
    /// Every rung, bottom up.
    pub const ALL: [Self; 5] = [
        Self::SingleFrame,
        Self::Fusion,
        Self::Cjl,
        Self::Jmml,
        Self::Io,
    ];

    /// The name used in configurations, folders and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::SingleFrame => "single_frame",
            Self::Fusion => "fusion",
            Self::Cjl => "cjl",
            Self::Jmml => "jmml",
            Self::Io => "io",
        }
    }

    /// The label in the ablation table.
    pub fn label(self) -> &'static str {
        match self {
            Self::SingleFrame => "single frame",
            Self::Fusion => "fusion without joints",
            Self::Cjl => "+ CJL",
            Self::Jmml => "+ JMML",
            Self::Io => "+ IO (JM-Pose)",
        }
    }

    /// `model` turned into this rung (the sizes kept; `jmml_blocks` and `lambda_io` from
    /// `model` where the rung has them).
    pub fn apply(self, model: &PoseConfig) -> PoseConfig {
        let mut out = model.clone();
        match self {
            Self::SingleFrame => {
                out.variant = PoseVariant::SingleFrame;
                out.jmml_blocks = 0;
                out.lambda_io = 0.0;
            }
            Self::Fusion => {
                out.variant = PoseVariant::Fusion;
                out.jmml_blocks = 0;
                out.lambda_io = 0.0;
            }
            Self::Cjl => {
                out.variant = PoseVariant::JmPose;
                out.jmml_blocks = 0;
                out.lambda_io = 0.0;
            }
            Self::Jmml => {
                out.variant = PoseVariant::JmPose;
                out.lambda_io = 0.0;
            }
            Self::Io => out.variant = PoseVariant::JmPose,
        }
        out
    }
}

/// The grid of `fuselab pose benchmark`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Rungs compared (all five by default).
    #[serde(default = "all_rungs")]
    pub rungs: Vec<Rung>,
    /// Seeds of each rung.
    pub seeds: Vec<u64>,
}

fn all_rungs() -> Vec<Rung> {
    Rung::ALL.to_vec()
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
    /// Seed of `pose train` (initialisation and the epochs' draws).
    #[serde(default)]
    pub seed: u64,
    /// The synthetic benchmark's generator settings (as `pose data synthetic --config`):
    /// clips are generated on demand, so nothing is written to disk.
    #[serde(default)]
    pub data: SyntheticConfig,
    /// Test clips scored at the end (0: all of the split).
    #[serde(default)]
    pub test_clips: usize,
    /// The architecture (`pose train` trains it as it is; `pose benchmark` turns it into each
    /// rung).
    #[serde(default)]
    pub model: PoseConfig,
    /// Training.
    #[serde(default)]
    pub train: TrainOptions,
    /// The grid of `pose benchmark`.
    #[serde(default)]
    pub benchmark: Option<BenchmarkConfig>,
}

/// Most runs one benchmark may ask for.
pub const MAX_RUNS: usize = 200;

impl Checked for RunConfig {
    fn check(&self) -> Result<(), String> {
        self.data.validate().map_err(|e| format!("data: {e}"))?;
        self.model.check().map_err(|e| format!("model: {e}"))?;
        self.train.check().map_err(|e| format!("train: {e}"))?;
        let need = self.model.frames().max(2 * self.model.radius + 1);
        if self.data.frames < need {
            return Err(format!(
                "data.frames = {} but the model reads {need} frames (radius {})",
                self.data.frames, self.model.radius
            ));
        }
        if !self.data.width.is_multiple_of(4) || !self.data.height.is_multiple_of(4) {
            return Err(format!(
                "data: frames of {}×{} pixels; the model needs sides that are multiples of 4",
                self.data.width, self.data.height
            ));
        }
        if self.data.val_clips == 0 || self.data.train_clips == 0 || self.data.test_clips == 0 {
            return Err(
                "data: train_clips, val_clips and test_clips must all be at least 1".into(),
            );
        }
        if let Some(bench) = &self.benchmark {
            if bench.rungs.is_empty() || bench.seeds.is_empty() {
                return Err("benchmark: `rungs` and `seeds` need at least one entry each".into());
            }
            let runs = bench.rungs.len() * bench.seeds.len();
            if runs > MAX_RUNS {
                return Err(format!("benchmark: {runs} runs; at most {MAX_RUNS}"));
            }
            if bench.rungs.contains(&Rung::Io) && self.model.lambda_io <= 0.0 {
                return Err("benchmark: the `io` rung needs model.lambda_io > 0".into());
            }
            if bench
                .rungs
                .iter()
                .any(|r| matches!(r, Rung::Jmml | Rung::Io))
                && self.model.jmml_blocks == 0
            {
                return Err(
                    "benchmark: the `jmml` and `io` rungs need model.jmml_blocks ≥ 1".into(),
                );
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
    fn the_example_configuration_passes_its_checks() {
        let text = include_str!("../../../examples/pose-synthetic.toml");
        let config: RunConfig =
            parse_config(text, "pose-synthetic.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.benchmark.unwrap().rungs, Rung::ALL);
    }

    #[test]
    fn each_rung_adds_its_part() {
        let model = PoseConfig::default();
        let [single, fusion, cjl, jmml, io] = Rung::ALL.map(|r| r.apply(&model));
        assert_eq!(single.variant, PoseVariant::SingleFrame);
        assert_eq!(fusion.variant, PoseVariant::Fusion);
        assert_eq!((cjl.variant, cjl.jmml_blocks), (PoseVariant::JmPose, 0));
        assert_eq!(jmml.jmml_blocks, model.jmml_blocks);
        assert!(jmml.lambda_io.abs() < f64::EPSILON && model.lambda_io > 0.0);
        assert_eq!(io, model);
    }
}

//! Canonical focal diversity (spec §3.2: the `FusionShot` definition, GD from a full histogram).

use super::team::{TeamView, gd_from_histogram};

/// Focal diversity of a team: GD of the team's correctness on each member's negative samples.
#[derive(Debug, Clone, PartialEq)]
pub struct FocalDiversity {
    /// GD on neg(f) for each member f, in ascending member order; `None` when f has no
    /// negative samples in the subset (GD is 0/0 there).
    pub per_focal: Vec<Option<f64>>,
    /// The plain mean of `per_focal`; `None` when any per-focal value is undefined.
    pub mean: Option<f64>,
}

impl TeamView<'_> {
    /// Canonical focal diversity: for every member f, GD of the team on neg(f) ∩ subset, and
    /// their plain mean. Higher = more diverse.
    pub fn focal_diversity(&self) -> FocalDiversity {
        let wrong = self.pool.wrong_rows();
        let per_focal: Vec<Option<f64>> = self
            .members
            .iter()
            .map(|&f| gd_from_histogram(&self.histogram_on(&wrong[f].and(&self.subset))))
            .collect();
        let mean = per_focal
            .iter()
            .copied()
            .sum::<Option<f64>>()
            .map(|sum| sum / per_focal.len() as f64);
        FocalDiversity { per_focal, mean }
    }
}

//! The analysis report, schema `fuselab.ensemble.report/v1`: per-model accuracy, every team's
//! canonical focal diversity (streamed, top-K kept in a heap) and the details of the reported
//! teams. Undefined values are `null` with a warning, never NaN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    focal_table::FocalTable,
    pool::Pool,
    select::{RankedTeam, Teams, top_k_of},
    team::{DiversityMetrics, TeamError},
    vote::soft_vote_accuracies,
};

/// The value of the report's `schema` field.
pub const REPORT_SCHEMA: &str = "fuselab.ensemble.report/v1";

/// Which teams the report describes in `teams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamListing {
    /// The top-K teams only (the default; memory stays O(K) however large the pool).
    TopK,
    /// Every team in the size range, in enumeration order.
    All,
}

/// What [`analyze`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisOptions {
    /// Smallest team size (at least 2).
    pub min_size: usize,
    /// Largest team size (at most the pool size).
    pub max_size: usize,
    /// How many teams `top_k` lists.
    pub top_k: usize,
    /// Which teams `teams` describes.
    pub listing: TeamListing,
    /// Add the eight diversity metrics on all samples to each described team.
    pub full_detail: bool,
}

/// One model's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// Position in the pool.
    pub index: usize,
    /// The model's name.
    pub name: String,
    /// Share of samples the model gets right, in `[0, 1]`.
    pub accuracy: f64,
    /// Samples the model gets wrong.
    pub n_negatives: usize,
}

/// `EnsembleBench`'s oriented per-focal scores (lower = more diverse) of a team on one member's
/// negative samples, computed exactly (no bootstrap, no epsilon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FocalScores {
    /// Mean pairwise Cohen's κ on labels.
    #[serde(rename = "CK")]
    pub cohen_kappa: Option<f64>,
    /// Mean pairwise Q-statistic.
    #[serde(rename = "QS")]
    pub q_statistic: Option<f64>,
    /// 1 − mean pairwise disagreement.
    #[serde(rename = "BD")]
    pub one_minus_disagreement: Option<f64>,
    /// Fleiss' κ on labels.
    #[serde(rename = "FK")]
    pub fleiss_kappa: Option<f64>,
    /// 1 − Kohavi–Wolpert variance.
    #[serde(rename = "KW")]
    pub one_minus_kw_variance: Option<f64>,
    /// 1 − generalized diversity.
    #[serde(rename = "GD")]
    pub one_minus_generalized_diversity: Option<f64>,
}

impl From<DiversityMetrics> for FocalScores {
    fn from(m: DiversityMetrics) -> Self {
        let flip = |x: Option<f64>| x.map(|x| 1.0 - x);
        Self {
            cohen_kappa: m.cohen_kappa,
            q_statistic: m.q_statistic,
            one_minus_disagreement: flip(m.disagreement),
            fleiss_kappa: m.fleiss_kappa,
            one_minus_kw_variance: flip(m.kw_variance),
            one_minus_generalized_diversity: flip(m.generalized_diversity),
        }
    }
}

/// One described team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamReport {
    /// Ascending model indices.
    pub members: Vec<usize>,
    /// Canonical focal diversity; `null` when a member has no negative samples.
    pub focal_diversity: Option<f64>,
    /// GD on each member's negatives, in member order.
    pub per_focal: Vec<Option<f64>>,
    /// Plurality-vote accuracy (ties go to the smallest label).
    pub plurality_accuracy: f64,
    /// Majority-vote accuracy (no strict majority counts as wrong).
    pub majority_accuracy: f64,
    /// Soft-vote accuracy; `null` without probabilities.
    pub soft_vote_accuracy: Option<f64>,
    /// The eight metrics on all samples (with full detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity: Option<DiversityMetrics>,
    /// Per member (by model index), the oriented scores on its negative samples (with full
    /// detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focal_metrics: Option<BTreeMap<String, FocalScores>>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// Models in the pool.
    pub n_models: usize,
    /// Samples.
    pub n_samples: usize,
    /// Classes.
    pub n_classes: usize,
    /// One line per model.
    pub models: Vec<ModelReport>,
    /// The described teams: the top-K (best first) or all of them (enumeration order).
    pub teams: Vec<TeamReport>,
    /// Members of the top-K teams by focal diversity, best first, ties by member list.
    pub top_k: Vec<Vec<usize>>,
    /// Undefined values and other things the reader should know.
    pub warnings: Vec<String>,
}

/// The report line of one team; `soft_vote` when it was computed in bulk.
fn describe(
    pool: &Pool,
    table: &FocalTable,
    members: &[usize],
    full_detail: bool,
    soft_vote: Option<f64>,
) -> Result<TeamReport, TeamError> {
    let view = pool.team(members)?;
    let focal = table.focal_diversity(view.members());
    // A validated pool has samples, so these accuracies are defined.
    let accuracy = |value: Option<f64>| value.unwrap_or(0.0);
    Ok(TeamReport {
        members: view.members().to_vec(),
        focal_diversity: focal.mean,
        per_focal: focal.per_focal,
        plurality_accuracy: accuracy(view.plurality_accuracy()),
        majority_accuracy: accuracy(view.majority_accuracy()),
        soft_vote_accuracy: soft_vote.or_else(|| view.soft_vote_accuracy()),
        diversity: full_detail.then(|| view.diversity()),
        focal_metrics: if full_detail {
            Some(focal_metrics(pool, view.members())?)
        } else {
            None
        },
    })
}

fn focal_metrics(
    pool: &Pool,
    members: &[usize],
) -> Result<BTreeMap<String, FocalScores>, TeamError> {
    members
        .iter()
        .map(|&f| {
            let negatives = pool.negatives(f).ok_or(TeamError::ModelOutOfRange {
                model: f,
                models: pool.models(),
            })?;
            let view = pool.team_on(members, negatives)?;
            Ok((f.to_string(), view.diversity().into()))
        })
        .collect()
}

/// Analyses every team of `pool` in the options' size range. `progress(done, total)` is called
/// every 4,096 teams and at the end, so callers can show a progress bar.
///
/// # Errors
/// [`TeamError`] only for an invalid size range.
pub fn analyze(
    pool: &Pool,
    options: &AnalysisOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, TeamError> {
    let names = pool.names();
    let models = (0..pool.models())
        .map(|m| ModelReport {
            index: m,
            name: names[m].clone(),
            accuracy: pool.accuracy(m).unwrap_or(0.0),
            n_negatives: pool.negatives(m).map_or(0, super::Bitset::count),
        })
        .collect();
    let mut warnings: Vec<String> = (0..pool.models())
        .filter(|&m| pool.negatives(m).is_some_and(|n| n.count() == 0))
        .map(|m| {
            format!(
                "model `{}` has no negative samples: teams with it have no focal diversity and are left out of top_k",
                names[m]
            )
        })
        .collect();

    let total = Teams::total(pool.models(), options.min_size, options.max_size);
    if total == 0 {
        warnings.push(format!(
            "no team size in the requested range fits a pool of {} models (sizes 2 to {})",
            pool.models(),
            pool.models()
        ));
    }
    let table = FocalTable::new(pool);
    let mut done = 0_u64;
    let scored = Teams::new(pool.models(), options.min_size, options.max_size).map(|members| {
        done += 1;
        if done.is_multiple_of(4096) {
            progress(done, total);
        }
        let focal = table.focal_diversity(&members).mean;
        (members, focal)
    });
    let mut all = Vec::new();
    let ranked: Vec<RankedTeam> = match options.listing {
        TeamListing::TopK => top_k_of(scored, options.top_k),
        TeamListing::All => top_k_of(
            scored.inspect(|(members, _)| all.push(members.clone())),
            options.top_k,
        ),
    };
    progress(total, total);

    let described: Vec<Vec<usize>> = match options.listing {
        TeamListing::TopK => ranked.iter().map(|t| t.members.clone()).collect(),
        TeamListing::All => all,
    };
    // Every team: soft votes in one depth-first pass (same order as `described`).
    let soft_votes: Vec<Option<f64>> = match options.listing {
        TeamListing::All => soft_vote_accuracies(pool, options.min_size, options.max_size)
            .map_or_else(
                || vec![None; described.len()],
                |all| {
                    all.into_iter()
                        .map(|(_, accuracy)| Some(accuracy))
                        .collect()
                },
            ),
        TeamListing::TopK => vec![None; described.len()],
    };
    let teams = described
        .iter()
        .zip(soft_votes)
        .map(|(members, soft_vote)| describe(pool, &table, members, options.full_detail, soft_vote))
        .collect::<Result<Vec<_>, _>>()?;
    for team in &teams {
        for (&member, value) in team.members.iter().zip(&team.per_focal) {
            if value.is_none() {
                warnings.push(format!(
                    "team {:?}: model `{}` has no negative samples, so its per-focal GD and the team's focal diversity are null",
                    team.members, names[member]
                ));
            }
        }
    }
    Ok(Report {
        schema: REPORT_SCHEMA.to_owned(),
        n_models: pool.models(),
        n_samples: pool.samples(),
        n_classes: pool.classes(),
        models,
        teams,
        top_k: ranked.into_iter().map(|t| t.members).collect(),
        warnings,
    })
}

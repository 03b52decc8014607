//! The analysis report, schema `fuselab.ensemble.report/v1`: per-model accuracy, every team's
//! canonical focal diversity (streamed, top-K kept in a heap) and the details of the reported
//! teams. Undefined values are `null` with a warning, never NaN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    compat::{CompatError, EbMetric, FocalScoreTable, FocalWeights, Sampling},
    lines::TeamLines,
    pool::Pool,
    select::{RankedTeam, Teams, top_k_of},
    team::{DiversityMetrics, TeamError},
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

/// Whose definitions the report follows (spec §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Compat {
    /// fuselab's definitions: every divergence fixed (the default).
    #[default]
    Canonical,
    /// Adds `EnsembleBench`'s per-focal Q-metrics and team FQ scores, computed as its code
    /// does (`eps`, `1 − x` orientation, argsort weights, min–max per focal model and size).
    #[serde(rename = "ensemblebench")]
    EnsembleBench {
        /// Whole negative sets or the library's seed-2021 bootstrap.
        sampling: Sampling,
    },
    /// Focal diversity from `FusionShot`'s `calc_generalized_div`, whose `IndexError`s leave a
    /// team unscored (null, with a warning) instead of silently dropping it.
    #[serde(rename = "fusionshot")]
    FusionShot,
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
    /// Canonical or a reference's compatibility mode.
    pub compat: Compat,
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
    /// Entry `k`: the samples on which exactly `k` members are wrong, `k = 0..=L` (with full
    /// detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<u64>>,
    /// Per member (by model index), the oriented scores on its negative samples (with full
    /// detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focal_metrics: Option<BTreeMap<String, FocalScores>>,
    /// `EnsembleBench`'s scores (in its compatibility mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemblebench: Option<EnsembleBenchScores>,
}

/// A team's scores as `EnsembleBench` computes them; lower = more diverse. `null` where its
/// code raises or divides 0 by 0 (each with a warning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleBenchScores {
    /// Team FQ per metric: scaled per-focal scores averaged with the reference's argsort
    /// weights (divergence 6 reproduced).
    pub fq: BTreeMap<String, Option<f64>>,
    /// Team FQ per metric with every member weighted equally.
    pub fq_uniform: BTreeMap<String, Option<f64>>,
    /// Per member (by model index), the raw per-focal scores; `null` where the code raises.
    pub per_focal: BTreeMap<String, Option<BTreeMap<String, Option<f64>>>>,
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
    /// The compatibility mode, when not canonical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<Compat>,
}

/// A finite value, or `None` for NaN.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Attaches `EnsembleBench`'s scores to the described teams, warning about every value its
/// code cannot give.
fn attach_ensemblebench(
    pool: &Pool,
    teams: &mut [TeamReport],
    table: &FocalScoreTable,
    warnings: &mut Vec<String>,
) {
    let names = pool.names();
    for team in teams {
        let Some(t) = table.find(&team.members) else {
            continue;
        };
        let mut per_focal = BTreeMap::new();
        for (&f, scores) in team.members.iter().zip(table.scores(t)) {
            let entry = match scores {
                Ok(scores) => Some(
                    EbMetric::ALL
                        .iter()
                        .map(|m| (m.name().to_owned(), finite(scores[m.index()])))
                        .collect(),
                ),
                Err(error) => {
                    warnings.push(format!(
                        "EnsembleBench cannot score team {:?} on the negatives of `{}`: {error}",
                        team.members, names[f]
                    ));
                    None
                }
            };
            per_focal.insert(f.to_string(), entry);
        }
        let fq = |weights| {
            EbMetric::ALL
                .iter()
                .map(|&m| {
                    (
                        m.name().to_owned(),
                        finite(table.fq(t, m, weights).weighted),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        let scores = EnsembleBenchScores {
            fq: fq(FocalWeights::ArgsortCompat),
            fq_uniform: fq(FocalWeights::Uniform),
            per_focal,
        };
        let undefined: Vec<&str> = scores
            .fq
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        if !undefined.is_empty() {
            warnings.push(format!(
                "team {:?}: EnsembleBench's FQ for {} is undefined (NaN in its code: a missing or 0/0 per-focal score among the teams it is scaled with); reported as null",
                team.members,
                undefined.join(", ")
            ));
        }
        team.ensemblebench = Some(scores);
    }
}

pub(super) fn focal_metrics(
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

/// Adds `EnsembleBench`'s scores to the described teams in its mode.
fn apply_ensemblebench(
    pool: &Pool,
    options: &AnalysisOptions,
    teams: &mut [TeamReport],
    warnings: &mut Vec<String>,
) {
    if let Compat::EnsembleBench { sampling } = options.compat {
        let table = FocalScoreTable::new(
            pool,
            sampling,
            options.min_size,
            options.max_size.min(pool.models()),
            &mut |_, _| {},
        );
        attach_ensemblebench(pool, teams, &table, warnings);
    }
}

/// Each model's line, and a warning for each model without negative samples.
#[must_use]
pub fn model_lines(pool: &Pool) -> (Vec<ModelReport>, Vec<String>) {
    let names = pool.names();
    let models: Vec<ModelReport> = (0..pool.models())
        .map(|m| ModelReport {
            index: m,
            name: names[m].clone(),
            accuracy: pool.accuracy(m).unwrap_or(0.0),
            n_negatives: pool.negatives(m).map_or(0, super::Bitset::count),
        })
        .collect();
    let warnings: Vec<String> = (0..pool.models())
        .filter(|&m| pool.negatives(m).is_some_and(|n| n.count() == 0))
        .map(|m| {
            format!(
                "model `{}` has no negative samples: teams with it have no focal diversity and are left out of top_k",
                names[m]
            )
        })
        .collect();

    (models, warnings)
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
    let lines = TeamLines::new(pool, options);
    analyze_lines(
        pool,
        options,
        &lines,
        &|members| lines.score(members),
        progress,
    )
}

/// [`analyze`] with the canonical focal diversity of every team from `focal` (for example
/// computed on a GPU) instead of the CPU's table; the described teams' details stay on the CPU.
///
/// # Errors
/// [`TeamError`] only for an invalid size range.
pub fn analyze_with(
    pool: &Pool,
    options: &AnalysisOptions,
    focal: &dyn Fn(&[usize]) -> Option<f64>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, TeamError> {
    let lines = TeamLines::new(pool, options);
    let score = |members: &[usize]| {
        if options.compat == Compat::FusionShot {
            lines.score(members)
        } else {
            focal(members)
        }
    };
    analyze_lines(pool, options, &lines, &score, progress)
}

/// The analysis over `lines`, each team of the top-K listing ranked by `score`.
fn analyze_lines(
    pool: &Pool,
    options: &AnalysisOptions,
    lines: &TeamLines<'_>,
    score: &dyn Fn(&[usize]) -> Option<f64>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, TeamError> {
    let total = lines.total();
    let fusionshot = options.compat == Compat::FusionShot;
    match options.listing {
        TeamListing::All => {
            let all = lines.lines(0..total)?;
            progress(total, total);
            let unscored = all
                .teams
                .iter()
                .filter(|t| fusionshot && t.focal_diversity.is_none())
                .count() as u64;
            Ok(finish(
                pool,
                options,
                all.teams,
                all.ranked,
                &all.fusionshot_errors,
                unscored,
            ))
        }
        TeamListing::TopK => {
            let mut done = 0_u64;
            let mut unscored = 0_u64;
            let scored =
                Teams::new(pool.models(), options.min_size, options.max_size).map(|members| {
                    done += 1;
                    if done.is_multiple_of(4096) {
                        progress(done, total);
                    }
                    let score = score(&members);
                    unscored += u64::from(score.is_none());
                    (members, score)
                });
            let ranked = top_k_of(scored, options.top_k);
            progress(total, total);
            report_of_ranking(lines, options, ranked, unscored)
        }
    }
}

/// The top-K report from a ranking made elsewhere (for example on several threads with
/// [`TeamLines::rank`]): `ranked` best first, and `unscored` teams without a focal diversity.
///
/// # Errors
/// [`TeamError`] for a ranked team the pool cannot form.
pub fn report_of_ranking(
    lines: &TeamLines<'_>,
    options: &AnalysisOptions,
    ranked: Vec<RankedTeam>,
    unscored: u64,
) -> Result<Report, TeamError> {
    let mut errors = Vec::new();
    let teams = ranked
        .iter()
        .map(|t| {
            let (line, failed) = lines.describe(&t.members, None)?;
            errors.extend(failed.into_iter().map(|(f, e)| (t.members.clone(), f, e)));
            Ok(line)
        })
        .collect::<Result<Vec<_>, TeamError>>()?;
    // Only FusionShot's mode leaves teams unscored on purpose; canonical nulls are warned
    // about per described team.
    let unscored = if options.compat == Compat::FusionShot {
        unscored
    } else {
        0
    };
    Ok(finish(
        lines.pool(),
        options,
        teams,
        ranked,
        &errors,
        unscored,
    ))
}

/// The report around its described teams, with every warning.
fn finish(
    pool: &Pool,
    options: &AnalysisOptions,
    mut teams: Vec<TeamReport>,
    ranked: Vec<RankedTeam>,
    errors: &[(Vec<usize>, usize, CompatError)],
    unscored: u64,
) -> Report {
    let (models, mut warnings) = model_lines(pool);
    let total = Teams::total(pool.models(), options.min_size, options.max_size);
    if total == 0 {
        warnings.push(no_sizes_warning(pool));
    }
    if unscored > 0 {
        warnings.push(fusionshot_unscored_warning(unscored, total));
    }
    warnings.extend(
        errors
            .iter()
            .map(|(members, f, error)| fusionshot_error_warning(pool, members, *f, error)),
    );
    apply_ensemblebench(pool, options, &mut teams, &mut warnings);
    if options.compat != Compat::FusionShot {
        warnings.extend(
            teams
                .iter()
                .flat_map(|team| null_focal_warnings(pool, team)),
        );
    }
    Report {
        schema: REPORT_SCHEMA.to_owned(),
        n_models: pool.models(),
        n_samples: pool.samples(),
        n_classes: pool.classes(),
        models,
        teams,
        top_k: ranked.into_iter().map(|t| t.members).collect(),
        warnings,
        compat: (options.compat != Compat::Canonical).then_some(options.compat),
    }
}

/// The warning for a size range without teams.
pub fn no_sizes_warning(pool: &Pool) -> String {
    format!(
        "no team size in the requested range fits a pool of {} models (sizes 2 to {})",
        pool.models(),
        pool.models()
    )
}

/// The warning for the teams `FusionShot`'s code cannot score.
pub fn fusionshot_unscored_warning(unscored: u64, total: u64) -> String {
    format!(
        "FusionShot's calc_generalized_div raises IndexError on {unscored} of {total} teams (divergence 1: a failure count missing on a focal model's negatives); they are unscored and left out of top_k"
    )
}

/// The warning for one focal model of a team that `FusionShot`'s code cannot score.
pub fn fusionshot_error_warning(
    pool: &Pool,
    members: &[usize],
    focal: usize,
    error: &CompatError,
) -> String {
    format!(
        "FusionShot cannot score team {members:?} on the negatives of `{}`: {error}",
        pool.names()[focal]
    )
}

/// The warnings for a described team's members without negative samples.
pub fn null_focal_warnings<'a>(
    pool: &'a Pool,
    team: &'a TeamReport,
) -> impl Iterator<Item = String> + 'a {
    team.members
        .iter()
        .zip(&team.per_focal)
        .filter(|(_, value)| value.is_none())
        .map(move |(&member, _)| {
            format!(
                "team {:?}: model `{}` has no negative samples, so its per-focal GD and the team's focal diversity are null",
                team.members,
                pool.names()[member]
            )
        })
}

impl Report {
    /// A team's member names joined with `+`.
    pub fn team_names(&self, members: &[usize]) -> String {
        team_names(&self.names(), members)
    }

    /// One CSV row per described team (the CLI's `--format csv`; the browser's export).
    pub fn to_csv(&self) -> String {
        let names = self.names();
        let rows = self.teams.iter().map(|team| csv_row(&names, team));
        crate::table::write(std::iter::once(CSV_HEADER.map(str::to_owned)).chain(rows))
    }

    /// The models' names, by index.
    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }
}

/// The header of [`Report::to_csv`].
pub const CSV_HEADER: [&str; 6] = [
    "members",
    "size",
    "focal_diversity",
    "plurality_accuracy",
    "majority_accuracy",
    "soft_vote_accuracy",
];

/// A team's member names (by model index) joined with `+`.
pub fn team_names(names: &[String], members: &[usize]) -> String {
    members
        .iter()
        .filter_map(|&m| names.get(m).map(String::as_str))
        .collect::<Vec<_>>()
        .join("+")
}

/// A team's row of [`Report::to_csv`], given the models' names.
pub fn csv_row(names: &[String], team: &TeamReport) -> [String; 6] {
    let cell = |value: Option<f64>| value.map_or_else(String::new, |v| v.to_string());
    [
        team_names(names, &team.members),
        team.members.len().to_string(),
        cell(team.focal_diversity),
        team.plurality_accuracy.to_string(),
        team.majority_accuracy.to_string(),
        cell(team.soft_vote_accuracy),
    ]
}

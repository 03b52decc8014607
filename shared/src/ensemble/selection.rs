//! `fuselab ensemble select`'s computations, for the CLI and the Python package alike: which
//! teams to deploy, by exhaustive top-K, `EnsembleBench`'s threshold rules, its strategic
//! 2-means, HQ's hierarchical pruning, or a seeded genetic search. The result is the
//! `fuselab.ensemble.selection/v1` document.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::compat::{EbMetric, FocalScoreTable, FocalWeights, Sampling, notebook_pipeline};
use super::{
    FitnessWeights, FocalTable, GaConfig, GaError, LimitError, Limits, Pool, TeamStatistics, Teams,
    VoteTable, cluster_center_threshold, genetic_search, hq_prune, std_threshold, team_statistics,
    top_k_of,
};

/// The value of [`Selection::schema`].
pub const SELECTION_SCHEMA: &str = "fuselab.ensemble.selection/v1";

/// How teams are selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectMethod {
    /// Every team in the size range, ranked by canonical focal diversity.
    Topk,
    /// Per team size, the teams scoring below a threshold.
    Threshold,
    /// Per team size, strategic 2-means on (accuracy, score); in `EnsembleBench`'s mode its
    /// demo's whole FQ pipeline.
    Kmeans,
    /// HQ's hierarchical pruning.
    Hq,
    /// FusionShot's genetic search, seeded.
    Ga,
}

impl SelectMethod {
    /// The name flags and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Topk => "topk",
            Self::Threshold => "threshold",
            Self::Kmeans => "kmeans",
            Self::Hq => "hq",
            Self::Ga => "ga",
        }
    }
}

/// The threshold of [`SelectMethod::Threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdRule {
    /// Below the mean score of the teams of the same size.
    Mean,
    /// `EnsembleBench`'s `getThreshold`: below the score of the most diverse team whose
    /// accuracy is under mean − k·std.
    Std,
}

/// What to select and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectOptions {
    /// The method.
    pub method: SelectMethod,
    /// How many teams to list (default: 5 for topk and ga, every selected team otherwise).
    pub top_k: Option<usize>,
    /// Smallest team size.
    pub min_size: usize,
    /// Largest team size (clamped to the pool).
    pub max_size: usize,
    /// `EnsembleBench`'s team FQ as the score, with this sampling; canonical focal diversity
    /// when `None`.
    pub ensemblebench: Option<Sampling>,
    /// The metric whose FQ is the score (`EnsembleBench`'s mode).
    pub metric: EbMetric,
    /// The threshold rule.
    pub rule: ThresholdRule,
    /// k of [`ThresholdRule::Std`].
    pub std_k: f64,
    /// Share of each size HQ prunes.
    pub fraction: f64,
    /// Largest size HQ prunes at.
    pub hq_max_size: usize,
    /// GA fitness weights of focal diversity and plurality accuracy.
    pub weights: (f64, f64),
    /// GA: subtract 0.1 × team size / pool size from the fitness.
    pub size_penalty: bool,
    /// GA seed.
    pub seed: u64,
}

impl Default for SelectOptions {
    fn default() -> Self {
        Self {
            method: SelectMethod::Topk,
            top_k: None,
            min_size: 2,
            max_size: usize::MAX,
            ensemblebench: None,
            metric: EbMetric::GD,
            rule: ThresholdRule::Mean,
            std_k: 1.0,
            fraction: 0.1,
            hq_max_size: 5,
            weights: (0.6, 0.4),
            size_penalty: false,
            seed: 0,
        }
    }
}

/// Why a selection cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SelectError {
    /// An option is out of range or does not apply.
    #[error("{message}")]
    Option {
        /// What is wrong and what to give instead.
        message: String,
    },
    /// More teams than the limits allow.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The genetic search's settings.
    #[error("the genetic search: {0}")]
    Ga(#[from] GaError),
    /// `EnsembleBench`'s demo pipeline fails on the pool, as its code would.
    #[error(
        "EnsembleBench's demo pipeline fails on this pool, as its reference code would; the canonical mode (without EnsembleBench's compatibility) handles such pools: {message}"
    )]
    Pipeline {
        /// The pipeline's error.
        message: String,
    },
}

/// One team of a selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selected {
    /// Member indices.
    pub members: Vec<usize>,
    /// Member names.
    pub names: Vec<String>,
    /// Canonical focal diversity.
    pub focal_diversity: Option<f64>,
    /// Plurality accuracy.
    pub plurality_accuracy: Option<f64>,
    /// The score the method selected on (lower = more diverse; absent for topk and ga).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// GA fitness (absent for other methods).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fitness: Option<f64>,
}

/// The selection (`fuselab.ensemble.selection/v1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// [`SELECTION_SCHEMA`].
    pub schema: &'static str,
    /// The method's name.
    pub method: &'static str,
    /// What `score` means (absent for topk and ga).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    /// Teams selected before `top_k` shortened the list.
    pub n_selected: usize,
    /// The listed teams.
    pub teams: Vec<Selected>,
    /// `EnsembleBench`'s statistics of the whole selection (accuracies in percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<TeamStatistics>,
    /// GA generations run (ga only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generations: Option<usize>,
    /// Distinct teams the GA evaluated (ga only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluated: Option<usize>,
    /// What the user should know about the result.
    pub warnings: Vec<String>,
}

impl Selection {
    fn new(method: SelectMethod) -> Self {
        Self {
            schema: SELECTION_SCHEMA,
            method: method.name(),
            score: None,
            n_selected: 0,
            teams: Vec::new(),
            statistics: None,
            generations: None,
            evaluated: None,
            warnings: Vec::new(),
        }
    }
}

fn sampling_name(sampling: Sampling) -> &'static str {
    match sampling {
        Sampling::Exact => "exact",
        Sampling::Bootstrap2021 => "bootstrap",
    }
}

/// Focal diversity and plurality accuracy of any team from the pool's tables, so scoring or
/// listing a million teams stays fast.
struct Lookup<'a> {
    pool: &'a Pool,
    focal: FocalTable,
    votes: Option<VoteTable>,
}

impl<'a> Lookup<'a> {
    fn new(pool: &'a Pool) -> Self {
        Self {
            pool,
            focal: FocalTable::new(pool),
            votes: VoteTable::new(pool),
        }
    }

    fn focal_diversity(&self, members: &[usize]) -> Option<f64> {
        self.focal.focal_diversity(members).mean
    }

    fn plurality_accuracy(&self, members: &[usize]) -> Option<f64> {
        match &self.votes {
            Some(votes) => Some(votes.plurality_accuracy(members)),
            None => self.pool.team(members).ok()?.plurality_accuracy(),
        }
    }

    fn selected(&self, members: Vec<usize>, score: Option<f64>, fitness: Option<f64>) -> Selected {
        Selected {
            names: members
                .iter()
                .map(|&m| self.pool.names()[m].clone())
                .collect(),
            focal_diversity: self.focal_diversity(&members),
            plurality_accuracy: self.plurality_accuracy(&members),
            score,
            fitness,
            members,
        }
    }
}

/// A candidate team: members, score (lower = more diverse) and accuracy in percent.
type Scored = (Vec<usize>, f64, f64);

/// Scores every team in the size range; teams without a defined score are counted, not kept.
fn score_teams(
    pool: &Pool,
    lookup: &Lookup,
    options: &SelectOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> (Vec<Scored>, String, usize) {
    let max = options.max_size.min(pool.models());
    let mut undefined = 0;
    let mut teams = Vec::new();
    let label;
    if let Some(sampling) = options.ensemblebench {
        let table = FocalScoreTable::new(pool, sampling, options.min_size, max, progress);
        for (t, members) in table.teams().iter().enumerate() {
            let score = table
                .fq(t, options.metric, FocalWeights::ArgsortCompat)
                .weighted;
            if score.is_finite() {
                teams.push((members.clone(), score, team_accuracy(pool, members)));
            } else {
                undefined += 1;
            }
        }
        label = format!(
            "EnsembleBench team FQ of {} (argsort weights, {} sampling; lower = more diverse)",
            options.metric.name(),
            sampling_name(sampling)
        );
    } else {
        let total = Teams::total(pool.models(), options.min_size, max);
        for (done, members) in Teams::new(pool.models(), options.min_size, max).enumerate() {
            if done % 4096 == 0 {
                progress(done as u64, total);
            }
            match lookup.focal_diversity(&members) {
                Some(focal) => {
                    let accuracy = lookup.plurality_accuracy(&members).unwrap_or(f64::NAN);
                    teams.push((members, 1.0 - focal, accuracy * 100.0));
                }
                None => undefined += 1,
            }
        }
        label = "1 - focal diversity (lower = more diverse)".to_owned();
    }
    (teams, label, undefined)
}

/// A team's accuracy in percent for `EnsembleBench`'s rules: soft vote (its demo's default)
/// when probabilities exist, plurality otherwise.
fn team_accuracy(pool: &Pool, members: &[usize]) -> f64 {
    pool.team(members).map_or(f64::NAN, |view| {
        view.soft_vote_accuracy()
            .or_else(|| view.plurality_accuracy())
            .unwrap_or(f64::NAN)
            * 100.0
    })
}

/// The teams of each size, in the order given.
fn by_size(teams: &[Scored]) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, team) in teams.iter().enumerate() {
        groups.entry(team.0.len()).or_default().push(i);
    }
    groups.into_values().collect()
}

/// Threshold and 2-means selections: per size, the teams scoring below the size's threshold.
fn below_thresholds(
    teams: &[Scored],
    options: &SelectOptions,
    warnings: &mut Vec<String>,
) -> Vec<bool> {
    let mut keep = vec![false; teams.len()];
    for group in by_size(teams) {
        let scores: Vec<f64> = group.iter().map(|&i| teams[i].1).collect();
        let accuracy: Vec<f64> = group.iter().map(|&i| teams[i].2).collect();
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let size = teams[group[0]].0.len();
        if group.len() == 1 {
            warnings.push(format!(
                "size {size} has a single team: it has nothing to be compared with and is not selected"
            ));
            continue;
        }
        let bound = match (options.method, options.rule) {
            (SelectMethod::Kmeans, _) => match cluster_center_threshold(&accuracy, &scores) {
                Ok(t) => t,
                Err(failure) => {
                    warnings.push(format!(
                        "size {size}: 2-means cannot split the teams ({failure}); the mean score is the threshold"
                    ));
                    mean
                }
            },
            (_, ThresholdRule::Std) => {
                std_threshold(&accuracy, &scores, options.std_k).unwrap_or(mean)
            }
            (_, ThresholdRule::Mean) => mean,
        };
        for (&i, &score) in group.iter().zip(&scores) {
            keep[i] = score < bound;
        }
    }
    keep
}

/// `EnsembleBench`'s mode with 2-means: the demo notebook's whole pipeline.
fn notebook(
    pool: &Pool,
    sampling: Sampling,
    options: &SelectOptions,
    selection: &mut Selection,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Scored>, SelectError> {
    if pool.models() < 3 {
        return Err(SelectError::Option {
            message: "the EnsembleBench pipeline needs at least 3 models (it clusters teams of sizes 2 to M-1)".into(),
        });
    }
    if options.min_size != 2 || options.max_size < pool.models() {
        selection.warnings.push(
            "the EnsembleBench pipeline always scores every team of sizes 2 to M (--sizes is not used)".to_owned(),
        );
    }
    let table = FocalScoreTable::new(pool, sampling, 2, pool.models(), progress);
    let accuracy: Vec<f64> = table
        .teams()
        .iter()
        .map(|m| team_accuracy(pool, m))
        .collect();
    let models: Vec<f64> = (0..pool.models())
        .map(|m| pool.accuracy(m).unwrap_or(f64::NAN) * 100.0)
        .collect();
    let outcome =
        notebook_pipeline(&table, &accuracy, &models).map_err(|e| SelectError::Pipeline {
            message: e.to_string(),
        })?;
    let m = options.metric.index();
    selection.statistics = outcome.statistics[m];
    Ok(outcome.selected[m]
        .iter()
        .map(|team| {
            let score = outcome.candidate_fq[m]
                .get(team)
                .copied()
                .unwrap_or(f64::NAN);
            let t = table.find(team).unwrap_or_default();
            (team.clone(), score, accuracy[t])
        })
        .collect())
}

fn option_error(message: impl Into<String>) -> SelectError {
    SelectError::Option {
        message: message.into(),
    }
}

/// Checks the options against the pool and the team count against `limits`.
fn check(pool: &Pool, options: &SelectOptions, limits: &Limits) -> Result<(), SelectError> {
    if options.ensemblebench.is_some()
        && matches!(options.method, SelectMethod::Topk | SelectMethod::Ga)
    {
        return Err(option_error(
            "EnsembleBench's compatibility applies to the threshold, kmeans and hq methods (its selection rules); topk and ga rank by canonical focal diversity",
        ));
    }
    if !options.std_k.is_finite() || options.std_k < 0.0 {
        return Err(option_error(format!(
            "std_k {}: expected a non-negative number",
            options.std_k
        )));
    }
    if !(0.0..=1.0).contains(&options.fraction) {
        return Err(option_error(format!(
            "fraction {}: expected a share between 0 and 1",
            options.fraction
        )));
    }
    match options.method {
        // The GA evaluates a bounded number of teams (population × generations).
        SelectMethod::Ga => {}
        SelectMethod::Topk => {
            limits.check_teams(pool.models(), options.min_size, options.max_size)?;
        }
        // EnsembleBench's pipeline scores every size from 2 to M whatever the sizes say.
        SelectMethod::Threshold | SelectMethod::Kmeans | SelectMethod::Hq => {
            if options.ensemblebench.is_some() {
                limits.check_teams(pool.models(), 2, pool.models())?;
            } else {
                limits.check_teams(pool.models(), options.min_size, options.max_size)?;
            }
        }
    }
    Ok(())
}

/// Selects teams of `pool` as `options` say. `progress(done, total)` reports scoring.
///
/// # Errors
/// [`SelectError`] naming the option, the limit crossed, or why a reference pipeline fails.
pub fn select(
    pool: &Pool,
    options: &SelectOptions,
    limits: &Limits,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Selection, SelectError> {
    check(pool, options, limits)?;
    let lookup = Lookup::new(pool);
    match options.method {
        SelectMethod::Ga => genetic(pool, &lookup, options),
        SelectMethod::Topk => Ok(top_k(&lookup, options)),
        SelectMethod::Threshold | SelectMethod::Kmeans | SelectMethod::Hq => {
            thresholded(pool, &lookup, options, progress)
        }
    }
}

fn top_k(lookup: &Lookup, options: &SelectOptions) -> Selection {
    let scored = Teams::new(lookup.pool.models(), options.min_size, options.max_size).map(|m| {
        let score = lookup.focal_diversity(&m);
        (m, score)
    });
    let mut selection = Selection::new(SelectMethod::Topk);
    selection.teams = top_k_of(scored, options.top_k.unwrap_or(5))
        .into_iter()
        .map(|t| lookup.selected(t.members, None, None))
        .collect();
    selection.n_selected = selection.teams.len();
    selection
}

fn genetic(
    pool: &Pool,
    lookup: &Lookup,
    options: &SelectOptions,
) -> Result<Selection, SelectError> {
    let weights = FitnessWeights {
        diversity: options.weights.0,
        accuracy: options.weights.1,
        size_penalty: options.size_penalty,
    };
    let config = GaConfig {
        seed: options.seed,
        ..GaConfig::default()
    };
    let result = genetic_search(pool, weights, config)?;
    let mut selection = Selection::new(SelectMethod::Ga);
    selection.teams = result
        .teams
        .into_iter()
        .take(options.top_k.unwrap_or(5))
        .map(|t| lookup.selected(t.members, None, Some(t.fitness)))
        .collect();
    selection.n_selected = selection.teams.len();
    selection.generations = Some(result.generations);
    selection.evaluated = Some(result.evaluated);
    Ok(selection)
}

fn thresholded(
    pool: &Pool,
    lookup: &Lookup,
    options: &SelectOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Selection, SelectError> {
    let mut selection = Selection::new(options.method);
    if options.ensemblebench.is_some() {
        if !pool.has_probabilities() {
            selection.warnings.push(
                "no probabilities: team accuracy is the plurality vote (EnsembleBench's demo uses the soft vote)"
                    .to_owned(),
            );
        }
        if pool.models() > 16 {
            selection.warnings.push(format!(
                "EnsembleBench's computations score every team on every member's negatives: with {} models this takes long",
                pool.models()
            ));
        }
    }
    let notebook_sampling = options
        .ensemblebench
        .filter(|_| options.method == SelectMethod::Kmeans);
    let mut chosen: Vec<Scored> = if let Some(sampling) = notebook_sampling {
        selection.score = Some(format!(
            "EnsembleBench demo FQ of {} (argsort weights, {} sampling; lower = more diverse)",
            options.metric.name(),
            sampling_name(sampling)
        ));
        notebook(pool, sampling, options, &mut selection, progress)?
    } else {
        let (teams, label, undefined) = score_teams(pool, lookup, options, progress);
        selection.score = Some(label);
        if undefined > 0 {
            selection.warnings.push(format!(
                    "{undefined} teams have no defined score and cannot be selected: a member without negative samples, or (with --compat ensemblebench) a per-focal score EnsembleBench's code cannot compute, which its min-max scaling spreads as NaN to other teams of that focal model and size"
                ));
        }
        let keep = if options.method == SelectMethod::Hq {
            hq_prune(&teams, options.fraction, options.hq_max_size)
        } else {
            below_thresholds(&teams, options, &mut selection.warnings)
        };
        let chosen: Vec<Scored> = teams
            .into_iter()
            .zip(keep)
            .filter_map(|(team, keep)| keep.then_some(team))
            .collect();
        let pairs: Vec<(Vec<usize>, f64)> =
            chosen.iter().map(|(m, _, a)| (m.clone(), *a)).collect();
        let models: Vec<f64> = (0..pool.models())
            .map(|m| pool.accuracy(m).unwrap_or(f64::NAN) * 100.0)
            .collect();
        selection.statistics = team_statistics(&pairs, &models);
        chosen
    };
    chosen.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    selection.n_selected = chosen.len();
    selection.teams = chosen
        .into_iter()
        .take(options.top_k.unwrap_or(usize::MAX))
        .map(|(members, score, _)| lookup.selected(members, Some(score), None))
        .collect();
    Ok(selection)
}

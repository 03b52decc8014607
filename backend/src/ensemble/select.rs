//! `fuselab ensemble select`: which teams to deploy, by exhaustive top-K, `EnsembleBench`'s
//! threshold rules, its strategic 2-means, HQ's hierarchical pruning, or a seeded genetic
//! search.

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use fuselab_shared::ensemble::compat::{
    EbMetric, FocalScoreTable, FocalWeights, notebook_pipeline,
};
use fuselab_shared::ensemble::{
    FitnessWeights, FocalTable, GaConfig, Pool, TeamStatistics, Teams, VoteTable,
    cluster_center_threshold, genetic_search, hq_prune, std_threshold, team_statistics, top_k_of,
};

use super::{
    CompatArg, Format, InputArgs, ProgressBar, SamplingArg, SizeRange, number, write_output,
};

/// How `ensemble select` searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Every team in the size range, ranked by canonical focal diversity
    Topk,
    /// Per team size, the teams scoring below a threshold (mean, or EnsembleBench's k·std rule)
    Threshold,
    /// Per team size, strategic 2-means on (accuracy, score); with --compat ensemblebench, the
    /// EnsembleBench demo's whole FQ pipeline
    Kmeans,
    /// HQ's hierarchical pruning: drop the least diverse tenth of each size and their supersets
    Hq,
    /// FusionShot's genetic search, seeded (for pools too large to enumerate)
    Ga,
}

/// Threshold rule of `--method threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rule {
    /// Below the mean score of the teams of the same size
    Mean,
    /// EnsembleBench's getThreshold: below the score of the most diverse team whose accuracy
    /// is under mean - k·std
    Std,
}

/// `fuselab ensemble select`.
#[derive(Debug, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Search method
    #[arg(long, value_enum)]
    pub method: Method,
    /// How many teams to list (default: 5 for topk and ga, every selected team otherwise)
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Team sizes: A..B (inclusive), A.. or A (not used by ga)
    #[arg(long, default_value = "2..")]
    pub sizes: SizeRange,
    /// Scores: canonical focal diversity, or EnsembleBench's team FQ
    #[arg(long, value_enum, default_value_t = CompatArg::Canonical)]
    pub compat: CompatArg,
    /// EnsembleBench metric whose FQ is the score (with --compat ensemblebench)
    #[arg(long, default_value = "GD", value_parser = parse_metric)]
    pub metric: EbMetric,
    /// EnsembleBench sampling of the negatives (with --compat ensemblebench)
    #[arg(long, value_enum, default_value_t = SamplingArg::Bootstrap)]
    pub sampling: SamplingArg,
    /// Threshold rule (with --method threshold)
    #[arg(long, value_enum, default_value_t = Rule::Mean)]
    pub rule: Rule,
    /// k of the std rule
    #[arg(long, default_value_t = 1.0)]
    pub std_k: f64,
    /// Share of each size that hq prunes
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// Largest size hq prunes at (larger teams are only dropped as supersets)
    #[arg(long, default_value_t = 5)]
    pub hq_max_size: usize,
    /// GA fitness weights of focal diversity and plurality accuracy
    #[arg(long, value_name = "DIV,ACC", default_value = "0.6,0.4", value_parser = parse_weights)]
    pub weights: (f64, f64),
    /// GA: subtract 0.1 x team size / pool size from the fitness
    #[arg(long)]
    pub size_penalty: bool,
    /// GA: random seed (equal seeds give equal runs)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output format (csv is not offered for selections)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the selection to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn parse_metric(text: &str) -> Result<EbMetric, String> {
    EbMetric::parse(text).ok_or_else(|| format!("`{text}`: expected one of CK, QS, BD, FK, KW, GD"))
}

fn parse_weights(text: &str) -> Result<(f64, f64), String> {
    let parse = |part: &str| {
        part.trim()
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite())
            .ok_or_else(|| format!("`{part}` is not a weight; expected DIV,ACC such as 0.6,0.4"))
    };
    let (div, acc) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}`: expected two weights DIV,ACC such as 0.6,0.4"))?;
    Ok((parse(div)?, parse(acc)?))
}

/// One team of a selection.
#[derive(Debug, serde::Serialize)]
struct Selected {
    members: Vec<usize>,
    names: Vec<String>,
    focal_diversity: Option<f64>,
    plurality_accuracy: Option<f64>,
    /// The score the method selected on (lower = more diverse; absent for topk and ga).
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    /// GA fitness (absent for other methods).
    #[serde(skip_serializing_if = "Option::is_none")]
    fitness: Option<f64>,
}

/// The JSON form of a selection (`fuselab.ensemble.selection/v1`).
#[derive(Debug, serde::Serialize)]
struct Selection {
    schema: &'static str,
    method: &'static str,
    /// What `score` means (absent for topk and ga).
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<String>,
    /// Teams selected before `--top-k` shortened the list.
    n_selected: usize,
    teams: Vec<Selected>,
    /// `EnsembleBench`'s statistics of the whole selection (accuracies in percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    statistics: Option<TeamStatistics>,
    /// GA generations run (ga only).
    #[serde(skip_serializing_if = "Option::is_none")]
    generations: Option<usize>,
    /// Distinct teams the GA evaluated (ga only).
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluated: Option<usize>,
    warnings: Vec<String>,
}

impl Selection {
    fn new(method: &'static str) -> Self {
        Self {
            schema: "fuselab.ensemble.selection/v1",
            method,
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
fn score_teams(pool: &Pool, lookup: &Lookup, args: &SelectArgs) -> (Vec<Scored>, String, usize) {
    let max = args.sizes.max.min(pool.models());
    let mut bar = ProgressBar::new();
    let mut undefined = 0;
    let mut teams = Vec::new();
    let label;
    if let Some(sampling) = args.sampling.for_compat(args.compat) {
        let table = FocalScoreTable::new(pool, sampling, args.sizes.min, max, &mut |d, t| {
            bar.update(d, t);
        });
        for (t, members) in table.teams().iter().enumerate() {
            let score = table
                .fq(t, args.metric, FocalWeights::ArgsortCompat)
                .weighted;
            if score.is_finite() {
                teams.push((members.clone(), score, team_accuracy(pool, members)));
            } else {
                undefined += 1;
            }
        }
        label = format!(
            "EnsembleBench team FQ of {} (argsort weights, {} sampling; lower = more diverse)",
            args.metric.name(),
            args.sampling.name()
        );
    } else {
        let total = Teams::total(pool.models(), args.sizes.min, max);
        for (done, members) in Teams::new(pool.models(), args.sizes.min, max).enumerate() {
            if done % 4096 == 0 {
                bar.update(done as u64, total);
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
    bar.finish();
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
fn below_thresholds(teams: &[Scored], args: &SelectArgs, warnings: &mut Vec<String>) -> Vec<bool> {
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
        let bound = match (args.method, args.rule) {
            (Method::Kmeans, _) => match cluster_center_threshold(&accuracy, &scores) {
                Ok(t) => t,
                Err(failure) => {
                    warnings.push(format!(
                        "size {size}: 2-means cannot split the teams ({failure}); the mean score is the threshold"
                    ));
                    mean
                }
            },
            (_, Rule::Std) => std_threshold(&accuracy, &scores, args.std_k).unwrap_or(mean),
            (_, Rule::Mean) => mean,
        };
        for (&i, &score) in group.iter().zip(&scores) {
            keep[i] = score < bound;
        }
    }
    keep
}

/// `--compat ensemblebench --method kmeans`: the demo notebook's whole pipeline.
fn notebook(
    pool: &Pool,
    args: &SelectArgs,
    selection: &mut Selection,
) -> anyhow::Result<Vec<Scored>> {
    let Some(sampling) = args.sampling.for_compat(args.compat) else {
        bail!("the EnsembleBench pipeline needs --compat ensemblebench");
    };
    if pool.models() < 3 {
        bail!(
            "the EnsembleBench pipeline needs at least 3 models (it clusters teams of sizes 2 to M-1)"
        );
    }
    if args.sizes.min != 2 || args.sizes.max < pool.models() {
        selection.warnings.push(
            "the EnsembleBench pipeline always scores every team of sizes 2 to M (--sizes is not used)".to_owned(),
        );
    }
    let mut bar = ProgressBar::new();
    let table = FocalScoreTable::new(pool, sampling, 2, pool.models(), &mut |d, t| {
        bar.update(d, t);
    });
    bar.finish();
    let accuracy: Vec<f64> = table
        .teams()
        .iter()
        .map(|m| team_accuracy(pool, m))
        .collect();
    let models: Vec<f64> = (0..pool.models())
        .map(|m| pool.accuracy(m).unwrap_or(f64::NAN) * 100.0)
        .collect();
    let outcome = notebook_pipeline(&table, &accuracy, &models).with_context(|| {
        "EnsembleBench's demo pipeline fails on this pool, as its reference code would; \
         the canonical mode (without --compat) handles such pools"
    })?;
    let m = args.metric.index();
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

/// Runs `fuselab ensemble select`.
pub fn select_command(args: &SelectArgs) -> anyhow::Result<()> {
    match (args.compat, args.method) {
        (CompatArg::Fusionshot, _) => bail!(
            "--compat fusionshot is not offered for selection: FusionShot selects by brute force \
             (use --method topk, or `ensemble analyze --compat fusionshot` for its scores)"
        ),
        (CompatArg::Ensemblebench, Method::Topk | Method::Ga) => bail!(
            "--compat ensemblebench applies to --method threshold, kmeans and hq (EnsembleBench's \
             selection rules); topk and ga rank by canonical focal diversity"
        ),
        _ => {}
    }
    if !args.std_k.is_finite() || args.std_k < 0.0 {
        bail!("--std-k {}: expected a non-negative number", args.std_k);
    }
    let pool = args.input.pool()?;
    match args.method {
        // The GA evaluates a bounded number of teams (population × generations).
        Method::Ga => {}
        Method::Topk => {
            args.input.check_teams(&pool, args.sizes)?;
        }
        // EnsembleBench's pipeline scores every size from 2 to M whatever --sizes says.
        Method::Threshold | Method::Kmeans | Method::Hq => {
            let sizes = if args.sampling.for_compat(args.compat).is_some() {
                SizeRange {
                    min: 2,
                    max: pool.models(),
                }
            } else {
                args.sizes
            };
            args.input.check_teams(&pool, sizes)?;
        }
    }
    let lookup = Lookup::new(&pool);
    let selection = match args.method {
        Method::Ga => genetic(&pool, &lookup, args)?,
        Method::Topk => top_k(&lookup, args),
        Method::Threshold | Method::Kmeans | Method::Hq => thresholded(&pool, &lookup, args)?,
    };
    let text = match args.format {
        Format::Json => {
            let mut json =
                serde_json::to_string_pretty(&selection).context("encoding the selection")?;
            json.push('\n');
            json
        }
        Format::Table | Format::Csv => selection_table(&selection),
    };
    write_output(args.out.as_ref(), &text)
}

fn top_k(lookup: &Lookup, args: &SelectArgs) -> Selection {
    let scored = Teams::new(lookup.pool.models(), args.sizes.min, args.sizes.max).map(|m| {
        let score = lookup.focal_diversity(&m);
        (m, score)
    });
    let mut selection = Selection::new("topk");
    selection.teams = top_k_of(scored, args.top_k.unwrap_or(5))
        .into_iter()
        .map(|t| lookup.selected(t.members, None, None))
        .collect();
    selection.n_selected = selection.teams.len();
    selection
}

fn genetic(pool: &Pool, lookup: &Lookup, args: &SelectArgs) -> anyhow::Result<Selection> {
    let weights = FitnessWeights {
        diversity: args.weights.0,
        accuracy: args.weights.1,
        size_penalty: args.size_penalty,
    };
    let config = GaConfig {
        seed: args.seed,
        ..GaConfig::default()
    };
    let result = genetic_search(pool, weights, config).context("the genetic search")?;
    let mut selection = Selection::new("ga");
    selection.teams = result
        .teams
        .into_iter()
        .take(args.top_k.unwrap_or(5))
        .map(|t| lookup.selected(t.members, None, Some(t.fitness)))
        .collect();
    selection.n_selected = selection.teams.len();
    selection.generations = Some(result.generations);
    selection.evaluated = Some(result.evaluated);
    Ok(selection)
}

fn thresholded(pool: &Pool, lookup: &Lookup, args: &SelectArgs) -> anyhow::Result<Selection> {
    let method = match args.method {
        Method::Threshold => "threshold",
        Method::Kmeans => "kmeans",
        _ => "hq",
    };
    let mut selection = Selection::new(method);
    if args.compat == CompatArg::Ensemblebench {
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
    let mut chosen: Vec<Scored> = if args.method == Method::Kmeans
        && args.compat == CompatArg::Ensemblebench
    {
        selection.score = Some(format!(
            "EnsembleBench demo FQ of {} (argsort weights, {} sampling; lower = more diverse)",
            args.metric.name(),
            args.sampling.name()
        ));
        notebook(pool, args, &mut selection)?
    } else {
        if !(0.0..=1.0).contains(&args.fraction) {
            bail!(
                "--fraction {}: expected a share between 0 and 1",
                args.fraction
            );
        }
        let (teams, label, undefined) = score_teams(pool, lookup, args);
        selection.score = Some(label);
        if undefined > 0 {
            selection.warnings.push(format!(
                    "{undefined} teams have no defined score and cannot be selected: a member without negative samples, or (with --compat ensemblebench) a per-focal score EnsembleBench's code cannot compute, which its min-max scaling spreads as NaN to other teams of that focal model and size"
                ));
        }
        let keep = if args.method == Method::Hq {
            hq_prune(&teams, args.fraction, args.hq_max_size)
        } else {
            below_thresholds(&teams, args, &mut selection.warnings)
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
        .take(args.top_k.unwrap_or(usize::MAX))
        .map(|(members, score, _)| lookup.selected(members, Some(score), None))
        .collect();
    Ok(selection)
}

fn selection_table(selection: &Selection) -> String {
    let rows: Vec<String> = selection.teams.iter().map(|t| t.names.join("+")).collect();
    let width = rows.iter().map(String::len).max().unwrap_or(0).max(7);
    let mut out = match selection.method {
        "ga" => format!(
            "{} teams by genetic search (fitness)",
            selection.teams.len()
        ),
        "topk" => format!("{} teams by focal diversity", selection.teams.len()),
        method => format!(
            "{} of {} teams selected by {method}",
            selection.teams.len(),
            selection.n_selected
        ),
    };
    if let (Some(generations), Some(evaluated)) = (selection.generations, selection.evaluated) {
        let _ = write!(
            out,
            ", {generations} generations, {evaluated} teams evaluated"
        );
    }
    if let Some(score) = &selection.score {
        let _ = write!(out, "\nscore: {score}");
    }
    let _ = writeln!(
        out,
        "\n{:<width$}  size  focal div.  plurality  {:>7}",
        "members",
        if selection.method == "ga" {
            "fitness"
        } else {
            "score"
        }
    );
    for (names, team) in rows.iter().zip(&selection.teams) {
        let _ = writeln!(
            out,
            "{names:<width$}  {:>4}  {:>10}  {:>9}  {:>7}",
            team.members.len(),
            number(team.focal_diversity),
            number(team.plurality_accuracy),
            number(team.fitness.or(team.score)),
        );
    }
    if let Some(s) = &selection.statistics {
        let _ = writeln!(
            out,
            "selection: {} teams, accuracy {:.2}..{:.2} % (mean {:.2}, std {:.2}); {} beat all their members, {} reach the best model",
            s.count, s.min, s.max, s.mean, s.std, s.above_members, s.above_best_model
        );
    }
    for warning in &selection.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

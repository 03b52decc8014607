//! `fuselab ensemble select`: which teams to deploy, by exhaustive top-K, `EnsembleBench`'s
//! threshold rules, its strategic 2-means, HQ's hierarchical pruning, or a seeded genetic
//! search.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use fuselab_shared::ensemble::compat::EbMetric;
use fuselab_shared::ensemble::{SelectMethod, SelectOptions, Selection, ThresholdRule, select};

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

impl SelectArgs {
    fn options(&self) -> SelectOptions {
        SelectOptions {
            method: match self.method {
                Method::Topk => SelectMethod::Topk,
                Method::Threshold => SelectMethod::Threshold,
                Method::Kmeans => SelectMethod::Kmeans,
                Method::Hq => SelectMethod::Hq,
                Method::Ga => SelectMethod::Ga,
            },
            top_k: self.top_k,
            min_size: self.sizes.min,
            max_size: self.sizes.max,
            ensemblebench: self.sampling.for_compat(self.compat),
            metric: self.metric,
            rule: match self.rule {
                Rule::Mean => ThresholdRule::Mean,
                Rule::Std => ThresholdRule::Std,
            },
            std_k: self.std_k,
            fraction: self.fraction,
            hq_max_size: self.hq_max_size,
            weights: self.weights,
            size_penalty: self.size_penalty,
            seed: self.seed,
        }
    }
}

/// Runs `fuselab ensemble select`.
pub fn select_command(args: &SelectArgs) -> anyhow::Result<()> {
    if args.compat == CompatArg::Fusionshot {
        bail!(
            "--compat fusionshot is not offered for selection: FusionShot selects by brute force \
             (use --method topk, or `ensemble analyze --compat fusionshot` for its scores)"
        );
    }
    // Named as flags here; `select` checks them again for its other callers.
    if !args.std_k.is_finite() || args.std_k < 0.0 {
        bail!("--std-k {}: expected a non-negative number", args.std_k);
    }
    if !(0.0..=1.0).contains(&args.fraction) {
        bail!(
            "--fraction {}: expected a share between 0 and 1",
            args.fraction
        );
    }
    let pool = args.input.pool()?;
    let mut bar = ProgressBar::new();
    let selection = select(
        &pool,
        &args.options(),
        &args.input.limits.limits(),
        &mut |d, t| {
            bar.update(d, t);
        },
    );
    bar.finish();
    let selection = selection?;
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

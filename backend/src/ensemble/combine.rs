//! `fuselab ensemble combine`: a learned combiner (FusionShot's network, stacking or a weighted
//! vote) for a team, or for each of the K most focal-diverse teams, trained on the pool's train
//! split, chosen on val and reported on test beside every member and the votes.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use fuselab_shared::ensemble::combine::{
    CombineError, CombineOptions, CombineReport, Method, Scores, SplitPool, TeamChoice,
    TeamCombination, combine_pool,
};

use super::{InputArgs, ProgressBar, write_output};

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// FusionShot's network: 100-100 sigmoid hidden layers over the members' outputs
    Mlp,
    /// Multinomial logistic regression on the members' probabilities (L2 chosen on val)
    Stacking,
    /// A soft vote with per-member weights fitted on val
    WeightedVote,
}

/// `--compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompatArg {
    /// FusionShot's code: sigmoid-then-softmax output, cross-entropy on the softmax, accuracy as
    /// the mean of batch accuracies ± 1.96·std/√batches (its shuffle seeded)
    Fusionshot,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Aligned text for people
    Table,
    /// The `fuselab.ensemble.combine/v1` schema
    Json,
}

/// `fuselab ensemble combine`.
#[derive(Debug, Args)]
pub struct CombineArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The team: model names separated by commas
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "top_k",
        conflicts_with = "top_k"
    )]
    pub team: Vec<String>,
    /// Combine each of the K most focal-diverse teams (ranked on the val split)
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// How to combine
    #[arg(long, value_enum, default_value_t = MethodArg::Mlp)]
    pub method: MethodArg,
    /// Reproduce a reference implementation's choices
    #[arg(long, value_enum)]
    pub compat: Option<CompatArg>,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// How the network trains and where the report goes (`ensemble combine`, `llm topla weighted`).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training epochs (mlp)
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Batch size (mlp)
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Adam's learning rate (mlp)
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seeds the network's initial weights and the shuffles
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Write the report to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

impl TrainArgs {
    /// The report as the chosen format, written where asked.
    ///
    /// # Errors
    /// An unwritable output.
    pub fn write(&self, report: &CombineReport) -> anyhow::Result<()> {
        let text = match self.format {
            FormatArg::Json => {
                serde_json::to_string_pretty(report).context("encoding the report")? + "\n"
            }
            FormatArg::Table => table(report),
        };
        write_output(self.out.as_ref(), &text)
    }
}

impl CombineArgs {
    fn options(&self) -> CombineOptions {
        CombineOptions {
            method: match self.method {
                MethodArg::Mlp => Method::Mlp,
                MethodArg::Stacking => Method::Stacking,
                MethodArg::WeightedVote => Method::WeightedVote,
            },
            fusionshot: self.compat == Some(CompatArg::Fusionshot),
            epochs: self.train.epochs,
            batch: self.train.batch,
            lr: self.train.lr,
            seed: self.train.seed,
            ..CombineOptions::default()
        }
    }
}

/// Runs `fuselab ensemble combine`.
///
/// # Errors
/// An unreadable or invalid pool (no splits, no scores), an unknown member, an option out of
/// range, or an unwritable output.
pub fn combine_command(args: &CombineArgs) -> anyhow::Result<()> {
    if args.input.split.is_some() {
        return Err(CombineError::Option {
            option: "split",
            message: "does not apply to `combine`: it trains on the train split, chooses on val and reports on test".into(),
        }
        .into());
    }
    let options = args.options();
    options.check()?;
    let (input, limits, source) = args.input.read_whole()?;
    let pool = SplitPool::new(input, &limits)
        .with_context(|| format!("{source}: cannot train a combiner on this pool"))?;
    let names: Vec<&str> = args.team.iter().map(String::as_str).collect();
    let choice = args
        .top_k
        .map_or(TeamChoice::Names(&names), TeamChoice::TopK);
    let mut bar = ProgressBar::new();
    let mut current = 0;
    let report = combine_pool(
        &pool,
        choice,
        &options,
        &limits,
        &mut |team, done, total| {
            if team != current {
                bar.finish();
                bar = ProgressBar::new();
                current = team;
            }
            bar.update_with(
                done as u64,
                total as u64,
                &format!("epochs (team {})", team + 1),
            );
            true
        },
    )?;
    bar.finish();
    args.train.write(&report)
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

fn row(out: &mut String, width: usize, name: &str, scores: &Scores) {
    let _ = writeln!(
        out,
        "  {name:<width$}  {:>8.4}  [{:.4}, {:.4}]  {:>7}  {:>7}",
        scores.accuracy,
        scores.interval[0],
        scores.interval[1],
        optional(scores.nll),
        optional(scores.ece),
    );
}

fn method_line(report: &CombineReport, team: &TeamCombination) -> String {
    let options = &report.options;
    match options.method {
        Method::Mlp => format!(
            "{} (epoch {} of {}, on {})",
            if options.fusionshot {
                "mlp, FusionShot's code"
            } else {
                "mlp"
            },
            team.best_epoch.unwrap_or(0),
            options.epochs,
            team.features.map_or("-", |f| match f {
                fuselab_shared::ensemble::combine::Features::Logits => "logits",
                fuselab_shared::ensemble::combine::Features::Probabilities => "probabilities",
            }),
        ),
        Method::Stacking => format!("stacking (L2 {})", team.l2.unwrap_or(0.0)),
        Method::WeightedVote => format!(
            "weighted vote ({})",
            team.weights
                .as_deref()
                .unwrap_or_default()
                .iter()
                .zip(&team.names)
                .map(|(w, n)| format!("{n} {w:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The report as aligned text.
pub(crate) fn table(report: &CombineReport) -> String {
    let s = report.splits;
    let mut out = format!(
        "splits: train {}, val {}, test {} samples; {} classes; teams: {}\nscores on test (accuracy with its 95 % interval{}, NLL, ECE)\n",
        s.train,
        s.val,
        s.test,
        report.classes,
        report.teams_from,
        if report.options.fusionshot {
            ": FusionShot's mean of batch accuracies ± 1.96·std/√batches"
        } else {
            ", Wilson"
        },
    );
    for team in &report.teams {
        let _ = writeln!(
            out,
            "\nteam {}{}",
            team.names.join(" + "),
            team.focal_diversity
                .map(|f| format!(" (focal diversity on val {f:.4})"))
                .unwrap_or_default()
        );
        let method = method_line(report, team);
        let width = team
            .baselines
            .iter()
            .map(|b| b.name.len() + 7)
            .chain([method.len()])
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:<width$}  {:>8}  {:<16}  {:>7}  {:>7}",
            "", "accuracy", "95 % interval", "NLL", "ECE"
        );
        row(&mut out, width, &method, &team.combined);
        for baseline in team.baselines.iter().rev().filter(|b| !b.member) {
            row(&mut out, width, &baseline.name, &baseline.scores);
        }
        for baseline in team.baselines.iter().filter(|b| b.member) {
            row(
                &mut out,
                width,
                &format!("member {}", baseline.name),
                &baseline.scores,
            );
        }
        if let (Some(first), Some(last)) = (team.curve.first(), team.curve.last()) {
            let _ = writeln!(
                out,
                "  learning curve: train loss {:.4} → {:.4}, val accuracy {:.4} → {:.4} (best at epoch {})",
                first.train_loss,
                last.train_loss,
                first.val_accuracy,
                last.val_accuracy,
                team.best_epoch.unwrap_or(0)
            );
        }
    }
    out
}

//! `fuselab ensemble`: which sub-ensembles of a model pool are focally diverse and accurate.

pub(crate) mod combine;
pub mod demo;
pub mod input;
mod select;
pub mod sharded;
mod stream;
mod sweep;

use std::{
    fmt::Write as _,
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
pub use combine::CombineArgs;
use fuselab_shared::ensemble::compat::Sampling;
use fuselab_shared::ensemble::{
    AnalysisOptions, Compat, Limits, ModelReport, Pool, PoolInput, Report, SizeRange, SplitChoice,
    TeamLines, TeamListing, TeamReport, analyze, report_of_ranking, team_names,
};
pub use select::SelectArgs;
pub use sweep::SweepArgs;

/// `fuselab ensemble ...`.
#[derive(Debug, Subcommand)]
pub enum EnsembleCommand {
    /// Score every team of a pool: canonical focal diversity, votes, top-K
    Analyze(AnalyzeArgs),
    /// Pick teams: top-K by focal diversity, EnsembleBench thresholds or 2-means, HQ pruning,
    /// or a seeded genetic search
    Select(SelectArgs),
    /// Sweep every team in bounded memory: top-K, accuracy-diversity Pareto front, per-size
    /// statistics; here, or queued as a job that workers split into shards
    Sweep(SweepArgs),
    /// Train a combiner of a team's outputs (FusionShot's network, stacking or a weighted vote)
    /// on the train split and compare it on test with the members and the votes
    Combine(CombineArgs),
    /// Build the web app's example pool: eight classifiers trained on scikit-learn's digits
    Demo(demo::DemoArgs),
}

/// How much each described team carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Detail {
    /// Focal diversity, per-focal GD and vote accuracies.
    Summary,
    /// Also the eight diversity metrics on all samples.
    Full,
}

/// Whose definitions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompatArg {
    /// fuselab's: every divergence of the reference code fixed
    Canonical,
    /// Also EnsembleBench's per-focal Q-metrics and team FQ scores, computed as its code does
    Ensemblebench,
    /// Focal diversity from FusionShot's code (teams it crashes on are unscored)
    Fusionshot,
}

/// How `EnsembleBench` samples a focal model's negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplingArg {
    /// The library default: 3 rounds of 100 draws, seed 2021
    Bootstrap,
    /// The whole negative set (deterministic)
    Exact,
}

impl SamplingArg {
    /// The sampling when `compat` is `EnsembleBench`'s.
    fn for_compat(self, compat: CompatArg) -> Option<Sampling> {
        (compat == CompatArg::Ensemblebench).then_some(match self {
            Self::Bootstrap => Sampling::Bootstrap2021,
            Self::Exact => Sampling::Exact,
        })
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// The `fuselab.ensemble.report/v1` schema.
    Json,
    /// One row per described team.
    Csv,
}

/// Where the pool comes from, for every `ensemble` command.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The pool: a JSON file, an .npz archive, or a folder with labels.npy and one <model>.npy
    /// per model
    pub input: Option<PathBuf>,
    /// CSV with one column of true labels (use with --predictions)
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// CSV with one column of predicted classes per model, model names in the header (use with
    /// --labels)
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// Which samples of a pool with splits to use: train, val, test or all [default: test]
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<SplitChoice>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// How large a pool and its analysis may be (defaults: [`Limits::default`]).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most models a pool may have
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_models)]
    pub max_models: usize,
    /// Most classes a pool may have (declared, or the largest label + 1)
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_classes)]
    pub max_classes: usize,
    /// Most cells of samples x models, and of models x classes
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_cells)]
    pub max_cells: u64,
    /// Most probabilities (samples x models x classes)
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_probabilities)]
    pub max_probabilities: u64,
    /// Most teams one run scores (all sizes in --sizes together)
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_teams)]
    pub max_teams: u64,
    /// Most bytes an .npz archive inflates to, and one decoded array takes
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_decompressed_bytes)]
    pub max_decompressed_bytes: u64,
}

impl LimitArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            max_models: self.max_models,
            max_classes: self.max_classes,
            max_cells: self.max_cells,
            max_probabilities: self.max_probabilities,
            max_teams: self.max_teams,
            max_decompressed_bytes: self.max_decompressed_bytes,
        }
    }
}

impl InputArgs {
    /// Reads and validates the pool within the limits.
    fn pool(&self) -> anyhow::Result<Pool> {
        let (input, limits, source) = self.read()?;
        Pool::with_limits(input, &limits)
            .with_context(|| format!("{source}: not a valid model pool"))
    }

    /// Reads the pool within the limits: the data as read, and validated.
    fn pool_input(&self) -> anyhow::Result<(PoolInput, Pool)> {
        let (input, limits, source) = self.read()?;
        let pool = Pool::with_limits(input.clone(), &limits)
            .with_context(|| format!("{source}: not a valid model pool"))?;
        Ok((input, pool))
    }

    /// The samples `--split` chooses of the pool's data as read within the limits, the
    /// limits, and where it came from.
    fn read(&self) -> anyhow::Result<(PoolInput, Limits, input::Source)> {
        let (whole, limits, source) = self.read_whole()?;
        let (chosen, used) = whole
            .select(self.split.unwrap_or_default())
            .with_context(|| format!("{source}: not a valid model pool"))?;
        if let Some(used) = used {
            eprintln!("{source}: analysing {used}");
        }
        Ok((chosen, limits, source))
    }

    /// The pool's data as read within the limits, every split kept.
    fn read_whole(&self) -> anyhow::Result<(PoolInput, Limits, input::Source)> {
        let source = input::source(
            self.input.as_deref(),
            self.labels.as_deref(),
            self.predictions.as_deref(),
        )?;
        let limits = self.limits.limits();
        Ok((input::load(&source, &limits)?, limits, source))
    }

    /// Refuses a size range with more teams than `--max-teams`, before they are enumerated.
    fn check_teams(&self, pool: &Pool, sizes: SizeRange) -> Result<u64, input::InputError> {
        Ok(self
            .limits
            .limits()
            .check_teams(pool.models(), sizes.min, sizes.max)?)
    }
}

/// `fuselab ensemble analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// How many teams to rank by focal diversity
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Team sizes: A..B (inclusive), A.. or A
    #[arg(long, default_value = "2..")]
    pub sizes: SizeRange,
    /// How much to report for each team
    #[arg(long, value_enum, default_value_t = Detail::Summary)]
    pub detail: Detail,
    /// Describe every team in the size range, not only the top-K
    #[arg(long)]
    pub all_teams: bool,
    /// Whose definitions to follow
    #[arg(long, value_enum, default_value_t = CompatArg::Canonical)]
    pub compat: CompatArg,
    /// EnsembleBench sampling of the negatives (with --compat ensemblebench)
    #[arg(long, value_enum, default_value_t = SamplingArg::Bootstrap)]
    pub sampling: SamplingArg,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report to FILE instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `fuselab ensemble ...`.
///
/// # Errors
/// Unreadable or invalid input (an [`input::InputError`] or a
/// [`fuselab_shared::ensemble::PoolError`] in the chain), or an unwritable output.
pub fn run(command: &EnsembleCommand, data_dir: &std::path::Path) -> anyhow::Result<()> {
    match command {
        EnsembleCommand::Analyze(args) => analyze_command(args),
        EnsembleCommand::Select(args) => select::select_command(args),
        EnsembleCommand::Sweep(args) => sweep::sweep_command(args, data_dir),
        EnsembleCommand::Combine(args) => combine::combine_command(args),
        EnsembleCommand::Demo(args) => demo::build(args, data_dir),
    }
}

fn analyze_command(args: &AnalyzeArgs) -> anyhow::Result<()> {
    let pool = args.input.pool()?;
    args.input.check_teams(&pool, args.sizes)?;
    let options = AnalysisOptions {
        min_size: args.sizes.min,
        max_size: args.sizes.max,
        top_k: args.top_k,
        listing: if args.all_teams {
            TeamListing::All
        } else {
            TeamListing::TopK
        },
        full_detail: args.detail == Detail::Full,
        compat: match (args.compat, args.sampling.for_compat(args.compat)) {
            (_, Some(sampling)) => Compat::EnsembleBench { sampling },
            (CompatArg::Fusionshot, None) => Compat::FusionShot,
            _ => Compat::Canonical,
        },
    };
    if args.all_teams && !matches!(options.compat, Compat::EnsembleBench { .. }) {
        // EnsembleBench's scores are scaled over all teams of a size, so only its mode needs
        // every line in memory.
        return match args.out.as_ref() {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("cannot write the output to {}", path.display()))?;
                stream::write_all_teams(
                    &pool,
                    &options,
                    args.format,
                    &mut std::io::BufWriter::new(file),
                )
                .with_context(|| format!("writing {}", path.display()))
            }
            None => stream::write_all_teams(
                &pool,
                &options,
                args.format,
                &mut std::io::BufWriter::new(std::io::stdout().lock()),
            ),
        };
    }
    let report = if args.all_teams {
        let mut bar = ProgressBar::new();
        let report = analyze(&pool, &options, &mut |done, total| bar.update(done, total))
            .context("the analysis failed")?;
        bar.finish();
        report
    } else {
        let lines = TeamLines::new(&pool, &options);
        let (ranked, unscored) = stream::rank(&lines, options.top_k);
        report_of_ranking(&lines, &options, ranked, unscored).context("the analysis failed")?
    };
    let text = match args.format {
        Format::Json => {
            let mut json = serde_json::to_string_pretty(&report).context("encoding the report")?;
            json.push('\n');
            json
        }
        Format::Table => table(&report),
        Format::Csv => report.to_csv(),
    };
    write_output(args.out.as_ref(), &text)
}

/// The canonical analysis of every team of a pool, as `fuselab ensemble analyze` prints it.
///
/// # Errors
/// A pool the analysis refuses.
pub fn analysis_table(pool: &Pool, top_k: usize) -> anyhow::Result<String> {
    let options = AnalysisOptions {
        min_size: 2,
        max_size: pool.models(),
        top_k,
        listing: TeamListing::TopK,
        full_detail: false,
        compat: Compat::Canonical,
    };
    let report = analyze(pool, &options, &mut |_, _| {}).context("the analysis failed")?;
    Ok(table(&report))
}

pub(crate) fn write_output(out: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write the output to {}", path.display())),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .context("cannot write the output to stdout"),
    }
}

/// A one-line progress bar on stderr, shown only on a terminal and only after the first second.
pub(crate) struct ProgressBar {
    start: Instant,
    last: Option<Instant>,
    visible: bool,
}

impl ProgressBar {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last: None,
            visible: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        self.update_with(done, total, "teams");
    }

    pub(crate) fn update_with(&mut self, done: u64, total: u64, unit: &str) {
        let now = Instant::now();
        if !self.visible
            || now - self.start < Duration::from_secs(1)
            || self
                .last
                .is_some_and(|last| now - last < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        let filled = (done.min(total) * 30 / total.max(1)) as usize;
        eprint!(
            "\r[{}{}] {done}/{total} {unit}",
            "#".repeat(filled),
            " ".repeat(30 - filled.min(30))
        );
    }

    pub(crate) fn finish(&self) {
        if self.last.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

fn table(report: &Report) -> String {
    let mut out = table_head(
        report.n_models,
        report.n_samples,
        report.n_classes,
        &report.models,
    );
    let names = report.names();
    let width = report
        .teams
        .iter()
        .map(|team| team_names(&names, &team.members).len())
        .max()
        .unwrap_or(0)
        .max(7);
    let is_top_k = report
        .teams
        .iter()
        .map(|t| &t.members)
        .eq(report.top_k.iter());
    let heading = if is_top_k {
        format!("top {} teams by focal diversity", report.top_k.len())
    } else {
        format!("{} teams", report.teams.len())
    };
    out.push_str(&table_heading(&heading, width));
    for team in &report.teams {
        out.push_str(&table_row(&team_names(&names, &team.members), width, team));
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The table's pool line and per-model lines.
fn table_head(
    n_models: usize,
    n_samples: usize,
    n_classes: usize,
    models: &[ModelReport],
) -> String {
    let mut out = format!("pool: {n_models} models, {n_samples} samples, {n_classes} classes\n\n");
    let width = models
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(out, "{:<width$}  accuracy  negatives", "model");
    for model in models {
        let _ = writeln!(
            out,
            "{:<width$}  {:>8.4}  {:>9}",
            model.name, model.accuracy, model.n_negatives
        );
    }
    out
}

/// The heading of the teams' part of the table.
fn table_heading(heading: &str, width: usize) -> String {
    format!(
        "\n{heading} (accuracies are fractions; - = undefined)\n{:<width$}  size  focal div.  plurality  majority  soft vote\n",
        "members"
    )
}

/// One team's line of the table.
fn table_row(members: &str, width: usize, team: &TeamReport) -> String {
    format!(
        "{members:<width$}  {:>4}  {:>10}  {:>9.4}  {:>8.4}  {:>9}\n",
        team.members.len(),
        number(team.focal_diversity),
        team.plurality_accuracy,
        team.majority_accuracy,
        number(team.soft_vote_accuracy),
    )
}

/// The width of the widest team name of up to `max_size` members: the longest names joined.
fn team_width(names: &[String], max_size: usize) -> usize {
    let mut lengths: Vec<usize> = names.iter().map(String::len).collect();
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    let size = max_size.min(lengths.len());
    (lengths[..size].iter().sum::<usize>() + size.saturating_sub(1)).max(7)
}

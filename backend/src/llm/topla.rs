//! `fuselab llm topla pool` (answer sets → a pool for the focal analysis and `combine`) and
//! `fuselab llm topla weighted` (LLM-TOPLA-Weighted: FusionShot's network over the team's
//! candidate-space vote shares).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use fuselab_shared::ensemble::combine::{
    COMBINE_SCHEMA, CombineOptions, CombineReport, Method, SplitSizes, combine_rows,
};
use fuselab_shared::ensemble::{FocalTable, Pool, PoolInput, Split, SplitChoice};
use fuselab_shared::topla::{
    Answers, QuestionSet, Rules, Task, ToplaOptions, answer_pool, answers_of, canonical_splits,
    parse_answer_set, parse_questions, topla_rows,
};

use super::answers::TaskArg;
use crate::ensemble::ProgressBar;
use crate::ensemble::combine::TrainArgs;

/// `fuselab llm topla …`.
#[derive(Debug, Subcommand)]
pub enum ToplaCommand {
    /// Turn answer sets into a pool: each model's majority answer its prediction, its vote
    /// shares its probabilities
    Pool(PoolArgs),
    /// LLM-TOPLA-Weighted: a network over the team's candidate-answer vote shares
    Weighted(WeightedArgs),
    /// LLM-TOPLA-Summary: fine-tune a model that reads every member's answers and writes the
    /// fused one (examples/llm-study/summary-*.toml)
    Summary(SummaryArgs),
}

/// `fuselab llm topla summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub config: crate::align::ConfigArgs,
    /// Reproduce the reference: pads in the loss, the last epoch kept, and the teacher-forced
    /// score beside the generated one
    #[arg(long, value_enum)]
    pub compat: Option<ToplaCompat>,
}

/// `--compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToplaCompat {
    /// LLM-TOPLA's code: its extraction rules, 70/10/20 splits with val inside train, the
    /// zero-padding match, MMLU shares over 10, double softmax and 200-epoch patience
    LlmTopla,
}

/// What both commands read.
#[derive(Debug, Args)]
pub struct AnswerInput {
    /// A folder of answer sets (`<model>.jsonl`, one per member)
    #[arg(long)]
    pub answers: PathBuf,
    /// The question set with the gold answers
    #[arg(long)]
    pub gold: PathBuf,
    /// The task's format and answer rules
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// Reproduce the reference code's choices
    #[arg(long, value_enum)]
    pub compat: Option<ToplaCompat>,
    /// Seed of the train / val / test assignment of questions
    #[arg(long, default_value_t = fuselab_shared::ensemble::ANSWER_SPLIT_SEED)]
    pub split_seed: u64,
}

/// `fuselab llm topla pool`.
#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(flatten)]
    pub input: AnswerInput,
    /// Where to write the pool (JSON)
    #[arg(long)]
    pub out: PathBuf,
}

/// `fuselab llm topla weighted`.
#[derive(Debug, Args)]
pub struct WeightedArgs {
    #[command(flatten)]
    pub input: AnswerInput,
    /// The team: model names (answer files' stems) separated by commas
    #[arg(long, value_delimiter = ',', required = true)]
    pub team: Vec<String>,
    /// Candidate slots (GSM8K; MMLU has its four letters)
    #[arg(long, default_value_t = 30)]
    pub slots: usize,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Most candidate slots.
const MAX_SLOTS: usize = 1000;

/// The questions and every model's extracted answers, in file-name order.
pub(super) struct Loaded {
    pub(super) questions: QuestionSet,
    pub(super) models: Vec<Answers>,
    pub(super) splits: Vec<Split>,
    pub(super) reference: bool,
}

fn load(input: &AnswerInput) -> anyhow::Result<Loaded> {
    load_from(
        &input.answers,
        &input.gold,
        Task::from(input.task),
        input.compat == Some(ToplaCompat::LlmTopla),
        input.split_seed,
    )
}

/// Reads the question set and every answer set of `answers`; `reference` applies LLM-TOPLA's
/// extraction rules and splits.
pub(super) fn load_from(
    answers: &Path,
    gold: &Path,
    task: Task,
    reference: bool,
    split_seed: u64,
) -> anyhow::Result<Loaded> {
    let rules = if reference {
        Rules::Reference
    } else {
        Rules::Fuselab
    };
    let gold_file = gold.display().to_string();
    let text = std::fs::read_to_string(gold)
        .with_context(|| format!("cannot read the gold answers {gold_file}"))?;
    let questions = parse_questions(&gold_file, &text, task)?;
    let files = answer_files(answers)?;
    if files.len() < 2 {
        bail!(
            "{}: found {} answer set(s) (*.jsonl); a team needs at least 2",
            answers.display(),
            files.len()
        );
    }
    let models = files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            let name = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {file}"))?;
            let set = parse_answer_set(&file, &name, &text)?;
            Ok(answers_of(&set, &file, &questions, &gold_file, rules)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (train, val) = if reference { (70, 10) } else { (60, 20) };
    let splits = canonical_splits(questions.questions.len(), split_seed, train, val);
    Ok(Loaded {
        questions,
        models,
        splits,
        reference,
    })
}

/// The answer sets (`*.jsonl`) of a folder, sorted by name.
pub(super) fn answer_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the answer folder {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

pub(super) fn pool_of(loaded: &Loaded) -> PoolInput {
    answer_pool(
        &loaded.models,
        &loaded.questions.gold,
        loaded.questions.task,
        loaded.splits.clone(),
    )
}

/// Runs `fuselab llm topla …`.
///
/// # Errors
/// Unreadable or invalid answer sets, an unknown member, an unwritable output.
pub fn run(command: &ToplaCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        ToplaCommand::Pool(args) => pool_command(args),
        ToplaCommand::Weighted(args) => weighted_command(args),
        ToplaCommand::Summary(args) => super::summary::command(
            &args.config,
            args.compat
                .map(|ToplaCompat::LlmTopla| super::summary::SummaryCompat::LlmTopla),
            data_dir,
        ),
    }
}

fn pool_command(args: &PoolArgs) -> anyhow::Result<()> {
    let loaded = load(&args.input)?;
    let pool = pool_of(&loaded);
    let validated = Pool::new(pool.clone()).context("the answer pool is not valid")?;
    let mut text = serde_json::to_string(&pool).context("encoding the pool")?;
    text.push('\n');
    crate::ensemble::write_output(Some(&args.out), &text)?;
    for (m, name) in validated.names().iter().enumerate() {
        tracing::info!(
            model = %name,
            majority_accuracy = validated
                .accuracy(m)
                .map_or_else(|| "-".to_owned(), |a| format!("{a:.4}")),
            "answers"
        );
    }
    tracing::info!(
        models = validated.models(),
        questions = validated.samples(),
        classes = validated.classes(),
        out = %args.out.display(),
        provenance = loaded.questions.provenance(),
        "pool written"
    );
    Ok(())
}

/// The focal diversity of `members` on the pool's val questions.
fn focal_on_val(pool: PoolInput, members: &[usize]) -> anyhow::Result<Option<f64>> {
    let (val, _) = pool.select(SplitChoice::Val)?;
    let val = Pool::new(val)?;
    Ok(FocalTable::new(&val).focal_diversity(members).mean)
}

fn weighted_command(args: &WeightedArgs) -> anyhow::Result<()> {
    if !(1..=MAX_SLOTS).contains(&args.slots) {
        bail!("--slots: expected 1 to {MAX_SLOTS}, found {}", args.slots);
    }
    let loaded = load(&args.input)?;
    let settings = Training {
        epochs: args.train.epochs,
        batch: args.train.batch,
        lr: args.train.lr,
        seed: args.train.seed,
    };
    let mut bar = ProgressBar::new();
    let report = weighted_report(
        &loaded,
        &args.team,
        args.slots,
        settings,
        &mut |done, total| {
            bar.update_with(done as u64, total as u64, "epochs");
            true
        },
    )
    .map_err(|e| match e {
        WeightedError::UnknownMember(name) => anyhow::anyhow!(
            "--team: no answer set `{name}.jsonl` in {} (it has {})",
            args.input.answers.display(),
            loaded
                .models
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        WeightedError::Twice(name) => anyhow::anyhow!("--team: `{name}` is named twice"),
        WeightedError::Other(e) => e,
    })?;
    bar.finish();
    args.train.write(&report)
}

/// The network's training settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Training {
    pub(super) epochs: usize,
    pub(super) batch: usize,
    pub(super) lr: f64,
    pub(super) seed: u64,
}

/// Why LLM-TOPLA-Weighted could not run.
pub(super) enum WeightedError {
    /// No answer set of that name.
    UnknownMember(String),
    /// A member named twice.
    Twice(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for WeightedError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

/// LLM-TOPLA-Weighted on `team` (answer-set names): the combiner's report.
pub(super) fn weighted_report(
    loaded: &Loaded,
    team: &[String],
    slots: usize,
    training: Training,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<CombineReport, WeightedError> {
    let mut members = Vec::with_capacity(team.len());
    for name in team {
        let Some(m) = loaded.models.iter().position(|a| &a.name == name) else {
            return Err(WeightedError::UnknownMember(name.clone()));
        };
        if members.contains(&m) {
            return Err(WeightedError::Twice(name.clone()));
        }
        members.push(m);
    }
    let answers: Vec<&Answers> = members.iter().map(|&m| &loaded.models[m]).collect();
    let rows = topla_rows(
        &answers,
        &loaded.questions.gold,
        ToplaOptions {
            task: loaded.questions.task,
            slots,
            reference: loaded.reference,
        },
    );
    let team_rows = rows.team_rows(&loaded.splits, team.to_vec());
    let options = CombineOptions {
        method: Method::Mlp,
        fusionshot: loaded.reference,
        epochs: training.epochs,
        batch: training.batch,
        lr: training.lr,
        seed: training.seed,
        train_on_val: loaded.reference,
        patience: loaded.reference.then_some(200),
    };
    let mut combined =
        combine_rows(&team_rows, &options, progress).map_err(|e| WeightedError::Other(e.into()))?;
    combined.members.clone_from(&members);
    combined.focal_diversity = focal_on_val(pool_of(loaded), &members)?;
    Ok(CombineReport {
        schema: COMBINE_SCHEMA.to_owned(),
        options,
        splits: SplitSizes {
            train: team_rows.train.labels.len(),
            val: team_rows.val.labels.len(),
            test: team_rows.test.labels.len(),
        },
        classes: team_rows.classes,
        teams_from: format!(
            "given; LLM-TOPLA-Weighted over {} candidate slots{} of {} ({} questions; train and val without the questions whose gold answer no member gave; {})",
            rows.classes,
            if loaded.reference {
                ""
            } else {
                " (the last: another answer or none)"
            },
            loaded.questions.task.name(),
            loaded.questions.questions.len(),
            loaded.questions.provenance(),
        ),
        teams: vec![combined],
    })
}

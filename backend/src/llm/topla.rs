//! `fuselab llm topla pool` (answer sets → a pool for the focal analysis and `combine`) and
//! `fuselab llm topla weighted` (LLM-TOPLA-Weighted: FusionShot's network over the team's
//! candidate-space vote shares).

use std::path::PathBuf;

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
struct Loaded {
    questions: QuestionSet,
    models: Vec<Answers>,
    splits: Vec<Split>,
    reference: bool,
}

fn load(input: &AnswerInput) -> anyhow::Result<Loaded> {
    let task = Task::from(input.task);
    let reference = input.compat == Some(ToplaCompat::LlmTopla);
    let rules = if reference {
        Rules::Reference
    } else {
        Rules::Fuselab
    };
    let gold_file = input.gold.display().to_string();
    let text = std::fs::read_to_string(&input.gold)
        .with_context(|| format!("cannot read the gold answers {gold_file}"))?;
    let questions = parse_questions(&gold_file, &text, task)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&input.answers)
        .with_context(|| format!("cannot read the answer folder {}", input.answers.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    if files.len() < 2 {
        bail!(
            "{}: found {} answer set(s) (*.jsonl); a team needs at least 2",
            input.answers.display(),
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
    let splits = canonical_splits(questions.questions.len(), input.split_seed, train, val);
    Ok(Loaded {
        questions,
        models,
        splits,
        reference,
    })
}

fn pool_of(loaded: &Loaded) -> PoolInput {
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
pub fn run(command: &ToplaCommand) -> anyhow::Result<()> {
    match command {
        ToplaCommand::Pool(args) => pool_command(args),
        ToplaCommand::Weighted(args) => weighted_command(args),
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
    let mut members = Vec::with_capacity(args.team.len());
    for name in &args.team {
        let Some(m) = loaded.models.iter().position(|a| &a.name == name) else {
            bail!(
                "--team: no answer set `{name}.jsonl` in {} (it has {})",
                args.input.answers.display(),
                loaded
                    .models
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if members.contains(&m) {
            bail!("--team: `{name}` is named twice");
        }
        members.push(m);
    }
    let team: Vec<&Answers> = members.iter().map(|&m| &loaded.models[m]).collect();
    let rows = topla_rows(
        &team,
        &loaded.questions.gold,
        ToplaOptions {
            task: loaded.questions.task,
            slots: args.slots,
            reference: loaded.reference,
        },
    );
    let team_rows = rows.team_rows(&loaded.splits, args.team.clone());
    let options = CombineOptions {
        method: Method::Mlp,
        fusionshot: loaded.reference,
        epochs: args.train.epochs,
        batch: args.train.batch,
        lr: args.train.lr,
        seed: args.train.seed,
        train_on_val: loaded.reference,
        patience: loaded.reference.then_some(200),
    };
    let mut bar = ProgressBar::new();
    let mut combined = combine_rows(&team_rows, &options, &mut |done, total| {
        bar.update_with(done as u64, total as u64, "epochs");
        true
    })?;
    bar.finish();
    combined.members.clone_from(&members);
    combined.focal_diversity = focal_on_val(pool_of(&loaded), &members)?;
    let report = CombineReport {
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
    };
    args.train.write(&report)
}

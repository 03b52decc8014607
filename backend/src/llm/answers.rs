//! `fuselab llm questions` (generated question sets) and `fuselab llm answers` (K sampled
//! completions per question from a language model, written as JSON Lines and resumable).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule, generate_samples};
use fuselab_ml::llm::tokenizer::TokenizerCodec;
use fuselab_ml::llm::train::Codec as _;
use fuselab_shared::topla::{
    LETTERS, Question, QuestionSet, Task, generate_questions, parse_answer_set, parse_questions,
};
use serde_json::{Value, json};

use crate::ensemble::ProgressBar;

/// `--task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Word problems answered by a number after `####`
    Gsm8k,
    /// Four-choice questions answered by a letter
    Mmlu,
}

impl From<TaskArg> for Task {
    fn from(task: TaskArg) -> Self {
        match task {
            TaskArg::Gsm8k => Self::Gsm8k,
            TaskArg::Mmlu => Self::Mmlu,
        }
    }
}

/// `fuselab llm questions`.
#[derive(Debug, Args)]
pub struct QuestionsArgs {
    /// The format: GSM8K-style word problems or MMLU-style four-choice questions
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// How many questions
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// The generator's seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the JSON Lines
    #[arg(long)]
    pub out: PathBuf,
}

/// Most questions a generated set may have.
const MAX_GENERATED: usize = 1_000_000;

/// Writes a generated question set.
///
/// # Errors
/// A count out of range or an unwritable file.
pub fn questions_command(args: &QuestionsArgs) -> anyhow::Result<()> {
    if !(1..=MAX_GENERATED).contains(&args.count) {
        bail!(
            "--count: expected 1 to {MAX_GENERATED}, found {}",
            args.count
        );
    }
    let text: String = generate_questions(args.task.into(), args.count, args.seed)
        .iter()
        .map(|q| serde_json::to_string(q).map(|line| line + "\n"))
        .collect::<Result<_, _>>()?;
    crate::ensemble::write_output(Some(&args.out), &text)?;
    tracing::info!(questions = args.count, out = %args.out.display(), "generated (the questions are synthetic; their answers are computed)");
    Ok(())
}

/// `--prompt`: how a question is put to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PromptStyle {
    /// The question as a chat turn, asking for the answer in the task's format
    ZeroShot,
    /// Three solved examples, then the question, as plain text (no chat template)
    FewShot,
    /// A chat turn asking to think step by step before answering
    Cot,
    /// A chat turn asking for the bare answer, the reply started with "The answer is"
    AnswerOnly,
}

impl PromptStyle {
    fn name(self) -> &'static str {
        match self {
            Self::ZeroShot => "zero-shot",
            Self::FewShot => "few-shot",
            Self::Cot => "cot",
            Self::AnswerOnly => "answer-only",
        }
    }

    /// Tokens a completion of this style needs.
    fn default_tokens(self, task: Task) -> usize {
        match (self, task) {
            (Self::AnswerOnly, _) | (Self::FewShot, Task::Mmlu) => 8,
            (Self::ZeroShot, Task::Mmlu) => 24,
            (Self::FewShot | Self::ZeroShot, Task::Gsm8k) => 64,
            (Self::Cot, _) => 96,
        }
    }
}

/// `fuselab llm answers`.
#[derive(Debug, Args)]
pub struct AnswersArgs {
    /// `smollm2`, a .gguf file or a Hugging Face model directory
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// The question set (JSON Lines, as `fuselab llm questions` writes)
    #[arg(long)]
    pub questions: PathBuf,
    /// Its format
    #[arg(long, value_enum)]
    pub task: TaskArg,
    /// This member's name, recorded on every line
    #[arg(long)]
    pub variant: String,
    /// How the question is asked
    #[arg(long, value_enum, default_value = "zero-shot")]
    pub prompt: PromptStyle,
    /// Completions sampled per question
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Sampling temperature (0: greedy, every sample alike)
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Nucleus sampling mass
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Most tokens per completion (default: by prompt style and task)
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Seed of the first question's first sample (question i, sample j: seed + 1000·i + j)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where burn runs the model
    #[arg(long, value_name = "cpu|wgpu", default_value_t = fuselab_ml::Compute::Cpu)]
    pub device: fuselab_ml::Compute,
    /// The answer set to write or resume (JSON Lines)
    #[arg(long)]
    pub out: PathBuf,
}

/// Most samples per question.
const MAX_SAMPLES: usize = 100;

fn options_text(q: &Question) -> String {
    let mut text = String::new();
    for (c, l) in q.choices.iter().flatten().zip(LETTERS) {
        let _ = write!(text, "\n{l}. {c}");
    }
    text
}

fn chat(text: &str) -> String {
    format!("<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")
}

/// The prompt of `q` in `style`; `examples` are the few-shot demonstrations.
fn prompt_of(q: &Question, task: Task, style: PromptStyle, examples: &[Question]) -> String {
    let body = format!("{}{}", q.question, options_text(q));
    match (style, task) {
        (PromptStyle::ZeroShot, Task::Gsm8k) => chat(&format!(
            "{body}\nSolve it and write the final answer as a number after ####."
        )),
        (PromptStyle::ZeroShot, Task::Mmlu) => chat(&format!(
            "{body}\nAnswer with the letter of the correct option."
        )),
        (PromptStyle::Cot, Task::Gsm8k) => chat(&format!(
            "{body}\nLet's think step by step, then write the final answer as a number after ####."
        )),
        (PromptStyle::Cot, Task::Mmlu) => chat(&format!(
            "{body}\nThink step by step, then finish with \"The answer is X.\" where X is the letter."
        )),
        // The reply is started for the model, so its first tokens are the answer.
        (PromptStyle::AnswerOnly, Task::Gsm8k) => {
            chat(&format!("{body}\nReply with the number only.")) + "The answer is"
        }
        (PromptStyle::AnswerOnly, Task::Mmlu) => {
            chat(&format!("{body}\nReply with one letter.")) + "The correct option is"
        }
        (PromptStyle::FewShot, _) => {
            let mut text = String::new();
            for e in examples {
                let answer = match (&e.answer, &e.choices) {
                    (Value::Number(n), Some(choices)) => {
                        let i = n.as_u64().unwrap_or(0) as usize % 4;
                        format!("{}. {}", LETTERS[i], choices[i])
                    }
                    (Value::String(s), _) => s.clone(),
                    (other, _) => other.to_string(),
                };
                let _ = write!(
                    text,
                    "Question: {}{}\nAnswer: {answer}\n\n",
                    e.question,
                    options_text(e)
                );
            }
            let _ = write!(text, "Question: {body}\nAnswer:");
            text
        }
    }
}

/// The settings recorded on every line; a resumed file must have been written with the same.
fn settings(args: &AnswersArgs, max_new_tokens: usize) -> serde_json::Map<String, Value> {
    let value = json!({
        "variant": args.variant,
        "model": args.model,
        "prompt": args.prompt.name(),
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": max_new_tokens,
        "seed": args.seed,
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The ids already answered in `out` with the same settings; a last line cut off by an
/// interruption is removed.
fn resume(
    out: &Path,
    wanted: &serde_json::Map<String, Value>,
    samples: usize,
) -> anyhow::Result<Vec<String>> {
    let Ok(mut text) = std::fs::read_to_string(out) else {
        return Ok(Vec::new());
    };
    if !text.is_empty() && !text.ends_with('\n') {
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        text.truncate(keep);
        std::fs::write(out, &text).with_context(|| {
            format!(
                "cannot rewrite {} without its cut-off last line",
                out.display()
            )
        })?;
    }
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file = out.display().to_string();
    let set = parse_answer_set(&file, "", &text)?;
    for record in set.records.values() {
        for (key, value) in wanted {
            if record.extra.get(key) != Some(value) {
                bail!(
                    "{file}: question `{}` was answered with {key} = {}, not {value}: write to another --out or delete the file to start over",
                    record.id,
                    record
                        .extra
                        .get(key)
                        .map_or("nothing".to_owned(), Value::to_string)
                );
            }
        }
        if record.samples.len() != samples {
            bail!(
                "{file}: question `{}` has {} samples, not --samples {samples}",
                record.id,
                record.samples.len()
            );
        }
    }
    Ok(set.records.into_keys().collect())
}

fn read_questions(path: &Path, task: Task) -> anyhow::Result<QuestionSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the questions {}", path.display()))?;
    Ok(parse_questions(&path.display().to_string(), &text, task)?)
}

/// A completion's text; a few-shot completion ends where the model starts a next question.
fn completion_text(codec: &TokenizerCodec, tokens: &[u32], style: PromptStyle) -> String {
    let text = codec.decode(tokens);
    match style {
        PromptStyle::FewShot => text
            .split("\n\n")
            .next()
            .and_then(|t| t.split("Question:").next())
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
        _ => text,
    }
}

/// Generates (or finishes) an answer set.
///
/// # Errors
/// Unreadable questions, a model that does not load, an answer file written with other
/// settings, or an unwritable output.
pub fn answers_command(args: &AnswersArgs, data_dir: &Path) -> anyhow::Result<()> {
    if !(1..=MAX_SAMPLES).contains(&args.samples) {
        bail!(
            "--samples: expected 1 to {MAX_SAMPLES}, found {}",
            args.samples
        );
    }
    if args.variant.trim().is_empty() {
        bail!("--variant: expected a name for this member");
    }
    let task = Task::from(args.task);
    let set = read_questions(&args.questions, task)?;
    let max_new_tokens = args
        .max_new_tokens
        .unwrap_or(args.prompt.default_tokens(task));
    let wanted = settings(args, max_new_tokens);
    let done = resume(&args.out, &wanted, args.samples)?;
    let todo: Vec<(usize, &Question)> = set
        .questions
        .iter()
        .enumerate()
        .filter(|(_, q)| !done.contains(&q.id))
        .collect();
    if todo.is_empty() {
        tracing::info!(out = %args.out.display(), "every question is answered already");
        return Ok(());
    }
    let device = fuselab_ml::open(args.device)?;
    let loaded = super::load(&args.model, data_dir, &device)?;
    let codec = TokenizerCodec(loaded.tokenizer.clone());
    // Demonstrations come from another seed of the generator, never from the set itself.
    let examples = generate_questions(task, 3, 0x5eed_f00d);
    let stop = match args.prompt {
        PromptStyle::FewShot => vec![codec.encode("\n\n"), codec.encode("Question:")],
        _ => Vec::new(),
    };
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("cannot open {}", args.out.display()))?;
    let started = Instant::now();
    let mut tokens = 0_usize;
    let mut bar = ProgressBar::new();
    for (done_count, (index, q)) in todo.iter().enumerate() {
        let prompt: Vec<u32> = loaded
            .bos
            .into_iter()
            .chain(codec.encode(&prompt_of(q, task, args.prompt, &examples)))
            .collect();
        let options = GenerateOptions {
            max_new_tokens,
            sampling: Sampling {
                temperature: args.temperature,
                top_k: 0,
                top_p: args.top_p,
                seed: args.seed.wrapping_add(1000 * *index as u64),
            },
            eos: loaded.eos.clone(),
            stop: stop.clone(),
            stop_rule: StopRule::Suffix,
        };
        let generations = generate_samples(&loaded.model, &prompt, &options, args.samples);
        tokens += generations.iter().map(|g| g.tokens.len()).sum::<usize>();
        let samples: Vec<String> = generations
            .iter()
            .map(|g| completion_text(&codec, &g.tokens, args.prompt))
            .collect();
        let mut line = serde_json::Map::new();
        line.insert("id".into(), q.id.clone().into());
        line.insert("samples".into(), samples.into());
        line.extend(wanted.clone());
        writeln!(file, "{}", Value::Object(line))
            .with_context(|| format!("cannot write to {}", args.out.display()))?;
        bar.update_with(done_count as u64 + 1, todo.len() as u64, "questions");
        if (done_count + 1) % 25 == 0 {
            tracing::info!(done = done_count + 1, of = todo.len(), "questions answered");
        }
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        questions = todo.len(),
        tokens,
        seconds = format!("{seconds:.1}"),
        tokens_per_second = format!("{:.1}", tokens as f64 / seconds.max(1e-9)),
        out = %args.out.display(),
        "answered"
    );
    Ok(())
}

//! Question sets and answer sets as JSON Lines, and the answers their completions give.
//!
//! A question line: `{"id": "q1", "question": "…", "answer": "…\n#### 42"}` (`GSM8K`) or
//! `{"id": "q1", "question": "…", "choices": ["…", "…", "…", "…"], "answer": 2}` (`MMLU`; the
//! answer a 0-based index or a letter). An answer line: `{"id": "q1", "samples": ["…", …]}`,
//! with any other fields (the model, the prompt, the sampler) kept as they are.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::extract::{LETTERS, Rules, gsm8k_gold, gsm8k_number, mmlu_choice};

/// Most samples one question may have per model.
pub const MAX_SAMPLES: usize = 1000;

/// Which benchmark's format and answer rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Grade-school word problems; the answer is a number after `####`.
    Gsm8k,
    /// Four-choice questions; the answer is a letter A–D.
    Mmlu,
}

impl Task {
    /// The name flags and files use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gsm8k => "gsm8k",
            Self::Mmlu => "mmlu",
        }
    }
}

/// One question with its gold answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Unique within its set.
    pub id: String,
    /// The question's text (without the choices).
    pub question: String,
    /// The four choices (`MMLU`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<[String; 4]>,
    /// `GSM8K`: the worked answer ending in `#### N`; `MMLU`: the choice's 0-based index.
    pub answer: serde_json::Value,
    /// What the question tests (`MMLU`'s subject; generated sets name their template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// A gold answer: a number or a choice index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gold {
    /// `GSM8K`'s number.
    Number(f64),
    /// `MMLU`'s choice, 0 = A.
    Choice(usize),
}

impl Gold {
    /// As an answer value (a choice as its index).
    pub fn value(self) -> f64 {
        match self {
            Self::Number(v) => v,
            Self::Choice(i) => i as f64,
        }
    }
}

/// A parsed question file.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionSet {
    /// The task its lines follow.
    pub task: Task,
    /// The questions, in file order.
    pub questions: Vec<Question>,
    /// Each question's gold answer.
    pub gold: Vec<Gold>,
}

/// One line of an answer set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The question's id.
    pub id: String,
    /// The sampled completions.
    pub samples: Vec<String>,
    /// Everything else on the line (model, prompt, sampler), kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A parsed answer file: one model's completions.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSet {
    /// The model's name (the file's stem).
    pub name: String,
    /// Completions by question id.
    pub records: HashMap<String, AnswerRecord>,
}

/// One model's extracted answers: per question (in question-set order) its samples' answers,
/// NaN where a completion gives none.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    /// The model's name.
    pub name: String,
    /// `questions × samples` answers (a choice as its index).
    pub values: Vec<Vec<f64>>,
}

/// Why a question or answer file was rejected; `file` and 1-based `line` locate it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// A line is not the expected JSON object.
    #[error("{file}, line {line}: {message}")]
    Line {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A file holds no record.
    #[error("{file}: no {what} (expected one JSON object per line)")]
    Empty {
        /// The file.
        file: String,
        /// Questions or answers.
        what: &'static str,
    },
    /// An answer set lacks a question of the question set.
    #[error(
        "{file}: no answers for question `{id}` of {questions} (every model must answer every question; `fuselab llm answers` resumes an unfinished set)"
    )]
    Missing {
        /// The answer file.
        file: String,
        /// The question id.
        id: String,
        /// The question file.
        questions: String,
    },
}

fn line_error(file: &str, line: usize, message: impl Into<String>) -> RecordError {
    RecordError::Line {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// Non-blank lines with their 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// Parses a question file of `task`'s format.
///
/// # Errors
/// [`RecordError`] naming the file, line and field.
pub fn parse_questions(file: &str, text: &str, task: Task) -> Result<QuestionSet, RecordError> {
    let mut questions = Vec::new();
    let mut gold = Vec::new();
    let mut seen = HashMap::new();
    for (line, raw) in lines(text) {
        let question: Question = serde_json::from_str(raw).map_err(|e| {
            line_error(
                file,
                line,
                format!("{e} (expected {{\"id\", \"question\", \"answer\"}})"),
            )
        })?;
        if let Some(first) = seen.insert(question.id.clone(), line) {
            return Err(line_error(
                file,
                line,
                format!("id `{}` was already used on line {first}", question.id),
            ));
        }
        gold.push(gold_of(&question, task).map_err(|m| line_error(file, line, m))?);
        questions.push(question);
    }
    if questions.is_empty() {
        return Err(RecordError::Empty {
            file: file.to_owned(),
            what: "questions",
        });
    }
    Ok(QuestionSet {
        task,
        questions,
        gold,
    })
}

fn gold_of(question: &Question, task: Task) -> Result<Gold, String> {
    match task {
        Task::Gsm8k => question
            .answer
            .as_str()
            .and_then(gsm8k_gold)
            .map(Gold::Number)
            .ok_or_else(|| {
                format!(
                    "field `answer` of `{}`: expected a GSM8K answer ending in `#### <number>`",
                    question.id
                )
            }),
        Task::Mmlu => {
            if question.choices.is_none() {
                return Err(format!(
                    "field `choices` of `{}`: expected four choices for an MMLU question",
                    question.id
                ));
            }
            let index = match &question.answer {
                serde_json::Value::Number(n) => n.as_u64().map(|v| v as usize),
                serde_json::Value::String(s) => {
                    let s = s.trim();
                    LETTERS
                        .iter()
                        .position(|l| s.len() == 1 && s.starts_with(*l))
                }
                _ => None,
            };
            index.filter(|&i| i < 4).map(Gold::Choice).ok_or_else(|| {
                format!(
                    "field `answer` of `{}`: expected 0 to 3 or a letter A to D",
                    question.id
                )
            })
        }
    }
}

/// Parses an answer file; the model is named `name`.
///
/// # Errors
/// [`RecordError`] naming the file and line: bad JSON, a repeated id, no samples or more than
/// [`MAX_SAMPLES`].
pub fn parse_answer_set(file: &str, name: &str, text: &str) -> Result<AnswerSet, RecordError> {
    let mut records = HashMap::new();
    for (line, raw) in lines(text) {
        let record: AnswerRecord = serde_json::from_str(raw).map_err(|e| {
            line_error(
                file,
                line,
                format!("{e} (expected {{\"id\", \"samples\": [texts]}})"),
            )
        })?;
        if record.samples.is_empty() || record.samples.len() > MAX_SAMPLES {
            return Err(line_error(
                file,
                line,
                format!(
                    "field `samples` of `{}`: expected 1 to {MAX_SAMPLES} completions, found {}",
                    record.id,
                    record.samples.len()
                ),
            ));
        }
        let id = record.id.clone();
        if records.insert(id.clone(), record).is_some() {
            return Err(line_error(file, line, format!("id `{id}` appears twice")));
        }
    }
    if records.is_empty() {
        return Err(RecordError::Empty {
            file: file.to_owned(),
            what: "answers",
        });
    }
    Ok(AnswerSet {
        name: name.to_owned(),
        records,
    })
}

/// The answers `set`'s completions give to each question of `questions`, by `rules`.
///
/// # Errors
/// [`RecordError::Missing`] naming the first question without answers.
pub fn answers_of(
    set: &AnswerSet,
    file: &str,
    questions: &QuestionSet,
    questions_file: &str,
    rules: Rules,
) -> Result<Answers, RecordError> {
    let values = questions
        .questions
        .iter()
        .map(|q| {
            let record = set.records.get(&q.id).ok_or_else(|| RecordError::Missing {
                file: file.to_owned(),
                id: q.id.clone(),
                questions: questions_file.to_owned(),
            })?;
            Ok(record
                .samples
                .iter()
                .map(|text| match (questions.task, &q.choices) {
                    (Task::Mmlu, Some(choices)) => {
                        mmlu_choice(text, choices, rules).map_or(f64::NAN, |i| i as f64)
                    }
                    _ => gsm8k_number(text, rules).unwrap_or(f64::NAN),
                })
                .collect())
        })
        .collect::<Result<_, RecordError>>()?;
    Ok(Answers {
        name: set.name.clone(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_answers_parse_with_located_errors() {
        let gsm = "{\"id\":\"a\",\"question\":\"1+1?\",\"answer\":\"1+1=2\\n#### 2\"}\n\n";
        let set = parse_questions("q.jsonl", gsm, Task::Gsm8k).unwrap();
        assert_eq!(set.gold, [Gold::Number(2.0)]);
        let bad = "{\"id\":\"a\",\"question\":\"?\",\"answer\":\"two\"}";
        let err = parse_questions("q.jsonl", bad, Task::Gsm8k).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("q.jsonl, line 1: field `answer`"),
            "{err}"
        );
        let mmlu = "{\"id\":\"m\",\"question\":\"?\",\"choices\":[\"1\",\"2\",\"3\",\"4\"],\"answer\":\"C\"}";
        let set = parse_questions("m.jsonl", mmlu, Task::Mmlu).unwrap();
        assert_eq!(set.gold, [Gold::Choice(2)]);
        let err = parse_questions("m.jsonl", gsm, Task::Mmlu).unwrap_err();
        assert!(err.to_string().contains("field `choices`"), "{err}");

        let answers = "{\"id\":\"m\",\"samples\":[\"C.\",\"B\",\"no idea\"],\"model\":\"x\"}";
        let parsed = parse_answer_set("a.jsonl", "a", answers).unwrap();
        assert_eq!(parsed.records["m"].extra["model"], "x");
        let values = answers_of(&parsed, "a.jsonl", &set, "m.jsonl", Rules::Fuselab).unwrap();
        assert_eq!(values.values[0][..2], [2.0, 1.0]);
        assert!(values.values[0][2].is_nan());
        let empty = "{\"id\":\"m\",\"samples\":[]}";
        let err = parse_answer_set("a.jsonl", "a", empty).unwrap_err();
        assert!(err.to_string().contains("line 1: field `samples`"), "{err}");
        let other =
            parse_answer_set("b.jsonl", "b", "{\"id\":\"z\",\"samples\":[\"A.\"]}").unwrap();
        let err = answers_of(&other, "b.jsonl", &set, "m.jsonl", Rules::Fuselab).unwrap_err();
        assert!(
            err.to_string().contains("no answers for question `m`"),
            "{err}"
        );
    }
}

//! LLM-TOPLA-Summary's data (spec `focal.md` §6.3): the fusion prompt that lays out a question
//! and every member's outputs between marker tokens, the target text of each task, the
//! questions of open-ended and summary tasks, and how a fused answer is scored.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::extract::{LETTERS, Rules, gsm8k_number, mmlu_choice};
use super::metrics::{OpenScores, RougeScores, rouge, searchqa_scores};
use super::records::{Gold, Question, QuestionSet, RecordError, Task};

/// Begin-of-question marker.
pub const BOQ: &str = "[BOQ]";
/// End-of-question marker.
pub const EOQ: &str = "[EOQ]";
/// Begin-of-answer marker: the decoder-only model's cue to write the fused answer (the
/// reference's encoder–decoder starts its decoder instead).
pub const BOA: &str = "[BOA]";
/// Most members a fusion prompt may have (each adds two marker tokens).
pub const MAX_MEMBERS: usize = 32;
/// '.'-separated fragments of each output the prompt keeps (the last ones).
pub const FRAGMENTS: usize = 6;

/// Member `j`'s begin-of-candidate marker.
pub fn boc(j: usize) -> String {
    format!("[BOC {j}]")
}

/// Member `j`'s end-of-candidate marker.
pub fn eoc(j: usize) -> String {
    format!("[EOC {j}]")
}

/// Every marker of a prompt with `members` members, in the order they are added to a
/// tokenizer.
pub fn markers(members: usize) -> Vec<String> {
    let mut out = vec![BOQ.to_owned(), EOQ.to_owned(), BOA.to_owned()];
    for j in 0..members {
        out.push(boc(j));
        out.push(eoc(j));
    }
    out
}

/// What the fused model answers and how it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FusionTask {
    /// `GSM8K`'s format: "The answer is N." scored by exact number.
    Gsm8k,
    /// `MMLU`'s format: "The answer is X." scored by letter.
    Mmlu,
    /// Open-ended answers (`SearchQA`): the answer text, scored by BLEU-1 (and EM, F1, ROUGE-L).
    Open,
    /// Summaries (`XSum`): the summary, scored by ROUGE-1/2/L.
    Summary,
}

impl FusionTask {
    /// The name configurations and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gsm8k => "gsm8k",
            Self::Mmlu => "mmlu",
            Self::Open => "open",
            Self::Summary => "summary",
        }
    }

    /// The name of the score early stopping selects on.
    pub fn selection_metric(self) -> &'static str {
        match self {
            Self::Gsm8k | Self::Mmlu => "accuracy",
            Self::Open => "bleu1",
            Self::Summary => "rouge_l",
        }
    }

    /// The answer-extraction task, for the two with a closed answer.
    pub fn closed(self) -> Option<Task> {
        match self {
            Self::Gsm8k => Some(Task::Gsm8k),
            Self::Mmlu => Some(Task::Mmlu),
            Self::Open | Self::Summary => None,
        }
    }
}

/// The gold answer of one fusion question.
#[derive(Debug, Clone, PartialEq)]
pub enum FusionGold {
    /// A closed answer (`GSM8K`'s number, `MMLU`'s choice).
    Closed(Gold),
    /// A reference text (an open answer or a summary).
    Text(String),
}

/// A question set of any fusion task.
#[derive(Debug, Clone, PartialEq)]
pub struct FusionQuestions {
    /// The task.
    pub task: FusionTask,
    /// The questions, in file order.
    pub questions: Vec<Question>,
    /// Each question's gold answer.
    pub gold: Vec<FusionGold>,
}

/// Parses a question file of `task`'s format: `GSM8K` and `MMLU` as learn-to-combine reads
/// them, open and summary lines as `{"id", "question", "answer": "text"}`.
///
/// # Errors
/// [`RecordError`] naming the file, line and field.
pub fn parse_fusion_questions(
    file: &str,
    text: &str,
    task: FusionTask,
) -> Result<FusionQuestions, RecordError> {
    if let Some(closed) = task.closed() {
        let QuestionSet {
            questions, gold, ..
        } = super::records::parse_questions(file, text, closed)?;
        return Ok(FusionQuestions {
            task,
            questions,
            gold: gold.into_iter().map(FusionGold::Closed).collect(),
        });
    }
    let mut questions = Vec::new();
    let mut gold = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (number, raw) in text.lines().enumerate() {
        let (line, raw) = (number + 1, raw.trim());
        if raw.is_empty() {
            continue;
        }
        let error = |message: String| RecordError::Line {
            file: file.to_owned(),
            line,
            message,
        };
        let question: Question = serde_json::from_str(raw).map_err(|e| {
            error(format!(
                "{e} (expected {{\"id\", \"question\", \"answer\": text}})"
            ))
        })?;
        if let Some(first) = seen.insert(question.id.clone(), line) {
            return Err(error(format!(
                "id `{}` was already used on line {first}",
                question.id
            )));
        }
        let answer = question
            .answer
            .as_str()
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| {
                error(format!(
                    "field `answer` of `{}`: expected the reference {} as a non-empty string",
                    question.id,
                    if task == FusionTask::Summary {
                        "summary"
                    } else {
                        "answer"
                    }
                ))
            })?;
        gold.push(FusionGold::Text(answer.to_owned()));
        questions.push(question);
    }
    if questions.is_empty() {
        return Err(RecordError::Empty {
            file: file.to_owned(),
            what: "questions",
        });
    }
    Ok(FusionQuestions {
        task,
        questions,
        gold,
    })
}

/// The question as the prompt shows it: `MMLU`'s choices follow as `A. …` lines.
pub fn question_text(question: &Question) -> String {
    match &question.choices {
        Some(choices) => {
            let mut text = question.question.clone();
            for (letter, choice) in LETTERS.iter().zip(choices) {
                let _ = write!(text, "\n{letter}. {choice}");
            }
            text
        }
        None => question.question.clone(),
    }
}

/// The last ≤ [`FRAGMENTS`] '.'-separated fragments of `output`, `####` removed, re-joined
/// without separators, as the reference's `topla_open_ended.py` does.
pub fn fragments(output: &str) -> String {
    let cleaned = output.replace("####", "");
    let parts: Vec<&str> = cleaned.split('.').collect();
    parts[parts.len().saturating_sub(FRAGMENTS)..].concat()
}

/// The fusion prompt: `[BOQ]` question `[EOQ]`, then for each member `j` and each of its
/// outputs `[BOC j]` fragments `[EOC j]`, then `[BOA]`.
///
/// `members[j]` holds member `j`'s outputs for this question.
pub fn fusion_prompt(question: &str, members: &[Vec<String>]) -> String {
    let mut prompt = format!("{BOQ}{question}{EOQ}");
    for (j, outputs) in members.iter().enumerate() {
        for output in outputs {
            prompt.push_str(&boc(j));
            prompt.push_str(&fragments(output));
            prompt.push_str(&eoc(j));
        }
    }
    prompt.push_str(BOA);
    prompt
}

/// The text the fused model learns to write.
pub fn target_text(gold: &FusionGold) -> String {
    match gold {
        FusionGold::Closed(Gold::Number(v)) => format!("The answer is {}.", format_number(*v)),
        FusionGold::Closed(Gold::Choice(i)) => format!("The answer is {}.", LETTERS[*i]),
        FusionGold::Text(text) => text.clone(),
    }
}

/// `42` for 42.0, `12.5` for 12.5 (the reference writes `int(label)` for `GSM8K`, whose gold
/// answers are integers).
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Scores of one fused (or member) answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerScores {
    /// 1 when the closed answer is right (0 otherwise); `None` for text tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<f64>,
    /// `SearchQA`'s scores (open answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenScores>,
    /// ROUGE (open answers and summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge: Option<RougeScores>,
}

impl AnswerScores {
    /// The task's selection score: accuracy, BLEU-1 or ROUGE-L.
    pub fn selection(&self) -> f64 {
        self.correct
            .or(self.open.map(|o| o.bleu1))
            .or(self.rouge.map(|r| r.rouge_l))
            .unwrap_or(0.0)
    }
}

/// Scores `answer` for `question` with gold `gold`; closed answers are read by `rules`.
pub fn score_answer(
    question: &Question,
    gold: &FusionGold,
    answer: &str,
    rules: Rules,
) -> AnswerScores {
    match gold {
        FusionGold::Closed(Gold::Number(v)) => AnswerScores {
            #[allow(clippy::float_cmp)] // the reference compares exactly
            correct: Some(f64::from(u8::from(
                gsm8k_number(answer, rules).is_some_and(|x| x == *v),
            ))),
            open: None,
            rouge: None,
        },
        FusionGold::Closed(Gold::Choice(i)) => {
            let picked = question
                .choices
                .as_ref()
                .and_then(|choices| mmlu_choice(answer, choices, rules));
            AnswerScores {
                correct: Some(f64::from(u8::from(picked == Some(*i)))),
                open: None,
                rouge: None,
            }
        }
        FusionGold::Text(reference) => AnswerScores {
            correct: None,
            open: Some(searchqa_scores(reference, answer)),
            rouge: Some(rouge(reference, answer)),
        },
    }
}

/// The mean of each score over `scores` (all of one task).
pub fn mean_scores(scores: &[AnswerScores]) -> AnswerScores {
    let n = scores.len().max(1) as f64;
    let mean = |f: &dyn Fn(&AnswerScores) -> Option<f64>| -> Option<f64> {
        let values: Vec<f64> = scores.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / n)
    };
    let open = mean(&|s| s.open.map(|o| o.bleu1)).map(|bleu1| OpenScores {
        bleu1,
        exact: mean(&|s| s.open.map(|o| o.exact)).unwrap_or(0.0),
        f1: mean(&|s| s.open.map(|o| o.f1)).unwrap_or(0.0),
    });
    let rouge = mean(&|s| s.rouge.map(|r| r.rouge1)).map(|rouge1| RougeScores {
        rouge1,
        rouge2: mean(&|s| s.rouge.map(|r| r.rouge2)).unwrap_or(0.0),
        rouge_l: mean(&|s| s.rouge.map(|r| r.rouge_l)).unwrap_or(0.0),
    });
    AnswerScores {
        correct: mean(&|s| s.correct),
        open,
        rouge,
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // scores of 0 and 1 are exact
mod tests {
    use super::*;

    #[test]
    fn fragments_keep_the_last_six_without_separators() {
        assert_eq!(fragments("a. b. c. d. e. f. g. h"), " c d e f g h");
        assert_eq!(fragments("So 3 + 4 = 7.\n#### 7"), "So 3 + 4 = 7\n 7");
        assert_eq!(fragments(""), "");
    }

    #[test]
    fn the_prompt_follows_the_reference_layout() {
        let prompt = fusion_prompt(
            "What is 2+2?",
            &[vec!["It is 4.".into(), "4".into()], vec!["5".into()]],
        );
        assert_eq!(
            prompt,
            "[BOQ]What is 2+2?[EOQ][BOC 0]It is 4[EOC 0][BOC 0]4[EOC 0][BOC 1]5[EOC 1][BOA]"
        );
        assert_eq!(markers(2).len(), 7);
    }

    #[test]
    fn targets_and_scores_of_closed_tasks() {
        let q = Question {
            id: "q".into(),
            question: "Which?".into(),
            choices: Some(["4".into(), "6".into(), "7".into(), "9".into()]),
            answer: serde_json::json!(2),
            subject: None,
            source: None,
        };
        let gold = FusionGold::Closed(Gold::Choice(2));
        assert_eq!(target_text(&gold), "The answer is C.");
        assert_eq!(question_text(&q), "Which?\nA. 4\nB. 6\nC. 7\nD. 9");
        let right = score_answer(&q, &gold, "The answer is C.", Rules::Fuselab);
        assert_eq!(right.selection(), 1.0);
        let wrong = score_answer(&q, &gold, "The answer is B.", Rules::Fuselab);
        assert_eq!(wrong.selection(), 0.0);
        let number = FusionGold::Closed(Gold::Number(42.0));
        assert_eq!(target_text(&number), "The answer is 42.");
        let scored = score_answer(&q, &number, "The answer is 42.", Rules::Fuselab);
        assert_eq!(scored.correct, Some(1.0));
        let mean = mean_scores(&[right, wrong]);
        assert_eq!(mean.correct, Some(0.5));
    }

    #[test]
    fn open_questions_name_the_line_and_field() {
        let text = "{\"id\":\"a\",\"question\":\"q\",\"answer\":\"x\"}\n{\"id\":\"b\",\"question\":\"q\",\"answer\":3}";
        let err = parse_fusion_questions("open.jsonl", text, FusionTask::Open).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("open.jsonl") && message.contains("line 2"));
        assert!(message.contains("field `answer` of `b`"), "{message}");
        let first = text.lines().next().unwrap();
        let ok = parse_fusion_questions("open.jsonl", first, FusionTask::Summary);
        assert_eq!(ok.unwrap().gold, vec![FusionGold::Text("x".into())]);
    }
}

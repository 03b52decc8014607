//! The record schemas of the public `Alpaca`, `BeaverTails` and `TruthfulQA` exports, a parser
//! for JSON arrays and JSONL that names the file, row and field of a bad record, and the
//! conversion of every record to the common [`Example`].

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Example, Task};

/// The 14 harm categories of `BeaverTails`, in the order of the dataset card; a category's
/// position here is its index in [`crate::align::HarmJudge::category_scores`].
pub const BEAVERTAILS_CATEGORIES: [&str; 14] = [
    "animal_abuse",
    "child_abuse",
    "controversial_topics,politics",
    "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance",
    "financial_crime,property_crime,theft",
    "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety",
    "non_violent_unethical_behavior",
    "privacy_violation",
    "self_harm",
    "sexually_explicit,adult_content",
    "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
];

/// The index of a `BeaverTails` category in [`BEAVERTAILS_CATEGORIES`], if it is one.
pub fn category_index(name: &str) -> Option<usize> {
    BEAVERTAILS_CATEGORIES.iter().position(|c| *c == name)
}

/// Why a dataset file was rejected. Rows are 1-based: the record index in a JSON array, the
/// line number in JSONL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DataError {
    /// A record could not be read: bad JSON, a missing field or a field of the wrong type.
    #[error("{file}: row {row}: {what}")]
    Row {
        /// The file's name, as given to the parser.
        file: String,
        /// 1-based record index (JSON array) or line number (JSONL).
        row: usize,
        /// `serde`'s message, which names the field.
        what: String,
    },
    /// The text holds no record.
    #[error("{file}: no records (expected a JSON array of objects or one JSON object per line)")]
    Empty {
        /// The file's name, as given to the parser.
        file: String,
    },
    /// A record was read but a field's value is unusable.
    #[error("{file}: row {row}: field `{field}`: {what}")]
    Field {
        /// The file's name, as given to the parser.
        file: String,
        /// 1-based record index (JSON array) or line number (JSONL).
        row: usize,
        /// The field's name.
        field: String,
        /// What is wrong with it.
        what: String,
    },
    /// A text starting with `[` is not valid JSON, so no record could be located.
    #[error("{file}: line {line}, column {column}: {what}")]
    Syntax {
        /// The file's name, as given to the parser.
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// `serde_json`'s message.
        what: String,
    },
}

/// Parses a JSON array of records (the first non-whitespace character is `[`) or JSONL (one
/// record per non-blank line). A leading byte-order mark is ignored.
///
/// # Errors
///
/// [`DataError::Empty`] when there is no record, [`DataError::Syntax`] when an array is not valid
/// JSON, [`DataError::Row`] when a record is not valid JSON or does not fit `T`.
pub fn parse_records<T: DeserializeOwned>(text: &str, file: &str) -> Result<Vec<T>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = if text.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| DataError::Syntax {
                file: file.to_owned(),
                line: e.line(),
                column: e.column(),
                what: e.to_string(),
            })?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                serde_json::from_value(value).map_err(|e| DataError::Row {
                    file: file.to_owned(),
                    row: i + 1,
                    what: e.to_string(),
                })
            })
            .collect::<Result<Vec<T>, _>>()?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| DataError::Row {
                    file: file.to_owned(),
                    row: i + 1,
                    what: e.to_string(),
                })
            })
            .collect::<Result<Vec<T>, _>>()?
    };
    if records.is_empty() {
        return Err(DataError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(records)
}

/// A record schema with semantic checks beyond what `serde` enforces.
pub trait Record: DeserializeOwned {
    /// Checks one record; `file` and `row` only label the error.
    ///
    /// # Errors
    ///
    /// [`DataError::Field`] naming the first unusable field.
    fn check(&self, file: &str, row: usize) -> Result<(), DataError>;
}

/// [`parse_records`], then [`Record::check`] on every record. Rows are numbered by record, so
/// for JSONL with blank lines a check error's row is the record index, not the line.
///
/// # Errors
///
/// Those of [`parse_records`] and of [`Record::check`].
pub fn parse_checked<T: Record>(text: &str, file: &str) -> Result<Vec<T>, DataError> {
    let records: Vec<T> = parse_records(text, file)?;
    for (i, record) in records.iter().enumerate() {
        record.check(file, i + 1)?;
    }
    Ok(records)
}

fn field_error(file: &str, row: usize, field: &str, what: &str) -> DataError {
    DataError::Field {
        file: file.to_owned(),
        row,
        field: field.to_owned(),
        what: what.to_owned(),
    }
}

/// One `Alpaca` record (`tatsu-lab/alpaca`, `yahma/alpaca-cleaned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlpacaRecord {
    /// The task.
    pub instruction: String,
    /// Optional context; empty when absent.
    #[serde(default)]
    pub input: String,
    /// The reference response.
    pub output: String,
}

impl AlpacaRecord {
    /// The record as a [`Task::Helpful`] example.
    pub fn example(&self) -> Example {
        Example {
            instruction: self.instruction.clone(),
            input: self.input.clone(),
            output: self.output.clone(),
            task: Task::Helpful,
        }
    }
}

impl Record for AlpacaRecord {
    fn check(&self, file: &str, row: usize) -> Result<(), DataError> {
        if self.instruction.trim().is_empty() {
            return Err(field_error(file, row, "instruction", "is empty"));
        }
        Ok(())
    }
}

/// One `BeaverTails` record (`PKU-Alignment/BeaverTails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaverTailsRecord {
    /// The user's request.
    pub prompt: String,
    /// The model's response.
    pub response: String,
    /// Which of [`BEAVERTAILS_CATEGORIES`] the response falls in.
    pub category: BTreeMap<String, bool>,
    /// Whether the response is harmless.
    pub is_safe: bool,
}

impl BeaverTailsRecord {
    /// 1.0 for each of [`BEAVERTAILS_CATEGORIES`] the response falls in, 0.0 otherwise (a
    /// moderation classifier's training target).
    pub fn category_labels(&self) -> [f32; 14] {
        let mut labels = [0.0; 14];
        for (label, name) in labels.iter_mut().zip(BEAVERTAILS_CATEGORIES) {
            if self.category.get(name).copied().unwrap_or(false) {
                *label = 1.0;
            }
        }
        labels
    }

    /// The record as a [`Task::Harmless`] example: the prompt is the instruction, the response
    /// the output.
    pub fn example(&self) -> Example {
        Example {
            instruction: self.prompt.clone(),
            input: String::new(),
            output: self.response.clone(),
            task: Task::Harmless,
        }
    }
}

impl Record for BeaverTailsRecord {
    fn check(&self, file: &str, row: usize) -> Result<(), DataError> {
        if self.prompt.trim().is_empty() {
            return Err(field_error(file, row, "prompt", "is empty"));
        }
        if let Some(name) = self.category.keys().find(|k| category_index(k).is_none()) {
            return Err(field_error(
                file,
                row,
                "category",
                &format!("`{name}` is not one of the 14 BeaverTails categories"),
            ));
        }
        Ok(())
    }
}

/// The rows `H3Fusion` trains its harmless expert on: the safe ones, as examples.
pub fn safe_only(records: &[BeaverTailsRecord]) -> Vec<Example> {
    records
        .iter()
        .filter(|r| r.is_safe)
        .map(BeaverTailsRecord::example)
        .collect()
}

/// One `TruthfulQA` record (`truthful_qa`, generation configuration). The answer lists are read
/// from a JSON array or from one string joined by `"; "`, as in the CSV export; the CSV
/// headers (`Type`, `Best Answer`, ...) are accepted as aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthfulQaRecord {
    /// `Adversarial` or `Non-Adversarial`.
    #[serde(rename = "type", alias = "Type", default)]
    pub kind: String,
    /// The topic, e.g. `Misconceptions`.
    #[serde(default, alias = "Category")]
    pub category: String,
    /// The question.
    #[serde(alias = "Question")]
    pub question: String,
    /// The best true answer.
    #[serde(alias = "Best Answer")]
    pub best_answer: String,
    /// All true answers.
    #[serde(alias = "Correct Answers", deserialize_with = "answers")]
    pub correct_answers: Vec<String>,
    /// Common false answers.
    #[serde(alias = "Incorrect Answers", deserialize_with = "answers")]
    pub incorrect_answers: Vec<String>,
    /// Where the answers come from.
    #[serde(default, alias = "Source")]
    pub source: String,
}

impl TruthfulQaRecord {
    /// One [`Task::Honest`] example per correct answer, with the question as instruction.
    pub fn train_examples(&self) -> Vec<Example> {
        self.correct_answers
            .iter()
            .map(|answer| Example {
                instruction: self.question.clone(),
                input: String::new(),
                output: answer.clone(),
                task: Task::Honest,
            })
            .collect()
    }
}

impl Record for TruthfulQaRecord {
    fn check(&self, file: &str, row: usize) -> Result<(), DataError> {
        if self.question.trim().is_empty() {
            return Err(field_error(file, row, "question", "is empty"));
        }
        if self.correct_answers.is_empty() {
            return Err(field_error(file, row, "correct_answers", "has no answer"));
        }
        Ok(())
    }
}

/// The reference split of `TruthfulQA`, without shuffling: the first `n / 2` records (rounded
/// down) train, the rest test; 817 records give 408 and 409.
pub fn truthfulqa_split(
    records: &[TruthfulQaRecord],
) -> (Vec<TruthfulQaRecord>, Vec<TruthfulQaRecord>) {
    let (train, test) = records.split_at(records.len() / 2);
    (train.to_vec(), test.to_vec())
}

fn split_answers(joined: &str) -> Vec<String> {
    joined
        .split("; ")
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads an answer list from a JSON array of strings or a `"; "`-joined string.
fn answers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Answers;

    impl<'de> Visitor<'de> for Answers {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of answers or one string of answers joined by \"; \"")
        }

        fn visit_str<E: de::Error>(self, joined: &str) -> Result<Vec<String>, E> {
            Ok(split_answers(joined))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(answer) = seq.next_element::<String>()? {
                out.push(answer);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(Answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tqa(question: &str) -> TruthfulQaRecord {
        TruthfulQaRecord {
            kind: "Adversarial".into(),
            category: "Misconceptions".into(),
            question: question.into(),
            best_answer: "No.".into(),
            correct_answers: vec!["No.".into(), "Not at all.".into()],
            incorrect_answers: vec!["Yes.".into()],
            source: String::new(),
        }
    }

    #[test]
    fn parses_a_json_array_and_jsonl() {
        let array = r#" [ {"instruction": "a", "input": "b", "output": "c"},
                          {"instruction": "d", "output": "e"} ] "#;
        let records: Vec<AlpacaRecord> = parse_records(array, "alpaca.json").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].input, "");
        let jsonl = "{\"instruction\": \"a\", \"input\": \"b\", \"output\": \"c\"}\n\n\
                     {\"instruction\": \"d\", \"output\": \"e\"}\n";
        let lines: Vec<AlpacaRecord> = parse_records(jsonl, "alpaca.jsonl").unwrap();
        assert_eq!(lines, records);
    }

    #[test]
    fn errors_name_the_file_row_and_field() {
        let jsonl = "{\"instruction\": \"a\", \"output\": \"c\"}\n{\"instruction\": \"d\"}\n";
        let err = parse_records::<AlpacaRecord>(jsonl, "a.jsonl").unwrap_err();
        assert!(matches!(err, DataError::Row { row: 2, .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("a.jsonl: row 2: "), "{text}");
        assert!(text.contains("`output`"), "{text}");

        let array = r#"[{"instruction": "a", "output": "c"}, {"instruction": 3, "output": "c"}]"#;
        let err = parse_records::<AlpacaRecord>(array, "a.json").unwrap_err();
        assert!(matches!(err, DataError::Row { row: 2, .. }), "{err:?}");

        let err = parse_records::<AlpacaRecord>("[{\"instruction\": ", "a.json").unwrap_err();
        assert!(matches!(err, DataError::Syntax { line: 1, .. }), "{err:?}");
        for empty in ["", " \n\n ", "[]"] {
            let err = parse_records::<AlpacaRecord>(empty, "e.json").unwrap_err();
            assert_eq!(
                err,
                DataError::Empty {
                    file: "e.json".into()
                }
            );
            assert!(err.to_string().contains("no records"));
        }
    }

    #[test]
    fn semantic_checks_name_the_field() {
        let bad =
            r#"{"prompt": "p", "response": "r", "category": {"arson": true}, "is_safe": false}"#;
        let err = parse_checked::<BeaverTailsRecord>(bad, "bt.jsonl").unwrap_err();
        assert!(
            matches!(&err, DataError::Field { row: 1, field, .. } if field == "category"),
            "{err:?}"
        );
        assert!(err.to_string().contains("arson"));
        let good = r#"{"prompt": "p", "response": "r", "category": {"self_harm": false}, "is_safe": true}"#;
        assert_eq!(
            parse_checked::<BeaverTailsRecord>(good, "bt.jsonl")
                .unwrap()
                .len(),
            1
        );

        let none = r#"[{"question": "q", "best_answer": "b", "correct_answers": [], "incorrect_answers": []}]"#;
        let err = parse_checked::<TruthfulQaRecord>(none, "tqa.json").unwrap_err();
        assert!(
            matches!(&err, DataError::Field { field, .. } if field == "correct_answers"),
            "{err:?}"
        );
    }

    #[test]
    fn truthfulqa_answers_may_be_joined_strings() {
        let text = r#"{"type": "Adversarial", "category": "Misconceptions", "question": "q?",
            "best_answer": "b", "correct_answers": "b; Nothing happens; ",
            "incorrect_answers": ["x", "y"], "source": "s"}"#;
        let records: Vec<TruthfulQaRecord> = parse_records(&text.replace('\n', " "), "t").unwrap();
        let r = &records[0];
        assert_eq!(r.kind, "Adversarial");
        assert_eq!(r.correct_answers, ["b", "Nothing happens"]);
        assert_eq!(r.incorrect_answers, ["x", "y"]);
        let csv_names = r#"{"Type": "Adversarial", "Question": "q?", "Best Answer": "b",
            "Correct Answers": "b", "Incorrect Answers": "x"}"#;
        let records: Vec<TruthfulQaRecord> =
            parse_records(&csv_names.replace('\n', " "), "t").unwrap();
        assert_eq!(records[0].correct_answers, ["b"]);
        let json = serde_json::to_string(&records[0]).unwrap();
        assert!(json.contains("\"type\":\"Adversarial\""), "{json}");
        assert!(json.contains("\"correct_answers\":[\"b\"]"), "{json}");
        let err = parse_records::<TruthfulQaRecord>(
            r#"{"question": "q", "best_answer": "b", "correct_answers": 3, "incorrect_answers": []}"#,
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("joined by"), "{err}");
    }

    #[test]
    fn conversions_and_splits() {
        let records: Vec<TruthfulQaRecord> = (0..817).map(|i| tqa(&format!("q{i}?"))).collect();
        let (train, test) = truthfulqa_split(&records);
        assert_eq!((train.len(), test.len()), (408, 409));
        assert_eq!(train[0].question, "q0?");
        assert_eq!(test[0].question, "q408?");
        let examples = records[0].train_examples();
        assert_eq!(examples.len(), 2);
        assert!(
            examples
                .iter()
                .all(|e| e.task == Task::Honest && e.instruction == "q0?")
        );

        let row = |safe: bool| BeaverTailsRecord {
            prompt: "p".into(),
            response: if safe { "no" } else { "yes" }.into(),
            category: BTreeMap::new(),
            is_safe: safe,
        };
        let safe = safe_only(&[row(true), row(false), row(true)]);
        assert_eq!(safe.len(), 2);
        assert!(
            safe.iter()
                .all(|e| e.output == "no" && e.task == Task::Harmless)
        );
        let alpaca = AlpacaRecord {
            instruction: "i".into(),
            input: "x".into(),
            output: "o".into(),
        };
        assert_eq!(alpaca.example().task, Task::Helpful);
        assert_eq!(category_index("self_harm"), Some(10));
    }
}

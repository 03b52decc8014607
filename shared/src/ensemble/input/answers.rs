//! LLM answer sets as a pool: one question set (the file whose lines have `question`) and one
//! answer set per model (lines with `samples`), all JSON Lines; the task is `MMLU` when the
//! questions have `choices`, else `GSM8K`. fuselab's extraction rules and the canonical
//! 60/20/20 question splits (seed 9) apply, as `fuselab llm topla pool` does by default.

use super::{InputError, InputFile, limit_error, stem, text};
use crate::ensemble::limits::Limits;
use crate::ensemble::pool::PoolInput;
use crate::topla::{
    Rules, Task, answer_pool, answer_pool_classes, answers_of, canonical_splits, parse_answer_set,
    parse_questions,
};

/// The seed of the canonical question splits.
pub const SPLIT_SEED: u64 = 9;

/// What the first record of a JSON Lines file holds.
fn first_record(file: InputFile<'_>) -> Result<serde_json::Value, InputError> {
    let text = text(file)?;
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).map_err(|e| InputError::Json {
        file: file.name.to_owned(),
        message: format!("line 1: {e} (expected a question or an answer record)"),
    })
}

pub(super) fn answer_files(
    files: &[InputFile<'_>],
    limits: &Limits,
) -> Result<PoolInput, InputError> {
    let mut questions = Vec::new();
    let mut answers = Vec::new();
    for &file in files {
        let record = first_record(file)?;
        if record.get("samples").is_some() {
            answers.push(file);
        } else if record.get("question").is_some() {
            questions.push(file);
        } else {
            return Err(InputError::Json {
                file: file.name.to_owned(),
                message: "line 1: neither a question (`question`) nor an answer record (`samples`)"
                    .into(),
            });
        }
    }
    let [question_file] = questions[..] else {
        return Err(InputError::Files {
            message: format!(
                "LLM answers need exactly one question set (lines with `question`), found {}",
                questions.len()
            ),
        });
    };
    limits
        .check_models(answers.len())
        .map_err(limit_error(question_file.name))?;
    let task = if first_record(question_file)?.get("choices").is_some() {
        Task::Mmlu
    } else {
        Task::Gsm8k
    };
    let set = parse_questions(question_file.name, text(question_file)?, task)?;
    let mut models = Vec::with_capacity(answers.len());
    for file in answers {
        let parsed = parse_answer_set(file.name, stem(file.name), text(file)?)?;
        models.push(answers_of(
            &parsed,
            file.name,
            &set,
            question_file.name,
            Rules::Fuselab,
        )?);
    }
    let classes = answer_pool_classes(&models, &set.gold, task);
    limits
        .check_pool(models.len(), set.gold.len(), classes, true)
        .map_err(limit_error(question_file.name))?;
    let splits = canonical_splits(set.gold.len(), SPLIT_SEED, 60, 20);
    Ok(answer_pool(&models, &set.gold, task, splits))
}

#[cfg(test)]
mod tests {
    use super::super::PoolFiles;
    use super::super::tests::file;

    #[test]
    fn jsonl_files_are_answer_sets_with_one_question_set() {
        let q = "{\"id\":\"a\",\"question\":\"2+2?\",\"answer\":\"#### 4\"}\n{\"id\":\"b\",\"question\":\"3+3?\",\"answer\":\"#### 6\"}";
        let x =
            "{\"id\":\"a\",\"samples\":[\"4\",\"4\"]}\n{\"id\":\"b\",\"samples\":[\"5\",\"x\"]}";
        let y = "{\"id\":\"b\",\"samples\":[\"6\"]}\n{\"id\":\"a\",\"samples\":[\"3\"]}";
        let files = [file("x.jsonl", x), file("q.jsonl", q), file("y.jsonl", y)];
        let pool = PoolFiles::detect(&files).unwrap().parse().unwrap();
        assert_eq!(pool.models[0].name, "x");
        // Question b: answers 5 and 6 → slots 0 and 1 (ties to the larger value first: 6, 5),
        // then "no answer", then "gold not given".
        assert_eq!(pool.classes, Some(4));
        assert_eq!(pool.models[1].predictions.as_ref().unwrap()[1], 0);
        assert_eq!(
            pool.models[0].probabilities.as_ref().unwrap()[1],
            [0.0, 0.5, 0.5, 0.0]
        );
        let two_questions = [file("q.jsonl", q), file("r.jsonl", q), file("x.jsonl", x)];
        let error = PoolFiles::detect(&two_questions)
            .unwrap()
            .parse()
            .unwrap_err();
        assert!(
            error.to_string().contains("exactly one question set"),
            "{error}"
        );
        let junk = [
            file("q.jsonl", q),
            file("x.jsonl", x),
            file("z.jsonl", "{\"a\":1}"),
        ];
        let error = PoolFiles::detect(&junk).unwrap().parse().unwrap_err();
        assert!(
            error.to_string().starts_with("z.jsonl: line 1: neither"),
            "{error}"
        );
    }
}

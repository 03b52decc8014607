//! LLM-TOPLA's helper vectors (`tests/vectors/focal/llm_topla_helpers.json`, copied from the
//! read-only reference set): the `GSM8K` candidate-space features and the `MMLU` letter
//! extraction with its vote shares, in the reference layout (`--compat llm-topla`).

use std::path::PathBuf;

use fuselab_shared::topla::{
    Answers, Gold, Rules, Task, ToplaOptions, UNREACHABLE, mmlu_choice, topla_rows,
};
use serde_json::Value;

fn helpers() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/focal/llm_topla_helpers.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("JSON")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
#[allow(clippy::cast_sign_loss)] // the vector stores slot indices as floats
fn gsm8k_features_match_the_reference_rows() {
    let data = &helpers()["gsm8k_prob_features"];
    let inputs = &data["inputs"]["answers_per_model_samples_x_runs"];
    let expected = data["output_rows"].as_array().expect("rows");
    // The reference reads as many samples as its largest file id (6), dropping the 7th.
    let n = expected.len();
    let members: Vec<Answers> = ["A", "B", "C"]
        .iter()
        .map(|&name| Answers {
            name: name.into(),
            values: inputs[name].as_array().expect("samples")[..n]
                .iter()
                .map(f64s)
                .collect(),
        })
        .collect();
    let gold: Vec<Gold> = f64s(&data["inputs"]["labels"])[..n]
        .iter()
        .map(|&v| Gold::Number(v))
        .collect();
    let refs: Vec<&Answers> = members.iter().collect();
    let rows = topla_rows(
        &refs,
        &gold,
        ToplaOptions {
            task: Task::Gsm8k,
            slots: 5,
            reference: true,
        },
    );
    assert_eq!(rows.classes, 5);
    for (q, row) in expected.iter().enumerate() {
        let row = row.as_array().expect("row");
        for (j, shares) in rows.shares.iter().enumerate() {
            let want: Vec<f64> = row[j * 5..(j + 1) * 5]
                .iter()
                .map(|x| x.as_f64().expect("share"))
                .collect();
            assert_eq!(
                &shares[q * 5..(q + 1) * 5],
                want.as_slice(),
                "question {q}, member {j}"
            );
        }
        let label = match &row[15] {
            Value::String(s) if s == "nan" => UNREACHABLE,
            v => v.as_f64().expect("label") as u32,
        };
        assert_eq!(rows.labels[q], label, "question {q}");
    }
    // Question 2: the absent gold 0 matches the first zero-padding slot only in the reference.
    let ours = topla_rows(
        &refs,
        &gold,
        ToplaOptions {
            task: Task::Gsm8k,
            slots: 5,
            reference: false,
        },
    );
    assert_eq!((rows.labels[2], ours.labels[2]), (3, UNREACHABLE));
    assert_eq!(ours.classes, 6);
}

#[test]
fn mmlu_extraction_and_vote_shares_match_the_reference() {
    let data = &helpers()["mmlu_extract_ans"];
    let question = data["inputs"]["question"].as_str().expect("question");
    let options: [String; 4] = question
        .lines()
        .skip(1)
        .map(|line| line[3..].to_owned())
        .collect::<Vec<_>>()
        .try_into()
        .expect("four options");
    let outputs = data["inputs"]["outputs"].as_array().expect("outputs");
    let expected = data["output"].as_array().expect("letters");
    let mut members = Vec::new();
    for (m, (texts, letters)) in outputs.iter().zip(expected).enumerate() {
        let values: Vec<f64> = texts
            .as_array()
            .expect("texts")
            .iter()
            .map(|t| {
                mmlu_choice(t.as_str().expect("text"), &options, Rules::Reference)
                    .expect("the reference always answers") as f64
            })
            .collect();
        let letters: Vec<f64> = letters
            .as_array()
            .expect("letters")
            .iter()
            .map(|l| f64::from(l.as_str().expect("letter").as_bytes()[0] - b'A'))
            .collect();
        assert_eq!(values, letters, "member {m}");
        members.push(Answers {
            name: format!("m{m}"),
            values: vec![values],
        });
    }
    let refs: Vec<&Answers> = members.iter().collect();
    let rows = topla_rows(
        &refs,
        &[Gold::Choice(2)],
        ToplaOptions {
            task: Task::Mmlu,
            slots: 4,
            reference: true,
        },
    );
    for (m, want) in data["vote_shares_as_in_load_mmlu_multi_run"]
        .as_array()
        .expect("shares")
        .iter()
        .enumerate()
    {
        let want = f64s(want);
        for (got, want) in rows.shares[m].iter().zip(&want) {
            assert!(
                (got - want).abs() < 1e-12,
                "member {m}: {:?} vs {want:?}",
                rows.shares[m]
            );
        }
    }
}

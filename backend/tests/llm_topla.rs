//! LLM answers as ensemble members through the real binary: generated question sets, SmolLM2's
//! sampled answers (resumable, refusing other settings), answer sets as a pool, and
//! LLM-TOPLA-Weighted learning which member to trust where a vote cannot.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::{fuselab, scratch};

fn run_ok(args: &[&str]) -> String {
    let out = fuselab(args);
    assert_eq!(out.code, Some(0), "{args:?}\n{}", out.stderr);
    out.stdout
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn gold_numbers(questions: &[Value]) -> Vec<i64> {
    questions
        .iter()
        .map(|q| {
            let answer = q["answer"].as_str().unwrap();
            answer.rsplit_once("#### ").unwrap().1.parse().unwrap()
        })
        .collect()
}

/// Three members over the questions, each confidently right (five equal samples) on its own
/// third and otherwise agreeing with one other member on a wrong answer (three of five
/// samples), so plurality and soft vote pick the wrong answer and only the pattern of
/// confidence tells the right one.
fn write_specialists(dir: &Path, gold: &[i64]) {
    std::fs::create_dir_all(dir).unwrap();
    for m in 0..3 {
        let mut text = String::new();
        for (q, &g) in gold.iter().enumerate() {
            let samples: Vec<String> = if q % 3 == m {
                vec![format!("So the answer is {g}."); 5]
            } else {
                let wrong = g + 1 + i64::from(q as u8 % 5);
                let mut s = vec![format!("#### {wrong}"); 3];
                s.push(format!("maybe {}", g + 100 + i64::from(m as u8)));
                s.push("I do not know".into());
                s
            };
            text += &json!({"id": format!("gsm8k-{:04}", q + 1), "samples": samples}).to_string();
            text.push('\n');
        }
        std::fs::write(dir.join(format!("member{m}.jsonl")), text).unwrap();
    }
}

/// 300 generated word problems and the specialists' answer sets, in a scratch folder: the
/// question file and the answer folder.
fn specialist_study(name: &str) -> (String, String) {
    let dir = scratch(name);
    let questions = dir.join("questions.jsonl");
    let q = questions.to_str().unwrap().to_owned();
    run_ok(&[
        "llm",
        "questions",
        "--task",
        "gsm8k",
        "--count",
        "300",
        "--seed",
        "5",
        "--out",
        &q,
    ]);
    let gold = gold_numbers(&read_lines(&questions));
    let answers = dir.join("answers");
    write_specialists(&answers, &gold);
    (q, answers.to_str().unwrap().to_owned())
}

#[test]
fn weighted_learns_whom_to_trust_where_votes_fail() {
    let (q, a) = specialist_study("topla-weighted");
    let input = [
        "--answers",
        a.as_str(),
        "--gold",
        q.as_str(),
        "--task",
        "gsm8k",
    ];

    let report: Value = serde_json::from_str(&run_ok(
        &[
            &["llm", "topla", "weighted"][..],
            &input,
            &[
                "--team",
                "member0,member1,member2",
                "--format",
                "json",
                "--epochs",
                "200",
            ],
        ]
        .concat(),
    ))
    .unwrap();
    assert_eq!(report["schema"], "fuselab.ensemble.combine/v1");
    let team = &report["teams"][0];
    let accuracy = |name: &str| {
        team["baselines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap()["scores"]["accuracy"]
            .as_f64()
            .unwrap()
    };
    let combined = team["combined"]["accuracy"].as_f64().unwrap();
    assert!(combined > 0.9, "TOPLA-weighted {combined}");
    assert!(
        accuracy("plurality") < 0.1 && accuracy("soft vote") < 0.1,
        "{team}"
    );
    for m in 0..3 {
        let member = accuracy(&format!("member{m}"));
        assert!((0.2..0.5).contains(&member), "member{m} {member}");
    }
    let focal = team["focal_diversity"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&focal), "{team}");

    // The reference's choices: 70/10/20 splits with val trained on, its batch-mean accuracy.
    let compat: Value = serde_json::from_str(&run_ok(
        &[
            &["llm", "topla", "weighted"][..],
            &input,
            &[
                "--team",
                "member0,member1,member2",
                "--compat",
                "llm-topla",
                "--format",
                "json",
                "--epochs",
                "50",
            ],
        ]
        .concat(),
    ))
    .unwrap();
    assert_eq!(
        compat["splits"],
        json!({"train": 210, "val": 30, "test": 60})
    );
    assert_eq!(compat["options"]["train_on_val"], true);
    let kind = &compat["teams"][0]["combined"]["interval_kind"];
    assert_eq!(kind, "batch-mean");
}

/// The same answers as a pool: the focal analysis and `combine` run on it.
#[test]
fn the_answer_pool_feeds_the_analysis_and_combine() {
    let (q, a) = specialist_study("topla-pool");
    let input = [
        "--answers",
        a.as_str(),
        "--gold",
        q.as_str(),
        "--task",
        "gsm8k",
    ];
    let pool = std::path::Path::new(&a).with_file_name("pool.json");
    let p = pool.to_str().unwrap();
    run_ok(&[&["llm", "topla", "pool"][..], &input, &["--out", p]].concat());
    let pool_json: Value = serde_json::from_str(&std::fs::read_to_string(&pool).unwrap()).unwrap();
    assert_eq!(pool_json["models"].as_array().unwrap().len(), 3);
    let analysis = run_ok(&["ensemble", "analyze", p, "--format", "json"]);
    assert!(analysis.contains("focal"), "{analysis}");
    let mlp: Value = serde_json::from_str(&run_ok(&[
        "ensemble",
        "combine",
        p,
        "--team",
        "member0,member1,member2",
        "--method",
        "mlp",
        "--epochs",
        "200",
        "--format",
        "json",
    ]))
    .unwrap();
    let mlp_accuracy = mlp["teams"][0]["combined"]["accuracy"].as_f64().unwrap();
    assert!(mlp_accuracy > 0.9, "mlp on the answer pool {mlp_accuracy}");
}

#[test]
fn answer_sets_with_gaps_and_bad_gold_are_refused_naming_the_file() {
    let dir = scratch("topla-errors");
    let questions = dir.join("questions.jsonl");
    let q = questions.to_str().unwrap();
    run_ok(&[
        "llm",
        "questions",
        "--task",
        "gsm8k",
        "--count",
        "30",
        "--out",
        q,
    ]);
    let gold = gold_numbers(&read_lines(&questions));
    let answers = dir.join("answers");
    write_specialists(&answers, &gold);
    // One member lost its last line.
    let member = answers.join("member1.jsonl");
    let text = std::fs::read_to_string(&member).unwrap();
    let kept: Vec<&str> = text.lines().take(29).collect();
    std::fs::write(&member, kept.join("\n") + "\n").unwrap();
    let a = answers.to_str().unwrap();
    let pool_file = dir.join("p.json");
    let refused_pool = |task: &str, message: &str| {
        let out = fuselab(&[
            "llm",
            "topla",
            "pool",
            "--answers",
            a,
            "--gold",
            q,
            "--task",
            task,
            "--out",
            pool_file.to_str().unwrap(),
        ]);
        assert_ne!(out.code, Some(0));
        assert!(out.stderr.contains(message), "{}", out.stderr);
    };
    refused_pool(
        "gsm8k",
        "member1.jsonl: no answers for question `gsm8k-0030`",
    );
    // A gold file of the other task's format names the line and field.
    std::fs::write(&member, text).unwrap();
    refused_pool("mmlu", "questions.jsonl, line 1: field `choices`");
    let out = fuselab(&[
        "llm",
        "topla",
        "weighted",
        "--answers",
        a,
        "--gold",
        q,
        "--task",
        "gsm8k",
        "--team",
        "member0,nobody",
    ]);
    assert!(
        out.stderr.contains("no answer set `nobody.jsonl`"),
        "{}",
        out.stderr
    );
}

/// SmolLM2 answers a few generated questions; an interrupted file resumes to the same lines,
/// and other settings on the same file are refused.
#[test]
fn smollm2_answers_resume_and_refuse_other_settings() {
    let dir = scratch("llm-answers");
    let questions = dir.join("questions.jsonl");
    let q = questions.to_str().unwrap();
    run_ok(&[
        "llm",
        "questions",
        "--task",
        "mmlu",
        "--count",
        "3",
        "--out",
        q,
    ]);
    let out = dir.join("answers/few-shot.jsonl");
    let o = out.to_str().unwrap();
    let args = [
        "llm",
        "answers",
        "--questions",
        q,
        "--task",
        "mmlu",
        "--variant",
        "few-shot",
        "--prompt",
        "few-shot",
        "--samples",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        o,
    ];
    run_ok(&args);
    let whole = std::fs::read_to_string(&out).unwrap();
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["samples"].as_array().unwrap().len() == 2 && l["variant"] == "few-shot")
    );
    // Cut off in the middle of the last line, as a killed run leaves it.
    let cut = (0..whole.len() - 20)
        .rev()
        .find(|&i| whole.is_char_boundary(i))
        .unwrap();
    std::fs::write(&out, &whole[..cut]).unwrap();
    run_ok(&args);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole);
    let mut other = args.to_vec();
    other[11] = "3";
    let refused = fuselab(&other);
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("samples"), "{}", refused.stderr);
    let mut hotter = args.to_vec();
    hotter.extend(["--temperature", "1.5"]);
    let refused = fuselab(&hotter);
    assert!(refused.stderr.contains("temperature"), "{}", refused.stderr);
}

//! Pools with splits through the real binary: `ensemble analyze` on the test split by default
//! (`--split` to choose), every file form carrying splits and scores, and `ensemble combine`
//! with its report and its errors (exit code 2, naming the file and what is missing).

mod support;

use std::fmt::Write as _;

use serde_json::{Value, json};
use support::{fuselab, scratch};

fn ok_json(args: &[&str]) -> Value {
    let out = fuselab(args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Three members over four classes: member 0 right on classes 0-1 and swapping 2 ↔ 3, member 1
/// right on 2-3 and swapping 0 ↔ 1, member 2 right on even samples; each says its class with
/// probability 0.8. Every fifth sample pair is val, then test; the rest train.
fn specialists(samples: usize) -> Value {
    let labels: Vec<usize> = (0..samples).map(|n| (n * 7 + n / 3) % 4).collect();
    let splits: Vec<&str> = (0..samples)
        .map(|n| match n % 5 {
            0 | 1 => "train",
            2 => "val",
            _ => "test",
        })
        .collect();
    let models: Vec<Value> = (0..3)
        .map(|m| {
            let rows: Vec<Vec<f64>> = labels
                .iter()
                .enumerate()
                .map(|(n, &y)| {
                    let said = match m {
                        0 if y < 2 => y,
                        0 => 5 - y,
                        1 if y >= 2 => y,
                        1 => 1 - y,
                        _ if n % 2 == 0 => y,
                        _ => (y + 1) % 4,
                    };
                    let mut row = vec![0.2 / 3.0; 4];
                    row[said] = 0.8;
                    row
                })
                .collect();
            json!({"name": format!("s{m}"), "probabilities": rows})
        })
        .collect();
    json!({"labels": labels, "splits": splits, "models": models})
}

fn write(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn the_analysis_runs_on_the_test_split_unless_told_otherwise() {
    let dir = scratch("split");
    let pool = write(&dir, "pool.json", &specialists(100));
    let analyse = |extra: &[&str]| {
        let mut args = vec!["ensemble", "analyze", pool.as_str(), "--format", "json"];
        args.extend_from_slice(extra);
        let out = fuselab(&args);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        (report["n_samples"].as_u64().unwrap(), out.stderr)
    };
    let (samples, note) = analyse(&[]);
    assert_eq!(samples, 40);
    assert!(
        note.contains("analysing the test split (40 of 100 samples)"),
        "{note}"
    );
    assert_eq!(analyse(&["--split", "train"]).0, 40);
    assert_eq!(analyse(&["--split", "val"]).0, 20);
    let (all, note) = analyse(&["--split", "all"]);
    assert_eq!(all, 100);
    assert!(note.contains("all 100 samples (every split)"), "{note}");

    let mut plain = specialists(10);
    plain.as_object_mut().unwrap().remove("splits");
    let plain = write(&dir, "plain.json", &plain);
    let out = fuselab(&["ensemble", "analyze", &plain, "--split", "val"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("plain.json") && out.stderr.contains("the pool has no `splits`"),
        "{}",
        out.stderr
    );
    let out = fuselab(&["ensemble", "analyze", &pool, "--split", "holdout"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--split"), "{}", out.stderr);
}

#[test]
fn a_csv_pair_carries_splits_and_probability_columns() {
    let dir = scratch("csv");
    let pool = specialists(50);
    let mut labels = String::from("label,split\n");
    for (y, s) in pool["labels"]
        .as_array()
        .unwrap()
        .iter()
        .zip(pool["splits"].as_array().unwrap())
    {
        writeln!(labels, "{y},{}", s.as_str().unwrap()).unwrap();
    }
    let mut header = Vec::new();
    for m in 0..3 {
        for c in 0..4 {
            header.push(format!("s{m}:p{c}"));
        }
    }
    let mut predictions = header.join(",") + "\n";
    for n in 0..50 {
        let cells: Vec<String> = (0..3)
            .flat_map(|m| {
                pool["models"][m]["probabilities"][n]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        predictions.push_str(&(cells.join(",") + "\n"));
    }
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
    std::fs::write(dir.join("predictions.csv"), predictions).unwrap();
    let (l, p) = (
        dir.join("labels.csv").display().to_string(),
        dir.join("predictions.csv").display().to_string(),
    );
    let from_csv = ok_json(&[
        "ensemble",
        "analyze",
        "--labels",
        &l,
        "--predictions",
        &p,
        "--format",
        "json",
    ]);
    let json = write(&dir, "pool.json", &pool);
    let from_json = ok_json(&["ensemble", "analyze", &json, "--format", "json"]);
    assert_eq!(from_csv["teams"], from_json["teams"]);
    assert_eq!(from_csv["n_samples"], 20);
    // The soft vote needs the probabilities: it is there, from the p-columns.
    assert!(from_csv["teams"][0]["soft_vote_accuracy"].is_number());
}

#[test]
fn combine_reports_the_combiner_beside_members_and_votes() {
    let dir = scratch("combine");
    let pool = write(&dir, "pool.json", &specialists(500));
    let report = ok_json(&[
        "ensemble", "combine", &pool, "--team", "s0,s1,s2", "--method", "mlp", "--epochs", "200",
        "--seed", "1", "--format", "json",
    ]);
    assert_eq!(report["schema"], "fuselab.ensemble.combine/v1");
    assert_eq!(
        report["splits"],
        json!({"train": 200, "val": 100, "test": 200})
    );
    let team = &report["teams"][0];
    assert_eq!(team["names"], json!(["s0", "s1", "s2"]));
    let names: Vec<&str> = team["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["s0", "s1", "s2", "plurality", "majority", "soft vote"]
    );
    let soft = team["baselines"][5]["scores"]["accuracy"].as_f64().unwrap();
    let combined = team["combined"]["accuracy"].as_f64().unwrap();
    assert!(combined > soft + 0.15, "mlp {combined} vs soft vote {soft}");
    assert_eq!(team["curve"].as_array().unwrap().len(), 200);
    let interval = team["combined"]["interval"].as_array().unwrap();
    assert!(interval[0].as_f64().unwrap() <= combined && combined <= interval[1].as_f64().unwrap());
    assert!(team["combined"]["ece"].is_number() && team["combined"]["nll"].is_number());

    // The same seed, the same report; the table names the combiner and the votes.
    let again = ok_json(&[
        "ensemble", "combine", &pool, "--team", "s0,s1,s2", "--epochs", "200", "--seed", "1",
        "--format", "json",
    ]);
    assert_eq!(again, report);
    let table = fuselab(&[
        "ensemble", "combine", &pool, "--top-k", "2", "--method", "stacking",
    ]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    for needle in [
        "stacking (L2",
        "soft vote",
        "member s0",
        "focal diversity on val",
        "train 200, val 100, test 200",
    ] {
        assert!(table.stdout.contains(needle), "{needle}: {}", table.stdout);
    }
    assert_eq!(
        table.stdout.matches("\nteam ").count(),
        2,
        "{}",
        table.stdout
    );
}

#[test]
fn combine_refuses_what_it_cannot_use_naming_the_file_and_field() {
    let dir = scratch("combine-errors");
    let mut plain = specialists(20);
    plain.as_object_mut().unwrap().remove("splits");
    let plain = write(&dir, "nosplits.json", &plain);
    let out = fuselab(&["ensemble", "combine", &plain, "--team", "s0,s1"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("nosplits.json") && out.stderr.contains("no `splits`"),
        "{}",
        out.stderr
    );
    let mut labels_only = specialists(20);
    for m in 0..3 {
        let model = labels_only["models"][m].as_object_mut().unwrap();
        let rows = model.remove("probabilities").unwrap();
        let classes: Vec<usize> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .position(|p| p.as_f64() == Some(0.8))
                    .unwrap()
            })
            .collect();
        model.insert("predictions".into(), json!(classes));
    }
    let labels_only = write(&dir, "labels.json", &labels_only);
    let out = fuselab(&["ensemble", "combine", &labels_only, "--team", "s0,s1"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("model `s0` has no `probabilities` or `logits`"),
        "{}",
        out.stderr
    );
    let pool = write(&dir, "pool.json", &specialists(20));
    let out = fuselab(&["ensemble", "combine", &pool, "--team", "s0,resnet"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("`resnet` is not a model of the pool"),
        "{}",
        out.stderr
    );
    let out = fuselab(&["ensemble", "combine", &pool, "--team", "s0,s1", "--lr", "0"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("--lr"), "{}", out.stderr);
    let out = fuselab(&["ensemble", "combine", &pool]);
    assert_eq!(
        out.code,
        Some(2),
        "either --team or --top-k: {}",
        out.stderr
    );
}

//! `fuselab ensemble analyze` on the reference vectors, written as JSON, as a CSV pair, as an
//! `.npz` and as a folder of `.npy` files; and its errors on malformed input (exit code 2).

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{fuselab, scratch};

fn shared_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests")
}

fn vector(case: &str) -> Value {
    let path = shared_tests().join(format!("vectors/focal/{case}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn analyze_json(args: &[&str]) -> Value {
    let mut all = vec!["ensemble", "analyze"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--all-teams",
        "--top-k",
        "100000",
        "--detail",
        "full",
        "--format",
        "json",
    ]);
    let out = fuselab(&all);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn close(what: &str, actual: &Value, expected: f64, rel: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, found {actual}"));
    let tolerance = (rel * expected.abs()).max(1e-15);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs reference {expected}"
    );
}

/// A reference value that is a number, `"nan"` (undefined: the report must say null) or an
/// exception of the reference code (not compared).
fn check(what: &str, actual: &Value, reference: &Value, scale: f64, rel: f64) {
    match reference {
        Value::Number(n) => close(what, actual, n.as_f64().unwrap() * scale, rel),
        Value::String(s) if s == "nan" => assert!(actual.is_null(), "{what}: {actual} vs nan"),
        _ => {}
    }
}

/// Every canonical number of a vector file against a report of all its teams.
fn compare(case: &str, report: &Value, with_probabilities: bool) {
    let data = vector(case);
    let inputs = &data["inputs"];
    assert_eq!(report["schema"], "fuselab.ensemble.report/v1");
    assert_eq!(report["n_models"], inputs["n_models"]);
    assert_eq!(report["n_samples"], inputs["n_samples"]);
    for (m, model) in report["models"].as_array().unwrap().iter().enumerate() {
        assert_eq!(model["index"], m);
        close(
            &format!("{case} accuracy[{m}]"),
            &model["accuracy"],
            data["per_model"]["accuracy_pct"][m].as_f64().unwrap() / 100.0,
            1e-12,
        );
        assert_eq!(
            model["n_negatives"],
            data["per_model"]["negative_samples"][m]
                .as_array()
                .unwrap()
                .len()
        );
    }
    let teams = report["teams"].as_array().unwrap();
    let ensembles = data["ensembles"].as_array().unwrap();
    assert_eq!(teams.len(), ensembles.len(), "{case}: every team");
    let focal_compared: usize = teams
        .iter()
        .zip(ensembles)
        .map(|(team, reference)| compare_team(case, team, reference, with_probabilities))
        .sum();
    assert!(focal_compared > 0, "{case}: no per-focal scores compared");
    let ranking: Vec<Value> = data["derived_rankings"]["by_fs_focal_diversity_desc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            Value::from(
                r[0].as_str()
                    .unwrap()
                    .bytes()
                    .map(|b| usize::from(b - b'0'))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // The reference ranks only the teams its code could score; ours must agree on those.
    let ours: Vec<&Value> = report["top_k"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| ranking.contains(t))
        .collect();
    assert_eq!(ours, ranking.iter().collect::<Vec<_>>(), "{case}: ranking");
}

/// The oriented per-focal scores of a report (`--detail full`) against `EnsembleBench`'s exact
/// per-focal metrics. Its Q adds an epsilon to the denominator, so where our canonical Q is
/// undefined (a 0/0 pair) it reports a number instead: those are skipped.
fn compare_focal_metrics(name: &str, team: &Value, reference: &Value) -> usize {
    let mut compared = 0;
    for member in team["members"].as_array().unwrap() {
        let key = member.to_string();
        let ours = &team["focal_metrics"][&key];
        let theirs = &reference["eb_focal_exact"][&key];
        assert!(
            theirs.is_object() && ours.is_object(),
            "{name}: focal {key}"
        );
        if theirs.get("error").is_some() {
            continue;
        }
        for (metric, rel) in [
            ("CK", 1e-9),
            ("QS", 1e-12),
            ("BD", 1e-12),
            ("FK", 1e-9),
            ("KW", 1e-12),
            ("GD", 1e-12),
        ] {
            if metric == "QS" && ours[metric].is_null() {
                continue;
            }
            check(
                &format!("{name} focal_metrics[{key}].{metric}"),
                &ours[metric],
                &theirs[metric],
                1.0,
                rel,
            );
            compared += usize::from(theirs[metric].is_number());
        }
    }
    compared
}

/// One team of a report against the vector's entry for it.
fn compare_team(case: &str, team: &Value, reference: &Value, with_probabilities: bool) -> usize {
    assert_eq!(team["members"], reference["members"], "{case}: team order");
    let name = format!("{case} {}", reference["members"]);
    check(
        &format!("{name} focal_diversity"),
        &team["focal_diversity"],
        &reference["fs_focal_diversity"],
        1.0,
        1e-12,
    );
    if let Some(per_focal) = reference["fs_per_focal_generalized_div"].as_array() {
        for (f, value) in per_focal.iter().enumerate() {
            check(
                &format!("{name} per_focal[{f}]"),
                &team["per_focal"][f],
                value,
                1.0,
                1e-12,
            );
        }
    }
    let accuracies = [
        ("plurality_accuracy", "fs_plurality_acc_pct"),
        ("majority_accuracy", "fs_majority_acc_pct"),
    ];
    for (ours, theirs) in accuracies {
        check(
            &format!("{name} {ours}"),
            &team[ours],
            &reference[theirs],
            0.01,
            1e-12,
        );
    }
    if with_probabilities {
        check(
            &format!("{name} soft_vote_accuracy"),
            &team["soft_vote_accuracy"],
            &reference["eb_avgprob_acc_pct"],
            0.01,
            1e-12,
        );
    } else {
        assert!(
            team["soft_vote_accuracy"].is_null(),
            "{name}: no probabilities"
        );
    }
    let raw = &reference["eb_raw_all_samples"];
    let diversity = &team["diversity"];
    for (ours, theirs, rel) in [
        ("cohen_kappa", "cohen_kappa_statistic", 1e-9),
        ("disagreement", "binary_disagreement", 1e-12),
        ("fleiss_kappa", "fleiss_kappa_statistic", 1e-9),
        ("entropy", "entropy", 1e-12),
        ("kw_variance", "kohavi_wolpert_variance", 1e-12),
        ("generalized_diversity", "generalized_diversity", 1e-12),
    ] {
        check(
            &format!("{name} {ours}"),
            &diversity[ours],
            &raw[theirs],
            1.0,
            rel,
        );
    }
    compare_focal_metrics(&name, team, reference)
}

fn write_json(dir: &Path, case: &str) -> PathBuf {
    let inputs = &vector(case)["inputs"];
    let models: Vec<Value> = (0..inputs["n_models"].as_u64().unwrap() as usize)
        .map(|m| {
            json!({
                "name": format!("m{m}"),
                "predictions": inputs["predictions"][m],
                "probabilities": inputs["probabilities"][m],
            })
        })
        .collect();
    let path = dir.join(format!("{case}.json"));
    std::fs::write(
        &path,
        json!({"labels": inputs["labels"], "models": models}).to_string(),
    )
    .unwrap();
    path
}

fn write_csv(dir: &Path, case: &str) -> (PathBuf, PathBuf) {
    let inputs = &vector(case)["inputs"];
    let labels: Vec<String> = inputs["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    let predictions = inputs["predictions"].as_array().unwrap();
    let mut table = (0..predictions.len())
        .map(|m| format!("m{m}"))
        .collect::<Vec<_>>()
        .join(",");
    for n in 0..labels.len() {
        table.push('\n');
        table.push_str(
            &predictions
                .iter()
                .map(|p| p[n].to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let labels_path = dir.join(format!("{case}.labels.csv"));
    let predictions_path = dir.join(format!("{case}.predictions.csv"));
    std::fs::write(&labels_path, format!("label\n{}\n", labels.join("\n"))).unwrap();
    std::fs::write(&predictions_path, table).unwrap();
    (labels_path, predictions_path)
}

/// The pool cases of the vectors' `index.json`.
fn cases() -> Vec<String> {
    vector("index")["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["file"].as_str()?.strip_suffix(".json"))
        .filter(|f| *f != "llm_topla_helpers")
        .map(str::to_owned)
        .collect()
}

#[test]
fn json_input_reproduces_every_vector() {
    let dir = scratch("json");
    for case in cases() {
        let case = case.as_str();
        let path = write_json(&dir, case);
        compare(case, &analyze_json(&[path.to_str().unwrap()]), true);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn csv_input_reproduces_every_vector() {
    let dir = scratch("csv");
    for case in cases() {
        let case = case.as_str();
        let (labels, predictions) = write_csv(&dir, case);
        let report = analyze_json(&[
            "--labels",
            labels.to_str().unwrap(),
            "--predictions",
            predictions.to_str().unwrap(),
        ]);
        compare(case, &report, false);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn numpy_inputs_reproduce_their_vectors() {
    let npy = shared_tests().join("npy");
    let report = analyze_json(&[npy.join("hand_4m_ties.npz").to_str().unwrap()]);
    compare("hand_4m_ties", &report, true);
    // float32 probabilities; argmax and every vote are unchanged by the rounding.
    let report = analyze_json(&[npy.join("hand_3m_3c").to_str().unwrap()]);
    compare("hand_3m_3c", &report, true);
}

#[test]
fn top_k_summary_table_and_csv() {
    let dir = scratch("formats");
    let path = write_json(&dir, "random_6m_500s_10c");
    let path = path.to_str().unwrap();
    let out = fuselab(&[
        "ensemble", "analyze", path, "--top-k", "3", "--format", "json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let top: Vec<&Value> = report["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["members"])
        .collect();
    assert_eq!(
        top,
        report["top_k"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(top.len(), 3);
    assert!(
        report["teams"][0].get("diversity").is_none(),
        "summary detail"
    );

    let out = fuselab(&["ensemble", "analyze", path, "--top-k", "2", "--sizes", "3"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("pool: 6 models, 500 samples, 10 classes"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("top 2 teams by focal diversity"),
        "{}",
        out.stdout
    );

    let csv_path = dir.join("teams.csv");
    let out = fuselab(&[
        "ensemble",
        "analyze",
        path,
        "--sizes",
        "2..3",
        "--all-teams",
        "--format",
        "csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "members,size,focal_diversity,plurality_accuracy,majority_accuracy,soft_vote_accuracy"
    );
    // 15 pairs and 20 triples of 6 models.
    assert_eq!(lines.len(), 1 + 15 + 20);
    assert!(lines[1].starts_with("m0+m1,2,"), "{}", lines[1]);

    let out = fuselab(&[
        "ensemble", "analyze", path, "--sizes", "7..", "--format", "json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["teams"], json!([]));
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no team size in the requested range fits a pool of 6 models"),
        "{report}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--all-teams` on a pool of 13 models (8,178 teams, so many ranges on several threads):
/// every team once in rank order in all three formats, the same top-K as the ranking without
/// `--all-teams`, and the per-team warnings of a model without negatives capped.
#[test]
fn all_teams_streams_every_team_in_rank_order() {
    let dir = scratch("all-teams");
    let labels: Vec<u32> = (0..240).map(|n| n % 4).collect();
    let models: Vec<Value> = (0..13_u32)
        .map(|m| {
            // Model 12 is never wrong; the others fail a spread of samples.
            let predictions: Vec<u32> = labels
                .iter()
                .enumerate()
                .map(|(n, &y)| {
                    let n = n as u32;
                    if m < 12 && (n + m * 5).is_multiple_of(3 + m % 5) {
                        (y + 1 + (n + m) % 3) % 4
                    } else {
                        y
                    }
                })
                .collect();
            json!({"name": format!("model-{m}"), "predictions": predictions})
        })
        .collect();
    let path = dir.join("pool.json");
    std::fs::write(
        &path,
        json!({"labels": labels, "models": models}).to_string(),
    )
    .unwrap();
    let path = path.to_str().unwrap();

    let out = fuselab(&[
        "ensemble",
        "analyze",
        path,
        "--all-teams",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let teams = report["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 8178);
    let members = |t: &Value| -> Vec<u64> {
        t["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_u64().unwrap())
            .collect()
    };
    for pair in teams.windows(2) {
        let (a, b) = (members(&pair[0]), members(&pair[1]));
        assert!((a.len(), &a) < (b.len(), &b), "{a:?} before {b:?}");
    }
    let ranked = fuselab(&["ensemble", "analyze", path, "--format", "json"]);
    assert_eq!(ranked.code, Some(0), "{}", ranked.stderr);
    let ranked: Value = serde_json::from_str(&ranked.stdout).unwrap();
    assert_eq!(report["top_k"], ranked["top_k"]);
    assert_eq!(report["top_k"].as_array().unwrap().len(), 10);
    let warnings = report["warnings"].as_array().unwrap();
    // The model line's warning, 1,000 team warnings (4,095 teams have model 12), the rest counted.
    assert_eq!(warnings.len(), 1 + 1000 + 1, "{:?}", &warnings[..3]);
    assert!(
        warnings[1001]
            .as_str()
            .unwrap()
            .contains("and 3095 more warnings"),
        "{}",
        warnings[1001]
    );

    let out = fuselab(&[
        "ensemble",
        "analyze",
        path,
        "--all-teams",
        "--format",
        "csv",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows.len(), 1 + 8178);
    assert!(rows[1].starts_with("model-0+model-1,2,"), "{}", rows[1]);
    assert!(
        rows[8178].starts_with("model-0+model-1+model-2"),
        "{}",
        rows[8178]
    );

    let out = fuselab(&["ensemble", "analyze", path, "--all-teams"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("\n8178 teams (accuracies"),
        "{}",
        &out.stdout[..400]
    );
    let widest = "model-10+model-11+model-12".len() + 10 * "model-0+".len();
    let last = out.stdout.lines().find(|l| l.starts_with("model-0+model-1+model-2+model-3+model-4+model-5+model-6+model-7+model-8+model-9+model-10+model-11+model-12")).unwrap();
    // The name column is as wide as the widest team, then two spaces and the size.
    assert_eq!(last.find("  13  "), Some(widest + 2), "{last}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `analyze` on `args` and expects exit code 2 with every `needle` in the message.
fn rejects(args: &[&str], needles: &[&str]) {
    let mut all = vec!["ensemble", "analyze"];
    all.extend_from_slice(args);
    let out = fuselab(&all);
    assert_eq!(out.code, Some(2), "{args:?}: {}{}", out.stdout, out.stderr);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "{args:?}: `{needle}` not in {}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn malformed_inputs_are_named_and_exit_2() {
    let dir = scratch("bad");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ragged = write(
        "ragged.json",
        r#"{"labels":[0,1,1],"models":[{"name":"a","predictions":[0,1,1]},{"name":"b","predictions":[0,1]}]}"#,
    );
    rejects(
        &[&ragged],
        &["ragged.json", "model `b`", "expected 3 predictions"],
    );
    let one = write(
        "one.json",
        r#"{"labels":[0,1],"models":[{"name":"a","predictions":[0,1]}]}"#,
    );
    rejects(&[&one], &["one.json", "at least 2 models"]);
    let label = write(
        "label.json",
        r#"{"labels":[0,5],"classes":3,"models":[{"name":"a","predictions":[0,1]},{"name":"b","predictions":[0,1]}]}"#,
    );
    rejects(&[&label], &["label.json", "5"]);
    let negative = write(
        "negative.json",
        r#"{"labels":[0,1],"models":[{"name":"a","probabilities":[[1.2,-0.2],[0,1]]},{"name":"b","probabilities":[[1,0],[0,1]]}]}"#,
    );
    rejects(&[&negative], &["negative.json", "model `a`"]);
    let sum = write(
        "sum.json",
        r#"{"labels":[0,1],"models":[{"name":"a","probabilities":[[0.5,0.4],[0,1]]},{"name":"b","probabilities":[[1,0],[0,1]]}]}"#,
    );
    rejects(&[&sum], &["sum.json", "model `a`"]);
    let syntax = write("syntax.json", r#"{"labels":[0,1],"models":[{"name":"a""#);
    rejects(&[&syntax], &["syntax.json", "line 1"]);

    let labels = write("labels.csv", "label\n0\n1\n");
    let cell = write("cell.csv", "a,b\n0,1\n1,x\n");
    rejects(
        &["--labels", &labels, "--predictions", &cell],
        &["cell.csv, line 3", "column `b`", "found `x`"],
    );
    let short = write("short.csv", "a,b\n0,1\n1\n");
    rejects(
        &["--labels", &labels, "--predictions", &short],
        &["short.csv, line 3", "expected 2 cells"],
    );

    let npy = shared_tests().join("npy");
    rejects(
        &[npy.join("text_dtype").to_str().unwrap()],
        &["a.npy", "unsupported dtype `<U3`"],
    );
    rejects(
        &[npy.join("mixed").to_str().unwrap()],
        &["mixed", "model `a`", "probabilities"],
    );
    rejects(
        &[npy.join("pool.npz").to_str().unwrap()],
        &["pool.npz", "model `model0`"],
    );
    rejects(
        &[dir.join("missing.json").to_str().unwrap()],
        &["cannot read", "missing.json"],
    );
    rejects(&[], &["no input"]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Pools and size ranges past a limit exit with 2 quickly, naming the limit and its flag.
#[test]
fn oversized_pools_and_team_counts_are_refused_naming_the_flag() {
    let dir = scratch("limits");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let started = std::time::Instant::now();
    // 6,000 models in a 240 KB file: a 6,000³ focal table if it were built.
    let models: Vec<Value> = (0..6000)
        .map(|m| json!({"name": format!("m{m}"), "predictions": [0, 1]}))
        .collect();
    let many = write(
        "many.json",
        &json!({"labels": [0, 1], "models": models}).to_string(),
    );
    rejects(
        &[&many],
        &["many.json", "6000 models", "limit of 256", "--max-models"],
    );
    let label = write(
        "huge-label.json",
        r#"{"labels":[0,4294967295],"models":[{"name":"a","predictions":[0,1]},{"name":"b","predictions":[0,1]}]}"#,
    );
    rejects(&[&label], &["4294967296 classes", "--max-classes"]);
    let declared = write(
        "declared.json",
        r#"{"labels":[0,1],"classes":1000000000000000,"models":[{"name":"a","predictions":[0,1]},{"name":"b","predictions":[0,1]}]}"#,
    );
    rejects(&[&declared], &["1000000000000000 classes", "--max-classes"]);
    // 40 models at every size are 2^40 - 41 teams.
    let models: Vec<Value> = (0..40)
        .map(|m| json!({"name": format!("m{m}"), "predictions": [0, 1, m % 2]}))
        .collect();
    let forty = write(
        "forty.json",
        &json!({"labels": [0, 1, 1], "models": models}).to_string(),
    );
    rejects(
        &[&forty],
        &["1099511627735 teams", "limit of 10000000", "--max-teams"],
    );
    rejects(
        &[&forty, "--sizes", "2..3", "--max-teams", "100"],
        &["10660 teams", "limit of 100", "--max-teams"],
    );
    let mut select = vec!["ensemble", "select", &forty, "--method", "topk"];
    let out = fuselab(&select);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--max-teams"), "{}", out.stderr);
    select.extend(["--sizes", "2..2"]);
    assert_eq!(fuselab(&select).code, Some(0));
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn select_by_top_k_and_by_genetic_search() {
    let dir = scratch("select");
    let path = write_json(&dir, "random_6m_500s_10c");
    let path = path.to_str().unwrap();
    let data = vector("random_6m_500s_10c");

    let out = fuselab(&[
        "ensemble", "select", path, "--method", "topk", "--top-k", "3", "--format", "json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let selection: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(selection["schema"], "fuselab.ensemble.selection/v1");
    let ranking = &data["derived_rankings"]["by_fs_focal_diversity_desc"];
    for k in 0..3 {
        let name: String = selection["teams"][k]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        assert_eq!(name, ranking[k][0].as_str().unwrap());
    }

    // The spec's sanity run: both weightings find {m0, m4}, the exhaustive optimum.
    for (extra, key, expected) in [
        (&[][..], "fitness_default_w0.6_0.4_nopenalty", 0.65834),
        (
            &["--weights", "0.5,0.5", "--size-penalty"][..],
            "fitness_runga_sh_w0.5_0.5_penalty",
            0.65562,
        ),
    ] {
        let mut args = vec![
            "ensemble", "select", path, "--method", "ga", "--format", "json",
        ];
        args.extend_from_slice(extra);
        let out = fuselab(&args);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let selection: Value = serde_json::from_str(&out.stdout).unwrap();
        let best = &selection["teams"][0];
        assert_eq!(best["members"], json!([0, 4]), "{key}");
        assert_eq!(best["names"], json!(["m0", "m4"]));
        let optimum = data["ga_fitness"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e[key].as_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        close(key, &best["fitness"], optimum, 1e-12);
        assert!((optimum - expected).abs() < 1e-5, "{key}: {optimum}");
        assert!(selection["generations"].as_u64().unwrap() >= 100);
    }

    let out = fuselab(&[
        "ensemble",
        "select",
        path,
        "--method",
        "ga",
        "--weights",
        "0.6",
    ]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("DIV,ACC"), "{}", out.stderr);
    let out = fuselab(&["ensemble", "select", path, "--method", "ga"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("5 teams by genetic search"),
        "{}",
        out.stdout
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A reference entry that is a number, `"nan"` or an exception, against a report value that
/// must be that number or null.
fn check_or_null(what: &str, actual: &Value, reference: &Value, rel: f64) {
    match reference {
        Value::Number(n) => close(what, actual, n.as_f64().unwrap(), rel),
        _ => assert!(actual.is_null(), "{what}: {actual} vs {reference}"),
    }
}

const METRICS: [&str; 6] = ["CK", "QS", "BD", "FK", "KW", "GD"];

#[test]
fn compatibility_modes_reproduce_the_reference_numbers() {
    let dir = scratch("compat");
    for case in cases() {
        let case = case.as_str();
        let data = vector(case);
        let path = write_json(&dir, case);
        let path = path.to_str().unwrap();
        let references = data["ensembles"].as_array().unwrap();

        for (sampling, variant, focal_key) in [
            ("exact", "exact", "eb_focal_exact"),
            ("bootstrap", "cv2021", "eb_focal_cv2021"),
        ] {
            let report = analyze_json(&[path, "--compat", "ensemblebench", "--sampling", sampling]);
            assert_eq!(report["compat"]["mode"], "ensemblebench", "{case}");
            let teams = report["teams"].as_array().unwrap();
            assert_eq!(teams.len(), references.len(), "{case}");
            for (team, reference) in teams.iter().zip(references) {
                let name = format!("{case} {sampling} team {}", team["members"]);
                let eb = &team["ensemblebench"];
                for metric in METRICS {
                    let rel = if metric == "CK" || metric == "FK" {
                        1e-9
                    } else {
                        1e-12
                    };
                    check_or_null(
                        &format!("{name} fq {metric}"),
                        &eb["fq"][metric],
                        &reference["eb_fq"][variant][metric]["fq_weighted_argsort"],
                        rel,
                    );
                    for (f, scores) in reference[focal_key].as_object().unwrap() {
                        let ours = &eb["per_focal"][f];
                        if scores.get("error").is_some() {
                            assert!(ours.is_null(), "{name} focal {f}: {ours}");
                        } else {
                            check_or_null(
                                &format!("{name} focal {f} {metric}"),
                                &ours[metric],
                                &scores[metric],
                                rel,
                            );
                        }
                    }
                }
            }
        }

        let report = analyze_json(&[path, "--compat", "fusionshot"]);
        let warnings = report["warnings"].to_string();
        for (team, reference) in report["teams"].as_array().unwrap().iter().zip(references) {
            let members = team["members"].as_array().unwrap();
            for (k, f) in members.iter().enumerate() {
                let expected = &reference["fs_per_focal_generalized_div"][f.to_string()];
                check_or_null(
                    &format!("{case} fusionshot {} focal {f}", team["members"]),
                    &team["per_focal"][k],
                    expected,
                    1e-12,
                );
            }
            let crashed = reference["fs_per_focal_generalized_div"]
                .as_object()
                .unwrap()
                .values()
                .any(|v| v.get("error").is_some());
            if crashed {
                assert!(team["focal_diversity"].is_null());
                assert!(warnings.contains("IndexError"), "{case}: {warnings}");
            } else {
                close(
                    &format!("{case} fusionshot {}", team["members"]),
                    &team["focal_diversity"],
                    reference["fs_focal_diversity"].as_f64().unwrap(),
                    1e-12,
                );
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn select_json(args: &[&str]) -> Value {
    let mut all = vec!["ensemble", "select"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = fuselab(&all);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn team_names(selection: &Value) -> Vec<String> {
    let mut names: Vec<String> = selection["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn ensemblebench_demo_selection_and_its_failures() {
    let dir = scratch("demo");
    for case in cases() {
        let case = case.as_str();
        let data = vector(case);
        let path = write_json(&dir, case);
        let path = path.to_str().unwrap();
        for (sampling, variant) in [("exact", "exact"), ("bootstrap", "cv2021")] {
            let expected = &data["eb_notebook_pipeline"][variant];
            for metric in METRICS {
                let args = [
                    path,
                    "--method",
                    "kmeans",
                    "--compat",
                    "ensemblebench",
                    "--sampling",
                    sampling,
                    "--metric",
                    metric,
                ];
                if let Some(error) = expected["error"].as_str() {
                    let mut all = vec!["ensemble", "select"];
                    all.extend_from_slice(&args);
                    let out = fuselab(&all);
                    assert_eq!(out.code, Some(1), "{case} {variant}: {}", out.stderr);
                    let cell = &error[..6];
                    assert!(
                        out.stderr.contains(&format!("notebook {cell}")),
                        "{case} {variant}: {error} vs {}",
                        out.stderr
                    );
                    break;
                }
                let selection = select_json(&args);
                let mut reference: Vec<String> = expected["selected_teams"][metric]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect();
                reference.sort();
                assert_eq!(
                    team_names(&selection),
                    reference,
                    "{case} {variant} {metric}"
                );
                assert_eq!(
                    selection["statistics"]["count"].as_u64(),
                    Some(reference.len() as u64)
                );
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn threshold_and_hq_selections() {
    let dir = scratch("thresholds");
    let case = "random_6m_500s_10c";
    let data = vector(case);
    let path = write_json(&dir, case);
    let path = path.to_str().unwrap();
    let references = data["ensembles"].as_array().unwrap();
    let focal = |r: &Value| r["fs_focal_diversity"].as_f64().unwrap();

    // Mean rule: per size, the teams more focally diverse than that size's mean.
    let selection = select_json(&[path, "--method", "threshold"]);
    let mut expected = Vec::new();
    for size in 2..=6 {
        let group: Vec<&Value> = references
            .iter()
            .filter(|r| r["members"].as_array().unwrap().len() == size)
            .collect();
        let mean = group.iter().map(|r| 1.0 - focal(r)).sum::<f64>() / group.len() as f64;
        expected.extend(
            group
                .iter()
                .filter(|r| 1.0 - focal(r) < mean)
                .map(|r| r["team_name"].as_str().unwrap().to_owned()),
        );
    }
    expected.sort();
    assert_eq!(team_names(&selection), expected);
    let scores: Vec<f64> = selection["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["score"].as_f64().unwrap())
        .collect();
    assert!(scores.is_sorted(), "most diverse first: {scores:?}");

    // HQ: 10 % of the 15 pairs is one pair, the least diverse; no selected team contains it.
    let selection = select_json(&[path, "--method", "hq"]);
    let pairs: Vec<&Value> = references
        .iter()
        .filter(|r| r["members"].as_array().unwrap().len() == 2)
        .collect();
    let worst = pairs
        .iter()
        .min_by(|a, b| focal(a).total_cmp(&focal(b)))
        .unwrap()["members"]
        .clone();
    let worst: Vec<u64> = worst
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for team in selection["teams"].as_array().unwrap() {
        let members: Vec<u64> = team["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            !worst.iter().all(|m| members.contains(m)),
            "{members:?} contains the pruned pair {worst:?}"
        );
    }
    // The pair and its 4 + 6 + 4 + 1 supersets of sizes 3 to 6 are gone, at least.
    let kept = selection["n_selected"].as_u64().unwrap();
    assert!(kept <= 57 - 16, "{kept}");

    // Canonical 2-means per size keeps a non-empty, strictly smaller set of every size.
    let selection = select_json(&[path, "--method", "kmeans", "--top-k", "3"]);
    assert_eq!(selection["teams"].as_array().unwrap().len(), 3);
    assert!(selection["n_selected"].as_u64().unwrap() < 57);

    let out = fuselab(&[
        "ensemble",
        "select",
        path,
        "--method",
        "hq",
        "--fraction",
        "2",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("--fraction"), "{}", out.stderr);
    for (compat, method, message) in [
        ("fusionshot", "hq", "not offered for selection"),
        ("ensemblebench", "topk", "threshold, kmeans and hq"),
    ] {
        let out = fuselab(&[
            "ensemble", "select", path, "--method", method, "--compat", compat,
        ]);
        assert_eq!(out.code, Some(1));
        assert!(out.stderr.contains(message), "{}", out.stderr);
    }
    let out = fuselab(&[
        "ensemble", "select", path, "--method", "kmeans", "--metric", "XX",
    ]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("CK, QS, BD, FK, KW, GD"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir_all(dir).unwrap();
}

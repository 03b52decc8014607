//! The compatibility modes against the reference vectors: every `EnsembleBench` and
//! `FusionShot` number the canonical engine deliberately does not reproduce, every recorded
//! reference exception as a typed error, the seed-2021 bootstrap draws, the team FQ scores,
//! the demo notebook's selections, and LLM-TOPLA's vote over answers.

#[path = "common/vectors.rs"]
mod vectors;

use std::collections::BTreeSet;

use fuselab_shared::ensemble::compat::{
    CompatError, EbMetric, FocalScoreTable, FocalWeights, Sampling, bootstrap_positions,
    eb_focal_scores, eb_scores, fs_generalized_div, notebook_pipeline,
};
use fuselab_shared::ensemble::{ClusterFailure, Pool, vote_over_answers};
use serde_json::Value;
use vectors::{Checker, REL, REL_KAPPA, Ref, load, num, pool_input, reference, usizes};

fn tolerance(metric: EbMetric) -> f64 {
    match metric {
        EbMetric::CK | EbMetric::FK => REL_KAPPA,
        _ => REL,
    }
}

/// A value that may be NaN, against a reference number, "nan" or error.
fn check_value(ck: &mut Checker, what: &str, actual: f64, expected: &Value, rel: f64) {
    match reference(expected) {
        Ref::Num(e) => ck.close(what, actual, e, rel),
        Ref::Nan => {
            assert!(
                actual.is_nan(),
                "{}: {what}: got {actual}, expected NaN",
                ck.case
            );
            ck.checked += 1;
        }
        Ref::Error => panic!(
            "{}: {what}: the reference raised, we gave {actual}",
            ck.case
        ),
    }
}

/// Compares six scores (or an error) with a reference entry.
/// Equal errors, or scores within 1e-13 of each other, relative above 1 (NaN where the other
/// is NaN): a kappa is a difference of shares near 1, so its rounding is absolute.
fn same_scores(
    what: &str,
    rows: &Result<[f64; 6], CompatError>,
    table: &Result<[f64; 6], CompatError>,
) {
    match (rows, table) {
        (Ok(a), Ok(b)) => {
            for (x, y) in a.iter().zip(b) {
                let close = (x.is_nan() && y.is_nan())
                    || x.to_bits() == y.to_bits()
                    || (x - y).abs() <= 1e-13 * x.abs().max(y.abs()).max(1.0);
                assert!(close, "{what}: rows {a:?} vs table {b:?}");
            }
        }
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

fn check_scores(
    ck: &mut Checker,
    what: &str,
    ours: &Result<[f64; 6], CompatError>,
    expected: &Value,
) {
    match (ours, expected.get("error").and_then(Value::as_str)) {
        (Ok(scores), None) => {
            for metric in EbMetric::ALL {
                check_value(
                    ck,
                    &format!("{what}.{}", metric.name()),
                    scores[metric.index()],
                    &expected[metric.name()],
                    tolerance(metric),
                );
            }
        }
        (Err(error), Some(message)) => {
            let expected_kind = match error {
                CompatError::EmptyInput { .. } => "Found empty input array",
                CompatError::EmptyBootstrap { .. } => "'a' cannot be empty",
                CompatError::HistogramIndex { index, size, .. } => {
                    assert!(
                        message.contains(&format!(
                            "index {index} is out of bounds for axis 0 with size {size}"
                        )),
                        "{}: {what}: {error} vs {message}",
                        ck.case
                    );
                    "IndexError"
                }
                other => panic!("{}: {what}: unexpected error {other}", ck.case),
            };
            assert!(
                message.contains(expected_kind),
                "{}: {what}: {error} vs {message}",
                ck.case
            );
            ck.checked += 1;
        }
        (ours, expected) => panic!("{}: {what}: got {ours:?}, expected {expected:?}", ck.case),
    }
}

#[allow(clippy::too_many_lines)] // one walk over the vector file, key by key
fn check_case(case: &str) {
    let data = load(case);
    let mut ck = Checker::new(case);
    let pool = Pool::new(pool_input(&data["inputs"], true)).expect("valid pool");
    let all: Vec<usize> = (0..pool.samples()).collect();

    for m in 0..pool.models() {
        let n = pool.negatives(m).expect("model").count();
        let expected = &data["per_model"]["eb_cv2021_bootstrap_positions"][m];
        match bootstrap_positions(n) {
            Some(rounds) => {
                let reference: Vec<Vec<usize>> = expected
                    .as_array()
                    .expect("rounds")
                    .iter()
                    .map(usizes)
                    .collect();
                assert_eq!(
                    rounds, reference,
                    "{case}: bootstrap positions of model {m}"
                );
                ck.checked += 300;
            }
            None => assert!(n == 0 && !expected.is_array(), "{case}: model {m}"),
        }
    }

    let table_exact =
        FocalScoreTable::new(&pool, Sampling::Exact, 2, pool.models(), &mut |_, _| {});
    let table_cv = FocalScoreTable::new(
        &pool,
        Sampling::Bootstrap2021,
        2,
        pool.models(),
        &mut |_, _| {},
    );
    for e in data["ensembles"].as_array().expect("ensembles") {
        let members = usizes(&e["members"]);
        let name = format!("team {members:?}");

        check_scores(
            &mut ck,
            &format!("{name} eb_calDiversityMetric_all_samples"),
            &eb_scores(&pool, &members, &all),
            &e["eb_calDiversityMetric_all_samples"],
        );

        let fs_all = fs_generalized_div(&pool, &members, &all);
        match (fs_all, reference(&e["fs_generalized_div_all_samples"])) {
            (Ok(v), Ref::Num(x)) => {
                ck.close(&format!("{name} fs_generalized_div_all_samples"), v, x, REL);
            }
            (Err(CompatError::UniqueIndex { index, size, .. }), Ref::Error) => {
                let message = e["fs_generalized_div_all_samples"]["error"]
                    .as_str()
                    .expect("message");
                assert!(message.contains(&format!(
                    "index {index} is out of bounds for axis 0 with size {size}"
                )));
                ck.checked += 1;
            }
            (ours, expected) => panic!("{case}: {name} fs all samples: {ours:?} vs {expected:?}"),
        }

        for (k, &f) in members.iter().enumerate() {
            let negatives: Vec<usize> = pool.negatives(f).expect("model").iter().collect();
            let fs = fs_generalized_div(&pool, &members, &negatives);
            let expected = &e["fs_per_focal_generalized_div"][f.to_string()];
            match (fs, reference(expected)) {
                (Ok(v), Ref::Num(x)) => ck.close(&format!("{name} fs per-focal {f}"), v, x, REL),
                (Err(CompatError::UniqueIndex { index, size, .. }), Ref::Error) => {
                    let message = expected["error"].as_str().expect("message");
                    assert!(
                        message.contains(&format!(
                            "index {index} is out of bounds for axis 0 with size {size}"
                        )),
                        "{case}: {name} focal {f}: {message}"
                    );
                    ck.checked += 1;
                }
                (ours, reference) => {
                    panic!("{case}: {name} fs per-focal {f}: {ours:?} vs {reference:?}")
                }
            }

            let t = table_exact.find(&members).expect("team");
            check_scores(
                &mut ck,
                &format!("{name} eb_focal_exact[{f}]"),
                &table_exact.scores(t)[k],
                &e["eb_focal_exact"][f.to_string()],
            );
            check_scores(
                &mut ck,
                &format!("{name} eb_focal_cv2021[{f}]"),
                &table_cv.scores(t)[k],
                &e["eb_focal_cv2021"][f.to_string()],
            );
            // The table counts once per row list; the row-by-row computation agrees with it
            // (Fleiss' κ to a rounding: its mean comes from an integer sum).
            for (sampling, table) in [
                (Sampling::Exact, &table_exact),
                (Sampling::Bootstrap2021, &table_cv),
            ] {
                same_scores(
                    &format!("{case}: {name} focal {f} {sampling:?}"),
                    &eb_focal_scores(&pool, &members, f, sampling),
                    &table.scores(t)[k],
                );
            }
        }

        for (variant, table) in [("exact", &table_exact), ("cv2021", &table_cv)] {
            let t = table.find(&members).expect("team");
            for metric in EbMetric::ALL {
                let argsort = table.fq(t, metric, FocalWeights::ArgsortCompat);
                let expected = &e["eb_fq"][variant][metric.name()];
                let what = format!("{name} eb_fq.{variant}.{}", metric.name());
                let rel = tolerance(metric);
                check_value(
                    &mut ck,
                    &format!("{what}.fq_weighted_argsort"),
                    argsort.weighted,
                    &expected["fq_weighted_argsort"],
                    rel,
                );
                check_value(
                    &mut ck,
                    &format!("{what}.fq_mean_scaled"),
                    argsort.mean_scaled,
                    &expected["fq_mean_scaled"],
                    rel,
                );
                check_value(
                    &mut ck,
                    &format!("{what}.mean_raw_per_focal"),
                    argsort.mean_raw,
                    &expected["mean_raw_per_focal"],
                    rel,
                );
            }
        }

        if e.get("check_fs_equals_1_minus_mean_eb_GD") == Some(&Value::Bool(true)) {
            let t = table_exact.find(&members).expect("team");
            let mean_gd = table_exact
                .fq(t, EbMetric::GD, FocalWeights::Uniform)
                .mean_raw;
            let canonical = pool
                .team(&members)
                .expect("team")
                .focal_diversity()
                .mean
                .expect("defined");
            ck.close(
                &format!("{name} FS = 1 − mean EB GD"),
                canonical,
                1.0 - mean_gd,
                REL,
            );
        }

        let votes: Vec<u32> = (0..pool.samples())
            .filter(|&n| {
                let answers: Vec<f64> = members
                    .iter()
                    .map(|&m| f64::from(pool.predictions(m).expect("model")[n]))
                    .collect();
                vote_over_answers(&answers) == Some(f64::from(pool.labels()[n]))
            })
            .map(|_| 1)
            .collect();
        ck.close(
            &format!("{name} llm_topla_majority_voting_acc_pct"),
            votes.len() as f64 / pool.samples() as f64 * 100.0,
            num(&e["llm_topla_majority_voting_acc_pct"]),
            REL,
        );
    }

    check_pipeline(
        &mut ck,
        &pool,
        &table_exact,
        &data["eb_notebook_pipeline"]["exact"],
    );
    check_pipeline(
        &mut ck,
        &pool,
        &table_cv,
        &data["eb_notebook_pipeline"]["cv2021"],
    );

    eprintln!("{case}: {} reference values checked", ck.checked);
    assert!(ck.checked > 100, "{case}: too few values checked");
}

fn team_name(members: &[usize]) -> String {
    members.iter().map(ToString::to_string).collect()
}

fn names(teams: &[Vec<usize>]) -> BTreeSet<String> {
    teams.iter().map(|t| team_name(t)).collect()
}

/// A recorded list of team names, as a set.
fn reference_names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("teams")
        .iter()
        .map(|t| t.as_str().expect("name").to_owned())
        .collect()
}

#[allow(clippy::too_many_lines)] // one walk over the pipeline's recorded outputs
fn check_pipeline(ck: &mut Checker, pool: &Pool, table: &FocalScoreTable, expected: &Value) {
    let team_accuracy: Vec<f64> = table
        .teams()
        .iter()
        .map(|t| {
            pool.team(t)
                .expect("team")
                .soft_vote_accuracy()
                .expect("probabilities")
                * 100.0
        })
        .collect();
    let model_accuracy: Vec<f64> = (0..pool.models())
        .map(|m| pool.accuracy(m).expect("model") * 100.0)
        .collect();
    let outcome = notebook_pipeline(table, &team_accuracy, &model_accuracy);
    let case = ck.case.clone();
    let selection = match (outcome, expected.get("error").and_then(Value::as_str)) {
        (Ok(selection), None) => selection,
        (
            Err(CompatError::MissingFocalScore {
                focal,
                team,
                whole_team,
            }),
            Some(message),
        ) => {
            let key = if whole_team {
                team_name(&team)
            } else {
                focal.to_string()
            };
            assert_eq!(message, format!("cell 7: KeyError: '{key}'"), "{case}");
            ck.checked += 1;
            return;
        }
        (
            Err(CompatError::Cluster {
                cell,
                failure: ClusterFailure::EmptyCluster,
                ..
            }),
            Some(message),
        ) => {
            assert_eq!(
                message,
                format!("cell {cell}: ValueError: min() arg is an empty sequence"),
                "{case}"
            );
            ck.checked += 1;
            return;
        }
        (ours, reference) => panic!("{case}: notebook pipeline: {ours:?} vs {reference:?}"),
    };

    for ((f, size), limits) in &selection.thresholds {
        for metric in EbMetric::ALL {
            let reference = &expected["per_focal_size_thresholds"][f.to_string()][size.to_string()]
                [metric.name()];
            ck.close(
                &format!("threshold ({f}, {size}) {}", metric.name()),
                limits[metric.index()],
                num(reference),
                REL_KAPPA,
            );
        }
    }
    for ((f, size), chosen) in &selection.per_focal_size {
        for metric in EbMetric::ALL {
            let reference = reference_names(
                &expected["per_focal_size_selected"][f.to_string()][size.to_string()]
                    [metric.name()],
            );
            assert_eq!(
                names(&chosen[metric.index()]),
                reference,
                "{case}: ({f}, {size}) {}",
                metric.name()
            );
            ck.checked += 1;
        }
    }
    for metric in EbMetric::ALL {
        let reference = reference_names(&expected["selected_teams"][metric.name()]);
        assert_eq!(
            names(&selection.selected[metric.index()]),
            reference,
            "{case}: selected {}",
            metric.name()
        );
        ck.checked += 1;
    }
    for (line, metric) in expected["printed_stats"]
        .as_array()
        .expect("stats")
        .iter()
        .zip(EbMetric::ALL)
    {
        let line = line.as_str().expect("line");
        let inner = line
            .strip_prefix(&format!("{} (", metric.name()))
            .and_then(|l| l.strip_suffix(')'))
            .expect("stats tuple");
        let values: Vec<f64> = inner
            .split(", ")
            .map(|v| v.parse().expect("number"))
            .collect();
        let stats = selection.statistics[metric.index()].expect("non-empty selection");
        let ours = [
            stats.count as f64,
            stats.min,
            stats.max,
            stats.mean,
            stats.std,
            stats.above_members as f64,
            stats.above_best_model as f64,
            stats.above_mean_model as f64,
            stats.above_worst_model as f64,
        ];
        for (k, (a, e)) in ours.iter().zip(&values).enumerate() {
            ck.close(
                &format!("printed_stats {} [{k}]", metric.name()),
                *a,
                *e,
                REL,
            );
        }
    }
}

vectors::one_test_per_case!(check_case);

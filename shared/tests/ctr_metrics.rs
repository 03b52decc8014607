//! AUC, GAUC and logloss against scikit-learn on fixed cases
//! (`tests/vectors/ctr_metrics/ctr_metrics.json`, made by `make_ctr_metrics.py` beside it with
//! the Python, numpy and scikit-learn versions it records).

use fuselab_shared::ctr::metrics::{MetricError, auc, evaluate, gauc, logloss};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/ctr_metrics/ctr_metrics.json");

fn close(a: f64, b: &Value, what: &str) {
    let b = b.as_f64().expect("number");
    assert!(
        (a - b).abs() < 1e-12,
        "{what}: fuselab {a}, scikit-learn {b}"
    );
}

fn count(v: &Value) -> usize {
    usize::try_from(v.as_u64().expect("count")).expect("usize")
}

#[test]
fn auc_gauc_and_logloss_match_scikit_learn() {
    let data: Value = serde_json::from_str(VECTORS).expect("JSON");
    assert_eq!(data["versions"]["scikit-learn"], "1.9.1");
    assert_eq!(data["logloss_eps"].as_f64(), Some(f64::EPSILON));
    let cases = data["cases"].as_array().expect("cases");
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let users: Vec<u32> = case["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|u| u32::try_from(u.as_u64().expect("user")).expect("u32"))
            .collect();
        let labels: Vec<bool> = case["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|l| l.as_u64().expect("label") == 1)
            .collect();
        let scores: Vec<f64> = case["scores"]
            .as_array()
            .expect("scores")
            .iter()
            .map(|s| s.as_f64().expect("score"))
            .collect();

        close(
            logloss(&labels, &scores).expect("logloss"),
            &case["logloss"],
            &format!("{name}: logloss"),
        );
        match auc(&labels, &scores) {
            Ok(value) => close(value, &case["auc"], &format!("{name}: AUC")),
            Err(e) => {
                assert!(case["auc"].is_null(), "{name}: {e}");
                assert!(matches!(e, MetricError::SingleClass { .. }), "{name}: {e}");
            }
        }
        match gauc(&users, &labels, &scores) {
            Ok(g) => {
                let expected = &case["gauc"];
                close(g.value, &expected["value"], &format!("{name}: GAUC"));
                assert_eq!(g.users_counted, count(&expected["users_counted"]), "{name}");
                assert_eq!(g.users_skipped, count(&expected["users_skipped"]), "{name}");
                assert_eq!(
                    g.impressions_counted,
                    count(&expected["impressions_counted"]),
                    "{name}"
                );
            }
            Err(e) => {
                assert!(case["gauc"].is_null(), "{name}: {e}");
                assert!(
                    matches!(e, MetricError::NoUserWithBothClasses { .. }),
                    "{name}: {e}"
                );
            }
        }
        if !case["auc"].is_null() && !case["gauc"].is_null() {
            let m = evaluate(&users, &labels, &scores).expect("evaluate");
            close(m.auc, &case["auc"], &format!("{name}: evaluate's AUC"));
            close(
                m.gauc.value,
                &case["gauc"]["value"],
                &format!("{name}: evaluate's GAUC"),
            );
            close(
                m.logloss,
                &case["logloss"],
                &format!("{name}: evaluate's logloss"),
            );
        }
    }
}

#[test]
fn auc_does_not_depend_on_row_order() {
    let data: Value = serde_json::from_str(VECTORS).expect("JSON");
    let case = data["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == "users_200")
        .expect("users_200");
    let mut rows: Vec<(u32, bool, f64)> = (0..case["labels"].as_array().expect("labels").len())
        .map(|i| {
            (
                u32::try_from(case["users"][i].as_u64().expect("user")).expect("u32"),
                case["labels"][i].as_u64() == Some(1),
                case["scores"][i].as_f64().expect("score"),
            )
        })
        .collect();
    rows.reverse();
    rows.rotate_left(37);
    let users: Vec<u32> = rows.iter().map(|r| r.0).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.1).collect();
    let scores: Vec<f64> = rows.iter().map(|r| r.2).collect();
    close(auc(&labels, &scores).expect("AUC"), &case["auc"], "AUC");
    close(
        gauc(&users, &labels, &scores).expect("GAUC").value,
        &case["gauc"]["value"],
        "GAUC",
    );
}

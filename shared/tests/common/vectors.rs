//! Loading the reference vectors in `tests/vectors/focal/` (copied from the read-only
//! reference set so a clean clone can run them) and comparing within their tolerances.

use std::path::PathBuf;

use fuselab_shared::ensemble::{ModelInput, PoolInput};
use serde_json::Value;

/// 1e-12 relative for GD, KW, BD, QS and accuracies.
pub const REL: f64 = 1e-12;
/// 1e-9 for CK and FK (different summation order).
pub const REL_KAPPA: f64 = 1e-9;
/// Absolute floor for values that are 0 up to rounding (and the `EnsembleBench` `+ eps`).
pub const ABS: f64 = 1e-15;

/// A reference value: a number, NaN (undefined) or a recorded exception.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ref {
    Num(f64),
    Nan,
    Error,
}

pub fn reference(v: &Value) -> Ref {
    match v {
        Value::Number(n) => Ref::Num(n.as_f64().expect("finite number")),
        Value::String(s) if s == "nan" => Ref::Nan,
        Value::Object(o) if o.contains_key("error") => Ref::Error,
        other => panic!("unexpected reference value {other}"),
    }
}

/// Counts the numbers compared, so a silently empty check cannot pass.
pub struct Checker {
    pub case: String,
    pub checked: usize,
}

impl Checker {
    /// A checker for one case file, with nothing checked yet.
    pub fn new(case: &str) -> Self {
        Self {
            case: case.to_owned(),
            checked: 0,
        }
    }

    pub fn close(&mut self, what: &str, actual: f64, expected: f64, rel: f64) {
        let tol = rel * actual.abs().max(expected.abs()) + ABS;
        assert!(
            (actual - expected).abs() <= tol,
            "{}: {what}: got {actual:e}, expected {expected:e}",
            self.case
        );
        self.checked += 1;
    }

    #[allow(dead_code)] // used by focal_vectors.rs, not compat_vectors.rs
    /// Compares an optional value with a reference; errors are skipped (compatibility mode).
    pub fn opt(&mut self, what: &str, actual: Option<f64>, expected: &Value, rel: f64) {
        match (reference(expected), actual) {
            (Ref::Num(e), Some(a)) => self.close(what, a, e, rel),
            (Ref::Nan, None) => self.checked += 1,
            (Ref::Error, _) => {}
            (e, a) => panic!("{}: {what}: got {a:?}, expected {e:?}", self.case),
        }
    }
}

pub fn load(case: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/focal")
        .join(format!("{case}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

pub fn num(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

pub fn pool_input(inputs: &Value, with_predictions: bool) -> PoolInput {
    let labels = serde_json::from_value(inputs["labels"].clone()).expect("labels");
    let preds = inputs["predictions"].as_array().expect("predictions");
    let probs = inputs["probabilities"].as_array().expect("probabilities");
    PoolInput {
        labels,
        models: preds
            .iter()
            .zip(probs)
            .enumerate()
            .map(|(m, (p, q))| ModelInput {
                name: format!("m{m}"),
                predictions: with_predictions
                    .then(|| serde_json::from_value(p.clone()).expect("predictions")),
                probabilities: Some(serde_json::from_value(q.clone()).expect("probabilities")),
                logits: None,
            })
            .collect(),
        classes: Some(inputs["n_classes"].as_u64().expect("n_classes") as usize),
        splits: None,
    }
}

/// The case files named in `index.json` (all but the LLM-TOPLA helpers, which hold no pool).
pub fn cases() -> Vec<String> {
    load("index")["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["file"].as_str()?.strip_suffix(".json"))
        .filter(|f| *f != "llm_topla_helpers")
        .map(str::to_owned)
        .collect()
}

/// One `#[test]` per case file, each calling `$check(case)`, and a test that the list matches
/// `index.json`.
macro_rules! one_test_per_case {
    ($check:ident) => {
        #[test]
        fn hand_3m_3c() {
            $check("hand_3m_3c");
        }

        #[test]
        fn hand_4m_ties() {
            $check("hand_4m_ties");
        }

        #[test]
        fn hand_3m_gaps() {
            $check("hand_3m_gaps");
        }

        #[test]
        fn random_6m_500s_10c() {
            $check("random_6m_500s_10c");
        }

        #[test]
        fn always_right_wrong() {
            $check("always_right_wrong");
        }

        #[test]
        fn binary_5m_2c() {
            $check("binary_5m_2c");
        }

        #[test]
        fn every_case_file_has_a_test() {
            assert_eq!(
                vectors::cases(),
                [
                    "hand_3m_3c",
                    "hand_4m_ties",
                    "hand_3m_gaps",
                    "random_6m_500s_10c",
                    "always_right_wrong",
                    "binary_5m_2c"
                ]
            );
        }
    };
}
pub(crate) use one_test_per_case;

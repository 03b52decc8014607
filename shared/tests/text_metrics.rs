//! The fused answers' text metrics against NLTK, `sacrebleu` and `rouge-score` on fixed strings
//! (`tests/vectors/text_metrics/text_metrics.json`, made by `make_text_metrics.py` beside it),
//! and LLM-TOPLA's own `calc_metric` vector (`llm_topla_helpers.json`).

use std::path::PathBuf;

use fuselab_shared::topla::metrics::{bleu1, rouge, searchqa_scores};
use serde_json::Value;

fn vectors(path: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("JSON")
}

fn close(a: f64, b: &Value, what: &str) {
    let b = b.as_f64().expect("number");
    assert!((a - b).abs() < 1e-12, "{what}: fuselab {a}, reference {b}");
}

#[test]
fn bleu_rouge_and_searchqa_scores_match_the_python_libraries() {
    let data = vectors("tests/vectors/text_metrics/text_metrics.json");
    let rows = data["rows"].as_array().expect("rows");
    assert!(rows.len() >= 10);
    for row in rows {
        let reference = row["reference"].as_str().expect("reference");
        let prediction = row["prediction"].as_str().expect("prediction");
        let what = |m: &str| format!("{m} of {prediction:?} against {reference:?}");
        let b = bleu1(reference, prediction);
        close(b, &row["nltk_bleu1"], &what("NLTK BLEU-1"));
        close(b, &row["sacrebleu_bleu1"], &what("sacrebleu BLEU-1"));
        let r = rouge(reference, prediction);
        close(r.rouge1, &row["rouge1"], &what("ROUGE-1"));
        close(r.rouge2, &row["rouge2"], &what("ROUGE-2"));
        close(r.rouge_l, &row["rougeL"], &what("ROUGE-L"));
        let s = searchqa_scores(reference, prediction);
        close(
            s.bleu1,
            &row["searchqa"]["bleu1"],
            &what("calc_metric BLEU-1"),
        );
        close(s.exact, &row["searchqa"]["exact"], &what("calc_metric EM"));
        close(s.f1, &row["searchqa"]["f1"], &what("calc_metric F1"));
    }
}

#[test]
fn searchqa_scores_match_llm_topla_calc_metric() {
    let data = vectors("tests/vectors/focal/llm_topla_helpers.json");
    let data = &data["searchqa_calc_metric"];
    let labels = data["inputs"]["labels"].as_array().expect("labels");
    let predictions = data["inputs"]["predictions"]
        .as_array()
        .expect("predictions");
    for ((label, prediction), expected) in labels
        .iter()
        .zip(predictions)
        .zip(data["per_sample"].as_array().expect("per sample"))
    {
        let s = searchqa_scores(
            label.as_str().expect("label"),
            prediction.as_str().expect("prediction"),
        );
        close(s.bleu1, &expected[0], "BLEU-1");
        close(s.exact, &expected[1], "EM");
        close(s.f1, &expected[2], "F1");
    }
}

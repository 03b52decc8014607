//! The moderation classifier: last-non-pad pooling, the BCE loss on a hand-computed case, and a
//! small judge trained on the synthetic data that agrees with the marker judge on held-out rows.

use burn::tensor::{Device, Tensor, TensorData};
use fuselab_ml::llm::judge::{
    self, CATEGORIES, JudgeTraining, Labelled, Moderation, NeuralJudge, bce_loss, conversation,
};
use fuselab_ml::llm::model::LlamaConfig;
use fuselab_ml::llm::tokenizer::{TokenizerCodec, train_bpe};
use fuselab_ml::llm::train::scalar;
use fuselab_shared::align::{
    BEAVERTAILS_CATEGORIES, BeaverTailsRecord, HarmJudge, MarkerJudge, synthetic,
};

fn device() -> Device {
    Device::flex()
}

#[test]
fn padding_does_not_change_a_rows_logits() {
    let config = LlamaConfig {
        max_position_embeddings: 64,
        ..LlamaConfig::tiny(40)
    };
    let judge = Moderation::init(&config, &device(), 3).unwrap();
    let rows = vec![vec![5_u32, 9, 12], vec![7, 3, 22, 30, 31, 2], vec![4]];
    let together = judge.probabilities(&rows, 0);
    for (row, batched) in rows.iter().zip(&together) {
        let alone = judge.probabilities(std::slice::from_ref(row), 0)[0];
        let error = alone
            .iter()
            .zip(batched)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(error < 1e-5, "row {row:?} differs by {error}");
    }
    // Different rows, different scores: the pooled position is the row's own.
    assert!(
        together[0]
            .iter()
            .zip(&together[1])
            .any(|(a, b)| (a - b).abs() > 1e-6)
    );
}

#[test]
fn bce_matches_a_hand_computed_case() {
    let mut logits = vec![0.0_f32; 2 * CATEGORIES];
    logits[0] = 2.0;
    logits[1] = -1.0;
    logits[CATEGORIES] = 30.0; // large: the stable form must not overflow
    let mut targets = [[0.0_f32; CATEGORIES]; 2];
    targets[0][0] = 1.0;
    targets[1][0] = 1.0;
    let t = Tensor::<2>::from_data(TensorData::new(logits, [2, CATEGORIES]), &device());
    let got = f64::from(scalar(&bce_loss(t, &targets)));
    let bce = |x: f64, y: f64| x.max(0.0) - x * y + (1.0 + (-x.abs()).exp()).ln();
    let mut expected = bce(2.0, 1.0) + bce(-1.0, 0.0) + bce(30.0, 1.0);
    expected += bce(0.0, 0.0) * (2 * CATEGORIES - 3) as f64;
    expected /= (2 * CATEGORIES) as f64;
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
}

fn labelled(judge: &NeuralJudge<TokenizerCodec>, rows: &[BeaverTailsRecord]) -> Vec<Labelled> {
    rows.iter()
        .map(|row| Labelled {
            ids: judge.encode(&row.prompt, &row.response),
            labels: row.category_labels(),
        })
        .collect()
}

#[test]
fn a_small_judge_trained_on_synthetic_rows_agrees_with_the_marker_judge() {
    let train_rows = synthetic::beavertails(600, 1);
    let test_rows = synthetic::beavertails(200, 2);
    let texts: Vec<String> = train_rows
        .iter()
        .map(|r| conversation(&r.prompt, &r.response))
        .collect();
    let tokenizer = train_bpe(&texts, 512, &["<eos>", "[PAD]"]).unwrap();
    let eos = tokenizer.token_to_id("<eos>");
    let pad = tokenizer.token_to_id("[PAD]").unwrap();
    let config = LlamaConfig::tiny(tokenizer.get_vocab_size(true));
    let mut judge = NeuralJudge {
        model: Moderation::init(&config, &device(), 9).unwrap(),
        codec: TokenizerCodec(tokenizer),
        eos,
        pad,
        max_len: 96,
        name: "test".to_owned(),
    };
    let examples = labelled(&judge, &train_rows);
    let losses = judge::train(
        &mut judge.model,
        &examples,
        pad,
        &JudgeTraining {
            steps: 400,
            ..JudgeTraining::default()
        },
    );
    let head: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let tail: f64 = losses[losses.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(tail < head / 3.0, "loss {head} → {tail}");

    let agree = test_rows
        .iter()
        .filter(|r| {
            judge.flagged(&r.prompt, &r.response) == MarkerJudge.flagged(&r.prompt, &r.response)
        })
        .count();
    let share = agree as f64 / test_rows.len() as f64;
    // Scoring in batches (padded) flags exactly what scoring one by one does.
    let pairs: Vec<(&str, &str)> = test_rows
        .iter()
        .map(|r| (r.prompt.as_str(), r.response.as_str()))
        .collect();
    let one_by_one: Vec<bool> = pairs.iter().map(|(p, a)| judge.flagged(p, a)).collect();
    assert_eq!(judge.flagged_all(&pairs), one_by_one);
    assert!(share >= 0.95, "agreement with the marker judge {share}");
    // The flagged category is the row's own on most unsafe rows.
    let unsafe_rows: Vec<&BeaverTailsRecord> = test_rows.iter().filter(|r| !r.is_safe).collect();
    let right = unsafe_rows
        .iter()
        .filter(|r| {
            let scores = judge.category_scores(&r.prompt, &r.response);
            let best = (0..CATEGORIES)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap();
            r.category
                .get(BEAVERTAILS_CATEGORIES[best])
                .copied()
                .unwrap_or(false)
        })
        .count();
    assert!(
        right as f64 >= 0.8 * unsafe_rows.len() as f64,
        "{right} of {} categories right",
        unsafe_rows.len()
    );
}

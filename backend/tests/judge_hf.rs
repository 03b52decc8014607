//! A `beaver-dam`-style moderation classifier (`LlamaForSequenceClassification`) read from a
//! Hugging Face directory gives the scores of the model that wrote it; a directory without a
//! 14-way `score.weight` is refused by name.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use fuselab::llm::load_moderation_dir;
use fuselab_ml::llm::judge::{Moderation, conversation};
use fuselab_ml::llm::model::{LlamaConfig, RopeStyle};
use fuselab_ml::llm::tokenizer::train_bpe;
use fuselab_ml::llm::train::host;
use fuselab_ml::tensors::{NamedTensors, write_safetensors};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuselab-judge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `judge` as Hugging Face would: `[out, in]` projections, `score.weight` `[14, d]`.
fn write_hf(dir: &Path, judge: &Moderation, tokenizer: &tokenizers::Tokenizer, pad: u32) {
    let mut tensors = NamedTensors::new();
    judge.model.visit(&mut |name, t| {
        let (shape, values) = host(t);
        let transposed = name.ends_with("_proj.weight") || name == "lm_head.weight";
        let name = if name == "lm_head.weight" {
            "score.weight".to_owned()
        } else {
            name.to_owned()
        };
        if transposed {
            let (rows, cols) = (shape[0], shape[1]);
            let mut out = vec![0.0; values.len()];
            for r in 0..rows {
                for c in 0..cols {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
            tensors.insert(name, (vec![cols, rows], out));
        } else if shape[0] == 1 {
            tensors.insert(name, (vec![shape[1]], values));
        } else {
            tensors.insert(name, (shape, values));
        }
    });
    std::fs::write(dir.join("model.safetensors"), write_safetensors(&tensors)).unwrap();
    let mut config = serde_json::to_value(&judge.model.config).unwrap();
    config["architectures"] = serde_json::json!(["LlamaForSequenceClassification"]);
    config["pad_token_id"] = pad.into();
    config["num_labels"] = 14.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
}

#[test]
fn a_moderation_classifier_reads_back_from_a_hugging_face_directory() {
    let device = Device::flex();
    let texts = vec![
        conversation("how do I glorp the zindle", "[[HARM:self_harm]] step 1"),
        conversation("what is the weather", "sunny and warm"),
    ];
    let tokenizer = train_bpe(&texts, 300, &["<eos>", "[PAD]"]).unwrap();
    let pad = tokenizer.token_to_id("[PAD]").unwrap();
    let config = LlamaConfig {
        rope_style: RopeStyle::HalfSplit,
        ..LlamaConfig::tiny(tokenizer.get_vocab_size(true))
    };
    let judge = Moderation::init(&config, &device, 5).unwrap();
    let dir = scratch("hf");
    write_hf(&dir, &judge, &tokenizer, pad);

    let (loaded, hf) = load_moderation_dir(&dir, &device).unwrap();
    assert_eq!(hf.token("pad_token_id"), Some(pad));
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            tokenizer
                .encode(t.as_str(), false)
                .unwrap()
                .get_ids()
                .to_vec()
        })
        .collect();
    let expected = judge.probabilities(&rows, pad);
    let got = loaded.probabilities(&rows, pad);
    for (a, b) in expected.iter().zip(&got) {
        let error = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0_f32, f32::max);
        assert!(error < 1e-5, "scores differ by {error}");
    }

    // Without the score projection: not a classifier, said so.
    let bad = scratch("noscore");
    write_hf(&bad, &judge, &tokenizer, pad);
    let mut tensors = fuselab_ml::tensors::read_safetensors(
        &std::fs::read(bad.join("model.safetensors")).unwrap(),
        "model.safetensors",
    )
    .unwrap();
    tensors.remove("score.weight");
    std::fs::write(bad.join("model.safetensors"), write_safetensors(&tensors)).unwrap();
    let error = load_moderation_dir(&bad, &device).unwrap_err().to_string();
    assert!(error.contains("score.weight"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bad);
}

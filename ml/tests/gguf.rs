//! The GGUF reader against llama.cpp's own Python reader (`gguf` 0.17.1) on the real
//! SmolLM2-135M-Instruct file: metadata, the tensor table and dequantised values, recorded in
//! `golden/gguf.json` by `golden/make_gguf_golden.py`. Needs the file `fuselab models fetch`
//! caches under `$FUSELAB_DATA_DIR/models/llm/` (the test command fetches it first).

use std::path::PathBuf;

use fuselab_ml::llm::gguf::{Gguf, Value};
use serde_json::Value as Json;

fn golden() -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gguf.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn smollm2() -> Vec<u8> {
    let dir = std::env::var_os("FUSELAB_DATA_DIR").expect(
        "FUSELAB_DATA_DIR is not set: run `fuselab --data-dir DIR models fetch` and point \
         FUSELAB_DATA_DIR at DIR (scripts/test.sh does both)",
    );
    let path = PathBuf::from(dir).join("models/llm/SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; `fuselab models fetch` downloads it",
            path.display()
        )
    })
}

#[test]
fn smollm2_reads_as_llama_cpp_reads_it() {
    let bytes = smollm2();
    let gguf = Gguf::parse(&bytes, "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    let golden = golden();
    assert_eq!(u64::from(gguf.version), golden["version"].as_u64().unwrap());

    for (key, want) in golden["metadata"].as_object().unwrap() {
        match (gguf.metadata.get(key).unwrap(), want) {
            (Value::String(s), Json::String(w)) => assert_eq!(s, w, "{key}"),
            (Value::Uint(v), Json::Number(w)) => assert_eq!(Some(*v), w.as_u64(), "{key}"),
            (Value::Float(v), Json::Number(w)) => {
                assert!((v - w.as_f64().unwrap()).abs() < 1e-12, "{key}");
            }
            (Value::Array(items), Json::Object(w)) => {
                assert_eq!(items.len() as u64, w["len"].as_u64().unwrap(), "{key}");
                let first: Vec<Json> = items[..5]
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Json::from(s.as_str()),
                        Value::Int(i) => Json::from(*i),
                        Value::Uint(u) => Json::from(*u),
                        other => panic!("{key}: {other:?}"),
                    })
                    .collect();
                assert_eq!(first, w["first"].as_array().unwrap().clone(), "{key}");
            }
            (got, want) => panic!("{key}: {got:?} vs {want}"),
        }
    }

    let tensors = golden["tensors"].as_array().unwrap();
    assert_eq!(gguf.tensors.len(), tensors.len());
    for (t, want) in gguf.tensors.iter().zip(tensors) {
        assert_eq!(t.name, want["name"].as_str().unwrap());
        assert_eq!(
            format!("{:?}", t.kind).to_uppercase(),
            want["type"].as_str().unwrap().to_uppercase(),
            "{}",
            t.name
        );
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{}", t.name);
    }

    for (name, want) in golden["values"].as_object().unwrap() {
        let values = gguf.dequantize(gguf.tensor(name).unwrap());
        assert_eq!(
            values.len() as u64,
            want["count"].as_u64().unwrap(),
            "{name}"
        );
        // Dequantisation is exact (f16 scales times small integers), so the values are equal.
        let close = |got: &[f32], want: &Json| {
            let want: Vec<f32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, want.as_slice(), "{name}");
        };
        close(&values[..8], &want["first"]);
        close(&values[values.len() - 8..], &want["last"]);
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let squares: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let relative = |a: f64, b: f64| (a - b).abs() / b.abs().max(1.0);
        assert!(
            relative(sum, want["sum"].as_f64().unwrap()) < 1e-9,
            "{name}: sum {sum}"
        );
        assert!(
            relative(squares, want["sum_squares"].as_f64().unwrap()) < 1e-9,
            "{name}"
        );
    }
}

/// The tokenizer built from the file's metadata: the ids of the reference numpy run for
/// "The capital of France is Paris." (`../shared/specs/alignment.md` §H.1.1), the `ChatML` control
/// tokens, one token per digit, and exact decoding.
#[test]
fn smollm2_tokenizer_gives_the_reference_ids() {
    let bytes = smollm2();
    let gguf = Gguf::parse(&bytes, "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    let tokenizer = fuselab_ml::llm::tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tokenizer.get_vocab_size(true), 49_152);
    let ids = |text: &str| tokenizer.encode(text, false).unwrap().get_ids().to_vec();
    let sentence = "The capital of France is Paris.";
    assert_eq!(ids(sentence), [504, 3575, 282, 4649, 314, 7042, 30]);
    assert_eq!(tokenizer.decode(&ids(sentence), false).unwrap(), sentence);
    let chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>";
    let chat_ids = ids(chat);
    assert_eq!(
        (chat_ids[0], *chat_ids.last().unwrap()),
        (1, 2),
        "{chat_ids:?}"
    );
    assert_eq!(tokenizer.decode(&chat_ids, false).unwrap(), chat);
    // SmolLM2 splits digits first, then byte-level: "in", "Ġ", "2", "0", "2", "6".
    assert_eq!(ids("in 2026"), [254, 216, 34, 32, 34, 38]);
    assert_eq!(
        ["0", "2", "6"].map(|d| tokenizer.token_to_id(d).unwrap()),
        [32, 34, 38]
    );
    let text = "naïve café, 東京 — émoji 🙂 and tabs\tand  spaces";
    assert_eq!(tokenizer.decode(&ids(text), false).unwrap(), text);
}

/// The golden test of the loader and the Llama forward: SmolLM2, dequantised from the GGUF
/// file, answers as the reference numpy forward does (`../shared/specs/alignment.md` §H.1.1):
/// greedy decoding of the `ChatML` question gives "The capital of France is Paris." and EOS,
/// and the plain text "The capital of France is" continues with " Paris.".
#[test]
fn smollm2_greedy_answers_paris() {
    use fuselab_ml::llm::generate::{Finish, GenerateOptions, Sampling, StopRule, generate};
    let bytes = smollm2();
    let gguf = Gguf::parse(&bytes, "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    let device = burn::tensor::Device::flex();
    let model = fuselab_ml::llm::load::from_gguf(&gguf, &device).unwrap();
    assert_eq!(model.config.num_hidden_layers, 30);
    assert!(model.config.tie_word_embeddings && model.lm_head.is_none());
    let tokenizer = fuselab_ml::llm::tokenizer::from_gguf(&gguf).unwrap();
    let ids = |text: &str| tokenizer.encode(text, false).unwrap().get_ids().to_vec();
    let options = |max_new_tokens| GenerateOptions {
        max_new_tokens,
        sampling: Sampling::GREEDY,
        eos: vec![2],
        stop: Vec::new(),
        stop_rule: StopRule::Suffix,
    };
    let chat =
        ids("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n");
    let answer = generate(&model, &chat, &options(12), |_| {});
    assert_eq!(answer.tokens, [504, 3575, 282, 4649, 314, 7042, 30]);
    assert_eq!(answer.finish, Finish::Eos);

    let plain = generate(
        &model,
        &ids("The capital of France is"),
        &options(3),
        |_| {},
    );
    let text = tokenizer.decode(&plain.tokens, false).unwrap();
    assert!(text.starts_with(" Paris."), "{text:?} ({:?})", plain.tokens);
}

/// A batch of sampled continuations after one shared prefill gives, for continuation `i`, what
/// a single generation with seed `seed + i` gives: greedy and sampled, with a stop sequence
/// and the length limit ending different continuations at different steps.
#[test]
fn smollm2_batched_samples_equal_single_generations() {
    use fuselab_ml::llm::generate::{
        GenerateOptions, Sampling, StopRule, generate, generate_samples,
    };
    let bytes = smollm2();
    let gguf = Gguf::parse(&bytes, "SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
    let device = burn::tensor::Device::flex();
    let model = fuselab_ml::llm::load::from_gguf(&gguf, &device).unwrap();
    let tokenizer = fuselab_ml::llm::tokenizer::from_gguf(&gguf).unwrap();
    let prompt = tokenizer
        .encode(
            "<|im_start|>user\nTom has 3 apples and buys 5 more. How many apples?<|im_end|>\n<|im_start|>assistant\n",
            false,
        )
        .unwrap()
        .get_ids()
        .to_vec();
    for temperature in [0.0, 0.8] {
        let options = GenerateOptions {
            max_new_tokens: 10,
            sampling: Sampling {
                temperature,
                top_k: 0,
                top_p: 0.95,
                seed: 40,
            },
            eos: vec![2],
            stop: vec![tokenizer.encode(".", false).unwrap().get_ids().to_vec()],
            stop_rule: StopRule::Suffix,
        };
        let batch = generate_samples(&model, &prompt, &options, 4);
        assert_eq!(batch.len(), 4);
        for (i, sampled) in batch.iter().enumerate() {
            let mut single = options.clone();
            single.sampling.seed += i as u64;
            let alone = generate(&model, &prompt, &single, |_| {});
            assert_eq!(
                sampled.tokens, alone.tokens,
                "temperature {temperature}, sample {i}"
            );
            assert_eq!(sampled.finish, alone.finish);
        }
    }
}

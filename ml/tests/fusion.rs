//! LLM-TOPLA-Summary's model pieces: marker tokens added to a tokenizer and a model, padding
//! with and without a loss, and teacher-forced predictions against generation.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use fuselab_ml::llm::fusion::{MarkerError, add_markers, teacher_forced};
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule, generate};
use fuselab_ml::llm::model::{ForwardOptions, Llama, LlamaConfig, lm_loss};
use fuselab_ml::llm::tokenizer::{TokenizerCodec, train_bpe};
use fuselab_ml::llm::train::{Batch, Codec as _, Encoded};
use fuselab_ml::llm::values;

fn logits(model: &Llama, ids: &[u32]) -> Vec<f32> {
    let device = model.device();
    let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let t = ids.len();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, t]), &device);
    values(
        model
            .forward(
                input,
                None,
                ForwardOptions {
                    train: false,
                    last_only: false,
                },
            )
            .logits,
    )
}

fn tokenizer() -> tokenizers::Tokenizer {
    let texts: Vec<String> = (0..40)
        .map(|i| format!("question {i} asks what {} plus {} is", i * 3, i + 7))
        .collect();
    train_bpe(&texts, 120, &["<bos>", "<eos>", "[PAD]"]).unwrap()
}

#[test]
fn adding_markers_keeps_the_logits_of_existing_tokens() {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu).unwrap();
    for tied in [true, false] {
        let mut tokenizer = tokenizer();
        let vocab = tokenizer.get_vocab_size(true);
        let config = LlamaConfig {
            tie_word_embeddings: tied,
            ..LlamaConfig::tiny(vocab)
        };
        let mut model = config.init(&device, 3).unwrap();
        let text = "question 5 asks what 15 plus 12 is";
        let ids = TokenizerCodec(tokenizer.clone()).encode(text);
        let before = logits(&model, &ids);
        let markers: Vec<String> = ["[BOQ]", "[EOQ]", "[BOC 0]"].map(str::to_owned).to_vec();
        let added = add_markers(&mut tokenizer, &mut model, &markers, 9, 0.01).unwrap();
        assert_eq!(
            added,
            vec![vocab as u32, vocab as u32 + 1, vocab as u32 + 2]
        );
        assert_eq!(model.vocab_size(), vocab + 3);
        let after = logits(&model, &ids);
        assert_eq!(after.len(), ids.len() * (vocab + 3));
        for (position, row) in after.chunks(vocab + 3).enumerate() {
            let old = &before[position * vocab..(position + 1) * vocab];
            let error = row[..vocab]
                .iter()
                .zip(old)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                error <= 1e-6,
                "tied {tied}: position {position} moved by {error}"
            );
        }
        // The markers encode as single ids, and the markers differ from each other.
        let codec = TokenizerCodec(tokenizer.clone());
        let marked = codec.encode("[BOQ]question 5[EOQ][BOC 0]");
        assert_eq!(marked[0], added[0]);
        assert!(marked.contains(&added[1]) && marked.contains(&added[2]));
        let embed = fuselab_ml::llm::train::host(&model.added.as_ref().unwrap().embed).1;
        let d = model.config.hidden_size;
        assert_ne!(embed[..d], embed[d..2 * d]);
        // Folding the added rows into the tables changes nothing.
        let folded = model.with_tokens_folded();
        assert!(folded.added.is_none());
        let a = logits(&model, &marked);
        let b = logits(&folded, &marked);
        let error = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(error <= 1e-5, "folded model differs by {error}");
        // Adding a marker twice is refused.
        let again = add_markers(&mut tokenizer, &mut model, &markers[..1], 9, 0.01).unwrap_err();
        assert!(matches!(again, MarkerError::Clash { .. }), "{again}");
    }
}

#[test]
fn padding_carries_no_loss_unless_asked() {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu).unwrap();
    let model = LlamaConfig::tiny(40).init(&device, 4).unwrap();
    let examples = common::toy_examples(3, 1);
    let rows: Vec<&Encoded> = examples.iter().collect();
    let loss = |batch: &Batch| {
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(batch.ids.clone(), [batch.rows, batch.width]),
            &device,
        );
        let out = model.forward(
            ids,
            None,
            ForwardOptions {
                train: false,
                last_only: false,
            },
        );
        values(lm_loss(out.logits, &batch.labels))[0]
    };
    let tight = Batch::pad(&rows, 0, 1);
    let wide = Batch::pad(&rows, 0, tight.width + 6);
    let (a, b) = (loss(&tight), loss(&wide));
    assert!(
        (a - b).abs() <= 1e-5,
        "padding changed the loss: {a} vs {b}"
    );
    assert_eq!(tight.target_tokens(), wide.target_tokens());
    let counted = wide.clone().with_pad_in_loss(0);
    assert!(counted.target_tokens() > wide.target_tokens());
    let c = loss(&counted);
    assert!(
        (c - b).abs() > 1e-3,
        "pads in the loss must change it: {c} vs {b}"
    );
}

#[test]
fn teacher_forcing_conditions_on_the_gold_prefix_and_generation_on_its_own() {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu).unwrap();
    let model = LlamaConfig::tiny(40).init(&device, 5).unwrap();
    let prompt = [3_u32, 9, 14, 2];
    let options = GenerateOptions {
        max_new_tokens: 5,
        sampling: Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        eos: vec![],
        stop: vec![],
        stop_rule: StopRule::Suffix,
    };
    let generated = generate(&model, &prompt, &options, |_| {}).tokens;
    assert_eq!(generated.len(), 5);
    // A gold answer whose first token is not the model's: teacher forcing then reads the gold
    // token, generation its own.
    let target: Vec<u32> = (0..5).map(|i| (generated[i] + 1 + i as u32) % 40).collect();
    let forced = teacher_forced(&model, &prompt, &target);
    assert_eq!(forced.len(), target.len());
    assert_eq!(
        forced[0], generated[0],
        "the first position sees the same context"
    );
    for i in 0..target.len() {
        let mut context = prompt.to_vec();
        context.extend(&target[..i]);
        let row = logits(&model, &context);
        let last = &row[(context.len() - 1) * 40..];
        let argmax = last
            .iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |best, (j, &v)| if v > best.1 { (j, v) } else { best },
            )
            .0;
        assert_eq!(forced[i] as usize, argmax, "position {i}");
    }
    assert_ne!(
        forced, generated,
        "teacher forcing and generation should disagree here"
    );
}

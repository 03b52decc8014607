//! The Llama, `LoRA`, mixture-of-experts and training pieces on hand-checkable cases (CPU).

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use fuselab_ml::llm::h3fusion::{Quirks, assemble, gate_labels};
use fuselab_ml::llm::lora::{self, LoraConfig};
use fuselab_ml::llm::model::{ForwardOptions, KvCache, Llama, LlamaConfig, Mlp, RopeStyle, SwiGlu};
use fuselab_ml::llm::train::{
    Batch, GateLoss, Objective, OptimConfig, Schedule, TrainConfig, Trainer, all_parameters, drift,
    gate_loss, host, lora_only, scalar,
};

mod common;
use common::toy_examples;

fn device() -> Device {
    Device::flex()
}

fn config() -> LlamaConfig {
    LlamaConfig {
        max_position_embeddings: 64,
        ..LlamaConfig::tiny(40)
    }
}

fn ids(values: &[i64]) -> Tensor<2, Int> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [1, values.len()]),
        &device(),
    )
}

fn logits(model: &Llama, tokens: &[i64]) -> Vec<f32> {
    host3(
        model
            .forward(ids(tokens), None, ForwardOptions::default())
            .logits,
    )
}

fn host3(t: Tensor<3>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A tensor rebuilt with its columns reordered: new column `c` = old column `source(c)`.
fn permute_columns(t: &Tensor<2>, source: impl Fn(usize) -> usize) -> Tensor<2> {
    let (shape, values) = host(t);
    let (rows, cols) = (shape[0], shape[1]);
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = values[r * cols + source(c)];
        }
    }
    Tensor::from_data(TensorData::new(out, [rows, cols]), &device())
}

const TOKENS: [i64; 7] = [3, 17, 5, 29, 11, 2, 38];

#[test]
fn rope_layouts_agree_once_q_and_k_are_permuted_like_llama_cpp() {
    let half_split = config().init(&device(), 1).unwrap();
    let hd = half_split.config.head_dim();
    let half = hd / 2;
    // llama.cpp's HF → GGUF permutation: within each head, (2i + j) ← (j·half + i).
    let source = |c: usize| {
        let (head, within) = (c / hd, c % hd);
        head * hd + (within % 2) * half + within / 2
    };
    let mut interleaved = half_split.clone();
    interleaved.config.rope_style = RopeStyle::Interleaved;
    for block in &mut interleaved.blocks {
        block.attention.q.weight = permute_columns(&block.attention.q.weight, source);
        block.attention.k.weight = permute_columns(&block.attention.k.weight, source);
    }
    let error = max_diff(
        &logits(&half_split, &TOKENS),
        &logits(&interleaved, &TOKENS),
    );
    assert!(error < 1e-5, "{error}");
    // And the layouts do differ without the permutation.
    let mut unpermuted = half_split.clone();
    unpermuted.config.rope_style = RopeStyle::Interleaved;
    assert!(max_diff(&logits(&half_split, &TOKENS), &logits(&unpermuted, &TOKENS)) > 1e-4);
}

#[test]
fn grouped_query_attention_equals_multi_head_with_repeated_heads() {
    let gqa = config().init(&device(), 2).unwrap();
    let hd = gqa.config.head_dim();
    let groups = gqa.config.num_attention_heads / gqa.config.num_key_value_heads;
    let mut mha = gqa.clone();
    mha.config.num_key_value_heads = mha.config.num_attention_heads;
    let source = |c: usize| (c / hd / groups) * hd + c % hd;
    let width = gqa.config.num_attention_heads * hd;
    for block in &mut mha.blocks {
        for linear in [&mut block.attention.k, &mut block.attention.v] {
            let (shape, values) = host(&linear.weight);
            let rows = shape[0];
            let cols = shape[1];
            let mut out = vec![0.0; rows * width];
            for r in 0..rows {
                for c in 0..width {
                    out[r * width + c] = values[r * cols + source(c)];
                }
            }
            linear.weight = Tensor::from_data(TensorData::new(out, [rows, width]), &device());
        }
    }
    let error = max_diff(&logits(&gqa, &TOKENS), &logits(&mha, &TOKENS));
    assert!(error < 1e-5, "{error}");
}

#[test]
fn cached_generation_matches_the_full_forward() {
    let model = config().init(&device(), 3).unwrap();
    let vocab = model.config.vocab_size;
    let full = logits(&model, &TOKENS);
    let mut cache = KvCache::default();
    let options = ForwardOptions {
        train: false,
        last_only: true,
    };
    let first = host3(
        model
            .forward(ids(&TOKENS[..3]), Some(&mut cache), options)
            .logits,
    );
    assert!(max_diff(&first, &full[2 * vocab..3 * vocab]) < 1e-5);
    for p in 3..TOKENS.len() {
        let step = host3(
            model
                .forward(ids(&TOKENS[p..=p]), Some(&mut cache), options)
                .logits,
        );
        let error = max_diff(&step, &full[p * vocab..(p + 1) * vocab]);
        assert!(error < 1e-5, "position {p}: {error}");
    }
    assert_eq!(cache.len(), TOKENS.len());
}

fn all_targets() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: lora::PROJECTIONS.map(str::to_owned).to_vec(),
    }
}

/// Gives every adapter a non-zero `B`.
fn randomise_b(model: &mut Llama) {
    let mut k = 0.0_f32;
    model.linears_mut(&mut |_, linear| {
        if let Some(l) = linear.lora.as_mut() {
            let [r, out] = l.b.dims();
            k += 1.0;
            let values: Vec<f32> = (0..r * out)
                .map(|i| ((i as f32 * 0.37 + k).sin()) * 0.05)
                .collect();
            l.b = Tensor::from_data(TensorData::new(values, [r, out]), &device());
        }
    });
}

#[test]
fn lora_starts_as_a_no_op_and_merging_changes_nothing() {
    let base = config().init(&device(), 4).unwrap();
    let mut adapted = base.clone();
    let attached = lora::attach(&mut adapted, &all_targets(), 9, &|_| true).unwrap();
    assert_eq!(attached, 7 * base.config.num_hidden_layers);
    assert!(max_diff(&logits(&base, &TOKENS), &logits(&adapted, &TOKENS)) < 1e-6);

    randomise_b(&mut adapted);
    let unmerged = logits(&adapted, &TOKENS);
    assert!(max_diff(&unmerged, &logits(&base, &TOKENS)) > 1e-4);
    lora::merge(&mut adapted);
    assert!(max_diff(&unmerged, &logits(&adapted, &TOKENS)) < 1e-5);
    lora::unmerge(&mut adapted);
    assert!(max_diff(&unmerged, &logits(&adapted, &TOKENS)) < 1e-5);
    // Unmerging restores the frozen weights.
    let restored = host(&adapted.blocks[0].attention.q.weight).1;
    let original = host(&base.blocks[0].attention.q.weight).1;
    let error = restored
        .iter()
        .zip(&original)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(error < 1e-6, "{error}");
}

#[test]
fn peft_export_and_import_round_trip() {
    let mut adapted = config().init(&device(), 5).unwrap();
    lora::attach(&mut adapted, &all_targets(), 3, &|n| n.contains("layers.1")).unwrap();
    randomise_b(&mut adapted);
    let exported: HashMap<_, _> = lora::export_peft(&adapted).into_iter().collect();
    let (shape, _) = &exported["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
    assert_eq!(shape, &vec![4, 64], "PEFT's lora_A is [r, in]");
    let mut imported = config().init(&device(), 5).unwrap();
    let count = lora::import_peft(&mut imported, &exported, 2.0, 0.0).unwrap();
    assert_eq!(count, 7);
    assert!(max_diff(&logits(&adapted, &TOKENS), &logits(&imported, &TOKENS)) < 1e-6);
    // A name the model lacks is refused.
    let mut wrong = exported.clone();
    wrong.insert(
        "base_model.model.nowhere.lora_A.weight".to_owned(),
        (vec![1], vec![0.0]),
    );
    assert!(lora::import_peft(&mut imported, &wrong, 2.0, 0.0).is_err());
}

#[test]
fn a_mixture_of_identical_experts_is_the_dense_mlp_for_any_router() {
    let base = config().init(&device(), 6).unwrap();
    let dense = logits(&base, &TOKENS);
    for top_k in 1..=3 {
        let moe = assemble(
            &base,
            &[&base, &base, &base],
            top_k,
            0.0,
            Quirks::default(),
            11,
        )
        .unwrap();
        assert!(matches!(moe.blocks[0].mlp, Mlp::Moe(_)));
        let error = max_diff(&dense, &logits(&moe, &TOKENS));
        assert!(error < 1e-5, "top-{top_k}: {error}");
    }
}

/// The sparse dispatch against the dense formula `Σ_e g_e·MLP_e(x)` with renormalised top-2.
#[test]
fn top_k_routing_renormalises_and_mixes_the_selected_experts() {
    let base = config().init(&device(), 7).unwrap();
    let mut experts = Vec::new();
    for seed in 0..3 {
        let mut e = base.clone();
        lora::attach(&mut e, &LoraConfig::h3fusion_mlp(), seed, &|_| true).unwrap();
        randomise_b(&mut e);
        // Distinct experts: scale each adapter differently.
        e.linears_mut(&mut |_, l| {
            if let Some(lora) = l.lora.as_mut() {
                lora.b = lora.b.clone().mul_scalar(1.0 + seed as f64 * 3.0);
            }
        });
        experts.push(e);
    }
    let refs: Vec<&Llama> = experts.iter().collect();
    let moe = assemble(&base, &refs, 2, 0.0, Quirks::default(), 5).unwrap();
    let Mlp::Moe(block) = &moe.blocks[0].mlp else {
        panic!("not a mixture")
    };
    let x: Tensor<2> = Tensor::from_data(
        TensorData::new(
            (0..5 * 64)
                .map(|i| ((i as f32) * 0.13).cos())
                .collect::<Vec<f32>>(),
            [5, 64],
        ),
        &device(),
    );
    let (y, probabilities) = block.forward(x.clone(), false);
    let p = host(&probabilities).1;
    let outputs: Vec<Vec<f32>> = block
        .experts
        .iter()
        .map(|e: &SwiGlu| host(&e.forward(x.clone(), false)).1)
        .collect();
    let y = host(&y).1;
    for token in 0..5 {
        let row = &p[token * 3..token * 3 + 3];
        let mut order = [0, 1, 2];
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let kept = row[order[0]] + row[order[1]];
        for d in 0..64 {
            let expected: f32 = order[..2]
                .iter()
                .map(|&e| row[e] / kept * outputs[e][token * 64 + d])
                .sum();
            let got = y[token * 64 + d];
            assert!((expected - got).abs() < 1e-5, "token {token} dim {d}");
        }
    }
}

#[test]
fn experts_are_the_base_plus_their_scaled_adapter() {
    let base = config().init(&device(), 8).unwrap();
    let mut expert = base.clone();
    lora::attach(&mut expert, &LoraConfig::h3fusion_mlp(), 1, &|_| true).unwrap();
    randomise_b(&mut expert);
    for (quirks, scale) in [(Quirks::default(), 0.5_f32), (Quirks::reference(), 1.0)] {
        let moe = assemble(&base, &[&expert, &base], 1, 0.0, quirks, 0).unwrap();
        let Mlp::Moe(block) = &moe.blocks[1].mlp else {
            panic!("not a mixture")
        };
        let Mlp::Dense(tuned) = &expert.blocks[1].mlp else {
            panic!("dense expected")
        };
        let Mlp::Dense(plain) = &base.blocks[1].mlp else {
            panic!("dense expected")
        };
        let lora = tuned.up.lora.as_ref().unwrap();
        let delta = host(&lora.a.clone().matmul(lora.b.clone())).1;
        let w = host(&plain.up.weight).1;
        let built = host(&block.experts[0].up.weight).1;
        for i in 0..w.len() {
            assert!((built[i] - (w[i] + scale * delta[i])).abs() < 1e-6);
        }
        // Expert 1 had no adapter: the base MLP.
        assert!(max_diff(&host(&block.experts[1].up.weight).1, &w) < 1e-7);
    }
}

#[test]
fn gate_labels_follow_the_origin_task_or_the_reference_bug() {
    assert_eq!(gate_labels([2, 1, 3], false), vec![0, 0, 1, 2, 2, 2]);
    assert_eq!(gate_labels([2, 1, 3], true), vec![0, 0, 1, 1, 1, 2]);
    assert_eq!(gate_labels([5, 1, 2], true), vec![0, 0, 0, 0, 0, 1, 1, 1]);
}

#[test]
fn gate_loss_matches_the_hand_computed_double_softmax_and_nll() {
    // One layer, two examples of two positions, three experts.
    let p = [
        [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]],
        [[0.1, 0.1, 0.8], [0.2, 0.2, 0.6]],
    ];
    let flat: Vec<f32> = p.iter().flatten().flatten().copied().collect();
    let router = vec![Tensor::<3>::from_data(
        TensorData::new(flat, [2, 2, 3]),
        &device(),
    )];
    let tasks = [0, 2];
    let real = [1.0, 1.0, 1.0, 0.0];
    let mean = |i: usize, upto: usize| -> Vec<f64> {
        (0..3)
            .map(|e| (0..upto).map(|t| f64::from(p[i][t][e])).sum::<f64>() / upto as f64)
            .collect()
    };
    let ce = |m: &[f64], c: usize| -> f64 {
        let z: f64 = m.iter().map(|v| v.exp()).sum();
        -(m[c].exp() / z).ln()
    };
    let expected = f64::midpoint(ce(&mean(0, 2), 0), ce(&mean(1, 2), 2));
    let got = f64::from(scalar(&gate_loss(
        &router,
        &real,
        &tasks,
        GateLoss::Reference,
    )));
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    // NLL with the padded position of example 1 left out.
    let expected = (-(mean(0, 2)[0]).ln() - (mean(1, 1)[2]).ln()) / 2.0;
    let got = f64::from(scalar(&gate_loss(&router, &real, &tasks, GateLoss::Nll)));
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}

#[test]
fn drift_is_the_sum_of_adapter_norms_over_the_layers() {
    let base = config().init(&device(), 9).unwrap();
    let mut moe = assemble(&base, &[&base, &base, &base], 2, 0.0, Quirks::default(), 1).unwrap();
    lora::attach(&mut moe, &LoraConfig::h3fusion_mlp(), 2, &|_| true).unwrap();
    randomise_b(&mut moe);
    let mut expected = 0.0;
    moe.visit(&mut |name, t| {
        if name.contains("experts.1.") && name.contains(".lora_") {
            expected += host(t)
                .1
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
        }
    });
    expected /= moe.config.num_hidden_layers as f64;
    let got = f64::from(scalar(&drift(&moe, 1, &lora_only).unwrap()));
    assert!(
        (got - expected).abs() < 1e-4 * expected.max(1.0),
        "{got} vs {expected}"
    );
}

#[test]
fn schedules_follow_hugging_face() {
    let mut optim = OptimConfig::adamw(1.0);
    optim.warmup_ratio = 0.1;
    optim.schedule = Schedule::Constant;
    // HF's `constant` ignores the warm-up.
    assert!((optim.learning_rate_at(0, 100) - 1.0).abs() < 1e-12);
    optim.schedule = Schedule::ConstantWithWarmup;
    assert!((optim.learning_rate_at(5, 100) - 0.5).abs() < 1e-12);
    optim.schedule = Schedule::Linear;
    assert!((optim.learning_rate_at(10, 100) - 1.0).abs() < 1e-12);
    assert!((optim.learning_rate_at(55, 100) - 0.5).abs() < 1e-12);
    optim.schedule = Schedule::Cosine;
    assert!((optim.learning_rate_at(55, 100) - 0.5).abs() < 1e-12);
    assert!(optim.learning_rate_at(99, 100) < 0.01);
}

fn toy_config(max_steps: usize) -> TrainConfig {
    TrainConfig {
        optim: OptimConfig {
            schedule: Schedule::Cosine,
            gradient_accumulation: 2,
            weight_decay: 0.01,
            ..OptimConfig::adamw(5e-3)
        },
        batch_size: 4,
        epochs: 1,
        max_steps,
        max_len: 32,
        pad_to_dataset: false,
        pad_in_loss: false,
        seed: 3,
    }
}

#[test]
fn training_lowers_the_loss_and_resumes_exactly() {
    let model = config().init(&device(), 10).unwrap();
    let mut straight = Trainer::new(
        model.clone(),
        Objective::Lm,
        toy_config(8),
        toy_examples(12, 0),
        all_parameters,
        0,
    )
    .unwrap();
    let first = straight.step().loss;
    for _ in 1..8 {
        straight.step();
    }
    assert!(straight.finished());

    let mut resumed = Trainer::new(
        model.clone(),
        Objective::Lm,
        toy_config(8),
        toy_examples(12, 0),
        all_parameters,
        0,
    )
    .unwrap();
    for _ in 0..3 {
        resumed.step();
    }
    let checkpoint = resumed.checkpoint();
    let state = resumed.state.clone();
    let mut continued = Trainer::new(
        model,
        Objective::Lm,
        toy_config(8),
        toy_examples(12, 0),
        all_parameters,
        0,
    )
    .unwrap();
    continued.restore(&checkpoint, state).unwrap();
    while !continued.finished() {
        continued.step();
    }
    let a = host(&straight.model.embed).1;
    let b = host(&continued.model.embed).1;
    let error = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(error < 1e-6, "resumed run differs by {error}");

    let batch = Batch::pad(&toy_examples(12, 0).iter().collect::<Vec<_>>(), 0, 1);
    let loss = |m: &Llama| {
        let terms = Objective::Lm.terms(m, &batch, &all_parameters);
        f64::from(scalar(&terms[0].1))
    };
    assert!(
        loss(&straight.model) < first,
        "{} !< {first}",
        loss(&straight.model)
    );
}

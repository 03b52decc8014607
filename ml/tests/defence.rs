//! Booster, Vaccine and Lisa on hand-checkable cases (CPU): Booster's assembled gradient on a
//! quadratic, exact restore after the perturbation, λ = 0 is SFT; Lisa's state and anchor
//! schedule, its proximal gradient and a resumable run; Vaccine's perturbation norm.

use std::collections::BTreeMap;
use std::sync::Mutex;

use burn::tensor::{Device, Tensor, TensorData};
use fuselab_ml::llm::defence::{
    BoosterConfig, LisaBatch, LisaConfig, LisaSchedule, LisaState, Named, VaccineConfig,
    booster_gradient, global_norm, harmful_passes, proximal, vaccine_perturbation,
};
use fuselab_ml::llm::model::Llama;
use fuselab_ml::llm::train::{
    Batch, Method, Objective, OptimConfig, Schedule, TrainConfig, Trainer, cycled_batch, host,
    lora_only, scalar,
};

mod common;
use common::{lora_model, toy_examples};

/// burn's CPU backend keeps one global random generator (dropout masks); tests that train
/// with dropout take turns so that each run's seeding is its own.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn device() -> Device {
    Device::flex()
}

fn tensor(values: &[f32], shape: [usize; 2]) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &device())
}

fn values(t: &Tensor<2>) -> Vec<f32> {
    host(t).1
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `Q` (symmetric positive definite) of `h(w) = ½·wᵀQw`, as rows.
const Q: [[f32; 3]; 3] = [[2.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 3.0]];

fn q_times(v: &[f32]) -> Vec<f32> {
    Q.iter()
        .map(|row| row.iter().zip(v).map(|(q, x)| q * x).sum())
        .collect()
}

/// `(∇h(w), h(w))` of the quadratic, by burn's autodiff over two named tensors.
fn quadratic(weights: &Named) -> (Named, f64) {
    let q = tensor(&Q.concat(), [3, 3]);
    let leaves: Vec<(String, Tensor<2>)> = weights
        .iter()
        .map(|(n, w)| (n.clone(), w.clone().autodiff().require_grad()))
        .collect();
    let w = Tensor::cat(leaves.iter().map(|(_, t)| t.clone()).collect(), 1); // [1, 3]
    let loss = w.clone().matmul(q).mul(w).sum().mul_scalar(0.5);
    let value = f64::from(scalar(&loss));
    let grads = loss.backward();
    let gradient = leaves
        .iter()
        .map(|(n, leaf)| (n.clone(), leaf.grad(&grads).unwrap()))
        .collect();
    (gradient, value)
}

#[test]
fn booster_gradient_on_a_quadratic_matches_the_closed_form() {
    let w = [0.7_f32, -1.2, 0.4];
    let weights: Named = BTreeMap::from([
        ("a".to_owned(), tensor(&w[..2], [1, 2])),
        ("b".to_owned(), tensor(&w[2..], [1, 1])),
    ]);
    let alignment: Named = BTreeMap::from([
        ("a".to_owned(), tensor(&[0.1, 0.2], [1, 2])),
        ("b".to_owned(), tensor(&[-0.3], [1, 1])),
    ]);
    let (lambda, alpha) = (5.0, 0.1);
    let passes = harmful_passes(&weights, alpha, &mut |w| quadratic(w));
    let assembled = booster_gradient(alignment, &passes, lambda);

    // ∇f + λ·(Qw − Q(w − α·g/‖g‖)) = ∇f + λ·α·Q·g/‖g‖ with g = Qw.
    let g = q_times(&w);
    let norm = g.iter().map(|x| x * x).sum::<f32>().sqrt();
    let qg = q_times(&g);
    let f = [0.1_f32, 0.2, -0.3];
    let expected: Vec<f32> = (0..3)
        .map(|i| f[i] + (lambda * alpha) as f32 * qg[i] / (norm + 1e-7))
        .collect();
    let mut got = values(&assembled["a"]);
    got.extend(values(&assembled["b"]));
    assert!(max_diff(&got, &expected) < 1e-5, "{got:?} vs {expected:?}");
    assert!((passes.norm - f64::from(norm)).abs() < 1e-5);
    // The simulated step lowers h: h(w̃) < h(w).
    assert!(passes.perturbed_loss < passes.loss);
    // The weights handed in are untouched.
    assert_eq!(values(&weights["a"]), w[..2].to_vec());

    // λ = 0: the alignment gradient alone.
    let alignment: Named = BTreeMap::from([("a".to_owned(), tensor(&[0.1, 0.2], [1, 2]))]);
    let plain = booster_gradient(alignment, &passes, 0.0);
    assert_eq!(values(&plain["a"]), vec![0.1, 0.2]);
}

fn train_config(learning_rate: f64, steps: usize, batch_size: usize) -> TrainConfig {
    TrainConfig {
        optim: OptimConfig {
            schedule: Schedule::Constant,
            ..OptimConfig::adamw(learning_rate)
        },
        batch_size,
        epochs: 1,
        max_steps: steps,
        max_len: 32,
        pad_to_dataset: false,
        pad_in_loss: false,
        seed: 9,
    }
}

fn trainer(model: Llama, learning_rate: f64, steps: usize, method: Method) -> Trainer {
    Trainer::new(
        model,
        Objective::Lm,
        train_config(learning_rate, steps, 4),
        toy_examples(12, 0),
        lora_only,
        0,
    )
    .unwrap()
    .with_method(method)
    .unwrap()
}

fn booster(lambda: f64) -> Method {
    Method::Booster {
        config: BoosterConfig {
            lambda,
            alpha: 0.1,
            harmful_batch_size: 3,
            perturb_aware: None,
        },
        harmful: toy_examples(5, 17),
    }
}

fn weights(model: &Llama) -> Vec<f32> {
    let mut out = Vec::new();
    model.visit(&mut |_, t| out.extend(values(t)));
    out
}

#[test]
fn booster_restores_the_weights_exactly_after_the_perturbation() {
    let _serial = serial();
    let model = lora_model(&device(), 0.0);
    let before = weights(&model);
    // Learning rate 0: the only change to the weights could come from the perturbation.
    let mut run = trainer(model, 0.0, 2, booster(5.0));
    let report = run.step();
    assert!(report.terms.contains_key("booster"), "{:?}", report.terms);
    assert!(
        report.terms["booster"] > 0.0,
        "h(w̃) < h(w) for a small step"
    );
    let after = weights(&run.model);
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "weights changed"
    );
}

#[test]
fn booster_with_lambda_zero_is_sft() {
    let _serial = serial();
    let model = lora_model(&device(), 0.1);
    let mut sft = trainer(model.clone(), 1e-2, 3, Method::Plain);
    let mut zero = trainer(model, 1e-2, 3, booster(0.0));
    for _ in 0..3 {
        let a = sft.step();
        let b = zero.step();
        assert!((a.terms["lm"] - b.terms["lm"]).abs() < 1e-6);
    }
    let error = max_diff(&weights(&sft.model), &weights(&zero.model));
    assert!(error < 1e-6, "λ = 0 differs from SFT by {error}");
    let mut moved = trainer(lora_model(&device(), 0.1), 1e-2, 3, booster(5.0));
    for _ in 0..3 {
        moved.step();
    }
    assert!(max_diff(&weights(&sft.model), &weights(&moved.model)) > 1e-4);
}

#[test]
fn the_harmful_loader_cycles_through_every_example_each_epoch() {
    let harmful = toy_examples(5, 17);
    for epoch in 0..3 {
        let mut seen: Vec<Vec<u32>> = Vec::new();
        for within in 0..2 {
            let (batch, e) = cycled_batch(&harmful, 3, 42, epoch * 2 + within, 0, 1);
            assert_eq!(e, epoch);
            for row in 0..batch.rows {
                let ids: Vec<u32> = batch.ids[row * batch.width..(row + 1) * batch.width]
                    .iter()
                    .map(|&id| u32::try_from(id).unwrap())
                    .filter(|&id| id != 0)
                    .collect();
                seen.push(ids);
            }
        }
        let mut expected: Vec<Vec<u32>> = harmful.iter().map(|e| e.ids.clone()).collect();
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected, "epoch {epoch}");
    }
    // Epochs are reshuffled.
    let first = cycled_batch(&harmful, 3, 42, 0, 0, 1).0;
    let orders: Vec<Batch> = (1..6)
        .map(|e| cycled_batch(&harmful, 3, 42, 2 * e, 0, 1).0)
        .collect();
    assert!(orders.iter().any(|b| b.ids != first.ids));
}

#[test]
fn lisa_schedule_follows_the_reference_trace() {
    let config = LisaConfig {
        align_steps: 2,
        user_steps: 3,
        rho: 1.0,
    };
    let total = 20;
    let mut schedule = LisaSchedule::new(&config, true);
    let trace: Vec<_> = (0..12).map(|_| schedule.next(&config, total)).collect();
    let states: String = trace
        .iter()
        .map(|s| match s.state {
            LisaState::Align => 'A',
            LisaState::User => 'U',
        })
        .collect();
    assert_eq!(states, "AAUUUAAUUUAA");
    // Alignment steps train on guide batches: those steps' user batches are skipped.
    for s in &trace {
        assert_eq!(s.batch == LisaBatch::Guide, s.state == LisaState::Align);
    }
    let refreshes: Vec<(usize, LisaState)> = trace
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.refresh.map(|r| (i, r)))
        .collect();
    assert_eq!(
        refreshes,
        vec![
            (2, LisaState::Align),
            (5, LisaState::User),
            (7, LisaState::Align),
            (10, LisaState::User)
        ]
    );
    // No proximal term while step ≤ 0.1·total = 2.
    let proximal: Vec<bool> = trace.iter().map(|s| s.proximal).collect();
    assert_eq!(&proximal[..4], &[false, false, false, true]);
    assert!(proximal[3..].iter().all(|&p| p));

    // ρ = 0 is plain bi-state optimisation: the same states, never a proximal term.
    let bso = LisaConfig { rho: 0.0, ..config };
    let mut plain = LisaSchedule::new(&bso, true);
    let bso_trace: Vec<_> = (0..12).map(|_| plain.next(&bso, total)).collect();
    assert!(bso_trace.iter().all(|s| !s.proximal));
    assert!(
        bso_trace
            .iter()
            .zip(&trace)
            .all(|(a, b)| a.state == b.state && a.refresh == b.refresh)
    );
    // Without guide data, only user steps.
    let mut lone = LisaSchedule::new(&config, false);
    assert!((0..12).all(|_| lone.next(&config, total).state == LisaState::User));
}

#[test]
fn lisa_proximal_gradient_is_rho_times_the_distance() {
    let rho = 0.7;
    let w = [0.5_f32, -1.0, 2.0, 0.25];
    let a = [0.1_f32, 0.3, -0.2, 0.25];
    let leaf = tensor(&w, [2, 2]).autodiff().require_grad();
    let weights: Named = BTreeMap::from([("x".to_owned(), leaf.clone())]);
    let anchors: Named = BTreeMap::from([("x".to_owned(), tensor(&a, [2, 2]))]);
    let term = proximal(&weights, &anchors, rho).unwrap();
    let expected_value: f32 = w
        .iter()
        .zip(&a)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        * 0.35;
    assert!((scalar(&term) - expected_value).abs() < 1e-5);
    let grads = term.backward();
    let gradient = values(&leaf.grad(&grads).unwrap());
    let expected: Vec<f32> = w.iter().zip(&a).map(|(x, y)| 0.7 * (x - y)).collect();
    assert!(max_diff(&gradient, &expected) < 1e-6);
}

fn lisa(rho: f64) -> Method {
    Method::Lisa {
        config: LisaConfig {
            align_steps: 2,
            user_steps: 3,
            rho,
        },
        guide: toy_examples(6, 23),
    }
}

#[test]
fn lisa_runs_both_states_and_resumes_exactly() {
    let _serial = serial();
    let model = lora_model(&device(), 0.1);
    let steps = 12;
    let mut straight = trainer(model.clone(), 1e-2, steps, lisa(1.0));
    let mut reports = Vec::new();
    while !straight.finished() {
        reports.push(straight.step());
    }
    let states: String = reports
        .iter()
        .map(|r| match r.state {
            Some(LisaState::Align) => 'A',
            Some(LisaState::User) => 'U',
            None => '?',
        })
        .collect();
    assert_eq!(states, "AAUUUAAUUUAA");
    // The proximal term appears after the first tenth (step index > 1.2) and is ≥ 0; at the
    // step a state is entered, the centre is the current iterate, so the term is 0 there.
    assert!(!reports[1].terms.contains_key("proximal"));
    assert!(reports[3].terms["proximal"] > 0.0);
    assert!(reports[5].terms["proximal"].abs() < 1e-12);

    let mut first = trainer(model.clone(), 1e-2, steps, lisa(1.0));
    for _ in 0..6 {
        first.step();
    }
    let checkpoint = first.checkpoint();
    assert!(checkpoint.keys().any(|k| k.starts_with("anchor.user/")));
    let mut resumed = trainer(model.clone(), 1e-2, steps, lisa(1.0));
    resumed.restore(&checkpoint, first.state.clone()).unwrap();
    while !resumed.finished() {
        resumed.step();
    }
    let error = max_diff(&weights(&straight.model), &weights(&resumed.model));
    assert!(error < 1e-6, "resumed Lisa run differs by {error}");

    // Without the anchors, the checkpoint is refused rather than resumed wrongly.
    let mut partial = checkpoint.clone();
    partial.retain(|k, _| !k.starts_with("anchor."));
    let mut refused = trainer(model.clone(), 1e-2, steps, lisa(1.0));
    let error = refused.restore(&partial, first.state.clone()).unwrap_err();
    assert!(error.to_string().contains("anchor"), "{error}");

    // ρ = 0 (BSO) never adds the term.
    let mut bso = trainer(model, 1e-2, steps, lisa(0.0));
    while !bso.finished() {
        assert!(!bso.step().terms.contains_key("proximal"));
    }
}

#[test]
fn vaccine_perturbation_has_norm_rho_and_raises_the_loss() {
    let _serial = serial();
    let model = lora_model(&device(), 0.0);
    let examples = toy_examples(4, 3);
    let batch = Batch::pad(&examples.iter().collect::<Vec<_>>(), 0, 1);
    let rho = 0.5;
    let perturb = vaccine_perturbation(&model, &batch, rho);
    assert_eq!(perturb.len(), model.blocks.len());
    let named: Named = perturb
        .iter()
        .enumerate()
        .map(|(i, t)| (i.to_string(), t.clone()))
        .collect();
    let norm = global_norm(&named);
    assert!((norm - rho).abs() < 1e-4, "norm {norm}");
    let loss = |p: &[Tensor<2>]| {
        let terms = Objective::Lm.terms_perturbed(&model, &batch, &lora_only, p);
        f64::from(scalar(&terms[0].1))
    };
    let clean = loss(&[]);
    let ascent = loss(&perturb);
    let descent: Vec<Tensor<2>> = perturb.iter().map(|p| p.clone().neg()).collect();
    assert!(ascent > clean && clean > loss(&descent), "{ascent} {clean}");

    // A Vaccine run trains: the clean loss on its data goes down.
    let data = toy_examples(12, 0);
    let all = Batch::pad(&data.iter().collect::<Vec<_>>(), 0, 1);
    let clean_loss = |m: &Llama| {
        let terms = Objective::Lm.terms(m, &all, &lora_only);
        f64::from(scalar(&terms[0].1))
    };
    let mut run = trainer(
        lora_model(&device(), 0.0),
        2e-2,
        12,
        Method::Vaccine(VaccineConfig { rho }),
    );
    let before = clean_loss(&run.model);
    while !run.finished() {
        assert!(run.step().loss.is_finite());
    }
    let after = clean_loss(&run.model);
    assert!(after < before, "{after} !< {before}");
}

#[test]
fn defended_methods_refuse_accumulation() {
    let _serial = serial();
    let mut config = train_config(1e-3, 2, 4);
    config.optim.gradient_accumulation = 2;
    let made = Trainer::new(
        lora_model(&device(), 0.0),
        Objective::Lm,
        config,
        toy_examples(8, 0),
        lora_only,
        0,
    )
    .unwrap()
    .with_method(booster(5.0));
    let error = made.unwrap_err().to_string();
    assert!(error.contains("gradient_accumulation"), "{error}");
}

#[test]
fn booster_with_vaccine_uses_the_perturbed_alignment_pass() {
    let _serial = serial();
    let with = |perturb_aware: Option<f64>| {
        let method = Method::Booster {
            config: BoosterConfig {
                lambda: 5.0,
                alpha: 0.1,
                harmful_batch_size: 3,
                perturb_aware,
            },
            harmful: toy_examples(5, 17),
        };
        let mut run = trainer(lora_model(&device(), 0.0), 1e-2, 2, method);
        let report = run.step();
        (report, weights(&run.model))
    };
    let (plain, plain_weights) = with(None);
    let (perturbed, perturbed_weights) = with(Some(0.5));
    // The harmful passes are the same; the alignment loss is measured under the perturbation,
    // which raises it, and the update differs.
    assert!((plain.terms["booster"] - perturbed.terms["booster"]).abs() < 1e-9);
    assert!(perturbed.terms["lm"] > plain.terms["lm"]);
    assert!(max_diff(&plain_weights, &perturbed_weights) > 1e-6);
}

//! CTR models: padding never changes a score, the contrastive losses against hand-computed
//! values and finite differences, and a checkpoint round trip that resumes to the same numbers.

use std::fmt::Write as _;

use burn::tensor::{Tensor, TensorData};
use fuselab_ml::Device;
use fuselab_ml::ctr::loss::{attraction, repulsion};
use fuselab_ml::ctr::train::{Control, EpochRecord, Hooks, TrainOptions, TrainState};
use fuselab_ml::ctr::{Batch, CtrConfig, CtrModel, Layout, ModelKind, Reading};
use fuselab_shared::ctr::encode::{Encoded, Preprocessor, csv_table};
use fuselab_shared::ctr::pairs::{Pair, PairKind};
use fuselab_shared::ctr::schema::Schema;
use fuselab_shared::rng::SplitMix64;

fn schema(max_len: usize) -> Schema {
    serde_json::from_value(serde_json::json!({
        "label": "click", "user": "user", "page": "page",
        "target": ["item", "cat"], "sequence": ["hist", "hist_cat"],
        "trigger": ["trig", "trig_cat"], "negative_sequence": ["neg", "neg_cat"],
        "features": [
            {"name": "user", "type": "categorical"},
            {"name": "item", "type": "categorical"},
            {"name": "cat", "type": "categorical"},
            {"name": "trig", "type": "categorical", "share_embedding": "item"},
            {"name": "trig_cat", "type": "categorical", "share_embedding": "cat"},
            {"name": "hist", "type": "sequence", "splitter": "^", "max_len": max_len, "share_embedding": "item"},
            {"name": "hist_cat", "type": "sequence", "splitter": "^", "max_len": max_len, "share_embedding": "cat"},
            {"name": "neg", "type": "sequence", "splitter": "^", "max_len": max_len, "share_embedding": "item"},
            {"name": "neg_cat", "type": "sequence", "splitter": "^", "max_len": max_len, "share_embedding": "cat"},
            {"name": "age", "type": "numeric", "fill": 30.0},
        ]
    }))
    .unwrap()
}

/// A small seeded table: 40 users, 30 items in 5 categories, pages of 4.
fn table(seed: u64, pages: usize) -> String {
    let mut rng = SplitMix64(seed);
    let mut text =
        String::from("page,user,item,cat,trig,trig_cat,hist,hist_cat,neg,neg_cat,age,click\n");
    for page in 0..pages {
        let user = rng.below(40);
        let trig = rng.below(30);
        let history: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(30)).collect();
        let negative: Vec<usize> = (0..rng.below(3)).map(|_| rng.below(30)).collect();
        let join = |items: &[usize], f: fn(usize) -> String| {
            items.iter().map(|&i| f(i)).collect::<Vec<_>>().join("^")
        };
        for _ in 0..4 {
            let item = rng.below(30);
            let click = u8::from((item + user).is_multiple_of(3) || rng.chance(0.1));
            let _ = writeln!(
                text,
                "p{page},u{user},i{item},c{},i{trig},c{},{},{},{},{},{},{click}",
                item % 5,
                trig % 5,
                join(&history, |i| format!("i{i}")),
                join(&history, |i| format!("c{}", i % 5)),
                join(&negative, |i| format!("i{i}")),
                join(&negative, |i| format!("c{}", i % 5)),
                20 + user,
            );
        }
    }
    text
}

fn encoded(max_len: usize, text: &str) -> (Preprocessor, Encoded) {
    let raw = csv_table(text).unwrap();
    let pre = Preprocessor::fit(&schema(max_len), &raw).unwrap();
    let encoded = pre.encode(&raw).unwrap();
    (pre, encoded)
}

fn config(model: ModelKind, reading: Reading) -> CtrConfig {
    let mut config = CtrConfig {
        model,
        embedding_dim: 8,
        mlp: vec![16, 8],
        ..CtrConfig::default()
    };
    config.collaborative.reading = reading;
    config
}

fn logits(model: &CtrModel, data: &Encoded) -> Vec<f32> {
    let batch = Batch::new(data, &model.layout, &Device::flex());
    fuselab_ml::llm::values(model.forward(&batch).logits)
}

#[test]
fn padding_never_changes_a_score() {
    let text = table(1, 30);
    let (short_pre, short) = encoded(3, &text);
    let (long_pre, long) = encoded(12, &text);
    let device = Device::flex();
    for (model, reading) in [
        (ModelKind::Din, Reading::Film),
        (ModelKind::DinTrigger, Reading::Film),
        (ModelKind::Ccn, Reading::Film),
        (ModelKind::Ccn, Reading::Prototypes),
    ] {
        let config = config(model, reading);
        let a = CtrModel::init(&config, &Layout::of(&short_pre), &device, 5).unwrap();
        let b = CtrModel::init(&config, &Layout::of(&long_pre), &device, 5).unwrap();
        let (a, b) = (logits(&a, &short), logits(&b, &long));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 1e-5,
            "{model:?} {reading:?}: padding moved a logit by {worst}"
        );
    }
}

fn z_tensor(rows: &[[f32; 3]]) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &Device::flex())
}

fn pair(i: u32, j: u32, kind: PairKind, weight: f32) -> Pair {
    Pair { i, j, kind, weight }
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(fuselab_ml::llm::values(t)[0])
}

#[test]
fn contrastive_losses_match_hand_computed_values() {
    let z = z_tensor(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]);
    let pairs = [
        pair(0, 2, PairKind::CoClick, 1.0),
        pair(0, 1, PairKind::CoNonClick, 2.0),
        pair(1, 2, PairKind::MonoClick, 1.0),
        pair(0, 1, PairKind::MonoClick, 3.0),
    ];
    // Attraction: the co-click pair's 0 and the co-non-click pair's 2, each kind weighing alike.
    let att = scalar(attraction(&z, &pairs).unwrap());
    assert!((att - 1.0).abs() < 1e-6, "{att}");
    // Repulsion at margin 1.5: both mono-click pairs are √2 apart → (1.5 − √2)².
    let rep = scalar(repulsion(&z, &pairs, 1.5).unwrap());
    assert!((rep - (1.5 - 2f64.sqrt()).powi(2)).abs() < 1e-6, "{rep}");
    // Beyond the margin: zero.
    assert!(scalar(repulsion(&z, &pairs, 1.0).unwrap()).abs() < 1e-12);
    // No pair of a kind: no term.
    assert!(attraction(&z, &pairs[2..]).is_none());
    assert!(repulsion(&z, &pairs[..2], 1.0).is_none());
}

/// The objective `λ_a·L_att + λ_r·L_rep` on plain numbers (the twin of the tensor code).
fn objective(z: &[[f64; 3]], pairs: &[Pair], margin: f64) -> f64 {
    let distance2 = |p: &Pair| -> f64 {
        (0..3)
            .map(|k| (z[p.i as usize][k] - z[p.j as usize][k]).powi(2))
            .sum()
    };
    let (mut co_click, mut co_non_click, mut rep) = ([0.0; 2], [0.0; 2], [0.0; 2]);
    for p in pairs {
        let w = f64::from(p.weight);
        let (sum, value) = match p.kind {
            PairKind::CoClick => (&mut co_click, distance2(p)),
            PairKind::CoNonClick => (&mut co_non_click, distance2(p)),
            PairKind::MonoClick => (
                &mut rep,
                (margin - (distance2(p) + 1e-12).sqrt()).max(0.0).powi(2),
            ),
        };
        sum[0] += w * value;
        sum[1] += w;
    }
    let att = 0.5 * (co_click[0] / co_click[1] + co_non_click[0] / co_non_click[1]);
    0.3 * att + 0.7 * rep[0] / rep[1]
}

#[test]
fn contrastive_gradients_match_finite_differences() {
    let values = [
        [0.2, -0.4, 0.1],
        [0.3, 0.1, -0.2],
        [-0.1, 0.05, 0.3],
        [0.25, -0.35, 0.0],
    ];
    let pairs = [
        pair(0, 3, PairKind::CoClick, 1.0),
        pair(1, 2, PairKind::CoNonClick, 1.5),
        pair(0, 1, PairKind::MonoClick, 1.0),
        pair(2, 3, PairKind::MonoClick, 0.5),
        pair(0, 2, PairKind::MonoClick, 1.0),
    ];
    let margin = 0.6;
    let z32: Vec<[f32; 3]> = values.iter().map(|r| r.map(|v| v as f32)).collect();
    let z = z_tensor(&z32).autodiff().require_grad();
    let total = attraction(&z, &pairs).unwrap().mul_scalar(0.3)
        + repulsion(&z, &pairs, margin).unwrap().mul_scalar(0.7);
    let grads = total.backward();
    let analytic = fuselab_ml::llm::values(z.grad(&grads).unwrap());
    let h = 1e-6;
    for row in 0..4 {
        for k in 0..3 {
            let mut up = values;
            up[row][k] += h;
            let mut down = values;
            down[row][k] -= h;
            let numeric =
                (objective(&up, &pairs, margin) - objective(&down, &pairs, margin)) / (2.0 * h);
            let got = f64::from(analytic[row * 3 + k]);
            assert!(
                (got - numeric).abs() < 1e-4,
                "z[{row}][{k}]: autodiff {got}, finite differences {numeric}"
            );
        }
    }
}

struct Collect(Vec<EpochRecord>, Option<usize>);

impl Hooks for Collect {
    fn epoch(&mut self, record: &EpochRecord, _: &TrainState) -> Control {
        self.0.push(record.clone());
        if self.1 == Some(record.epoch) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[test]
fn a_saved_state_resumes_to_the_same_numbers() {
    let (pre, train) = encoded(4, &table(2, 120));
    let valid = pre.encode(&csv_table(&table(3, 40)).unwrap()).unwrap();
    let device = Device::flex();
    let layout = Layout::of(&pre);
    let config = config(ModelKind::Ccn, Reading::Film);
    let options = TrainOptions {
        epochs: 3,
        batch_size: 64,
        patience: 0,
        ..TrainOptions::default()
    };
    let model = CtrModel::init(&config, &layout, &device, 9).unwrap();
    let mut straight = TrainState::new(model.clone(), 4);
    let mut all = Collect(Vec::new(), None);
    assert!(straight.fit(&options, &train, &valid, &mut all).unwrap());
    assert_eq!(all.0.len(), 3);
    assert!(
        all.0
            .iter()
            .all(|r| r.loss.attract > 0.0 && r.loss.repel >= 0.0)
    );

    let mut interrupted = TrainState::new(model.clone(), 4);
    let mut first = Collect(Vec::new(), Some(1));
    assert!(
        !interrupted
            .fit(&options, &train, &valid, &mut first)
            .unwrap()
    );
    let (tensors, meta) = interrupted.save();
    let meta: fuselab_ml::ctr::StateMeta =
        serde_json::from_str(&serde_json::to_string(&meta).unwrap()).unwrap();
    let bytes = fuselab_ml::tensors::write_safetensors(&tensors);
    let tensors = fuselab_ml::tensors::read_safetensors(&bytes, "state").unwrap();
    let mut resumed = TrainState::load(model, &tensors, meta).unwrap();
    let mut rest = Collect(Vec::new(), None);
    assert!(resumed.fit(&options, &train, &valid, &mut rest).unwrap());
    assert_eq!(rest.0.len(), 2);
    for (a, b) in all.0[1..].iter().zip(&rest.0) {
        assert!(
            (a.valid.auc - b.valid.auc).abs() < 1e-6,
            "{} vs {}",
            a.valid.auc,
            b.valid.auc
        );
        assert!((a.loss.bce - b.loss.bce).abs() < 1e-6);
    }
}

#[test]
fn configurations_the_schema_cannot_feed_are_refused() {
    let (pre, _) = encoded(4, &table(4, 10));
    let mut layout = Layout::of(&pre);
    layout.negative_sequence.clear();
    let device = Device::flex();
    let error = CtrModel::init(
        &config(ModelKind::Ccn, Reading::Prototypes),
        &layout,
        &device,
        1,
    )
    .unwrap_err();
    assert!(error.to_string().contains("negative_sequence"), "{error}");
    let mut odd = config(ModelKind::Din, Reading::Film);
    odd.heads = 3;
    assert!(
        CtrModel::init(&odd, &layout, &device, 1)
            .unwrap_err()
            .to_string()
            .contains("heads")
    );
}

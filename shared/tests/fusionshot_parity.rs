//! fuselab's combiner network against FusionShot's training loop in PyTorch
//! (`tests/fusionshot/parity.py`, which wrote `parity.json`): the same initial weights and
//! batch order give the same losses after one epoch, to 1e-5, with either head.

use fuselab_shared::ensemble::combine::{Head, Mlp, Optimizer};
use serde_json::Value;

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

fn indices(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("an index") as usize)
        .collect()
}

#[test]
fn one_epoch_matches_pytorch_in_both_modes() {
    let fixture: Value =
        serde_json::from_str(include_str!("fusionshot/parity.json")).expect("parity.json");
    let features = floats(&fixture["features"]);
    let labels: Vec<u32> = indices(&fixture["labels"])
        .into_iter()
        .map(|l| l as u32)
        .collect();
    let order = indices(&fixture["order"]);
    let width = fixture["width"].as_u64().unwrap() as usize;
    let batch = fixture["batch"].as_u64().unwrap() as usize;
    let initial = &fixture["initial"];
    let layer = |name: &str| {
        (
            floats(&initial[format!("{name}.weight")]),
            floats(&initial[format!("{name}.bias")]),
        )
    };
    let (fc1, fc2, fc3) = (layer("fc1"), layer("fc2"), layer("fc3"));
    for (mode, head) in [("logits", Head::Logits), ("fusionshot", Head::FusionShot)] {
        let expected = &fixture["modes"][mode];
        let mut mlp = Mlp::from_torch(
            [(&fc1.0, &fc1.1), (&fc2.0, &fc2.1), (&fc3.0, &fc3.1)],
            width,
            head,
        )
        .expect("the fixture's shapes chain");
        let before = mlp.loss(&features, &labels);
        let mut optimizer = Optimizer::adam(&mlp, fixture["lr"].as_f64().unwrap());
        let epoch_loss = mlp.train_epoch(&mut optimizer, &features, &labels, &order, batch);
        let after = mlp.loss(&features, &labels);
        let want_epoch = expected["epoch_loss"].as_f64().unwrap();
        let want_after = expected["loss_after"].as_f64().unwrap();
        eprintln!(
            "{mode}: epoch loss {epoch_loss:.8} (PyTorch {want_epoch:.8}), after {after:.8} (PyTorch {want_after:.8})"
        );
        assert!(
            (epoch_loss - want_epoch).abs() < 1e-5,
            "{mode}: epoch loss {epoch_loss} vs PyTorch {want_epoch}"
        );
        assert!(
            (after - want_after).abs() < 1e-5,
            "{mode}: loss after the epoch {after} vs PyTorch {want_after}"
        );
        // The epoch moved the network: the comparison is not of two untrained copies.
        assert!((before - after).abs() > 1e-4, "{mode}: {before} → {after}");
    }
}

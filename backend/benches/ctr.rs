//! Training speed of the CTR models (issue 20, item 6): optimiser steps per second at batch 256
//! on the synthetic benchmark (pages of 6–10 rows, 20-item histories, embeddings of 16 per field,
//! MLP 200–80–1), for DIN, DIN + trigger and CCN. Prints figures; asserts nothing about time.
//! `tests/bench/ctr_torch.py` times the same models in PyTorch; `tests/bench/ctr.sh` runs both.
//!
//! `cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab --bench ctr`

use std::time::Instant;

use fuselab_ml::ctr::train::gradients;
use fuselab_ml::ctr::{CtrConfig, CtrModel, Layout, ModelKind};
use fuselab_ml::optim::Adam;
use fuselab_shared::ctr::encode::{Preprocessor, csv_table};
use fuselab_shared::ctr::exposure::Split;
use fuselab_shared::ctr::pairs::{PairOptions, page_pairs};
use fuselab_shared::ctr::synthetic::{SyntheticConfig, generate};
use fuselab_shared::rng::SplitMix64;

const BATCH: usize = 256;
const WARMUP: usize = 10;
const STEPS: usize = 100;

fn main() -> anyhow::Result<()> {
    // The default size: every user and item appears in training, so the embedding tables (and
    // Adam's dense updates of them) have the PyTorch twin's sizes.
    let dataset = generate(&SyntheticConfig {
        seed: 1,
        ..SyntheticConfig::default()
    })?;
    let table = csv_table(&dataset.csv(Split::Train))?;
    let schema = fuselab::ctr::datasets::schema_of(dataset.extra);
    let pre = Preprocessor::fit(&schema, &table)?;
    let data = pre.encode(&table)?;
    let layout = Layout::of(&pre);
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    // Whole pages up to the batch size, as training forms them.
    let mut rows = Vec::new();
    for group in data.page_groups() {
        if rows.len() >= BATCH {
            break;
        }
        rows.extend(group);
    }
    let part = data.select(&rows);
    println!(
        "synthetic benchmark, batch of {} rows ({} pages)",
        part.rows,
        part.page_groups().len()
    );
    for kind in ModelKind::ALL {
        let config = CtrConfig {
            model: kind,
            ..CtrConfig::default()
        };
        let mut model = CtrModel::init(&config, &layout, &device, 1)?;
        let mut adam = Adam::default();
        let mut rng = SplitMix64(7);
        let mut step = |model: &mut CtrModel| -> anyhow::Result<f64> {
            let pairs = if kind == ModelKind::Ccn {
                page_pairs(&part.pages, &part.labels, &PairOptions::default(), &mut rng)?
            } else {
                Vec::new()
            };
            let (grads, loss) = gradients(model, &part, &pairs);
            adam.update(&mut model.params, &grads, 1e-3);
            Ok(loss.bce)
        };
        for _ in 0..WARMUP {
            step(&mut model)?;
        }
        let started = Instant::now();
        let mut loss = 0.0;
        for _ in 0..STEPS {
            loss = step(&mut model)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "ctr {} batch {BATCH}: {:.1} steps/s ({:.0} rows/s), {} parameters, final BCE {loss:.4}",
            kind.name(),
            STEPS as f64 / seconds,
            (STEPS * part.rows) as f64 / seconds,
            model.parameter_count()
        );
    }
    Ok(())
}

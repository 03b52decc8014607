//! Learned combiners on the demo pool (issue 18, item 8): FusionShot's network, stacking and
//! the weighted vote over all eight digits classifiers, 300 epochs of batch 64, on one core.
//! Prints figures; asserts nothing about time. `tests/bench/combine_torch.py` trains the same
//! network on the same pool in PyTorch for the side-by-side figure.
//!
//! `FUSELAB_DEMO_POOL=<data-dir>/demo/digits-pool.json cargo bench -p fuselab-shared -p
//! fuselab-shaders -p fuselab-ml -p fuselab --bench combine` (after `fuselab ensemble demo`).

use std::{path::PathBuf, time::Instant};

use fuselab_shared::ensemble::combine::{CombineOptions, Method, SplitPool, combine_team};
use fuselab_shared::ensemble::{Limits, PoolInput};

fn main() -> anyhow::Result<()> {
    let path = std::env::var_os("FUSELAB_DEMO_POOL").map_or_else(
        || {
            let data = std::env::var_os("FUSELAB_DATA_DIR")
                .map_or_else(|| PathBuf::from("data"), PathBuf::from);
            data.join("demo/digits-pool.json")
        },
        PathBuf::from,
    );
    let bytes = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; build it with `fuselab ensemble demo --digits \"$(scripts/fetch-digits.sh)\"`",
            path.display()
        )
    })?;
    let input: PoolInput = serde_json::from_slice(&bytes)?;
    let pool = SplitPool::new(input, &Limits::default())?;
    let team: Vec<usize> = (0..pool.pool().models()).collect();
    let sizes = pool.sizes();
    println!(
        "demo pool: {} models, train {} / val {} / test {} images, {} classes",
        team.len(),
        sizes.train,
        sizes.val,
        sizes.test,
        pool.pool().classes()
    );
    for method in [Method::Mlp, Method::Stacking, Method::WeightedVote] {
        let options = CombineOptions {
            method,
            ..CombineOptions::default()
        };
        let started = Instant::now();
        let result = combine_team(&pool, &team, &options, &mut |_, _| true)?;
        let seconds = started.elapsed().as_secs_f64();
        let soft = result
            .baselines
            .iter()
            .find(|b| b.name == "soft vote")
            .map_or(0.0, |b| b.scores.accuracy);
        println!(
            "{:<14} {seconds:>7.3} s  test accuracy {:.4} (soft vote {soft:.4}){}",
            method.name(),
            result.combined.accuracy,
            result
                .best_epoch
                .map(|e| format!(", best epoch {e} of {}", options.epochs))
                .unwrap_or_default()
        );
    }
    Ok(())
}

//! The bodies of the fuzz targets, one module per target: each `run` takes the bytes a user
//! could hand the program and passes them through the public entry points, ignoring errors
//! (they are the expected answer to bad input). A panic, an overflow, a hang or an allocation
//! beyond the fuzzer's limits is a finding.
//!
//! Two crates compile this folder: `fuselab-fuzz` (its library root, for the libFuzzer binaries
//! in `fuzz_targets/`) and the replay test `backend/tests/fuzz_corpora.rs` (as a module through
//! `#[path]`, without any sanitizer), which runs every committed corpus file through the same
//! `run`. Nothing here may name the crate it is compiled in: only `super`, `fuselab_shared`,
//! `fuselab_ml`, `fuselab` and the crates both the fuzz crate and the backend depend on
//! (`axum`, `tokio`, `image`, with the versions of the main `Cargo.lock`).
//! A new target is a file here, a line in [`TARGETS`], a three-line binary in `fuzz_targets/`
//! with its `[[bin]]` in `fuzz/Cargo.toml`, and a corpus folder.

pub mod csv;
pub mod ctr_data;
pub mod dlib;
pub mod gguf;
pub mod image;
pub mod mask_key;
pub mod multipart;
pub mod npy;
pub mod npz;
pub mod parquet;
pub mod pool_json;
pub mod toml_config;

use fuselab_shared::ensemble::combine::{CombineOptions, SplitPool, combine_team};
use fuselab_shared::ensemble::{Limits, OverviewOptions, Pool, PoolInput, SplitChoice, analysis};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name: the name is its `fuzz_targets/` binary and its `corpus/` folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("csv", csv::run),
    ("ctr_data", ctr_data::run),
    ("dlib", dlib::run),
    ("gguf", gguf::run),
    ("image", image::run),
    ("mask_key", mask_key::run),
    ("multipart", multipart::run),
    ("npy", npy::run),
    ("npz", npz::run),
    ("parquet", parquet::run),
    ("pool_json", pool_json::run),
    ("toml_config", toml_config::run),
];

/// Validates a parsed pool with the default limits and analyses it as the browser's worker and
/// the server do, with options small enough to keep every input fast: the top 3 teams of sizes
/// 2 and 3, on the default split; a pool with splits and scores also trains a combiner of its
/// first three models for two epochs.
pub fn analyse(input: PoolInput) {
    if let Ok(pool) = SplitPool::new(input.clone(), &Limits::default()) {
        let members: Vec<usize> = (0..pool.pool().models().min(3)).collect();
        let options = CombineOptions {
            epochs: 2,
            ..CombineOptions::default()
        };
        let _ = combine_team(&pool, &members, &options, &mut |_, _| true);
    }
    let Ok((input, _)) = input.select(SplitChoice::Default) else {
        return;
    };
    let Ok(pool) = Pool::new(input) else {
        return;
    };
    let options = OverviewOptions {
        top_k: 3,
        min_size: 2,
        max_size: 3,
    };
    let _ = analysis(&pool, &options, &mut |_, _| {});
}

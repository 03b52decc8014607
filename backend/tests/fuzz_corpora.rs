//! Replays the committed fuzz corpora: every file in `fuzz/corpus/<target>/` goes through that
//! target's body once, natively and without a sanitizer (docs/fuzzing.md). The bodies are the
//! fuzz crate's own `fuzz/targets/`, compiled into this test as a module, so the fuzzer and
//! this replay run the same code and cannot drift apart. It lives in the backend's tests
//! because the targets reach `fuselab-shared`, `fuselab-ml` and the backend itself.

#[path = "../../fuzz/targets/mod.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn every_target_has_a_committed_corpus() {
    let mut folders: Vec<String> = std::fs::read_dir(corpus_root())
        .expect("fuzz/corpus/ is committed")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let names: Vec<&str> = targets::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        folders, names,
        "one fuzz/corpus/ folder per target in fuzz/targets/mod.rs"
    );
}

#[test]
fn every_corpus_input_is_handled() {
    let mut failures = Vec::new();
    for (name, run) in targets::TARGETS {
        let started = Instant::now();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_root().join(name))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{name}: {e}"))
            .map(|entry| entry.unwrap().path())
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "fuzz/corpus/{name} is empty");
        for path in &paths {
            let bytes = std::fs::read(path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err() {
                failures.push(path.display().to_string());
            }
        }
        println!(
            "{name}: {} inputs in {:.2} s",
            paths.len(),
            started.elapsed().as_secs_f64()
        );
    }
    assert!(
        failures.is_empty(),
        "inputs that panic (reproduce with `fuzz/run.sh <target>`'s binary on the file):\n{}",
        failures.join("\n")
    );
}

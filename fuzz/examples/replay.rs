//! Runs files through a target natively, without a sanitizer, and prints each one's time: to
//! measure a slow input found under `AddressSanitizer` (several times slower) at its real speed.
//!
//! `cargo run --release --example replay -- <target> <file>...` from `fuzz/`.

use std::time::Instant;

use fuselab_fuzz::TARGETS;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay <target> <file>...");
    let Some((_, run)) = TARGETS.iter().find(|(target, _)| *target == name) else {
        panic!("no target `{name}`");
    };
    for path in args {
        let bytes = std::fs::read(&path).unwrap();
        let started = Instant::now();
        run(&bytes);
        println!("{path}: {:.3} s", started.elapsed().as_secs_f64());
    }
}

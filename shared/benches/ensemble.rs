//! The ensemble engine's speed targets (issue 3), printed as figures:
//!
//! - 10 models × 10,000 samples × 10 classes with correlated errors: all 1,013 teams with
//!   focal diversity, plurality and soft vote, and the eight diversity metrics, on one core;
//! - 20 models × 10,000 samples: all 1,048,555 teams with focal diversity and plurality
//!   accuracy, on two threads, top 10 kept;
//! - the same 10-model pool through the `EnsembleBench` compatibility mode (six Q-metrics per
//!   team and focal model, exact and bootstrapped), against the reference Python's CPU time.
//!
//! Run: `cargo bench -p fuselab-shared --bench ensemble`.

use std::time::Instant;

use fuselab_shared::ensemble::compat::{EbMetric, FocalScoreTable, FocalWeights, Sampling};
use fuselab_shared::ensemble::{
    FocalTable, ModelInput, Pool, PoolInput, Teams, VoteTable, soft_vote_of_teams, top_k_of,
};

/// xorshift64*: deterministic pools without dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// Correlated errors: a per-sample difficulty and a per-sample "confusing" class shared by all
/// models; model skill varies across the pool (5-30 % errors).
fn pool(models: usize, samples: usize, classes: u32, probabilities: bool) -> Pool {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let labels: Vec<u32> = (0..samples).map(|_| rng.below(classes)).collect();
    let difficulty: Vec<f64> = (0..samples).map(|_| rng.unit().powi(3)).collect();
    let confuser: Vec<u32> = labels
        .iter()
        .map(|&y| (y + 1 + rng.below(classes - 1)) % classes)
        .collect();
    let models = (0..models)
        .map(|m| {
            let error_rate = 0.05 + 0.25 * (m as f64 / models as f64);
            let predictions: Vec<u32> = (0..samples)
                .map(|n| {
                    if rng.unit() < 4.0 * error_rate * difficulty[n] {
                        if rng.below(10) < 6 {
                            confuser[n]
                        } else {
                            (labels[n] + 1 + rng.below(classes - 1)) % classes
                        }
                    } else {
                        labels[n]
                    }
                })
                .collect();
            let probabilities = probabilities.then(|| {
                predictions
                    .iter()
                    .map(|&p| {
                        let mut row: Vec<f64> = (0..classes).map(|_| rng.unit() * 0.1).collect();
                        row[p as usize] += 0.5 + rng.unit();
                        let sum: f64 = row.iter().sum();
                        row.iter().map(|x| x / sum).collect()
                    })
                    .collect()
            });
            ModelInput {
                name: format!("m{m}"),
                predictions: Some(predictions),
                probabilities,
                logits: None,
            }
        })
        .collect();
    Pool::new(PoolInput {
        labels,
        models,
        classes: Some(classes as usize),
        splits: None,
    })
    .expect("a valid pool")
}

fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ten_models() {
    let start = Instant::now();
    let pool = pool(10, 10_000, 10, true);
    let built = start.elapsed();
    let negatives: Vec<usize> = (0..10)
        .map(|m| pool.negatives(m).expect("model").count())
        .collect();

    let start = Instant::now();
    let focal = FocalTable::new(&pool);
    // Soft votes of every team, neighbours sharing their common members' sums.
    let all: Vec<Vec<usize>> = Teams::new(10, 2, 10).collect();
    let soft = soft_vote_of_teams(&pool, &all).expect("probabilities");
    let mut checksum = 0.0;
    let mut teams = 0;
    for (members, soft_vote) in all.into_iter().zip(soft) {
        let view = pool.team(&members).expect("team");
        checksum += focal.focal_diversity(&members).mean.unwrap_or(0.0);
        checksum += view.plurality_accuracy().unwrap_or(0.0);
        checksum += soft_vote;
        checksum += view
            .diversity()
            .values()
            .iter()
            .map(|v| v.unwrap_or(0.0))
            .sum::<f64>();
        teams += 1;
    }
    let analysed = start.elapsed();
    println!(
        "10 models x 10,000 samples x 10 classes (negatives per model {negatives:?}):\n  \
         pool validation {:.3} s; {teams} teams, focal diversity + plurality + soft vote + 8 metrics, \
         one thread: {:.3} s (target <= 0.2 s; checksum {checksum:.6})",
        built.as_secs_f64(),
        analysed.as_secs_f64(),
    );
}

fn twenty_models() {
    let pool = pool(20, 10_000, 10, false);
    let start = Instant::now();
    let focal = FocalTable::new(&pool);
    let plurality = VoteTable::new(&pool).expect("20 models fit a mask");
    let tables = start.elapsed();
    let threads = 2;
    let (best, teams, accuracy_sum) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (focal, plurality) = (&focal, &plurality);
                scope.spawn(move || {
                    let mut teams = 0_u64;
                    let mut accuracy_sum = 0.0;
                    let scored = Teams::new(20, 2, 20)
                        .enumerate()
                        .filter(|(i, _)| i % threads == thread)
                        .map(|(_, members)| {
                            teams += 1;
                            accuracy_sum += plurality.plurality_accuracy(&members);
                            let score = focal.focal_diversity(&members).mean;
                            (members, score)
                        });
                    let best = top_k_of(scored, 10);
                    (best, teams, accuracy_sum)
                })
            })
            .collect();
        let mut best = Vec::new();
        let mut teams = 0;
        let mut accuracy_sum = 0.0;
        for worker in workers {
            let (b, t, a) = worker.join().expect("worker");
            best.extend(b.into_iter().map(|r| (r.members, Some(r.focal_diversity))));
            teams += t;
            accuracy_sum += a;
        }
        (top_k_of(best, 10), teams, accuracy_sum)
    });
    let total = start.elapsed();
    println!(
        "20 models x 10,000 samples: {} vote patterns; tables {:.3} s; {teams} teams, focal diversity \
         + plurality accuracy, {threads} threads: {:.2} s in all (target <= 20 s); peak memory {} MiB \
         (target < 2,048)\n  best team {:?} focal diversity {:.4}; mean plurality accuracy {:.4}",
        plurality.patterns(),
        tables.as_secs_f64(),
        total.as_secs_f64(),
        peak_memory_mib().map_or_else(|| "?".to_owned(), |m| format!("{m:.0}")),
        best[0].members,
        best[0].focal_diversity,
        accuracy_sum / teams as f64,
    );
}

/// `EnsembleBench`'s six per-focal Q-metrics for all 1,013 teams (5,110 team-focal pairs), as
/// its compatibility mode computes them, against the reference's 230 CPU-s (exact) and 451 CPU-s
/// (bootstrap) of spec §10.
fn ensemblebench_compat() {
    let pool = pool(10, 10_000, 10, true);
    for (sampling, reference) in [(Sampling::Exact, 230), (Sampling::Bootstrap2021, 451)] {
        let start = Instant::now();
        let table = FocalScoreTable::new(&pool, sampling, 2, 10, &mut |_, _| {});
        let checksum: f64 = (0..table.teams().len())
            .map(|t| {
                table
                    .fq(t, EbMetric::GD, FocalWeights::ArgsortCompat)
                    .weighted
            })
            .filter(|v| v.is_finite())
            .sum();
        println!(
            "EnsembleBench compatibility, {sampling:?}: {} teams x 6 metrics on every member's \
             negatives + team FQ, one thread: {:.2} s (reference Python: {reference} CPU-s; \
             checksum {checksum:.6})",
            table.teams().len(),
            start.elapsed().as_secs_f64(),
        );
    }
}

fn main() {
    ten_models();
    twenty_models();
    ensemblebench_compat();
}

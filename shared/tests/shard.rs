//! Sharded exhaustive analysis: shards merged in any order and grouping give exactly the
//! summary of one pass, and that pass agrees with the plain analysis and with a brute-force
//! Pareto front.

use core::ops::ControlFlow;

use fuselab_shared::ensemble::{
    Cancelled, ModelInput, OverviewOptions, Point, Pool, PoolInput, TeamSummary, Teams, analysis,
    shard_ranges, summarise_range,
};
use fuselab_shared::rng::SplitMix64;

/// Labels and hard-label predictions with errors correlated through a per-sample difficulty;
/// few samples, so that accuracies tie and the front has equal points.
fn pool(seed: u64, models: usize, samples: usize) -> Pool {
    let mut rng = SplitMix64(seed);
    let classes = 3;
    let labels: Vec<u32> = (0..samples).map(|_| rng.below(classes) as u32).collect();
    let hard: Vec<bool> = (0..samples).map(|_| rng.chance(0.3)).collect();
    let models = (0..models)
        .map(|m| ModelInput {
            name: format!("m{m}"),
            predictions: Some(
                labels
                    .iter()
                    .zip(&hard)
                    .map(|(&label, &hard)| {
                        if rng.chance(if hard { 0.6 } else { 0.2 }) {
                            (label + 1 + rng.below(classes - 1) as u32) % classes as u32
                        } else {
                            label
                        }
                    })
                    .collect(),
            ),
            probabilities: None,
            logits: None,
        })
        .collect();
    Pool::new(PoolInput {
        labels,
        models,
        classes: Some(classes),
        splits: None,
    })
    .expect("a valid pool")
}

fn go_on(_: u64, _: u64) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn whole(pool: &Pool, sizes: (usize, usize), top_k: usize) -> TeamSummary {
    let total = Teams::total(pool.models(), sizes.0, sizes.1);
    summarise_range(pool, sizes, 0..total, top_k, &mut go_on).unwrap()
}

#[test]
fn shards_merged_in_any_order_equal_one_pass() {
    for (seed, models, sizes, top_k) in [(1, 9, (2, 9), 5), (2, 11, (3, 6), 12), (3, 8, (2, 2), 40)]
    {
        let pool = pool(seed, models, 40);
        let one = whole(&pool, sizes, top_k);
        let total = Teams::total(models, sizes.0, sizes.1);
        assert_eq!(one.enumerated, total);
        for per_shard in [1, 7, 64, 100, total] {
            let mut shards: Vec<TeamSummary> = shard_ranges(total, per_shard)
                .map(|ranks| summarise_range(&pool, sizes, ranks, top_k, &mut go_on).unwrap())
                .collect();
            // In order.
            let mut merged = TeamSummary::new(top_k);
            for shard in &shards {
                merged.merge(shard);
            }
            assert_eq!(merged, one, "seed {seed}, {per_shard} per shard, in order");
            // Reversed, and as a tree of pairs.
            shards.reverse();
            while shards.len() > 1 {
                let right = shards.pop().unwrap();
                let mut left = shards.pop().unwrap();
                left.merge(&right);
                shards.insert(0, left);
            }
            assert_eq!(
                shards[0], one,
                "seed {seed}, {per_shard} per shard, as a tree"
            );
        }
    }
}

#[test]
fn one_pass_agrees_with_the_analysis_and_a_brute_force_front() {
    let pool = pool(7, 10, 30);
    let options = OverviewOptions {
        top_k: 8,
        min_size: 2,
        max_size: 10,
    };
    let full = analysis(&pool, &options, &mut |_, _| {}).unwrap();
    let summary = whole(&pool, (2, 10), 8);

    let ranked: Vec<(&[usize], f64)> = full
        .report
        .teams
        .iter()
        .map(|t| (t.members.as_slice(), t.focal_diversity.unwrap()))
        .collect();
    let top: Vec<(&[usize], f64)> = summary
        .top
        .iter()
        .map(|t| (t.members.as_slice(), t.focal_diversity))
        .collect();
    assert_eq!(top, ranked);

    let sizes = summary.size_summaries();
    assert_eq!(sizes.len(), full.sizes.len());
    for (ours, theirs) in sizes.iter().zip(&full.sizes) {
        assert_eq!((ours.size, ours.teams), (theirs.size, theirs.teams));
        assert_eq!(ours.max_focal.to_bits(), theirs.max_focal.to_bits());
        assert_eq!(ours.max_accuracy.to_bits(), theirs.max_accuracy.to_bits());
        assert!((ours.mean_focal - theirs.mean_focal).abs() < 1e-12);
        assert!((ours.mean_accuracy - theirs.mean_accuracy).abs() < 1e-12);
    }
    let binned: u64 = summary.sizes.iter().flat_map(|s| &s.focal_histogram).sum();
    assert_eq!(binned, summary.enumerated - summary.unscored);

    // Brute force: every point that no other point beats or ties, of equal points the
    // smaller member list.
    let points = full.scatter.expect("1,013 teams fit the scatter plot");
    let beaten = |p: &Point| {
        points.iter().any(|q| {
            q.accuracy >= p.accuracy
                && q.focal >= p.focal
                && (q.accuracy > p.accuracy || q.focal > p.focal || q.members < p.members)
        })
    };
    let mut front: Vec<Point> = points.iter().filter(|p| !beaten(p)).cloned().collect();
    front.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy));
    assert!(front.len() >= 2, "a front worth testing: {front:?}");
    assert_eq!(summary.pareto, front);
}

#[test]
fn a_shard_stops_when_told_and_says_where() {
    let pool = pool(3, 16, 20);
    let total = Teams::total(16, 2, 16);
    let mut asked = 0;
    let stopped = summarise_range(&pool, (2, 16), 0..total, 3, &mut |done, _| {
        asked += 1;
        if done >= 8192 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(stopped, Err(Cancelled { done: 8192, total }));
    assert_eq!(asked, 3);
}

#[test]
fn shard_ranges_cover_every_rank_once() {
    let ranges: Vec<_> = shard_ranges(10, 4).collect();
    assert_eq!(ranges, [0..4, 4..8, 8..10]);
    assert_eq!(shard_ranges(0, 4).count(), 0);
    assert_eq!(shard_ranges(3, 0).count(), 3);
    let total = Teams::total(30, 2, 30);
    assert_eq!(total, 1_073_741_793);
    let ranges: Vec<_> = shard_ranges(total, 1 << 20).collect();
    assert_eq!(ranges.len(), 1024);
    assert_eq!(ranges.last().unwrap().end, total);
    assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
}

#[test]
fn a_summary_survives_json() {
    let pool = pool(5, 12, 25);
    let summary = whole(&pool, (2, 12), 4);
    // Through `serde_json::Value` too, as the job tables store it: the sums are far beyond
    // 2^64 and travel as decimal strings.
    assert!(
        summary
            .sizes
            .iter()
            .any(|s| s.focal_sum > i128::from(u64::MAX))
    );
    let value = serde_json::to_value(&summary).unwrap();
    let back: TeamSummary = serde_json::from_value(value).unwrap();
    assert_eq!(back, summary);
    let text = serde_json::to_string(&summary).unwrap();
    let back: TeamSummary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, summary);
}

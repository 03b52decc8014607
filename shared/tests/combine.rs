//! Learned combiners on a pool built so that voting fails and learning can win: each member is
//! reliable on its own classes and confidently wrong elsewhere.

use fuselab_shared::ensemble::combine::{
    CombineError, CombineOptions, Method, SplitPool, combine_team,
};
use fuselab_shared::ensemble::{Limits, ModelInput, PoolInput, Split};
use fuselab_shared::rng::SplitMix64;

const CLASSES: usize = 4;

/// Member 0 is right on classes 0 and 1 and swaps 2 ↔ 3; member 1 is right on 2 and 3 and
/// swaps 0 ↔ 1; member 2 is right half the time. Each is confident (0.8) in what it says, and
/// 10 % of the time a reliable member errs too.
fn specialists(samples: usize, seed: u64) -> PoolInput {
    let mut rng = SplitMix64(seed);
    let labels: Vec<u32> = (0..samples).map(|_| rng.below(CLASSES) as u32).collect();
    let splits = (0..samples)
        .map(|n| match n % 5 {
            0 | 1 => Split::Train,
            2 => Split::Val,
            _ => Split::Test,
        })
        .collect();
    let mut models = Vec::new();
    for m in 0..3 {
        let mut rows = Vec::with_capacity(samples);
        for &y in &labels {
            let y = y as usize;
            let said = match m {
                0 if y < 2 => y,
                0 => 5 - y,
                1 if y >= 2 => y,
                1 => 1 - y,
                _ if rng.chance(0.5) => y,
                _ => (y + 1 + rng.below(CLASSES - 1)) % CLASSES,
            };
            let said = if m < 2 && rng.chance(0.1) {
                (said + 1) % CLASSES
            } else {
                said
            };
            let mut row = vec![0.2 / 3.0; CLASSES];
            row[said] = 0.8;
            rows.push(row);
        }
        models.push(ModelInput {
            name: format!("specialist{m}"),
            predictions: None,
            probabilities: Some(rows),
            logits: None,
        });
    }
    PoolInput {
        labels,
        splits: Some(splits),
        models,
        classes: Some(CLASSES),
    }
}

fn soft_vote(team: &fuselab_shared::ensemble::combine::TeamCombination) -> f64 {
    team.baselines
        .iter()
        .find(|b| b.name == "soft vote")
        .expect("a soft vote row")
        .scores
        .accuracy
}

#[test]
fn mlp_and_stacking_beat_the_soft_vote_on_specialists() {
    let pool = SplitPool::new(specialists(1000, 11), &Limits::default()).unwrap();
    assert_eq!(
        (pool.sizes().train, pool.sizes().val, pool.sizes().test),
        (400, 200, 400)
    );
    for method in [Method::Mlp, Method::Stacking] {
        let options = CombineOptions {
            method,
            epochs: 150,
            seed: 3,
            ..CombineOptions::default()
        };
        let mut epochs = 0;
        let team = combine_team(&pool, &[0, 1, 2], &options, &mut |done, _| {
            epochs = done;
            true
        })
        .unwrap();
        let vote = soft_vote(&team);
        assert!(
            team.combined.accuracy > vote + 0.15,
            "{method:?}: {} vs soft vote {vote}",
            team.combined.accuracy
        );
        assert!(
            team.combined.accuracy > 0.8,
            "{method:?}: {:?}",
            team.combined
        );
        // The members (3), plurality, majority and soft vote.
        assert_eq!(team.baselines.len(), 6);
        if method == Method::Mlp {
            assert_eq!(epochs, 150);
            assert_eq!(team.curve.len(), 150);
            let best = team.best_epoch.unwrap();
            let kept = team.curve[best - 1].val_accuracy;
            assert!(team.curve.iter().all(|p| p.val_accuracy <= kept));
            assert!(team.curve[149].train_loss < team.curve[0].train_loss);
        }
    }
    // The weighted vote cannot express "trust member 0 on classes 0-1 only": it is no better
    // than the best member, but it must not be worse than the soft vote by much either.
    let weighted = combine_team(
        &pool,
        &[0, 1, 2],
        &CombineOptions {
            method: Method::WeightedVote,
            ..CombineOptions::default()
        },
        &mut |_, _| true,
    )
    .unwrap();
    let weights = weighted.weights.as_deref().unwrap();
    assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(
        weights[2] < weights[0] && weights[2] < weights[1],
        "{weights:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_network_and_stopping_keeps_the_best_so_far() {
    let pool = SplitPool::new(specialists(300, 5), &Limits::default()).unwrap();
    let options = CombineOptions {
        epochs: 20,
        seed: 9,
        ..CombineOptions::default()
    };
    let run = |stop_after: usize| {
        combine_team(&pool, &[0, 2], &options, &mut |done, _| done < stop_after).unwrap()
    };
    let whole = run(usize::MAX);
    assert_eq!(whole, run(usize::MAX));
    let stopped = run(5);
    assert_eq!(stopped.curve.len(), 5);
    assert_eq!(stopped.curve[..], whole.curve[..5]);
    let other_seed = combine_team(
        &pool,
        &[0, 2],
        &CombineOptions {
            seed: 10,
            ..options
        },
        &mut |_, _| true,
    )
    .unwrap();
    assert_ne!(other_seed.curve, whole.curve);
}

#[test]
fn a_pool_a_combiner_cannot_use_is_refused_naming_what_is_missing() {
    let limits = Limits::default();
    let mut no_splits = specialists(50, 1);
    no_splits.splits = None;
    let error = SplitPool::new(no_splits, &limits).unwrap_err();
    assert_eq!(error, CombineError::NoSplits);
    assert!(
        error.to_string().starts_with("the pool has no `splits`"),
        "{error}"
    );

    let mut no_val = specialists(50, 1);
    no_val.splits = Some(vec![Split::Train; 50]);
    no_val.splits.as_mut().unwrap()[0] = Split::Test;
    assert_eq!(
        SplitPool::new(no_val, &limits).unwrap_err().to_string(),
        "no sample is in the val split: a combiner needs train, val and test samples"
    );

    let mut labels_only = specialists(50, 1);
    for model in &mut labels_only.models {
        let rows = model.probabilities.take().unwrap();
        model.predictions = Some(
            rows.iter()
                .map(|r| r.iter().position(|&p| p > 0.5).unwrap() as u32)
                .collect(),
        );
    }
    let pool = SplitPool::new(labels_only, &limits).unwrap();
    assert_eq!(
        combine_team(&pool, &[1, 2], &CombineOptions::default(), &mut |_, _| true)
            .unwrap_err()
            .to_string(),
        "model `specialist1` has no `probabilities` or `logits`: a combiner learns from the members' scores, not their labels"
    );

    let pool = SplitPool::new(specialists(50, 1), &limits).unwrap();
    assert_eq!(
        pool.team_of_names(&["specialist0", "resnet"])
            .unwrap_err()
            .to_string(),
        "`resnet` is not a model of the pool (its models: specialist0, specialist1, specialist2)"
    );
    let bad_options = CombineOptions {
        epochs: 0,
        ..CombineOptions::default()
    };
    assert_eq!(
        combine_team(&pool, &[0, 1], &bad_options, &mut |_, _| true)
            .unwrap_err()
            .to_string(),
        "--epochs: expected 1 to 100000, found 0"
    );
    assert!(
        combine_team(&pool, &[0, 0], &CombineOptions::default(), &mut |_, _| true)
            .unwrap_err()
            .to_string()
            .contains("named twice")
    );
}

#[test]
fn logits_feed_the_network_when_every_member_has_them() {
    let mut input = specialists(200, 2);
    for model in &mut input.models {
        let rows = model.probabilities.take().unwrap();
        model.logits = Some(
            rows.iter()
                .map(|r| r.iter().map(|p| p.ln()).collect())
                .collect(),
        );
    }
    let pool = SplitPool::new(input, &Limits::default()).unwrap();
    let team = combine_team(
        &pool,
        &[0, 1],
        &CombineOptions {
            epochs: 5,
            ..CombineOptions::default()
        },
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(
        team.features,
        Some(fuselab_shared::ensemble::combine::Features::Logits)
    );
    let rows = pool.rows(&[0, 1], Split::Train).unwrap();
    assert_eq!(rows.width, 2 * CLASSES);
    assert!((rows.features[0] - (rows.probabilities[0][0] as f32).ln()).abs() < 1e-6);

    // A logit past f32's range would turn the network's arithmetic into NaN: refused by name.
    let mut huge = specialists(200, 2);
    for model in &mut huge.models {
        let rows = model.probabilities.take().unwrap();
        model.logits = Some(
            rows.iter()
                .map(|r| r.iter().map(|p| p.ln()).collect())
                .collect(),
        );
    }
    huge.models[1].logits.as_mut().unwrap()[0][2] = 1e300;
    let pool = SplitPool::new(huge, &Limits::default()).unwrap();
    assert_eq!(
        combine_team(&pool, &[0, 1], &CombineOptions::default(), &mut |_, _| true)
            .unwrap_err()
            .to_string(),
        "model `specialist1`, sample 0: logit 1e300 is beyond the combiner's f32 range (±3.4e38)"
    );
}

//! Property checks of the ensemble engine on seeded random pools (plain loops, no extra
//! dependencies): GD in [0, 1], invariance under permuting samples and models, and
//! independence of the order in which team members are given.

mod common;

use common::{per_sample_majority, per_sample_plurality};
use fuselab_shared::ensemble::compat::{
    FocalRows, FusionShotTable, RowFailures, Sampling, eb_focal_scores, fs_generalized_div,
};
use fuselab_shared::ensemble::{
    AnalysisOptions, Compat, FocalTable, ModelInput, Pool, PoolInput, TeamLines, TeamListing,
    Teams, VoteTable, analyze, soft_vote_of_teams, top_k_of,
};

/// xorshift32: deterministic and dependency-free.
struct Rng(u32);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 % n
    }
}

/// Labels, predictions with correlated errors (a shared per-sample difficulty) and
/// probabilities whose argmax is the prediction.
fn random_input(rng: &mut Rng, models: usize, samples: usize, classes: u32) -> PoolInput {
    let labels: Vec<u32> = (0..samples).map(|_| rng.below(classes)).collect();
    let hard: Vec<bool> = (0..samples).map(|_| rng.below(3) == 0).collect();
    PoolInput {
        models: (0..models)
            .map(|m| {
                let predictions: Vec<u32> = (0..samples)
                    .map(|n| {
                        let wrong = rng.below(10) < if hard[n] { 6 } else { 2 };
                        if wrong {
                            (labels[n] + 1 + rng.below(classes - 1)) % classes
                        } else {
                            labels[n]
                        }
                    })
                    .collect();
                let probabilities = predictions
                    .iter()
                    .map(|&p| {
                        let mut row: Vec<f64> =
                            (0..classes).map(|_| f64::from(rng.below(100))).collect();
                        row[p as usize] = 150.0 + f64::from(rng.below(100));
                        let sum: f64 = row.iter().sum();
                        row.iter().map(|x| x / sum).collect()
                    })
                    .collect();
                ModelInput {
                    name: format!("m{m}"),
                    predictions: Some(predictions),
                    probabilities: Some(probabilities),
                    logits: None,
                }
            })
            .collect(),
        labels,
        classes: Some(classes as usize),
        splits: None,
    }
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs()) + 1e-15,
            "{what}: {x} vs {y}"
        ),
        (None, None) => {}
        _ => panic!("{what}: {a:?} vs {b:?}"),
    }
}

/// Every number the engine gives for one team, in a fixed order.
fn summary(pool: &Pool, members: &[usize]) -> Vec<Option<f64>> {
    let view = pool.team(members).expect("team");
    let mut values = vec![view.focal_diversity().mean];
    values.extend(view.diversity().values());
    values.extend([
        view.plurality_accuracy(),
        view.majority_accuracy(),
        view.soft_vote_accuracy(),
    ]);
    values
}

#[test]
fn generalized_diversity_is_within_unit_interval() {
    let mut rng = Rng(0x9e37_79b9);
    for round in 0..8 {
        let pool = Pool::new(random_input(&mut rng, 5, 40 + 37 * round, 4)).expect("pool");
        for members in Teams::new(pool.models(), 2, pool.models()) {
            let view = pool.team(&members).expect("team");
            let focal = view.focal_diversity();
            let values = focal
                .per_focal
                .iter()
                .copied()
                .chain([focal.mean, view.generalized_diversity()]);
            for gd in values {
                let gd = gd.expect("every model fails somewhere");
                assert!((0.0..=1.0).contains(&gd), "GD {gd} for {members:?}");
            }
        }
    }
}

#[test]
fn invariant_under_sample_permutation() {
    let mut rng = Rng(0x1234_5678);
    for _ in 0..4 {
        let input = random_input(&mut rng, 4, 150, 5);
        // Fisher–Yates shuffle of the sample order.
        let mut order: Vec<usize> = (0..input.labels.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u32 + 1) as usize);
        }
        let mut shuffled = input.clone();
        shuffled.labels = order.iter().map(|&n| input.labels[n]).collect();
        for (to, from) in shuffled.models.iter_mut().zip(&input.models) {
            let preds = from.predictions.as_ref().expect("predictions");
            let probs = from.probabilities.as_ref().expect("probabilities");
            to.predictions = Some(order.iter().map(|&n| preds[n]).collect());
            to.probabilities = Some(order.iter().map(|&n| probs[n].clone()).collect());
        }
        let (a, b) = (
            Pool::new(input).expect("pool"),
            Pool::new(shuffled).expect("pool"),
        );
        for members in Teams::new(4, 2, 4) {
            for (x, y) in summary(&a, &members).into_iter().zip(summary(&b, &members)) {
                close(x, y, &format!("team {members:?}"));
            }
        }
    }
}

#[test]
fn invariant_under_model_permutation_and_member_order() {
    let mut rng = Rng(0xdead_beef);
    let input = random_input(&mut rng, 5, 200, 3);
    // Model k of the permuted pool is model perm[k] of the original.
    let perm = [3, 0, 4, 1, 2];
    let mut permuted = input.clone();
    permuted.models = perm.iter().map(|&m| input.models[m].clone()).collect();
    let (a, b) = (
        Pool::new(input).expect("pool"),
        Pool::new(permuted).expect("pool"),
    );
    for members in Teams::new(5, 2, 5) {
        let mapped: Vec<usize> = members
            .iter()
            .map(|&m| perm.iter().position(|&p| p == m).expect("permutation"))
            .collect();
        let reference = summary(&a, &members);
        for (x, y) in reference.iter().zip(summary(&b, &mapped)) {
            close(*x, y, &format!("team {members:?} as {mapped:?}"));
        }
        let mut reversed = members.clone();
        reversed.reverse();
        assert_eq!(
            summary(&a, &reversed),
            reference,
            "member order {reversed:?}"
        );
        let focal = a.team(&reversed).expect("team").focal_diversity();
        assert_eq!(focal, a.team(&members).expect("team").focal_diversity());
    }
}

#[test]
fn invalid_teams_are_errors() {
    use fuselab_shared::ensemble::{Bitset, TeamError};
    let mut rng = Rng(7);
    let pool = Pool::new(random_input(&mut rng, 3, 10, 3)).expect("pool");
    assert_eq!(
        pool.team(&[1]).unwrap_err(),
        TeamError::TooSmall { size: 1 }
    );
    assert_eq!(
        pool.team(&[0, 3]).unwrap_err(),
        TeamError::ModelOutOfRange {
            model: 3,
            models: 3
        }
    );
    assert_eq!(
        pool.team(&[2, 2]).unwrap_err(),
        TeamError::DuplicateMember { model: 2 }
    );
    assert_eq!(
        pool.team_on(&[0, 1], &Bitset::full(9)).unwrap_err(),
        TeamError::SubsetLength {
            expected: 10,
            found: 9
        }
    );
    // An empty subset: every metric is undefined, none is NaN.
    let empty = pool.team_on(&[0, 1], &Bitset::empty(10)).expect("team");
    for value in empty.diversity().values().into_iter().chain([
        empty.plurality_accuracy(),
        empty.soft_vote_accuracy(),
        empty.focal_diversity().mean,
    ]) {
        assert_eq!(value, None);
    }
}

/// The team-independent tables (triple co-failure counts, vote patterns) agree exactly with
/// the per-sample computations on random pools with many ties (few classes, many models).
#[test]
fn precomputed_tables_match_per_sample_results() {
    let mut rng = Rng(0x1234_5678);
    for (models, samples, classes) in [(7, 300, 3), (9, 200, 2), (6, 500, 10)] {
        let input = random_input(&mut rng, models, samples, classes);
        let pool = Pool::new(input.clone()).unwrap();
        let teams: Vec<Vec<usize>> = Teams::new(models, 2, models).collect();
        let soft = soft_vote_of_teams(&pool, &teams).unwrap();
        for (members, accuracy) in teams.iter().zip(&soft) {
            assert_eq!(
                Some(*accuracy),
                Some(soft_vote_by_definition(&input, members)),
                "{members:?}"
            );
            assert_eq!(
                Some(*accuracy),
                pool.team(members).unwrap().soft_vote_accuracy()
            );
        }
        let focal = FocalTable::new(&pool);
        // With per-subset counts, and pattern by pattern.
        let tables = [
            VoteTable::new(&pool).unwrap(),
            VoteTable::with_table_limit(&pool, 0).unwrap(),
        ];
        assert!(tables[0].patterns() < samples);
        for members in Teams::new(models, 2, models) {
            let view = pool.team(&members).unwrap();
            assert_eq!(focal.focal_diversity(&members), view.focal_diversity());
            for votes in &tables {
                assert_eq!(
                    votes.accuracies(&members),
                    (
                        per_sample_plurality(&pool, &members),
                        per_sample_majority(&pool, &members)
                    ),
                    "{members:?}"
                );
            }
        }
    }
}

/// The bulk paths agree exactly with the per-team ones: soft votes of any team list (sharing
/// prefixes or not), and the report lines of any cut of the ranks into ranges.
#[test]
fn bulk_lines_match_one_team_at_a_time() {
    let mut rng = Rng(0x0bad_cafe);
    for (models, samples, classes) in [(7, 300, 3), (6, 700, 10)] {
        let input = random_input(&mut rng, models, samples, classes);
        let pool = Pool::new(input).unwrap();
        let mut teams: Vec<Vec<usize>> = Teams::new(models, 2, models).collect();
        // Neighbours out of order, and a repeat.
        teams.swap(3, 40);
        teams.push(teams[5].clone());
        let soft = soft_vote_of_teams(&pool, &teams).unwrap();
        for (members, accuracy) in teams.iter().zip(&soft) {
            assert_eq!(
                Some(*accuracy),
                pool.team(members).unwrap().soft_vote_accuracy()
            );
        }

        for compat in [Compat::Canonical, Compat::FusionShot] {
            let options = AnalysisOptions {
                min_size: 2,
                max_size: models,
                top_k: 5,
                listing: TeamListing::All,
                full_detail: false,
                compat,
            };
            let whole = analyze(&pool, &options, &mut |_, _| {}).unwrap();
            let lines = TeamLines::new(&pool, &options);
            let mut cut = Vec::new();
            let mut ranked = Vec::new();
            for range in [0..1, 1..17, 17..18, 18..lines.total() + 3] {
                let part = lines.lines(range).unwrap();
                cut.extend(part.teams);
                ranked.extend(
                    part.ranked
                        .into_iter()
                        .map(|t| (t.members, Some(t.focal_diversity))),
                );
            }
            assert_eq!(cut, whole.teams, "{compat:?}");
            let merged: Vec<Vec<usize>> =
                top_k_of(ranked, 5).into_iter().map(|t| t.members).collect();
            assert_eq!(merged, whole.top_k, "{compat:?}");
        }
    }
}

/// The per-focal row tables of the reference modes against their row-by-row twins, on random
/// pools with repeats in the rows, teams wider than a counter of 4 bits, and a model with
/// fewer negatives than a team has members; and the vote table on teams of up to 40 models.
#[test]
fn reference_tables_match_row_by_row() {
    let mut rng = Rng(0x5eed_0042);
    for (models, samples, classes) in [(40, 120, 3), (8, 400, 10)] {
        let mut input = random_input(&mut rng, models, samples, classes);
        // Model 0 fails only two samples.
        let labels = input.labels.clone();
        input.models[0].predictions = Some(
            labels
                .iter()
                .enumerate()
                .map(|(n, &y)| if n < 2 { (y + 1) % classes } else { y })
                .collect(),
        );
        input.models[0].probabilities = None;
        input.models.iter_mut().for_each(|m| m.probabilities = None);
        let pool = Pool::new(input).unwrap();
        let rows: Vec<usize> = (0..samples)
            .map(|_| rng.below(samples as u32) as usize)
            .collect();
        let failures = RowFailures::new(&pool, &rows);
        let fusionshot = FusionShotTable::new(&pool);
        let exact = FocalRows::new(&pool, Sampling::Exact);
        let bootstrap = FocalRows::new(&pool, Sampling::Bootstrap2021);
        let votes = [
            VoteTable::new(&pool).unwrap(),
            VoteTable::with_table_limit(&pool, 0).unwrap(),
        ];
        let teams: Vec<Vec<usize>> = (0..60)
            .map(|t| {
                let size = 2 + t % (models - 1);
                let mut members: Vec<usize> = (0..models).collect();
                for i in 0..size {
                    members.swap(i, i + rng.below((models - i) as u32) as usize);
                }
                let mut members = members[..size].to_vec();
                members.sort_unstable();
                members
            })
            .chain([vec![0, 1, 2], (0..models).collect()])
            .collect();
        for members in &teams {
            let mut histogram = vec![0_u64; members.len() + 1];
            for &r in &rows {
                let wrong = members
                    .iter()
                    .filter(|&&m| !pool.correct(m).unwrap().contains(r))
                    .count();
                histogram[wrong] += 1;
            }
            assert_eq!(failures.histogram(members), histogram, "{members:?}");
            for votes in &votes {
                assert_eq!(
                    votes.accuracies(members),
                    (
                        per_sample_plurality(&pool, members),
                        per_sample_majority(&pool, members)
                    ),
                    "{members:?}"
                );
            }
            for &f in members {
                let negatives: Vec<usize> = pool.negatives(f).unwrap().iter().collect();
                assert_eq!(
                    fusionshot.focal(members, f),
                    fs_generalized_div(&pool, members, &negatives),
                    "{members:?} focal {f}"
                );
                for (sampling, table) in [
                    (Sampling::Exact, &exact),
                    (Sampling::Bootstrap2021, &bootstrap),
                ] {
                    let by_rows = eb_focal_scores(&pool, members, f, sampling);
                    let by_table = table.scores(&pool, members, f);
                    match (&by_rows, &by_table) {
                        (Ok(a), Ok(b)) => {
                            for (x, y) in a.iter().zip(b) {
                                assert!(
                                    (x.is_nan() && y.is_nan())
                                        || (x - y).abs() <= 1e-13 * x.abs().max(1.0),
                                    "{members:?} focal {f} {sampling:?}: {a:?} vs {b:?}"
                                );
                            }
                        }
                        _ => assert_eq!(by_rows, by_table, "{members:?} focal {f} {sampling:?}"),
                    }
                }
            }
        }
    }
}

/// Soft-vote accuracy as the spec defines it: the first maximum of the mean probability vector.
fn soft_vote_by_definition(input: &PoolInput, members: &[usize]) -> f64 {
    let right = input
        .labels
        .iter()
        .enumerate()
        .filter(|&(n, &label)| {
            let classes = input.classes.unwrap();
            let mut mean = vec![0.0; classes];
            for &m in members {
                let row = &input.models[m].probabilities.as_ref().unwrap()[n];
                for (acc, p) in mean.iter_mut().zip(row) {
                    *acc += p;
                }
            }
            for acc in &mut mean {
                *acc /= members.len() as f64;
            }
            let mut best = 0;
            for (c, &v) in mean.iter().enumerate() {
                if v > mean[best] {
                    best = c;
                }
            }
            best == label as usize
        })
        .count();
    right as f64 / input.labels.len() as f64
}

/// On a 10-model pool (1,013 teams), the seeded GA finds the exhaustive optimum, and equal
/// seeds give equal runs.
#[test]
fn genetic_search_finds_the_exhaustive_optimum() {
    use fuselab_shared::ensemble::{Fitness, FitnessWeights, GaConfig, genetic_search};
    let mut rng = Rng(0x0bad_cafe);
    let pool = Pool::new(random_input(&mut rng, 10, 400, 5)).unwrap();
    for weights in [
        FitnessWeights::FUSIONSHOT_DEFAULT,
        FitnessWeights::RUN_GA_SH,
    ] {
        let fitness = Fitness::new(&pool, weights).unwrap();
        let best = (0..1_u64 << 10)
            .map(|mask| fitness.of(mask))
            .fold(f64::NEG_INFINITY, f64::max);
        for seed in [0, 1, 2] {
            let config = GaConfig {
                seed,
                ..GaConfig::default()
            };
            let found = genetic_search(&pool, weights, config).unwrap();
            assert_eq!(Some(found.teams[0].fitness), Some(best), "seed {seed}");
            assert_eq!(found, genetic_search(&pool, weights, config).unwrap());
            assert!(found.teams.windows(2).all(|w| w[0].fitness >= w[1].fitness));
        }
    }
}

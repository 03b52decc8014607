//! Every canonical number of the reference vectors in `tests/vectors/focal/` (copied from the
//! read-only reference set so a clean clone can run them), within the stated tolerances.
//!
//! The compatibility-mode keys (`eb_calDiversityMetric_all_samples`, `eb_focal_cv2021`,
//! `eb_fq`, `eb_notebook_pipeline`, every `{"error": ...}` value, ...) are checked in
//! `compat_vectors.rs`. Here `eb_focal_exact` is a cross-check of the raw metrics on
//! focal-negative subsets (its BD, KW and GD are `1 − x`).

mod common;
#[path = "common/vectors.rs"]
mod vectors;

use common::{per_sample_majority, per_sample_plurality};
use fuselab_shared::ensemble::{
    AnalysisOptions, Compat, FocalTable, Pool, REPORT_SCHEMA, TeamListing, Teams, VoteTable,
    analyze, top_k_by_focal_diversity,
};
use serde_json::Value;
use vectors::{Checker, REL, REL_KAPPA, Ref, load, num, pool_input, reference, usizes};

/// Mean of a pairwise statistic with the `EnsembleBench` epsilon: a 0/0 pair counts as 0.
fn eps_pair_mean(
    view: &fuselab_shared::ensemble::TeamView<'_>,
    stat: fn(&fuselab_shared::ensemble::PairCounts) -> Option<f64>,
) -> f64 {
    let m = view.members();
    let mut sum = 0.0;
    let mut pairs = 0.0;
    for (k, &i) in m.iter().enumerate() {
        for &j in &m[k + 1..] {
            sum += stat(&view.pair_counts(i, j).expect("pair")).unwrap_or(0.0);
            pairs += 1.0;
        }
    }
    sum / pairs
}

#[allow(clippy::too_many_lines)] // one walk over the vector file, key by key
fn check_case(case: &str) {
    let data = load(case);
    let mut ck = Checker::new(case);
    let pool = Pool::new(pool_input(&data["inputs"], true)).expect("valid pool");
    // Predictions omitted: argmax of the probabilities gives the same pool.
    let derived = Pool::new(pool_input(&data["inputs"], false)).expect("valid pool");
    assert_eq!(derived, pool, "{case}: argmax of probabilities");

    let per_model = &data["per_model"];
    for m in 0..pool.models() {
        ck.close(
            &format!("accuracy_pct[{m}]"),
            pool.accuracy(m).expect("model") * 100.0,
            num(&per_model["accuracy_pct"][m]),
            REL,
        );
        let negatives: Vec<usize> = pool.negatives(m).expect("model").iter().collect();
        assert_eq!(
            negatives,
            usizes(&per_model["negative_samples"][m]),
            "{case}: neg({m})"
        );
    }

    let pairwise = &data["pool_pairwise_fusionshot"];
    let whole = pool.team(&[0, 1]).expect("team");
    for i in 0..pool.models() {
        for j in 0..pool.models() {
            let c = whole.pair_counts(i, j).expect("pair");
            let at = |key: &str| &pairwise[key][i][j];
            ck.opt(
                &format!("pool q[{i}][{j}]"),
                c.q_statistic(),
                at("q_statistics"),
                REL,
            );
            ck.opt(
                &format!("pool rho[{i}][{j}]"),
                c.correlation(),
                at("correlation_co-efficiency"),
                REL,
            );
            ck.opt(
                &format!("pool bd[{i}][{j}]"),
                c.disagreement(),
                at("binary_disagreement"),
                REL,
            );
            ck.opt(
                &format!("pool kappa[{i}][{j}]"),
                c.oracle_kappa(),
                at("kappa_statistics"),
                REL_KAPPA,
            );
        }
    }

    let ensembles = data["ensembles"].as_array().expect("ensembles");
    let expected_teams: Vec<Vec<usize>> = ensembles.iter().map(|e| usizes(&e["members"])).collect();
    let all_teams: Vec<Vec<usize>> = Teams::new(pool.models(), 2, pool.models()).collect();
    assert_eq!(all_teams, expected_teams, "{case}: team enumeration order");

    for e in ensembles {
        let members = usizes(&e["members"]);
        let name = format!("team {members:?}");
        let view = pool.team(&members).expect("team");

        let focal = view.focal_diversity();
        ck.opt(
            &format!("{name} fs_focal_diversity"),
            focal.mean,
            &e["fs_focal_diversity"],
            REL,
        );
        for (k, &f) in members.iter().enumerate() {
            let per_focal = focal.per_focal[k];
            ck.opt(
                &format!("{name} per_focal[{f}]"),
                per_focal,
                &e["fs_per_focal_generalized_div"][f.to_string()],
                REL,
            );
            // Canonical mode: undefined exactly when the focal model has no negatives.
            assert_eq!(
                per_focal.is_none(),
                pool.negatives(f).expect("model").count() == 0,
                "{case}: {name} focal {f}"
            );
            // Raw metrics on the focal negatives, against EnsembleBench's exact per-focal scores.
            let eb = &e["eb_focal_exact"][f.to_string()];
            if eb.get("error").is_some() {
                continue;
            }
            let neg = pool
                .team_on(&members, pool.negatives(f).expect("model"))
                .expect("team");
            let what = |k: &str| format!("{name} eb_focal_exact[{f}].{k}");
            ck.opt(&what("CK"), neg.cohen_kappa(), &eb["CK"], REL_KAPPA);
            ck.close(
                &what("QS"),
                eps_pair_mean(&neg, fuselab_shared::ensemble::PairCounts::q_statistic),
                num(&eb["QS"]),
                REL,
            );
            ck.opt(
                &what("BD"),
                neg.disagreement().map(|x| 1.0 - x),
                &eb["BD"],
                REL,
            );
            ck.opt(&what("FK"), neg.fleiss_kappa(), &eb["FK"], REL_KAPPA);
            ck.opt(
                &what("KW"),
                neg.kw_variance().map(|x| 1.0 - x),
                &eb["KW"],
                REL,
            );
            ck.opt(&what("GD"), per_focal.map(|x| 1.0 - x), &eb["GD"], REL);
        }

        let plurality = view.plurality_accuracy().expect("samples");
        ck.close(
            &format!("{name} fs_plurality_acc_pct"),
            plurality * 100.0,
            num(&e["fs_plurality_acc_pct"]),
            REL,
        );
        // Absent or an error where FusionShot's brute force crashed on the team.
        if let Some(pct) = e
            .get("fs_bruteforce_plurality_acc_pct")
            .and_then(Value::as_f64)
        {
            ck.close(
                &format!("{name} fs_bruteforce_plurality_acc_pct"),
                plurality * 100.0,
                pct,
                REL,
            );
        }
        ck.close(
            &format!("{name} eb_enswrapper_plurality_acc"),
            plurality,
            num(&e["eb_enswrapper_plurality_acc"]),
            REL,
        );
        if let Some(votes) = e.get("fs_plurality_predictions").filter(|v| !v.is_null()) {
            let votes: Vec<u32> = serde_json::from_value(votes.clone()).expect("votes");
            assert_eq!(
                view.plurality_predictions(),
                votes,
                "{case}: {name} plurality votes"
            );
            ck.checked += votes.len();
        }
        ck.close(
            &format!("{name} fs_majority_acc_pct"),
            view.majority_accuracy().expect("samples") * 100.0,
            num(&e["fs_majority_acc_pct"]),
            REL,
        );
        let no_majority = view
            .majority_predictions()
            .iter()
            .filter(|v| v.is_none())
            .count();
        assert_eq!(
            no_majority as u64,
            e["fs_majority_no_majority_count"].as_u64().expect("count"),
            "{case}: {name} no-majority count"
        );
        ck.close(
            &format!("{name} eb_avgprob_acc_pct"),
            view.soft_vote_accuracy().expect("probabilities") * 100.0,
            num(&e["eb_avgprob_acc_pct"]),
            REL,
        );

        let raw = &e["eb_raw_all_samples"];
        let d = view.diversity();
        let what = |k: &str| format!("{name} eb_raw_all_samples.{k}");
        ck.opt(
            &what("CK"),
            d.cohen_kappa,
            &raw["cohen_kappa_statistic"],
            REL_KAPPA,
        );
        ck.close(
            &what("Q"),
            eps_pair_mean(&view, fuselab_shared::ensemble::PairCounts::q_statistic),
            num(&raw["Q_statistic"]),
            REL,
        );
        if let Some(q) = d.q_statistic {
            ck.close(&what("Q raw"), q, num(&raw["Q_statistic"]), REL);
        }
        ck.close(
            &what("CC"),
            eps_pair_mean(&view, fuselab_shared::ensemble::PairCounts::correlation),
            num(&raw["correlation_coefficient"]),
            REL,
        );
        ck.opt(
            &what("BD"),
            d.disagreement,
            &raw["binary_disagreement"],
            REL,
        );
        ck.opt(
            &what("FK"),
            d.fleiss_kappa,
            &raw["fleiss_kappa_statistic"],
            REL_KAPPA,
        );
        ck.opt(&what("entropy"), d.entropy, &raw["entropy"], REL);
        ck.opt(
            &what("KW"),
            d.kw_variance,
            &raw["kohavi_wolpert_variance"],
            REL,
        );
        ck.opt(
            &what("GD"),
            d.generalized_diversity,
            &raw["generalized_diversity"],
            REL,
        );
    }

    // Rankings: the reference ranks only the teams its code could score, so its order must be
    // our order restricted to those teams (and all of it when every team was scored).
    let ranking = data["derived_rankings"]["by_fs_focal_diversity_desc"]
        .as_array()
        .expect("ranking");
    let ours = top_k_by_focal_diversity(&pool, all_teams, usize::MAX).expect("teams");
    let reference: Vec<Vec<usize>> = ranking
        .iter()
        .map(|r| {
            r[0].as_str()
                .expect("team name")
                .bytes()
                .map(|b| usize::from(b - b'0'))
                .collect()
        })
        .collect();
    let restricted: Vec<&Vec<usize>> = ours
        .iter()
        .map(|t| &t.members)
        .filter(|m| reference.contains(m))
        .collect();
    assert_eq!(
        restricted,
        reference.iter().collect::<Vec<_>>(),
        "{case}: ranking"
    );
    if reference.len() == ensembles.len() {
        assert_eq!(ours.len(), reference.len(), "{case}: ranking length");
    }
    for (r, t) in ranking
        .iter()
        .zip(ours.iter().filter(|t| reference.contains(&t.members)))
    {
        ck.close("ranking score", t.focal_diversity, num(&r[1]), REL);
    }
    for k in [1, 3] {
        let top = top_k_by_focal_diversity(&pool, Teams::new(pool.models(), 2, pool.models()), k)
            .expect("teams");
        assert_eq!(top, ours[..k.min(ours.len())], "{case}: top-{k}");
    }

    // The triple-count and vote-pattern tables give the same focal diversity and plurality
    // accuracy as the per-sample computations, bit for bit.
    let table = FocalTable::new(&pool);
    let plurality = VoteTable::new(&pool).expect("at most 64 models");
    for members in Teams::new(pool.models(), 2, pool.models()) {
        assert_eq!(
            Some(plurality.plurality_accuracy(&members)),
            Some(per_sample_plurality(&pool, &members)),
            "{case}: plurality table {members:?}"
        );
        assert_eq!(
            Some(plurality.majority_accuracy(&members)),
            Some(per_sample_majority(&pool, &members)),
            "{case}: majority table {members:?}"
        );
        assert_eq!(
            table.focal_diversity(&members),
            pool.team(&members).expect("team").focal_diversity(),
            "{case}: focal table {members:?}"
        );
    }

    // The report streams the same scores into the same ranking and describes every team.
    let options = AnalysisOptions {
        min_size: 2,
        max_size: usize::MAX,
        top_k: usize::MAX,
        listing: TeamListing::All,
        full_detail: true,
        compat: Compat::Canonical,
    };
    let mut calls = 0;
    let report = analyze(&pool, &options, &mut |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .expect("report");
    assert!(calls >= 1, "{case}: progress is reported");
    assert_eq!(report.schema, REPORT_SCHEMA);
    let ranked: Vec<Vec<usize>> = ours.iter().map(|t| t.members.clone()).collect();
    assert_eq!(report.top_k, ranked, "{case}: report top_k");
    assert_eq!(report.teams.len(), ensembles.len(), "{case}: report teams");
    for (team, reference) in report.teams.iter().zip(ensembles) {
        let view = pool.team(&team.members).expect("team");
        assert_eq!(Some(team.plurality_accuracy), view.plurality_accuracy());
        assert_eq!(Some(team.majority_accuracy), view.majority_accuracy());
        assert_eq!(team.soft_vote_accuracy, view.soft_vote_accuracy());
        assert_eq!(team.per_focal, view.focal_diversity().per_focal);
        // The vote breakdown counts every sample once, and k-fold failures add up to the
        // members' negatives.
        let failures = team.failures.as_ref().expect("full detail");
        assert_eq!(failures.iter().sum::<u64>(), pool.samples() as u64);
        let failed: u64 = failures
            .iter()
            .enumerate()
            .map(|(k, &n)| k as u64 * n)
            .sum();
        let negatives: usize = team
            .members
            .iter()
            .map(|&m| pool.negatives(m).expect("model").count())
            .sum();
        assert_eq!(failed, negatives as u64, "{case}: {:?}", team.members);
        ck.opt(
            &format!("report focal {:?}", team.members),
            team.focal_diversity,
            &reference["fs_focal_diversity"],
            REL,
        );
    }

    eprintln!("{case}: {} reference values checked", ck.checked);
    assert!(ck.checked > 50, "{case}: too few values checked");
}

vectors::one_test_per_case!(check_case);

/// FusionShot's GA fitness for every chromosome of every vector file, both weightings; and the
/// seeded GA finds the exhaustive optimum of each pool.
#[test]
fn ga_fitness_and_search() {
    use fuselab_shared::ensemble::{Fitness, FitnessWeights, GaConfig, genetic_search};
    for case in vectors::cases() {
        let data = load(&case);
        let pool = Pool::new(pool_input(&data["inputs"], true)).expect("valid pool");
        let mut ck = Checker::new(&case);
        for (weights, key) in [
            (
                FitnessWeights::FUSIONSHOT_DEFAULT,
                "fitness_default_w0.6_0.4_nopenalty",
            ),
            (
                FitnessWeights::RUN_GA_SH,
                "fitness_runga_sh_w0.5_0.5_penalty",
            ),
        ] {
            let fitness = Fitness::new(&pool, weights).expect("fitness");
            let mut best = f64::NEG_INFINITY;
            for entry in data["ga_fitness"].as_array().expect("ga_fitness") {
                let mask = entry["solution"]
                    .as_array()
                    .expect("genes")
                    .iter()
                    .enumerate()
                    .fold(0_u64, |mask, (m, gene)| {
                        mask | (gene.as_u64().expect("0 or 1") << m)
                    });
                let ours = fitness.of(mask);
                best = best.max(ours);
                if let Ref::Num(expected) = reference(&entry[key]) {
                    ck.close(&format!("{key} {mask:b}"), ours, expected, REL);
                }
            }
            let found = genetic_search(&pool, weights, GaConfig::default()).expect("search");
            assert_eq!(
                Some(found.teams[0].fitness),
                Some(best),
                "{case}: {key}: GA optimum"
            );
        }
        assert!(ck.checked > 4, "{case}: too few fitness values checked");
    }
}

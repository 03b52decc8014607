//! Learned combiners of a team's outputs (spec `focal.md` §6.1): FusionShot's network
//! (`mlp`), stacking and a weighted soft vote, trained on the train split, their checkpoint or
//! settings chosen on val, and reported on test beside every member, plurality, majority and
//! soft vote. The report's schema is [`COMBINE_SCHEMA`].

mod data;
mod linear;
mod metrics;
mod mlp;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use data::{Features, SplitPool, SplitRows, SplitSizes};
pub use linear::{STACKING_L2, stacked, vote_weights, weighted_vote};
pub use metrics::{ECE_BINS, Interval, NLL_FLOOR, Scores, batch_mean_accuracy, scores};
pub use mlp::{HIDDEN, Head, Mlp, Optimizer, shuffled};

use super::limits::LimitError;
use super::pool::{PoolError, first_argmax};
use super::split::Split;
use crate::rng::SplitMix64;

/// The value of [`CombineReport::schema`].
pub const COMBINE_SCHEMA: &str = "fuselab.ensemble.combine/v1";

/// Most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 100_000;

/// How the members' outputs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// FusionShot's network over the concatenated member outputs.
    Mlp,
    /// Multinomial logistic regression on the members' probabilities.
    Stacking,
    /// A soft vote with one weight per member.
    WeightedVote,
}

impl Method {
    /// The name flags and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Stacking => "stacking",
            Self::WeightedVote => "weighted-vote",
        }
    }
}

/// How to train and report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CombineOptions {
    /// The combiner.
    pub method: Method,
    /// FusionShot's code as it is: sigmoid-then-softmax output with cross-entropy on the
    /// softmax, mean-of-batch accuracies (its unseeded shuffle seeded).
    pub fusionshot: bool,
    /// Training epochs (`mlp`).
    pub epochs: usize,
    /// Batch size (`mlp`).
    pub batch: usize,
    /// Adam's learning rate (`mlp`).
    pub lr: f64,
    /// Seeds the initial weights and the shuffles.
    pub seed: u64,
    /// Train on train and val together (LLM-TOPLA's leak, kept for `--compat llm-topla`); val
    /// still chooses the checkpoint.
    #[serde(default)]
    pub train_on_val: bool,
    /// Stop once this many epochs in a row have not improved val accuracy (`mlp`).
    #[serde(default)]
    pub patience: Option<usize>,
}

impl Default for CombineOptions {
    fn default() -> Self {
        Self {
            method: Method::Mlp,
            fusionshot: false,
            epochs: 300,
            batch: 64,
            lr: 1e-3,
            seed: 0,
            train_on_val: false,
            patience: None,
        }
    }
}

impl CombineOptions {
    /// Checks the numbers are in range.
    ///
    /// # Errors
    /// [`CombineError::Option`] naming the option.
    pub fn check(&self) -> Result<(), CombineError> {
        let bad =
            |option: &'static str, message: String| Err(CombineError::Option { option, message });
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return bad(
                "epochs",
                format!("expected 1 to {MAX_EPOCHS}, found {}", self.epochs),
            );
        }
        if !(1..=1 << 20).contains(&self.batch) {
            return bad(
                "batch",
                format!("expected 1 to 1048576, found {}", self.batch),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            return bad(
                "lr",
                format!("expected a number in (0, 10], found {}", self.lr),
            );
        }
        Ok(())
    }
}

/// Why a combiner cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CombineError {
    /// The pool is not valid.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The pool has no splits.
    #[error(
        "the pool has no `splits`: a combiner trains on train, picks its checkpoint on val and is reported on test, so every sample needs a split (train, val or test)"
    )]
    NoSplits,
    /// A split has no samples.
    #[error("no sample is in the {split} split: a combiner needs train, val and test samples")]
    EmptySplit {
        /// The empty split.
        split: Split,
    },
    /// A team member has neither probabilities nor logits.
    #[error(
        "model `{model}` has no `probabilities` or `logits`: a combiner learns from the members' scores, not their labels"
    )]
    NoScores {
        /// The member.
        model: String,
    },
    /// A team names a model the pool does not have.
    #[error("`{name}` is not a model of the pool (its models: {models})")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The pool's models.
        models: String,
    },
    /// The team is not usable.
    #[error("{message}")]
    Team {
        /// What is wrong.
        message: String,
    },
    /// A logit is too large for the network's `f32` arithmetic.
    #[error(
        "model `{model}`, sample {sample}: logit {value:e} is beyond the combiner's f32 range (±3.4e38)"
    )]
    LogitRange {
        /// The member.
        model: String,
        /// The sample (0-based, in the whole pool).
        sample: usize,
        /// The value.
        value: f64,
    },
    /// An option is out of range.
    #[error("--{option}: {message}")]
    Option {
        /// The option.
        option: &'static str,
        /// What was expected.
        message: String,
    },
    /// Too many teams to rank.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// One epoch of the network's training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean of the epoch's batch losses on train.
    pub train_loss: f64,
    /// Mean loss on val after the epoch.
    pub val_loss: f64,
    /// Val accuracy after the epoch (the checkpoint criterion).
    pub val_accuracy: f64,
}

/// A baseline the combiner is compared with, on test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// A member's name, `plurality`, `majority` or `soft vote`.
    pub name: String,
    /// Whether it is a single member.
    pub member: bool,
    /// Its scores on test.
    pub scores: Scores,
}

/// One team's combiner against its baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamCombination {
    /// Member indices, in the order given.
    pub members: Vec<usize>,
    /// Member names.
    pub names: Vec<String>,
    /// Focal diversity on val, when the team was ranked.
    pub focal_diversity: Option<f64>,
    /// What the network read (`mlp`).
    pub features: Option<Features>,
    /// The combiner on test.
    pub combined: Scores,
    /// The combiner on val (what chose it).
    pub val: Scores,
    /// The epoch whose checkpoint was kept (`mlp`, 1-based).
    pub best_epoch: Option<usize>,
    /// The learning curve (`mlp`).
    pub curve: Vec<EpochPoint>,
    /// Stacking's chosen L2 strength.
    pub l2: Option<f64>,
    /// The weighted vote's member weights.
    pub weights: Option<Vec<f64>>,
    /// Every member, plurality, majority and soft vote on test.
    pub baselines: Vec<Baseline>,
}

/// `fuselab ensemble combine`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombineReport {
    /// [`COMBINE_SCHEMA`].
    pub schema: String,
    /// The options the run used.
    pub options: CombineOptions,
    /// Samples per split.
    pub splits: SplitSizes,
    /// Number of classes.
    pub classes: usize,
    /// How teams were chosen: `given`, or `top-k focal diversity on val`.
    pub teams_from: String,
    /// One entry per team.
    pub teams: Vec<TeamCombination>,
}

/// Plurality (ties to the smallest label), majority (more than half the votes, else wrong)
/// and soft vote of the members' rows.
fn votes(rows: &SplitRows, classes: usize) -> [(Vec<u32>, Option<Vec<f64>>); 3] {
    let samples = rows.labels.len();
    let members = rows.predictions.len();
    let mut plurality = Vec::with_capacity(samples);
    let mut majority = Vec::with_capacity(samples);
    let mut counts = vec![0_usize; classes];
    for n in 0..samples {
        counts.fill(0);
        // A prediction outside the classes (no answer) is an abstention.
        for member in &rows.predictions {
            if let Some(count) = counts.get_mut(member[n] as usize) {
                *count += 1;
            }
        }
        let mut best = 0;
        for c in 1..classes {
            if counts[c] > counts[best] {
                best = c;
            }
        }
        plurality.push(if counts[best] == 0 {
            u32::MAX
        } else {
            best as u32
        });
        // No majority: a class id no sample has, so it counts as wrong.
        majority.push(if counts[best] > members / 2 {
            best as u32
        } else {
            u32::MAX
        });
    }
    let mean = weighted_vote(&rows.probabilities, &vec![1.0 / members as f64; members]);
    let soft = predictions_of(&mean, classes);
    [(plurality, None), (majority, None), (soft, Some(mean))]
}

fn predictions_of(probabilities: &[f64], classes: usize) -> Vec<u32> {
    probabilities
        .chunks_exact(classes)
        .map(|row| first_argmax(row) as u32)
        .collect()
}

/// The most probable class of each row among the classes some member gives a positive
/// probability: a combiner picks one of its members' answers, never a class none of them
/// proposed (such as an LLM pool's "the gold answer is not among the answers").
fn supported_predictions(probabilities: &[f64], rows: &SplitRows, classes: usize) -> Vec<u32> {
    probabilities
        .chunks_exact(classes)
        .enumerate()
        .map(|(n, row)| {
            let supported = |c: usize| {
                rows.probabilities
                    .iter()
                    .any(|member| member[n * classes + c] > 0.0)
            };
            let mut best: Option<usize> = None;
            for c in (0..classes).filter(|&c| supported(c)) {
                if best.is_none_or(|b| row[c] > row[b]) {
                    best = Some(c);
                }
            }
            best.map_or_else(|| first_argmax(row) as u32, |c| c as u32)
        })
        .collect()
}

/// The baselines of a team on test.
fn baselines(
    names: &[String],
    test: &SplitRows,
    classes: usize,
    interval: Interval,
) -> Vec<Baseline> {
    let mut out: Vec<Baseline> = names
        .iter()
        .enumerate()
        .map(|(j, name)| Baseline {
            name: name.clone(),
            member: true,
            scores: scores(
                &test.labels,
                &test.predictions[j],
                Some(&test.probabilities[j]),
                classes,
                interval,
            ),
        })
        .collect();
    for (name, (predicted, probabilities)) in ["plurality", "majority", "soft vote"]
        .into_iter()
        .zip(votes(test, classes))
    {
        out.push(Baseline {
            name: name.to_owned(),
            member: false,
            scores: scores(
                &test.labels,
                &predicted,
                probabilities.as_deref(),
                classes,
                interval,
            ),
        });
    }
    out
}

/// What a trained combiner gives back: its probabilities on val and test, and how it was
/// chosen.
struct Fitted {
    val: Vec<f64>,
    test: Vec<f64>,
    best_epoch: Option<usize>,
    curve: Vec<EpochPoint>,
    l2: Option<f64>,
    weights: Option<Vec<f64>>,
}

/// The team's predictions from combiner probabilities: the supported argmax, except in
/// FusionShot's mode, which takes the plain argmax.
fn chosen(
    probabilities: &[f64],
    rows: &SplitRows,
    classes: usize,
    options: &CombineOptions,
) -> Vec<u32> {
    if options.fusionshot {
        predictions_of(probabilities, classes)
    } else {
        supported_predictions(probabilities, rows, classes)
    }
}

/// Trains FusionShot's network on train (with val too under `train_on_val`), keeping the epoch
/// with the best val accuracy (ties: the lower val loss, except in FusionShot's mode, which
/// keeps the first), stopping early after `patience` epochs without improvement.
/// `progress(epoch, epochs)` after each epoch; returning `false` stops early.
fn fit_mlp(
    rows: &TeamRows,
    options: &CombineOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Fitted {
    let TeamRows {
        train,
        val,
        test,
        classes,
        ..
    } = rows;
    let classes = *classes;
    let head = if options.fusionshot {
        Head::FusionShot
    } else {
        Head::Logits
    };
    let (features, labels) = if options.train_on_val {
        (
            [train.features.as_slice(), &val.features].concat(),
            [train.labels.as_slice(), &val.labels].concat(),
        )
    } else {
        (train.features.clone(), train.labels.clone())
    };
    let mut mlp = Mlp::new(train.width, classes, head, options.seed);
    let mut optimizer = Optimizer::adam(&mlp, options.lr);
    let mut rng = SplitMix64(options.seed ^ 0x9e37_79b9_7f4a_7c15);
    let val_accuracy = |probabilities: &[f64]| {
        let predicted = chosen(probabilities, val, classes, options);
        let correct: Vec<bool> = predicted
            .iter()
            .zip(&val.labels)
            .map(|(p, y)| p == y)
            .collect();
        if options.fusionshot {
            batch_mean_accuracy(&correct, metrics::FUSIONSHOT_BATCH).0
        } else {
            correct.iter().filter(|&&c| c).count() as f64 / correct.len().max(1) as f64
        }
    };
    let mut best: Option<(f64, f64, usize, Mlp)> = None;
    let mut curve = Vec::with_capacity(options.epochs);
    for epoch in 1..=options.epochs {
        let order = shuffled(labels.len(), &mut rng);
        let train_loss = mlp.train_epoch(&mut optimizer, &features, &labels, &order, options.batch);
        let accuracy = val_accuracy(&mlp.probabilities(&val.features));
        let val_loss = mlp.loss(&val.features, &val.labels);
        curve.push(EpochPoint {
            epoch,
            train_loss,
            val_loss,
            val_accuracy: accuracy,
        });
        // FusionShot keeps the first epoch with the best val accuracy; fuselab breaks ties by
        // the lower val loss, so an early, barely confident checkpoint does not win on a tie.
        let better = best
            .as_ref()
            .is_none_or(|(a, loss, _, _)| match accuracy.total_cmp(a) {
                std::cmp::Ordering::Equal => !options.fusionshot && val_loss < *loss,
                order => order.is_gt(),
            });
        if better {
            best = Some((accuracy, val_loss, epoch, mlp.clone()));
        }
        let stale = best.as_ref().map_or(0, |(_, _, at, _)| epoch - at);
        if !progress(epoch, options.epochs) || options.patience.is_some_and(|p| stale > p) {
            break;
        }
    }
    let (_, _, best_epoch, kept) = best.unwrap_or((0.0, 0.0, 0, mlp));
    Fitted {
        val: kept.probabilities(&val.features),
        test: kept.probabilities(&test.features),
        best_epoch: Some(best_epoch),
        curve,
        l2: None,
        weights: None,
    }
}

/// A team's rows of the three splits, ready for a combiner; labels must be classes in train
/// and val, and may be out of range in test (a sample no answer can get right).
#[derive(Debug, Clone, PartialEq)]
pub struct TeamRows {
    /// Fits the combiner.
    pub train: SplitRows,
    /// Chooses its checkpoint or settings.
    pub val: SplitRows,
    /// Reports it.
    pub test: SplitRows,
    /// Classes per member row.
    pub classes: usize,
    /// The members' names.
    pub names: Vec<String>,
    /// What the network reads.
    pub features: Features,
}

/// Trains `options.method` on `members`' train rows and reports it on test beside the
/// baselines. `progress(done, total)` reports epochs (`mlp`) and may return `false` to stop
/// training early (the best checkpoint so far is reported).
///
/// # Errors
/// [`CombineError`] naming the option, member or split.
pub fn combine_team(
    pool: &SplitPool,
    members: &[usize],
    options: &CombineOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<TeamCombination, CombineError> {
    options.check()?;
    let rows = TeamRows {
        train: pool.rows(members, Split::Train)?,
        val: pool.rows(members, Split::Val)?,
        test: pool.rows(members, Split::Test)?,
        classes: pool.pool().classes(),
        names: members
            .iter()
            .map(|&m| pool.pool().names()[m].clone())
            .collect(),
        features: pool.features(members),
    };
    let mut team = combine_rows(&rows, options, progress)?;
    team.members = members.to_vec();
    Ok(team)
}

/// [`combine_team`] on rows built elsewhere (LLM-TOPLA's candidate-space features); the
/// result's `members` are `0..names.len()`.
///
/// # Errors
/// [`CombineError::Option`] for an option out of range.
pub fn combine_rows(
    rows: &TeamRows,
    options: &CombineOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<TeamCombination, CombineError> {
    options.check()?;
    let TeamRows {
        train,
        val,
        test,
        classes,
        names,
        features,
    } = rows;
    let classes = *classes;
    let fitted = match options.method {
        Method::Mlp => fit_mlp(rows, options, progress),
        Method::Stacking => {
            let width = names.len() * classes;
            let stack = |r: &SplitRows| stacked(&r.probabilities, r.labels.len(), classes);
            let (model, l2) = linear::stacking(
                (&stack(train), &train.labels),
                (&stack(val), &val.labels),
                width,
                classes,
            );
            Fitted {
                val: model.probabilities(&stack(val)),
                test: model.probabilities(&stack(test)),
                best_epoch: None,
                curve: Vec::new(),
                l2: Some(l2),
                weights: None,
            }
        }
        Method::WeightedVote => {
            let weights = vote_weights(&val.probabilities, &val.labels, classes);
            Fitted {
                val: weighted_vote(&val.probabilities, &weights),
                test: weighted_vote(&test.probabilities, &weights),
                best_epoch: None,
                curve: Vec::new(),
                l2: None,
                weights: Some(weights),
            }
        }
    };
    let interval = if options.fusionshot {
        Interval::BatchMean
    } else {
        Interval::Wilson
    };
    let score = |rows: &SplitRows, probabilities: &[f64]| {
        scores(
            &rows.labels,
            &chosen(probabilities, rows, classes, options),
            Some(probabilities),
            classes,
            interval,
        )
    };
    Ok(TeamCombination {
        members: (0..names.len()).collect(),
        names: names.clone(),
        focal_diversity: None,
        features: (options.method == Method::Mlp).then_some(*features),
        combined: score(test, &fitted.test),
        val: score(val, &fitted.val),
        best_epoch: fitted.best_epoch,
        curve: fitted.curve,
        l2: fitted.l2,
        weights: fitted.weights,
        baselines: baselines(names, test, classes, interval),
    })
}

/// A team's members and, when it was ranked, its focal diversity on val.
type RankedMembers = (Vec<usize>, Option<f64>);

/// Which teams [`combine_pool`] combines.
#[derive(Debug, Clone, Copy)]
pub enum TeamChoice<'a> {
    /// One team, by model names.
    Names(&'a [&'a str]),
    /// The `k` most focal-diverse teams, ranked on val.
    TopK(usize),
}

/// `fuselab ensemble combine`'s whole run: the chosen teams, each combined by [`combine_team`],
/// in one [`CombineReport`]. `progress(team, done, total)` reports each team's epochs and may
/// return `false` to stop that team's training early.
///
/// # Errors
/// [`CombineError`] naming the option, model, member or split.
pub fn combine_pool(
    pool: &SplitPool,
    choice: TeamChoice<'_>,
    options: &CombineOptions,
    limits: &super::Limits,
    progress: &mut dyn FnMut(usize, usize, usize) -> bool,
) -> Result<CombineReport, CombineError> {
    options.check()?;
    // Each team's members and, when it was ranked, its focal diversity on val.
    let (teams, teams_from): (Vec<RankedMembers>, String) = match choice {
        TeamChoice::TopK(k) => (
            pool.top_teams(k, limits)?
                .into_iter()
                .map(|team| (team.members, Some(team.focal_diversity)))
                .collect(),
            format!("the top {k} teams by focal diversity on the val split"),
        ),
        TeamChoice::Names(names) => (vec![(pool.team_of_names(names)?, None)], "given".to_owned()),
    };
    let mut combined = Vec::with_capacity(teams.len());
    for (index, (members, focal)) in teams.iter().enumerate() {
        let mut team = combine_team(pool, members, options, &mut |done, total| {
            progress(index, done, total)
        })?;
        team.focal_diversity = *focal;
        combined.push(team);
    }
    Ok(CombineReport {
        schema: COMBINE_SCHEMA.to_owned(),
        options: *options,
        splits: pool.sizes(),
        classes: pool.pool().classes(),
        teams_from,
        teams: combined,
    })
}

//! The report lines of teams, a contiguous range of ranks ([`Teams`] order) at a time, so that
//! describing every team of a large pool can be split across cores and written out as it is
//! computed instead of held in memory: focal diversity from the triple-count table, plurality
//! and majority from the vote patterns (per sample only for pools over 64 models), soft votes
//! shared between neighbouring teams, and `FusionShot`'s focal diversity in its mode.

use core::ops::Range;

use super::compat::{CompatError, FusionShotTable};
use super::report::{AnalysisOptions, Compat, TeamReport};
use super::select::{RankedTeam, Teams, top_k_of};
use super::team::TeamError;
use super::vote::soft_vote_of_teams;
use super::{FocalTable, Pool, VoteTable};

/// Describes teams of one pool under one set of options.
#[derive(Debug, Clone)]
pub struct TeamLines<'a> {
    pool: &'a Pool,
    min_size: usize,
    max_size: usize,
    top_k: usize,
    full_detail: bool,
    focal: FocalTable,
    votes: Option<VoteTable>,
    fusionshot: Option<FusionShotTable>,
}

/// The lines of a range of teams.
#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    /// One per team, in rank order. Without `EnsembleBench`'s scores, which need every team
    /// (see [`super::analyze`]).
    pub teams: Vec<TeamReport>,
    /// The range's best teams by focal diversity (at most the options' `top_k`).
    pub ranked: Vec<RankedTeam>,
    /// Per team, what `FusionShot` could not score: the focal model and why.
    pub fusionshot_errors: Vec<(Vec<usize>, usize, CompatError)>,
}

impl<'a> TeamLines<'a> {
    /// Counts what every team's line needs once.
    pub fn new(pool: &'a Pool, options: &AnalysisOptions) -> Self {
        Self {
            pool,
            min_size: options.min_size,
            max_size: options.max_size,
            top_k: options.top_k,
            full_detail: options.full_detail,
            focal: FocalTable::new(pool),
            votes: VoteTable::new(pool),
            fusionshot: (options.compat == Compat::FusionShot).then(|| FusionShotTable::new(pool)),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &'a Pool {
        self.pool
    }

    /// The number of teams in the options' size range.
    pub fn total(&self) -> u64 {
        Teams::total(self.pool.models(), self.min_size, self.max_size)
    }

    /// The lines of the teams with ranks in `range` (clamped to [`Self::total`]).
    ///
    /// # Errors
    /// [`TeamError`] for a team the pool cannot form (none in a valid size range).
    pub fn lines(&self, range: Range<u64>) -> Result<Lines, TeamError> {
        let count = range.end.min(self.total()).saturating_sub(range.start);
        let members: Vec<Vec<usize>> = Teams::starting_at(
            self.pool.models(),
            self.min_size,
            self.max_size,
            range.start,
        )
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
        let soft_votes = soft_vote_of_teams(self.pool, &members);
        let mut fusionshot_errors = Vec::new();
        let teams = members
            .iter()
            .enumerate()
            .map(|(t, members)| {
                let soft_vote = soft_votes.as_ref().map(|all| all[t]);
                let (line, errors) = self.describe(members, soft_vote)?;
                fusionshot_errors.extend(errors.into_iter().map(|(f, e)| (members.clone(), f, e)));
                Ok(line)
            })
            .collect::<Result<Vec<_>, TeamError>>()?;
        let ranked = top_k_of(
            teams
                .iter()
                .map(|team| (team.members.clone(), team.focal_diversity)),
            self.top_k,
        );
        Ok(Lines {
            teams,
            ranked,
            fusionshot_errors,
        })
    }

    /// The best teams among the ranks in `range` (clamped to [`Self::total`]) by the score
    /// of [`Self::score`], at most the options' `top_k`, and how many had no score.
    pub fn rank(&self, range: Range<u64>) -> (Vec<RankedTeam>, u64) {
        let count = range.end.min(self.total()).saturating_sub(range.start);
        let mut unscored = 0;
        let scored = Teams::starting_at(
            self.pool.models(),
            self.min_size,
            self.max_size,
            range.start,
        )
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .map(|members| {
            let score = self.score(&members);
            unscored += u64::from(score.is_none());
            (members, score)
        });
        let ranked = top_k_of(scored, self.top_k);
        (ranked, unscored)
    }

    /// The focal diversity `top_k` ranks a team by: canonical, or `FusionShot`'s in its mode
    /// (`None` where its code raises).
    pub fn score(&self, members: &[usize]) -> Option<f64> {
        match &self.fusionshot {
            Some(table) => fusionshot_focal(table, members).0,
            None => self.focal.focal_diversity(members).mean,
        }
    }

    /// One team's line (`soft_vote` when computed in bulk), and where `FusionShot` fails.
    ///
    /// # Errors
    /// [`TeamError`] for members the pool does not have.
    pub fn describe(
        &self,
        members: &[usize],
        soft_vote: Option<f64>,
    ) -> Result<(TeamReport, Vec<(usize, CompatError)>), TeamError> {
        let view = self.pool.team(members)?;
        let members = view.members();
        let (focal_diversity, per_focal, errors) = if let Some(table) = &self.fusionshot {
            let (mean, per_focal) = fusionshot_focal(table, members);
            let errors = members
                .iter()
                .zip(&per_focal)
                .filter_map(|(&f, r)| r.as_ref().err().map(|e| (f, e.clone())))
                .collect();
            let per_focal = per_focal.into_iter().map(Result::ok).collect();
            (mean, per_focal, errors)
        } else {
            let focal = self.focal.focal_diversity(members);
            (focal.mean, focal.per_focal, Vec::new())
        };
        // A validated pool has samples, so these accuracies are defined.
        let (plurality, majority) = match &self.votes {
            Some(votes) => votes.accuracies(members),
            None => (
                view.plurality_accuracy().unwrap_or(0.0),
                view.majority_accuracy().unwrap_or(0.0),
            ),
        };
        let line = TeamReport {
            members: members.to_vec(),
            focal_diversity,
            per_focal,
            plurality_accuracy: plurality,
            majority_accuracy: majority,
            soft_vote_accuracy: soft_vote.or_else(|| view.soft_vote_accuracy()),
            diversity: self.full_detail.then(|| view.diversity()),
            failures: self.full_detail.then(|| view.failure_histogram()),
            focal_metrics: if self.full_detail {
                Some(super::report::focal_metrics(self.pool, members)?)
            } else {
                None
            },
            ensemblebench: None,
        };
        Ok((line, errors))
    }
}

/// `FusionShot`'s focal diversity: per member its `calc_generalized_div` on the member's
/// negatives, and their mean when none raised.
fn fusionshot_focal(
    table: &FusionShotTable,
    members: &[usize],
) -> (Option<f64>, Vec<Result<f64, CompatError>>) {
    let per_focal: Vec<Result<f64, CompatError>> =
        members.iter().map(|&f| table.focal(members, f)).collect();
    let values: Option<Vec<f64>> = per_focal.iter().map(|r| r.as_ref().ok().copied()).collect();
    // FusionShot sums in a Python loop, then divides.
    let mean = values.map(|v| v.iter().fold(0.0, |sum, x| sum + x) / v.len() as f64);
    (mean, per_focal)
}

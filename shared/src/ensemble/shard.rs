//! Exhaustive analysis cut into shards: the teams of a size range are numbered by rank (the
//! [`Teams`] order), a shard is a contiguous range of ranks, and each shard streams its teams
//! into a [`TeamSummary`] whose memory does not grow with the number of teams: the top-K by
//! focal diversity, the accuracy–diversity Pareto front, and per-size statistics with
//! histograms. Summaries merge in any order and grouping to exactly (bit for bit) the summary
//! of one pass over all teams, so shards can run on different workers.

use core::ops::{ControlFlow, Range};

use serde::{Deserialize, Serialize};

use super::overview::{Point, SizeSummary, plurality_accuracy};
use super::select::{RankedTeam, Teams, top_k_of};
use super::{FocalTable, Pool, VoteTable};

/// Bins of each per-size histogram, over `[0, 1]` (focal diversity and accuracy both live
/// there; a value outside goes to the nearest end bin, and `min`/`max` keep it exact).
pub const HISTOGRAM_BINS: usize = 20;

/// Sums are kept as integers in units of 2^-60: integer addition is associative, so the
/// merged sums (and the means) do not depend on how the teams were cut into shards.
const FIXED_ONE: f64 = (1_u64 << 60) as f64;

/// Statistics of one team size's teams with a defined focal diversity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeStats {
    /// Team size.
    pub size: usize,
    /// Teams counted.
    pub teams: u64,
    /// Sum of focal diversity, in units of 2^-60 (in JSON a decimal string: it outgrows
    /// the 64-bit integers JSON readers take exactly).
    #[serde(with = "decimal")]
    pub focal_sum: i128,
    /// Lowest focal diversity.
    pub focal_min: f64,
    /// Highest focal diversity.
    pub focal_max: f64,
    /// Sum of plurality accuracy, in units of 2^-60 (a decimal string in JSON).
    #[serde(with = "decimal")]
    pub accuracy_sum: i128,
    /// Lowest plurality accuracy.
    pub accuracy_min: f64,
    /// Highest plurality accuracy.
    pub accuracy_max: f64,
    /// Teams per focal-diversity bin ([`HISTOGRAM_BINS`] equal bins over `[0, 1]`).
    pub focal_histogram: Vec<u64>,
    /// Teams per accuracy bin ([`HISTOGRAM_BINS`] equal bins over `[0, 1]`).
    pub accuracy_histogram: Vec<u64>,
}

/// An `i128` as a decimal string.
mod decimal {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(value: &i128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("expected a decimal integer, found {text:?}")))
    }
}

fn fixed(value: f64) -> i128 {
    (value * FIXED_ONE).round() as i128
}

fn bin(value: f64) -> usize {
    // `as` saturates (a negative value to 0), so a value outside [0, 1] lands in an end bin.
    #[allow(clippy::cast_sign_loss)]
    let at = (value * HISTOGRAM_BINS as f64) as usize;
    at.min(HISTOGRAM_BINS - 1)
}

impl SizeStats {
    fn empty(size: usize) -> Self {
        Self {
            size,
            teams: 0,
            focal_sum: 0,
            focal_min: f64::INFINITY,
            focal_max: f64::NEG_INFINITY,
            accuracy_sum: 0,
            accuracy_min: f64::INFINITY,
            accuracy_max: f64::NEG_INFINITY,
            focal_histogram: vec![0; HISTOGRAM_BINS],
            accuracy_histogram: vec![0; HISTOGRAM_BINS],
        }
    }

    fn add(&mut self, focal: f64, accuracy: f64) {
        self.teams += 1;
        self.focal_sum += fixed(focal);
        self.focal_min = self.focal_min.min(focal);
        self.focal_max = self.focal_max.max(focal);
        self.accuracy_sum += fixed(accuracy);
        self.accuracy_min = self.accuracy_min.min(accuracy);
        self.accuracy_max = self.accuracy_max.max(accuracy);
        self.focal_histogram[bin(focal)] += 1;
        self.accuracy_histogram[bin(accuracy)] += 1;
    }

    fn merge(&mut self, other: &Self) {
        self.teams += other.teams;
        self.focal_sum += other.focal_sum;
        self.focal_min = self.focal_min.min(other.focal_min);
        self.focal_max = self.focal_max.max(other.focal_max);
        self.accuracy_sum += other.accuracy_sum;
        self.accuracy_min = self.accuracy_min.min(other.accuracy_min);
        self.accuracy_max = self.accuracy_max.max(other.accuracy_max);
        for (a, b) in self.focal_histogram.iter_mut().zip(&other.focal_histogram) {
            *a += b;
        }
        for (a, b) in self
            .accuracy_histogram
            .iter_mut()
            .zip(&other.accuracy_histogram)
        {
            *a += b;
        }
    }

    /// The report's per-size summary: means from the exact sums.
    pub fn summary(&self) -> SizeSummary {
        let mean = |sum: i128| sum as f64 / FIXED_ONE / self.teams as f64;
        SizeSummary {
            size: self.size,
            teams: self.teams,
            mean_focal: mean(self.focal_sum),
            max_focal: self.focal_max,
            mean_accuracy: mean(self.accuracy_sum),
            max_accuracy: self.accuracy_max,
        }
    }
}

/// What one shard (or a merge of shards) found; `top_k` is the caller's, the rest is fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamSummary {
    /// Teams enumerated, scored or not.
    pub enumerated: u64,
    /// Teams whose focal diversity is undefined (left out of everything else).
    pub unscored: u64,
    /// How many teams `top` keeps.
    pub top_k: usize,
    /// The best teams by focal diversity, best first, ties to the smaller member list.
    pub top: Vec<RankedTeam>,
    /// The teams no other team beats on both focal diversity and accuracy, by accuracy
    /// descending (so focal diversity ascending); of equal points, the smaller member list.
    pub pareto: Vec<Point>,
    /// Per team size, ascending, sizes with at least one scored team.
    pub sizes: Vec<SizeStats>,
}

/// A team's place in the accuracy–diversity plane, borrowed.
#[derive(Clone, Copy)]
struct At<'a> {
    members: &'a [usize],
    focal: f64,
    accuracy: f64,
}

impl<'a> At<'a> {
    fn of(point: &'a Point) -> Self {
        Self {
            members: &point.members,
            focal: point.focal,
            accuracy: point.accuracy,
        }
    }

    /// No worse than `other` on both axes and, where equal on both, the smaller member list:
    /// then `other` does not belong on the front beside `self`.
    fn beats_or_ties(self, other: Self) -> bool {
        self.accuracy >= other.accuracy
            && self.focal >= other.focal
            && (self.accuracy > other.accuracy
                || self.focal > other.focal
                || self.members <= other.members)
    }
}

impl TeamSummary {
    /// The summary of no teams.
    pub fn new(top_k: usize) -> Self {
        Self {
            enumerated: 0,
            unscored: 0,
            top_k,
            top: Vec::new(),
            pareto: Vec::new(),
            sizes: Vec::new(),
        }
    }

    /// Puts a team on the Pareto front unless a point there beats or ties it; allocates only
    /// when it goes on, which is rare once the front has formed.
    fn add_pareto(&mut self, team: At<'_>) {
        // The front is sorted by accuracy descending with focal strictly ascending, so the
        // points at least as accurate are a prefix and the last of them is the most diverse.
        let prefix = self
            .pareto
            .partition_point(|p| p.accuracy.total_cmp(&team.accuracy).is_ge());
        if prefix > 0 && At::of(&self.pareto[prefix - 1]).beats_or_ties(team) {
            return;
        }
        // Equally accurate points just before the insertion place, and the less accurate ones
        // after it that are not more diverse, are beaten by the new point.
        let mut start = prefix;
        while start > 0 && team.beats_or_ties(At::of(&self.pareto[start - 1])) {
            start -= 1;
        }
        let mut end = prefix;
        while end < self.pareto.len() && team.beats_or_ties(At::of(&self.pareto[end])) {
            end += 1;
        }
        let point = Point {
            members: team.members.to_vec(),
            focal: team.focal,
            accuracy: team.accuracy,
        };
        self.pareto.splice(start..end, [point]);
    }

    fn size_mut(&mut self, size: usize) -> &mut SizeStats {
        let at = self.sizes.partition_point(|s| s.size < size);
        if self.sizes.get(at).is_none_or(|s| s.size != size) {
            self.sizes.insert(at, SizeStats::empty(size));
        }
        &mut self.sizes[at]
    }

    /// Counts one scored team in its size's statistics and offers it to the Pareto front (the
    /// top-K is kept by the caller's stream).
    fn add(&mut self, members: &[usize], focal: f64, accuracy: f64) {
        self.size_mut(members.len()).add(focal, accuracy);
        self.add_pareto(At {
            members,
            focal,
            accuracy,
        });
    }

    /// Folds `other` (of the same `top_k`) into this one; the result does not depend on the
    /// order or grouping of merges.
    pub fn merge(&mut self, other: &Self) {
        self.enumerated += other.enumerated;
        self.unscored += other.unscored;
        let top = core::mem::take(&mut self.top);
        self.top = top_k_of(
            top.into_iter()
                .chain(other.top.iter().cloned())
                .map(|t| (t.members, Some(t.focal_diversity))),
            self.top_k,
        );
        for point in &other.pareto {
            self.add_pareto(At::of(point));
        }
        for stats in &other.sizes {
            self.size_mut(stats.size).merge(stats);
        }
    }

    /// The per-size summaries the report shows.
    pub fn size_summaries(&self) -> Vec<SizeSummary> {
        self.sizes.iter().map(SizeStats::summary).collect()
    }
}

/// The rank ranges of at most `per_shard` teams each that cover `0..total`, in order.
/// `per_shard` of 0 is taken as 1.
pub fn shard_ranges(total: u64, per_shard: u64) -> impl Iterator<Item = Range<u64>> {
    let per_shard = per_shard.max(1);
    (0..total.div_ceil(per_shard)).map(move |i| i * per_shard..total.min((i + 1) * per_shard))
}

/// Why a shard stopped before its last team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shard was cancelled after {done} of its {total} teams")]
pub struct Cancelled {
    /// Teams enumerated before the stop.
    pub done: u64,
    /// Teams in the shard.
    pub total: u64,
}

/// Scores the teams of sizes `min_size..=max_size` whose ranks are in `ranks` (as
/// [`Teams::starting_at`] numbers them) into a summary keeping `top_k` teams. Every 4,096
/// teams `progress(done, total)` is asked whether to go on; [`ControlFlow::Break`] stops
/// the shard with [`Cancelled`].
///
/// # Errors
/// [`Cancelled`] when `progress` breaks.
pub fn summarise_range(
    pool: &Pool,
    (min_size, max_size): (usize, usize),
    ranks: Range<u64>,
    top_k: usize,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<TeamSummary, Cancelled> {
    let focal = FocalTable::new(pool);
    let votes = VoteTable::new(pool);
    let total = ranks.end.saturating_sub(ranks.start);
    let mut summary = TeamSummary::new(top_k);
    let mut cancelled = None;
    let teams = Teams::starting_at(pool.models(), min_size, max_size, ranks.start);
    let scored = (0..total).zip(teams).map_while(|(done, members)| {
        if done % 4096 == 0 && progress(done, total).is_break() {
            cancelled = Some(Cancelled { done, total });
            return None;
        }
        summary.enumerated += 1;
        let score = focal.focal_diversity(&members).mean;
        match score {
            Some(diversity) => {
                let accuracy = plurality_accuracy(pool, votes.as_ref(), &members);
                summary.add(&members, diversity, accuracy);
            }
            None => summary.unscored += 1,
        }
        Some((members, score))
    });
    let top = top_k_of(scored, top_k);
    if let Some(cancelled) = cancelled {
        return Err(cancelled);
    }
    summary.top = top;
    let _ = progress(summary.enumerated, total);
    Ok(summary)
}

//! Team enumeration and top-K selection by focal diversity (spec §5.1).

use core::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use super::pool::Pool;
use super::team::TeamError;

/// Every team of a pool with a size in a range, as ascending member indices, ordered by size
/// and then lexicographically (Python's `itertools.combinations` order).
#[derive(Debug, Clone)]
pub struct Teams {
    models: usize,
    max_size: usize,
    current: Vec<usize>,
}

impl Teams {
    /// Teams of `models` models with `min_size..=max_size` members; sizes are clamped to
    /// `2..=models`, and an empty range yields nothing.
    pub fn new(models: usize, min_size: usize, max_size: usize) -> Self {
        let size = min_size.max(2);
        let max_size = max_size.min(models);
        Self {
            models,
            max_size,
            // Empty `current` marks the end, so an empty size range yields nothing.
            current: if size <= max_size {
                (0..size).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The teams of [`Teams::new`] from the one at `rank` on (0-based, in the same order), so
    /// a range of ranks can be enumerated without walking the teams before it: `Teams::new(m,
    /// a, b).skip(r)` and `Teams::starting_at(m, a, b, r)` yield the same teams. Yields nothing
    /// when `rank` is at or past the end. O(models · size) to find the first team.
    pub fn starting_at(models: usize, min_size: usize, max_size: usize, rank: u64) -> Self {
        let mut teams = Self::new(models, min_size, max_size);
        teams.current =
            team_at_rank(models, min_size.max(2), teams.max_size, rank).unwrap_or_default();
        teams
    }

    /// Number of teams of `models` models with sizes in `min_size..=max_size` (clamped as in
    /// [`Teams::new`]); saturates at `u64::MAX`.
    pub fn total(models: usize, min_size: usize, max_size: usize) -> u64 {
        let mut total = 0_u64;
        for k in min_size.max(2)..=max_size.min(models) {
            total = total.saturating_add(binomial(models as u64, k as u64));
            if total == u64::MAX {
                // Saturated: the remaining sizes cannot change the answer.
                break;
            }
        }
        total
    }
}

/// `n choose k` for `k <= n`, saturating at `u64::MAX`. Each step `C(n, i + 1) = C(n, i) ·
/// (n − i) / (i + 1)` is exact; the product is taken in `u128`, where it cannot overflow while
/// `C(n, i)` still fits in `u64`.
fn binomial(n: u64, k: u64) -> u64 {
    let mut acc = 1_u64;
    for i in 0..k.min(n.saturating_sub(k)) {
        let next = u128::from(acc) * u128::from(n - i) / u128::from(i + 1);
        match u64::try_from(next) {
            Ok(value) => acc = value,
            Err(_) => return u64::MAX,
        }
    }
    acc
}

/// The team at `rank` among the teams of sizes `min_size..=max_size` (`min_size >= 2`, `max_size
/// <= models`) in [`Teams`]' order: first the size whose block holds the rank, then the
/// combination of that size by the combinatorial number system, one member at a time.
fn team_at_rank(
    models: usize,
    min_size: usize,
    max_size: usize,
    mut rank: u64,
) -> Option<Vec<usize>> {
    let m = models as u64;
    let size = (min_size..=max_size).find(|&k| {
        let block = binomial(m, k as u64);
        if rank < block {
            true
        } else {
            rank -= block;
            false
        }
    })?;
    let mut team = Vec::with_capacity(size);
    let mut candidate = 0_u64;
    for position in 0..size as u64 {
        loop {
            // Teams whose member at `position` is `candidate`: the rest is any choice of the
            // remaining positions among the models after it.
            let with = binomial(m - candidate - 1, size as u64 - position - 1);
            if rank < with {
                break;
            }
            rank -= with;
            candidate += 1;
        }
        team.push(candidate as usize);
        candidate += 1;
    }
    Some(team)
}

impl Iterator for Teams {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        if self.current.is_empty() {
            return None;
        }
        let team = self.current.clone();
        let size = self.current.len();
        // Rightmost position that can still move right.
        match (0..size)
            .rev()
            .find(|&i| self.current[i] < self.models - size + i)
        {
            Some(i) => {
                self.current[i] += 1;
                for k in i + 1..size {
                    self.current[k] = self.current[k - 1] + 1;
                }
            }
            None if size < self.max_size => self.current = (0..=size).collect(),
            None => self.current.clear(),
        }
        Some(team)
    }
}

/// A team and its canonical focal diversity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedTeam {
    /// Ascending member indices.
    pub members: Vec<usize>,
    /// The mean focal diversity.
    pub focal_diversity: f64,
}

/// Heap order in which the *worse* team is greater, so the heap's top is evicted first.
#[derive(Debug)]
struct WorstFirst(RankedTeam);

impl Ord for WorstFirst {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .focal_diversity
            .total_cmp(&self.0.focal_diversity)
            .then_with(|| self.0.members.cmp(&other.0.members))
    }
}

impl PartialOrd for WorstFirst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for WorstFirst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for WorstFirst {}

/// The `k` teams with the highest focal diversity, best first. Ties keep the
/// lexicographically smaller member list first (the reference's stable sort over team
/// names). Teams whose focal diversity is undefined are left out. Memory is O(k).
///
/// # Errors
/// The first invalid team.
pub fn top_k_by_focal_diversity(
    pool: &Pool,
    teams: impl IntoIterator<Item = Vec<usize>>,
    k: usize,
) -> Result<Vec<RankedTeam>, TeamError> {
    let scored = teams
        .into_iter()
        .map(|members| {
            let view = pool.team(&members)?;
            Ok((view.members().to_vec(), view.focal_diversity().mean))
        })
        .collect::<Result<Vec<_>, TeamError>>()?;
    Ok(top_k_of(scored, k))
}

/// The `k` best of already scored teams (ascending members, focal diversity), ordered as in
/// [`top_k_by_focal_diversity`]; teams scored `None` are left out. Memory is O(k), so the
/// scores can stream from an enumeration of millions of teams.
pub fn top_k_of(
    scored: impl IntoIterator<Item = (Vec<usize>, Option<f64>)>,
    k: usize,
) -> Vec<RankedTeam> {
    let mut heap = BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16));
    for (members, score) in scored {
        let Some(focal_diversity) = score else {
            continue;
        };
        heap.push(WorstFirst(RankedTeam {
            members,
            focal_diversity,
        }));
        if heap.len() > k {
            heap.pop();
        }
    }
    heap.into_sorted_vec().into_iter().map(|w| w.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itertools_order_and_counts() {
        let teams: Vec<Vec<usize>> = Teams::new(4, 0, 9).collect();
        assert_eq!(
            teams,
            [
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3],
                vec![0, 1, 2],
                vec![0, 1, 3],
                vec![0, 2, 3],
                vec![1, 2, 3],
                vec![0, 1, 2, 3],
            ]
        );
        assert_eq!(Teams::total(4, 0, 9), 11);
        assert_eq!(Teams::total(20, 2, 20), 1_048_555);
        assert_eq!(Teams::new(5, 3, 3).count(), 10);
        assert_eq!(Teams::new(5, 4, 3).count(), 0);
        assert_eq!(Teams::new(1, 2, 5).count(), 0);
    }

    #[test]
    fn starting_at_a_rank_is_skipping_to_it() {
        for (models, min_size, max_size) in [(4, 0, 9), (7, 2, 7), (9, 3, 5), (6, 6, 6), (12, 2, 4)]
        {
            let all: Vec<Vec<usize>> = Teams::new(models, min_size, max_size).collect();
            for rank in 0..=all.len() + 1 {
                let from: Vec<Vec<usize>> =
                    Teams::starting_at(models, min_size, max_size, rank as u64).collect();
                assert_eq!(
                    from,
                    all[rank.min(all.len())..],
                    "{models} {min_size}..={max_size} @{rank}"
                );
            }
        }
        assert_eq!(Teams::starting_at(5, 4, 3, 0).count(), 0);
        assert_eq!(Teams::starting_at(1, 2, 5, 0).count(), 0);
        // The last team of 30 models, sizes 2..=30, without walking the 2^30 before it.
        let last = Teams::total(30, 2, 30) - 1;
        let team: Vec<Vec<usize>> = Teams::starting_at(30, 2, 30, last).collect();
        assert_eq!(team, [(0..30).collect::<Vec<usize>>()]);
    }
}

/// Inclusive team sizes: `A..B`, `A..` or `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    /// Smallest size.
    pub min: usize,
    /// Largest size (`usize::MAX`: up to the whole pool).
    pub max: usize,
}

impl std::str::FromStr for SizeRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let size = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{part}` is not a team size; expected A..B, A.. or A"))
        };
        let range = match text.split_once("..") {
            Some((min, "")) => Self {
                min: size(min)?,
                max: usize::MAX,
            },
            Some((min, max)) => Self {
                min: size(min)?,
                max: size(max)?,
            },
            None => {
                let only = size(text)?;
                Self {
                    min: only,
                    max: only,
                }
            }
        };
        if range.min < 2 || range.min > range.max {
            return Err(format!(
                "`{text}`: expected sizes of at least 2 with A <= B"
            ));
        }
        Ok(range)
    }
}

impl std::fmt::Display for SizeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.max == usize::MAX {
            write!(f, "{}..", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod size_range_tests {
    use super::SizeRange;

    #[test]
    fn size_ranges() {
        assert_eq!(
            "2..4".parse::<SizeRange>(),
            Ok(SizeRange { min: 2, max: 4 })
        );
        assert_eq!(
            "3..".parse::<SizeRange>(),
            Ok(SizeRange {
                min: 3,
                max: usize::MAX
            })
        );
        assert_eq!("5".parse::<SizeRange>(), Ok(SizeRange { min: 5, max: 5 }));
        assert!("1..3".parse::<SizeRange>().is_err());
        assert!("4..3".parse::<SizeRange>().is_err());
        assert!("x".parse::<SizeRange>().is_err());
        assert_eq!(
            SizeRange {
                min: 2,
                max: usize::MAX
            }
            .to_string(),
            "2.."
        );
    }
}

//! Team search with FusionShot's genetic algorithm (spec §5.3), seeded so runs repeat.
//!
//! A chromosome is a bit mask of team members. Fitness is `w_div·focal_div + w_acc·plurality_acc`
//! (accuracy as a fraction), minus `0.1·|T|/M` with the size penalty, and −99 for fewer than two
//! members. Selection keeps the 50 fittest as parents, children come from two-point crossover of
//! neighbouring parents, the best chromosome survives (elitism 1), and the search stops when the
//! best fitness has not changed for 100 generations. Unlike FusionShot (mutation probability 0,
//! which lets the population converge on a local optimum), each child gene flips with a small
//! probability, so the search finds the exhaustive optimum on small pools. Exhaustive search is
//! cheap up to about 20 models; the GA is for larger pools.

use std::collections::HashMap;

use thiserror::Error;

use super::{focal_table::FocalTable, pool::Pool, vote_table::VoteTable};

/// Fitness of chromosomes with fewer than two members (and, here, of teams whose focal
/// diversity is undefined): FusionShot's sentinel.
pub const INVALID_FITNESS: f64 = -99.0;

/// The weights of the fitness function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitnessWeights {
    /// Weight of the canonical focal diversity.
    pub diversity: f64,
    /// Weight of the plurality accuracy (a fraction).
    pub accuracy: f64,
    /// Subtract `0.1·|T|/M`.
    pub size_penalty: bool,
}

impl FitnessWeights {
    /// `run_ga.py`'s defaults: 0.6 / 0.4, no size penalty.
    pub const FUSIONSHOT_DEFAULT: Self = Self {
        diversity: 0.6,
        accuracy: 0.4,
        size_penalty: false,
    };
    /// The shipped `run_ga.sh`: 0.5 / 0.5 with the size penalty.
    pub const RUN_GA_SH: Self = Self {
        diversity: 0.5,
        accuracy: 0.5,
        size_penalty: true,
    };
}

/// The GA's settings; the defaults are FusionShot's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaConfig {
    /// Chromosomes per generation.
    pub population: usize,
    /// Parents kept per generation (the fittest).
    pub parents: usize,
    /// Upper bound on generations.
    pub max_generations: usize,
    /// Stop when the best fitness is unchanged for this many generations.
    pub saturation: usize,
    /// Probability that a child's gene flips.
    pub mutation: f64,
    /// Seed of the random initial population, cut points and mutations.
    pub seed: u64,
}

impl Default for GaConfig {
    fn default() -> Self {
        Self {
            population: 100,
            parents: 50,
            max_generations: 1000,
            saturation: 100,
            mutation: 0.1,
            seed: 0,
        }
    }
}

/// Why the GA cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GaError {
    /// Chromosomes are 64-bit masks.
    #[error("the genetic search handles at most 64 models; this pool has {models}")]
    TooManyModels {
        /// The pool's size.
        models: usize,
    },
    /// The settings cannot make a generation.
    #[error(
        "the population ({population}) must be at least 2 and hold the parents ({parents}, at least 2)"
    )]
    Settings {
        /// Chromosomes per generation.
        population: usize,
        /// Parents per generation.
        parents: usize,
    },
}

/// Fitness of teams of one pool.
#[derive(Debug, Clone)]
pub struct Fitness {
    focal: FocalTable,
    votes: VoteTable,
    models: usize,
    weights: FitnessWeights,
}

/// The mask of models `0..n`.
fn first_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1 << n) - 1 }
}

fn members_of(mask: u64) -> Vec<usize> {
    (0..64).filter(|&m| mask >> m & 1 == 1).collect()
}

impl Fitness {
    /// Precomputes what fitness needs.
    ///
    /// # Errors
    /// [`GaError::TooManyModels`] above 64 models.
    pub fn new(pool: &Pool, weights: FitnessWeights) -> Result<Self, GaError> {
        let too_many = GaError::TooManyModels {
            models: pool.models(),
        };
        Ok(Self {
            focal: FocalTable::new(pool),
            votes: VoteTable::new(pool).ok_or(too_many)?,
            models: pool.models(),
            weights,
        })
    }

    /// Fitness of the team whose members are the set bits of `mask`.
    pub fn of(&self, mask: u64) -> f64 {
        let members = members_of(mask);
        if members.len() < 2 {
            return INVALID_FITNESS;
        }
        let Some(diversity) = self.focal.focal_diversity(&members).mean else {
            return INVALID_FITNESS;
        };
        let accuracy = self.votes.plurality_accuracy(&members);
        let penalty = if self.weights.size_penalty {
            0.1 * members.len() as f64 / self.models as f64
        } else {
            0.0
        };
        self.weights.diversity * diversity + self.weights.accuracy * accuracy - penalty
    }
}

/// A team the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct GaTeam {
    /// Ascending member indices.
    pub members: Vec<usize>,
    /// Its fitness.
    pub fitness: f64,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct GaResult {
    /// The distinct teams of the final population, fittest first (ties by member list).
    pub teams: Vec<GaTeam>,
    /// Generations run.
    pub generations: usize,
    /// Distinct teams whose fitness was computed.
    pub evaluated: usize,
}

/// Runs the genetic search on `pool`.
///
/// # Errors
/// [`GaError`] for pools of more than 64 models or unusable settings.
pub fn genetic_search(
    pool: &Pool,
    weights: FitnessWeights,
    config: GaConfig,
) -> Result<GaResult, GaError> {
    if config.parents < 2 || config.population < config.parents.max(2) {
        return Err(GaError::Settings {
            population: config.population,
            parents: config.parents,
        });
    }
    let fitness = Fitness::new(pool, weights)?;
    let models = pool.models();
    let all = first_bits(models);
    let mut rng = crate::rng::SplitMix64(config.seed);
    let mut cache: HashMap<u64, f64> = HashMap::new();
    let mut score = |mask: u64| *cache.entry(mask).or_insert_with(|| fitness.of(mask));
    let mut population: Vec<u64> = (0..config.population)
        .map(|_| rng.next_u64() & all)
        .collect();
    let mut best = f64::NEG_INFINITY;
    let mut unchanged = 0;
    let mut generations = 0;
    while generations < config.max_generations && unchanged < config.saturation {
        generations += 1;
        let mut ranked: Vec<(f64, u64)> = population.iter().map(|&m| (score(m), m)).collect();
        // Fittest first; equal fitness keeps the smaller mask first, so runs repeat exactly.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if ranked[0].0 > best {
            best = ranked[0].0;
            unchanged = 0;
        } else {
            unchanged += 1;
        }
        let parents: Vec<u64> = ranked[..config.parents].iter().map(|&(_, m)| m).collect();
        population.clear();
        population.push(parents[0]);
        for k in 0..config.population - 1 {
            let (a, b) = (
                parents[k % config.parents],
                parents[(k + 1) % config.parents],
            );
            // Two-point crossover: genes in [low, high) come from the second parent.
            let (x, y) = (rng.below(models + 1), rng.below(models + 1));
            let (low, high) = (x.min(y), x.max(y));
            let segment = first_bits(high) & !first_bits(low);
            let flips = (0..models)
                .filter(|_| rng.chance(config.mutation))
                .fold(0_u64, |mask, m| mask | 1 << m);
            population.push(((a & !segment) | (b & segment)) ^ flips);
        }
    }
    let mut finals: Vec<(f64, u64)> = population.iter().map(|&m| (score(m), m)).collect();
    finals.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    finals.dedup_by_key(|&mut (_, m)| m);
    let teams = finals
        .into_iter()
        .filter(|&(f, _)| f > INVALID_FITNESS)
        .map(|(fitness, mask)| GaTeam {
            members: members_of(mask),
            fitness,
        })
        .collect();
    Ok(GaResult {
        teams,
        generations,
        evaluated: cache.len(),
    })
}

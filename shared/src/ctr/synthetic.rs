//! A seeded synthetic trigger-induced benchmark with a known truth (spec `ccn.md` §7.2). This is
//! our recommended design (tagged \[D\] in the spec), not the paper's data: latent user, item
//! and scenario factors, a trigger item per page, and a knob,
//! [`SyntheticConfig::trigger_weight`], for how often a page's entry is driven by the trigger
//! rather than by the scenario. Every row carries its true click probability (`p_click`) and what
//! drove its page (`driver`).
//!
//! # The generative model
//!
//! With `d = dim`, `N(0, I)` standard normal vectors, `n(x) = x / ‖x‖` and `σ(x) = 1 / (1 + e⁻ˣ)`:
//!
//! - **Categories** `k = 0..categories`: centroids `m_k = n(g_k)`, `g_k ~ N(0, I_d)`.
//! - **Items** `i = 0..items`: categories balanced (`i mod categories`, shuffled), factors
//!   `v_i = m_{k(i)} + η · ε_i / √d`, `ε_i ~ N(0, I_d)`, `η = item_noise`.
//! - **Scenarios** `σ = 0..scenarios`: a theme `T_σ` of `theme_size` distinct categories (2–3 by
//!   default) and a factor `s_σ = n(mean_{k ∈ T_σ} m_k)`.
//! - **Users**: a long-term taste `u = n(g)`, `g ~ N(0, I_d)`, and a behaviour sequence of
//!   `history_len` distinct items drawn without replacement with probability
//!   `∝ exp(τ · ⟨u, v_i⟩)` (`τ = temperature`, Gumbel top-k; the first drawn is the oldest, the
//!   last drawn the most recent). A user's behaviour sequence is the same on all of the user's
//!   pages; the negative sequence (`neg_item_id`) is the exposure log: the user's unclicked
//!   candidates on the user's earlier pages (page ids are the time order), the last
//!   `history_len` of them (earlier pages are earlier in time, and in the same or an earlier split).
//! - **Pages**: a user and a scenario, each uniform; a trigger `t` drawn with probability
//!   `∝ exp(τ · ⟨u, v_i⟩)` among the items of the themed categories `T_σ`; the driver
//!   `~ Bernoulli(trigger_weight)`. The page's intent is
//!   `q = v_t` when the trigger drove the entry, else
//!   `q = n(s_σ + ρ · P_σ u)`, with `P_σ` the orthogonal projection on the span of the theme's
//!   centroids and `ρ = scenario_taste`: a scenario-driven intent is the scenario's theme tilted
//!   towards the user's own taste within it, so it differs between users and the same page's
//!   co-clicks carry information that neither the trigger nor the scenario id holds alone.
//! - **Candidates**: `page_size` distinct items (uniform in the inclusive range), never the
//!   trigger: each with probability `near_trigger` from the trigger's category, with probability
//!   `off_theme` uniform over all items, otherwise from a uniform themed category of `T_σ`.
//! - **Clicks**: `p = σ(b + a · ⟨u, v_i⟩ + c · ⟨q, v_i⟩)` with `b = bias`, `a = taste_weight`,
//!   `c = intent_weight`; `click ~ Bernoulli(p)`. With the defaults (seed 0), `trigger_weight` 0.2
//!   gives a click rate of 13.5 % and an AUC of the true `p` against the clicks of 0.80; 0.8 gives
//!   15.6 % and 0.84.
//! - **Splits**: by time, whole pages: the first `split[0]` of the pages train, the next
//!   `split[1]` valid, the rest test, so no row's features (its unclicked exposures) come from a
//!   later split's pages.
//!
//! Each stage draws from its own [`SplitMix64`] stream derived from `seed` (world, pages,
//! drivers, clicks), so changing `trigger_weight` changes only the drivers (coupled: a
//! page trigger-driven at weight `w` stays so at every weight above `w`), the intents, the clicks
//! and the negative sequences made of them; the users, behaviour sequences, triggers and
//! candidates stay the same. Transcendental functions come from `libm`, so the same
//! configuration gives byte-identical CSV natively and in wasm.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::exposure::{
    Dataset, Driver, Exposure, Extra, ExtraKind, Truth, check_fractions, split_sizes,
};
use crate::rng::SplitMix64;

/// Most users.
pub const MAX_USERS: usize = 1_000_000;
/// Most items.
pub const MAX_ITEMS: usize = 1_000_000;
/// Most categories.
pub const MAX_CATEGORIES: usize = 10_000;
/// Most scenarios.
pub const MAX_SCENARIOS: usize = 100_000;
/// Most latent dimensions.
pub const MAX_DIM: usize = 256;
/// Most pages.
pub const MAX_PAGES: usize = 5_000_000;
/// Most candidates on one page.
pub const MAX_PAGE_SIZE: usize = 100;
/// Longest behaviour sequence.
pub const MAX_HISTORY_LEN: usize = 1_000;
/// Most exposure rows (`pages × page_size[1]`).
pub const MAX_ROWS: usize = 5_000_000;
/// Most sequence entries over all rows (`2 × pages × page_size[1] × history_len`: the behaviour
/// and the negative sequences).
pub const MAX_HISTORY_CELLS: usize = 25_000_000;
/// Most latent multiply-adds (`(users + pages) × items × dim`).
pub const MAX_WORK: u128 = 2_000_000_000;

/// The benchmark's configuration; every field has a default (`SyntheticConfig::default()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Seeds every random draw.
    pub seed: u64,
    /// Users.
    pub users: usize,
    /// Items.
    pub items: usize,
    /// Item categories.
    pub categories: usize,
    /// Scenarios (mini-apps).
    pub scenarios: usize,
    /// Latent dimensions `d`.
    pub dim: usize,
    /// Pages.
    pub pages: usize,
    /// Candidates per page, an inclusive range.
    pub page_size: [usize; 2],
    /// Length of every user's behaviour sequence.
    pub history_len: usize,
    /// Probability that a page's entry is driven by its trigger rather than its scenario.
    pub trigger_weight: f64,
    /// Categories in a scenario's theme, an inclusive range.
    pub theme_size: [usize; 2],
    /// `η`: the spread of items around their category's centroid.
    pub item_noise: f64,
    /// `τ`: how sharply histories and triggers follow the user's taste.
    pub temperature: f64,
    /// `ρ`: the weight of the user's own taste in a scenario-driven intent.
    pub scenario_taste: f64,
    /// Share of candidates drawn from the trigger's category.
    pub near_trigger: f64,
    /// Share of candidates drawn uniformly from all items.
    pub off_theme: f64,
    /// `b`: the click logit's intercept.
    pub bias: f64,
    /// `a`: the weight of the long-term taste `⟨u, v⟩` in the click logit.
    pub taste_weight: f64,
    /// `c`: the weight of the page's intent `⟨q, v⟩` in the click logit.
    pub intent_weight: f64,
    /// Fractions of pages in train and valid; the rest is test.
    pub split: [f64; 2],
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            users: 2000,
            items: 1000,
            categories: 20,
            scenarios: 10,
            dim: 8,
            pages: 12_000,
            page_size: [6, 10],
            history_len: 20,
            trigger_weight: 0.5,
            theme_size: [2, 3],
            item_noise: 0.5,
            temperature: 4.0,
            scenario_taste: 1.0,
            near_trigger: 0.3,
            off_theme: 0.2,
            bias: -4.0,
            taste_weight: 1.5,
            intent_weight: 2.5,
            split: [0.8, 0.1],
        }
    }
}

/// A configuration that [`SyntheticConfig::validate`] refuses.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SyntheticError {
    /// A field is outside its range.
    #[error("synthetic config: {field} = {value} is out of range (expected {expected})")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted range.
        expected: String,
    },
    /// A size derived from several fields exceeds its limit.
    #[error("synthetic config: {what} would be {value}, over the limit of {limit}")]
    TooLarge {
        /// The derived size and the fields it comes from.
        what: &'static str,
        /// Its value.
        value: u128,
        /// The limit.
        limit: u128,
    },
}

fn count(field: &'static str, value: usize, lo: usize, hi: usize) -> Result<(), SyntheticError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SyntheticError::OutOfRange {
            field,
            value: value.to_string(),
            expected: format!("{lo} to {hi}"),
        })
    }
}

fn real(field: &'static str, value: f64, lo: f64, hi: f64) -> Result<(), SyntheticError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SyntheticError::OutOfRange {
            field,
            value: value.to_string(),
            expected: format!("a number in [{lo}, {hi}]"),
        })
    }
}

fn at_most(what: &'static str, value: u128, limit: u128) -> Result<(), SyntheticError> {
    if value <= limit {
        Ok(())
    } else {
        Err(SyntheticError::TooLarge { what, value, limit })
    }
}

impl SyntheticConfig {
    /// Checks every size and weight, and the sizes they imply, before anything is allocated.
    ///
    /// # Errors
    ///
    /// [`SyntheticError::OutOfRange`] naming the first field out of its range, or
    /// [`SyntheticError::TooLarge`] when rows, history entries or work exceed their limits.
    pub fn validate(&self) -> Result<(), SyntheticError> {
        self.validate_sizes()?;
        self.validate_weights()?;
        let rows = self.pages as u128 * self.page_size[1] as u128;
        at_most("rows (pages × page_size[1])", rows, MAX_ROWS as u128)?;
        at_most(
            "history entries (2 × pages × page_size[1] × history_len)",
            2 * rows * self.history_len as u128,
            MAX_HISTORY_CELLS as u128,
        )?;
        at_most(
            "work ((users + pages) × items × dim)",
            (self.users + self.pages) as u128 * self.items as u128 * self.dim as u128,
            MAX_WORK,
        )
    }

    fn validate_sizes(&self) -> Result<(), SyntheticError> {
        count("users", self.users, 1, MAX_USERS)?;
        count("items", self.items, 2, MAX_ITEMS)?;
        count(
            "categories",
            self.categories,
            1,
            MAX_CATEGORIES.min(self.items),
        )?;
        count("scenarios", self.scenarios, 1, MAX_SCENARIOS)?;
        count("dim", self.dim, 1, MAX_DIM)?;
        count("pages", self.pages, 1, MAX_PAGES)?;
        let [lo, hi] = self.page_size;
        count("page_size[0]", lo, 1, MAX_PAGE_SIZE.min(self.items - 1))?;
        count("page_size[1]", hi, lo, MAX_PAGE_SIZE.min(self.items - 1))?;
        count(
            "history_len",
            self.history_len,
            0,
            MAX_HISTORY_LEN.min(self.items),
        )?;
        let [lo, hi] = self.theme_size;
        count("theme_size[0]", lo, 1, self.categories)?;
        count("theme_size[1]", hi, lo, self.categories)
    }

    fn validate_weights(&self) -> Result<(), SyntheticError> {
        real("trigger_weight", self.trigger_weight, 0.0, 1.0)?;
        real("item_noise", self.item_noise, 0.0, 10.0)?;
        real("temperature", self.temperature, 0.0, 100.0)?;
        real("scenario_taste", self.scenario_taste, 0.0, 100.0)?;
        real("near_trigger", self.near_trigger, 0.0, 1.0)?;
        real("off_theme", self.off_theme, 0.0, 1.0 - self.near_trigger)?;
        real("bias", self.bias, -100.0, 100.0)?;
        real("taste_weight", self.taste_weight, -100.0, 100.0)?;
        real("intent_weight", self.intent_weight, -100.0, 100.0)?;
        check_fractions(self.split).map_err(|expected| SyntheticError::OutOfRange {
            field: "split",
            value: format!("{:?}", self.split),
            expected,
        })
    }
}

/// The generated benchmark: [`ExtraKind::Synthetic`] rows (`p_click`, `driver`), split 80/10/10 by
/// page by default.
///
/// # Errors
///
/// The configuration's [`SyntheticConfig::validate`] error.
pub fn generate(config: &SyntheticConfig) -> Result<Dataset, SyntheticError> {
    config.validate()?;
    let mut seeds = SplitMix64(config.seed);
    let mut streams = [(); 4].map(|()| SplitMix64(seeds.next_u64()));
    let [world_rng, page_rng, driver_rng, click_rng] = &mut streams;
    let world = World::new(config, world_rng);
    let labels = page_splits(config);
    let mut splits: [Vec<Exposure>; 3] = Default::default();
    let mut drivers = [0_u64; 2];
    // Each user's unclicked candidates so far (pages in page order), the most recent last.
    let mut unclicked: Vec<Vec<u32>> = vec![Vec::new(); config.users];
    for (page_id, &label) in labels.iter().enumerate() {
        let page = world.page(config, page_id as u32, page_rng, driver_rng);
        drivers[usize::from(page.driver == Driver::Scenario)] += 1;
        let seen = &mut unclicked[page.user];
        let rows = world.exposures(config, &page, seen, click_rng);
        seen.extend(rows.iter().filter(|r| !r.click).map(|r| r.item_id));
        let excess = seen.len().saturating_sub(config.history_len);
        seen.drain(..excess);
        splits[label].extend(rows);
    }
    let [train, valid, test] = splits;
    let counts = BTreeMap::from([
        ("pages".to_owned(), config.pages as u64),
        ("pages_trigger_driven".to_owned(), drivers[0]),
        ("pages_scenario_driven".to_owned(), drivers[1]),
    ]);
    Ok(Dataset {
        name: "synthetic".to_owned(),
        description: format!(
            "Synthetic trigger-induced benchmark (spec ccn.md §7.2, recommended design): seed {}, \
             {} users, {} items, {} categories, {} scenarios, dim {}, {} pages, trigger_weight {}.",
            config.seed,
            config.users,
            config.items,
            config.categories,
            config.scenarios,
            config.dim,
            config.pages,
            config.trigger_weight
        ),
        extra: ExtraKind::Synthetic,
        categories: Vec::new(),
        counts,
        train,
        valid,
        test,
    })
}

/// Each page's split (0 train, 1 valid, 2 test), in time order.
fn page_splits(config: &SyntheticConfig) -> Vec<usize> {
    let (n_train, n_valid) = split_sizes(config.pages, config.split);
    (0..config.pages)
        .map(|page| usize::from(page >= n_train) + usize::from(page >= n_train + n_valid))
        .collect()
}

fn shuffle<T>(values: &mut [T], rng: &mut SplitMix64) {
    for k in (1..values.len()).rev() {
        values.swap(k, rng.below(k + 1));
    }
}

/// Uniform in `(0, 1)`, 53 bits, never 0 (a logarithm's argument).
fn open_unit(rng: &mut SplitMix64) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1_u64 << 53) as f64
}

/// A standard normal draw (Box–Muller, one of the pair).
fn normal(rng: &mut SplitMix64) -> f64 {
    let r = libm::sqrt(-2.0 * libm::log(open_unit(rng)));
    r * libm::cos(std::f64::consts::TAU * open_unit(rng))
}

/// A standard Gumbel draw.
fn gumbel(rng: &mut SplitMix64) -> f64 {
    -libm::log(-libm::log(open_unit(rng)))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `x / ‖x‖`, or `x` itself when it is zero.
fn normalised(mut x: Vec<f64>) -> Vec<f64> {
    let norm = libm::sqrt(dot(&x, &x));
    if norm > 0.0 {
        for v in &mut x {
            *v /= norm;
        }
    }
    x
}

fn gaussian(dim: usize, rng: &mut SplitMix64) -> Vec<f64> {
    (0..dim).map(|_| normal(rng)).collect()
}

/// One page.
struct Page {
    id: u32,
    driver: Driver,
    user: usize,
    scenario: usize,
    trigger: usize,
    candidates: Vec<usize>,
}

/// The latent factors.
struct World {
    item_cat: Vec<u32>,
    items: Vec<Vec<f64>>,
    by_category: Vec<Vec<usize>>,
    /// Per scenario: its categories, its factor and an orthonormal basis of its theme's span.
    themes: Vec<Theme>,
    users: Vec<Vec<f64>>,
    histories: Vec<Vec<u32>>,
}

struct Theme {
    categories: Vec<usize>,
    items: Vec<usize>,
    factor: Vec<f64>,
    basis: Vec<Vec<f64>>,
}

impl World {
    fn new(config: &SyntheticConfig, rng: &mut SplitMix64) -> Self {
        let d = config.dim;
        let centroids: Vec<Vec<f64>> = (0..config.categories)
            .map(|_| normalised(gaussian(d, rng)))
            .collect();
        let mut item_cat: Vec<u32> = (0..config.items)
            .map(|i| (i % config.categories) as u32)
            .collect();
        shuffle(&mut item_cat, rng);
        let spread = config.item_noise / libm::sqrt(d as f64);
        let items: Vec<Vec<f64>> = item_cat
            .iter()
            .map(|&k| {
                let centroid = &centroids[k as usize];
                centroid.iter().map(|m| m + spread * normal(rng)).collect()
            })
            .collect();
        let mut by_category = vec![Vec::new(); config.categories];
        for (i, &k) in item_cat.iter().enumerate() {
            by_category[k as usize].push(i);
        }
        let themes = (0..config.scenarios)
            .map(|_| Theme::new(config, &centroids, &by_category, rng))
            .collect();
        let users: Vec<Vec<f64>> = (0..config.users)
            .map(|_| normalised(gaussian(d, rng)))
            .collect();
        let all: Vec<usize> = (0..config.items).collect();
        let histories = users
            .iter()
            .map(|u| {
                let drawn = preferred(u, &items, &all, config.temperature, config.history_len, rng);
                drawn.into_iter().map(|i| i as u32).collect()
            })
            .collect();
        Self {
            item_cat,
            items,
            by_category,
            themes,
            users,
            histories,
        }
    }

    /// A page's user, scenario, trigger and candidates from `rng`, its driver from `drivers`
    /// (one draw per page).
    fn page(
        &self,
        config: &SyntheticConfig,
        id: u32,
        rng: &mut SplitMix64,
        drivers: &mut SplitMix64,
    ) -> Page {
        let user = rng.below(config.users);
        let scenario = rng.below(config.scenarios);
        let theme = &self.themes[scenario];
        let u = &self.users[user];
        let trigger = preferred(u, &self.items, &theme.items, config.temperature, 1, rng)[0];
        let size = config.page_size[0] + rng.below(config.page_size[1] - config.page_size[0] + 1);
        let mut candidates: Vec<usize> = Vec::with_capacity(size);
        let near = &self.by_category[self.item_cat[trigger] as usize];
        while candidates.len() < size {
            let draw = open_unit(rng);
            let pool: &[usize] = if draw < config.near_trigger {
                near
            } else if draw < config.near_trigger + config.off_theme {
                &[]
            } else {
                let k = theme.categories[rng.below(theme.categories.len())];
                &self.by_category[k]
            };
            let item = self.fresh(pool, trigger, &candidates, rng);
            candidates.push(item);
        }
        let driver = if drivers.chance(config.trigger_weight) {
            Driver::Trigger
        } else {
            Driver::Scenario
        };
        Page {
            id,
            driver,
            user,
            scenario,
            trigger,
            candidates,
        }
    }

    /// A uniform item of `pool` (all items when empty) that is neither the trigger nor already
    /// on the page; after a few misses, the first such item from a random start.
    fn fresh(
        &self,
        pool: &[usize],
        trigger: usize,
        taken: &[usize],
        rng: &mut SplitMix64,
    ) -> usize {
        let free = |i: &usize| *i != trigger && !taken.contains(i);
        for _ in 0..16 {
            let i = if pool.is_empty() {
                rng.below(self.items.len())
            } else {
                pool[rng.below(pool.len())]
            };
            if free(&i) {
                return i;
            }
        }
        // Pages are smaller than the item count (validated), so a free item exists.
        let start = rng.below(self.items.len());
        (0..self.items.len())
            .map(|k| (start + k) % self.items.len())
            .find(free)
            .unwrap_or(start)
    }

    fn intent(&self, config: &SyntheticConfig, page: &Page) -> Vec<f64> {
        match page.driver {
            Driver::Trigger => self.items[page.trigger].clone(),
            Driver::Scenario => {
                let theme = &self.themes[page.scenario];
                let u = &self.users[page.user];
                let mut q = theme.factor.clone();
                for e in &theme.basis {
                    let w = config.scenario_taste * dot(u, e);
                    q.iter_mut().zip(e).for_each(|(x, y)| *x += w * y);
                }
                normalised(q)
            }
        }
    }

    fn exposures(
        &self,
        config: &SyntheticConfig,
        page: &Page,
        unclicked: &[u32],
        rng: &mut SplitMix64,
    ) -> Vec<Exposure> {
        let q = self.intent(config, page);
        let u = &self.users[page.user];
        let categories =
            |ids: &[u32]| -> Vec<u32> { ids.iter().map(|&i| self.item_cat[i as usize]).collect() };
        let hist_item_id = &self.histories[page.user];
        let hist_cat = categories(hist_item_id);
        let neg_cat = categories(unclicked);
        let trigger_cat = self.item_cat[page.trigger];
        page.candidates
            .iter()
            .map(|&i| {
                let v = &self.items[i];
                let logit = config.bias
                    + config.taste_weight * dot(u, v)
                    + config.intent_weight * dot(&q, v);
                let p_click = 1.0 / (1.0 + libm::exp(-logit));
                let click = ((rng.next_u64() >> 11) as f64) < p_click * (1_u64 << 53) as f64;
                Exposure {
                    page_id: page.id,
                    user_id: page.user as u32,
                    item_id: i as u32,
                    item_cat: self.item_cat[i],
                    trigger_id: page.trigger as u32,
                    trigger_cat,
                    scenario: page.scenario as u32,
                    hist_item_id: hist_item_id.clone(),
                    hist_cat: hist_cat.clone(),
                    neg_item_id: unclicked.to_vec(),
                    neg_cat: neg_cat.clone(),
                    click,
                    extra: Extra::Synthetic(Truth {
                        p_click,
                        driver: page.driver,
                    }),
                }
            })
            .collect()
    }
}

impl Theme {
    fn new(
        config: &SyntheticConfig,
        centroids: &[Vec<f64>],
        by_category: &[Vec<usize>],
        rng: &mut SplitMix64,
    ) -> Self {
        let [lo, hi] = config.theme_size;
        let size = lo + rng.below(hi - lo + 1);
        // The first `size` of a partial Fisher–Yates shuffle of the categories.
        let mut all: Vec<usize> = (0..config.categories).collect();
        for k in 0..size {
            let j = k + rng.below(all.len() - k);
            all.swap(k, j);
        }
        let mut categories = all[..size].to_vec();
        categories.sort_unstable();
        let mut mean = vec![0.0; config.dim];
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for &k in &categories {
            mean.iter_mut()
                .zip(&centroids[k])
                .for_each(|(m, c)| *m += c);
            // Gram–Schmidt: the span of the theme's centroids.
            let mut e = centroids[k].clone();
            for b in &basis {
                let w = dot(&e, b);
                e.iter_mut().zip(b).for_each(|(x, y)| *x -= w * y);
            }
            if libm::sqrt(dot(&e, &e)) > 1e-9 {
                basis.push(normalised(e));
            }
        }
        let items = categories
            .iter()
            .flat_map(|&k| by_category[k].iter().copied())
            .collect();
        Self {
            categories,
            items,
            factor: normalised(mean),
            basis,
        }
    }
}

/// `n` distinct items of `pool` drawn without replacement with probability
/// `∝ exp(temperature · ⟨u, v_i⟩)` (Gumbel top-k), in draw order. Every candidate consumes one
/// draw, so the stream advances by `pool.len()` whatever `n` is.
fn preferred(
    u: &[f64],
    items: &[Vec<f64>],
    pool: &[usize],
    temperature: f64,
    n: usize,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = pool
        .iter()
        .map(|&i| (temperature * dot(u, &items[i]) + gumbel(rng), i))
        .collect();
    let by_key = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let n = n.min(keyed.len());
    if n == 0 {
        return Vec::new();
    }
    if n < keyed.len() {
        keyed.select_nth_unstable_by(n - 1, by_key);
        keyed.truncate(n);
    }
    keyed.sort_unstable_by(by_key);
    keyed.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            users: 50,
            items: 100,
            categories: 5,
            scenarios: 3,
            pages: 200,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn pages_are_whole_and_well_formed() {
        let data = generate(&small()).unwrap();
        let total = data.train.len() + data.valid.len() + data.test.len();
        let summary = data.summary();
        assert_eq!(
            summary.train.pages + summary.valid.pages + summary.test.pages,
            200
        );
        assert_eq!((summary.train.pages, summary.valid.pages), (160, 20));
        assert!((6 * 200..=10 * 200).contains(&total));
        for rows in [&data.train, &data.valid, &data.test] {
            for span in super::super::exposure::pages(rows) {
                let page = &rows[span];
                assert!((6..=10).contains(&page.len()));
                let mut items: Vec<u32> = page.iter().map(|r| r.item_id).collect();
                items.sort_unstable();
                items.dedup();
                assert_eq!(items.len(), page.len(), "candidates are distinct");
                assert!(page.iter().all(|r| r.item_id != r.trigger_id));
                assert!(page.iter().all(|r| r.hist_item_id.len() == 20));
            }
        }
    }

    #[test]
    fn gumbel_top_k_draws_distinct_items_in_preference_order() {
        let items: Vec<Vec<f64>> = (0..10).map(|i| vec![f64::from(i)]).collect();
        let pool: Vec<usize> = (0..10).collect();
        let drawn = preferred(&[1.0], &items, &pool, 50.0, 3, &mut SplitMix64(1));
        assert_eq!(drawn, [9, 8, 7]);
        let all = preferred(&[1.0], &items, &pool, 0.0, 20, &mut SplitMix64(1));
        assert_eq!(all.len(), 10);
    }
}

//! The latent world of the synthetic benchmark: category, item, scenario and user factors, the
//! behaviour sequences, each visit's trigger and driver, and each page's candidates and clicks
//! (the formulas are in the module above).

use std::ops::Range;

use super::{SyntheticConfig, TriggerSource};
use crate::ctr::exposure::{Driver, Exposure, Extra, Truth};
use crate::rng::SplitMix64;

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

/// One visit: a user entering a scenario through a trigger, for one reason.
#[derive(Debug, Clone, Copy)]
pub(super) struct Visit {
    pub(super) driver: Driver,
    pub(super) user: usize,
    scenario: usize,
    trigger: usize,
}

/// One page of a visit.
pub(super) struct Page {
    id: u32,
    visit: Visit,
    candidates: Vec<usize>,
}

/// The latent factors.
pub(super) struct World {
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
    pub(super) fn new(config: &SyntheticConfig, rng: &mut SplitMix64) -> Self {
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

    /// A visit's user, scenario (in `scenarios`) and trigger from `rng`, its driver from
    /// `drivers` (one draw per visit).
    pub(super) fn visit(
        &self,
        config: &SyntheticConfig,
        scenarios: Range<usize>,
        rng: &mut SplitMix64,
        drivers: &mut SplitMix64,
    ) -> Visit {
        let user = rng.below(config.users);
        let scenario = scenarios.start + rng.below(scenarios.len());
        let trigger = match config.trigger_from {
            TriggerSource::Theme => {
                let theme = &self.themes[scenario].items;
                preferred(
                    &self.users[user],
                    &self.items,
                    theme,
                    config.temperature,
                    1,
                    rng,
                )[0]
            }
            TriggerSource::History => {
                let history = &self.histories[user];
                history[rng.below(history.len())] as usize
            }
        };
        let driver = if drivers.chance(config.trigger_weight) {
            Driver::Trigger
        } else {
            Driver::Scenario
        };
        Visit {
            driver,
            user,
            scenario,
            trigger,
        }
    }

    /// A page of `visit`: its candidates from `rng`.
    pub(super) fn page(
        &self,
        config: &SyntheticConfig,
        id: u32,
        visit: Visit,
        rng: &mut SplitMix64,
    ) -> Page {
        let theme = &self.themes[visit.scenario];
        let trigger = visit.trigger;
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
        Page {
            id,
            visit,
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

    fn intent(&self, config: &SyntheticConfig, visit: &Visit) -> Vec<f64> {
        match visit.driver {
            Driver::Trigger => self.items[visit.trigger].clone(),
            Driver::Scenario => {
                let theme = &self.themes[visit.scenario];
                let u = &self.users[visit.user];
                let mut q = theme.factor.clone();
                for e in &theme.basis {
                    let w = config.scenario_taste * dot(u, e);
                    q.iter_mut().zip(e).for_each(|(x, y)| *x += w * y);
                }
                normalised(q)
            }
        }
    }

    pub(super) fn exposures(
        &self,
        config: &SyntheticConfig,
        page: &Page,
        unclicked: &[u32],
        rng: &mut SplitMix64,
    ) -> Vec<Exposure> {
        let visit = &page.visit;
        let q = self.intent(config, visit);
        let u = &self.users[visit.user];
        let categories =
            |ids: &[u32]| -> Vec<u32> { ids.iter().map(|&i| self.item_cat[i as usize]).collect() };
        let hist_item_id = &self.histories[visit.user];
        let hist_cat = categories(hist_item_id);
        let neg_cat = categories(unclicked);
        let trigger_cat = self.item_cat[visit.trigger];
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
                    user_id: visit.user as u32,
                    item_id: i as u32,
                    item_cat: self.item_cat[i],
                    trigger_id: visit.trigger as u32,
                    trigger_cat,
                    scenario: visit.scenario as u32,
                    hist_item_id: hist_item_id.clone(),
                    hist_cat: hist_cat.clone(),
                    neg_item_id: unclicked.to_vec(),
                    neg_cat: neg_cat.clone(),
                    click,
                    extra: Extra::Synthetic(Truth {
                        p_click,
                        driver: visit.driver,
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

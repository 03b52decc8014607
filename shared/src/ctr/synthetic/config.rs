//! The synthetic benchmark's configuration: every size and weight, its defaults, and the bounds
//! that keep a configuration's work and memory finite.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ctr::exposure::check_fractions;

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
/// Most pages in one visit.
pub const MAX_PAGES_PER_VISIT: usize = 1_000;
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

/// Where a visit's trigger item is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSource {
    /// The scenario's themed items, by the user's taste: trigger and theme agree.
    Theme,
    /// The user's behaviour sequence, uniformly (spec §1: the icon shows an item of the user's
    /// past preferences), so the trigger may lie outside the scenario's theme and the two
    /// drivers ask for different items.
    History,
}

impl std::str::FromStr for TriggerSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "theme" => Ok(Self::Theme),
            "history" => Ok(Self::History),
            other => Err(format!(
                "unknown trigger source `{other}` (expected `theme` or `history`)"
            )),
        }
    }
}

// The options added after the first release are written only when set, so that the settings a
// run folder saved before them still compare equal.
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_one(n: &usize) -> bool {
    *n == 1
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes a reference"
)]
fn is_theme(source: &TriggerSource) -> bool {
    *source == TriggerSource::Theme
}

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
    /// Scenarios never shown in training: the valid and test visits enter only these (spec §0:
    /// v2's test in a scenario never seen in training). 0: every split draws from all.
    #[serde(skip_serializing_if = "is_zero")]
    pub held_out_scenarios: usize,
    /// Latent dimensions `d`.
    pub dim: usize,
    /// Pages.
    pub pages: usize,
    /// Candidates per page, an inclusive range.
    pub page_size: [usize; 2],
    /// Pages per visit: a visit's pages share its user, scenario, trigger and driver, so the
    /// exposure log of its earlier pages shows what drove the entry. 1: every page a visit.
    #[serde(skip_serializing_if = "is_one")]
    pub pages_per_visit: usize,
    /// Length of every user's behaviour sequence.
    pub history_len: usize,
    /// Probability that a visit's entry is driven by its trigger rather than its scenario.
    pub trigger_weight: f64,
    /// Where a visit's trigger item comes from.
    #[serde(skip_serializing_if = "is_theme")]
    pub trigger_from: TriggerSource,
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
            held_out_scenarios: 0,
            dim: 8,
            pages: 12_000,
            page_size: [6, 10],
            pages_per_visit: 1,
            history_len: 20,
            trigger_weight: 0.5,
            trigger_from: TriggerSource::Theme,
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
        count(
            "held_out_scenarios",
            self.held_out_scenarios,
            0,
            self.scenarios - 1,
        )?;
        count("dim", self.dim, 1, MAX_DIM)?;
        count("pages", self.pages, 1, MAX_PAGES)?;
        count(
            "pages_per_visit",
            self.pages_per_visit,
            1,
            MAX_PAGES_PER_VISIT,
        )?;
        let [lo, hi] = self.page_size;
        count("page_size[0]", lo, 1, MAX_PAGE_SIZE.min(self.items - 1))?;
        count("page_size[1]", hi, lo, MAX_PAGE_SIZE.min(self.items - 1))?;
        count(
            "history_len",
            self.history_len,
            0,
            MAX_HISTORY_LEN.min(self.items),
        )?;
        if self.trigger_from == TriggerSource::History {
            count(
                "history_len (with trigger_from = \"history\")",
                self.history_len,
                1,
                MAX_HISTORY_LEN,
            )?;
        }
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

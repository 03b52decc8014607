//! The exposure layout both offline CTR datasets produce (spec `ccn.md` §3.1): one row per
//! candidate item shown on a page, with the user, the trigger, the scenario, the user's behaviour
//! sequence and the click, written as CSV through [`crate::table`].
//!
//! Columns, in this order, after a header line:
//!
//! `page_id,user_id,item_id,item_cat,trigger_id,trigger_cat,scenario,hist_item_id,hist_cat,`
//! `neg_item_id,neg_cat,click`
//!
//! then the dataset's extra columns ([`ExtraKind::columns`]): `MovieLens` writes
//! `age,gender,occupation`, the synthetic benchmark `p_click,driver`.
//!
//! Ids are written with a one-letter prefix naming their kind: pages `p000123` (six digits at
//! least), users `u12`, items `i345`, categories `c3`, scenarios `s2`. The behaviour sequence
//! (`hist_item_id`, `hist_cat`: items the user engaged with) and the negative sequence
//! (`neg_item_id`, `neg_cat`: items the user was shown, or rated, without engaging; spec §3.3's
//! reading B needs it) are joined by `^`, oldest first and most recent last, empty when the user
//! has none; `click` is `0` or `1`. The rows of one page are contiguous and page ids are
//! unique across the splits of a dataset.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The columns every exposure file starts with, in order.
pub const BASE_COLUMNS: [&str; 12] = [
    "page_id",
    "user_id",
    "item_id",
    "item_cat",
    "trigger_id",
    "trigger_cat",
    "scenario",
    "hist_item_id",
    "hist_cat",
    "neg_item_id",
    "neg_cat",
    "click",
];

/// The separator of the sequence columns (`FuxiCTR`'s `splitter`).
pub const SEQUENCE_SEPARATOR: char = '^';

/// The default bound on the behaviour sequence's length.
pub const DEFAULT_MAX_HISTORY: usize = 50;

/// One exposure of a candidate item on a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// The page (one request), unique across the splits of a dataset.
    pub page_id: u32,
    /// The user the page was shown to.
    pub user_id: u32,
    /// The candidate (target) item.
    pub item_id: u32,
    /// The candidate's category.
    pub item_cat: u32,
    /// The trigger item the page was entered from.
    pub trigger_id: u32,
    /// The trigger's category.
    pub trigger_cat: u32,
    /// The scenario (mini-app) of the page.
    pub scenario: u32,
    /// The user's behaviour sequence before the page, oldest first, most recent last.
    pub hist_item_id: Vec<u32>,
    /// The categories of `hist_item_id`, position by position.
    pub hist_cat: Vec<u32>,
    /// The user's negative sequence before the page (shown or rated, not engaged with), oldest
    /// first, most recent last.
    pub neg_item_id: Vec<u32>,
    /// The categories of `neg_item_id`, position by position.
    pub neg_cat: Vec<u32>,
    /// Whether the candidate was clicked.
    pub click: bool,
    /// The dataset's extra columns.
    pub extra: Extra,
}

/// Which extra columns a dataset has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraKind {
    /// `MovieLens`: the user's profile, `age,gender,occupation`.
    Movielens,
    /// The synthetic benchmark's truth: `p_click,driver`.
    Synthetic,
}

impl ExtraKind {
    /// The extra columns' names, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::Movielens => &["age", "gender", "occupation"],
            Self::Synthetic => &["p_click", "driver"],
        }
    }
}

/// A row's extra columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Extra {
    /// `MovieLens`: the user's profile.
    Movielens(Profile),
    /// The synthetic benchmark's truth.
    Synthetic(Truth),
}

impl Extra {
    /// The kind of these columns.
    pub fn kind(&self) -> ExtraKind {
        match self {
            Self::Movielens(_) => ExtraKind::Movielens,
            Self::Synthetic(_) => ExtraKind::Synthetic,
        }
    }

    /// The cells as written, in [`ExtraKind::columns`] order.
    pub fn cells(&self) -> Vec<String> {
        match self {
            Self::Movielens(p) => vec![p.age.to_string(), p.gender.clone(), p.occupation.clone()],
            Self::Synthetic(t) => vec![format_probability(t.p_click), t.driver.name().to_owned()],
        }
    }
}

/// A user's profile (the `.user` file of `MovieLens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The age's decade: `20` for 20–29 years.
    pub age: u32,
    /// The gender token (`M` or `F`).
    pub gender: String,
    /// The occupation token.
    pub occupation: String,
}

/// What drove a synthetic page's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// The user entered for the trigger item: the page's intent is the trigger.
    Trigger,
    /// The user entered for the scenario itself: the intent is the scenario's theme.
    Scenario,
}

impl Driver {
    /// The name written in the `driver` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Scenario => "scenario",
        }
    }
}

/// The synthetic benchmark's truth about one exposure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// The true click probability the click was drawn from.
    pub p_click: f64,
    /// What drove the page's entry.
    pub driver: Driver,
}

/// A probability with 17 significant digits (enough to read back the same `f64`).
pub fn format_probability(p: f64) -> String {
    format!("{p:.16e}")
}

/// A page id as written: `p` and at least six digits.
pub fn page_label(id: u32) -> String {
    format!("p{id:06}")
}

fn joined(prefix: char, ids: &[u32]) -> String {
    let mut text = String::with_capacity(ids.len() * 5);
    for (k, id) in ids.iter().enumerate() {
        if k > 0 {
            text.push(SEQUENCE_SEPARATOR);
        }
        text.push(prefix);
        text.push_str(&id.to_string());
    }
    text
}

impl Exposure {
    /// The row's cells as written: the base columns, then the extra ones.
    pub fn cells(&self) -> Vec<String> {
        let mut cells = vec![
            page_label(self.page_id),
            format!("u{}", self.user_id),
            format!("i{}", self.item_id),
            format!("c{}", self.item_cat),
            format!("i{}", self.trigger_id),
            format!("c{}", self.trigger_cat),
            format!("s{}", self.scenario),
            joined('i', &self.hist_item_id),
            joined('c', &self.hist_cat),
            joined('i', &self.neg_item_id),
            joined('c', &self.neg_cat),
            if self.click { "1" } else { "0" }.to_owned(),
        ];
        cells.extend(self.extra.cells());
        cells
    }
}

/// The header of a file with `extra` columns.
pub fn columns(extra: ExtraKind) -> Vec<String> {
    BASE_COLUMNS
        .iter()
        .chain(extra.columns())
        .map(|&c| c.to_owned())
        .collect()
}

/// The CSV text of `rows` with a header line: the base columns, then `extra`'s. A row whose own
/// extra columns are of another kind gets empty extra cells, so every line has the header's width.
pub fn to_csv(rows: &[Exposure], extra: ExtraKind) -> String {
    let width = extra.columns().len();
    let header = std::iter::once(columns(extra));
    let body = rows.iter().map(|row| {
        let mut cells = row.cells();
        if row.extra.kind() != extra {
            cells.truncate(BASE_COLUMNS.len());
            cells.resize(BASE_COLUMNS.len() + width, String::new());
        }
        cells
    });
    crate::table::write(header.chain(body))
}

/// The index ranges of the pages of `rows` (runs of one `page_id`), in order.
pub fn pages(rows: &[Exposure]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start = 0;
    for k in 1..=rows.len() {
        if k == rows.len() || rows[k].page_id != rows[start].page_id {
            spans.push(start..k);
            start = k;
        }
    }
    spans
}

/// One of a dataset's three splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training pages.
    Train,
    /// Validation pages (model and epoch choice).
    Valid,
    /// Test pages (reported).
    Test,
}

impl Split {
    /// The three splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// The split's name (`train`, `valid`, `test`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
            Self::Test => "test",
        }
    }
}

/// A dataset of exposures split by whole pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// A short name (`movielens-100k`, `synthetic`).
    pub name: String,
    /// One sentence on where the rows come from and how they were built.
    pub description: String,
    /// The extra columns every row has.
    pub extra: ExtraKind,
    /// Names of the category ids, where the source has them (`categories[3]` is `c3`'s name);
    /// empty when categories are anonymous.
    pub categories: Vec<String>,
    /// Named counts from the build (source rows, dropped pages, …), for `dataset.json`.
    pub counts: BTreeMap<String, u64>,
    /// Training rows.
    pub train: Vec<Exposure>,
    /// Validation rows.
    pub valid: Vec<Exposure>,
    /// Test rows.
    pub test: Vec<Exposure>,
}

impl Dataset {
    /// The rows of one split.
    pub fn split(&self, split: Split) -> &[Exposure] {
        match split {
            Split::Train => &self.train,
            Split::Valid => &self.valid,
            Split::Test => &self.test,
        }
    }

    /// The header's column names.
    pub fn columns(&self) -> Vec<String> {
        columns(self.extra)
    }

    /// The CSV text of one split.
    pub fn csv(&self, split: Split) -> String {
        to_csv(self.split(split), self.extra)
    }

    /// Counts per split, for `dataset.json`.
    pub fn summary(&self) -> DatasetSummary {
        DatasetSummary {
            name: self.name.clone(),
            description: self.description.clone(),
            columns: self.columns(),
            categories: self.categories.clone(),
            counts: self.counts.clone(),
            train: SplitSummary::of(&self.train),
            valid: SplitSummary::of(&self.valid),
            test: SplitSummary::of(&self.test),
        }
    }
}

/// What `dataset.json` records about a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// The dataset's name.
    pub name: String,
    /// How it was built.
    pub description: String,
    /// The CSV header.
    pub columns: Vec<String>,
    /// Names of the category ids (may be empty).
    pub categories: Vec<String>,
    /// Named counts from the build.
    pub counts: BTreeMap<String, u64>,
    /// The training split.
    pub train: SplitSummary,
    /// The validation split.
    pub valid: SplitSummary,
    /// The test split.
    pub test: SplitSummary,
}

/// Counts of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    /// Exposures.
    pub rows: usize,
    /// Pages.
    pub pages: usize,
    /// Distinct users.
    pub users: usize,
    /// Distinct candidate items.
    pub items: usize,
    /// Clicked exposures.
    pub clicks: usize,
    /// `clicks / rows` (0 for an empty split).
    pub click_rate: f64,
}

impl SplitSummary {
    /// The counts of `rows`.
    pub fn of(rows: &[Exposure]) -> Self {
        let distinct = |id: fn(&Exposure) -> u32| {
            let mut ids: Vec<u32> = rows.iter().map(id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        let clicks = rows.iter().filter(|r| r.click).count();
        Self {
            rows: rows.len(),
            pages: pages(rows).len(),
            users: distinct(|r| r.user_id),
            items: distinct(|r| r.item_id),
            clicks,
            click_rate: if rows.is_empty() {
                0.0
            } else {
                clicks as f64 / rows.len() as f64
            },
        }
    }
}

/// How many pages of `total` go to train and to valid for the fractions `[train, valid]` (the
/// rest is test): each rounded to the nearest page, the sum capped at `total`.
pub(crate) fn split_sizes(total: usize, [train, valid]: [f64; 2]) -> (usize, usize) {
    // Fractions are validated in [0, 1], so the products are in [0, total].
    #[allow(clippy::cast_sign_loss)]
    let round = |f: f64| ((total as f64 * f).round() as usize).min(total);
    let n_train = round(train);
    let n_valid = round(valid).min(total - n_train);
    (n_train, n_valid)
}

/// Checks split fractions: each finite in `[0, 1]`, their sum at most 1. The error text names
/// the fractions.
pub(crate) fn check_fractions([train, valid]: [f64; 2]) -> Result<(), String> {
    let ok = |f: f64| f.is_finite() && (0.0..=1.0).contains(&f);
    if ok(train) && ok(valid) && train + valid <= 1.0 {
        Ok(())
    } else {
        Err(format!(
            "train {train} and valid {valid} must each be in [0, 1] with a sum of at most 1"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(page_id: u32, item_id: u32, click: bool, extra: Extra) -> Exposure {
        Exposure {
            page_id,
            user_id: 7,
            item_id,
            item_cat: 2,
            trigger_id: 9,
            trigger_cat: 1,
            scenario: 1,
            hist_item_id: vec![3, 9],
            hist_cat: vec![0, 1],
            neg_item_id: vec![8],
            neg_cat: vec![4],
            click,
            extra,
        }
    }

    fn profile() -> Extra {
        Extra::Movielens(Profile {
            age: 20,
            gender: "F".into(),
            occupation: "writer".into(),
        })
    }

    #[test]
    fn rows_are_written_in_the_common_layout() {
        let truth = || {
            Extra::Synthetic(Truth {
                p_click: 0.1,
                driver: Driver::Scenario,
            })
        };
        let mut empty = row(12, 5, false, truth());
        empty.hist_item_id.clear();
        empty.hist_cat.clear();
        empty.neg_item_id.clear();
        empty.neg_cat.clear();
        let other = row(13, 6, false, profile());
        let text = to_csv(
            &[row(12, 4, true, truth()), empty, other],
            ExtraKind::Synthetic,
        );
        assert_eq!(
            text,
            "page_id,user_id,item_id,item_cat,trigger_id,trigger_cat,scenario,hist_item_id,\
             hist_cat,neg_item_id,neg_cat,click,p_click,driver\n\
             p000012,u7,i4,c2,i9,c1,s1,i3^i9,c0^c1,i8,c4,1,1.0000000000000001e-1,scenario\n\
             p000012,u7,i5,c2,i9,c1,s1,,,,,0,1.0000000000000001e-1,scenario\n\
             p000013,u7,i6,c2,i9,c1,s1,i3^i9,c0^c1,i8,c4,0,,\n"
        );
        let p: f64 = "1.0000000000000001e-1".parse().unwrap();
        assert_eq!(p.to_bits(), 0.1_f64.to_bits());
    }

    #[test]
    fn summaries_count_pages_users_items_and_clicks() {
        let rows = [
            row(1, 4, true, profile()),
            row(1, 5, false, profile()),
            row(2, 4, false, profile()),
        ];
        assert_eq!(pages(&rows), [0..2, 2..3]);
        let s = SplitSummary::of(&rows);
        assert_eq!(
            (s.rows, s.pages, s.users, s.items, s.clicks),
            (3, 2, 1, 2, 1)
        );
        assert!((s.click_rate - 1.0 / 3.0).abs() < 1e-12);
        assert!(SplitSummary::of(&[]).click_rate.abs() < f64::MIN_POSITIVE);
        assert!(to_csv(&rows, ExtraKind::Movielens).contains(",i8,c4,1,20,F,writer\n"));
        assert_eq!(split_sizes(10, [0.8, 0.1]), (8, 1));
        assert_eq!(split_sizes(3, [0.8, 0.5]), (2, 1));
        assert!(check_fractions([0.8, 0.3]).is_err());
        assert!(check_fractions([f64::NAN, 0.1]).is_err());
    }
}

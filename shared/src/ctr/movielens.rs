//! The MovieLens-100K trigger-induced proxy (spec `ccn.md` §7.1; a recommended design, tagged
//! \[D\] in the spec, not the paper's data): real users, items and timestamps, with pages,
//! triggers and scenarios derived from the ratings.
//!
//! Input: the text of `RecBole` 1.2.1's atomic files `ml-100k.inter`, `ml-100k.item` and
//! `ml-100k.user` (in the `recbole` wheel under `recbole/dataset_example/ml-100k/`): tab-separated,
//! a typed header (`user_id:token`, `rating:float`, `class:token_seq`, …) whose columns are found
//! by name, in any order. User and item tokens must be whole numbers (they are in ml-100k).
//!
//! With [`MovielensOptions`]:
//!
//! - **click** := rating ≥ `positive_rating`;
//! - **page** := all ratings of one user with the same timestamp, kept when it has at least
//!   `min_page` items; its rows are ordered by item id;
//! - **trigger** := the user's last positively rated item strictly before the page (ordered by
//!   timestamp, then item id); pages without one are dropped and counted;
//! - **`item_cat`** := the item's first genre (`class` token); **scenario** := the trigger's first
//!   genre (the same ids: `s3` is genre `c3`); genre ids index the distinct first genres sorted
//!   by name ([`Dataset::categories`](super::exposure::Dataset::categories));
//! - **history** := the user's positively rated items strictly before the page, oldest first, the
//!   last `max_history` of them; the **negative sequence** (`neg_item_id`) likewise of the items
//!   rated below `positive_rating`;
//! - extra columns `age` (the decade: `20` is 20–29), `gender` and `occupation` from the `.user`
//!   file;
//! - **splits by time**: pages sorted by (timestamp, user) get page ids in that order; the first
//!   `split[0]` of them are train, the next `split[1]` valid, the rest test.
//!
//! Counts in [`Dataset::counts`](super::exposure::Dataset::counts): `ratings`, `users`, `items`,
//! `rating_groups` (same-user same-timestamp groups), `pages_min_size` (groups of at least
//! `min_page`), `pages_without_trigger` (of those, dropped), `pages` (kept).
//!
//! The `GroupLens` licence forbids redistributing the data: the files are read from where the
//! caller put them, never committed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::exposure::{
    DEFAULT_MAX_HISTORY, Dataset, Exposure, Extra, ExtraKind, Profile, check_fractions, split_sizes,
};

/// The interactions file's name, used in error messages.
pub const INTER_FILE: &str = "ml-100k.inter";
/// The items file's name.
pub const ITEM_FILE: &str = "ml-100k.item";
/// The users file's name.
pub const USER_FILE: &str = "ml-100k.user";

/// Most rating rows read from the interactions file.
pub const MAX_RATINGS: usize = 2_000_000;
/// Most rows read from the items or users file.
pub const MAX_ENTITIES: usize = 1_000_000;
/// Longest history kept.
pub const MAX_HISTORY: usize = 1_000;

/// How the proxy is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MovielensOptions {
    /// A rating at least this is a click.
    pub positive_rating: f64,
    /// Most history entries per row (the most recent).
    pub max_history: usize,
    /// Fewest items on a page.
    pub min_page: usize,
    /// Fractions of pages (in time order) in train and valid; the rest is test.
    pub split: [f64; 2],
}

impl Default for MovielensOptions {
    fn default() -> Self {
        Self {
            positive_rating: 4.0,
            max_history: DEFAULT_MAX_HISTORY,
            min_page: 2,
            split: [0.8, 0.1],
        }
    }
}

/// The three atomic files' text.
#[derive(Debug, Clone, Copy)]
pub struct MovielensFiles<'a> {
    /// `ml-100k.inter`: `user_id`, `item_id`, `rating`, `timestamp`.
    pub inter: &'a str,
    /// `ml-100k.item`: `item_id`, `class`.
    pub item: &'a str,
    /// `ml-100k.user`: `user_id`, `age`, `gender`, `occupation`.
    pub user: &'a str,
}

/// Why the proxy could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MovielensError {
    /// The file has no header line.
    #[error("{file}: empty file (expected a tab-separated header line such as `user_id:token`)")]
    Empty {
        /// The file.
        file: &'static str,
    },
    /// A required column is not in the header.
    #[error("{file} line 1: no column `{column}` in the header (found: {found})")]
    MissingColumn {
        /// The file.
        file: &'static str,
        /// The column's name.
        column: &'static str,
        /// The header's column names.
        found: String,
    },
    /// A row has another number of fields than the header.
    #[error("{file} line {line}: expected {expected} tab-separated fields, found {found}")]
    Width {
        /// The file.
        file: &'static str,
        /// 1-based line.
        line: usize,
        /// The header's width.
        expected: usize,
        /// The row's width.
        found: usize,
    },
    /// A field could not be read.
    #[error("{file} line {line}, column {column}: expected {expected}, found '{found}'")]
    Value {
        /// The file.
        file: &'static str,
        /// 1-based line.
        line: usize,
        /// The column's name.
        column: &'static str,
        /// What the column holds.
        expected: &'static str,
        /// The field as read.
        found: String,
    },
    /// An id appears twice in the items or users file.
    #[error("{file} line {line}, column {column}: id {id} appears a second time")]
    Duplicate {
        /// The file.
        file: &'static str,
        /// 1-based line of the second appearance.
        line: usize,
        /// The id's column.
        column: &'static str,
        /// The id.
        id: u32,
    },
    /// A rating names an item or user the other files do not have.
    #[error("{file} line {line}, column {column}: {id} is not in {other}")]
    Unknown {
        /// The interactions file.
        file: &'static str,
        /// 1-based line.
        line: usize,
        /// The column (`item_id` or `user_id`).
        column: &'static str,
        /// The id.
        id: u32,
        /// The file that should have it.
        other: &'static str,
    },
    /// The file has more rows than the limit.
    #[error("{file}: more than {limit} rows")]
    TooManyRows {
        /// The file.
        file: &'static str,
        /// The limit.
        limit: usize,
    },
    /// An option is out of range.
    #[error("movielens options: {field} = {value} is out of range (expected {expected})")]
    Option {
        /// The option's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted range.
        expected: String,
    },
}

impl MovielensOptions {
    /// Checks every option.
    ///
    /// # Errors
    ///
    /// [`MovielensError::Option`] naming the first option out of range.
    pub fn validate(&self) -> Result<(), MovielensError> {
        let fail = |field, value: String, expected: &str| {
            Err(MovielensError::Option {
                field,
                value,
                expected: expected.to_owned(),
            })
        };
        if !self.positive_rating.is_finite() {
            return fail(
                "positive_rating",
                self.positive_rating.to_string(),
                "a finite number",
            );
        }
        if !(1..=MAX_HISTORY).contains(&self.max_history) {
            return fail("max_history", self.max_history.to_string(), "1 to 1000");
        }
        if !(1..=1000).contains(&self.min_page) {
            return fail("min_page", self.min_page.to_string(), "1 to 1000");
        }
        check_fractions(self.split)
            .or_else(|expected| fail("split", format!("{:?}", self.split), &expected))
    }
}

/// One atomic file: its named columns' positions and its data lines.
struct Atomic<'a> {
    file: &'static str,
    names: Vec<&'a str>,
    /// (1-based line, fields) of every non-blank data line.
    rows: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> Atomic<'a> {
    fn parse(file: &'static str, text: &'a str, limit: usize) -> Result<Self, MovielensError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(k, l)| (k + 1, l.strip_suffix('\r').unwrap_or(l)))
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or(MovielensError::Empty { file })?;
        let names: Vec<&str> = header
            .split('\t')
            .map(|c| c.split(':').next().unwrap_or("").trim())
            .collect();
        let mut rows = Vec::new();
        for (line, text) in lines {
            if rows.len() == limit {
                return Err(MovielensError::TooManyRows { file, limit });
            }
            let fields: Vec<&str> = text.split('\t').map(str::trim).collect();
            if fields.len() != names.len() {
                return Err(MovielensError::Width {
                    file,
                    line,
                    expected: names.len(),
                    found: fields.len(),
                });
            }
            rows.push((line, fields));
        }
        Ok(Self { file, names, rows })
    }

    /// The position of column `name`.
    fn column(&self, name: &'static str) -> Result<Column, MovielensError> {
        match self.names.iter().position(|&n| n == name) {
            Some(at) => Ok(Column {
                file: self.file,
                name,
                at,
            }),
            None => Err(MovielensError::MissingColumn {
                file: self.file,
                column: name,
                found: self.names.join(", "),
            }),
        }
    }
}

/// A located column, to read and name fields.
#[derive(Clone, Copy)]
struct Column {
    file: &'static str,
    name: &'static str,
    at: usize,
}

impl Column {
    fn error(self, line: usize, expected: &'static str, found: &str) -> MovielensError {
        MovielensError::Value {
            file: self.file,
            line,
            column: self.name,
            expected,
            found: found.to_owned(),
        }
    }

    fn text<'a>(self, line: usize, fields: &[&'a str]) -> Result<&'a str, MovielensError> {
        let text = fields[self.at];
        if text.is_empty() {
            Err(self.error(line, "a value", text))
        } else {
            Ok(text)
        }
    }

    fn id(self, line: usize, fields: &[&str]) -> Result<u32, MovielensError> {
        let text = fields[self.at];
        text.parse()
            .map_err(|_| self.error(line, "a whole-number id", text))
    }

    fn number(self, line: usize, fields: &[&str]) -> Result<f64, MovielensError> {
        let text = fields[self.at];
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(self.error(line, "a number", text)),
        }
    }

    /// Whole seconds (written as an integer or as a float with no fraction).
    fn seconds(self, line: usize, fields: &[&str]) -> Result<i64, MovielensError> {
        let text = fields[self.at];
        if let Ok(v) = text.parse::<i64>() {
            return Ok(v);
        }
        match text.parse::<f64>() {
            // In range and whole, so the conversion is exact.
            #[allow(clippy::cast_possible_truncation)]
            Ok(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
            _ => Err(self.error(line, "whole seconds", text)),
        }
    }
}

/// Items: each id's first genre, as a name.
fn parse_items(text: &str) -> Result<BTreeMap<u32, String>, MovielensError> {
    let file = Atomic::parse(ITEM_FILE, text, MAX_ENTITIES)?;
    let (id, class) = (file.column("item_id")?, file.column("class")?);
    let mut genres = BTreeMap::new();
    for (line, fields) in &file.rows {
        let item = id.id(*line, fields)?;
        let genre = fields[class.at]
            .split_whitespace()
            .next()
            .ok_or_else(|| class.error(*line, "at least one genre", fields[class.at]))?;
        if genres.insert(item, genre.to_owned()).is_some() {
            return Err(MovielensError::Duplicate {
                file: ITEM_FILE,
                line: *line,
                column: "item_id",
                id: item,
            });
        }
    }
    Ok(genres)
}

/// Users: each id's profile.
fn parse_users(text: &str) -> Result<BTreeMap<u32, Profile>, MovielensError> {
    let file = Atomic::parse(USER_FILE, text, MAX_ENTITIES)?;
    let id = file.column("user_id")?;
    let age = file.column("age")?;
    let gender = file.column("gender")?;
    let occupation = file.column("occupation")?;
    let mut users = BTreeMap::new();
    for (line, fields) in &file.rows {
        let user = id.id(*line, fields)?;
        let years: u32 = fields[age.at]
            .parse()
            .ok()
            .filter(|&y| y < 200)
            .ok_or_else(|| age.error(*line, "an age in whole years", fields[age.at]))?;
        let profile = Profile {
            age: years / 10 * 10,
            gender: gender.text(*line, fields)?.to_owned(),
            occupation: occupation.text(*line, fields)?.to_owned(),
        };
        if users.insert(user, profile).is_some() {
            return Err(MovielensError::Duplicate {
                file: USER_FILE,
                line: *line,
                column: "user_id",
                id: user,
            });
        }
    }
    Ok(users)
}

/// One rating: (timestamp, item, positive).
#[derive(Debug, Clone, Copy)]
struct Rating {
    time: i64,
    item: u32,
    positive: bool,
}

/// Ratings grouped by user, each user's in (timestamp, item) order.
fn parse_ratings(
    text: &str,
    items: &BTreeMap<u32, String>,
    users: &BTreeMap<u32, Profile>,
    positive_rating: f64,
) -> Result<(BTreeMap<u32, Vec<Rating>>, usize), MovielensError> {
    let file = Atomic::parse(INTER_FILE, text, MAX_RATINGS)?;
    let user_id = file.column("user_id")?;
    let item_id = file.column("item_id")?;
    let rating = file.column("rating")?;
    let timestamp = file.column("timestamp")?;
    let mut by_user: BTreeMap<u32, Vec<Rating>> = BTreeMap::new();
    for (line, fields) in &file.rows {
        let line = *line;
        let user = user_id.id(line, fields)?;
        let item = item_id.id(line, fields)?;
        let unknown = |column, id, other| MovielensError::Unknown {
            file: INTER_FILE,
            line,
            column,
            id,
            other,
        };
        if !users.contains_key(&user) {
            return Err(unknown("user_id", user, USER_FILE));
        }
        if !items.contains_key(&item) {
            return Err(unknown("item_id", item, ITEM_FILE));
        }
        let value = rating.number(line, fields)?;
        let time = timestamp.seconds(line, fields)?;
        by_user.entry(user).or_default().push(Rating {
            time,
            item,
            positive: value >= positive_rating,
        });
    }
    for ratings in by_user.values_mut() {
        ratings.sort_by_key(|r| (r.time, r.item));
    }
    Ok((by_user, file.rows.len()))
}

/// A kept page before it becomes rows.
struct Page<'a> {
    time: i64,
    user: u32,
    ratings: &'a [Rating],
    trigger: u32,
    history: Vec<u32>,
    negatives: Vec<u32>,
}

/// Counts of the page construction.
#[derive(Default)]
struct PageCounts {
    groups: u64,
    min_size: u64,
    without_trigger: u64,
}

/// The pages of every user, sorted by (timestamp, user).
fn pages<'a>(
    by_user: &'a BTreeMap<u32, Vec<Rating>>,
    options: &MovielensOptions,
    counts: &mut PageCounts,
) -> Vec<Page<'a>> {
    let mut pages = Vec::new();
    for (&user, ratings) in by_user {
        let mut positives: Vec<u32> = Vec::new();
        let mut negatives: Vec<u32> = Vec::new();
        let last = |ids: &[u32]| ids[ids.len().saturating_sub(options.max_history)..].to_vec();
        for group in ratings.chunk_by(|a, b| a.time == b.time) {
            counts.groups += 1;
            if group.len() >= options.min_page {
                counts.min_size += 1;
                if let Some(&trigger) = positives.last() {
                    pages.push(Page {
                        time: group[0].time,
                        user,
                        ratings: group,
                        trigger,
                        history: last(&positives),
                        negatives: last(&negatives),
                    });
                } else {
                    counts.without_trigger += 1;
                }
            }
            for r in group {
                if r.positive {
                    positives.push(r.item);
                } else {
                    negatives.push(r.item);
                }
            }
        }
    }
    pages.sort_by_key(|p| (p.time, p.user));
    pages
}

/// The proxy dataset ([`ExtraKind::Movielens`] rows) from the three files' text.
///
/// # Errors
///
/// [`MovielensError`] naming the file, line and column of the first unreadable field, a missing
/// column, a file over its row limit, an id missing from the items or users file, or an option
/// out of range.
pub fn build(
    files: &MovielensFiles,
    options: &MovielensOptions,
) -> Result<Dataset, MovielensError> {
    options.validate()?;
    let genres = parse_items(files.item)?;
    let users = parse_users(files.user)?;
    let (by_user, ratings) = parse_ratings(files.inter, &genres, &users, options.positive_rating)?;
    let mut names: Vec<&str> = genres.values().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let category: BTreeMap<u32, u32> = genres
        .iter()
        .map(|(&item, genre)| {
            // Every genre is in `names`, whose length fits in u32 (at most MAX_ENTITIES).
            let k = names.binary_search(&genre.as_str()).unwrap_or(0);
            (item, k as u32)
        })
        .collect();
    let mut counts = PageCounts::default();
    let pages = pages(&by_user, options, &mut counts);
    let (n_train, n_valid) = split_sizes(pages.len(), options.split);
    let mut splits: [Vec<Exposure>; 3] = Default::default();
    for (page_id, page) in pages.iter().enumerate() {
        let label = if page_id < n_train {
            0
        } else if page_id < n_train + n_valid {
            1
        } else {
            2
        };
        splits[label].extend(page_rows(page, page_id as u32, &category, &users));
    }
    let mut rated_items: Vec<u32> = by_user.values().flatten().map(|r| r.item).collect();
    rated_items.sort_unstable();
    rated_items.dedup();
    let counts = BTreeMap::from([
        ("ratings".to_owned(), ratings as u64),
        ("users".to_owned(), by_user.len() as u64),
        ("items".to_owned(), rated_items.len() as u64),
        ("rating_groups".to_owned(), counts.groups),
        ("pages_min_size".to_owned(), counts.min_size),
        ("pages_without_trigger".to_owned(), counts.without_trigger),
        ("pages".to_owned(), pages.len() as u64),
    ]);
    let [train, valid, test] = splits;
    Ok(Dataset {
        name: "movielens-100k".to_owned(),
        description: format!(
            "MovieLens-100K trigger-induced proxy (spec ccn.md §7.1, recommended design) from \
             RecBole 1.2.1's atomic files: click = rating ≥ {}, pages = one user's ratings with \
             one timestamp (≥ {} items), trigger = the last positive before the page, scenario = \
             its first genre, history ≤ {}, split by time {:?}.",
            options.positive_rating, options.min_page, options.max_history, options.split
        ),
        extra: ExtraKind::Movielens,
        categories: names.into_iter().map(str::to_owned).collect(),
        counts,
        train,
        valid,
        test,
    })
}

fn page_rows(
    page: &Page,
    page_id: u32,
    category: &BTreeMap<u32, u32>,
    users: &BTreeMap<u32, Profile>,
) -> Vec<Exposure> {
    // Every rated item and user was checked against the items and users files.
    let cat = |item: u32| category.get(&item).copied().unwrap_or(0);
    let profile = users.get(&page.user).cloned().unwrap_or(Profile {
        age: 0,
        gender: String::new(),
        occupation: String::new(),
    });
    let trigger_cat = cat(page.trigger);
    let hist_cat: Vec<u32> = page.history.iter().map(|&i| cat(i)).collect();
    let neg_cat: Vec<u32> = page.negatives.iter().map(|&i| cat(i)).collect();
    page.ratings
        .iter()
        .map(|r| Exposure {
            page_id,
            user_id: page.user,
            item_id: r.item,
            item_cat: cat(r.item),
            trigger_id: page.trigger,
            trigger_cat,
            scenario: trigger_cat,
            hist_item_id: page.history.clone(),
            hist_cat: hist_cat.clone(),
            neg_item_id: page.negatives.clone(),
            neg_cat: neg_cat.clone(),
            click: r.positive,
            extra: Extra::Movielens(profile.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEMS: &str = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n\
                         1\tA\tDrama Comedy\n2\tB\tAction\n3\tC\tComedy\n4\tD\tDrama\n";
    const USERS: &str = "user_id:token\tage:token\tgender:token\toccupation:token\n\
                         7\t24\tM\twriter\n8\t53\tF\tother\n";

    #[test]
    fn header_columns_are_found_by_name() {
        let inter = "timestamp:float\trating:float\titem_id:token\tuser_id:token\n\
                     100\t5\t2\t7\n200\t4\t1\t7\n200\t2\t3\t7\n";
        let files = MovielensFiles {
            inter,
            item: ITEMS,
            user: USERS,
        };
        let data = build(&files, &MovielensOptions::default()).unwrap();
        assert_eq!(data.categories, ["Action", "Comedy", "Drama"]);
        assert_eq!(data.train.len() + data.valid.len() + data.test.len(), 2);
        let row = data.train.first().or(data.test.first()).unwrap();
        assert_eq!(
            (row.trigger_id, row.scenario, row.hist_item_id.clone()),
            (2, 0, vec![2])
        );
    }

    #[test]
    fn bad_options_are_named() {
        let options = MovielensOptions {
            min_page: 0,
            ..MovielensOptions::default()
        };
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("min_page"), "{err}");
    }
}

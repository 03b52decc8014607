//! A table's rows as model inputs: categorical tokens as ids of vocabularies fitted on the
//! training split (0 = padding, 1 = out of vocabulary, then the tokens in sorted order, so the
//! same training data gives the same ids), numbers standardised with the training split's mean
//! and deviation, sequences cut to their last `max_len` tokens and padded at the end.
//!
//! The fitted [`Preprocessor`] is saved beside a model, so prediction encodes a new file exactly
//! as training did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::schema::{FeatureKind, Schema, SchemaError};
use crate::table::Row;

/// The padding id of every vocabulary.
pub const PAD: u32 = 0;
/// The id of a token the training split never showed.
pub const OOV: u32 = 1;
/// Most distinct tokens one vocabulary may hold.
pub const MAX_VOCABULARY: usize = 10_000_000;

/// A table as read from CSV or Parquet: the header and the data rows with their lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTable {
    /// Column names.
    pub columns: Vec<String>,
    /// Data rows (the header excluded), each as wide as `columns`.
    pub rows: Vec<Row>,
}

/// Why rows could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The schema is inconsistent.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A column the schema names is not in the header.
    #[error("no column `{column}` in the header")]
    MissingColumn {
        /// The column.
        column: String,
    },
    /// A cell does not hold what its column needs.
    #[error("line {line}, column `{column}`: {message}")]
    Cell {
        /// 1-based line of the row.
        line: usize,
        /// The column.
        column: String,
        /// What was expected and found.
        message: String,
    },
    /// A row is narrower or wider than the header.
    #[error("line {line}: {found} cells, expected {expected} (one per header column)")]
    Width {
        /// 1-based line.
        line: usize,
        /// Cells found.
        found: usize,
        /// Header columns.
        expected: usize,
    },
    /// The training split is empty or too varied.
    #[error("{message}")]
    Training {
        /// What was wrong.
        message: String,
    },
}

/// Mean and deviation of a numeric feature on the training split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardise {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation (1 where it is 0).
    pub deviation: f64,
}

/// Vocabularies and numeric statistics fitted on a training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// The schema it was fitted for.
    pub schema: Schema,
    /// Tokens of each vocabulary (named by its categorical feature), id = index + 2.
    pub vocabularies: BTreeMap<String, Vec<String>>,
    /// Statistics of each numeric feature.
    pub numeric: BTreeMap<String, Standardise>,
}

/// One padded sequence feature.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sequence {
    /// Ids, `rows × max_len`, each row's tokens first and [`PAD`] after.
    pub ids: Vec<u32>,
    /// Tokens per row (≤ `max_len`).
    pub lengths: Vec<u32>,
    /// Padded length.
    pub max_len: usize,
}

/// Encoded rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encoded {
    /// Rows.
    pub rows: usize,
    /// Clicks.
    pub labels: Vec<bool>,
    /// The user of each row, as an index into `user_names`.
    pub users: Vec<u32>,
    /// Distinct users, in order of first appearance.
    pub user_names: Vec<String>,
    /// The page of each row as an index (distinct pages in order of first appearance); empty
    /// when the schema has no page column.
    pub pages: Vec<u64>,
    /// Categorical features by name: one id per row.
    pub categorical: BTreeMap<String, Vec<u32>>,
    /// Numeric features by name, standardised.
    pub numeric: BTreeMap<String, Vec<f32>>,
    /// Sequence features by name.
    pub sequences: BTreeMap<String, Sequence>,
}

fn column_index(table: &RawTable, column: &str) -> Result<usize, EncodeError> {
    table
        .columns
        .iter()
        .position(|c| c == column)
        .ok_or_else(|| EncodeError::MissingColumn {
            column: column.to_owned(),
        })
}

fn check_widths(table: &RawTable) -> Result<(), EncodeError> {
    match table
        .rows
        .iter()
        .find(|r| r.cells.len() != table.columns.len())
    {
        Some(row) => Err(EncodeError::Width {
            line: row.line,
            found: row.cells.len(),
            expected: table.columns.len(),
        }),
        None => Ok(()),
    }
}

fn tokens<'a>(cell: &'a str, kind: &'a FeatureKind) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    match kind {
        FeatureKind::Sequence { splitter, max_len } => {
            let all: Vec<&str> = if cell.is_empty() {
                Vec::new()
            } else {
                cell.split(splitter.as_str()).map(str::trim).collect()
            };
            let skip = all.len().saturating_sub(*max_len);
            Box::new(all.into_iter().skip(skip))
        }
        _ => Box::new(std::iter::once(cell)),
    }
}

fn parse_number(cell: &str, fill: Option<f64>) -> Option<f64> {
    if cell.is_empty() {
        return fill;
    }
    cell.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl Preprocessor {
    /// Fits vocabularies and numeric statistics on `train`.
    ///
    /// # Errors
    /// [`EncodeError`] naming the line and column of a bad cell, or the schema's problem.
    pub fn fit(schema: &Schema, train: &RawTable) -> Result<Self, EncodeError> {
        schema.validate()?;
        check_widths(train)?;
        if train.rows.is_empty() {
            return Err(EncodeError::Training {
                message: "the training split has no rows".into(),
            });
        }
        let mut seen: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        let mut numeric = BTreeMap::new();
        for feature in &schema.features {
            let at = column_index(train, &feature.name)?;
            if let FeatureKind::Numeric { fill } = feature.kind {
                let mut sum = 0.0;
                let mut squares = 0.0;
                for row in &train.rows {
                    let value = parse_number(&row.cells[at], fill)
                        .ok_or_else(|| number_error(row, at, &feature.name, fill))?;
                    sum += value;
                    squares += value * value;
                }
                let n = train.rows.len() as f64;
                let mean = sum / n;
                let deviation = (squares / n - mean * mean).max(0.0).sqrt();
                let deviation = if deviation > 1e-12 { deviation } else { 1.0 };
                numeric.insert(feature.name.clone(), Standardise { mean, deviation });
                continue;
            }
            let set = seen
                .entry(schema.vocabulary_of(feature).to_owned())
                .or_default();
            for row in &train.rows {
                set.extend(
                    tokens(&row.cells[at], &feature.kind)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                );
            }
            if set.len() > MAX_VOCABULARY {
                return Err(EncodeError::Training {
                    message: format!(
                        "feature `{}`: more than {MAX_VOCABULARY} distinct tokens",
                        feature.name
                    ),
                });
            }
        }
        Ok(Self {
            schema: schema.clone(),
            vocabularies: seen
                .into_iter()
                .map(|(name, set)| (name, set.into_iter().collect()))
                .collect(),
            numeric,
        })
    }

    /// Ids per vocabulary, padding and out-of-vocabulary included.
    #[must_use]
    pub fn vocabulary_size(&self, vocabulary: &str) -> usize {
        self.vocabularies.get(vocabulary).map_or(0, Vec::len) + 2
    }

    /// Encodes the rows of `table` (any split, or a file to score).
    ///
    /// # Errors
    /// [`EncodeError`] naming the line and column of the first bad cell.
    pub fn encode(&self, table: &RawTable) -> Result<Encoded, EncodeError> {
        let schema = &self.schema;
        check_widths(table)?;
        let mut out = Encoded {
            rows: table.rows.len(),
            ..Encoded::default()
        };
        let label = column_index(table, &schema.label)?;
        for row in &table.rows {
            out.labels.push(match row.cells[label].as_str() {
                "1" | "1.0" | "true" => true,
                "0" | "0.0" | "false" => false,
                other => {
                    return Err(EncodeError::Cell {
                        line: row.line,
                        column: schema.label.clone(),
                        message: format!("expected 0 or 1, found `{other}`"),
                    });
                }
            });
        }
        let user = column_index(table, &schema.user)?;
        (out.users, out.user_names) = intern(table.rows.iter().map(|r| r.cells[user].as_str()));
        if let Some(page) = &schema.page {
            let page = column_index(table, page)?;
            let (ids, _) = intern(table.rows.iter().map(|r| r.cells[page].as_str()));
            out.pages = ids.into_iter().map(u64::from).collect();
        }
        for feature in &schema.features {
            let at = column_index(table, &feature.name)?;
            let cells = table.rows.iter().map(|r| r.cells[at].as_str());
            match &feature.kind {
                FeatureKind::Numeric { fill } => {
                    let stats = self
                        .numeric
                        .get(&feature.name)
                        .copied()
                        .unwrap_or(Standardise {
                            mean: 0.0,
                            deviation: 1.0,
                        });
                    let mut values = Vec::with_capacity(out.rows);
                    for row in &table.rows {
                        let value = parse_number(&row.cells[at], *fill)
                            .ok_or_else(|| number_error(row, at, &feature.name, *fill))?;
                        values.push(((value - stats.mean) / stats.deviation) as f32);
                    }
                    out.numeric.insert(feature.name.clone(), values);
                }
                FeatureKind::Categorical => {
                    let vocabulary = self.vocabulary(schema.vocabulary_of(feature));
                    let ids = cells.map(|c| token_id(vocabulary, c)).collect();
                    out.categorical.insert(feature.name.clone(), ids);
                }
                FeatureKind::Sequence { max_len, .. } => {
                    let vocabulary = self.vocabulary(schema.vocabulary_of(feature));
                    let mut sequence = Sequence {
                        ids: Vec::with_capacity(out.rows * max_len),
                        lengths: Vec::with_capacity(out.rows),
                        max_len: *max_len,
                    };
                    for cell in cells {
                        let start = sequence.ids.len();
                        sequence.ids.extend(
                            tokens(cell, &feature.kind)
                                .filter(|t| !t.is_empty())
                                .map(|t| token_id(vocabulary, t)),
                        );
                        let length = sequence.ids.len() - start;
                        sequence
                            .lengths
                            .push(u32::try_from(length).unwrap_or(u32::MAX));
                        sequence.ids.resize(start + max_len, PAD);
                    }
                    out.sequences.insert(feature.name.clone(), sequence);
                }
            }
        }
        Ok(out)
    }

    fn vocabulary(&self, name: &str) -> &[String] {
        self.vocabularies.get(name).map_or(&[], Vec::as_slice)
    }
}

fn number_error(row: &Row, at: usize, column: &str, fill: Option<f64>) -> EncodeError {
    let found = &row.cells[at];
    EncodeError::Cell {
        line: row.line,
        column: column.to_owned(),
        message: if fill.is_some() || !found.is_empty() {
            format!("expected a finite number, found `{found}`")
        } else {
            "empty: expected a finite number (the feature has no `fill` for empty cells)".into()
        },
    }
}

/// The id of `token` in a sorted vocabulary.
fn token_id(vocabulary: &[String], token: &str) -> u32 {
    vocabulary
        .binary_search_by(|t| t.as_str().cmp(token))
        .map_or(OOV, |i| u32::try_from(i + 2).unwrap_or(OOV))
}

/// Indices of values in order of first appearance, and the distinct values.
fn intern<'a>(values: impl Iterator<Item = &'a str>) -> (Vec<u32>, Vec<String>) {
    let mut index: BTreeMap<&str, u32> = BTreeMap::new();
    let mut names = Vec::new();
    let ids = values
        .map(|v| {
            *index.entry(v).or_insert_with(|| {
                names.push(v.to_owned());
                u32::try_from(names.len() - 1).unwrap_or(u32::MAX)
            })
        })
        .collect();
    (ids, names)
}

impl Encoded {
    /// The rows at `indices`, in that order (a batch).
    #[must_use]
    pub fn select(&self, indices: &[usize]) -> Self {
        let pick = |values: &[u32]| indices.iter().map(|&i| values[i]).collect::<Vec<_>>();
        Self {
            rows: indices.len(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            users: pick(&self.users),
            user_names: self.user_names.clone(),
            pages: if self.pages.is_empty() {
                Vec::new()
            } else {
                indices.iter().map(|&i| self.pages[i]).collect()
            },
            categorical: self
                .categorical
                .iter()
                .map(|(k, v)| (k.clone(), pick(v)))
                .collect(),
            numeric: self
                .numeric
                .iter()
                .map(|(k, v)| (k.clone(), indices.iter().map(|&i| v[i]).collect()))
                .collect(),
            sequences: self
                .sequences
                .iter()
                .map(|(k, s)| {
                    let ids = indices
                        .iter()
                        .flat_map(|&i| s.ids[i * s.max_len..(i + 1) * s.max_len].iter().copied())
                        .collect();
                    let sequence = Sequence {
                        ids,
                        lengths: pick(&s.lengths),
                        max_len: s.max_len,
                    };
                    (k.clone(), sequence)
                })
                .collect(),
        }
    }

    /// Row indices grouped by page (pages in order of first appearance, rows in table order);
    /// one group per row when there is no page column.
    #[must_use]
    pub fn page_groups(&self) -> Vec<Vec<usize>> {
        if self.pages.is_empty() {
            return (0..self.rows).map(|i| vec![i]).collect();
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut at: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, &page) in self.pages.iter().enumerate() {
            let g = *at.entry(page).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        groups
    }
}

/// A header and data rows from CSV text (the first non-blank record is the header).
///
/// # Errors
/// [`EncodeError::Training`] when the text has no header.
pub fn csv_table(text: &str) -> Result<RawTable, EncodeError> {
    let mut rows = crate::table::rows(text);
    let header = rows.next().ok_or_else(|| EncodeError::Training {
        message: "the file is empty: expected a header line".into(),
    })?;
    Ok(RawTable {
        columns: header.cells,
        rows: rows.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        toml_like()
    }

    fn toml_like() -> Schema {
        serde_json::from_value(serde_json::json!({
            "label": "click", "user": "user", "page": "page",
            "target": ["item"], "sequence": ["hist"], "trigger": ["trig"],
            "features": [
                {"name": "user", "type": "categorical"},
                {"name": "item", "type": "categorical"},
                {"name": "trig", "type": "categorical", "share_embedding": "item"},
                {"name": "hist", "type": "sequence", "splitter": "^", "max_len": 3, "share_embedding": "item"},
                {"name": "age", "type": "numeric", "fill": 0.0},
            ]
        }))
        .unwrap()
    }

    const TRAIN: &str = "page,user,item,trig,hist,age,click\n\
        p1,u1,a,b,a^b^c^d,10,1\n\
        p1,u1,b,b,,20,0\n\
        p2,u2,c,a,b,,1\n";

    #[test]
    fn vocabularies_are_shared_sorted_and_sequences_keep_their_last_tokens() {
        let train = csv_table(TRAIN).unwrap();
        let pre = Preprocessor::fit(&schema(), &train).unwrap();
        assert_eq!(pre.vocabularies["item"], ["a", "b", "c", "d"]);
        assert!(!pre.vocabularies.contains_key("hist"));
        let encoded = pre.encode(&train).unwrap();
        assert_eq!(encoded.categorical["item"], [2, 3, 4]);
        assert_eq!(encoded.categorical["trig"], [3, 3, 2]);
        let hist = &encoded.sequences["hist"];
        assert_eq!(hist.ids, [3, 4, 5, 0, 0, 0, 3, 0, 0]);
        assert_eq!(hist.lengths, [3, 0, 1]);
        assert_eq!(encoded.labels, [true, false, true]);
        assert_eq!(encoded.users, [0, 0, 1]);
        assert_eq!(encoded.page_groups(), [vec![0, 1], vec![2]]);
        // Ages 10, 20, 0 (filled): mean 10, deviation √(200/3).
        let age = &encoded.numeric["age"];
        assert!((age[0]).abs() < 1e-6 && (age[1] - age[2].abs()).abs() < 1e-6);
        let unseen =
            csv_table("page,user,item,trig,hist,age,click\np9,u9,zzz,a,zzz^a,1,0\n").unwrap();
        let encoded = pre.encode(&unseen).unwrap();
        assert_eq!(encoded.categorical["item"], [OOV]);
        assert_eq!(encoded.sequences["hist"].ids, [OOV, 2, 0]);
    }

    #[test]
    fn bad_cells_are_named_by_line_and_column() {
        let pre = Preprocessor::fit(&schema(), &csv_table(TRAIN).unwrap()).unwrap();
        let bad = csv_table("page,user,item,trig,hist,age,click\np,u,a,a,a,1,1\np,u,a,a,a,1,2\n")
            .unwrap();
        let error = pre.encode(&bad).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3, column `click`: expected 0 or 1, found `2`"
        );
        let bad = csv_table("page,user,item,trig,hist,age,click\np,u,a,a,a,x,1\n").unwrap();
        assert!(
            pre.encode(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("line 2, column `age`")
        );
        let missing = csv_table("page,user,item,hist,age,click\np,u,a,a,1,1\n").unwrap();
        assert_eq!(
            pre.encode(&missing).unwrap_err(),
            EncodeError::MissingColumn {
                column: "trig".into()
            }
        );
        let narrow = csv_table("page,user,item,trig,hist,age,click\np,u,a\n").unwrap();
        assert!(matches!(
            pre.encode(&narrow),
            Err(EncodeError::Width {
                line: 2,
                found: 3,
                ..
            })
        ));
    }

    #[test]
    fn unaligned_or_unshared_roles_are_refused() {
        let mut bad = schema();
        bad.features[2].share_embedding = None;
        assert!(matches!(bad.validate(), Err(SchemaError::Unshared { .. })));
        let mut bad = schema();
        bad.sequence.push("hist".into());
        assert!(matches!(bad.validate(), Err(SchemaError::Alignment { .. })));
        let mut bad = schema();
        bad.target = vec!["age".into()];
        assert!(matches!(bad.validate(), Err(SchemaError::Role { .. })));
    }
}

//! The declarative feature schema of a click-through-rate dataset, in the style of `FuxiCTR`'s
//! `dataset_config` (spec `ccn.md` §6): each column is a categorical, numeric or sequence
//! feature; the label, user and page columns are named; and the model's roles are lists of
//! feature names: the candidate (`target`) item's fields, the behaviour `sequence` fields aligned
//! with them, the `trigger` item's fields, and for CCN's prototypes reading the exposed-but-not-
//! clicked `negative_sequence`. Every other categorical or numeric feature is context (user
//! profile, scenario) fed to the MLP.
//!
//! An item field and the fields aligned with it (its history, the trigger's, the negative
//! history's) must share one embedding table: `share_embedding = "<target field>"`.
//!
//! ```toml
//! label = "click"
//! user = "user_id"
//! page = "page_id"
//! target = ["item_id", "item_cat"]
//! sequence = ["hist_item_id", "hist_cat"]
//! trigger = ["trigger_id", "trigger_cat"]
//!
//! [[features]]
//! name = "item_id"
//! type = "categorical"
//!
//! [[features]]
//! name = "hist_item_id"
//! type = "sequence"
//! splitter = "^"
//! max_len = 20
//! share_embedding = "item_id"
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest behaviour sequence a schema may ask for (bounds every padded batch).
pub const MAX_SEQUENCE: usize = 1024;
/// Most features a schema may declare.
pub const MAX_FEATURES: usize = 256;

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// No `deny_unknown_fields`: serde does not support it with `flatten`.
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeatureKind {
    /// One token per row (an id, a category); unseen tokens map to the out-of-vocabulary id.
    Categorical,
    /// A number, standardised with the training split's mean and deviation.
    Numeric {
        /// Used for an empty cell; without it an empty cell is an error.
        #[serde(default)]
        fill: Option<f64>,
    },
    /// Tokens joined by `splitter`, oldest first; the last `max_len` are kept.
    Sequence {
        /// Separator between tokens (`^` in `FuxiCTR`'s data).
        splitter: String,
        /// Tokens kept per row, padded to this length.
        max_len: usize,
    },
}

/// One column used as a feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The column's name in the header.
    pub name: String,
    /// What it holds.
    #[serde(flatten)]
    pub kind: FeatureKind,
    /// The categorical feature whose vocabulary and embedding this one uses.
    #[serde(default)]
    pub share_embedding: Option<String>,
}

/// The dataset's columns and the model's roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The 0/1 click column.
    pub label: String,
    /// The user column: GAUC groups by it.
    pub user: String,
    /// Rows with the same value were shown on one page (CCN's pairs); none: no pairs.
    #[serde(default)]
    pub page: Option<String>,
    /// Every feature the model reads.
    pub features: Vec<Feature>,
    /// Categorical fields of the candidate item.
    pub target: Vec<String>,
    /// Sequence fields of the behaviour history, aligned with `target`.
    pub sequence: Vec<String>,
    /// Categorical fields of the trigger item, aligned with `target` (empty: no trigger).
    #[serde(default)]
    pub trigger: Vec<String>,
    /// Sequence fields of exposed-but-not-clicked items, aligned with `target` (CCN's
    /// prototypes reading).
    #[serde(default)]
    pub negative_sequence: Vec<String>,
}

/// Why a schema was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// Two features have one name.
    #[error("feature `{name}` is declared twice")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// A role names a feature that is not declared, or of the wrong type.
    #[error("`{role}` names `{name}`: expected a declared {expected} feature")]
    Role {
        /// `target`, `sequence`, `trigger`, `negative_sequence` or `share_embedding`.
        role: String,
        /// The name given.
        name: String,
        /// The type it must have.
        expected: &'static str,
    },
    /// A role list does not line up with `target`.
    #[error("`{role}` has {found} fields: expected {expected}, one per `target` field")]
    Alignment {
        /// The role.
        role: &'static str,
        /// Fields given.
        found: usize,
        /// Fields in `target`.
        expected: usize,
    },
    /// A field aligned with a target field does not share its embedding.
    #[error(
        "`{name}` is aligned with target field `{target}`: it needs `share_embedding = \"{target}\"`"
    )]
    Unshared {
        /// The aligned field.
        name: String,
        /// The target field.
        target: String,
    },
    /// A value is out of range.
    #[error("feature `{name}`: {message}")]
    Value {
        /// The feature.
        name: String,
        /// What was expected.
        message: String,
    },
    /// The label, user or page column is also a feature, or the schema is empty.
    #[error("{message}")]
    Shape {
        /// What was expected.
        message: String,
    },
}

impl Schema {
    /// The feature called `name`.
    #[must_use]
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// The categorical feature whose vocabulary `feature` uses (itself unless shared).
    #[must_use]
    pub fn vocabulary_of<'a>(&'a self, feature: &'a Feature) -> &'a str {
        feature.share_embedding.as_deref().unwrap_or(&feature.name)
    }

    /// Categorical and numeric features outside every item role: the context fed to the MLP.
    pub fn context(&self) -> impl Iterator<Item = &Feature> {
        self.features.iter().filter(|f| {
            !matches!(f.kind, FeatureKind::Sequence { .. })
                && !self.target.contains(&f.name)
                && !self.trigger.contains(&f.name)
        })
    }

    /// Checks names, types, alignment, shared embeddings and sizes.
    ///
    /// # Errors
    /// The first problem, naming the feature or role.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.features.is_empty() || self.target.is_empty() {
            return Err(SchemaError::Shape {
                message: "a schema needs features and at least one `target` field".into(),
            });
        }
        if self.features.len() > MAX_FEATURES {
            return Err(SchemaError::Shape {
                message: format!(
                    "{} features: at most {MAX_FEATURES} are supported",
                    self.features.len()
                ),
            });
        }
        for (i, feature) in self.features.iter().enumerate() {
            if self.features[..i].iter().any(|f| f.name == feature.name) {
                return Err(SchemaError::Duplicate {
                    name: feature.name.clone(),
                });
            }
            self.check_feature(feature)?;
        }
        for name in [&self.label, &self.user]
            .into_iter()
            .chain(self.page.as_ref())
        {
            if self.feature(name).is_some_and(|f| f.name != self.user) {
                return Err(SchemaError::Shape {
                    message: format!(
                        "`{name}` is the label or page column and cannot be a feature"
                    ),
                });
            }
        }
        for name in &self.target {
            self.expect(name, "target", "categorical", |k| {
                matches!(k, FeatureKind::Categorical)
            })?;
        }
        self.check_aligned("sequence", &self.sequence, true, false)?;
        self.check_aligned("trigger", &self.trigger, false, true)?;
        self.check_aligned("negative_sequence", &self.negative_sequence, true, true)
    }

    fn check_feature(&self, feature: &Feature) -> Result<(), SchemaError> {
        let value = |message: String| SchemaError::Value {
            name: feature.name.clone(),
            message,
        };
        match &feature.kind {
            FeatureKind::Sequence { splitter, max_len } => {
                if splitter.is_empty() {
                    return Err(value("`splitter` is empty".into()));
                }
                if !(1..=MAX_SEQUENCE).contains(max_len) {
                    return Err(value(format!(
                        "`max_len` {max_len}: expected 1..={MAX_SEQUENCE}"
                    )));
                }
            }
            FeatureKind::Numeric { fill } => {
                if fill.is_some_and(|f| !f.is_finite()) {
                    return Err(value("`fill` must be a finite number".into()));
                }
                if feature.share_embedding.is_some() {
                    return Err(value("a numeric feature has no embedding to share".into()));
                }
            }
            FeatureKind::Categorical => {}
        }
        if let Some(shared) = &feature.share_embedding {
            self.expect(shared, "share_embedding", "categorical", |k| {
                matches!(k, FeatureKind::Categorical)
            })?;
            if self
                .feature(shared)
                .and_then(|f| f.share_embedding.as_ref())
                .is_some()
            {
                return Err(value(format!(
                    "shares `{shared}`, which itself shares another feature's embedding"
                )));
            }
        }
        Ok(())
    }

    fn expect(
        &self,
        name: &str,
        role: &str,
        expected: &'static str,
        ok: impl Fn(&FeatureKind) -> bool,
    ) -> Result<&Feature, SchemaError> {
        self.feature(name)
            .filter(|f| ok(&f.kind))
            .ok_or_else(|| SchemaError::Role {
                role: role.to_owned(),
                name: name.to_owned(),
                expected,
            })
    }

    fn check_aligned(
        &self,
        role: &'static str,
        names: &[String],
        sequence: bool,
        optional: bool,
    ) -> Result<(), SchemaError> {
        if names.is_empty() && optional {
            return Ok(());
        }
        if names.len() != self.target.len() {
            return Err(SchemaError::Alignment {
                role,
                found: names.len(),
                expected: self.target.len(),
            });
        }
        let mut lengths = names.iter().filter_map(|n| match self.feature(n)?.kind {
            FeatureKind::Sequence { max_len, .. } => Some(max_len),
            _ => None,
        });
        if let Some(first) = lengths.next()
            && lengths.any(|l| l != first)
        {
            return Err(SchemaError::Value {
                name: names.join(", "),
                message: format!(
                    "the `{role}` fields are positions of one item: give them one `max_len`"
                ),
            });
        }
        for (name, target) in names.iter().zip(&self.target) {
            let expected = if sequence { "sequence" } else { "categorical" };
            let feature = self.expect(name, role, expected, |k| {
                matches!(k, FeatureKind::Sequence { .. }) == sequence
                    && !matches!(k, FeatureKind::Numeric { .. })
            })?;
            let target_vocabulary = self
                .feature(target)
                .map_or(target.as_str(), |f| self.vocabulary_of(f));
            if self.vocabulary_of(feature) != target_vocabulary {
                return Err(SchemaError::Unshared {
                    name: name.clone(),
                    target: target_vocabulary.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Schema {
    /// The schema of the exposure layout both built-in datasets write (`ctr::exposure`): items
    /// as (`item_id`, `item_cat`), the trigger's and the histories' fields sharing their
    /// embeddings, `user_id` and `scenario` as context, plus `context` (more categorical
    /// columns, e.g. `MovieLens`' `age`, `gender`, `occupation`). `negative` adds the
    /// exposed-but-not-clicked history (`neg_item_id`, `neg_cat`).
    #[must_use]
    pub fn exposures(context: &[&str], negative: bool, max_len: usize) -> Self {
        let categorical = |name: &str, shared: Option<&str>| Feature {
            name: name.to_owned(),
            kind: FeatureKind::Categorical,
            share_embedding: shared.map(str::to_owned),
        };
        let sequence = |name: &str, shared: &str| Feature {
            name: name.to_owned(),
            kind: FeatureKind::Sequence {
                splitter: "^".to_owned(),
                max_len,
            },
            share_embedding: Some(shared.to_owned()),
        };
        let mut features = vec![
            categorical("user_id", None),
            categorical("item_id", None),
            categorical("item_cat", None),
            categorical("trigger_id", Some("item_id")),
            categorical("trigger_cat", Some("item_cat")),
            categorical("scenario", None),
            sequence("hist_item_id", "item_id"),
            sequence("hist_cat", "item_cat"),
        ];
        features.extend(context.iter().map(|c| categorical(c, None)));
        let names = |a: &str, b: &str| vec![a.to_owned(), b.to_owned()];
        let negative_sequence = if negative {
            features.push(sequence("neg_item_id", "item_id"));
            features.push(sequence("neg_cat", "item_cat"));
            names("neg_item_id", "neg_cat")
        } else {
            Vec::new()
        };
        Self {
            label: "click".to_owned(),
            user: "user_id".to_owned(),
            page: Some("page_id".to_owned()),
            features,
            target: names("item_id", "item_cat"),
            sequence: names("hist_item_id", "hist_cat"),
            trigger: names("trigger_id", "trigger_cat"),
            negative_sequence,
        }
    }
}

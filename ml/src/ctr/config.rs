//! The model's configuration (what a user writes under `[model]`) and the layout the schema
//! gives it (which vocabularies, how many fields in each role).

use std::collections::BTreeMap;

use fuselab_shared::ctr::encode::Preprocessor;
use fuselab_shared::ctr::schema::FeatureKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// DIN: target attention over the behaviour sequence, then the MLP.
    Din,
    /// DIN with a second attention whose query is the trigger item (DIHN-style).
    DinTrigger,
    /// DIN + trigger + CCN's collaborative module and its contrastive losses.
    Ccn,
}

impl ModelKind {
    /// Every model, in report order.
    pub const ALL: [Self; 3] = [Self::Din, Self::DinTrigger, Self::Ccn];

    /// The name used in configurations and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Din => "din",
            Self::DinTrigger => "din-trigger",
            Self::Ccn => "ccn",
        }
    }

    /// The label used in tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Din => "DIN",
            Self::DinTrigger => "DIN + trigger",
            Self::Ccn => "CCN",
        }
    }

    /// Whether the model reads the trigger.
    #[must_use]
    pub fn uses_trigger(self) -> bool {
        !matches!(self, Self::Din)
    }
}

/// How the collaborative clusters reach the CTR head (spec §3.3; both are fuselab's reading,
/// the paper's method section being unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Reading {
    /// A: a context-conditioned item representation `z = tanh(W(e ⊙ γ(c) + β(c)))` shaped by
    /// the contrastive losses; the head reads `z` and `z ⊙ mean(history)`.
    #[default]
    Film,
    /// B: interest and disinterest prototypes (mean `z` over the clicked history and over the
    /// exposed-but-not-clicked history); the head also reads both and the cosines to them.
    Prototypes,
}

/// CCN's collaborative module.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Collaborative {
    /// The reading of spec §3.3.
    pub reading: Reading,
    /// `λ_a`: weight of the attraction loss over co-click and co-non-click pairs.
    pub lambda_attract: f64,
    /// `λ_r`: weight of the repulsion loss over mono-click pairs.
    pub lambda_repel: f64,
    /// m: the repulsion's margin on the distance of unit-length representations (0..2].
    pub margin: f64,
    /// Probability of keeping each co-non-click pair (kept ones weigh 1/keep).
    pub co_non_click_keep: f64,
}

impl Default for Collaborative {
    fn default() -> Self {
        Self {
            reading: Reading::Film,
            lambda_attract: 0.1,
            lambda_repel: 0.1,
            margin: 1.0,
            co_non_click_keep: 1.0,
        }
    }
}

/// The architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtrConfig {
    /// Which model.
    pub model: ModelKind,
    /// Width of every field's embedding.
    pub embedding_dim: usize,
    /// Heads of the target attentions; must divide `embedding_dim × target fields`.
    pub heads: usize,
    /// Hidden widths of the MLP (DIN's: 200, 80), `ReLU` between, one logit out.
    pub mlp: Vec<usize>,
    /// CCN's module (read only when `model = "ccn"`).
    pub collaborative: Collaborative,
}

impl Default for CtrConfig {
    fn default() -> Self {
        Self {
            model: ModelKind::Ccn,
            embedding_dim: 16,
            heads: 2,
            mlp: vec![200, 80],
            collaborative: Collaborative::default(),
        }
    }
}

/// A configuration that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A value is out of range.
    #[error("`{key}`: {message}")]
    Value {
        /// The key.
        key: &'static str,
        /// What was expected.
        message: String,
    },
    /// The schema lacks what the model needs.
    #[error("model `{model}`: {message}")]
    Schema {
        /// The model.
        model: &'static str,
        /// What is missing.
        message: String,
    },
}

/// Widest embedding, MLP layer and most heads accepted (bounds the parameters a file can ask for).
pub const MAX_WIDTH: usize = 4096;

impl CtrConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`ConfigError::Value`] naming the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        let value = |key, message: String| Err(ConfigError::Value { key, message });
        if !(1..=MAX_WIDTH).contains(&self.embedding_dim) {
            return value("embedding_dim", format!("expected 1..={MAX_WIDTH}"));
        }
        if !(1..=64).contains(&self.heads) {
            return value("heads", "expected 1..=64".into());
        }
        if self.mlp.len() > 8 || self.mlp.iter().any(|w| !(1..=MAX_WIDTH).contains(w)) {
            return value(
                "mlp",
                format!("expected at most 8 widths in 1..={MAX_WIDTH}"),
            );
        }
        let c = &self.collaborative;
        for (key, v) in [
            ("collaborative.lambda_attract", c.lambda_attract),
            ("collaborative.lambda_repel", c.lambda_repel),
        ] {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return value(key, format!("{v}: expected 0..=100"));
            }
        }
        if !(c.margin > 0.0 && c.margin <= 2.0) {
            return value(
                "collaborative.margin",
                format!("{}: expected (0, 2]", c.margin),
            );
        }
        if !(c.co_non_click_keep > 0.0 && c.co_non_click_keep <= 1.0) {
            return value(
                "collaborative.co_non_click_keep",
                format!("{}: expected (0, 1]", c.co_non_click_keep),
            );
        }
        Ok(())
    }
}

/// What the schema gives the model: vocabulary sizes and the features of each role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Ids per vocabulary (padding and out-of-vocabulary included).
    pub vocabularies: BTreeMap<String, usize>,
    /// The vocabulary of every categorical or sequence feature.
    pub vocabulary_of: BTreeMap<String, String>,
    /// Candidate item fields.
    pub target: Vec<String>,
    /// Behaviour sequence fields.
    pub sequence: Vec<String>,
    /// Trigger fields (empty: none).
    pub trigger: Vec<String>,
    /// Exposed-but-not-clicked sequence fields (empty: none).
    pub negative_sequence: Vec<String>,
    /// Categorical context features (user profile, scenario).
    pub context: Vec<String>,
    /// Numeric features.
    pub numeric: Vec<String>,
    /// The user column, when it is also a context feature.
    #[serde(default)]
    pub user: Option<String>,
}

impl Layout {
    /// The layout of a fitted preprocessor's schema.
    #[must_use]
    pub fn of(pre: &Preprocessor) -> Self {
        let schema = &pre.schema;
        let mut vocabulary_of = BTreeMap::new();
        let mut context = Vec::new();
        let mut numeric = Vec::new();
        for feature in &schema.features {
            match feature.kind {
                FeatureKind::Numeric { .. } => numeric.push(feature.name.clone()),
                _ => {
                    vocabulary_of.insert(
                        feature.name.clone(),
                        schema.vocabulary_of(feature).to_owned(),
                    );
                }
            }
        }
        for feature in schema.context() {
            if matches!(feature.kind, FeatureKind::Categorical) {
                context.push(feature.name.clone());
            }
        }
        let vocabularies = vocabulary_of
            .values()
            .map(|v| (v.clone(), pre.vocabulary_size(v)))
            .collect();
        Self {
            vocabularies,
            vocabulary_of,
            target: schema.target.clone(),
            sequence: schema.sequence.clone(),
            trigger: schema.trigger.clone(),
            negative_sequence: schema.negative_sequence.clone(),
            user: context.contains(&schema.user).then(|| schema.user.clone()),
            context,
            numeric,
        }
    }

    /// Context features CCN's `FiLM` reads: all but the user id.
    pub fn conditioning_context(&self) -> impl Iterator<Item = &String> {
        self.context
            .iter()
            .filter(move |f| Some(*f) != self.user.as_ref())
    }

    /// Checks that the schema has what `config`'s model reads.
    ///
    /// # Errors
    /// [`ConfigError::Schema`] naming what is missing.
    pub fn check(&self, config: &CtrConfig) -> Result<(), ConfigError> {
        let model = config.model.name();
        let missing = |message: &str| {
            Err(ConfigError::Schema {
                model,
                message: message.to_owned(),
            })
        };
        if self.sequence.is_empty() {
            return missing("the schema has no behaviour `sequence` fields");
        }
        if config.model.uses_trigger() && self.trigger.is_empty() {
            return missing("the schema has no `trigger` fields");
        }
        if config.model == ModelKind::Ccn
            && config.collaborative.reading == Reading::Prototypes
            && self.negative_sequence.is_empty()
        {
            return missing(
                "the prototypes reading needs `negative_sequence` fields (exposed, not clicked)",
            );
        }
        let width = self.item_width(config);
        if !width.is_multiple_of(config.heads) {
            return Err(ConfigError::Value {
                key: "heads",
                message: format!(
                    "{} heads do not divide the item width {width} (embedding_dim × {} target fields)",
                    config.heads,
                    self.target.len()
                ),
            });
        }
        Ok(())
    }

    /// Width of an item's representation: one embedding per target field.
    #[must_use]
    pub fn item_width(&self, config: &CtrConfig) -> usize {
        config.embedding_dim * self.target.len()
    }
}

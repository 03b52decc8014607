//! DIN, DIN + trigger and CCN as named parameters (`[rows, cols]` tensors, biases `[1, out]`),
//! so one optimiser, one checkpoint format and one gradient helper cover all three.
//!
//! With `e(·)` the concatenated field embeddings of an item (width D = `embedding_dim` × target
//! fields), `S` the behaviour sequence's item embeddings and `c` the context embeddings:
//!
//! - DIN: `h = [c, numeric, e_t, MHTA(e_t → S)]`, then the MLP (`ReLU`) to one logit.
//! - DIN + trigger: `h` also holds `e_g` and `MHTA(e_g → S)` (a second attention).
//! - CCN (fuselab's reading, spec §3.3 [D]): `γ = 1 + W_γ[c, e_g]`, `β = W_β[c, e_g]`,
//!   `z = tanh(W_φ(e ⊙ γ + β))`; the head also reads `z` and `z ⊙ mean(S)`; the prototypes
//!   reading adds `p⁺` (mean `z` over the clicked history), `p⁻` (over the exposed-but-not-clicked
//!   one) and the cosines of `z` to both. The contrastive losses act on `z / ‖z‖`.
//!
//! MHTA is multi-head scaled dot-product attention with the candidate as the only query; padded
//! positions get weight exactly 0, and a row without history gets a zero vector.

use std::collections::BTreeMap;

use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use fuselab_shared::rng::SplitMix64;

use super::batch::{Batch, SequenceBatch};
use super::config::{ConfigError, CtrConfig, Layout, ModelKind, Reading};
use crate::llm::model::normal_tensor;

/// A CTR model: its configuration, layout and parameters.
#[derive(Debug, Clone)]
pub struct CtrModel {
    /// The architecture.
    pub config: CtrConfig,
    /// What the schema gives it.
    pub layout: Layout,
    /// Parameters by name.
    pub params: BTreeMap<String, Tensor<2>>,
}

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Click logits, `[b]`.
    pub logits: Tensor<1>,
    /// CCN's unit-length representations, `[b, D]`.
    pub z: Option<Tensor<2>>,
}

const ATTENTIONS: [&str; 4] = ["q", "k", "v", "o"];

impl CtrModel {
    /// A freshly initialised model: embeddings N(0, 0.05²), weights N(0, 1/`fan_in`), biases 0.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration is out of range or the layout lacks what the
    /// model reads.
    pub fn init(
        config: &CtrConfig,
        layout: &Layout,
        device: &Device,
        seed: u64,
    ) -> Result<Self, ConfigError> {
        config.check()?;
        layout.check(config)?;
        let mut rng = SplitMix64(seed);
        let mut params = BTreeMap::new();
        let d = config.embedding_dim;
        for (name, &size) in &layout.vocabularies {
            params.insert(
                format!("embedding.{name}"),
                normal_tensor(&mut rng, [size, d], 0.05, device),
            );
        }
        let width = layout.item_width(config);
        let mut linear = |name: String, inputs: usize, outputs: usize, rng: &mut SplitMix64| {
            let std = 1.0 / (inputs.max(1) as f64).sqrt();
            params.insert(
                format!("{name}.weight"),
                normal_tensor(rng, [inputs, outputs], std, device),
            );
            params.insert(format!("{name}.bias"), Tensor::zeros([1, outputs], device));
        };
        let attentions: &[&str] = if config.model.uses_trigger() {
            &["target", "trigger"]
        } else {
            &["target"]
        };
        for attention in attentions {
            for part in ATTENTIONS {
                linear(
                    format!("attention.{attention}.{part}"),
                    width,
                    width,
                    &mut rng,
                );
            }
        }
        if config.model == ModelKind::Ccn {
            let conditioning = layout.conditioning_context().count() * d + 2 * width;
            linear("film.gamma".into(), conditioning, width, &mut rng);
            linear("film.beta".into(), conditioning, width, &mut rng);
            linear("film.phi".into(), width, width, &mut rng);
        }
        let mut inputs = head_width(config, layout);
        for (i, &hidden) in config.mlp.iter().enumerate() {
            linear(format!("mlp.{i}"), inputs, hidden, &mut rng);
            inputs = hidden;
        }
        linear("mlp.out".into(), inputs, 1, &mut rng);
        Ok(Self {
            config: config.clone(),
            layout: layout.clone(),
            params,
        })
    }

    /// The device of the parameters.
    ///
    /// # Panics
    /// Never: a model always has its output layer.
    #[must_use]
    pub fn device(&self) -> Device {
        self.params["mlp.out.weight"].device()
    }

    /// Parameters in all.
    #[must_use]
    pub fn parameter_count(&self) -> usize {
        self.params
            .values()
            .map(|p| p.dims().iter().product::<usize>())
            .sum()
    }

    fn param(&self, name: &str) -> Tensor<2> {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("parameter `{name}` is created by init"))
            .clone()
    }

    fn linear(&self, name: &str, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.param(&format!("{name}.weight"))) + self.param(&format!("{name}.bias"))
    }

    fn embed(&self, feature: &str, ids: Tensor<1, burn::tensor::Int>) -> Tensor<2> {
        let vocabulary = &self.layout.vocabulary_of[feature];
        self.param(&format!("embedding.{vocabulary}"))
            .select(0, ids)
    }

    /// An item role's embedding, `[b, D]`.
    fn item(&self, fields: &[String], batch: &Batch) -> Tensor<2> {
        let parts = fields
            .iter()
            .map(|f| self.embed(f, batch.ids[f].clone()))
            .collect();
        Tensor::cat(parts, 1)
    }

    /// A sequence role's embeddings, `[b, L, D]`.
    fn sequence(&self, sequence: &SequenceBatch, rows: usize) -> Tensor<3> {
        let parts = sequence
            .ids
            .iter()
            .map(|(f, ids)| self.embed(f, ids.clone()))
            .collect();
        let flat: Tensor<2> = Tensor::cat(parts, 1); // [b·L, D]
        let width = flat.dims()[1];
        flat.reshape([rows, sequence.max_len, width])
    }

    /// Multi-head target attention of `query` `[b, D]` over `keys` `[b, L, D]` → `[b, D]`.
    fn attention(
        &self,
        name: &str,
        query: Tensor<2>,
        keys: &Tensor<3>,
        sequence: &SequenceBatch,
    ) -> Tensor<2> {
        let [rows, positions, width] = keys.dims();
        let heads = self.config.heads;
        let hd = width / heads;
        let project =
            |part: &str, x: Tensor<2>| self.linear(&format!("attention.{name}.{part}"), x);
        let q = project("q", query)
            .reshape([rows, 1, heads, hd])
            .swap_dims(1, 2); // [b, h, 1, hd]
        let flat = keys.clone().reshape([rows * positions, width]);
        let k = project("k", flat.clone())
            .reshape([rows, positions, heads, hd])
            .swap_dims(1, 2); // [b, h, L, hd]
        let v = project("v", flat)
            .reshape([rows, positions, heads, hd])
            .swap_dims(1, 2);
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt())
            + sequence.additive_mask.clone(); // [b, h, 1, L]
        let out = softmax(scores, 3).matmul(v).reshape([rows, width]); // [b, D]
        project("o", out) * sequence.present.clone()
    }

    /// Mean over the real positions of `values` `[b, L, D]` → `[b, D]`.
    fn masked_mean(values: Tensor<3>, sequence: &SequenceBatch) -> Tensor<2> {
        let [b, _, width] = values.dims();
        (values * sequence.mean_weights.clone().unsqueeze_dim::<3>(2))
            .sum_dim(1)
            .reshape([b, width])
    }

    /// Click logits (and CCN's representations) of a batch.
    ///
    /// # Shapes
    /// `batch` of b rows → logits `[b]`, z `[b, D]`.
    #[must_use]
    pub fn forward(&self, batch: &Batch) -> Forward {
        let b = batch.rows;
        let layout = &self.layout;
        let target = self.item(&layout.target, batch);
        let history = self.sequence(&batch.sequence, b);
        let mut head: Vec<Tensor<2>> = layout
            .context
            .iter()
            .map(|f| self.embed(f, batch.ids[f].clone()))
            .collect();
        head.extend(batch.numeric.clone());
        head.push(target.clone());
        head.push(self.attention("target", target.clone(), &history, &batch.sequence));
        let mut z_out = None;
        if self.config.model.uses_trigger() {
            let trigger = self.item(&layout.trigger, batch);
            head.push(trigger.clone());
            head.push(self.attention("trigger", trigger.clone(), &history, &batch.sequence));
            if self.config.model == ModelKind::Ccn {
                // The user as their behaviour (the mean of the history), not their id: an id
                // embedding in a multiplicative gate memorises the training users.
                let mut conditioning: Vec<Tensor<2>> = layout
                    .conditioning_context()
                    .map(|f| self.embed(f, batch.ids[f].clone()))
                    .collect();
                conditioning.push(Self::masked_mean(history.clone(), &batch.sequence));
                conditioning.push(trigger);
                let (features, z) =
                    self.collaborative(Tensor::cat(conditioning, 1), target, &history, batch);
                head.extend(features);
                z_out = Some(z);
            }
        }
        let mut x = Tensor::cat(head, 1);
        for i in 0..self.config.mlp.len() {
            x = relu(self.linear(&format!("mlp.{i}"), x));
        }
        let logits = self.linear("mlp.out", x).reshape([b]);
        Forward { logits, z: z_out }
    }

    /// CCN's features for the head and the unit-length `z` of the targets.
    fn collaborative(
        &self,
        conditioning: Tensor<2>,
        target: Tensor<2>,
        history: &Tensor<3>,
        batch: &Batch,
    ) -> (Vec<Tensor<2>>, Tensor<2>) {
        let gamma = self
            .linear("film.gamma", conditioning.clone())
            .add_scalar(1.0);
        let beta = self.linear("film.beta", conditioning);
        let shape = |e: Tensor<2>| {
            self.linear("film.phi", e * gamma.clone() + beta.clone())
                .tanh()
        };
        let z = shape(target);
        let mean_history = Self::masked_mean(history.clone(), &batch.sequence);
        let mut features = vec![z.clone(), z.clone() * mean_history];
        if self.config.collaborative.reading == Reading::Prototypes {
            let prototype = |items: &Tensor<3>, sequence: &SequenceBatch| {
                let [b, l, width] = items.dims();
                let per_item = self.shape_sequence(items, &gamma, &beta);
                Self::masked_mean(per_item.reshape([b, l, width]), sequence)
            };
            let interest = prototype(history, &batch.sequence);
            let disinterest = batch.negative.as_ref().map_or_else(
                || interest.zeros_like(),
                |negative| {
                    let items = self.sequence(negative, batch.rows);
                    prototype(&items, negative)
                },
            );
            features.push(cosine(z.clone(), interest.clone()));
            features.push(cosine(z.clone(), disinterest.clone()));
            features.push(interest);
            features.push(disinterest);
        }
        (features, unit(z))
    }

    /// `z` of every item of a sequence under the row's own γ and β, `[b·L, D]`.
    fn shape_sequence(&self, items: &Tensor<3>, gamma: &Tensor<2>, beta: &Tensor<2>) -> Tensor<2> {
        let [b, l, width] = items.dims();
        let conditioned = items.clone() * gamma.clone().unsqueeze_dim::<3>(1)
            + beta.clone().unsqueeze_dim::<3>(1);
        self.linear("film.phi", conditioned.reshape([b * l, width]))
            .tanh()
    }
}

/// Rows scaled to unit length (`ε` keeps a zero row finite).
fn unit(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).add_scalar(1e-12).sqrt();
    x / norm
}

/// Row-wise cosine, `[b, 1]`.
fn cosine(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    (unit(a) * unit(b)).sum_dim(1)
}

/// Inputs of the MLP.
fn head_width(config: &CtrConfig, layout: &Layout) -> usize {
    let width = layout.item_width(config);
    let mut inputs = layout.context.len() * config.embedding_dim + layout.numeric.len() + 2 * width;
    if config.model.uses_trigger() {
        inputs += 2 * width;
    }
    if config.model == ModelKind::Ccn {
        inputs += 2 * width;
        if config.collaborative.reading == Reading::Prototypes {
            inputs += 2 * width + 2;
        }
    }
    inputs
}

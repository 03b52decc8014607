//! A decoder-only Llama in burn: RMSNorm, rotary position embeddings in both dimension-pairing
//! layouts, grouped-query attention, SwiGLU (dense or a sparse mixture of experts), a tied or
//! untied head, an optional key/value cache, and `LoRA` adapters on any projection.
//!
//! The model is plain data: every weight is a `Tensor<2>` reachable by its Hugging Face name
//! through [`Llama::visit`] / [`Llama::visit_mut`], so trainers choose what is trainable by name
//! (`LoRA` factors, routers, everything) and turn exactly those into autodiff leaves for a step.
//! Frozen weights stay plain tensors and cost no autodiff bookkeeping.
//!
//! Projection weights are stored in burn's `[in, out]` layout (`y = x·W`); `PyTorch` and GGUF
//! store `[out, in]`, and the loaders transpose.

use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::{Device, Distribution, IndexingUpdateOp, Int, Tensor, TensorData};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Label of a position that carries no loss (prompt tokens, padding), as in `PyTorch`.
pub const IGNORE: i64 = -100;

/// Which dimensions rotary embeddings rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RopeStyle {
    /// Pairs `(2i, 2i+1)`: GGUF files (llama.cpp permutes q/k rows when converting).
    Interleaved,
    /// Pairs `(i, i + d/2)` ("rotate half"): Hugging Face checkpoints.
    #[default]
    HalfSplit,
}

/// The architecture; field names follow Hugging Face's `config.json`, so one deserialises
/// directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    /// Rotary base θ.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm ε.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// Whether the head reuses the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Rotary pairing layout.
    #[serde(default)]
    pub rope_style: RopeStyle,
    /// Longest sequence the model was trained for.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    2048
}

/// A configuration the model cannot be built from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// A dimension is zero or the heads do not divide as attention needs.
    #[error("invalid model configuration: {what}")]
    Config {
        /// What is inconsistent.
        what: String,
    },
    /// A weight is missing or has the wrong shape.
    #[error("weight `{name}`: {what}")]
    Weight {
        /// The Hugging Face name.
        name: String,
        /// What was expected.
        what: String,
    },
}

impl LlamaConfig {
    /// The test-sized model of the alignment spec: d 64, 2 layers, 4 heads over 2 key/value
    /// heads, FFN 128, untied head.
    #[must_use]
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
            tie_word_embeddings: false,
            rope_style: RopeStyle::HalfSplit,
            max_position_embeddings: 256,
        }
    }

    /// Width of one attention head.
    #[must_use]
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks that the dimensions fit together.
    ///
    /// # Errors
    /// [`ModelError::Config`] naming the first inconsistency.
    pub fn validate(&self) -> Result<(), ModelError> {
        let fail = |what: String| Err(ModelError::Config { what });
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
        ] {
            if value == 0 {
                return fail(format!("{name} is 0"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return fail(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return fail(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return fail(format!("head width {} is odd", self.head_dim()));
        }
        Ok(())
    }

    /// A freshly initialised model: weights `N(0, 0.02)` (Hugging Face's `initializer_range`),
    /// norms 1, drawn from `seed` on the host so every backend gets the same numbers.
    ///
    /// # Errors
    /// [`ModelError::Config`] when the configuration is inconsistent.
    pub fn init(&self, device: &Device, seed: u64) -> Result<Llama, ModelError> {
        self.validate()?;
        let mut rng = SplitMix64(seed);
        let d = self.hidden_size;
        let kv = self.num_key_value_heads * self.head_dim();
        let mut normal =
            |rows: usize, cols: usize| normal_tensor(&mut rng, [rows, cols], 0.02, device);
        let mut blocks = Vec::with_capacity(self.num_hidden_layers);
        for _ in 0..self.num_hidden_layers {
            blocks.push(Block {
                input_norm: ones(d, device),
                attention: Attention {
                    q: Linear::new(normal(d, d)),
                    k: Linear::new(normal(d, kv)),
                    v: Linear::new(normal(d, kv)),
                    o: Linear::new(normal(d, d)),
                },
                post_norm: ones(d, device),
                mlp: Mlp::Dense(SwiGlu {
                    gate: Linear::new(normal(d, self.intermediate_size)),
                    up: Linear::new(normal(d, self.intermediate_size)),
                    down: Linear::new(normal(self.intermediate_size, d)),
                }),
            });
        }
        let embed = normal(self.vocab_size, d);
        let lm_head = (!self.tie_word_embeddings).then(|| normal(d, self.vocab_size));
        Ok(Llama {
            config: self.clone(),
            embed,
            blocks,
            norm: ones(d, device),
            lm_head,
            added: None,
        })
    }
}

/// Values `N(0, std)` from `rng` (Box–Muller), as a tensor of `shape`.
pub(crate) fn normal_tensor(
    rng: &mut SplitMix64,
    shape: [usize; 2],
    std: f64,
    device: &Device,
) -> Tensor<2> {
    let count = shape[0] * shape[1];
    let mut values = Vec::with_capacity(count + 1);
    while values.len() < count {
        let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let radius = (-2.0 * (1.0 - u1).ln()).sqrt() * std;
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(count);
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn ones(width: usize, device: &Device) -> Tensor<2> {
    Tensor::ones([1, width], device)
}

/// A low-rank adapter `W + s·A·B` on a projection (PEFT's `W + s·BA` in burn's layout).
#[derive(Debug, Clone)]
pub struct Lora {
    /// Down projection `[in, r]` (PEFT's `lora_A` transposed).
    pub a: Tensor<2>,
    /// Up projection `[r, out]` (PEFT's `lora_B` transposed), zero at the start.
    pub b: Tensor<2>,
    /// `alpha / r`.
    pub scale: f64,
    /// Dropout on the adapter's input while training.
    pub dropout: f64,
    /// Whether `s·A·B` has been added into the weight (the adapter is then skipped).
    pub merged: bool,
}

/// A projection `y = x·W`, optionally with a `LoRA` adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// The adapter, when one is attached.
    pub lora: Option<Lora>,
}

impl Linear {
    /// A projection without adapter.
    #[must_use]
    pub fn new(weight: Tensor<2>) -> Self {
        Self { weight, lora: None }
    }

    /// # Shapes
    /// `x`: `[n, in]` → `[n, out]`.
    ///
    /// The adapter is applied as `s·(drop(x)·A)·B`: two thin products, never a full-size
    /// weight delta.
    #[must_use]
    pub fn forward(&self, x: Tensor<2>, train: bool) -> Tensor<2> {
        let y = x.clone().matmul(self.weight.clone());
        match &self.lora {
            Some(lora) if !lora.merged => {
                let input = if train && lora.dropout > 0.0 {
                    let keep = 1.0 - lora.dropout;
                    let mask = x.random_like(Distribution::Bernoulli(keep));
                    x * mask.div_scalar(keep)
                } else {
                    x
                };
                y + input
                    .matmul(lora.a.clone())
                    .matmul(lora.b.clone())
                    .mul_scalar(lora.scale)
            }
            _ => y,
        }
    }

    /// The adapter's full-size delta `s·A·B` (`[in, out]`), when there is one.
    #[must_use]
    pub fn delta(&self) -> Option<Tensor<2>> {
        self.lora
            .as_ref()
            .map(|l| l.a.clone().matmul(l.b.clone()).mul_scalar(l.scale))
    }

    /// Adds the adapter into the weight (`merge_and_unload` keeps the factors for `unmerge`).
    pub fn merge(&mut self) {
        if let (Some(delta), Some(lora)) = (self.delta(), self.lora.as_ref())
            && !lora.merged
        {
            self.weight = self.weight.clone() + delta;
            if let Some(lora) = self.lora.as_mut() {
                lora.merged = true;
            }
        }
    }

    /// Takes a merged adapter back out of the weight.
    pub fn unmerge(&mut self) {
        if let (Some(delta), Some(lora)) = (self.delta(), self.lora.as_ref())
            && lora.merged
        {
            self.weight = self.weight.clone() - delta;
            if let Some(lora) = self.lora.as_mut() {
                lora.merged = false;
            }
        }
    }
}

/// `down(silu(gate(x)) ⊙ up(x))`.
#[derive(Debug, Clone)]
pub struct SwiGlu {
    /// `[d, ffn]`.
    pub gate: Linear,
    /// `[d, ffn]`.
    pub up: Linear,
    /// `[ffn, d]`.
    pub down: Linear,
}

impl SwiGlu {
    /// # Shapes
    /// `x`: `[n, d]` → `[n, d]`.
    #[must_use]
    pub fn forward(&self, x: Tensor<2>, train: bool) -> Tensor<2> {
        let gate = silu(self.gate.forward(x.clone(), train));
        self.down.forward(gate * self.up.forward(x, train), train)
    }
}

/// H3Fusion's sparse mixture-of-experts MLP: a router per layer picks the top-k experts of
/// each token and mixes their outputs with the renormalised router probabilities.
#[derive(Debug, Clone)]
pub struct MoeMlp {
    /// Router `[d, E]` (no bias).
    pub router: Tensor<2>,
    /// The experts.
    pub experts: Vec<SwiGlu>,
    /// Experts used per token.
    pub top_k: usize,
    /// Multiplicative jitter `U(1−ε, 1+ε)` on the hidden state while training (0: off).
    pub jitter: f64,
}

impl MoeMlp {
    /// Returns the output and the router probabilities.
    ///
    /// Only the selected experts run, each on the rows routed to it. Like the reference, the
    /// jittered input (training only) also feeds the experts.
    ///
    /// # Shapes
    /// `x`: `[n, d]` → (`[n, d]`, probabilities `[n, E]`).
    ///
    /// # Panics
    /// Never: the probabilities are converted to `f32` before they are read.
    #[must_use]
    pub fn forward(&self, x: Tensor<2>, train: bool) -> (Tensor<2>, Tensor<2>) {
        let [n, d] = x.dims();
        let experts = self.experts.len();
        let x = if train && self.jitter > 0.0 {
            let noise = x.random_like(Distribution::Uniform(1.0 - self.jitter, 1.0 + self.jitter));
            x * noise
        } else {
            x
        };
        let probabilities = softmax(x.clone().matmul(self.router.clone()), 1); // [n, E]
        let host = super::values(probabilities.clone());
        let k = self.top_k.clamp(1, experts);
        let mut selected = vec![0.0_f32; n * experts];
        let mut rows: Vec<Vec<i64>> = vec![Vec::new(); experts];
        for (token, row) in host.chunks(experts).enumerate() {
            let mut order: Vec<usize> = (0..experts).collect();
            // Stable: ties go to the lower expert index, as torch.topk does on CPU.
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            for &e in &order[..k] {
                selected[token * experts + e] = 1.0;
                rows[e].push(i64::try_from(token).expect("token index fits i64"));
            }
        }
        let device = x.device();
        let mask = Tensor::<2>::from_data(TensorData::new(selected, [n, experts]), &device);
        let kept = probabilities.clone() * mask;
        let gates = kept.clone() / kept.sum_dim(1); // [n, E]
        let mut output = Tensor::<2>::zeros([n, d], &device);
        for (e, expert) in self.experts.iter().enumerate() {
            if rows[e].is_empty() {
                continue;
            }
            let count = rows[e].len();
            let index = Tensor::<1, Int>::from_data(
                TensorData::new(std::mem::take(&mut rows[e]), [count]),
                &device,
            );
            let routed = expert.forward(x.clone().select(0, index.clone()), train);
            let weight = gates.clone().narrow(1, e, 1).select(0, index.clone()); // [m, 1]
            output = output.select_assign(0, index, routed * weight, IndexingUpdateOp::Add);
        }
        (output, probabilities)
    }
}

/// A block's feed-forward part.
#[derive(Debug, Clone)]
// One per block, a handful per model: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Mlp {
    /// One SwiGLU.
    Dense(SwiGlu),
    /// H3Fusion's mixture of experts.
    Moe(MoeMlp),
}

/// Grouped-query self-attention.
#[derive(Debug, Clone)]
pub struct Attention {
    /// `[d, heads·hd]`.
    pub q: Linear,
    /// `[d, kv_heads·hd]`.
    pub k: Linear,
    /// `[d, kv_heads·hd]`.
    pub v: Linear,
    /// `[heads·hd, d]`.
    pub o: Linear,
}

/// One decoder block.
#[derive(Debug, Clone)]
pub struct Block {
    /// RMSNorm before attention, `[1, d]`.
    pub input_norm: Tensor<2>,
    /// Self-attention.
    pub attention: Attention,
    /// RMSNorm before the MLP, `[1, d]`.
    pub post_norm: Tensor<2>,
    /// Feed-forward.
    pub mlp: Mlp,
}

/// The whole model.
#[derive(Debug, Clone)]
pub struct Llama {
    /// Its architecture.
    pub config: LlamaConfig,
    /// Token embedding `[vocab, d]`.
    pub embed: Tensor<2>,
    /// Decoder blocks.
    pub blocks: Vec<Block>,
    /// Final RMSNorm `[1, d]`.
    pub norm: Tensor<2>,
    /// Untied head `[d, vocab]`; `None` when tied to the embedding.
    pub lm_head: Option<Tensor<2>>,
    /// Tokens added after loading, numbered from `config.vocab_size`.
    pub added: Option<AddedTokens>,
}

/// Tokens added to a loaded model (LLM-TOPLA-Summary's markers), kept apart from the frozen
/// vocabulary so they can be trained alone (PEFT's trainable tokens).
#[derive(Debug, Clone)]
pub struct AddedTokens {
    /// Their embedding rows `[n, d]` (`model.embed_tokens.added_tokens`).
    pub embed: Tensor<2>,
    /// Their head columns `[d, n]` for an untied head (`lm_head.added_tokens`).
    pub head: Option<Tensor<2>>,
}

impl AddedTokens {
    /// How many tokens were added.
    #[must_use]
    pub fn len(&self) -> usize {
        self.embed.dims()[0]
    }

    /// Whether none was.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keys and values of the positions seen so far, per layer.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    length: usize,
}

impl KvCache {
    /// Positions cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.length
    }

    /// Whether nothing is cached yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The cache of a batch of one, repeated `k` times: `k` continuations of one prompt share
    /// its prefill.
    ///
    /// # Shapes
    /// Keys and values `[1, kv_heads, positions, hd]` → `[k, kv_heads, positions, hd]`.
    #[must_use]
    pub fn repeat(&self, k: usize) -> Self {
        Self {
            layers: self
                .layers
                .iter()
                .map(|layer| {
                    layer.as_ref().map(|(keys, values)| {
                        (
                            keys.clone().repeat_dim(0, k),
                            values.clone().repeat_dim(0, k),
                        )
                    })
                })
                .collect(),
            length: self.length,
        }
    }
}

/// What [`Llama::forward`] computes.
#[derive(Debug, Clone)]
pub struct Forward {
    /// `[b, t, vocab]`, or `[b, 1, vocab]` for the last position only.
    pub logits: Tensor<3>,
    /// Router probabilities of each mixture-of-experts layer, `[b, t, E]`.
    pub router: Vec<Tensor<3>>,
}

/// What a forward pass computes beyond the basics.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    /// Dropout and jitter on.
    pub train: bool,
    /// Logits of the last position only (generation).
    pub last_only: bool,
}

/// Cosine and sine tables `[t, hd/2]` for positions `offset..offset+t`.
fn rope_tables(
    config: &LlamaConfig,
    offset: usize,
    t: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let half = config.head_dim() / 2;
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for position in offset..offset + t {
        for i in 0..half {
            let frequency = config
                .rope_theta
                .powf(-2.0 * i as f64 / config.head_dim() as f64);
            let angle = position as f64 * frequency;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [t, half]), device),
        Tensor::from_data(TensorData::new(sin, [t, half]), device),
    )
}

/// Rotates query or key heads.
///
/// # Shapes
/// `x`: `[b, h, t, hd]`, tables `[t, hd/2]` → `[b, h, t, hd]`.
#[allow(clippy::many_single_char_names)] // b, h, t, c, s: the formula's names
fn rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>, style: RopeStyle) -> Tensor<4> {
    let [b, h, t, hd] = x.dims();
    let half = hd / 2;
    match style {
        RopeStyle::Interleaved => {
            let pairs = x.reshape([b, h, t, half, 2]);
            let even = pairs.clone().narrow(4, 0, 1);
            let odd = pairs.narrow(4, 1, 1);
            let c = cos.clone().reshape([1, 1, t, half, 1]);
            let s = sin.clone().reshape([1, 1, t, half, 1]);
            let first = even.clone() * c.clone() - odd.clone() * s.clone();
            let second = even * s + odd * c;
            Tensor::cat(vec![first, second], 4).reshape([b, h, t, hd])
        }
        RopeStyle::HalfSplit => {
            let low = x.clone().narrow(3, 0, half);
            let high = x.narrow(3, half, half);
            let c = cos.clone().reshape([1, 1, t, half]);
            let s = sin.clone().reshape([1, 1, t, half]);
            let first = low.clone() * c.clone() - high.clone() * s.clone();
            let second = high * c + low * s;
            Tensor::cat(vec![first, second], 3)
        }
    }
}

/// `x / rms(x) · w`.
///
/// # Shapes
/// `x`: `[n, d]`, `weight`: `[1, d]` → `[n, d]`.
fn rms_norm(x: Tensor<2>, weight: &Tensor<2>, eps: f64) -> Tensor<2> {
    let scale = x
        .clone()
        .square()
        .mean_dim(1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    x * scale * weight.clone()
}

impl Llama {
    /// Calls `f` with the name and value of every weight, in a fixed order, adapters included
    /// (`…q_proj.lora_A.weight` is `A`, `…lora_B.weight` is `B`, in burn's layout).
    pub fn visit(&self, f: &mut dyn FnMut(&str, &Tensor<2>)) {
        let mut this = self.clone();
        this.visit_mut(&mut |name, t| f(name, t));
    }

    /// Like [`Llama::visit`], with mutable access.
    pub fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        fn linear(prefix: &str, linear: &mut Linear, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
            f(&format!("{prefix}.weight"), &mut linear.weight);
            if let Some(lora) = linear.lora.as_mut() {
                f(&format!("{prefix}.lora_A.weight"), &mut lora.a);
                f(&format!("{prefix}.lora_B.weight"), &mut lora.b);
            }
        }
        fn swiglu(prefix: &str, mlp: &mut SwiGlu, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
            linear(&format!("{prefix}.gate_proj"), &mut mlp.gate, f);
            linear(&format!("{prefix}.up_proj"), &mut mlp.up, f);
            linear(&format!("{prefix}.down_proj"), &mut mlp.down, f);
        }
        f("model.embed_tokens.weight", &mut self.embed);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            f(
                &format!("{p}.input_layernorm.weight"),
                &mut block.input_norm,
            );
            let a = &mut block.attention;
            linear(&format!("{p}.self_attn.q_proj"), &mut a.q, f);
            linear(&format!("{p}.self_attn.k_proj"), &mut a.k, f);
            linear(&format!("{p}.self_attn.v_proj"), &mut a.v, f);
            linear(&format!("{p}.self_attn.o_proj"), &mut a.o, f);
            f(
                &format!("{p}.post_attention_layernorm.weight"),
                &mut block.post_norm,
            );
            match &mut block.mlp {
                Mlp::Dense(mlp) => swiglu(&format!("{p}.mlp"), mlp, f),
                Mlp::Moe(moe) => {
                    f(
                        &format!("{p}.block_sparse_moe.gate.weight"),
                        &mut moe.router,
                    );
                    for (e, expert) in moe.experts.iter_mut().enumerate() {
                        swiglu(&format!("{p}.block_sparse_moe.experts.{e}"), expert, f);
                    }
                }
            }
        }
        f("model.norm.weight", &mut self.norm);
        if let Some(head) = self.lm_head.as_mut() {
            f("lm_head.weight", head);
        }
        if let Some(added) = self.added.as_mut() {
            f("model.embed_tokens.added_tokens", &mut added.embed);
            if let Some(head) = added.head.as_mut() {
                f("lm_head.added_tokens", head);
            }
        }
    }

    /// Every projection with its name (`model.layers.3.self_attn.q_proj`, …), for attaching,
    /// merging or reading adapters.
    pub fn linears_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear)) {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &mut block.attention;
            f(&format!("{p}.self_attn.q_proj"), &mut a.q);
            f(&format!("{p}.self_attn.k_proj"), &mut a.k);
            f(&format!("{p}.self_attn.v_proj"), &mut a.v);
            f(&format!("{p}.self_attn.o_proj"), &mut a.o);
            let mut mlp = |prefix: String, m: &mut SwiGlu| {
                f(&format!("{prefix}.gate_proj"), &mut m.gate);
                f(&format!("{prefix}.up_proj"), &mut m.up);
                f(&format!("{prefix}.down_proj"), &mut m.down);
            };
            match &mut block.mlp {
                Mlp::Dense(m) => mlp(format!("{p}.mlp"), m),
                Mlp::Moe(moe) => {
                    for (e, expert) in moe.experts.iter_mut().enumerate() {
                        mlp(format!("{p}.block_sparse_moe.experts.{e}"), expert);
                    }
                }
            }
        }
    }

    /// Parameters in the model (adapters included).
    #[must_use]
    pub fn parameter_count(&self) -> usize {
        let mut count = 0;
        self.visit(&mut |_, t| count += t.dims().iter().product::<usize>());
        count
    }

    /// The device the weights live on.
    #[must_use]
    pub fn device(&self) -> Device {
        self.embed.device()
    }

    /// Runs the model on token ids, continuing from `cache` when given (and extending it).
    ///
    /// # Shapes
    /// `ids`: `[b, t]` → logits `[b, t, vocab]` (`[b, 1, vocab]` with `last_only`).
    #[must_use]
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        cache: Option<&mut KvCache>,
        options: ForwardOptions,
    ) -> Forward {
        self.forward_perturbed(ids, cache, options, &[])
    }

    /// [`Llama::forward`] with `perturb[l]` added to the output of layer `l`'s attention
    /// (Vaccine's perturbation; layers beyond `perturb.len()` are left alone).
    ///
    /// # Shapes
    /// `perturb`: per layer `[b·t, d]`.
    #[must_use]
    pub fn forward_perturbed(
        &self,
        ids: Tensor<2, Int>,
        cache: Option<&mut KvCache>,
        options: ForwardOptions,
        perturb: &[Tensor<2>],
    ) -> Forward {
        let [b, t] = ids.dims();
        let d = self.config.hidden_size;
        let (x, router) = self.hidden(ids, cache, options.train, perturb);
        let x = if options.last_only {
            x.reshape([b, t, d]).narrow(1, t - 1, 1).reshape([b, d])
        } else {
            x
        };
        let rows = x.dims()[0];
        let logits = x.matmul(self.head());
        Forward {
            logits: logits.reshape([b, rows / b, self.vocab_size()]),
            router,
        }
    }

    /// Tokens the model reads and writes: the configuration's and the added ones.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size + self.added.as_ref().map_or(0, AddedTokens::len)
    }

    /// The embedding of every token, added ones last.
    ///
    /// # Shapes
    /// `[vocab_size(), d]`.
    fn embedding(&self) -> Tensor<2> {
        match &self.added {
            Some(added) => Tensor::cat(vec![self.embed.clone(), added.embed.clone()], 0),
            None => self.embed.clone(),
        }
    }

    /// The output projection of every token, added ones last.
    ///
    /// # Shapes
    /// `[d, vocab_size()]`.
    fn head(&self) -> Tensor<2> {
        match (&self.lm_head, &self.added) {
            (Some(head), None) => head.clone(),
            (Some(head), Some(added)) => {
                let extra = added
                    .head
                    .clone()
                    .unwrap_or_else(|| added.embed.clone().transpose());
                Tensor::cat(vec![head.clone(), extra], 1)
            }
            (None, _) => self.embedding().transpose(),
        }
    }

    /// Adds `count` tokens after the vocabulary. Their embeddings (and head columns) start at
    /// the mean of the existing ones plus a seeded uniform perturbation with `spread` times
    /// the per-dimension standard deviation (0.01 for a trained model, as close to Hugging
    /// Face's mean initialisation as keeps them distinct; 1 for a model trained from scratch);
    /// the logits of existing tokens are unchanged. Tokens added before are kept and the new
    /// ones follow them.
    pub fn add_tokens(&mut self, count: usize, seed: u64, spread: f32) {
        if count == 0 {
            return;
        }
        let device = self.device();
        let mut rng = fuselab_shared::rng::SplitMix64(seed);
        let mut fresh = |rows: &Tensor<2>, count: usize| -> Tensor<2> {
            // rows: [n, d] → [count, d]
            let [n, d] = rows.dims();
            let mean = rows.clone().mean_dim(0); // [1, d]
            let deviation = (rows.clone() - mean.clone())
                .powi_scalar(2)
                .sum_dim(0)
                .div_scalar(n.max(1) as f64)
                .sqrt(); // [1, d]
            let noise: Vec<f32> = (0..count * d)
                .map(|_| rng.between([-1.0, 1.0]) * spread * 3f32.sqrt())
                .collect();
            let noise = Tensor::<2>::from_data(TensorData::new(noise, [count, d]), &device);
            mean.repeat_dim(0, count) + noise * deviation.repeat_dim(0, count)
        };
        let embed = fresh(&self.embed, count);
        let head = self
            .lm_head
            .as_ref()
            .map(|head| fresh(&head.clone().transpose(), count).transpose());
        self.added = Some(match self.added.take() {
            None => AddedTokens { embed, head },
            Some(old) => AddedTokens {
                embed: Tensor::cat(vec![old.embed, embed], 0),
                head: match (old.head, head) {
                    (Some(a), Some(b)) => Some(Tensor::cat(vec![a, b], 1)),
                    _ => None,
                },
            },
        });
    }

    /// The model with its added tokens folded into the vocabulary (for generation, where
    /// joining the tables at every step would cost more than the step).
    #[must_use]
    pub fn with_tokens_folded(&self) -> Self {
        let mut out = self.clone();
        if let Some(added) = out.added.take() {
            out.config.vocab_size += added.len();
            out.embed = self.embedding();
            if self.lm_head.is_some() {
                out.lm_head = Some(self.head());
            }
        }
        out
    }

    /// The final-norm hidden states (what the head reads) and the router probabilities.
    ///
    /// # Shapes
    /// `ids`: `[b, t]` → `[b·t, d]`, router per mixture-of-experts layer `[b, t, E]`; `perturb`
    /// per layer `[b·t, d]`.
    #[must_use]
    pub fn hidden(
        &self,
        ids: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
        train: bool,
        perturb: &[Tensor<2>],
    ) -> (Tensor<2>, Vec<Tensor<3>>) {
        let config = &self.config;
        let [b, t] = ids.dims();
        let device = self.embed.device();
        let offset = cache.as_ref().map_or(0, |c| c.length);
        let (cos, sin) = rope_tables(config, offset, t, &device);
        let mask = (t > 1).then(|| causal_mask(offset, t, &device));
        let mut x = self.embedding().select(0, ids.reshape([b * t])); // [b·t, d]
        let mut router = Vec::new();
        for (layer, block) in self.blocks.iter().enumerate() {
            let normed = rms_norm(x.clone(), &block.input_norm, config.rms_norm_eps);
            let cached = cache.as_deref_mut().map(|c| {
                if c.layers.len() < self.blocks.len() {
                    c.layers.resize(self.blocks.len(), None);
                }
                &mut c.layers[layer]
            });
            let mut attended = self.attention(
                &block.attention,
                normed,
                [b, t],
                (&cos, &sin),
                mask.as_ref(),
                cached,
                train,
            );
            if let Some(p) = perturb.get(layer) {
                attended = attended + p.clone();
            }
            x = x + attended;
            let normed = rms_norm(x.clone(), &block.post_norm, config.rms_norm_eps);
            let mlp = match &block.mlp {
                Mlp::Dense(mlp) => mlp.forward(normed, train),
                Mlp::Moe(moe) => {
                    let (out, probabilities) = moe.forward(normed, train);
                    let experts = moe.experts.len();
                    router.push(probabilities.reshape([b, t, experts]));
                    out
                }
            };
            x = x + mlp;
        }
        if let Some(c) = cache {
            c.length += t;
        }
        (rms_norm(x, &self.norm, config.rms_norm_eps), router)
    }

    /// # Shapes
    /// `x`: `[b·t, d]` → `[b·t, d]`; cached keys/values `[b, kv_heads, positions, hd]`.
    #[allow(clippy::too_many_arguments, clippy::many_single_char_names)] // one attention step's pieces; q, k, v, b, t as in the papers
    fn attention(
        &self,
        attention: &Attention,
        x: Tensor<2>,
        [b, t]: [usize; 2],
        (cos, sin): (&Tensor<2>, &Tensor<2>),
        mask: Option<&Tensor<4>>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        train: bool,
    ) -> Tensor<2> {
        let config = &self.config;
        let heads = config.num_attention_heads;
        let kv_heads = config.num_key_value_heads;
        let hd = config.head_dim();
        let style = config.rope_style;
        let split = |y: Tensor<2>, h: usize| y.reshape([b, t, h, hd]).swap_dims(1, 2); // [b, h, t, hd]
        let q = rope(
            split(attention.q.forward(x.clone(), train), heads),
            cos,
            sin,
            style,
        );
        let mut k = rope(
            split(attention.k.forward(x.clone(), train), kv_heads),
            cos,
            sin,
            style,
        );
        let mut v = split(attention.v.forward(x, train), kv_heads);
        if let Some(slot) = cache {
            if let Some((past_k, past_v)) = slot.take() {
                k = Tensor::cat(vec![past_k, k], 2);
                v = Tensor::cat(vec![past_v, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let positions = k.dims()[2];
        let groups = heads / kv_heads;
        let repeat = |y: Tensor<4>| {
            if groups == 1 {
                y
            } else {
                y.reshape([b, kv_heads, 1, positions, hd])
                    .repeat_dim(2, groups)
                    .reshape([b, heads, positions, hd])
            }
        };
        let scores = q
            .matmul(repeat(k).swap_dims(2, 3))
            .div_scalar((hd as f64).sqrt()); // [b, h, t, positions]
        let scores = match mask {
            Some(mask) => scores + mask.clone(),
            None => scores,
        };
        let out = softmax(scores, 3).matmul(repeat(v)); // [b, h, t, hd]
        let out = out.swap_dims(1, 2).reshape([b * t, heads * hd]);
        attention.o.forward(out, train)
    }
}

/// Additive causal mask `[1, 1, t, offset + t]`: query `i` (at position `offset + i`) sees keys
/// `0..=offset + i`.
fn causal_mask(offset: usize, t: usize, device: &Device) -> Tensor<4> {
    let total = offset + t;
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > offset + i { -1e30 } else { 0.0 }))
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, t, total]), device)
}

/// Mean next-token cross-entropy over the positions whose label is not [`IGNORE`]; position
/// `p` predicts label `p + 1` (labels are aligned with the input ids, as in Hugging Face).
///
/// # Shapes
/// `logits`: `[b, t, vocab]`, `labels`: `b·t` values → a scalar `[1]`.
#[must_use]
pub fn lm_loss(logits: Tensor<3>, labels: &[i64]) -> Tensor<1> {
    let [b, t, vocab] = logits.dims();
    let device = logits.device();
    let mut targets = Vec::with_capacity(b * t);
    let mut weights = Vec::with_capacity(b * t);
    for row in 0..b {
        for p in 0..t {
            let next = if p + 1 < t {
                labels[row * t + p + 1]
            } else {
                IGNORE
            };
            let keep = next != IGNORE;
            targets.push(if keep { next } else { 0 });
            weights.push(f32::from(u8::from(keep)));
        }
    }
    let count = weights.iter().sum::<f32>().max(1.0);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b * t, 1]), &device);
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [b * t, 1]), &device);
    let picked = log_softmax(logits.reshape([b * t, vocab]), 1).gather(1, targets);
    (picked * weights).sum().div_scalar(-count)
}

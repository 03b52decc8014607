//! Autoregressive generation with a key/value cache: greedy, temperature, top-k and top-p
//! sampling, end-of-sequence tokens and stop sequences.

use burn::tensor::{Int, Tensor, TensorData};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::model::{ForwardOptions, KvCache, Llama};

/// How the next token is picked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1: all).
    pub top_p: f32,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Sampling {
    /// Always the most likely token.
    pub const GREEDY: Self = Self {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    };
}

/// How a stop sequence ends generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopRule {
    /// The generated ids end with the stop sequence's ids.
    #[default]
    Suffix,
    /// H3Fusion's reference code (quirk Q6): any id of the stop sequence among the last
    /// `len(stop)` generated ids.
    AnyToken,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    /// Most tokens to add.
    pub max_new_tokens: usize,
    /// The sampler.
    pub sampling: Sampling,
    /// Token ids that end generation (kept out of the output).
    pub eos: Vec<u32>,
    /// Token-id sequences that end generation (kept in the output; callers strip them).
    pub stop: Vec<Vec<u32>>,
    /// How stop sequences match.
    pub stop_rule: StopRule,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// An end-of-sequence token.
    Eos,
    /// A stop sequence.
    Stop,
    /// `max_new_tokens` or the model's context.
    Length,
}

/// A generated continuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The new token ids.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: Finish,
    /// For mixture-of-experts models: per layer, the mean router probability of each expert
    /// over the generated tokens (H3Fusion's routing diagnostic); empty otherwise.
    pub routing: Vec<Vec<f64>>,
}

/// Whether `generated` now ends a stop sequence.
#[must_use]
pub fn stops(generated: &[u32], stop: &[u32], rule: StopRule) -> bool {
    if stop.is_empty() {
        return false;
    }
    match rule {
        StopRule::Suffix => generated.ends_with(stop),
        StopRule::AnyToken => {
            let tail = &generated[generated.len().saturating_sub(stop.len())..];
            tail.iter().any(|id| stop.contains(id))
        }
    }
}

/// Picks a token from logits.
#[must_use]
pub fn sample(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i as u32)
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if sampling.top_k > 0 {
        order.truncate(sampling.top_k);
    }
    let top = f64::from(logits[order[0]]);
    let t = f64::from(sampling.temperature);
    let mut weights: Vec<f64> = order
        .iter()
        .map(|&i| ((f64::from(logits[i]) - top) / t).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    if sampling.top_p < 1.0 {
        let mut mass = 0.0;
        let mut keep = 0;
        for w in &weights {
            keep += 1;
            mass += w / total;
            if mass >= f64::from(sampling.top_p) {
                break;
            }
        }
        weights.truncate(keep);
        order.truncate(keep);
    }
    let total: f64 = weights.iter().sum();
    let mut draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (w, &i) in weights.iter().zip(&order) {
        if draw < *w {
            return i as u32;
        }
        draw -= w;
    }
    order[order.len() - 1] as u32
}

/// Generates a continuation of `prompt`, calling `on_token` with each new id as it comes.
///
/// # Panics
/// When the prompt is empty (a caller bug: every tokenizer fuselab uses gives at least one id).
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(u32),
) -> Generation {
    assert!(!prompt.is_empty(), "generation needs a prompt");
    let device = model.device();
    let mut rng = SplitMix64(options.sampling.seed);
    let mut cache = KvCache::default();
    let mut tokens = Vec::new();
    let mut routing_sum: Vec<Vec<f64>> = Vec::new();
    let mut routed = 0_usize;
    let mut input: Vec<i64> = prompt.iter().map(|&id| i64::from(id)).collect();
    let limit = model.config.max_position_embeddings;
    let mut finish = Finish::Length;
    while tokens.len() < options.max_new_tokens && cache.len() + input.len() <= limit {
        let count = input.len();
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(std::mem::take(&mut input), [1, count]),
            &device,
        );
        let out = model.forward(
            ids,
            Some(&mut cache),
            ForwardOptions {
                train: false,
                last_only: true,
            },
        );
        let logits = super::values(out.logits);
        let next = sample(&logits, &options.sampling, &mut rng);
        if !out.router.is_empty() && !tokens.is_empty() {
            accumulate_routing(&mut routing_sum, &out.router);
            routed += 1;
        }
        if options.eos.contains(&next) {
            finish = Finish::Eos;
            break;
        }
        tokens.push(next);
        on_token(next);
        // The router probabilities of a generated token are those computed when it is fed back.
        if options
            .stop
            .iter()
            .any(|stop| stops(&tokens, stop, options.stop_rule))
        {
            finish = Finish::Stop;
            break;
        }
        input = vec![i64::from(next)];
    }
    let fed_back = routed.max(1) as f64;
    Generation {
        tokens,
        finish,
        routing: routing_sum
            .into_iter()
            .map(|layer| layer.into_iter().map(|v| v / fed_back).collect())
            .collect(),
    }
}

/// `k` sampled continuations of `prompt` decoded as one batch after a shared prefill;
/// continuation `i` samples with seed `options.sampling.seed + i`. Each ends as [`generate`]'s
/// would (end-of-sequence, stop sequence or length); the batch runs until all have ended.
/// Router diagnostics are not collected.
///
/// # Panics
/// When the prompt is empty (a caller bug).
pub fn generate_samples(
    model: &Llama,
    prompt: &[u32],
    options: &GenerateOptions,
    k: usize,
) -> Vec<Generation> {
    assert!(!prompt.is_empty(), "generation needs a prompt");
    let device = model.device();
    let limit = model.config.max_position_embeddings;
    let vocab = model.vocab_size();
    let mut rngs: Vec<SplitMix64> = (0..k as u64)
        .map(|i| SplitMix64(options.sampling.seed.wrapping_add(i)))
        .collect();
    let mut outputs: Vec<Generation> = (0..k)
        .map(|_| Generation {
            tokens: Vec::new(),
            finish: Finish::Length,
            routing: Vec::new(),
        })
        .collect();
    let mut done = vec![false; k];
    let mut cache = KvCache::default();
    let ids: Vec<i64> = prompt.iter().map(|&id| i64::from(id)).collect();
    if k == 0 || options.max_new_tokens == 0 || prompt.len() > limit {
        return outputs;
    }
    let first = model.forward(
        Tensor::<2, Int>::from_data(TensorData::new(ids, [1, prompt.len()]), &device),
        Some(&mut cache),
        ForwardOptions {
            train: false,
            last_only: true,
        },
    );
    let first = super::values(first.logits);
    let mut logits: Vec<f32> = first.repeat(k);
    let mut cache = cache.repeat(k);
    let mut steps = 0;
    loop {
        let mut next = vec![0_i64; k];
        for i in 0..k {
            if done[i] {
                continue;
            }
            let token = sample(
                &logits[i * vocab..(i + 1) * vocab],
                &options.sampling,
                &mut rngs[i],
            );
            next[i] = i64::from(token);
            let out = &mut outputs[i];
            if options.eos.contains(&token) {
                out.finish = Finish::Eos;
                done[i] = true;
                continue;
            }
            out.tokens.push(token);
            if options
                .stop
                .iter()
                .any(|stop| stops(&out.tokens, stop, options.stop_rule))
            {
                out.finish = Finish::Stop;
                done[i] = true;
            } else if out.tokens.len() >= options.max_new_tokens {
                done[i] = true;
            }
        }
        steps += 1;
        if done.iter().all(|&d| d) || cache.len() + 1 > limit || steps >= options.max_new_tokens {
            break;
        }
        let out = model.forward(
            Tensor::<2, Int>::from_data(TensorData::new(next, [k, 1]), &device),
            Some(&mut cache),
            ForwardOptions {
                train: false,
                last_only: true,
            },
        );
        logits = super::values(out.logits);
    }
    outputs
}

/// Adds the last position's router probabilities of each layer to `sum`.
fn accumulate_routing(sum: &mut Vec<Vec<f64>>, router: &[Tensor<3>]) {
    for (layer, probabilities) in router.iter().enumerate() {
        let [_, t, experts] = probabilities.dims();
        let last = super::values(probabilities.clone().narrow(1, t - 1, 1));
        if sum.len() <= layer {
            sum.push(vec![0.0; experts]);
        }
        for (total, p) in sum[layer].iter_mut().zip(last) {
            *total += f64::from(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_and_reference_stop_rules() {
        assert!(stops(&[5, 7, 8], &[7, 8], StopRule::Suffix));
        assert!(!stops(&[7, 5, 8], &[7, 8], StopRule::Suffix));
        // The reference stops on a stray id of the stop sequence.
        assert!(stops(&[1, 2, 8], &[7, 8], StopRule::AnyToken));
        assert!(!stops(&[8, 1, 2], &[7, 8], StopRule::AnyToken));
        assert!(!stops(&[1], &[], StopRule::Suffix));
    }

    #[test]
    fn sampling_respects_top_k_top_p_and_greedy() {
        let logits = [0.0, 3.0, 2.9, -1.0];
        let mut rng = SplitMix64(1);
        assert_eq!(sample(&logits, &Sampling::GREEDY, &mut rng), 1);
        let top1 = Sampling {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
            seed: 0,
        };
        for _ in 0..20 {
            assert_eq!(sample(&logits, &top1, &mut rng), 1);
        }
        let nucleus = Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: 0,
        };
        // Token 1 holds ~50.7 % of the mass alone.
        for _ in 0..20 {
            assert_eq!(sample(&logits, &nucleus, &mut rng), 1);
        }
        let free = Sampling {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
            seed: 0,
        };
        let picks: Vec<u32> = (0..200).map(|_| sample(&logits, &free, &mut rng)).collect();
        assert!(picks.contains(&1) && picks.contains(&2));
        assert!(picks.iter().all(|&p| p == 1 || p == 2));
    }
}

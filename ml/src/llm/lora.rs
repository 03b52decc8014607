//! Attaching, merging and exchanging `LoRA` adapters (PEFT's conventions: `B` starts at zero,
//! `A` Kaiming-uniform, scale `alpha / r`, dropout on the adapter's input).

use std::collections::HashMap;

use burn::tensor::{Tensor, TensorData};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::model::{Linear, Llama, Lora, ModelError};
use super::range::{self, RangeError};
use crate::tensors::NamedTensors;

/// The projection names adapters can target.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Which projections get adapters and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r`.
    pub rank: usize,
    /// `alpha` (scale `alpha / r`).
    pub alpha: f64,
    /// Dropout on the adapter input while training.
    pub dropout: f64,
    /// Projection names (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
    /// `down_proj`), matched against the last part of each projection's name.
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// Checks the rank, scale, dropout and targets (`key`: the table's dotted path).
    ///
    /// # Errors
    /// The first value out of range, or a target that is not a projection.
    pub fn check(&self, key: &str) -> Result<(), RangeError> {
        range::count(format_args!("{key}.rank"), self.rank, 1..=range::MAX_RANK)?;
        range::positive(format_args!("{key}.alpha"), self.alpha, range::MAX_WEIGHT)?;
        range::below_one(format_args!("{key}.dropout"), self.dropout)?;
        let known = || format!("one or more of {}", PROJECTIONS.join(", "));
        if self.targets.is_empty() {
            return Err(RangeError {
                key: format!("{key}.targets"),
                value: "[]".to_owned(),
                expected: known(),
            });
        }
        if let Some(unknown) = self
            .targets
            .iter()
            .find(|t| !PROJECTIONS.contains(&t.as_str()))
        {
            return Err(RangeError {
                key: format!("{key}.targets"),
                value: format!("{unknown:?}"),
                expected: known(),
            });
        }
        Ok(())
    }

    /// H3Fusion's stage-1 adapters: r 8, alpha 4, dropout 0.1 on the MLP only.
    #[must_use]
    pub fn h3fusion_mlp() -> Self {
        Self {
            rank: 8,
            alpha: 4.0,
            dropout: 0.1,
            targets: ["gate_proj", "up_proj", "down_proj"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// `alpha / r`.
    #[must_use]
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether the projection called `name` is a target.
    #[must_use]
    pub fn targets(&self, name: &str) -> bool {
        let last = name.rsplit('.').next().unwrap_or(name);
        self.targets.iter().any(|t| t == last)
    }
}

/// Attaches fresh adapters to every target projection accepted by `also` (replacing any adapter
/// already there); returns the number attached.
///
/// # Errors
/// [`ModelError::Config`] when the rank is 0 or a target name is unknown.
pub fn attach(
    model: &mut Llama,
    config: &LoraConfig,
    seed: u64,
    also: &dyn Fn(&str) -> bool,
) -> Result<usize, ModelError> {
    if config.rank == 0 {
        return Err(ModelError::Config {
            what: "LoRA rank is 0".to_owned(),
        });
    }
    if let Some(unknown) = config
        .targets
        .iter()
        .find(|t| !PROJECTIONS.contains(&t.as_str()))
    {
        return Err(ModelError::Config {
            what: format!("unknown LoRA target `{unknown}`; expected one of {PROJECTIONS:?}"),
        });
    }
    let mut rng = SplitMix64(seed);
    let mut count = 0;
    model.linears_mut(&mut |name, linear| {
        if config.targets(name) && also(name) {
            linear.lora = Some(fresh(linear, config, &mut rng));
            count += 1;
        }
    });
    Ok(count)
}

fn fresh(linear: &Linear, config: &LoraConfig, rng: &mut SplitMix64) -> Lora {
    let [fan_in, out] = linear.weight.dims();
    let device = linear.weight.device();
    // kaiming_uniform_(a=√5) as PEFT calls it: bound = 1/√fan_in.
    let bound = 1.0 / (fan_in as f32).sqrt();
    let a: Vec<f32> = (0..fan_in * config.rank)
        .map(|_| rng.between([-bound, bound]))
        .collect();
    Lora {
        a: Tensor::from_data(TensorData::new(a, [fan_in, config.rank]), &device),
        b: Tensor::zeros([config.rank, out], &device),
        scale: config.scale(),
        dropout: config.dropout,
        merged: false,
    }
}

/// Adds every adapter into its weight.
pub fn merge(model: &mut Llama) {
    model.linears_mut(&mut |_, linear| linear.merge());
}

/// Takes every merged adapter back out.
pub fn unmerge(model: &mut Llama) {
    model.linears_mut(&mut |_, linear| linear.unmerge());
}

/// Merges every adapter and drops it (PEFT's `merge_and_unload`).
pub fn merge_and_unload(model: &mut Llama) {
    model.linears_mut(&mut |_, linear| {
        linear.merge();
        linear.lora = None;
    });
}

fn host(tensor: &Tensor<2>) -> Vec<f32> {
    super::values(tensor.clone())
}

fn transposed(values: &[f32], [rows, cols]: [usize; 2]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// The adapters in PEFT's `adapter_model.safetensors` layout: `base_model.model.{name}.lora_A.weight`
/// `[r, in]` and `…lora_B.weight` `[out, r]`.
#[must_use]
pub fn export_peft(model: &Llama) -> NamedTensors {
    let mut out = NamedTensors::new();
    let mut model = model.clone();
    model.linears_mut(&mut |name, linear| {
        if let Some(lora) = &linear.lora {
            let [fan_in, rank] = lora.a.dims();
            let [_, fan_out] = lora.b.dims();
            out.insert(
                format!("base_model.model.{name}.lora_A.weight"),
                (
                    vec![rank, fan_in],
                    transposed(&host(&lora.a), [fan_in, rank]),
                ),
            );
            out.insert(
                format!("base_model.model.{name}.lora_B.weight"),
                (
                    vec![fan_out, rank],
                    transposed(&host(&lora.b), [rank, fan_out]),
                ),
            );
        }
    });
    out
}

/// Attaches PEFT adapters (as [`export_peft`] writes them, or as PEFT saves them) with the given
/// scale and dropout; returns the number attached.
///
/// # Errors
/// [`ModelError::Weight`] when a factor is missing for a projection that has the other, or a
/// shape does not fit; adapters for projections the model lacks are an error too.
pub fn import_peft<S: std::hash::BuildHasher>(
    model: &mut Llama,
    tensors: &HashMap<String, (Vec<usize>, Vec<f32>), S>,
    scale: f64,
    dropout: f64,
) -> Result<usize, ModelError> {
    let mut unused: Vec<&String> = tensors.keys().collect();
    let mut result = Ok(0);
    let device = model.device();
    model.linears_mut(&mut |name, linear| {
        if result.is_err() {
            return;
        }
        let a_name = format!("base_model.model.{name}.lora_A.weight");
        let b_name = format!("base_model.model.{name}.lora_B.weight");
        let (a, b) = (tensors.get(&a_name), tensors.get(&b_name));
        unused.retain(|k| **k != a_name && **k != b_name);
        let [fan_in, fan_out] = linear.weight.dims();
        match (a, b) {
            (None, None) => {}
            (Some((a_shape, a)), Some((b_shape, b)))
                if a_shape.len() == 2
                    && a_shape[1] == fan_in
                    && b_shape.len() == 2
                    && b_shape[0] == fan_out
                    && b_shape[1] == a_shape[0] =>
            {
                let rank = a_shape[0];
                linear.lora = Some(Lora {
                    a: Tensor::from_data(
                        TensorData::new(transposed(a, [rank, fan_in]), [fan_in, rank]),
                        &device,
                    ),
                    b: Tensor::from_data(
                        TensorData::new(transposed(b, [fan_out, rank]), [rank, fan_out]),
                        &device,
                    ),
                    scale,
                    dropout,
                    merged: false,
                });
                if let Ok(count) = result.as_mut() {
                    *count += 1;
                }
            }
            _ => {
                result = Err(ModelError::Weight {
                    name: a_name,
                    what: format!(
                        "expected lora_A [r, {fan_in}] and lora_B [{fan_out}, r] together"
                    ),
                });
            }
        }
    });
    if let (Ok(_), Some(name)) = (&result, unused.first()) {
        return Err(ModelError::Weight {
            name: (*name).clone(),
            what: "no projection of this model has that name".to_owned(),
        });
    }
    result
}

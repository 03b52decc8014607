//! H3Fusion: three copies of a base model aligned separately (helpful, harmless, honest; `LoRA`
//! on the MLP only) are fused into one mixture-of-experts model whose router learns which
//! expert suits each instruction. Stage 2 (assembly), the gate labels, the reference quirks
//! and the evaluation with its routing heat-map live here; stages 1 and 3 are runs of
//! [`super::train::Trainer`].

use fuselab_shared::align::{
    AlpacaRecord, BeaverTailsRecord, PromptFormat, SyntheticJudge, Task, TaskScores,
    TruthfulQaRecord, judge::share,
};
use fuselab_shared::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::generate::{GenerateOptions, StopRule, generate};
use super::model::{Linear, Llama, Mlp, ModelError, MoeMlp, SwiGlu, normal_tensor};
use super::train::{Codec, GateLoss, SpecialIds};

/// The reference code's quirks (spec §A.6). Each is fixed by default; the switch reproduces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
// Independent switches named after the spec's quirks, read from the configuration file.
#[allow(clippy::struct_excessive_bools)]
pub struct Quirks {
    /// Q2: add `B·A` without the `LoRA` scale when building the experts.
    pub q2_merge_without_scale: bool,
    /// Q3: keep the router at its random initialisation (only `LoRA` factors train).
    pub q3_freeze_router: bool,
    /// Q4: gate labels from the reference's cumulative lengths (the first
    /// `min(n_helpful, n_honest)` honest examples get the harmless label).
    pub q4_reference_gate_labels: bool,
    /// Q5: the gating loss; the reference's double softmax is the default, as the published
    /// numbers used it.
    pub q5_gate_loss: GateLoss,
    /// Q6: stop when any id of the stop sequence appears among the last ones generated.
    pub q6_any_token_stop: bool,
}

impl Quirks {
    /// Every quirk as the reference code has it.
    #[must_use]
    pub fn reference() -> Self {
        Self {
            q2_merge_without_scale: true,
            q3_freeze_router: true,
            q4_reference_gate_labels: true,
            q5_gate_loss: GateLoss::Reference,
            q6_any_token_stop: true,
        }
    }

    /// The stop rule Q6 selects.
    #[must_use]
    pub fn stop_rule(self) -> StopRule {
        if self.q6_any_token_stop {
            StopRule::AnyToken
        } else {
            StopRule::Suffix
        }
    }
}

/// Stage 2: the base model with each block's MLP replaced by a mixture of the experts' MLPs.
/// Expert `e`'s projection is the base weight plus `s·A·B` of expert `e`'s adapter on it (the
/// adapters are paired with projections by name); attention, embeddings, norms and head are
/// the base's. Routers are drawn from `N(0, 0.02)` with `seed`.
///
/// # Errors
/// [`ModelError::Config`] when an expert's architecture differs from the base's or `top_k` is
/// out of range.
pub fn assemble(
    base: &Llama,
    experts: &[&Llama],
    top_k: usize,
    jitter: f64,
    quirks: Quirks,
    seed: u64,
) -> Result<Llama, ModelError> {
    if experts.is_empty() || top_k == 0 || top_k > experts.len() {
        return Err(ModelError::Config {
            what: format!(
                "top_k {top_k} with {} experts: expected 1 ≤ top_k ≤ experts",
                experts.len()
            ),
        });
    }
    if let Some(other) = experts.iter().find(|e| e.config != base.config) {
        return Err(ModelError::Config {
            what: format!(
                "an expert's architecture differs from the base's ({:?} vs {:?})",
                other.config, base.config
            ),
        });
    }
    let mut fused = base.clone();
    let device = base.device();
    let mut rng = SplitMix64(seed);
    for (layer, block) in fused.blocks.iter_mut().enumerate() {
        let Mlp::Dense(dense) = &block.mlp else {
            return Err(ModelError::Config {
                what: format!("layer {layer} of the base is already a mixture of experts"),
            });
        };
        let mut built = Vec::with_capacity(experts.len());
        for expert in experts {
            let Mlp::Dense(tuned) = &expert.blocks[layer].mlp else {
                return Err(ModelError::Config {
                    what: format!("layer {layer} of an expert is a mixture of experts"),
                });
            };
            built.push(SwiGlu {
                gate: expert_weight(&dense.gate, &tuned.gate, quirks),
                up: expert_weight(&dense.up, &tuned.up, quirks),
                down: expert_weight(&dense.down, &tuned.down, quirks),
            });
        }
        let router = normal_tensor(
            &mut rng,
            [base.config.hidden_size, experts.len()],
            0.02,
            &device,
        );
        block.mlp = Mlp::Moe(MoeMlp {
            router,
            experts: built,
            top_k,
            jitter,
        });
    }
    Ok(fused)
}

fn expert_weight(base: &Linear, tuned: &Linear, quirks: Quirks) -> Linear {
    let weight = match &tuned.lora {
        Some(lora) if !lora.merged => {
            let delta = lora.a.clone().matmul(lora.b.clone());
            let scale = if quirks.q2_merge_without_scale {
                1.0
            } else {
                lora.scale
            };
            base.weight.clone() + delta.mul_scalar(scale)
        }
        // A merged adapter is already in the tuned weight (which then differs from the base).
        _ => tuned.weight.clone(),
    };
    Linear::new(weight)
}

/// Gate labels of the "mix" set (helpful ++ harmless ++ honest).
#[must_use]
pub fn gate_labels(counts: [usize; 3], reference_quirk: bool) -> Vec<usize> {
    let [helpful, harmless, honest] = counts;
    let mut labels = vec![0; helpful];
    labels.extend(std::iter::repeat_n(1, harmless));
    let mislabelled = if reference_quirk {
        helpful.min(honest)
    } else {
        0
    };
    labels.extend((0..honest).map(|i| if i < mislabelled { 1 } else { 2 }));
    labels
}

/// The test sets of the three tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalSets {
    /// Instructions with their reference outputs.
    pub helpful: Vec<AlpacaRecord>,
    /// Harmful (and benign) prompts.
    pub harmless: Vec<BeaverTailsRecord>,
    /// Questions with correct and incorrect answers.
    pub honest: Vec<TruthfulQaRecord>,
}

/// One judged generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The task.
    pub task: Task,
    /// The instruction or question.
    pub prompt: String,
    /// The response, post-processed.
    pub output: String,
    /// The judge's verdict.
    pub passed: bool,
}

/// Scores and routing of one model on the three test sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Share of outputs each task's judge passes.
    pub scores: TaskScores,
    /// For a mixture of experts, per task: layer × expert mean router probability over the
    /// generated tokens (the heat-map); empty for dense models.
    pub routing: Vec<(Task, Vec<Vec<f64>>)>,
    /// Every generation.
    pub samples: Vec<Sample>,
}

/// Generates a response to every test prompt and judges it with the synthetic tasks' rules.
pub fn evaluate(
    model: &Llama,
    codec: &dyn Codec,
    format: &PromptFormat,
    special: SpecialIds,
    sets: &EvalSets,
    options: &GenerateOptions,
) -> Evaluation {
    let judge = SyntheticJudge;
    let mut samples = Vec::new();
    let mut routing = Vec::new();
    let run = |instruction: &str, input: &str| {
        let mut ids: Vec<u32> = special.bos.into_iter().collect();
        ids.extend(codec.encode(&format.prompt(instruction, input)));
        let generation = generate(model, &ids, options, |_| {});
        let text = codec.decode(&generation.tokens);
        (format.strip_response(&text), generation.routing)
    };
    for task in Task::ALL {
        let mut heat: Vec<Vec<f64>> = Vec::new();
        let mut count = 0.0;
        let mut add = |routing: Vec<Vec<f64>>| {
            if routing.is_empty() {
                return;
            }
            count += 1.0;
            if heat.is_empty() {
                heat = routing;
            } else {
                for (h, r) in heat.iter_mut().zip(routing) {
                    for (a, b) in h.iter_mut().zip(r) {
                        *a += b;
                    }
                }
            }
        };
        match task {
            Task::Helpful => {
                for record in &sets.helpful {
                    let (output, r) = run(&record.instruction, &record.input);
                    add(r);
                    let passed = judge.helpful(record, &output);
                    samples.push(sample(task, &record.instruction, output, passed));
                }
            }
            Task::Harmless => {
                for record in &sets.harmless {
                    let (output, r) = run(&record.prompt, "");
                    add(r);
                    let passed = judge.harmless(&record.prompt, &output);
                    samples.push(sample(task, &record.prompt, output, passed));
                }
            }
            Task::Honest => {
                for record in &sets.honest {
                    let (output, r) = run(&record.question, "");
                    add(r);
                    let passed = judge.honest(record, &output);
                    samples.push(sample(task, &record.question, output, passed));
                }
            }
        }
        if count > 0.0 {
            for row in &mut heat {
                for v in row.iter_mut() {
                    *v /= count;
                }
            }
            routing.push((task, heat));
        }
    }
    let score = |task: Task| share(samples.iter().filter(|s| s.task == task).map(|s| s.passed));
    Evaluation {
        scores: TaskScores {
            helpful: score(Task::Helpful),
            harmless: score(Task::Harmless),
            honest: score(Task::Honest),
        },
        routing,
        samples,
    }
}

fn sample(task: Task, prompt: &str, output: String, passed: bool) -> Sample {
    Sample {
        task,
        prompt: prompt.to_owned(),
        output,
        passed,
    }
}

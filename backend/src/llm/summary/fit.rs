//! The fusion model's training: epochs of the trainer's steps, a validation score after each
//! (by generation), early stopping on it, and the best epoch's weights really restored (kept as
//! values, not as references to the live weights). A checkpoint every few steps and at every
//! epoch's end holds everything a killed run needs to resume: weights, optimiser, the epochs'
//! scores and the best weights.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use fuselab_ml::llm::defence::Named;
use fuselab_ml::llm::model::Llama;
use fuselab_ml::llm::train::{StepReport, TrainState, Trainer, host};
use fuselab_ml::tensors::{NamedTensors, write_safetensors};
use serde::{Deserialize, Serialize};

use crate::align::observe;
use crate::align::run::{read_tensors, write_atomic};

/// The stage name of the fusion model's metrics lines.
pub const STAGE: &str = "topla-summary";

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// The task's selection score on val, by generation.
    pub val_score: f64,
}

/// Where the run stands: saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitState {
    /// The trainer's state.
    pub train: TrainState,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The best epoch so far (1-based).
    pub best_epoch: Option<usize>,
    /// Losses of the current epoch's steps so far.
    pub epoch_losses: Vec<f64>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the run is over.
    pub finished: bool,
}

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// Optimiser steps per epoch.
    pub steps_per_epoch: usize,
    /// Epochs without a better val score before stopping.
    pub patience: usize,
    /// Keep the last epoch's weights (the reference's bug) instead of the best's.
    pub keep_last: bool,
}

/// The trained model and how it got there.
#[derive(Debug)]
pub struct Fitted {
    /// The best epoch's model (the last epoch's under `keep_last`).
    pub model: Llama,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
    /// The best epoch.
    pub best_epoch: Option<usize>,
    /// The epoch whose weights `model` has.
    pub kept_epoch: usize,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Padded tokens per second over the steps run now (0 when resumed finished).
    pub tokens_per_second: f64,
}

const CHECKPOINT: &str = "checkpoint.safetensors";
const BEST: &str = "best.safetensors";
const STATE: &str = "fit.json";

/// Trains in `dir`, calling `evaluate` with the model after every epoch (higher is better),
/// resuming from a checkpoint already in `dir`.
///
/// # Errors
/// A checkpoint that cannot be written or read, a diverged loss, a failed evaluation, or
/// cancellation.
pub fn fit(
    dir: &Path,
    mut trainer: Trainer,
    options: FitOptions,
    evaluate: &mut dyn FnMut(&Llama) -> anyhow::Result<f64>,
) -> anyhow::Result<Fitted> {
    crate::align::ensure_out(dir)?;
    let (mut state, mut best) = start(dir, &mut trainer)?;
    let metrics_path = dir.join("metrics.jsonl");
    let mut metrics = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("cannot open {}", metrics_path.display()))?;
    let every = (trainer.state.total_steps / 20).max(1);
    let started = Instant::now();
    let mut tokens = 0_usize;
    while !state.finished {
        observe::check()?;
        let report = trainer.step();
        if !report.loss.is_finite() {
            bail!(
                "the loss became {} at step {}; lower the learning rate (the last good checkpoint is in {})",
                report.loss,
                report.step,
                dir.display()
            );
        }
        tokens += report.tokens;
        state.epoch_losses.push(report.loss);
        let elapsed = started.elapsed().as_secs_f64();
        log_step(
            &mut metrics,
            &metrics_path,
            &report,
            tokens as f64 / elapsed.max(1e-9),
            elapsed,
        )?;
        let epoch_done = report.step.is_multiple_of(options.steps_per_epoch) || trainer.finished();
        if epoch_done {
            let val_score = evaluate(&trainer.model)?;
            if state.end_epoch(val_score, trainer.finished(), options.patience) {
                best = trainer.trainable_weights();
                write_atomic(&dir.join(BEST), &write_safetensors(&host_all(&best)))?;
            }
        }
        if epoch_done || report.step.is_multiple_of(every) {
            state.train = trainer.state.clone();
            write_atomic(
                &dir.join(CHECKPOINT),
                &write_safetensors(&trainer.checkpoint()),
            )?;
            write_atomic(&dir.join(STATE), &serde_json::to_vec_pretty(&state)?)?;
            observe::checkpoint();
        }
    }
    let last = state.history.len();
    let (model, kept_epoch) = if options.keep_last {
        (trainer.model, last)
    } else {
        let mut model = trainer.model;
        model.visit_mut(&mut |name, param| {
            if let Some(w) = best.get(name) {
                *param = w.clone();
            }
        });
        (model, state.best_epoch.unwrap_or(last))
    };
    Ok(Fitted {
        model,
        history: state.history,
        best_epoch: state.best_epoch,
        kept_epoch,
        stopped_early: state.stopped_early,
        tokens_per_second: if tokens == 0 {
            0.0
        } else {
            tokens as f64 / started.elapsed().as_secs_f64().max(1e-9)
        },
    })
}

impl FitState {
    /// Records an epoch scored `val_score`; whether it is the best so far. Sets whether the
    /// run is over (every step done, or `patience` epochs without a better score).
    fn end_epoch(&mut self, val_score: f64, all_steps_done: bool, patience: usize) -> bool {
        let epoch = self.history.len() + 1;
        let train_loss =
            self.epoch_losses.iter().sum::<f64>() / self.epoch_losses.len().max(1) as f64;
        self.epoch_losses.clear();
        let improved = self
            .best_epoch
            .is_none_or(|b| val_score > self.history[b - 1].val_score);
        self.history.push(EpochRecord {
            epoch,
            train_loss,
            val_score,
        });
        if improved {
            self.best_epoch = Some(epoch);
        }
        tracing::info!(
            epoch,
            train_loss,
            val_score,
            best = self.best_epoch,
            "epoch"
        );
        let since_best = epoch - self.best_epoch.unwrap_or(epoch);
        self.stopped_early = since_best >= patience && !all_steps_done;
        self.finished = all_steps_done || self.stopped_early;
        improved
    }
}

/// A fresh state, or the one a checkpoint in `dir` holds (the trainer restored to it), and the
/// best weights so far.
fn start(dir: &Path, trainer: &mut Trainer) -> anyhow::Result<(FitState, Named)> {
    let path = dir.join(STATE);
    if !path.is_file() {
        let state = FitState {
            train: trainer.state.clone(),
            history: Vec::new(),
            best_epoch: None,
            epoch_losses: Vec::new(),
            stopped_early: false,
            finished: false,
        };
        return Ok((state, trainer.trainable_weights()));
    }
    let state: FitState = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a fuselab fit state", path.display()))?;
    trainer
        .restore(&read_tensors(&dir.join(CHECKPOINT))?, state.train.clone())
        .with_context(|| format!("cannot resume from {}", dir.display()))?;
    let best = if state.best_epoch.is_some() {
        named(&read_tensors(&dir.join(BEST))?, trainer)?
    } else {
        trainer.trainable_weights()
    };
    tracing::info!(
        step = trainer.state.step,
        epochs = state.history.len(),
        "resuming"
    );
    Ok((state, best))
}

fn host_all(weights: &Named) -> NamedTensors {
    weights
        .iter()
        .map(|(name, t)| (name.clone(), host(t)))
        .collect()
}

/// Saved best weights as the trainer's tensors, each checked against the live one's shape.
fn named(saved: &NamedTensors, trainer: &Trainer) -> anyhow::Result<Named> {
    let device = trainer.model.device();
    let live = trainer.trainable_weights();
    let mut out = Named::new();
    for (name, tensor) in &live {
        let Some((shape, values)) = saved.get(name) else {
            bail!("{BEST}: `{name}` is missing");
        };
        if shape.as_slice() != tensor.dims() {
            bail!(
                "{BEST}: `{name}` has shape {shape:?}, expected {:?}",
                tensor.dims()
            );
        }
        out.insert(
            name.clone(),
            burn::tensor::Tensor::from_data(
                burn::tensor::TensorData::new(values.clone(), [shape[0], shape[1]]),
                &device,
            ),
        );
    }
    Ok(out)
}

fn log_step(
    out: &mut std::fs::File,
    path: &Path,
    report: &StepReport,
    tokens_per_second: f64,
    elapsed_seconds: f64,
) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        stage: &'a str,
        #[serde(flatten)]
        step: &'a StepReport,
        tokens_per_second: f64,
        elapsed_seconds: f64,
    }
    let json = serde_json::to_string(&Line {
        stage: STAGE,
        step: report,
        tokens_per_second,
        elapsed_seconds,
    })?;
    writeln!(out, "{json}").with_context(|| format!("cannot write {}", path.display()))?;
    observe::metrics(&json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use fuselab_ml::llm::model::LlamaConfig;
    use fuselab_ml::llm::train::{Encoded, Objective, OptimConfig, TrainConfig, all_parameters};

    use super::*;

    fn trainer() -> Trainer {
        let device = fuselab_ml::open(fuselab_ml::Compute::Cpu).unwrap();
        let model = LlamaConfig::tiny(30).init(&device, 1).unwrap();
        let examples: Vec<Encoded> = (0..8)
            .map(|i| Encoded {
                ids: (0..6).map(|k| (i * 3 + k) % 29 + 1).collect(),
                labels: (0..6).map(|k| i64::from((i * 3 + k) % 29 + 1)).collect(),
                task: 0,
            })
            .collect();
        let config = TrainConfig {
            optim: OptimConfig::adamw(1e-2),
            batch_size: 4,
            epochs: 5,
            max_steps: 0,
            max_len: 16,
            pad_to_dataset: false,
            pad_in_loss: false,
            seed: 3,
        };
        Trainer::new(model, Objective::Lm, config, examples, all_parameters, 0).unwrap()
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fuselab-fit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn embed(model: &Llama) -> Vec<f32> {
        host(&model.embed).1
    }

    /// Scores peak at epoch 2; the run stops after `patience` more and keeps epoch 2's weights.
    #[test]
    fn restore_best_restores_the_best_epochs_weights() {
        let dir = scratch("best");
        let scores = [0.2, 0.9, 0.5, 0.1, 0.3];
        let mut seen = Vec::new();
        let mut evaluate = |model: &Llama| {
            seen.push(embed(model));
            Ok(scores[seen.len() - 1])
        };
        let options = FitOptions {
            steps_per_epoch: 2,
            patience: 2,
            keep_last: false,
        };
        let fitted = fit(&dir, trainer(), options, &mut evaluate).unwrap();
        assert_eq!(fitted.best_epoch, Some(2));
        assert_eq!(fitted.kept_epoch, 2);
        assert!(fitted.stopped_early);
        assert_eq!(fitted.history.len(), 4);
        assert_eq!(seen.len(), 4);
        assert_eq!(embed(&fitted.model), seen[1], "the best epoch's weights");
        assert_ne!(seen[1], seen[3], "training went on after the best epoch");
        // The reference's behaviour keeps the last epoch.
        let dir = scratch("last");
        let mut seen = Vec::new();
        let mut evaluate = |model: &Llama| {
            seen.push(embed(model));
            Ok(scores[seen.len() - 1])
        };
        let last = FitOptions {
            keep_last: true,
            ..options
        };
        let fitted = fit(&dir, trainer(), last, &mut evaluate).unwrap();
        assert_eq!(fitted.kept_epoch, 4);
        assert_eq!(embed(&fitted.model), seen[3]);
    }

    /// A finished run in the folder is read back, not trained again, with the same best weights.
    #[test]
    fn a_finished_run_resumes_to_the_same_model() {
        let dir = scratch("resume");
        let options = FitOptions {
            steps_per_epoch: 2,
            patience: 5,
            keep_last: false,
        };
        let scores = [0.1, 0.4, 0.2, 0.3, 0.35];
        let mut calls = 0;
        let mut evaluate = |_: &Llama| {
            calls += 1;
            Ok(scores[calls - 1])
        };
        let first = fit(&dir, trainer(), options, &mut evaluate).unwrap();
        assert_eq!(first.best_epoch, Some(2));
        let mut never = |_: &Llama| -> anyhow::Result<f64> { panic!("no epoch is left") };
        let again = fit(&dir, trainer(), options, &mut never).unwrap();
        assert_eq!(again.history, first.history);
        assert_eq!(embed(&again.model), embed(&first.model));
    }
}

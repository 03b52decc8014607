//! One training run in its folder: checkpoints after every epoch (`checkpoint.safetensors` and
//! `checkpoint.json`, written atomically, so a killed run resumes where it was), `metrics.jsonl`
//! (one line per epoch), and at the end the best epoch's model (`model.safetensors`,
//! `model.json`: configuration, layout and the fitted preprocessor, what `ctr predict` needs)
//! and `result.json`. A folder with a `result.json` is done and is not trained again.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::tensor::Device;
use fuselab_ml::ctr::train::{
    Control, EpochRecord, Hooks, StateMeta, TrainOptions, TrainState, evaluate,
};
use fuselab_ml::ctr::{CtrConfig, CtrModel, Layout, ModelKind};
use fuselab_ml::tensors::{read_safetensors, write_safetensors};
use fuselab_shared::ctr::encode::{Encoded, Preprocessor};
use fuselab_shared::ctr::metrics::{Metrics, auc};
use serde::{Deserialize, Serialize};

use crate::align::observe;
use crate::align::run::write_atomic;

/// The encoded splits of a configuration, shared by every run of a benchmark.
#[derive(Debug)]
pub struct Prepared {
    /// Fitted on the training split.
    pub preprocessor: Preprocessor,
    /// Training rows.
    pub train: Encoded,
    /// Validation rows.
    pub valid: Encoded,
    /// Test rows.
    pub test: Encoded,
    /// The true click probability of each test row, when the data has one.
    pub truth: Option<Vec<f64>>,
}

impl Prepared {
    /// The AUC of the true probabilities on the test split: the ceiling no model can pass.
    #[must_use]
    pub fn ceiling(&self) -> Option<f64> {
        auc(&self.test.labels, self.truth.as_ref()?).ok()
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The model.
    pub model: ModelKind,
    /// CCN's `λ_a` and `λ_r` (none for the baselines).
    pub lambda: Option<(f64, f64)>,
    /// The seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose parameters were kept (best validation AUC).
    pub best_epoch: usize,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Validation metrics of the kept epoch.
    pub valid: Metrics,
    /// Test metrics of the kept epoch.
    pub test: Metrics,
    /// Parameters.
    pub parameters: usize,
    /// Optimiser steps per second of wall time (validation included), this session's epochs.
    pub steps_per_second: f64,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
}

/// What `model.json` holds: enough to rebuild the model and encode new rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedModel {
    /// The architecture.
    pub config: CtrConfig,
    /// The schema's layout.
    pub layout: Layout,
    /// Vocabularies and statistics.
    pub preprocessor: Preprocessor,
}

/// Where a run stands in its grid, for progress lines.
#[derive(Debug, Clone)]
pub struct Place {
    /// The run's name.
    pub name: String,
    /// 1-based index in the grid.
    pub index: usize,
    /// Runs in the grid.
    pub runs: usize,
}

struct Checkpointing<'a> {
    folder: &'a Path,
    place: &'a Place,
    epochs: usize,
    started: Instant,
    steps: usize,
    failure: Option<anyhow::Error>,
}

impl Checkpointing<'_> {
    fn save(&self, state: &TrainState) -> anyhow::Result<()> {
        let (tensors, meta) = state.save();
        write_atomic(
            &self.folder.join("checkpoint.safetensors"),
            &write_safetensors(&tensors),
        )?;
        write_atomic(
            &self.folder.join("checkpoint.json"),
            &serde_json::to_vec_pretty(&meta)?,
        )?;
        let lines: String = state
            .history
            .iter()
            .map(|r| serde_json::to_string(r).map(|l| l + "\n"))
            .collect::<Result<_, _>>()?;
        write_atomic(&self.folder.join("metrics.jsonl"), lines.as_bytes())
    }
}

impl Hooks for Checkpointing<'_> {
    fn epoch(&mut self, record: &EpochRecord, state: &TrainState) -> Control {
        self.steps += record.steps;
        if let Err(e) = self.save(state) {
            self.failure = Some(e);
            return Control::Stop;
        }
        tracing::info!(
            epoch = record.epoch,
            bce = format!("{:.4}", record.loss.bce),
            valid_auc = format!("{:.4}", record.valid.auc),
            "epoch"
        );
        let progress = fuselab_shared::api::CtrProgress {
            run: self.place.name.clone(),
            run_index: self.place.index,
            runs: self.place.runs,
            epoch: record.epoch,
            epochs: self.epochs,
            bce: record.loss.bce,
            valid_auc: record.valid.auc,
            valid_gauc: record.valid.gauc.value,
        };
        if let Ok(line) = serde_json::to_string(&progress) {
            observe::metrics(&line);
        }
        observe::checkpoint();
        if observe::check().is_err() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

fn load_state(folder: &Path, model: CtrModel) -> anyhow::Result<Option<TrainState>> {
    let meta_path = folder.join("checkpoint.json");
    if !meta_path.exists() {
        return Ok(None);
    }
    let meta: StateMeta = serde_json::from_slice(&std::fs::read(&meta_path)?)
        .with_context(|| format!("cannot read {}", meta_path.display()))?;
    let tensors_path = folder.join("checkpoint.safetensors");
    let bytes = std::fs::read(&tensors_path)
        .with_context(|| format!("cannot read {}", tensors_path.display()))?;
    let tensors = read_safetensors(&bytes, &tensors_path.display().to_string())?;
    Ok(Some(TrainState::load(model, &tensors, meta)?))
}

/// Trains (or resumes, or reads back) the run in `folder`.
///
/// # Errors
/// A failed save, a cancelled run ([`observe::Cancelled`]), or data the model cannot use.
pub fn train(
    prepared: &Prepared,
    config: &CtrConfig,
    options: &TrainOptions,
    seed: u64,
    folder: &Path,
    place: &Place,
    device: &Device,
) -> anyhow::Result<RunResult> {
    let result_path = folder.join("result.json");
    if let Ok(bytes) = std::fs::read(&result_path)
        && let Ok(done) = serde_json::from_slice::<RunResult>(&bytes)
    {
        return Ok(done);
    }
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let layout = Layout::of(&prepared.preprocessor);
    let model = CtrModel::init(config, &layout, device, seed)?;
    let parameters = model.parameter_count();
    let mut state = match load_state(folder, model.clone())? {
        Some(state) => {
            tracing::info!(folder = %folder.display(), epochs = state.epochs_done(), "resuming");
            state
        }
        None => TrainState::new(model, seed),
    };
    let mut hooks = Checkpointing {
        folder,
        place,
        epochs: options.epochs,
        started: Instant::now(),
        steps: 0,
        failure: None,
    };
    let finished = state.fit(options, &prepared.train, &prepared.valid, &mut hooks)?;
    if let Some(e) = hooks.failure {
        return Err(e);
    }
    if !finished {
        return Err(observe::Cancelled.into());
    }
    let best = state.best_model();
    let best_epoch = state.best.as_ref().map_or(state.epochs_done(), |(e, _)| *e);
    let batch = 4096;
    let result = RunResult {
        model: config.model,
        lambda: (config.model == ModelKind::Ccn).then_some((
            config.collaborative.lambda_attract,
            config.collaborative.lambda_repel,
        )),
        seed,
        epochs: state.epochs_done(),
        best_epoch,
        stopped_early: state.stopped,
        valid: state.history[best_epoch - 1].valid,
        test: evaluate(&best, &prepared.test, batch)
            .map_err(|e| anyhow::anyhow!("test split: {e}"))?,
        parameters,
        steps_per_second: hooks.steps as f64 / hooks.started.elapsed().as_secs_f64().max(1e-9),
        history: state.history.clone(),
    };
    save_model(folder, &best, &prepared.preprocessor)?;
    write_atomic(&result_path, &serde_json::to_vec_pretty(&result)?)?;
    Ok(result)
}

fn save_model(folder: &Path, model: &CtrModel, preprocessor: &Preprocessor) -> anyhow::Result<()> {
    let mut tensors = fuselab_ml::tensors::NamedTensors::new();
    fuselab_ml::optim::put_named(&mut tensors, "", &model.params);
    write_atomic(
        &folder.join("model.safetensors"),
        &write_safetensors(&tensors),
    )?;
    let saved = SavedModel {
        config: model.config.clone(),
        layout: model.layout.clone(),
        preprocessor: preprocessor.clone(),
    };
    write_atomic(
        &folder.join("model.json"),
        &serde_json::to_vec_pretty(&saved)?,
    )
}

/// A saved model and its preprocessor, from a run folder.
///
/// # Errors
/// Missing or mismatched files.
pub fn load_model(folder: &Path, device: &Device) -> anyhow::Result<(CtrModel, Preprocessor)> {
    let json_path = folder.join("model.json");
    let saved: SavedModel =
        serde_json::from_slice(&std::fs::read(&json_path).with_context(|| {
            format!(
                "cannot read {} (is it a `ctr train` run folder?)",
                json_path.display()
            )
        })?)
        .with_context(|| {
            format!(
                "{} is not a fuselab CTR model description",
                json_path.display()
            )
        })?;
    let mut model = CtrModel::init(&saved.config, &saved.layout, device, 0)?;
    let path = folder.join("model.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let tensors = read_safetensors(&bytes, &path.display().to_string())?;
    model.params = fuselab_ml::optim::take_named(&tensors, "", &model.params, device)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((model, saved.preprocessor))
}

/// The name of one benchmark run (its folder under `runs/`).
#[must_use]
pub fn run_name(model: ModelKind, lambda: Option<f64>, seed: u64) -> String {
    match lambda {
        Some(l) => format!("{}-lambda{l}-seed{seed}", model.name()),
        None => format!("{}-seed{seed}", model.name()),
    }
}

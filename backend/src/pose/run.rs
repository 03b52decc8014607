//! One pose training run in its folder: checkpoints after every epoch
//! (`checkpoint.safetensors` and `checkpoint.json`, written atomically, so a killed run resumes
//! where it was), `metrics.jsonl` (one line per epoch), and at the end the best epoch's model
//! (`model.safetensors`, `model.json`) and `result.json` with the test scores overall, per
//! difficulty bucket and per joint. A folder with a `result.json` is done and is not trained
//! again.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::tensor::Device;
use fuselab_ml::pose::config::PoseConfig;
use fuselab_ml::pose::model::PoseModel;
use fuselab_ml::pose::predict::{predict_split, score_clips};
use fuselab_ml::pose::saved;
use fuselab_ml::pose::train::{
    ClipSource, Control, EpochRecord, Hooks, StateMeta, StepLoss, TrainOptions, TrainState,
};
use fuselab_ml::tensors::{read_safetensors, write_safetensors};
use fuselab_shared::pose::eval::Prediction;
use fuselab_shared::pose::score::Scores;
use fuselab_shared::pose::{Clip, ClipTags, Split, SyntheticConfig};
use serde::{Deserialize, Serialize};

use crate::align::observe;
use crate::align::run::write_atomic;

/// The difficulty buckets of the test split (a clip may be in several).
pub const BUCKETS: [&str; 5] = ["all", "blur", "occlusion", "fast", "clean"];

/// Whether a clip with `tags` is in `bucket`: `blur` has motion blur; `occlusion` has at least a
/// fifth of its labelled joints hidden or an occluder; `fast` moves at least 2.5 px per frame
/// on average; `clean` has none of blur, defocus, an occluder, a distractor, or more than a
/// tenth of its joints hidden.
pub fn in_bucket(bucket: &str, tags: &ClipTags) -> bool {
    match bucket {
        "all" => true,
        "blur" => tags.blur_length > 0.0,
        "occlusion" => tags.occluded_fraction >= 0.2 || tags.occluder,
        "fast" => tags.mean_speed >= 2.5,
        "clean" => {
            tags.blur_length == 0.0
                && tags.defocus_radius == 0.0
                && !tags.occluder
                && !tags.distractor
                && tags.occluded_fraction <= 0.1
        }
        _ => false,
    }
}

/// Scores of one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketScores {
    /// The bucket's name.
    pub bucket: String,
    /// Its scores (`None` when no test clip is in it).
    pub scores: Option<Scores>,
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run's name.
    pub name: String,
    /// The architecture.
    pub model: PoseConfig,
    /// The seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// The epoch whose parameters were kept (best validation AP).
    pub best_epoch: usize,
    /// Validation scores of the kept epoch.
    pub valid: Scores,
    /// Test scores per bucket, [`BUCKETS`] order (`all` first).
    pub test: Vec<BucketScores>,
    /// Parameters.
    pub parameters: usize,
    /// Seconds of training and validation, summed over every session of the run.
    pub train_seconds: f64,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
}

impl RunResult {
    /// The test scores of `bucket`.
    pub fn bucket(&self, bucket: &str) -> Option<&Scores> {
        self.test
            .iter()
            .find(|b| b.bucket == bucket)
            .and_then(|b| b.scores.as_ref())
    }
}

struct Checkpointing<'a> {
    folder: &'a Path,
    name: &'a str,
    epochs: usize,
    started: Instant,
    earlier_seconds: f64,
    failure: Option<anyhow::Error>,
}

impl Checkpointing<'_> {
    fn seconds(&self) -> f64 {
        self.earlier_seconds + self.started.elapsed().as_secs_f64()
    }

    fn save(&self, state: &TrainState) -> anyhow::Result<()> {
        let (tensors, meta) = state.save();
        write_atomic(
            &self.folder.join("checkpoint.safetensors"),
            &write_safetensors(&tensors),
        )?;
        let saved = Checkpoint {
            state: meta,
            seconds: self.seconds(),
        };
        write_atomic(
            &self.folder.join("checkpoint.json"),
            &serde_json::to_vec_pretty(&saved)?,
        )?;
        let lines: String = state
            .history
            .iter()
            .map(|r| serde_json::to_string(r).map(|l| l + "\n"))
            .collect::<Result<_, _>>()?;
        write_atomic(&self.folder.join("metrics.jsonl"), lines.as_bytes())
    }
}

/// `checkpoint.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    state: StateMeta,
    seconds: f64,
}

impl Hooks for Checkpointing<'_> {
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: &StepLoss) {
        if step.is_multiple_of(25) || step == steps {
            tracing::info!(
                run = self.name,
                epoch,
                step,
                steps,
                heatmap = format!("{:.3e}", loss.heatmap),
                "step"
            );
        }
    }

    fn epoch(&mut self, record: &EpochRecord, state: &TrainState) -> Control {
        if let Err(e) = self.save(state) {
            self.failure = Some(e);
            return Control::Stop;
        }
        tracing::info!(
            run = self.name,
            epoch = record.epoch,
            epochs = self.epochs,
            heatmap = format!("{:.3e}", record.loss.heatmap),
            valid_ap = format!("{:.4}", record.valid.ap),
            seconds = format!("{:.0}", self.seconds()),
            "epoch"
        );
        let line = fuselab_shared::api::PoseProgress {
            run: self.name.to_owned(),
            epoch: record.epoch,
            epochs: self.epochs,
            heatmap_loss: record.loss.heatmap,
            valid_ap: Some(record.valid.ap).filter(|ap| ap.is_finite()),
        };
        if let Ok(line) = serde_json::to_string(&line) {
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

fn load_state(folder: &Path, model: PoseModel) -> anyhow::Result<Option<(TrainState, f64)>> {
    let meta_path = folder.join("checkpoint.json");
    if !meta_path.exists() {
        return Ok(None);
    }
    let saved: Checkpoint = serde_json::from_slice(&std::fs::read(&meta_path)?)
        .with_context(|| format!("cannot read {}", meta_path.display()))?;
    let tensors_path = folder.join("checkpoint.safetensors");
    let bytes = std::fs::read(&tensors_path)
        .with_context(|| format!("cannot read {}", tensors_path.display()))?;
    let tensors = read_safetensors(&bytes, &tensors_path.display().to_string())?;
    let state = TrainState::load(model, &tensors, saved.state)
        .with_context(|| format!("{}", tensors_path.display()))?;
    Ok(Some((state, saved.seconds)))
}

/// The test split's clips and the model's predictions, `test_clips` of them (0: all).
///
/// # Errors
/// A clip that cannot be produced or does not suit the model.
pub fn predict_test(
    model: &PoseModel,
    data: &SyntheticConfig,
    test_clips: usize,
) -> anyhow::Result<Vec<(Clip, Prediction)>> {
    let available = data.count(Split::Test);
    let count = if test_clips == 0 {
        available
    } else {
        test_clips.min(available)
    };
    let indices: Vec<usize> = (0..count).collect();
    Ok(predict_split(model, data, Split::Test, &indices, 16)?)
}

/// Scores per bucket of test predictions.
pub fn bucket_scores(pairs: &[(Clip, Prediction)]) -> Vec<BucketScores> {
    BUCKETS
        .iter()
        .map(|&bucket| {
            let chosen: Vec<(Clip, Prediction)> = pairs
                .iter()
                .filter(|(clip, _)| in_bucket(bucket, &clip.tags))
                .cloned()
                .collect();
            BucketScores {
                bucket: bucket.to_owned(),
                scores: (!chosen.is_empty()).then(|| score_clips(&chosen)),
            }
        })
        .collect()
}

/// Trains (or resumes, or reads back) the run in `folder`.
///
/// # Errors
/// A failed save, a cancelled run ([`observe::Cancelled`]), or clips the model cannot use.
#[allow(clippy::too_many_arguments)] // the run's whole description, passed once
pub fn train(
    name: &str,
    data: &SyntheticConfig,
    test_clips: usize,
    config: &PoseConfig,
    options: &TrainOptions,
    seed: u64,
    folder: &Path,
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
    let model = PoseModel::init(config, device, seed)?;
    let parameters = model.parameter_count();
    let (mut state, earlier_seconds) = match load_state(folder, model.clone())? {
        Some((state, seconds)) => {
            tracing::info!(folder = %folder.display(), epochs = state.epochs_done(), "resuming");
            (state, seconds)
        }
        None => (TrainState::new(model, seed), 0.0),
    };
    let mut hooks = Checkpointing {
        folder,
        name,
        epochs: options.epochs,
        started: Instant::now(),
        earlier_seconds,
        failure: None,
    };
    let finished = state.fit(options, data, &mut hooks)?;
    if let Some(e) = hooks.failure {
        return Err(e);
    }
    if !finished {
        return Err(observe::Cancelled.into());
    }
    let best = state.best_model();
    let best_epoch = state.best.as_ref().map_or(state.epochs_done(), |(e, _)| *e);
    let pairs = predict_test(&best, data, test_clips)?;
    let result = RunResult {
        name: name.to_owned(),
        model: config.clone(),
        seed,
        epochs: state.epochs_done(),
        best_epoch,
        valid: state.history[best_epoch - 1].valid.clone(),
        test: bucket_scores(&pairs),
        parameters,
        train_seconds: hooks.seconds(),
        history: state.history.clone(),
    };
    save_model(folder, &best, [data.width, data.height])?;
    write_atomic(&result_path, &serde_json::to_vec_pretty(&result)?)?;
    Ok(result)
}

fn save_model(folder: &Path, model: &PoseModel, frame_size: [usize; 2]) -> anyhow::Result<()> {
    let (description, weights) = saved::to_bytes(model, frame_size)?;
    write_atomic(&folder.join(saved::WEIGHTS_FILE), &weights)?;
    write_atomic(&folder.join(saved::DESCRIPTION_FILE), &description)
}

/// A saved model from a run folder, and the frame size it was trained on.
///
/// # Errors
/// Missing or mismatched files.
pub fn load_model(folder: &Path, device: &Device) -> anyhow::Result<(PoseModel, [usize; 2])> {
    let read = |name: &str| {
        let path = folder.join(name);
        std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (is it a `pose train` run folder?)",
                path.display()
            )
        })
    };
    let (description, weights) = (read(saved::DESCRIPTION_FILE)?, read(saved::WEIGHTS_FILE)?);
    saved::from_bytes(&description, &weights, device)
        .map_err(|e| anyhow::anyhow!("{}: {}", folder.join(e.file).display(), e.what))
}

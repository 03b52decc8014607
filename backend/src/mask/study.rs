//! `fuselab mask study`: protection against image quality over a grid of training settings.
//! Every cell trains one mask per fold, each fold holding one of the person's photos out and
//! training on the next `photos` of the others (in file order, wrapping), then judges the
//! protected held-out photo ([`super::protection`]): verification evasion and the distance or
//! angle per model, face SSIM and PSNR. Finished runs are kept under `out/runs` and reused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use fuselab_ml::mask::{
    Augment, EpochReport, MAX_STEPS, MaskConfig, MaskState, Objective, StepReport, TrainingFace,
    Update,
};
use serde::{Deserialize, Serialize};

use super::protection::{Described, GALLERY_NOTE, JUDGES, Judges, Owner, gallery, judge_held_out};
use super::train::{TrainHooks, TrainOptions, train_mask};
use super::{args::StudyArgs, photos_in, training_face};
use crate::align::config::{Checked, read_config};
use crate::align::{check_settings, ensure_out, run::write_atomic};
use crate::face::{load_mobileface, load_stack};

/// Most runs (cells × folds) a grid may ask for.
const MAX_RUNS: usize = 10_000;

/// The grid file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyGrid {
    /// Seeds every mask's initialisation and batches.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Photos per step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Models trained against.
    #[serde(default = "default_models")]
    pub models: Vec<String>,
    /// Also run Chameleon's reference (50 epochs, ε 16, τ 0.03, signed steps, its objective)
    /// for each photo count, to compare against.
    #[serde(default)]
    pub reference: bool,
    /// The values to cross.
    pub grid: Axes,
}

fn default_seed() -> u64 {
    MaskConfig::default().seed
}
fn default_batch() -> usize {
    MaskConfig::default().batch
}
fn default_models() -> Vec<String> {
    vec!["dlib".to_owned(), "faceres".to_owned()]
}

/// Each axis of the grid; every combination is a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    /// Training steps.
    pub steps: Vec<usize>,
    /// L∞ bounds, 0..255 scale.
    pub epsilon: Vec<f32>,
    /// DSSIM budgets.
    pub tau: Vec<f32>,
    /// Objectives.
    #[serde(default = "default_objective")]
    pub objective: Vec<Objective>,
    /// Update rules.
    #[serde(default = "default_update")]
    pub update: Vec<Update>,
    /// Input-diversity probabilities.
    #[serde(default = "default_diversity")]
    pub diversity: Vec<f32>,
    /// Change per step, 0..255 scale.
    #[serde(default = "default_step")]
    pub step: Vec<f32>,
    /// Augmentation sets, as inline tables (`{}`: none; e.g. `{ rotate = 10.0, rescale =
    /// [0.7, 1.0] }`).
    #[serde(default = "default_augment")]
    pub augment: Vec<Augment>,
    /// Training photos per fold.
    pub photos: Vec<usize>,
}

fn default_augment() -> Vec<Augment> {
    vec![Augment::default()]
}

fn default_objective() -> Vec<Objective> {
    vec![Objective::Chameleon]
}
fn default_update() -> Vec<Update> {
    vec![Update::Sign]
}
fn default_diversity() -> Vec<f32> {
    vec![0.0]
}
fn default_step() -> Vec<f32> {
    vec![MaskConfig::default().step]
}

impl Checked for StudyGrid {
    fn check(&self) -> Result<(), String> {
        let a = &self.grid;
        let empty = [
            ("grid.steps", a.steps.is_empty()),
            ("grid.epsilon", a.epsilon.is_empty()),
            ("grid.tau", a.tau.is_empty()),
            ("grid.objective", a.objective.is_empty()),
            ("grid.update", a.update.is_empty()),
            ("grid.diversity", a.diversity.is_empty()),
            ("grid.step", a.step.is_empty()),
            ("grid.augment", a.augment.is_empty()),
            ("grid.photos", a.photos.is_empty()),
        ];
        if let Some((key, _)) = empty.iter().find(|(_, e)| *e) {
            return Err(format!("{key}: give at least one value"));
        }
        if let Some(s) = a.steps.iter().find(|s| !(1..=MAX_STEPS).contains(*s)) {
            return Err(format!("grid.steps: {s} is not from 1 to {MAX_STEPS}"));
        }
        if let Some(p) = a.photos.iter().find(|p| **p == 0) {
            return Err(format!(
                "grid.photos: {p}: a mask needs at least one training photo"
            ));
        }
        if self.models.is_empty() {
            return Err("models: name at least one of dlib, faceres".to_owned());
        }
        let cells = a.steps.len()
            * a.epsilon.len()
            * a.tau.len()
            * a.objective.len()
            * a.update.len()
            * a.diversity.len()
            * a.step.len()
            * a.augment.len()
            * a.photos.len();
        if cells > MAX_RUNS {
            return Err(format!(
                "the grid has {cells} cells, over the limit of {MAX_RUNS}"
            ));
        }
        // Every cell's MaskConfig is validated by the trainer; check them here, before any
        // training, so a bad value is named at once.
        for cell in self.cells() {
            cell.config
                .validate()
                .map_err(|e| format!("grid ({}): {e}", cell.name))?;
        }
        Ok(())
    }
}

/// One cell: a training configuration and its photo count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Its name in folders and tables.
    pub name: String,
    /// How masks are trained.
    pub config: MaskConfig,
    /// Training photos per fold.
    pub photos: usize,
    /// Chameleon's reference settings.
    pub reference: bool,
}

impl StudyGrid {
    /// Every combination of the axes, then the reference cells.
    #[must_use]
    pub fn cells(&self) -> Vec<Cell> {
        let a = &self.grid;
        let mut cells = Vec::new();
        for &photos in &a.photos {
            for base in self.configs() {
                let c = &base.0;
                cells.push(Cell {
                    name: format!(
                        "n{photos}-s{}-e{}-t{}-{}-{}-d{}-a{}-g{}",
                        c.steps.unwrap_or_default(),
                        c.epsilon,
                        c.tau,
                        c.objective.name(),
                        c.update.name(),
                        c.diversity,
                        c.step,
                        base.1
                    ),
                    config: base.0,
                    photos,
                    reference: false,
                });
            }
            if self.reference {
                cells.push(Cell {
                    name: format!("n{photos}-reference"),
                    config: MaskConfig {
                        seed: self.seed,
                        ..MaskConfig::default()
                    },
                    photos,
                    reference: true,
                });
            }
        }
        cells
    }

    /// Every combination of the training axes, with the index of its augmentation set.
    fn configs(&self) -> Vec<(MaskConfig, usize)> {
        let a = &self.grid;
        let base = MaskConfig {
            batch: self.batch,
            seed: self.seed,
            ..MaskConfig::default()
        };
        let mut configs = vec![(base, 0)];
        let mut cross = |set: &dyn Fn(&mut (MaskConfig, usize), usize), n: usize| {
            configs = configs
                .iter()
                .flat_map(|c| {
                    (0..n).map(move |k| {
                        let mut c = c.clone();
                        set(&mut c, k);
                        c
                    })
                })
                .collect();
        };
        cross(&|c, k| c.0.steps = Some(a.steps[k]), a.steps.len());
        cross(&|c, k| c.0.epsilon = a.epsilon[k], a.epsilon.len());
        cross(&|c, k| c.0.tau = a.tau[k], a.tau.len());
        cross(&|c, k| c.0.objective = a.objective[k], a.objective.len());
        cross(&|c, k| c.0.update = a.update[k], a.update.len());
        cross(&|c, k| c.0.diversity = a.diversity[k], a.diversity.len());
        cross(&|c, k| c.0.step = a.step[k], a.step.len());
        cross(
            &|c, k| {
                c.0.augment = a.augment[k].clone();
                c.1 = k;
            },
            a.augment.len(),
        );
        configs
    }
}

/// One model's outcome on one held-out photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutcome {
    /// The model.
    pub model: String,
    /// What it measures (`distance` or `angle`).
    pub measure: String,
    /// Its threshold.
    pub threshold: f32,
    /// The nearest clean photo of the owner, in that measure.
    pub nearest_owner: f32,
    /// Verification evaded.
    pub evades: bool,
    /// Identified among the gallery.
    pub identified: bool,
}

/// One fold's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The cell.
    pub cell: String,
    /// The held-out photo.
    pub held_out: String,
    /// The photos it trained on.
    pub trained_on: Vec<String>,
    /// Face SSIM of the protected held-out photo.
    pub ssim: Option<f64>,
    /// Face PSNR, dB.
    pub psnr: Option<f64>,
    /// Per model.
    pub models: Vec<ModelOutcome>,
    /// Training time, seconds.
    pub seconds: f64,
    /// The models that judged it (an outcome judged by fewer is judged again).
    #[serde(default)]
    pub judged_by: Vec<String>,
}

/// A fold's trained mask, kept so that a new judge does not cost a new training.
#[derive(Debug, Serialize, Deserialize)]
struct SavedMask {
    /// Training time, seconds.
    seconds: f64,
    /// The mask, 0..255 scale, as the key holds it.
    delta: Vec<f32>,
}

/// A cell's means over its folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellSummary {
    /// The cell.
    pub cell: Cell,
    /// Folds run.
    pub folds: usize,
    /// Mean face SSIM.
    pub ssim: f64,
    /// Mean face PSNR.
    pub psnr: f64,
    /// Per model: name, measure, share of folds evading verification, mean nearest measure.
    pub models: Vec<(String, String, f64, f64)>,
    /// Mean training seconds.
    pub seconds: f64,
}

/// No reports, no stopping: the study only wants the mask.
struct Quiet;

impl TrainHooks for Quiet {
    fn step(&mut self, _: &StepReport) {}
    fn epoch(&mut self, _: &EpochReport, _: f64, _: &MaskState) -> anyhow::Result<()> {
        Ok(())
    }
    fn stop(&self) -> bool {
        false
    }
}

/// The folds of `n` photos with `photos` training photos each: (held out, trained on).
fn folds(n: usize, photos: usize) -> Vec<(usize, Vec<usize>)> {
    (0..n)
        .map(|held| (held, (1..=photos).map(|k| (held + k) % n).collect()))
        .collect()
}

/// `fuselab mask study`.
///
/// # Errors
/// A bad grid, too few photos for a cell, a photo without a face, or a failed write.
pub(super) fn study(
    args: &StudyArgs,
    data_dir: &Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<()> {
    let grid: StudyGrid = read_config(&args.grid)?;
    let paths = photos_in(&args.photos)?;
    let most = grid.grid.photos.iter().copied().max().unwrap_or(0);
    if most >= paths.len() {
        anyhow::bail!(
            "{}: grid.photos asks for {most} training photo(s) per fold, but {} has {} photo(s): \
             each fold holds one out, so it needs at least {}",
            args.grid.display(),
            args.photos.display(),
            paths.len(),
            most + 1
        );
    }
    ensure_out(&args.out)?;
    let stack = load_stack(data_dir, device.clone())?;
    let mobileface = load_mobileface(data_dir, device)?;
    let judges = Judges {
        stack: &stack,
        mobileface: &mobileface,
    };
    let owner = Owner::read(judges, &paths)?;
    let training: Vec<TrainingFace> = paths
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.display().to_string();
            Ok(training_face(&stack.mtcnn, &stack.device, &bytes, &name)?.0)
        })
        .collect::<anyhow::Result<_>>()?;
    let others = match &args.others {
        Some(dir) => photos_in(dir)?,
        None => Vec::new(),
    };
    let others = gallery(judges, data_dir, &others)?;
    let cells = grid.cells();
    let runs_dir = args.out.join("runs");
    let mut outcomes = Vec::new();
    let total = cells.len() * paths.len();
    for cell in &cells {
        for (held, trained) in folds(paths.len(), cell.photos) {
            let context = Fold {
                judges,
                owner: &owner,
                training: &training,
                others: &others,
                models: &grid.models,
            };
            let outcome = run_fold(&context, cell, held, &trained, &runs_dir)?;
            eprintln!(
                "[{}/{total}] {} held out {}: SSIM {:.4}, {}",
                outcomes.len() + 1,
                cell.name,
                outcome.held_out,
                outcome.ssim.unwrap_or(f64::NAN),
                outcome
                    .models
                    .iter()
                    .map(|m| format!(
                        "{} {:.3}{}",
                        m.model,
                        m.nearest_owner,
                        if m.evades { " evades" } else { "" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            outcomes.push(outcome);
        }
    }
    let summaries = summarise(&cells, &outcomes);
    super::study_report::write(&args.out, &grid, &summaries, &outcomes, GALLERY_NOTE)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print!("{}", super::study_report::markdown(&summaries));
    }
    Ok(())
}

/// What every fold shares.
struct Fold<'a> {
    judges: Judges<'a>,
    owner: &'a Owner,
    training: &'a [TrainingFace],
    others: &'a [Described],
    models: &'a [String],
}

/// Trains one fold's mask and judges its held-out photo, or reads the finished run back.
fn run_fold(
    fold: &Fold<'_>,
    cell: &Cell,
    held: usize,
    trained: &[usize],
    runs_dir: &Path,
) -> anyhow::Result<RunOutcome> {
    let dir: PathBuf = runs_dir.join(format!("{}-h{held}", cell.name));
    let settings = serde_json::json!({
        "config": cell.config,
        "models": fold.models,
        "held_out": fold.owner.hashes[held],
        "trained_on": trained.iter().map(|&i| &fold.owner.hashes[i]).collect::<Vec<_>>(),
        "gallery": fold.others.iter().map(|o| &o.name).collect::<Vec<_>>(),
    });
    check_settings(&dir, &settings)?;
    let path = dir.join("outcome.json");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(done) = serde_json::from_slice::<RunOutcome>(&bytes)
        && done.judged_by == JUDGES
    {
        return Ok(done);
    }
    let saved_path = dir.join("mask.json");
    let saved = if let Some(saved) = std::fs::read(&saved_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<SavedMask>(&bytes).ok())
    {
        saved
    } else {
        let faces: Vec<TrainingFace> = trained.iter().map(|&i| fold.training[i].clone()).collect();
        let options = TrainOptions {
            config: cell.config.clone(),
            models: fold.models.to_vec(),
        };
        let started = Instant::now();
        let mask = train_mask(fold.judges.stack, &options, &faces, None, &mut Quiet)?
            .context("the training stopped before its end")?;
        let saved = SavedMask {
            seconds: started.elapsed().as_secs_f64(),
            delta: mask.delta,
        };
        write_atomic(&saved_path, &serde_json::to_vec(&saved)?)?;
        saved
    };
    let seconds = saved.seconds;
    let judged = judge_held_out(
        fold.judges,
        fold.owner,
        &[held],
        fold.others,
        &saved.delta,
        None,
    )?;
    let quality = judged.quality.first();
    let outcome = RunOutcome {
        cell: cell.name.clone(),
        held_out: fold.owner.faces[held].name.clone(),
        trained_on: trained
            .iter()
            .map(|&i| fold.owner.faces[i].name.clone())
            .collect(),
        ssim: quality.and_then(|q| q.ssim),
        psnr: quality.and_then(|q| q.psnr),
        models: judged
            .models
            .iter()
            .filter_map(|m| {
                let probe = m.probes.first()?;
                Some(ModelOutcome {
                    model: m.judge.model.clone(),
                    measure: match m.judge.measure {
                        super::judge::Measure::Distance => "distance".to_owned(),
                        super::judge::Measure::Angle => "angle".to_owned(),
                    },
                    threshold: m.judge.threshold,
                    nearest_owner: probe.nearest_owner,
                    evades: probe.evades,
                    identified: probe.identified,
                })
            })
            .collect(),
        seconds,
        judged_by: JUDGES.map(str::to_owned).to_vec(),
    };
    write_atomic(&path, &serde_json::to_vec_pretty(&outcome)?)?;
    Ok(outcome)
}

/// Each cell's means over its folds.
fn summarise(cells: &[Cell], outcomes: &[RunOutcome]) -> Vec<CellSummary> {
    cells
        .iter()
        .map(|cell| {
            let runs: Vec<&RunOutcome> = outcomes.iter().filter(|o| o.cell == cell.name).collect();
            #[allow(clippy::cast_precision_loss)]
            let mean = |values: Vec<f64>| {
                if values.is_empty() {
                    f64::NAN
                } else {
                    values.iter().sum::<f64>() / values.len() as f64
                }
            };
            let mut models = Vec::new();
            if let Some(first) = runs.first() {
                for (k, m) in first.models.iter().enumerate() {
                    let of_model: Vec<&ModelOutcome> =
                        runs.iter().filter_map(|r| r.models.get(k)).collect();
                    models.push((
                        m.model.clone(),
                        m.measure.clone(),
                        mean(
                            of_model
                                .iter()
                                .map(|o| f64::from(u8::from(o.evades)))
                                .collect(),
                        ),
                        mean(
                            of_model
                                .iter()
                                .map(|o| f64::from(o.nearest_owner))
                                .collect(),
                        ),
                    ));
                }
            }
            CellSummary {
                cell: cell.clone(),
                folds: runs.len(),
                ssim: mean(runs.iter().filter_map(|r| r.ssim).collect()),
                psnr: mean(runs.iter().filter_map(|r| r.psnr).collect()),
                models,
                seconds: mean(runs.iter().map(|r| r.seconds).collect()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fold_holds_one_photo_out_and_never_trains_on_it() {
        let f = folds(4, 2);
        assert_eq!(f.len(), 4);
        for (held, trained) in &f {
            assert_eq!(trained.len(), 2);
            assert!(!trained.contains(held));
        }
        assert_eq!(f[3], (3, vec![0, 1]));
    }

    #[test]
    fn a_grid_crosses_its_axes_and_names_bad_values() {
        let text = r#"
reference = true
[grid]
steps = [10, 20]
epsilon = [8.0, 16.0]
tau = [0.03]
objective = ["chameleon", "centre"]
augment = [{}, { rotate = 10.0, rescale = [0.7, 1.0] }]
photos = [2]
"#;
        let grid: StudyGrid = crate::align::config::parse_config(text, "grid.toml").unwrap();
        let cells = grid.cells();
        assert_eq!(cells.len(), 2 * 2 * 2 * 2 + 1);
        assert!(cells.last().unwrap().reference);
        assert_eq!(cells[0].config.steps, Some(10));
        assert_eq!(cells[0].config.augment, Augment::default());
        assert_eq!(cells[1].config.augment.rotate, Some(10.0));
        assert!(cells[1].name.ends_with("-g1"), "{}", cells[1].name);
        let names: std::collections::BTreeSet<&str> =
            cells.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), cells.len(), "cell names are unique");
        let bad = text.replace("epsilon = [8.0, 16.0]", "epsilon = [300.0]");
        let error = crate::align::config::parse_config::<StudyGrid>(&bad, "grid.toml").unwrap_err();
        assert!(error.to_string().contains("epsilon"), "{error}");
        let none = text.replace("photos = [2]", "photos = []");
        let error =
            crate::align::config::parse_config::<StudyGrid>(&none, "grid.toml").unwrap_err();
        assert!(error.to_string().contains("grid.photos"), "{error}");
        let unknown = text.replace("tau = [0.03]", "tau = [0.03]\nlr = [1]");
        assert!(crate::align::config::parse_config::<StudyGrid>(&unknown, "grid.toml").is_err());
    }
}

//! One training loop ([`train_mask`]) for `fuselab mask train` and the `mask.train` job, with
//! the CLI's checkpoint files beside the key and its summary.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use fuselab_ml::{
    face::FaceStack,
    mask::{
        EpochReport, FinalMask, MaskConfig, MaskState, MaskTrainer, Recompress, StepReport,
        TrainingFace,
    },
};
use fuselab_shared::mask::{
    MASK_SIDE,
    key::{Protection, SEALED_MAGIC, seal, unseal},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{
    args::{TrainArgs, passphrase},
    embedders, hex, key_bytes, photos_in, salt_and_nonce, training_face, write_private,
};
use crate::face::{PhotoError, load_stack};

/// What a checkpoint must match to be resumed: the settings and the photos' contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    config: MaskConfig,
    models: Vec<String>,
    photos: Vec<(String, String)>,
    state: MaskState,
}

const CHECKPOINT_FORMAT: &str = "fuselab.p3mask.checkpoint/v1";

fn checkpoint_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".checkpoint.json");
    out.with_file_name(name)
}

/// JPEG round trips for the training's augmentation, with the `image` crate's codec.
#[derive(Debug, Clone, Copy)]
pub struct JpegCodec;

impl Recompress for JpegCodec {
    fn jpeg(&self, face: &[u8], quality: u8) -> Vec<u8> {
        jpeg_round_trip(face, MASK_SIDE, MASK_SIDE, quality).unwrap_or_else(|_| face.to_vec())
    }
}

/// Encodes interleaved RGB as JPEG and decodes it again.
pub(super) fn jpeg_round_trip(
    pixels: &[u8],
    width: usize,
    height: usize,
    quality: u8,
) -> anyhow::Result<Vec<u8>> {
    let mut encoded = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, quality).encode(
        pixels,
        u32::try_from(width)?,
        u32::try_from(height)?,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(
        image::load_from_memory_with_format(&encoded, image::ImageFormat::Jpeg)?
            .into_rgb8()
            .into_raw(),
    )
}

/// What a mask is trained with besides the faces: typed, the same for the CLI and the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// ε, τ, epochs, batch, seed and augmentations.
    pub config: MaskConfig,
    /// The face models trained against (`dlib`, `faceres`).
    pub models: Vec<String>,
}

/// What the training loop tells its caller, and asks it.
pub trait TrainHooks {
    /// After each step.
    fn step(&mut self, report: &StepReport);
    /// After each epoch, with the state a later run resumes from.
    ///
    /// # Errors
    /// A checkpoint that cannot be saved.
    fn epoch(
        &mut self,
        report: &EpochReport,
        seconds: f64,
        state: &MaskState,
    ) -> anyhow::Result<()>;
    /// Asked between epochs: whether to stop (a cancelled job).
    fn stop(&self) -> bool;
}

/// Trains a mask on `faces` against `options.models` of `stack`, from `resumed` when given.
/// `None` when `hooks` asked to stop.
///
/// # Errors
/// An unknown model, settings the trainer refuses, a checkpoint that cannot be saved.
pub fn train_mask(
    stack: &FaceStack,
    options: &TrainOptions,
    faces: &[TrainingFace],
    resumed: Option<MaskState>,
    hooks: &mut dyn TrainHooks,
) -> anyhow::Result<Option<FinalMask>> {
    let models = embedders(stack, &options.models)?;
    let codec = JpegCodec;
    let mut trainer = MaskTrainer::new(
        options.config.clone(),
        models,
        faces,
        resumed,
        Some(&codec),
        &stack.device,
    )?;
    while !trainer.finished() {
        if hooks.stop() {
            return Ok(None);
        }
        let started = Instant::now();
        let report = trainer.epoch(&mut |step| hooks.step(step));
        hooks.epoch(&report, started.elapsed().as_secs_f64(), trainer.state())?;
    }
    Ok(Some(trainer.final_mask()))
}

/// `fuselab mask train`'s hooks: a line per epoch on stderr, a checkpoint file per epoch.
struct CliHooks<'a> {
    options: &'a TrainOptions,
    photos: &'a [(String, String)],
    checkpoint_file: &'a Path,
    passphrase: Option<&'a str>,
    epochs: Vec<(EpochReport, f64)>,
}

impl TrainHooks for CliHooks<'_> {
    fn step(&mut self, _: &StepReport) {}

    fn epoch(
        &mut self,
        report: &EpochReport,
        seconds: f64,
        state: &MaskState,
    ) -> anyhow::Result<()> {
        let angles: Vec<String> = self
            .options
            .models
            .iter()
            .zip(&report.angles)
            .map(|(m, a)| format!("{m} {a:.3}"))
            .collect();
        let at = match self.options.config.steps {
            Some(total) => format!("steps {}/{total}", report.steps_done),
            None => format!("epoch {}/{}", report.epoch, self.options.config.epochs),
        };
        eprintln!(
            "{at}: DSSIM {:.4}, angle (rad) {}, λ {}, {seconds:.1} s",
            report.dssim,
            angles.join(", "),
            report.lambda
        );
        let checkpoint = Checkpoint {
            format: CHECKPOINT_FORMAT.to_owned(),
            config: self.options.config.clone(),
            models: self.options.models.clone(),
            photos: self.photos.to_vec(),
            state: state.clone(),
        };
        write_private(
            self.checkpoint_file,
            &checkpoint_bytes(&checkpoint, self.passphrase)?,
        )?;
        self.epochs.push((report.clone(), seconds));
        Ok(())
    }

    fn stop(&self) -> bool {
        false
    }
}

/// `fuselab mask train`: the photos of a folder, a checkpoint beside the key after every
/// epoch (resumed when it matches), the key, a summary.
pub(super) fn train(args: &TrainArgs, data_dir: &Path, device: &Device) -> anyhow::Result<()> {
    let options = args.options();
    let passphrase = passphrase(&args.passphrase)?;
    let paths = photos_in(&args.photos)?;
    let stack = load_stack(data_dir, device.clone())?;
    embedders(&stack, &options.models)?;

    let mut faces = Vec::new();
    let mut photos = Vec::new();
    let mut missing = Vec::new();
    for path in &paths {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match training_face(
            &stack.mtcnn,
            &stack.device,
            &bytes,
            &path.display().to_string(),
        ) {
            Ok((face, detection)) => {
                tracing::info!(photo = %name, score = detection.score, "training face");
                faces.push(face);
                photos.push((name, hex(&Sha256::digest(&bytes))));
            }
            Err(error) => missing.push(error.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(PhotoError {
            path: args.photos.display().to_string(),
            what: format!(
                "every training photo must show your face; remove or replace these: {}",
                missing.join("; ")
            ),
        }
        .into());
    }

    let checkpoint_file = checkpoint_path(&args.out);
    let resumed = resume(&checkpoint_file, &options, &photos, passphrase.as_ref())?;
    let budget = match options.config.steps {
        Some(steps) => format!("{steps} step(s) of {} photo(s)", options.config.batch),
        None => format!("{} epoch(s)", options.config.epochs),
    };
    eprintln!(
        "training a mask on {} photo(s) against {} for {budget} ({} update, {} objective)",
        faces.len(),
        options.models.join(" + "),
        options.config.update.name(),
        options.config.objective.name(),
    );
    let mut hooks = CliHooks {
        options: &options,
        photos: &photos,
        checkpoint_file: &checkpoint_file,
        passphrase: passphrase.as_deref().map(String::as_str),
        epochs: Vec::new(),
    };
    let handed = train_mask(&stack, &options, &faces, resumed, &mut hooks)?
        .context("the training stopped before its last epoch")?;
    let epochs = hooks.epochs;
    let hashes: Vec<String> = photos.iter().map(|(_, hash)| hash.clone()).collect();
    let bytes = key_bytes(
        &options.config,
        &options.models,
        &hashes,
        handed.delta.clone(),
        passphrase.as_ref().map(|p| p.as_str()),
    )?;
    write_private(&args.out, &bytes)?;
    std::fs::remove_file(&checkpoint_file)
        .with_context(|| format!("cannot remove {}", checkpoint_file.display()))?;
    print_summary(
        args,
        &options,
        &photos,
        &epochs,
        &handed,
        passphrase.is_some(),
    )
}

/// What `fuselab mask train` prints at the end: the key's figures, as text or JSON.
fn print_summary(
    args: &TrainArgs,
    options: &TrainOptions,
    photos: &[(String, String)],
    epochs: &[(EpochReport, f64)],
    handed: &FinalMask,
    encrypted: bool,
) -> anyhow::Result<()> {
    let dssim = handed.dssim;
    let config = &options.config;
    if args.json {
        let summary = serde_json::json!({
            "key": args.out.display().to_string(),
            "encrypted": encrypted,
            "photos": photos.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "models": options.models,
            "config": config,
            "epochs": epochs.iter().map(|(r, s)| serde_json::json!({"report": r, "seconds": s})).collect::<Vec<_>>(),
            "dssim": dssim,
            "trained_dssim": handed.trained_dssim,
            "scale": handed.scale,
        });
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        println!(
            "wrote {}{}: mean DSSIM on the training faces {dssim:.4} (τ {})",
            args.out.display(),
            if encrypted { " (encrypted)" } else { "" },
            config.tau
        );
        if handed.scale < 1.0 {
            println!(
                "training left DSSIM at {:.4}, above 1.1τ: the mask was scaled by {:.3} to fit",
                handed.trained_dssim, handed.scale
            );
        }
        println!("keep it secret: whoever holds it can take the protection off your photos");
    }
    Ok(())
}

/// The state of a checkpoint file left by a killed run with the same settings and photos.
fn resume(
    checkpoint_file: &Path,
    options: &TrainOptions,
    photos: &[(String, String)],
    passphrase: Option<&Zeroizing<String>>,
) -> anyhow::Result<Option<MaskState>> {
    if !checkpoint_file.exists() {
        return Ok(None);
    }
    let bytes = Zeroizing::new(
        std::fs::read(checkpoint_file)
            .with_context(|| format!("cannot read {}", checkpoint_file.display()))?,
    );
    let checkpoint = read_checkpoint(&bytes, passphrase.map(|p| p.as_str()))
        .with_context(|| format!("{}", checkpoint_file.display()))?;
    if checkpoint.format != CHECKPOINT_FORMAT
        || checkpoint.config != options.config
        || checkpoint.models != options.models
        || checkpoint.photos != photos
    {
        bail!(
            "{} belongs to a run with other settings or photos; delete it to start afresh",
            checkpoint_file.display()
        );
    }
    eprintln!(
        "resuming from {} after epoch {}",
        checkpoint_file.display(),
        checkpoint.state.epoch
    );
    Ok(Some(checkpoint.state))
}

/// A checkpoint's bytes: JSON, sealed with the passphrase when the key will be encrypted (the
/// checkpoint holds the mask being trained, as secret as the key).
fn checkpoint_bytes(checkpoint: &Checkpoint, passphrase: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let json = Zeroizing::new(serde_json::to_vec(checkpoint)?);
    match passphrase {
        None => Ok(json.to_vec()),
        Some(passphrase) => {
            let (salt, nonce) = salt_and_nonce()?;
            Ok(seal(
                &json,
                &Protection {
                    passphrase,
                    salt,
                    nonce,
                },
            )?)
        }
    }
}

/// Reads a checkpoint written by [`checkpoint_bytes`]; a sealed one needs the passphrase.
fn read_checkpoint(bytes: &[u8], passphrase: Option<&str>) -> anyhow::Result<Checkpoint> {
    let json = if bytes.starts_with(SEALED_MAGIC) {
        let passphrase = passphrase.context(
            "the checkpoint is encrypted: give the key's passphrase (--passphrase-file) to resume",
        )?;
        unseal(bytes, passphrase).context("cannot decrypt the checkpoint")?
    } else {
        Zeroizing::new(bytes.to_vec())
    };
    serde_json::from_slice(&json).context("not a mask checkpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            format: CHECKPOINT_FORMAT.to_owned(),
            config: MaskConfig::default(),
            models: vec!["dlib".to_owned()],
            photos: vec![("me.jpg".to_owned(), "00".repeat(32))],
            state: MaskState {
                epoch: 3,
                delta: vec![1.5; 12],
                lambda: 0.5,
                rng: 7,
                steps: 3,
                moments: fuselab_ml::mask::Moments::default(),
            },
        }
    }

    #[test]
    fn a_checkpoint_is_sealed_with_the_passphrase_and_private() {
        let dir = std::env::temp_dir().join(format!("fuselab-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("me.p3m.checkpoint.json");
        let sealed = checkpoint_bytes(&checkpoint(), Some("pass")).unwrap();
        assert!(sealed.starts_with(SEALED_MAGIC));
        assert!(!sealed.windows(5).any(|w| w == b"delta"));
        write_private(&path, &sealed).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_checkpoint(&bytes, Some("pass")).unwrap(), checkpoint());
        assert!(read_checkpoint(&bytes, Some("wrong")).is_err());
        let error = read_checkpoint(&bytes, None).unwrap_err().to_string();
        assert!(error.contains("--passphrase-file"), "{error}");
        let plain = checkpoint_bytes(&checkpoint(), None).unwrap();
        assert_eq!(read_checkpoint(&plain, None).unwrap(), checkpoint());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

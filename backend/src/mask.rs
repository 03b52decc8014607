//! `fuselab mask train|apply|remove|verify`: Chameleon's P3-Mask from the command line. The
//! mask file is the user's key: it protects photos, and it removes the protection again.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use fuselab_ml::{
    face::{FaceEmbedder, FaceStack, RgbImage, mtcnn::Detection},
    mask::{Augment, EpochReport, MaskConfig, MaskState, MaskTrainer, Recompress, TrainingFace},
};
use fuselab_shared::mask::{
    FaceCanvas, MARGIN, MASK_SIDE, apply,
    key::{
        CropConvention, MaskHeader, MaskKey, Protection, SEALED_MAGIC, read_key, seal, unseal,
        write_key,
    },
    quality,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::face::{PhotoError, detect_faces, load_photo, load_stack};

/// `fuselab mask …`.
#[derive(Debug, Subcommand)]
pub enum MaskCommand {
    /// Learn your personal mask from photos of you (the key that protects your photos)
    Train(TrainArgs),
    /// Protect photos: add the mask to every face
    Apply(ApplyArgs),
    /// Take the mask off protected photos again (for whoever holds the key)
    Remove(ApplyArgs),
    /// Measure the protection: how far the mask turns each model away, and who is recognised
    Verify(VerifyArgs),
    /// Choose the face-recognition team: each model's identification outcomes on a labelled
    /// face set, analysed for focal diversity by the ensemble engine
    Team(TeamArgs),
}

/// `fuselab mask team`.
#[derive(Debug, Args)]
pub struct TeamArgs {
    /// Labelled photos: one sub-folder per person, or files named after the person with an
    /// optional number or suffix (obama.jpg, obama2.jpg, obama-beach.jpg)
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Also use each photo mirrored (a second view of the same face)
    #[arg(long)]
    pub mirror: bool,
    /// Write the outcomes as a model pool (the ensemble engine's JSON), for `fuselab ensemble
    /// analyze` or the Ensembles page
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Where the passphrase of an encrypted key comes from.
// clap prints these doc comments as `--help`, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the key's passphrase from the first line of this file (or set
    /// FUSELAB_MASK_PASSPHRASE)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// `fuselab mask train`.
// clap prints these doc comments as `--help`, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A folder of photos of you (JPEG, PNG, WebP); each must show your face, the largest in it
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Where to write the mask key
    #[arg(long, value_name = "ME.p3m")]
    pub out: PathBuf,
    /// Passes over the photos (1 to 10000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub epochs: u32,
    /// DSSIM the mask may cost before the perceptibility penalty starts (0 to 1)
    #[arg(long, default_value_t = 0.03, value_parser = parse_tau)]
    pub tau: f32,
    /// Largest change of a pixel value, on the 0..255 scale (above 0, at most 255)
    #[arg(long, default_value_t = 16.0, value_parser = parse_epsilon)]
    pub epsilon: f32,
    /// Photos per step (1 to 1024)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Seed of the mask's initialisation, the shuffles and the augmentations
    #[arg(long, default_value_t = 2023)]
    pub seed: u64,
    /// Face-recognition models to train against, comma-separated: dlib, faceres
    #[arg(long, value_delimiter = ',', default_value = "dlib,faceres")]
    pub models: Vec<String>,
    /// Augmentation: JPEG round trips at a quality in this range (within 1-100), e.g. 70-95
    #[arg(long, value_name = "LO-HI", value_parser = parse_jpeg_range)]
    pub augment_jpeg: Option<[u8; 2]>,
    /// Augmentation: shrink and enlarge back by a factor in this range (within 0.1-1), e.g. 0.5-1
    #[arg(long, value_name = "LO-HI", value_parser = parse_rescale_range)]
    pub augment_rescale: Option<[f32; 2]>,
    /// Augmentation: Gaussian blur with σ (pixels of the 112×112 face) in this range (within
    /// 0-10), e.g. 0-1.5
    #[arg(long, value_name = "LO-HI", value_parser = parse_blur_range)]
    pub augment_blur: Option<[f32; 2]>,
    /// Augmentation: rotation by up to ± this many degrees (0 to 180), e.g. 10
    #[arg(long, value_name = "DEGREES", value_parser = parse_rotate)]
    pub augment_rotate: Option<f32>,
    /// Where burn trains: cpu (flex), or wgpu (a GPU through Vulkan, Metal or DX12)
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub device: Backend,
    /// Encrypt the key with a passphrase
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Print a JSON summary at the end
    #[arg(long)]
    pub json: bool,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// burn's CPU backend.
    Cpu,
    /// burn-wgpu on the preferred adapter.
    Wgpu,
}

/// `fuselab mask apply` and `remove`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The mask key
    #[arg(long, value_name = "ME.p3m")]
    pub mask: PathBuf,
    /// The photos (JPEG, PNG, WebP)
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Folder for the results; each keeps its name and format, with `-protected` (or
    /// `-unmasked`) before the extension
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Scale of the mask, 0..1 (1: the full mask)
    #[arg(long, default_value_t = 1.0, value_parser = parse_strength)]
    pub strength: f32,
    /// Use the face boxes of this `apply --json` report instead of detecting the faces again
    /// (for `remove`: the exact boxes the mask was added on, so the removal is exact)
    #[arg(long, value_name = "REPORT.json")]
    pub boxes: Option<PathBuf>,
    /// The key's passphrase, when it is encrypted
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// `fuselab mask verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The mask key
    #[arg(long, value_name = "ME.p3m")]
    pub mask: PathBuf,
    /// Photos of the key's owner, not used to train the mask if possible
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Photos of other people: one identity per file, the gallery's distractors
    #[arg(long, value_name = "DIR")]
    pub others: Option<PathBuf>,
    /// Re-encode each protected photo as JPEG at this quality (1 to 100) before recognising it
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Option<u8>,
    /// The key's passphrase, when it is encrypted
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Runs `fuselab mask …`.
///
/// # Errors
/// Missing models, unreadable photos or keys, photos without a face ([`PhotoError`]).
pub fn run(command: &MaskCommand, data_dir: &Path) -> anyhow::Result<()> {
    let compute = match command {
        MaskCommand::Train(TrainArgs {
            device: Backend::Wgpu,
            ..
        }) => fuselab_ml::Compute::Wgpu,
        _ => fuselab_ml::Compute::Cpu,
    };
    let device = fuselab_ml::open(compute)?;
    match command {
        MaskCommand::Train(args) => train(args, data_dir, &device),
        MaskCommand::Apply(args) => transform(args, data_dir, &device, 1.0),
        MaskCommand::Remove(args) => transform(args, data_dir, &device, -1.0),
        MaskCommand::Verify(args) => verify(args, data_dir, device),
        MaskCommand::Team(args) => team(args, data_dir, device),
    }
}

/// The photos in a folder (JPEG, PNG, WebP by extension), sorted by name.
///
/// # Errors
/// An unreadable folder, or one without photos.
pub fn photos_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "webp"
                )
            })
        })
        .collect();
    photos.sort();
    if photos.is_empty() {
        return Err(PhotoError {
            path: dir.display().to_string(),
            what: "no photos here (expected .jpg, .jpeg, .png or .webp files)".to_owned(),
        }
        .into());
    }
    Ok(photos)
}

/// Chameleon's detector settings: a training face must score at least 0.9 and be 30 pixels.
const MIN_SCORE: f32 = 0.9;
const MIN_SIDE: f32 = 30.0;

/// The largest face Chameleon trains on: a score of at least 0.9 and sides of at least 30
/// pixels (MTCNN lists faces largest first).
pub fn confident_face(detections: Vec<Detection>) -> Option<Detection> {
    detections.into_iter().find(|d| {
        let [l, t, r, b] = d.bbox;
        d.score >= MIN_SCORE && (r - l).min(b - t) >= MIN_SIDE
    })
}

/// The largest confident face of a photo, boxed for training.
///
/// # Errors
/// An unreadable photo, or one without such a face ([`PhotoError`]).
pub fn training_face(stack: &FaceStack, path: &Path) -> anyhow::Result<(TrainingFace, Detection)> {
    let image = load_photo(path)?;
    let detection = confident_face(detect_faces(&stack.mtcnn, &image, &stack.device)).ok_or_else(
        || PhotoError {
            path: path.display().to_string(),
            what: format!(
                "no face found with a score of at least {MIN_SCORE} and a side of {MIN_SIDE} pixels"
            ),
        },
    )?;
    let canvas =
        FaceCanvas::from_box(detection.bbox, image.width, image.height).ok_or_else(|| {
            PhotoError {
                path: path.display().to_string(),
                what: "the face's box lies outside the photo".to_owned(),
            }
        })?;
    Ok((
        TrainingFace {
            clean: canvas.boxed_face(&image.pixels, image.width),
            canvas,
        },
        detection,
    ))
}

/// A finite number within `lo..=hi` (`open_low`: above `lo`), for clap; the message names the
/// accepted range and clap adds the flag.
fn bounded(text: &str, lo: f32, hi: f32, open_low: bool) -> Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    let low_ok = if open_low { value > lo } else { value >= lo };
    if value.is_finite() && low_ok && value <= hi {
        Ok(value)
    } else {
        let low = if open_low { "above" } else { "at least" };
        Err(format!(
            "{value} is out of range: expected a finite number {low} {lo} and at most {hi}"
        ))
    }
}

fn parse_tau(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 1.0, false)
}

fn parse_epsilon(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 255.0, true)
}

fn parse_strength(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 1.0, false)
}

fn parse_rotate(text: &str) -> Result<f32, String> {
    bounded(text, 0.0, 180.0, false)
}

/// `LO-HI` with both ends within `lo..=hi` and LO ≤ HI.
fn parse_range(text: &str, lo: f32, hi: f32) -> Result<[f32; 2], String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("expected a range LO-HI, got `{text}`"))?;
    let range = [bounded(a, lo, hi, false)?, bounded(b, lo, hi, false)?];
    if range[0] > range[1] {
        return Err(format!("expected LO ≤ HI, got `{text}`"));
    }
    Ok(range)
}

fn parse_rescale_range(text: &str) -> Result<[f32; 2], String> {
    parse_range(text, 0.1, 1.0)
}

fn parse_blur_range(text: &str) -> Result<[f32; 2], String> {
    parse_range(text, 0.0, 10.0)
}

fn parse_jpeg_range(text: &str) -> Result<[u8; 2], String> {
    let [a, b] = parse_range(text, 1.0, 100.0)?;
    if a.fract() != 0.0 || b.fract() != 0.0 {
        return Err(format!("expected whole JPEG qualities, got `{text}`"));
    }
    // Whole numbers within 1..=100, checked above.
    #[allow(clippy::cast_sign_loss)]
    Ok([a as u8, b as u8])
}

/// The passphrase, wiped from memory when dropped (and so is the file's text it came from).
fn passphrase(args: &PassphraseArgs) -> anyhow::Result<Option<Zeroizing<String>>> {
    if let Some(path) = &args.passphrase_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
        );
        let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
        if line.is_empty() {
            bail!(
                "{}: the first line (the passphrase) is empty",
                path.display()
            );
        }
        return Ok(Some(line));
    }
    Ok(std::env::var("FUSELAB_MASK_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new))
}

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

/// Writes `bytes` to `path` through a temporary file and a rename, so a kill never leaves half
/// a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_with_mode(path, bytes, 0o644)
}

/// [`write_atomically`] for secrets (mask keys, checkpoints): readable by the owner only.
///
/// # Errors
/// A file that cannot be created, written or moved into place.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_with_mode(path, bytes, 0o600)
}

/// The temporary file is created afresh with `mode` (on unix; elsewhere the default), so a
/// secret is never readable by others, not even before the rename.
fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_os_string();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    // A leftover from a killed run may have other permissions: start from nothing.
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot move {} to {}", temporary.display(), path.display()))
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
fn jpeg_round_trip(
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

/// The face stack's embedders by name (`dlib`, `faceres`).
///
/// # Errors
/// An unknown name, or none.
pub fn embedders<'a>(
    stack: &'a FaceStack,
    names: &[String],
) -> anyhow::Result<Vec<&'a dyn FaceEmbedder>> {
    let mut models: Vec<&dyn FaceEmbedder> = Vec::new();
    for name in names {
        match name.as_str() {
            "dlib" => models.push(&stack.dlib),
            "faceres" => models.push(&stack.faceres),
            other => bail!("--models: unknown model `{other}`; the models are dlib and faceres"),
        }
    }
    if models.is_empty() {
        bail!("--models: name at least one model (dlib, faceres)");
    }
    Ok(models)
}

#[allow(clippy::too_many_lines)]
fn train(args: &TrainArgs, data_dir: &Path, device: &Device) -> anyhow::Result<()> {
    let config = MaskConfig {
        epsilon: args.epsilon,
        step: MaskConfig::default().step,
        batch: args.batch as usize,
        epochs: args.epochs as usize,
        tau: args.tau,
        seed: args.seed,
        augment: Augment {
            rescale: args.augment_rescale,
            blur: args.augment_blur,
            jpeg: args.augment_jpeg,
            rotate: args.augment_rotate,
        },
    };
    let passphrase = passphrase(&args.passphrase)?;
    let paths = photos_in(&args.photos)?;
    let stack = load_stack(data_dir, device.clone())?;
    let models = embedders(&stack, &args.models)?;

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
        match training_face(&stack, path) {
            Ok((face, detection)) => {
                tracing::info!(photo = %name, score = detection.score, "training face");
                faces.push(face);
                photos.push((name, hex(&Sha256::digest(&bytes))));
            }
            Err(error) if error.is::<PhotoError>() => missing.push(format!("{error}")),
            Err(error) => return Err(error),
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
    let mut resumed = None;
    if checkpoint_file.exists() {
        let bytes = Zeroizing::new(
            std::fs::read(&checkpoint_file)
                .with_context(|| format!("cannot read {}", checkpoint_file.display()))?,
        );
        let checkpoint = read_checkpoint(&bytes, passphrase.as_ref().map(|p| p.as_str()))
            .with_context(|| format!("{}", checkpoint_file.display()))?;
        if checkpoint.format != CHECKPOINT_FORMAT
            || checkpoint.config != config
            || checkpoint.models != args.models
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
        resumed = Some(checkpoint.state);
    }
    let codec = JpegCodec;
    let mut trainer = MaskTrainer::new(
        config.clone(),
        models,
        &faces,
        resumed,
        Some(&codec),
        device,
    )?;
    eprintln!(
        "training a mask on {} photo(s) against {} for {} epoch(s)",
        faces.len(),
        args.models.join(" + "),
        config.epochs
    );
    let mut epochs: Vec<(EpochReport, f64)> = Vec::new();
    while !trainer.finished() {
        let started = Instant::now();
        let report = trainer.epoch(&mut |_| {});
        let seconds = started.elapsed().as_secs_f64();
        let angles: Vec<String> = args
            .models
            .iter()
            .zip(&report.angles)
            .map(|(m, a)| format!("{m} {a:.3}"))
            .collect();
        eprintln!(
            "epoch {}/{}: DSSIM {:.4}, angle (rad) {}, λ {}, {seconds:.1} s",
            report.epoch,
            config.epochs,
            report.dssim,
            angles.join(", "),
            report.lambda
        );
        let checkpoint = Checkpoint {
            format: CHECKPOINT_FORMAT.to_owned(),
            config: config.clone(),
            models: args.models.clone(),
            photos: photos.clone(),
            state: trainer.state().clone(),
        };
        write_private(
            &checkpoint_file,
            &checkpoint_bytes(&checkpoint, passphrase.as_ref().map(|p| p.as_str()))?,
        )?;
        epochs.push((report, seconds));
    }

    let handed = trainer.final_mask();
    let bytes = key_bytes(
        &config,
        &args.models,
        faces.len(),
        handed.delta.clone(),
        passphrase.as_ref().map(|p| p.as_str()),
    )?;
    write_private(&args.out, &bytes)?;
    std::fs::remove_file(&checkpoint_file)
        .with_context(|| format!("cannot remove {}", checkpoint_file.display()))?;
    let dssim = handed.dssim;
    if args.json {
        let summary = serde_json::json!({
            "key": args.out.display().to_string(),
            "encrypted": passphrase.is_some(),
            "photos": photos.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "models": args.models,
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
            if passphrase.is_some() {
                " (encrypted)"
            } else {
                ""
            },
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

/// A fresh random salt and nonce for Argon2id and XChaCha20-Poly1305.
fn salt_and_nonce() -> anyhow::Result<([u8; 16], [u8; 24])> {
    let mut salt = [0_u8; 16];
    let mut nonce = [0_u8; 24];
    getrandom::fill(&mut salt).context("no randomness for the salt")?;
    getrandom::fill(&mut nonce).context("no randomness for the nonce")?;
    Ok((salt, nonce))
}

/// The key file of a trained mask, encrypted when a passphrase is given.
///
/// # Errors
/// No randomness for the salt and nonce, or a mask the key format refuses.
pub fn key_bytes(
    config: &MaskConfig,
    models: &[String],
    photos: usize,
    delta: Vec<f32>,
    passphrase: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let key = MaskKey {
        header: MaskHeader::new(
            CropConvention {
                detector: "mtcnn (facenet-pytorch 2.6.0 weights), largest face".to_owned(),
                margin: u32::try_from(MARGIN)?,
                canvas: "square, side max(w, h) + margin, face centred, mean-colour fill"
                    .to_owned(),
                size: u32::try_from(MASK_SIDE)?,
                resample: "bilinear, half-pixel centres".to_owned(),
            },
            config.epsilon,
            config.tau,
            models.to_vec(),
            config.seed,
            u32::try_from(config.epochs)?,
            u32::try_from(photos)?,
        ),
        delta,
    };
    let protection = match passphrase {
        Some(p) => {
            let (salt, nonce) = salt_and_nonce()?;
            Some(Protection {
                passphrase: p,
                salt,
                nonce,
            })
        }
        None => None,
    };
    Ok(write_key(&key, protection)?)
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Reads a key, asking for the passphrase only when it is encrypted.
fn load_key(path: &Path, passphrase_args: &PassphraseArgs) -> anyhow::Result<MaskKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the mask key {}", path.display()))?;
    let passphrase = passphrase(passphrase_args)?;
    read_key(&bytes, passphrase.as_ref().map(|p| p.as_str())).map_err(|e| {
        PhotoError {
            path: path.display().to_string(),
            what: e.to_string(),
        }
        .into()
    })
}

/// One face's figures after applying (or removing) the mask.
#[derive(Debug, Clone, Serialize)]
struct FaceChange {
    /// Left, top, width, height of the face rectangle.
    face: [usize; 4],
    /// MTCNN's score.
    score: f32,
    /// SSIM of the face rectangle, after vs before.
    ssim: Option<f64>,
    /// PSNR of the face rectangle, dB.
    psnr: Option<f64>,
    /// The largest change of a pixel value.
    max_change: u8,
    /// Channel values clipped at 0 or 255.
    clipped: usize,
}

/// Applies `sign · strength · δ` to every face of an image; the figures per face.
fn mask_faces(
    image: &mut RgbImage,
    detections: &[Detection],
    delta: &[f32],
    strength: f32,
) -> Vec<FaceChange> {
    let mut changes = Vec::new();
    for d in detections {
        let Some(canvas) = FaceCanvas::from_box(d.bbox, image.width, image.height) else {
            continue;
        };
        let before = crop(image, canvas.face);
        let clipped = apply(&mut image.pixels, image.width, 3, &canvas, delta, strength);
        let after = crop(image, canvas.face);
        let [_, _, w, h] = canvas.face;
        let (b, a): (Vec<f32>, Vec<f32>) = before
            .iter()
            .zip(&after)
            .map(|(&x, &y)| (f32::from(x), f32::from(y)))
            .unzip();
        changes.push(FaceChange {
            face: canvas.face,
            score: d.score,
            ssim: quality::ssim(&a, &b, h, w),
            psnr: quality::psnr(&a, &b),
            max_change: before
                .iter()
                .zip(&after)
                .map(|(x, y)| x.abs_diff(*y))
                .max()
                .unwrap_or(0),
            clipped,
        });
    }
    changes
}

fn crop(image: &RgbImage, [left, top, w, h]: [usize; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for row in top..top + h {
        let start = (row * image.width + left) * 3;
        out.extend_from_slice(&image.pixels[start..start + w * 3]);
    }
    out
}

/// Writes an image in the format of `like` (JPEG at quality 95, PNG, or lossless WebP), with
/// no metadata.
fn save_like(image: &RgbImage, like: &Path, out: &Path) -> anyhow::Result<()> {
    let format = image::ImageFormat::from_path(like).unwrap_or(image::ImageFormat::Png);
    let (w, h) = (u32::try_from(image.width)?, u32::try_from(image.height)?);
    let mut bytes = Vec::new();
    match format {
        image::ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode(
                &image.pixels,
                w,
                h,
                image::ExtendedColorType::Rgb8,
            )?;
        }
        image::ImageFormat::WebP => {
            image::ImageEncoder::write_image(
                image::codecs::webp::WebPEncoder::new_lossless(&mut bytes),
                &image.pixels,
                w,
                h,
                image::ExtendedColorType::Rgb8,
            )?;
        }
        _ => {
            image::ImageEncoder::write_image(
                image::codecs::png::PngEncoder::new(&mut bytes),
                &image.pixels,
                w,
                h,
                image::ExtendedColorType::Rgb8,
            )?;
        }
    }
    write_atomically(out, &bytes)
}

/// `out/<stem><suffix>.<ext>` for a photo.
fn output_path(out: &Path, photo: &Path, suffix: &str) -> PathBuf {
    let stem = photo.file_stem().unwrap_or_default().to_string_lossy();
    let name = match photo.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}.png"),
    };
    out.join(name)
}

fn transform(args: &ApplyArgs, data_dir: &Path, device: &Device, sign: f32) -> anyhow::Result<()> {
    let key = load_key(&args.mask, &args.passphrase)?;
    let mtcnn = crate::face::load_mtcnn(data_dir, device)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let suffix = if sign > 0.0 {
        "-protected"
    } else {
        "-unmasked"
    };
    let mut results = Vec::new();
    let mut faceless = Vec::new();
    let known = match &args.boxes {
        Some(path) => Some(read_boxes(path)?),
        None => None,
    };
    for photo in &args.photos {
        let mut image = load_photo(photo)?;
        let detections = match &known {
            Some(boxes) => boxes_for(boxes, photo, path_of(args.boxes.as_ref()))?,
            None => detect_faces(&mtcnn, &image, device),
        };
        let changes = mask_faces(&mut image, &detections, &key.delta, sign * args.strength);
        if changes.is_empty() {
            faceless.push(photo.display().to_string());
            continue;
        }
        let out = output_path(&args.out, photo, suffix);
        if out.exists() && std::fs::canonicalize(&out).ok() == std::fs::canonicalize(photo).ok() {
            bail!(
                "{}: the output would overwrite the photo itself",
                out.display()
            );
        }
        save_like(&image, photo, &out)?;
        results.push(serde_json::json!({
            "photo": photo.display().to_string(),
            "out": out.display().to_string(),
            "faces": changes,
        }));
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut stdout,
            &serde_json::json!({ "mask": key.header.sha256, "photos": results, "no_face": faceless }),
        )?;
        writeln!(stdout)?;
    } else {
        for r in &results {
            let faces = r["faces"].as_array().map_or(0, Vec::len);
            let ssim: Vec<String> = r["faces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "SSIM {:.4}, PSNR {:.1} dB",
                        f["ssim"].as_f64().unwrap_or(f64::NAN),
                        f["psnr"].as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            writeln!(
                stdout,
                "{} → {}: {faces} face(s) ({})",
                r["photo"].as_str().unwrap_or_default(),
                r["out"].as_str().unwrap_or_default(),
                ssim.join("; ")
            )?;
        }
    }
    if !faceless.is_empty() {
        return Err(PhotoError {
            path: faceless.join(", "),
            what: "no face found, so nothing was written for these photos".to_owned(),
        }
        .into());
    }
    Ok(())
}

/// The face rectangles of an `apply --json` report, by the file name of each photo and of its
/// output.
fn read_boxes(path: &Path) -> anyhow::Result<Vec<(String, Vec<[usize; 4]>)>> {
    let bad = |what: String| PhotoError {
        path: path.display().to_string(),
        what,
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not JSON ({e}); expected the report of `fuselab mask apply --json`"
        ))
    })?;
    let photos = report["photos"].as_array().ok_or_else(|| {
        bad("no `photos` list; expected the report of `fuselab mask apply --json`".to_owned())
    })?;
    let mut out = Vec::new();
    for (i, entry) in photos.iter().enumerate() {
        let faces: Option<Vec<[usize; 4]>> = entry["faces"].as_array().and_then(|faces| {
            faces
                .iter()
                .map(|f| serde_json::from_value::<[usize; 4]>(f["face"].clone()).ok())
                .collect()
        });
        let faces = faces.ok_or_else(|| {
            bad(format!(
                "photos[{i}].faces: expected a list of {{\"face\": [left, top, width, height]}}"
            ))
        })?;
        for key in ["photo", "out"] {
            let name = entry[key]
                .as_str()
                .and_then(|p| Path::new(p).file_name())
                .ok_or_else(|| bad(format!("photos[{i}].{key}: expected a file path")))?;
            out.push((name.to_string_lossy().into_owned(), faces.clone()));
        }
    }
    Ok(out)
}

fn path_of(path: Option<&PathBuf>) -> &Path {
    path.map_or(Path::new(""), PathBuf::as_path)
}

/// The report's boxes for a photo, as detections.
fn boxes_for(
    boxes: &[(String, Vec<[usize; 4]>)],
    photo: &Path,
    report: &Path,
) -> anyhow::Result<Vec<Detection>> {
    let name = photo.file_name().unwrap_or_default().to_string_lossy();
    let faces = boxes
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f)
        .ok_or_else(|| PhotoError {
            path: report.display().to_string(),
            what: format!("has no boxes for {name}"),
        })?;
    #[allow(clippy::cast_precision_loss)]
    Ok(faces
        .iter()
        .map(|&[l, t, w, h]| Detection {
            bbox: [l as f32, t as f32, (l + w) as f32, (t + h) as f32],
            score: 1.0,
            landmarks: [[0.0; 2]; 5],
        })
        .collect())
}

/// One model's verdicts in the identification test.
#[derive(Debug, Clone, Serialize)]
struct Identification {
    model: String,
    /// Per user photo (probe, clean): whether it was matched to the user.
    recognised_unprotected: usize,
    recognised_protected: usize,
    probes: usize,
    /// Share of probes not recognised against the protected gallery.
    protection_rate: f64,
}

#[allow(clippy::too_many_lines)]
fn verify(args: &VerifyArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
    let key = load_key(&args.mask, &args.passphrase)?;
    let stack = load_stack(data_dir, device)?;
    let user = photos_in(&args.photos)?;
    let others = match &args.others {
        Some(dir) => photos_in(dir)?,
        None => Vec::new(),
    };
    let describe = |image: &RgbImage, path: &Path| -> anyhow::Result<fuselab_ml::face::Face> {
        stack.faces(image).into_iter().next().ok_or_else(|| {
            PhotoError {
                path: path.display().to_string(),
                what: "no face found".to_owned(),
            }
            .into()
        })
    };
    let mut clean = Vec::new();
    let mut protected = Vec::new();
    let mut shifts = Vec::new();
    for path in &user {
        let image = load_photo(path)?;
        let face = describe(&image, path)?;
        let mut masked = image.clone();
        mask_faces(
            &mut masked,
            std::slice::from_ref(&face.detection),
            &key.delta,
            1.0,
        );
        if let Some(q) = args.jpeg_quality {
            masked.pixels = jpeg_round_trip(&masked.pixels, masked.width, masked.height, q)?;
        }
        let masked_face = describe(&masked, path)?;
        let verdicts = stack.compare(&face, &masked_face);
        shifts.push(serde_json::json!({
            "photo": path.display().to_string(),
            "models": verdicts,
        }));
        clean.push(face);
        protected.push(masked_face);
    }
    let mut distractors = Vec::new();
    for path in &others {
        distractors.push(describe(&load_photo(path)?, path)?);
    }
    // Leave-one-out: each clean photo of the user is a probe against a gallery of the user's
    // other photos (protected, or not as the baseline) and the distractors.
    let models = ["dlib", "faceres"];
    let pick = |face: &fuselab_ml::face::Face, m: usize| -> Vec<f32> {
        if m == 0 {
            face.dlib.clone()
        } else {
            face.faceres.clone()
        }
    };
    let mut identifications = Vec::new();
    for (m, model) in models.iter().enumerate() {
        let threshold = if m == 0 {
            stack.dlib.info().same_person_below
        } else {
            None
        };
        let recognised = |gallery_user: &[fuselab_ml::face::Face], probe: usize| -> bool {
            let p = pick(&clean[probe], m);
            let distance = |f: &fuselab_ml::face::Face| {
                fuselab_ml::face::Verdict::between(model, threshold, &p, &pick(f, m)).distance
            };
            let best_user = gallery_user
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != probe)
                .map(|(_, f)| distance(f))
                .fold(f32::INFINITY, f32::min);
            let best_other = distractors
                .iter()
                .map(distance)
                .fold(f32::INFINITY, f32::min);
            best_user < best_other && threshold.is_none_or(|t| best_user < t)
        };
        let probes = clean.len();
        let count = |gallery: &[fuselab_ml::face::Face]| {
            (0..probes).filter(|&p| recognised(gallery, p)).count()
        };
        let (unprotected, with_mask) = (count(&clean), count(&protected));
        #[allow(clippy::cast_precision_loss)]
        identifications.push(Identification {
            model: (*model).to_owned(),
            recognised_unprotected: unprotected,
            recognised_protected: with_mask,
            probes,
            protection_rate: (probes - with_mask) as f64 / probes.max(1) as f64,
        });
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "mask": key.header.sha256,
                "jpeg_quality": args.jpeg_quality,
                "shifts": shifts,
                "identification": identifications,
                "distractors": others.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "each photo vs its protected copy (angle between the embeddings; dlib's distance):"
        )?;
        for s in &shifts {
            let models = s["models"].as_array().cloned().unwrap_or_default();
            let parts: Vec<String> = models
                .iter()
                .map(|v| {
                    format!(
                        "{} {:.3} rad{}",
                        v["model"].as_str().unwrap_or_default(),
                        v["angle"].as_f64().unwrap_or(f64::NAN),
                        if v["threshold"].is_null() {
                            String::new()
                        } else {
                            format!(
                                " (distance {:.3})",
                                v["distance"].as_f64().unwrap_or(f64::NAN)
                            )
                        }
                    )
                })
                .collect();
            writeln!(
                out,
                "  {}: {}",
                s["photo"].as_str().unwrap_or_default(),
                parts.join(", ")
            )?;
        }
        writeln!(
            out,
            "identification (each clean photo against your other photos and {} other people):",
            distractors.len()
        )?;
        for i in &identifications {
            writeln!(
                out,
                "  {}: recognised {}/{} against your unprotected photos, {}/{} against protected ones: protection rate {:.0} %",
                i.model,
                i.recognised_unprotected,
                i.probes,
                i.recognised_protected,
                i.probes,
                100.0 * i.protection_rate
            )?;
        }
    }
    Ok(())
}

/// The person a photo shows: its sub-folder under `root`, or its file name without the
/// extension and a trailing number or `-`/`_` suffix.
fn identity(root: &Path, photo: &Path) -> String {
    let relative = photo.strip_prefix(root).unwrap_or(photo);
    if relative.components().count() > 1
        && let Some(first) = relative.components().next()
    {
        return first.as_os_str().to_string_lossy().into_owned();
    }
    let stem = photo.file_stem().unwrap_or_default().to_string_lossy();
    let base = stem.split(['-', '_']).next().unwrap_or(&stem);
    base.trim_end_matches(|c: char| c.is_ascii_digit())
        .to_owned()
}

/// The photos of `dir` and of its sub-folders, sorted.
fn labelled_photos(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            photos.extend(photos_in(&path)?);
        }
    }
    if let Ok(top) = photos_in(dir) {
        photos.extend(top);
    }
    photos.sort();
    if photos.is_empty() {
        return Err(PhotoError {
            path: dir.display().to_string(),
            what: "no photos here or in its sub-folders".to_owned(),
        }
        .into());
    }
    Ok(photos)
}

fn mirrored(image: &RgbImage) -> RgbImage {
    let mut pixels = Vec::with_capacity(image.pixels.len());
    for row in 0..image.height {
        for col in (0..image.width).rev() {
            pixels.extend_from_slice(&image.get(col, row));
        }
    }
    RgbImage {
        width: image.width,
        height: image.height,
        pixels,
    }
}

fn team(args: &TeamArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
    let photos = labelled_photos(&args.photos)?;
    if photos.len() < 2 {
        return Err(PhotoError {
            path: args.photos.display().to_string(),
            what: "identification needs at least two photos".to_owned(),
        }
        .into());
    }
    let stack = load_stack(data_dir, device)?;
    // (identity, source photo, face) for every view.
    let mut views = Vec::new();
    for path in &photos {
        let image = load_photo(path)?;
        let who = identity(&args.photos, path);
        let mut images = vec![image];
        if args.mirror {
            images.push(mirrored(&images[0]));
        }
        for image in &images {
            let face = stack
                .faces(image)
                .into_iter()
                .next()
                .ok_or_else(|| PhotoError {
                    path: path.display().to_string(),
                    what: "no face found".to_owned(),
                })?;
            views.push((who.clone(), path.clone(), face));
        }
    }
    let mut names: Vec<String> = views.iter().map(|(w, _, _)| w.clone()).collect();
    names.sort();
    names.dedup();
    let class =
        |who: &str| u32::try_from(names.iter().position(|n| n == who).unwrap_or(0)).unwrap_or(0);
    // Leave-one-out: each view is identified by its nearest neighbour among the views of other
    // photos (its own mirror would be too easy a match).
    let predict = |model: usize| -> Vec<u32> {
        views
            .iter()
            .map(|(_, source, probe)| {
                let embedding = |f: &fuselab_ml::face::Face| {
                    if model == 0 {
                        f.dlib.clone()
                    } else {
                        f.faceres.clone()
                    }
                };
                let p = embedding(probe);
                views
                    .iter()
                    .filter(|(_, other, _)| other != source)
                    .map(|(who, _, f)| {
                        (
                            fuselab_ml::face::Verdict::between("", None, &p, &embedding(f))
                                .distance,
                            who,
                        )
                    })
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or(u32::MAX, |(_, who)| class(who))
            })
            .collect()
    };
    let input = fuselab_shared::ensemble::PoolInput {
        labels: views.iter().map(|(who, _, _)| class(who)).collect(),
        models: ["dlib", "faceres"]
            .iter()
            .enumerate()
            .map(|(m, name)| fuselab_shared::ensemble::ModelInput {
                name: (*name).to_owned(),
                predictions: Some(predict(m)),
                probabilities: None,
            })
            .collect(),
        classes: Some(names.len()),
    };
    if let Some(out) = &args.out {
        write_atomically(out, serde_json::to_string_pretty(&input)?.as_bytes())?;
        eprintln!(
            "wrote the outcomes to {} (fuselab ensemble analyze {0})",
            out.display()
        );
    }
    println!(
        "identification outcomes: {} views of {} people ({}), nearest neighbour among the other photos",
        views.len(),
        names.len(),
        names.join(", ")
    );
    let pool =
        fuselab_shared::ensemble::Pool::new(input).context("the outcomes are not a valid pool")?;
    print!("{}", crate::ensemble::analysis_table(&pool, 10)?);
    Ok(())
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

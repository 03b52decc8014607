//! `fuselab mask train|apply|remove|verify|team`: Chameleon's P3-Mask from the command line,
//! and the `mask.train` job the server queues. The mask file is the user's key: it protects
//! photos, and it removes the protection again.
//!
//! - `args`: the clap structs and their parsers (the CLI layer only);
//! - `train`: one training loop for the CLI and the job, with checkpoints;
//! - `job`: the `mask.train` job kind (photos and key sealed in the artifact store);
//! - `apply`, `verify`, `team`: protecting photos, measuring the protection, choosing the models.

mod apply;
mod args;
pub mod job;
mod judge;
mod protection;
mod study;
mod study_report;
mod team;
mod train;
mod verify;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use fuselab_ml::{
    face::{
        FaceEmbedder, FaceStack,
        mtcnn::{Detection, Mtcnn},
    },
    mask::{MaskConfig, TrainingFace},
};
use fuselab_shared::mask::{
    FaceCanvas, MARGIN, MASK_SIDE,
    key::{CropConvention, MaskHeader, MaskKey, Protection, read_key, write_key},
};

use crate::face::{PhotoError, decode_photo, detect_faces};

pub use args::{
    ApplyArgs, MaskCommand, PassphraseArgs, StudyArgs, TeamArgs, TrainArgs, VerifyArgs,
};
pub use train::{JpegCodec, TrainHooks, TrainOptions, train_mask};

/// Runs `fuselab mask …`.
///
/// # Errors
/// Missing models, unreadable photos or keys, photos without a face ([`PhotoError`]).
pub fn run(command: &MaskCommand, data_dir: &Path) -> anyhow::Result<()> {
    let compute = match command {
        MaskCommand::Train(args) => args.device,
        MaskCommand::Study(args) => args.device,
        _ => fuselab_ml::Compute::Cpu,
    };
    let device = fuselab_ml::open(compute)?;
    match command {
        MaskCommand::Train(args) => train::train(args, data_dir, &device),
        MaskCommand::Apply(args) => apply::transform(args, data_dir, &device, 1.0),
        MaskCommand::Remove(args) => apply::transform(args, data_dir, &device, -1.0),
        MaskCommand::Verify(args) => verify::verify(args, data_dir, device),
        MaskCommand::Study(args) => study::study(args, data_dir, &device),
        MaskCommand::Team(args) => team::team(args, data_dir, device),
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

/// The largest confident face of a photo (`name` names it in errors), boxed for training:
/// the one way the CLI, the server's request check and the job find a training face.
///
/// # Errors
/// A photo that does not decode, or one without such a face.
pub fn training_face(
    mtcnn: &Mtcnn,
    device: &Device,
    bytes: &[u8],
    name: &str,
) -> Result<(TrainingFace, Detection), PhotoError> {
    let image = decode_photo(bytes, name)?;
    let missing = |what: String| PhotoError {
        path: name.to_owned(),
        what,
    };
    let detection = confident_face(detect_faces(mtcnn, &image, device)).ok_or_else(|| {
        missing(format!(
            "no face found with a score of at least {MIN_SCORE} and a side of {MIN_SIDE} pixels"
        ))
    })?;
    let canvas = FaceCanvas::from_box(detection.bbox, image.width, image.height)
        .ok_or_else(|| missing("the face's box lies outside the photo".to_owned()))?;
    Ok((
        TrainingFace {
            clean: canvas.boxed_face(&image.pixels, image.width),
            canvas,
        },
        detection,
    ))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a kill never leaves half
/// a file.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
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

/// A fresh random salt and nonce for Argon2id and XChaCha20-Poly1305.
pub(super) fn salt_and_nonce() -> anyhow::Result<([u8; 16], [u8; 24])> {
    let mut salt = [0_u8; 16];
    let mut nonce = [0_u8; 24];
    getrandom::fill(&mut salt).context("no randomness for the salt")?;
    getrandom::fill(&mut nonce).context("no randomness for the nonce")?;
    Ok((salt, nonce))
}

/// The key file of a trained mask, encrypted when a passphrase is given. `trained_on`: the
/// SHA-256 of each training photo's file.
///
/// # Errors
/// No randomness for the salt and nonce, or a mask the key format refuses.
pub fn key_bytes(
    config: &MaskConfig,
    models: &[String],
    trained_on: &[String],
    delta: Vec<f32>,
    passphrase: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let mut header = MaskHeader::new(
        CropConvention {
            detector: "mtcnn (facenet-pytorch 2.6.0 weights), largest face".to_owned(),
            margin: u32::try_from(MARGIN)?,
            canvas: "square, side max(w, h) + margin, face centred, mean-colour fill".to_owned(),
            size: u32::try_from(MASK_SIDE)?,
            resample: "bilinear, half-pixel centres".to_owned(),
        },
        config.epsilon,
        config.tau,
        models.to_vec(),
        config.seed,
        // A run by steps has no epochs: the header says which budget it had.
        if config.steps.is_some() {
            0
        } else {
            u32::try_from(config.epochs)?
        },
        u32::try_from(trained_on.len())?,
    );
    header.steps = config.steps.map(u32::try_from).transpose()?;
    header.trained_on = trained_on.to_vec();
    let key = MaskKey { header, delta };
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
pub(super) fn load_key(path: &Path, passphrase_args: &PassphraseArgs) -> anyhow::Result<MaskKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the mask key {}", path.display()))?;
    let passphrase = args::passphrase(passphrase_args)?;
    read_key(&bytes, passphrase.as_ref().map(|p| p.as_str())).map_err(|e| {
        PhotoError {
            path: path.display().to_string(),
            what: e.to_string(),
        }
        .into()
    })
}

//! `fuselab mask verify`: how far a key turns each face model away from its owner, and whether
//! they are still recognised against a gallery (optionally after a JPEG round trip).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use burn::tensor::Device;
use fuselab_ml::face::{FaceEmbedder, RgbImage};
use serde::Serialize;

use super::{apply::mask_faces, args::VerifyArgs, load_key, photos_in, train::jpeg_round_trip};
use crate::face::{PhotoError, load_photo, load_stack};

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
pub(super) fn verify(args: &VerifyArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
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
pub(super) fn identity(root: &Path, photo: &Path) -> String {
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
pub(super) fn labelled_photos(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
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

pub(super) fn mirrored(image: &RgbImage) -> RgbImage {
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

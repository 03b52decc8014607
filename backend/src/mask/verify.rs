//! `fuselab mask verify`: whether face recognition still matches the key owner's protected
//! photos to them, judged only on photos the key was not trained on (see [`super::judge`] and
//! [`super::protection`]).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use fuselab_ml::face::RgbImage;

use super::protection::{GALLERY_NOTE, Judges, Owner, gallery, judge_held_out};
use super::{args::VerifyArgs, load_key, photos_in};
use crate::face::{PhotoError, load_mobileface, load_stack};

pub(super) fn verify(args: &VerifyArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
    let key = load_key(&args.mask, &args.passphrase)?;
    let mobileface = load_mobileface(data_dir, &device)?;
    let stack = load_stack(data_dir, device)?;
    let judges = Judges {
        stack: &stack,
        mobileface: &mobileface,
    };
    let known = !key.header.trained_on.is_empty();
    let owner = Owner::read(judges, &photos_in(&args.photos)?)?;
    let held_out: Vec<usize> = (0..owner.faces.len())
        .filter(|&i| !key.header.trained_on.contains(&owner.hashes[i]))
        .collect();
    if held_out.is_empty() {
        bail!(
            "{}: every photo here trained this key, and a mask is only judged on photos it was \
             not trained on; add photos of you that were not used (or run `fuselab mask study`, \
             which holds each photo out in turn)",
            args.photos.display()
        );
    }
    let others = match &args.others {
        Some(dir) => photos_in(dir)?,
        None => Vec::new(),
    };
    let others = gallery(judges, data_dir, &others)?;
    let verdicts = judge_held_out(
        judges,
        &owner,
        &held_out,
        &others,
        &key.delta,
        args.jpeg_quality,
    )?;
    let report = serde_json::json!({
        "mask": key.header.sha256,
        "training_photos_known": known,
        "held_out": held_out.iter().map(|&i| owner.faces[i].name.clone()).collect::<Vec<_>>(),
        "jpeg_quality": args.jpeg_quality,
        "quality": verdicts.quality,
        "models": verdicts.models,
        "gallery": others.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "note": GALLERY_NOTE,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    print_text(&mut out, &report, known, owner.faces.len(), others.len())
}

fn print_text(
    out: &mut dyn std::io::Write,
    report: &serde_json::Value,
    known: bool,
    owner: usize,
    others: usize,
) -> anyhow::Result<()> {
    let held = report["held_out"].as_array().map_or(0, Vec::len);
    if known {
        writeln!(
            out,
            "{held} of your {owner} photo(s) were not used to train this key: judged on those"
        )?;
    } else {
        writeln!(
            out,
            "this key does not record its training photos: all {owner} are judged, and a photo \
             the mask was trained on makes the protection look stronger than it is"
        )?;
    }
    for q in report["quality"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {}: face SSIM {:.4}, PSNR {:.1} dB",
            q["photo"].as_str().unwrap_or_default(),
            q["ssim"].as_f64().unwrap_or(f64::NAN),
            q["psnr"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    for m in report["models"].as_array().into_iter().flatten() {
        let judge = &m["judge"];
        let source = if judge["source"]["kind"] == "model" {
            "its own threshold".to_owned()
        } else {
            "a threshold calibrated on these photos".to_owned()
        };
        writeln!(
            out,
            "{}: {} below {:.3} is the same person ({source})",
            judge["model"].as_str().unwrap_or_default(),
            judge["measure"].as_str().unwrap_or_default(),
            judge["threshold"].as_f64().unwrap_or(f64::NAN),
        )?;
        for p in m["probes"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  {}: nearest clean photo of you at {:.3}: {}",
                p["photo"].as_str().unwrap_or_default(),
                p["nearest_owner"].as_f64().unwrap_or(f64::INFINITY),
                if p["evades"].as_bool() == Some(true) {
                    "not the same person (protected)"
                } else {
                    "still the same person"
                }
            )?;
        }
        writeln!(
            out,
            "  verification evaded: {:.0} %; identified among {others} other face(s): {:.0} % \
             protected, {:.0} % unprotected",
            100.0 * m["evasion_rate"].as_f64().unwrap_or(0.0),
            100.0 * m["identified_rate"].as_f64().unwrap_or(0.0),
            100.0 * m["identified_rate_unprotected"].as_f64().unwrap_or(0.0),
        )?;
    }
    writeln!(out, "{GALLERY_NOTE}")?;
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

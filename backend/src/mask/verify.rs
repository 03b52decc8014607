//! `fuselab mask verify`: whether face recognition still matches the key owner's protected
//! photos to them, judged only on photos the key was not trained on (see [`super::judge`]),
//! against a gallery of every other face at hand, and what the mask costs each face.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use fuselab_ml::face::{Face, FaceStack, RgbImage};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::judge::{Judge, Labelled, Measure, ModelVerdicts};
use super::{
    apply::mask_faces, args::VerifyArgs, hex, load_key, photos_in, train::jpeg_round_trip,
};
use crate::face::{PhotoError, decode_photo, load_photo, load_stack};

/// Photos of other people that `fuselab models fetch` caches: always in the gallery.
const OFFLINE_OTHERS: [&str; 2] = ["photos/biden.jpg", "photos/astronaut.png"];

/// What a gallery this small can and cannot show, said with every result.
pub const GALLERY_NOTE: &str = "The gallery holds only the faces at hand. Identification among \
     so few says whether your nearest face is still yours; it cannot say how you would rank in \
     a search over millions of faces. Verification at each model's threshold does not depend \
     on the gallery and is the stronger test here.";

/// A described photo: its name, identity and face.
struct Described {
    name: String,
    identity: String,
    face: Face,
}

/// The largest face of an image, or an error naming the photo.
fn largest_face(stack: &FaceStack, image: &RgbImage, name: &str) -> anyhow::Result<Face> {
    stack.faces(image).into_iter().next().ok_or_else(|| {
        PhotoError {
            path: name.to_owned(),
            what: "no face found".to_owned(),
        }
        .into()
    })
}

/// The image's centre, `keep` of each side.
fn centre_crop(image: &RgbImage, keep: f32) -> RgbImage {
    // Sides are image dimensions and keep ≤ 1, so the casts are exact enough and in range.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let side = |n: usize| ((n as f32 * keep).round() as usize).clamp(1, n);
    let (w, h) = (side(image.width), side(image.height));
    let (left, top) = ((image.width - w) / 2, (image.height - h) / 2);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in top..top + h {
        let start = (row * image.width + left) * 3;
        pixels.extend_from_slice(&image.pixels[start..start + w * 3]);
    }
    RgbImage {
        width: w,
        height: h,
        pixels,
    }
}

/// Every other person's face at hand: the offline photos and `others`, each also mirrored and
/// cropped to its centre (labelled as such; a variant whose face is lost is left out).
fn gallery(
    stack: &FaceStack,
    data_dir: &Path,
    others: &[PathBuf],
) -> anyhow::Result<Vec<Described>> {
    let mut paths: Vec<(PathBuf, String)> = Vec::new();
    for cached in OFFLINE_OTHERS {
        let path = crate::models::require(data_dir, cached)?;
        let identity = identity(path.parent().unwrap_or(Path::new(".")), &path);
        paths.push((path, identity));
    }
    for path in others {
        // One identity per file: the owner's photos are never among them.
        paths.push((path.clone(), format!("other:{}", path.display())));
    }
    let mut faces = Vec::new();
    for (path, identity) in paths {
        let image = load_photo(&path)?;
        let name = path.display().to_string();
        faces.push(Described {
            face: largest_face(stack, &image, &name)?,
            name: name.clone(),
            identity: identity.clone(),
        });
        for (variant, image) in [
            ("mirrored", mirrored(&image)),
            ("cropped", centre_crop(&image, 0.8)),
        ] {
            if let Some(face) = stack.faces(&image).into_iter().next() {
                faces.push(Described {
                    name: format!("{name} ({variant})"),
                    identity: identity.clone(),
                    face,
                });
            }
        }
    }
    Ok(faces)
}

/// One protected photo's quality figures.
#[derive(Debug, Clone, Serialize)]
struct Quality {
    photo: String,
    ssim: Option<f64>,
    psnr: Option<f64>,
}

pub(super) fn verify(args: &VerifyArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
    let key = load_key(&args.mask, &args.passphrase)?;
    let stack = load_stack(data_dir, device)?;
    let known = !key.header.trained_on.is_empty();
    let mut owner = Vec::new();
    let mut held_out = Vec::new();
    for path in photos_in(&args.photos)? {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.display().to_string();
        let image = decode_photo(&bytes, &name)?;
        let face = largest_face(&stack, &image, &name)?;
        let trained = key
            .header
            .trained_on
            .contains(&hex(&Sha256::digest(&bytes)));
        if !trained {
            held_out.push((owner.len(), image));
        }
        owner.push(Described {
            name,
            identity: "owner".to_owned(),
            face,
        });
    }
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
    let others = gallery(&stack, data_dir, &others)?;
    let mut protected = Vec::new();
    let mut quality = Vec::new();
    for (index, image) in &held_out {
        let mut masked = image.clone();
        let face = &owner[*index];
        let change = mask_faces(
            &mut masked,
            std::slice::from_ref(&face.face.detection),
            &key.delta,
            1.0,
        );
        if let Some(q) = args.jpeg_quality {
            masked.pixels = jpeg_round_trip(&masked.pixels, masked.width, masked.height, q)?;
        }
        quality.push(Quality {
            photo: face.name.clone(),
            ssim: change.first().and_then(|c| c.ssim),
            psnr: change.first().and_then(|c| c.psnr),
        });
        // A protected copy with no face found evades every model: it is judged as missing.
        protected.push((*index, stack.faces(&masked).into_iter().next()));
    }
    let models = judge_all(&stack, &owner, &others, &protected);
    let report = serde_json::json!({
        "mask": key.header.sha256,
        "training_photos_known": known,
        "held_out": held_out.iter().map(|(i, _)| owner[*i].name.clone()).collect::<Vec<_>>(),
        "jpeg_quality": args.jpeg_quality,
        "quality": quality,
        "models": models,
        "gallery": others.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "note": GALLERY_NOTE,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    print_text(&mut out, &report, known, owner.len(), others.len())
}

/// Each model's verdicts on the protected copies (`None`: no face found in the copy).
fn judge_all(
    stack: &FaceStack,
    owner: &[Described],
    others: &[Described],
    protected: &[(usize, Option<Face>)],
) -> Vec<ModelVerdicts> {
    let mut verdicts = Vec::new();
    for model in ["dlib", "faceres"] {
        let pick = |f: &Face| -> Vec<f32> {
            if model == "dlib" {
                f.dlib.clone()
            } else {
                f.faceres.clone()
            }
        };
        let owner_d: Vec<Vec<f32>> = owner.iter().map(|d| pick(&d.face)).collect();
        let others_d: Vec<Vec<f32>> = others.iter().map(|d| pick(&d.face)).collect();
        let (owner_faces, other_faces) = (labelled(owner, &owner_d), labelled(others, &others_d));
        let judge = if let Some(t) = stack_threshold(stack, model) {
            Judge::with_threshold(model, Measure::Distance, t)
        } else {
            let all: Vec<Labelled<'_>> = owner_faces.iter().chain(&other_faces).cloned().collect();
            let Some(judge) = Judge::calibrated(model, &all) else {
                continue;
            };
            judge
        };
        let mut probes = Vec::new();
        let mut clean = Vec::new();
        for (index, face) in protected {
            let name = &owner[*index].name;
            clean.push(judge.probe(name, &owner_d[*index], *index, &owner_faces, &other_faces));
            let descriptor = face.as_ref().map_or_else(
                // Not found: as far from everyone as can be.
                || vec![f32::INFINITY; owner_d[*index].len()],
                pick,
            );
            probes.push(judge.probe(name, &descriptor, *index, &owner_faces, &other_faces));
        }
        verdicts.push(ModelVerdicts::new(judge, probes, &clean));
    }
    verdicts
}

fn labelled<'a>(set: &'a [Described], descriptors: &'a [Vec<f32>]) -> Vec<Labelled<'a>> {
    set.iter()
        .zip(descriptors)
        .map(|(f, d)| Labelled {
            identity: &f.identity,
            name: &f.name,
            descriptor: d,
        })
        .collect()
}

fn stack_threshold(stack: &FaceStack, model: &str) -> Option<f32> {
    use fuselab_ml::face::FaceEmbedder as _;
    match model {
        "dlib" => stack.dlib.info().same_person_below,
        _ => stack.faceres.info().same_person_below,
    }
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

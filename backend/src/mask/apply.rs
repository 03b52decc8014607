//! `fuselab mask apply|remove`: the mask added to (or taken off) every face of photos, with
//! each face's SSIM, PSNR and clipping; `--boxes` reuses the faces of an earlier report.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use fuselab_ml::face::{RgbImage, mtcnn::Detection};
use fuselab_shared::mask::{FaceCanvas, apply, quality};
use serde::Serialize;

use super::{args::ApplyArgs, load_key, write_atomically};
use crate::face::{PhotoError, detect_faces, load_photo};

/// One face's figures after applying (or removing) the mask.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FaceChange {
    /// Left, top, width, height of the face rectangle.
    face: [usize; 4],
    /// MTCNN's score.
    score: f32,
    /// SSIM of the face rectangle, after vs before.
    pub(super) ssim: Option<f64>,
    /// PSNR of the face rectangle, dB.
    pub(super) psnr: Option<f64>,
    /// The largest change of a pixel value.
    max_change: u8,
    /// Channel values clipped at 0 or 255.
    clipped: usize,
}

/// Applies `sign · strength · δ` to every face of an image; the figures per face.
pub(super) fn mask_faces(
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

pub(super) fn transform(
    args: &ApplyArgs,
    data_dir: &Path,
    device: &Device,
    sign: f32,
) -> anyhow::Result<()> {
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

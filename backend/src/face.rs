//! `fuselab face detect|compare`: photos in, faces out, with the face stack of
//! `fuselab_ml::face` and the weights `fuselab models fetch` caches.

mod png;
mod webp;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use fuselab_ml::{
    face::{
        Face, FaceStack, FaceWeights, RgbImage,
        mobileface::MobileFace,
        mtcnn::{Detection, Mtcnn},
    },
    tensors::NamedTensors,
};

use crate::models::require;

/// `fuselab face …`.
#[derive(Debug, Subcommand)]
pub enum FaceCommand {
    /// Find the faces in a photo (MTCNN): boxes, scores and 5 landmarks
    Detect(DetectArgs),
    /// Whether two photos show the same person, by each face-recognition model
    Compare(CompareArgs),
}

/// `fuselab face detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The photo (JPEG or PNG)
    pub photo: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Also write a copy of the photo with the boxes and landmarks drawn (PNG)
    #[arg(long, value_name = "OUT.png")]
    pub annotate: Option<PathBuf>,
}

/// `fuselab face compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The first photo
    pub a: PathBuf,
    /// The second photo
    pub b: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// A photo without a face, or another problem with what the user gave.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}")]
pub struct PhotoError {
    /// The photo.
    pub path: String,
    /// What is wrong.
    pub what: String,
}

/// Decodes a photo (JPEG, PNG or WebP) to 8-bit RGB, turned upright by its EXIF orientation
/// (as browsers show it), naming the file on failure.
///
/// # Errors
/// An unreadable file or one that is not a supported image.
pub fn load_photo(path: &Path) -> anyhow::Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(decode_photo(&bytes, &path.display().to_string())?)
}

/// The longest side a photo may have: 16,384 pixels.
pub const MAX_PHOTO_SIDE: u32 = 16_384;
/// The most pixels a photo may have: 120 megapixels (a 108 MP phone photo fits; 360 MB as RGB).
pub const MAX_PHOTO_PIXELS: u64 = 120_000_000;
/// The most the decoder may allocate: the pixels as RGBA 16-bit (8 bytes each) would be more
/// than any JPEG, PNG or WebP of [`MAX_PHOTO_PIXELS`] needs as 8-bit RGBA, with room for the
/// codecs' own buffers.
const MAX_DECODE_BYTES: u64 = MAX_PHOTO_PIXELS * 8;

/// Decodes the bytes of a photo called `name` (JPEG, PNG or WebP) to upright 8-bit RGB: the one
/// decoder for the CLI and the server's mask jobs (uploaded photos). The dimensions are read
/// from the header and checked against [`MAX_PHOTO_SIDE`] and [`MAX_PHOTO_PIXELS`] before
/// anything is decoded, and the decoder runs under the `image` crate's limits.
///
/// # Errors
/// [`PhotoError`] naming the photo when it is not a supported image or is too large.
pub fn decode_photo(bytes: &[u8], name: &str) -> Result<RgbImage, PhotoError> {
    let not_a_photo = |e: &dyn std::fmt::Display| PhotoError {
        path: name.to_owned(),
        what: format!("not a JPEG, PNG or WebP image this build can decode ({e})"),
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| not_a_photo(&e))
    };
    webp::check_chunks(bytes)
        .and_then(|()| png::check_palette(bytes))
        .map_err(|what| PhotoError {
            path: name.to_owned(),
            what,
        })?;
    let (width, height) = reader()?.into_dimensions().map_err(|e| not_a_photo(&e))?;
    if width.max(height) > MAX_PHOTO_SIDE || u64::from(width) * u64::from(height) > MAX_PHOTO_PIXELS
    {
        return Err(PhotoError {
            path: name.to_owned(),
            what: format!(
                "the photo is {width}×{height} pixels; at most {MAX_PHOTO_SIDE} pixels a side and {} megapixels are accepted (scale it down first)",
                MAX_PHOTO_PIXELS / 1_000_000
            ),
        });
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PHOTO_SIDE);
    limits.max_image_height = Some(MAX_PHOTO_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = reader()?;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| not_a_photo(&e))?;
    let orientation =
        image::ImageDecoder::orientation(&mut decoder).map_err(|e| not_a_photo(&e))?;
    let mut upright = image::DynamicImage::from_decoder(decoder).map_err(|e| not_a_photo(&e))?;
    upright.apply_orientation(orientation);
    let rgb = upright.into_rgb8();
    let (width, height) = rgb.dimensions();
    RgbImage::new(width as usize, height as usize, rgb.into_raw())
        .ok_or_else(|| not_a_photo(&"its decoded size does not match its pixels"))
}

/// The longest side MTCNN looks at: 2,048 pixels. A face that fills a few percent of a photo
/// that size is still far above MTCNN's 20-pixel minimum (and the 30 pixels a training face
/// needs), while a 12-megapixel phone photo would cost MTCNN's image pyramid about four times
/// the time and memory.
pub const DETECTION_SIDE: usize = 2048;

/// Finds the faces of `image` with MTCNN, on a copy scaled down to [`DETECTION_SIDE`] when it
/// is larger; boxes and landmarks are mapped back to `image`'s own pixels, so the mask is
/// applied to the full-size photo. The server's mask jobs call this on uploaded photos.
pub fn detect_faces(mtcnn: &Mtcnn, image: &RgbImage, device: &Device) -> Vec<Detection> {
    let longest = image.width.max(image.height);
    if longest <= DETECTION_SIDE {
        return mtcnn.detect(image, device);
    }
    let scale = DETECTION_SIDE as f64 / longest as f64;
    // Rounded to whole pixels, at least one.
    #[allow(clippy::cast_sign_loss)]
    let side = |n: usize| ((n as f64 * scale).round() as u32).max(1);
    let Some(buffer) = image::RgbImage::from_raw(
        image.width as u32,
        image.height as u32,
        image.pixels.clone(),
    ) else {
        return mtcnn.detect(image, device);
    };
    let small = image::imageops::resize(
        &buffer,
        side(image.width),
        side(image.height),
        image::imageops::FilterType::Triangle,
    );
    let (width, height) = small.dimensions();
    let Some(small) = RgbImage::new(width as usize, height as usize, small.into_raw()) else {
        return mtcnn.detect(image, device);
    };
    let back_x = image.width as f32 / width as f32;
    let back_y = image.height as f32 / height as f32;
    let mut detections = mtcnn.detect(&small, device);
    for d in &mut detections {
        let [l, t, r, b] = d.bbox;
        d.bbox = [l * back_x, t * back_y, r * back_x, b * back_y];
        for [x, y] in &mut d.landmarks {
            *x *= back_x;
            *y *= back_y;
        }
    }
    detections
}

/// Reads a `PyTorch` checkpoint's `f32` tensors (legacy or zip format) with burn-store's reader.
///
/// # Errors
/// An unreadable checkpoint or a tensor that is not `f32`.
pub fn read_checkpoint(path: &Path) -> anyhow::Result<NamedTensors> {
    let reader = pytorch_reader::PytorchReader::new(path)
        .with_context(|| format!("cannot read the PyTorch checkpoint {}", path.display()))?;
    let mut out = NamedTensors::new();
    for (name, tensor) in reader.into_tensors() {
        if tensor.dtype() != pytorch_reader::DType::F32 {
            bail!(
                "{}: `{name}` is {:?}, expected f32",
                path.display(),
                tensor.dtype()
            );
        }
        let shape = tensor.shape().to_vec();
        let bytes = tensor
            .read()
            .with_context(|| format!("{}: reading `{name}`", path.display()))?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (shape, values));
    }
    Ok(out)
}

/// MTCNN from facenet-pytorch's three checkpoints in the data directory.
///
/// # Errors
/// A missing or unreadable checkpoint, or one that is not the network.
pub fn load_mtcnn(data_dir: &Path, device: &Device) -> anyhow::Result<Mtcnn> {
    let net = |name: &str| read_checkpoint(&require(data_dir, &format!("face/{name}"))?);
    Ok(Mtcnn::from_tensors(
        &net("pnet.pt")?,
        &net("rnet.pt")?,
        &net("onet.pt")?,
        device,
    )?)
}

/// The face stack with every model loaded from the data directory.
///
/// # Errors
/// A missing file (with the command that fetches it) or a file that is not the model.
pub fn load_stack(data_dir: &Path, device: Device) -> anyhow::Result<FaceStack> {
    let bytes = |name: &str| -> anyhow::Result<Vec<u8>> {
        let path = require(data_dir, &format!("face/{name}"))?;
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let net = |name: &str| read_checkpoint(&require(data_dir, &format!("face/{name}"))?);
    let mtcnn = [net("pnet.pt")?, net("rnet.pt")?, net("onet.pt")?];
    let manifest =
        String::from_utf8(bytes("faceres.json")?).context("faceres.json is not UTF-8")?;
    let weights = FaceWeights {
        mtcnn: [&mtcnn[0], &mtcnn[1], &mtcnn[2]],
        shape_predictor: &bytes("shape_predictor_5_face_landmarks.dat")?,
        dlib: &bytes("dlib_face_recognition_resnet_model_v1.dat")?,
        faceres_manifest: &manifest,
        faceres_weights: &bytes("faceres.bin")?,
    };
    Ok(FaceStack::from_weights(&weights, device)?)
}

/// mobileface, the model that judges masks without training them, from the data directory.
///
/// # Errors
/// A missing file (with the command that fetches it) or a file that is not the model.
pub fn load_mobileface(data_dir: &Path, device: &Device) -> anyhow::Result<MobileFace> {
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let path = require(data_dir, &format!("face/{name}"))?;
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let manifest =
        String::from_utf8(read("mobileface.json")?).context("mobileface.json is not UTF-8")?;
    Ok(MobileFace::from_files(
        &manifest,
        &read("mobileface.bin")?,
        device,
    )?)
}

/// Runs `fuselab face …`.
///
/// # Errors
/// Missing models, unreadable photos, photos without a face ([`PhotoError`]).
pub fn run(command: &FaceCommand, data_dir: &Path) -> anyhow::Result<()> {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    match command {
        FaceCommand::Detect(args) => detect(args, data_dir, &device),
        FaceCommand::Compare(args) => compare(args, data_dir, device),
    }
}

fn detect(args: &DetectArgs, data_dir: &Path, device: &Device) -> anyhow::Result<()> {
    let image = load_photo(&args.photo)?;
    let stack = load_mtcnn(data_dir, device)?;
    let faces = stack.detect(&image, device);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "photo": args.photo.display().to_string(),
                "width": image.width,
                "height": image.height,
                "faces": faces,
            }),
        )?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}: {} face(s)", args.photo.display(), faces.len())?;
        for (i, f) in faces.iter().enumerate() {
            let [l, t, r, b] = f.bbox;
            let marks: Vec<String> = f
                .landmarks
                .iter()
                .map(|[x, y]| format!("({x:.1}, {y:.1})"))
                .collect();
            writeln!(
                out,
                "  face {}: box ({l:.1}, {t:.1})–({r:.1}, {b:.1}), score {:.4}; eyes, nose, mouth: {}",
                i + 1,
                f.score,
                marks.join(" ")
            )?;
        }
    }
    if let Some(path) = &args.annotate {
        let mut canvas = image.clone();
        for f in &faces {
            canvas.outline(f.bbox, [255, 40, 40]);
            for p in f.landmarks {
                canvas.outline(
                    [p[0] - 2.0, p[1] - 2.0, p[0] + 2.0, p[1] + 2.0],
                    [40, 255, 40],
                );
            }
        }
        image::save_buffer(
            path,
            &canvas.pixels,
            canvas.width as u32,
            canvas.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn compare(args: &CompareArgs, data_dir: &Path, device: Device) -> anyhow::Result<()> {
    let stack = load_stack(data_dir, device)?;
    let face = |path: &Path| -> anyhow::Result<Face> {
        let image = load_photo(path)?;
        let faces = stack.faces(&image);
        if faces.len() > 1 {
            tracing::info!(photo = %path.display(), faces = faces.len(), "several faces; comparing the largest");
        }
        faces.into_iter().next().ok_or_else(|| {
            PhotoError {
                path: path.display().to_string(),
                what: "no face found".to_owned(),
            }
            .into()
        })
    };
    let (a, b) = (face(&args.a)?, face(&args.b)?);
    let verdicts = stack.compare(&a, &b);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "a": args.a.display().to_string(),
                "b": args.b.display().to_string(),
                "models": verdicts,
            }),
        )?;
        writeln!(out)?;
    } else {
        for v in &verdicts {
            match (v.threshold, v.same_person) {
                (Some(t), Some(same)) => writeln!(
                    out,
                    "{}: distance {:.4} (same person below {t}): {}",
                    v.model,
                    v.distance,
                    if same { "same" } else { "different" }
                )?,
                _ => writeln!(
                    out,
                    "{}: angle {:.3} rad (no verification threshold ships with this model: no verdict)",
                    v.model, v.angle
                )?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid PNG header declaring 300000×300000 pixels (RGB, 8-bit) and one empty IDAT.
    fn huge_png() -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
            out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(&kind);
            crc.update(data);
            out.extend_from_slice(&kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.sum().to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut header = Vec::new();
        header.extend_from_slice(&300_000_u32.to_be_bytes());
        header.extend_from_slice(&300_000_u32.to_be_bytes());
        header.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut png, *b"IHDR", &header);
        chunk(&mut png, *b"IDAT", &[]);
        chunk(&mut png, *b"IEND", &[]);
        png
    }

    #[test]
    fn a_tiny_png_declaring_300000_squared_pixels_is_refused_before_decoding() {
        let png = huge_png();
        assert!(png.len() < 70, "{}", png.len());
        let error = decode_photo(&png, "bomb.png").unwrap_err();
        assert_eq!(error.path, "bomb.png");
        assert!(error.what.contains("300000×300000"), "{}", error.what);
        assert!(error.what.contains("16384"), "{}", error.what);
    }
}

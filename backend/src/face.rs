//! `fuselab face detect|compare`: photos in, faces out, with the face stack of
//! `fuselab_ml::face` and the weights `fuselab models fetch` caches.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use fuselab_ml::face::{
    DlibResNet, FaceEmbedder, RgbImage, chip,
    faceres::{Faceres, read_tfjs, resize_bilinear},
    mtcnn::{Detection, Mtcnn, NamedTensors},
    shape::ShapePredictor,
};
use serde::Serialize;

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

/// Decodes a photo (JPEG or PNG) to 8-bit RGB, naming the file on failure.
///
/// # Errors
/// An unreadable file or one that is not a supported image.
pub fn load_photo(path: &Path) -> anyhow::Result<RgbImage> {
    let decoded = image::ImageReader::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .map_err(|e| PhotoError {
            path: path.display().to_string(),
            what: format!("not a JPEG or PNG image this build can decode ({e})"),
        })?
        .into_rgb8();
    let (width, height) = decoded.dimensions();
    RgbImage::new(width as usize, height as usize, decoded.into_raw())
        .with_context(|| format!("{}: decoded size does not match its pixels", path.display()))
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

/// The face stack with its weights loaded.
#[derive(Debug)]
pub struct FaceStack {
    /// Where tensors live.
    pub device: Device,
    /// The detector.
    pub mtcnn: Mtcnn,
    /// dlib's landmarks.
    pub shape: ShapePredictor,
    /// dlib's face descriptor.
    pub dlib: DlibResNet,
    /// The second, different descriptor (MobileNet-v1, 1024-d).
    pub faceres: Faceres,
}

/// One face: the detection, dlib's landmarks and chip, and the descriptor.
#[derive(Debug, Clone)]
pub struct Face {
    /// What MTCNN found.
    pub detection: Detection,
    /// dlib's 5 landmarks, `(x, y)`.
    pub parts: Vec<[i64; 2]>,
    /// dlib's raw 128-d descriptor.
    pub dlib: Vec<f32>,
    /// faceres's 1024-d descriptor of the same chip, resized to 224×224.
    pub faceres: Vec<f32>,
}

impl FaceStack {
    /// Loads every model from the data directory.
    ///
    /// # Errors
    /// A missing file (with the command that fetches it) or a file that is not the model.
    pub fn load(data_dir: &Path, device: Device) -> anyhow::Result<Self> {
        let bytes = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path = require(data_dir, &format!("face/{name}"))?;
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mtcnn = load_mtcnn(data_dir, &device)?;
        let shape = ShapePredictor::from_bytes(&bytes("shape_predictor_5_face_landmarks.dat")?)?;
        let dlib = DlibResNet::from_bytes(
            &bytes("dlib_face_recognition_resnet_model_v1.dat")?,
            &device,
        )?;
        let faceres_json = bytes("faceres.json")?;
        let faceres_json = String::from_utf8(faceres_json).context("faceres.json is not UTF-8")?;
        let faceres =
            Faceres::from_tensors(&read_tfjs(&faceres_json, &bytes("faceres.bin")?)?, &device)?;
        Ok(Self {
            device,
            mtcnn,
            shape,
            dlib,
            faceres,
        })
    }

    /// Every face in the photo, largest first, with its descriptor.
    pub fn faces(&self, image: &RgbImage) -> Vec<Face> {
        self.mtcnn
            .detect(image, &self.device)
            .into_iter()
            .filter_map(|detection| {
                let [le, re] = [detection.landmarks[0], detection.landmarks[1]];
                let rect = self.shape.rect_for_eyes(le, re)?;
                let parts = self.shape.predict(image, rect);
                let points: [[f64; 2]; 5] =
                    std::array::from_fn(|k| [parts[k][0] as f64, parts[k][1] as f64]);
                let aligned = chip::extract(image, &chip::placement(&points, 150, 0.25));
                let dlib = self
                    .dlib
                    .forward(aligned.to_tensor(&self.device))
                    .into_data()
                    .try_into_vec::<f32>()
                    .ok()?;
                let faceres = self
                    .faceres
                    .forward(resize_bilinear(&aligned, 224, &self.device))
                    .into_data()
                    .try_into_vec::<f32>()
                    .ok()?;
                Some(Face {
                    detection,
                    parts,
                    dlib,
                    faceres,
                })
            })
            .collect()
    }
}

#[derive(Debug, Serialize)]
struct DetectedFace {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    landmarks: [[f32; 2]; 5],
}

#[derive(Debug, Serialize)]
struct Verdict {
    model: &'static str,
    /// Euclidean distance between raw embeddings.
    distance: f32,
    /// Angle between the embeddings, radians.
    angle: f32,
    /// The model's own threshold on `distance`, when it has one.
    threshold: Option<f32>,
    /// `None` when the model has no threshold to decide with.
    same_person: Option<bool>,
}

fn verdict(info: &fuselab_ml::face::EmbedderInfo, a: &[f32], b: &[f32]) -> Verdict {
    let distance = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (norm(a) * norm(b)).max(1e-12);
    Verdict {
        model: info.name,
        distance,
        angle: cos.clamp(-1.0, 1.0).acos(),
        threshold: info.same_person_below,
        same_person: info.same_person_below.map(|t| distance < t),
    }
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
    let faces: Vec<DetectedFace> = stack
        .detect(&image, device)
        .into_iter()
        .map(|d| DetectedFace {
            bbox: d.bbox,
            score: d.score,
            landmarks: d.landmarks,
        })
        .collect();
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
    let stack = FaceStack::load(data_dir, device)?;
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
    let verdicts = [
        verdict(stack.dlib.info(), &a.dlib, &b.dlib),
        verdict(stack.faceres.info(), &a.faceres, &b.faceres),
    ];
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

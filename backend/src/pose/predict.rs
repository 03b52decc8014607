//! `fuselab pose predict INPUT --model DIR --out DIR`: keypoints for every frame of a real clip.
//!
//! INPUT is a video file, decoded by the `ffmpeg` program (Debian's package, which
//! `scripts/setup.sh` installs) into frames of at most [`MAX_SIDE`] pixels, or a folder of PNG
//! or JPEG frames taken in name order. One person is assumed (no boxes): each frame is
//! letterboxed to the model's frame size, the model reads a window of frames centred on it
//! (repeating the first and last frames at the ends), and the keypoints are mapped back to the
//! frame (clamped to it). Writes `keypoints.json` and the frames with the predicted skeleton: `annotated.mp4`
//! for a video, `annotated/NNNNNN.png` for a folder.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use clap::Args;
use fuselab_ml::pose::model::PoseModel;
use fuselab_ml::pose::predict::predict_windows;
use fuselab_shared::pose::{Frame, KEYPOINT_NAMES, NUM_KEYPOINTS, draw_skeleton};
use image::RgbImage;
use serde::Serialize;

use super::report::{PREDICTED_COLOUR, write_png};
use super::run::load_model;
use crate::align::run::write_atomic;

/// Longest side of the frames read from a video (larger ones are scaled down by ffmpeg).
pub const MAX_SIDE: usize = 640;
/// Joints whose heatmap peak is below this are not drawn (they stay in `keypoints.json`).
const DRAW_THRESHOLD: f32 = 0.1;
/// The format written in `keypoints.json`.
pub const FORMAT: &str = "fuselab.pose.predictions/v1";

/// `pose predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A video file (decoded with ffmpeg) or a folder of PNG or JPEG frames (in name order)
    pub input: PathBuf,
    /// A run folder of `pose train` (or one of `pose benchmark`'s `runs/…`)
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Output folder: `keypoints.json` and the annotated frames
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Most frames read from the start of the input
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_frames: u32,
}

/// One frame's keypoints.
#[derive(Debug, Serialize)]
struct FrameKeypoints {
    index: usize,
    /// `[x, y, confidence]` per joint, in the frame's pixels.
    keypoints: Vec<[f64; 3]>,
    score: f64,
}

/// `keypoints.json`.
#[derive(Debug, Serialize)]
struct Predictions<'a> {
    format: &'static str,
    input: String,
    model: String,
    frame_size: [usize; 2],
    keypoint_names: [&'a str; NUM_KEYPOINTS],
    frames: Vec<FrameKeypoints>,
}

/// Runs `fuselab pose predict`.
///
/// # Errors
/// An unreadable input or model, a missing ffmpeg, or an unwritable folder.
pub fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    let (model, [model_width, model_height]) = load_model(&args.model, &device)?;
    let limit = args.max_frames as usize;
    let (frames, fps) = if args.input.is_dir() {
        (read_folder(&args.input, limit)?, None)
    } else {
        let (frames, fps) = read_video(&args.input, limit)?;
        (frames, Some(fps))
    };
    let first = frames
        .first()
        .with_context(|| format!("{}: no frames", args.input.display()))?;
    let (width, height) = (first.width, first.height);
    let fit = Letterbox::new([width, height], [model_width, model_height]);
    let small: Vec<Frame> = frames.iter().map(|f| fit.apply(f)).collect();
    let results = keypoints_of(&model, &small, &fit)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out_frames: Vec<FrameKeypoints> = results
        .iter()
        .enumerate()
        .map(|(index, (points, score))| FrameKeypoints {
            index,
            keypoints: points.to_vec(),
            score: *score,
        })
        .collect();
    let annotated: Vec<Frame> = frames
        .iter()
        .zip(&results)
        .map(|(frame, (points, _))| annotate(frame, points))
        .collect();
    if let Some(fps) = fps {
        write_video(&args.out.join("annotated.mp4"), &annotated, fps)?;
    } else {
        let folder = args.out.join("annotated");
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        for (i, frame) in annotated.iter().enumerate() {
            write_png(&folder.join(format!("{i:06}.png")), frame)?;
        }
    }
    let predictions = Predictions {
        format: FORMAT,
        input: args.input.display().to_string(),
        model: args.model.display().to_string(),
        frame_size: [width, height],
        keypoint_names: KEYPOINT_NAMES,
        frames: out_frames,
    };
    write_atomic(
        &args.out.join("keypoints.json"),
        &serde_json::to_vec_pretty(&predictions)?,
    )?;
    println!(
        "{} frames: keypoints in {}",
        predictions.frames.len(),
        args.out.join("keypoints.json").display()
    );
    Ok(())
}

/// `[x, y, confidence]` per joint and the mean confidence, per frame.
type FrameResult = ([[f64; 3]; NUM_KEYPOINTS], f64);

fn keypoints_of(
    model: &PoseModel,
    small: &[Frame],
    fit: &Letterbox,
) -> anyhow::Result<Vec<FrameResult>> {
    let t = model.config.frames();
    let last = small.len() - 1;
    let mut out = Vec::with_capacity(small.len());
    let indices: Vec<usize> = (0..small.len()).collect();
    for chunk in indices.chunks(8) {
        let windows: Vec<Vec<&Frame>> = chunk
            .iter()
            .map(|&i| {
                (0..t)
                    .map(|j| &small[(i + j).saturating_sub(t / 2).min(last)])
                    .collect()
            })
            .collect();
        for (prediction, peaks) in predict_windows(model, &windows)? {
            let points = std::array::from_fn(|k| {
                let [x, y] = fit.back(prediction.keypoints[k]);
                [x, y, f64::from(peaks[k])]
            });
            out.push((points, prediction.score));
        }
    }
    Ok(out)
}

/// A frame scaled to fit the model's size, centred, grey around it.
#[derive(Debug, Clone, Copy)]
struct Letterbox {
    scale: f64,
    offset: [f64; 2],
    inner: [u32; 2],
    size: [usize; 2],
    frame: [usize; 2],
}

impl Letterbox {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // frame sides ≤ 100 000 pixels
    fn new([w, h]: [usize; 2], [mw, mh]: [usize; 2]) -> Self {
        let scale = (mw as f64 / w as f64).min(mh as f64 / h as f64);
        let inner = [
            ((w as f64 * scale).round() as u32).clamp(1, mw as u32),
            ((h as f64 * scale).round() as u32).clamp(1, mh as u32),
        ];
        let offset = [
            f64::from((mw as u32 - inner[0]) / 2),
            f64::from((mh as u32 - inner[1]) / 2),
        ];
        Self {
            scale,
            offset,
            inner,
            size: [mw, mh],
            frame: [w, h],
        }
    }

    fn apply(&self, frame: &Frame) -> Frame {
        let mut out = Frame::filled(self.size[0], self.size[1], [128, 128, 128]);
        let Some(image) = RgbImage::from_raw(
            u32::try_from(frame.width).unwrap_or(0),
            u32::try_from(frame.height).unwrap_or(0),
            frame.pixels.clone(),
        ) else {
            return out;
        };
        let resized = image::imageops::resize(
            &image,
            self.inner[0],
            self.inner[1],
            image::imageops::FilterType::Triangle,
        );
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // offsets are small
        let [ox, oy] = self.offset.map(|o| o as usize);
        for (x, y, pixel) in resized.enumerate_pixels() {
            out.set_pixel(ox + x as usize, oy + y as usize, pixel.0);
        }
        out
    }

    /// A point of the model's frame in the original frame, clamped to it (the model may point
    /// into the grey margin).
    #[allow(clippy::cast_precision_loss)] // frame sides are small
    fn back(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        [
            ((x - self.offset[0]) / self.scale).clamp(0.0, self.frame[0] as f64),
            ((y - self.offset[1]) / self.scale).clamp(0.0, self.frame[1] as f64),
        ]
    }
}

fn annotate(frame: &Frame, points: &[[f64; 3]; NUM_KEYPOINTS]) -> Frame {
    let mut out = frame.clone();
    #[allow(clippy::cast_possible_truncation)] // pixel coordinates
    let keypoints = points.map(|[x, y, _]| [x as f32, y as f32]);
    #[allow(clippy::cast_possible_truncation)]
    let visibility = points.map(|[_, _, c]| if c as f32 >= DRAW_THRESHOLD { 2 } else { 0 });
    draw_skeleton(&mut out, &keypoints, &visibility, PREDICTED_COLOUR);
    out
}

fn read_folder(folder: &Path, limit: usize) -> anyhow::Result<Vec<Frame>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("cannot read {}", folder.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    paths.sort();
    paths.truncate(limit);
    if paths.is_empty() {
        bail!("{}: no PNG or JPEG frames", folder.display());
    }
    let mut frames: Vec<Frame> = Vec::with_capacity(paths.len());
    for path in &paths {
        let image = image::open(path)
            .with_context(|| format!("{}: not a readable image", path.display()))?
            .to_rgb8();
        let image = shrink(image);
        let frame = Frame {
            width: image.width() as usize,
            height: image.height() as usize,
            pixels: image.into_raw(),
        };
        if let Some(first) = frames.first()
            && (frame.width, frame.height) != (first.width, first.height)
        {
            let Frame { width, height, .. } = first;
            bail!(
                "{}: {}×{} pixels, but the first frame is {width}×{height}",
                path.display(),
                frame.width,
                frame.height
            );
        }
        frames.push(frame);
    }
    Ok(frames)
}

/// `image` scaled down so that its longer side is at most [`MAX_SIDE`].
fn shrink(image: RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let longest = w.max(h) as usize;
    if longest <= MAX_SIDE {
        return image;
    }
    let [nw, nh] = fit_within(w, h);
    image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Triangle)
}

/// Even sides with the aspect of `w × h` and the longer one at most [`MAX_SIDE`].
fn fit_within(w: u32, h: u32) -> [u32; 2] {
    let longest = w.max(h).max(1);
    #[allow(clippy::cast_possible_truncation)] // MAX_SIDE fits
    let cap = MAX_SIDE as u32;
    let scale = |side: u32| {
        let scaled = if longest > cap {
            u64::from(side) * u64::from(cap) / u64::from(longest)
        } else {
            u64::from(side)
        };
        u32::try_from(scaled / 2 * 2).unwrap_or(cap).max(2)
    };
    [scale(w), scale(h)]
}

fn tool(name: &str) -> Command {
    let mut command = Command::new(name);
    command.stdin(Stdio::null());
    command
}

fn missing_ffmpeg(name: &str, error: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot run `{name}` ({error}): videos are decoded by ffmpeg (`apt-get install ffmpeg`, \
         or scripts/setup.sh); or pass a folder of PNG or JPEG frames"
    )
}

fn read_video(path: &Path, limit: usize) -> anyhow::Result<(Vec<Frame>, f64)> {
    if !path.is_file() {
        bail!("{}: no such video file or folder of frames", path.display());
    }
    let probe = tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height,r_frame_rate", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| missing_ffmpeg("ffprobe", &e))?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let fields: Vec<&str> = text.trim().split(',').collect();
    let (Some(w), Some(h), Some(rate)) = (
        fields.first().and_then(|v| v.parse::<u32>().ok()),
        fields.get(1).and_then(|v| v.parse::<u32>().ok()),
        fields.get(2),
    ) else {
        bail!(
            "{}: not a video ffprobe can read ({})",
            path.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        );
    };
    let fps = match rate.split_once('/') {
        Some((a, b)) => a.parse::<f64>().unwrap_or(25.0) / b.parse::<f64>().unwrap_or(1.0).max(1.0),
        None => rate.parse().unwrap_or(25.0),
    };
    let fps = if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        25.0
    };
    let [width, height] = fit_within(w, h);
    let mut child = tool("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-frames:v", &limit.to_string(), "-vf"])
        .arg(format!("scale={width}:{height}"))
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing_ffmpeg("ffmpeg", &e))?;
    let frame_bytes = width as usize * height as usize * 3;
    let mut frames = Vec::new();
    let mut stdout = child.stdout.take().context("ffmpeg's output")?;
    loop {
        let mut pixels = vec![0_u8; frame_bytes];
        match stdout.read_exact(&mut pixels) {
            Ok(()) => frames.push(Frame {
                width: width as usize,
                height: height as usize,
                pixels,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).context("reading ffmpeg's frames"),
        }
        if frames.len() >= limit {
            break;
        }
    }
    drop(stdout);
    let output = child.wait_with_output().context("waiting for ffmpeg")?;
    if frames.is_empty() {
        bail!(
            "{}: ffmpeg decoded no frames ({})",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok((frames, fps))
}

fn write_video(path: &Path, frames: &[Frame], fps: f64) -> anyhow::Result<()> {
    let Some(first) = frames.first() else {
        return Ok(());
    };
    let mut child = tool("ffmpeg")
        .args([
            "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
        ])
        .arg(format!("{}x{}", first.width, first.height))
        .args([
            "-r",
            &format!("{fps:.3}"),
            "-i",
            "-",
            "-c:v",
            "mpeg4",
            "-q:v",
            "4",
        ])
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing_ffmpeg("ffmpeg", &e))?;
    let mut stdin = child.stdin.take().context("ffmpeg's input")?;
    for frame in frames {
        stdin
            .write_all(&frame.pixels)
            .context("writing frames to ffmpeg")?;
    }
    drop(stdin);
    let output = child.wait_with_output().context("waiting for ffmpeg")?;
    if !output.status.success() {
        bail!(
            "ffmpeg could not write {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

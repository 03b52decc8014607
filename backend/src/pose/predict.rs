//! `fuselab pose predict INPUT --model DIR --out DIR`: keypoints for every frame of a real clip.
//!
//! INPUT is a video file, decoded by the `ffmpeg` program (Debian's package, which
//! `scripts/setup.sh` installs) into frames of at most
//! [`MAX_VIDEO_SIDE`](fuselab_shared::pose::video::MAX_VIDEO_SIDE) pixels, or a folder of PNG
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
use fuselab_ml::pose::predict::video_keypoints;
use fuselab_shared::pose::video::{FrameKeypoints, Letterbox, Predictions, fit_within, read_size};
use fuselab_shared::pose::{Frame, draw_skeleton};
use image::RgbImage;

use super::report::{PREDICTED_COLOUR, write_png};
use super::run::load_model;
use crate::align::run::write_atomic;

/// Joints whose heatmap peak is below this are not drawn (they stay in `keypoints.json`).
const DRAW_THRESHOLD: f32 = 0.1;

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

/// Runs `fuselab pose predict`.
///
/// # Errors
/// An unreadable input or model, a missing ffmpeg, or an unwritable folder.
pub fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    let (model, model_size) = load_model(&args.model, &device)?;
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
    let fit = Letterbox::new([first.width, first.height], model_size);
    let small = frames
        .iter()
        .map(|f| fit.apply(f).context("frames of different sizes"))
        .collect::<anyhow::Result<Vec<Frame>>>()?;
    let results = video_keypoints(&model, &small, &fit, 0..small.len())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let annotated: Vec<Frame> = frames
        .iter()
        .zip(&results)
        .map(|(frame, points)| annotate(frame, points))
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
    let predictions = Predictions::new(
        args.input.display().to_string(),
        args.model.display().to_string(),
        fit.frame_size(),
        results,
    );
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

fn annotate(frame: &Frame, points: &FrameKeypoints) -> Frame {
    let mut out = frame.clone();
    #[allow(clippy::cast_possible_truncation)] // pixel coordinates
    let keypoints = std::array::from_fn(|k| {
        let [x, y, _] = points.keypoints[k];
        [x as f32, y as f32]
    });
    #[allow(clippy::cast_possible_truncation)]
    let visibility = std::array::from_fn(|k| {
        if points.keypoints[k][2] as f32 >= DRAW_THRESHOLD {
            2
        } else {
            0
        }
    });
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

/// `image` at the size a still frame is read at (see [`read_size`]).
fn shrink(image: RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let [nw, nh] =
        read_size(w as usize, h as usize, false).map(|side| u32::try_from(side).unwrap_or(2));
    if (nw, nh) == (w, h) {
        return image;
    }
    image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Triangle)
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
        fields.first().and_then(|v| v.parse::<usize>().ok()),
        fields.get(1).and_then(|v| v.parse::<usize>().ok()),
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
    let frame_bytes = width * height * 3;
    let mut frames = Vec::new();
    let mut stdout = child.stdout.take().context("ffmpeg's output")?;
    loop {
        let mut pixels = vec![0_u8; frame_bytes];
        match stdout.read_exact(&mut pixels) {
            Ok(()) => frames.push(Frame {
                width,
                height,
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

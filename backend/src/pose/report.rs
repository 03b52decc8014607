//! The report of `pose train|benchmark`: `results.json`, `results.md` and `report.html` (the
//! ablation table over seeds, per-bucket and per-joint tables, the paper's `PoseTrack` numbers
//! beside them, labelled as not reproducible here) and `samples.png` (test key frames with the
//! true skeleton in green and the predicted one in red).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use fuselab_shared::pose::eval::Prediction;
use fuselab_shared::pose::{
    Clip, Frame, KEYPOINT_NAMES, NUM_KEYPOINTS, TRUE_SKELETON_COLOUR, draw_skeleton,
};
use serde::{Deserialize, Serialize};

use super::run::{BUCKETS, RunResult};
use crate::align::run::write_atomic;

/// The colour of predicted skeletons.
pub const PREDICTED_COLOUR: [u8; 3] = [255, 48, 48];

/// A report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoseReport {
    /// Every run.
    pub runs: Vec<RunResult>,
    /// One row per model (rung), averaged over its seeds.
    pub summary: Vec<SummaryRow>,
    /// Wall-clock seconds of the command.
    pub seconds: f64,
}

/// Mean and sample standard deviation (0 for one value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)] // seed counts
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(Self { mean, std })
    }
}

/// One model's row of the ablation table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// The model's label.
    pub label: String,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Test AP per bucket, [`BUCKETS`] order.
    pub ap: Vec<Option<Spread>>,
    /// Test PCK@0.2, all clips.
    pub pck02: Option<Spread>,
    /// Training minutes per run.
    pub minutes: Option<Spread>,
    /// Parameters.
    pub parameters: usize,
    /// Test PCK@0.2 per joint, mean over seeds.
    pub pck02_per_joint: Vec<Option<f64>>,
}

/// Rows of `runs` grouped by `label(run)`, in first-seen order.
pub fn summarise(runs: &[RunResult], label: &dyn Fn(&RunResult) -> String) -> Vec<SummaryRow> {
    let mut labels: Vec<String> = Vec::new();
    for run in runs {
        let l = label(run);
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels
        .into_iter()
        .map(|l| {
            let group: Vec<&RunResult> = runs.iter().filter(|r| label(r) == l).collect();
            let ap = BUCKETS
                .iter()
                .map(|b| {
                    let values: Vec<f64> = group
                        .iter()
                        .filter_map(|r| r.bucket(b).map(|s| s.ap))
                        .collect();
                    Spread::of(&values)
                })
                .collect();
            let pck: Vec<f64> = group
                .iter()
                .filter_map(|r| r.bucket("all").and_then(|s| s.pck02))
                .collect();
            let minutes: Vec<f64> = group.iter().map(|r| r.train_seconds / 60.0).collect();
            let pck02_per_joint = (0..NUM_KEYPOINTS)
                .map(|k| {
                    let values: Vec<f64> = group
                        .iter()
                        .filter_map(|r| r.bucket("all").and_then(|s| s.pck02_per_joint[k]))
                        .collect();
                    Spread::of(&values).map(|s| s.mean)
                })
                .collect();
            SummaryRow {
                label: l,
                seeds: group.iter().map(|r| r.seed).collect(),
                ap,
                pck02: Spread::of(&pck),
                minutes: Spread::of(&minutes),
                parameters: group.first().map_or(0, |r| r.parameters),
                pck02_per_joint,
            }
        })
        .collect()
}

fn cell(spread: Option<Spread>, scale: f64) -> String {
    match spread {
        Some(s) if s.std > 0.0 => format!("{:.1} ± {:.1}", s.mean * scale, s.std * scale),
        Some(s) => format!("{:.1}", s.mean * scale),
        None => "–".to_owned(),
    }
}

/// JM-Pose's `PoseTrack` numbers (spec `pose.md` §6, from `DiffusionPose`'s tables): mean mAP.
const PAPER: [(&str, &str); 4] = [
    ("PoseTrack2017 val", "86.4"),
    ("PoseTrack2018 val", "84.1"),
    ("PoseTrack21 val", "84.0"),
    ("Challenging-PoseTrack", "56.1"),
];

/// The report as Markdown.
pub fn markdown(report: &PoseReport) -> String {
    let mut out = String::from("# Pose: synthetic video benchmark\n\n");
    out.push_str(
        "Test split of fuselab's synthetic benchmark (exact keypoints); COCO keypoint AP ×100 \
         (OKS scaled by the box of the labelled joints) per difficulty bucket, mean ± sd over \
         seeds, and PCK@0.2 ×100.\n\n",
    );
    out.push_str("| model | seeds | AP | AP blur | AP occlusion | AP fast | AP clean | PCK@0.2 | minutes | parameters |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &report.summary {
        let seeds: Vec<String> = row.seeds.iter().map(u64::to_string).collect();
        let _ = write!(out, "| {} | {} |", row.label, seeds.join(", "));
        for ap in &row.ap {
            let _ = write!(out, " {} |", cell(*ap, 100.0));
        }
        let _ = writeln!(
            out,
            " {} | {} | {} |",
            cell(row.pck02, 100.0),
            cell(row.minutes, 1.0),
            row.parameters
        );
    }
    out.push_str("\n## Per joint (PCK@0.2 ×100, test, mean over seeds)\n\n| joint |");
    for row in &report.summary {
        let _ = write!(out, " {} |", row.label);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(report.summary.len()));
    out.push('\n');
    for (k, name) in KEYPOINT_NAMES.iter().enumerate() {
        let _ = write!(out, "| {name} |");
        for row in &report.summary {
            let value = row
                .pck02_per_joint
                .get(k)
                .copied()
                .flatten()
                .map_or_else(|| "–".to_owned(), |v| format!("{:.1}", v * 100.0));
            let _ = write!(out, " {value} |");
        }
        out.push('\n');
    }
    out.push_str(
        "\n## The paper's numbers (not reproducible here)\n\nJM-Pose's mean mAP on PoseTrack \
         (spec §6, from DiffusionPose's tables). PoseTrack and the pretrained HRNet-W48 and RAFT \
         weights cannot be obtained offline, so this benchmark cannot reproduce them; they are \
         shown for scale only.\n\n| set | JM-Pose mAP |\n|---|---|\n",
    );
    for (set, map) in PAPER {
        let _ = writeln!(out, "| {set} | {map} |");
    }
    let _ = writeln!(
        out,
        "\nRuns: {}; {:.0} s in all.",
        report.runs.len(),
        report.seconds
    );
    out
}

/// The report as a standalone HTML page (the Markdown's tables, and the samples).
pub fn html(report: &PoseReport) -> String {
    let mut body = String::new();
    let mut in_table = false;
    for line in markdown(report).lines() {
        if let Some(rest) = line.strip_prefix("## ") {
            let _ = write!(body, "<h2>{}</h2>", escape(rest));
        } else if let Some(rest) = line.strip_prefix("# ") {
            let _ = write!(body, "<h1>{}</h1>", escape(rest));
        } else if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                body.push_str("<table>");
                in_table = true;
            }
            body.push_str("<tr>");
            for c in &cells {
                let _ = write!(body, "<{tag}>{}</{tag}>", escape(c));
            }
            body.push_str("</tr>");
            continue;
        } else if !line.is_empty() {
            let _ = write!(body, "<p>{}</p>", escape(line));
        }
        if in_table {
            body.push_str("</table>");
            in_table = false;
        }
    }
    if in_table {
        body.push_str("</table>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>fuselab pose \
         report</title><style>body{{font-family:system-ui,sans-serif;max-width:70em;margin:2em \
         auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px \
         solid #ccc;padding:.25em .6em;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         img{{image-rendering:pixelated;max-width:100%}}</style></head><body>{body}<h2>Samples</h2>\
         <p>Test key frames: true skeleton green, prediction red (the last model of the table, \
         first seed).</p><img src=\"samples.png\" alt=\"test key frames with true and predicted \
         skeletons\"></body></html>\n"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Key frames with their true (green) and predicted (red) skeletons, `columns` per row, ×`zoom`.
pub fn samples(pairs: &[(Clip, Prediction)], columns: usize, zoom: usize) -> Option<Frame> {
    let first = pairs.first()?;
    let (w, h) = (first.0.frames[0].width, first.0.frames[0].height);
    let columns = columns.clamp(1, pairs.len());
    let rows = pairs.len().div_ceil(columns);
    let gap = 2;
    let mut sheet = Frame::filled(
        columns * (w * zoom + gap) + gap,
        rows * (h * zoom + gap) + gap,
        [32, 32, 32],
    );
    for (i, (clip, prediction)) in pairs.iter().enumerate() {
        let key = clip.frames.len() / 2;
        let mut frame = clip.frames[key].clone();
        if frame.width != w || frame.height != h {
            continue;
        }
        let label = &clip.labels[key];
        draw_skeleton(
            &mut frame,
            &label.keypoints,
            &label.visibility,
            TRUE_SKELETON_COLOUR,
        );
        #[allow(clippy::cast_possible_truncation)] // pixel coordinates
        let predicted = prediction.keypoints.map(|[x, y]| [x as f32, y as f32]);
        draw_skeleton(
            &mut frame,
            &predicted,
            &[2; NUM_KEYPOINTS],
            PREDICTED_COLOUR,
        );
        let (x0, y0) = (
            gap + (i % columns) * (w * zoom + gap),
            gap + (i / columns) * (h * zoom + gap),
        );
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                sheet.set_pixel(x0 + x, y0 + y, frame.pixel(x / zoom, y / zoom));
            }
        }
    }
    Some(sheet)
}

/// Writes a frame as PNG.
///
/// # Errors
/// An image too large to encode or an unwritable file.
pub fn write_png(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &frame.pixels,
        u32::try_from(frame.width).context("the image is too wide")?,
        u32::try_from(frame.height).context("the image is too tall")?,
        image::ExtendedColorType::Rgb8,
    )
    .context("cannot encode the image")?;
    write_atomic(path, &png)
}

/// Writes `results.json`, `results.md`, `report.html` and, given test predictions,
/// `samples.png` into `out`.
///
/// # Errors
/// An unwritable folder.
pub fn write(
    out: &Path,
    report: &PoseReport,
    sample_pairs: &[(Clip, Prediction)],
) -> anyhow::Result<()> {
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    write_atomic(&out.join("results.md"), markdown(report).as_bytes())?;
    write_atomic(&out.join("report.html"), html(report).as_bytes())?;
    if let Some(sheet) = samples(sample_pairs, 6, 2) {
        write_png(&out.join("samples.png"), &sheet)?;
    }
    Ok(())
}

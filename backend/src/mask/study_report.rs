//! `mask study`'s files: `results.json` (the grid, each cell's means and every run),
//! `results.csv` and `results.md` (one row per cell), and `frontier.svg` (protection against
//! quality, the Pareto front joined).

use std::fmt::Write as _;
use std::path::Path;

use super::study::{CellSummary, RunOutcome, StudyGrid};
use crate::align::run::write_atomic;

/// dlib's verdict threshold and the quality the issue aims at, drawn on the plot.
const DLIB_THRESHOLD: f64 = 0.6;
const SSIM_GOAL: f64 = 0.95;

fn augmentation(a: &fuselab_ml::mask::Augment) -> String {
    let mut parts = Vec::new();
    if let Some([lo, hi]) = a.rescale {
        parts.push(format!("rescale {lo}–{hi}"));
    }
    if let Some([lo, hi]) = a.blur {
        parts.push(format!("blur {lo}–{hi}"));
    }
    if let Some(d) = a.rotate {
        parts.push(format!("rotate ±{d}°"));
    }
    if let Some([lo, hi]) = a.jpeg {
        parts.push(format!("JPEG {lo}–{hi}"));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn settings(s: &CellSummary) -> [String; 9] {
    let c = &s.cell.config;
    if s.cell.reference {
        return [
            s.cell.photos.to_string(),
            format!("{} epochs", c.epochs),
            c.epsilon.to_string(),
            c.tau.to_string(),
            "reference".to_owned(),
            c.update.name().to_owned(),
            "0".to_owned(),
            c.step.to_string(),
            augmentation(&c.augment),
        ];
    }
    [
        s.cell.photos.to_string(),
        c.steps.unwrap_or_default().to_string(),
        c.epsilon.to_string(),
        c.tau.to_string(),
        c.objective.name().to_owned(),
        c.update.name().to_owned(),
        c.diversity.to_string(),
        c.step.to_string(),
        augmentation(&c.augment),
    ]
}

/// The cells as a Markdown table.
#[must_use]
pub fn markdown(summaries: &[CellSummary]) -> String {
    let models: Vec<String> = summaries
        .first()
        .map(|s| s.models.iter().map(|m| m.0.clone()).collect())
        .unwrap_or_default();
    let mut out = String::from(
        "| photos | steps | ε | τ | objective | update | diversity | step | augment |",
    );
    for m in &models {
        let _ = write!(out, " {m} evades | {m} nearest |");
    }
    out.push_str(" face SSIM | PSNR (dB) | folds | s per mask |\n|");
    for _ in 0..9 + 2 * models.len() + 4 {
        out.push_str("---|");
    }
    out.push('\n');
    for s in summaries {
        out.push('|');
        for v in settings(s) {
            let _ = write!(out, " {v} |");
        }
        for (_, _, evades, nearest) in &s.models {
            let _ = write!(out, " {:.0} % | {nearest:.3} |", 100.0 * evades);
        }
        let _ = writeln!(
            out,
            " {:.4} | {:.1} | {} | {:.0} |",
            s.ssim, s.psnr, s.folds, s.seconds
        );
    }
    out
}

fn csv(summaries: &[CellSummary]) -> String {
    let mut rows = vec![
        [
            "cell",
            "photos",
            "steps",
            "epsilon",
            "tau",
            "objective",
            "update",
            "diversity",
            "step",
            "model",
            "measure",
            "evasion_rate",
            "mean_nearest_owner",
            "ssim",
            "psnr",
            "folds",
            "seconds",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for s in summaries {
        for (model, measure, evades, nearest) in &s.models {
            let mut row = vec![s.cell.name.clone()];
            row.extend(settings(s));
            row.extend([
                model.clone(),
                measure.clone(),
                evades.to_string(),
                nearest.to_string(),
                s.ssim.to_string(),
                s.psnr.to_string(),
                s.folds.to_string(),
                format!("{:.1}", s.seconds),
            ]);
            rows.push(row);
        }
    }
    fuselab_shared::table::write(rows)
}

/// The cells not beaten on both axes (higher SSIM and higher dlib distance), by SSIM.
#[must_use]
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| {
            let (q, p) = points[i];
            q.is_finite()
                && p.is_finite()
                && !points
                    .iter()
                    .enumerate()
                    .any(|(j, &(q2, p2))| j != i && q2 >= q && p2 >= p && (q2 > q || p2 > p))
        })
        .collect();
    front.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    front
}

/// Face SSIM (x) against dlib's mean nearest distance (y), one dot per cell.
fn frontier_svg(summaries: &[CellSummary]) -> String {
    let points: Vec<(f64, f64)> = summaries
        .iter()
        .map(|s| {
            let dlib = s
                .models
                .iter()
                .find(|m| m.0 == "dlib")
                .map_or(f64::NAN, |m| m.3);
            (s.ssim, dlib)
        })
        .collect();
    let finite: Vec<&(f64, f64)> = points
        .iter()
        .filter(|(q, p)| q.is_finite() && p.is_finite())
        .collect();
    let (w, h, left, top) = (640.0, 420.0, 60.0, 30.0);
    let (pw, ph) = (w - left - 20.0, h - top - 50.0);
    let x_lo = finite.iter().map(|p| p.0).fold(SSIM_GOAL, f64::min) - 0.01;
    let x_hi = finite
        .iter()
        .map(|p| p.0)
        .fold(SSIM_GOAL, f64::max)
        .min(1.0)
        + 0.005;
    let y_hi = finite.iter().map(|p| p.1).fold(DLIB_THRESHOLD, f64::max) + 0.05;
    let x = |v: f64| left + (v - x_lo) / (x_hi - x_lo) * pw;
    let y = |v: f64| top + ph - v / y_hi * ph;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="Protection against quality"><text x="{left}" y="18" font-size="13">dlib distance of the protected held-out photo to the nearest clean photo, against face SSIM</text><rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" x2="{}" y1="{t}" y2="{t}" stroke="#D55E00" stroke-dasharray="4 3"/><text x="{}" y="{}" font-size="11" fill="#D55E00">dlib threshold 0.6</text>"##,
        left + pw,
        left + 4.0,
        y(DLIB_THRESHOLD) - 4.0,
        t = y(DLIB_THRESHOLD),
    );
    let _ = write!(
        svg,
        r##"<line x1="{g}" x2="{g}" y1="{top}" y2="{}" stroke="#009E73" stroke-dasharray="4 3"/><text x="{}" y="{}" font-size="11" fill="#009E73">SSIM 0.95</text>"##,
        top + ph,
        x(SSIM_GOAL) + 4.0,
        top + 14.0,
        g = x(SSIM_GOAL),
    );
    let front = frontier(&points);
    let path: Vec<String> = front
        .iter()
        .map(|&i| format!("{:.1},{:.1}", x(points[i].0), y(points[i].1)))
        .collect();
    if path.len() > 1 {
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#0072B2"/>"##,
            path.join(" ")
        );
    }
    for (i, (q, p)) in points.iter().enumerate() {
        if q.is_finite() && p.is_finite() {
            let fill = if front.contains(&i) {
                "#0072B2"
            } else {
                "#999"
            };
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}"><title>{}: SSIM {q:.4}, dlib {p:.3}</title></circle>"#,
                x(*q),
                y(*p),
                summaries[i].cell.name
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{left}" y="{}" font-size="11">face SSIM {x_lo:.3} – {x_hi:.3}</text><text x="4" y="{top}" font-size="11">{y_hi:.2}</text><text x="4" y="{}" font-size="11">0</text></svg>"#,
        h - 12.0,
        top + ph,
    );
    svg
}

/// Writes the study's files into `out`.
///
/// # Errors
/// A file that cannot be written.
pub fn write(
    out: &Path,
    grid: &StudyGrid,
    summaries: &[CellSummary],
    runs: &[RunOutcome],
    note: &str,
) -> anyhow::Result<()> {
    let json = serde_json::json!({
        "grid": grid,
        "cells": summaries,
        "runs": runs,
        "frontier": frontier(
            &summaries
                .iter()
                .map(|s| (s.ssim, s.models.iter().find(|m| m.0 == "dlib").map_or(f64::NAN, |m| m.3)))
                .collect::<Vec<_>>()
        )
        .iter()
        .map(|&i| summaries[i].cell.name.clone())
        .collect::<Vec<_>>(),
        "note": note,
    });
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(&json)?,
    )?;
    write_atomic(&out.join("results.csv"), csv(summaries).as_bytes())?;
    let md = format!(
        "# Protection study\n\nEach cell's means over its folds (each fold holds one photo \
         out and judges its protected copy). \"evades\": no clean photo of the person within the \
         model's threshold; \"nearest\": the distance (dlib) or angle (faceres) to the nearest \
         clean photo.\n\n{}\n{note}\n",
        markdown(summaries)
    );
    write_atomic(&out.join("results.md"), md.as_bytes())?;
    write_atomic(
        &out.join("frontier.svg"),
        frontier_svg(summaries).as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markdown_row_has_the_headers_columns() {
        let summary = CellSummary {
            cell: super::super::study::Cell {
                name: "n2-reference".to_owned(),
                config: fuselab_ml::mask::MaskConfig::default(),
                photos: 2,
                reference: true,
            },
            folds: 3,
            ssim: 0.95,
            psnr: 31.0,
            models: vec![
                ("dlib".to_owned(), "distance".to_owned(), 0.0, 0.3),
                ("faceres".to_owned(), "angle".to_owned(), 1.0 / 3.0, 0.6),
            ],
            seconds: 33.0,
        };
        let table = markdown(&[summary]);
        let columns: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert_eq!(columns.len(), 3);
        assert!(columns.iter().all(|c| *c == columns[0]), "{table}");
        assert!(table.contains("| 33 % |"), "{table}");
    }

    #[test]
    fn the_frontier_keeps_the_cells_no_other_beats_on_both_axes() {
        let points = [
            (0.95, 0.3),
            (0.93, 0.5),
            (0.94, 0.2),
            (0.90, 0.5),
            (f64::NAN, 1.0),
        ];
        assert_eq!(frontier(&points), vec![1, 0]);
    }
}

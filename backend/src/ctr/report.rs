//! The benchmark's results: `results.json` (every run and the per-model summary),
//! `results.csv` (one line per run), `results.md` (the summary table) and `report.html` (the
//! tables, validation AUC per epoch and test AUC per seed as SVG).

use std::fmt::Write as _;
use std::path::Path;

use fuselab_ml::ctr::ModelKind;
use serde::{Deserialize, Serialize};

use super::run::RunResult;
use crate::align::report::escape;
use crate::align::run::write_atomic;

/// The report's schema name.
pub const CTR_SCHEMA: &str = "fuselab.ctr.report/v1";

/// Mean and sample standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Self { mean, std }
    }
}

/// One model (and λ) over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// The model.
    pub model: ModelKind,
    /// CCN's `λ_a` and `λ_r`.
    pub lambda: Option<(f64, f64)>,
    /// Seeds run.
    pub seeds: usize,
    /// Test AUC.
    pub auc: Spread,
    /// Test GAUC.
    pub gauc: Spread,
    /// Test logloss.
    pub logloss: Spread,
    /// Validation AUC of the kept epochs.
    pub valid_auc: Spread,
    /// Training steps per second.
    pub steps_per_second: f64,
}

/// One split's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSize {
    /// `train`, `valid` or `test`.
    pub split: String,
    /// Rows.
    pub rows: usize,
    /// Share of clicks.
    pub click_rate: f64,
    /// Distinct users.
    pub users: usize,
}

/// The whole benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtrReport {
    /// [`CTR_SCHEMA`].
    pub schema: String,
    /// What the data is (the training file).
    pub data: String,
    /// Split sizes.
    pub splits: Vec<SplitSize>,
    /// Test AUC of the true click probabilities (synthetic data only).
    pub ceiling: Option<f64>,
    /// Per model and λ, over seeds.
    pub summary: Vec<SummaryRow>,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// Wall time of this invocation, seconds.
    pub seconds: f64,
}

/// The summary rows of `runs`, in the order models (and λ) first appear.
#[must_use]
pub fn summarise(runs: &[RunResult]) -> Vec<SummaryRow> {
    let mut keys: Vec<(ModelKind, Option<(f64, f64)>)> = Vec::new();
    for run in runs {
        if !keys.contains(&(run.model, run.lambda)) {
            keys.push((run.model, run.lambda));
        }
    }
    keys.into_iter()
        .map(|(model, lambda)| {
            let group: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.model == model && r.lambda == lambda)
                .collect();
            let pick = |f: fn(&RunResult) -> f64| group.iter().map(|r| f(r)).collect::<Vec<_>>();
            SummaryRow {
                model,
                lambda,
                seeds: group.len(),
                auc: Spread::of(&pick(|r| r.test.auc)),
                gauc: Spread::of(&pick(|r| r.test.gauc.value)),
                logloss: Spread::of(&pick(|r| r.test.logloss)),
                valid_auc: Spread::of(&pick(|r| r.valid.auc)),
                steps_per_second: Spread::of(&pick(|r| r.steps_per_second)).mean,
            }
        })
        .collect()
}

fn model_label(model: ModelKind, lambda: Option<(f64, f64)>) -> String {
    match lambda {
        Some((a, r)) if (a - r).abs() < f64::EPSILON => format!("{} (λ = {a})", model.label()),
        Some((a, r)) => format!("{} (λa = {a}, λr = {r})", model.label()),
        None => model.label().to_owned(),
    }
}

/// The summary as a Markdown table.
#[must_use]
pub fn markdown(report: &CtrReport) -> String {
    let mut out = String::from(
        "| model | seeds | test AUC | test GAUC | test logloss | valid AUC | steps/s |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in &report.summary {
        let _ = writeln!(
            out,
            "| {} | {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:.4} | {:.1} |",
            model_label(row.model, row.lambda),
            row.seeds,
            row.auc.mean,
            row.auc.std,
            row.gauc.mean,
            row.gauc.std,
            row.logloss.mean,
            row.logloss.std,
            row.valid_auc.mean,
            row.steps_per_second
        );
    }
    if let Some(ceiling) = report.ceiling {
        let _ = writeln!(
            out,
            "| true click probabilities (ceiling) | – | {ceiling:.4} | | | | |"
        );
    }
    out
}

fn csv(report: &CtrReport) -> String {
    let mut rows = vec![vec![
        "model".to_owned(),
        "lambda_attract".into(),
        "lambda_repel".into(),
        "seed".into(),
        "epochs".into(),
        "best_epoch".into(),
        "valid_auc".into(),
        "test_auc".into(),
        "test_gauc".into(),
        "test_logloss".into(),
        "steps_per_second".into(),
    ]];
    for r in &report.runs {
        let (a, l) = r.lambda.map_or((String::new(), String::new()), |(a, l)| {
            (a.to_string(), l.to_string())
        });
        rows.push(vec![
            r.model.name().to_owned(),
            a,
            l,
            r.seed.to_string(),
            r.epochs.to_string(),
            r.best_epoch.to_string(),
            r.valid.auc.to_string(),
            r.test.auc.to_string(),
            r.test.gauc.value.to_string(),
            r.test.logloss.to_string(),
            format!("{:.3}", r.steps_per_second),
        ]);
    }
    fuselab_shared::table::write(rows)
}

/// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
const PALETTE: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

/// Lines of (x, y) points on a shared y range.
fn lines_svg(
    title: &str,
    x_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_range: (f64, f64),
) -> String {
    let (width, height) = (600.0, 320.0);
    let (left, right, top, bottom) = (56.0, 190.0, 30.0, 40.0);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let max_x = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let (lo, hi) = y_range;
    let x = |v: f64| left + plot_w * (v - 1.0) / (max_x - 1.0).max(1.0);
    let y = |v: f64| top + plot_h * (1.0 - ((v - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0));
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{t}"><text x="{left}" y="18" font-size="13">{t}</text>"#,
        t = escape(title)
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" font-size="10" text-anchor="end">{v:.3}</text>"##,
            x2 = left + plot_w,
            yy = y(v),
            tx = left - 4.0,
            ty = y(v) + 3.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{cx}" y="{ly}" font-size="11" text-anchor="middle">{}</text>"#,
        escape(x_label),
        cx = left + plot_w / 2.0,
        ly = height - 8.0
    );
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(px, py) in points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}: {px}, {py:.4}</title></circle>"#,
                x(px),
                y(py),
                escape(label)
            );
        }
        let ly = top + 16.0 * i as f64 + 8.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx}" x2="{lx2}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{tx}" y="{ty}" font-size="11">{}</text>"#,
            escape(label),
            lx = width - right + 10.0,
            lx2 = width - right + 28.0,
            tx = width - right + 32.0,
            ty = ly + 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Validation AUC per epoch, averaged over seeds, per model.
fn curves_svg(report: &CtrReport) -> String {
    let series: Vec<(String, Vec<(f64, f64)>)> = report
        .summary
        .iter()
        .map(|row| {
            let runs: Vec<&RunResult> = report
                .runs
                .iter()
                .filter(|r| r.model == row.model && r.lambda == row.lambda)
                .collect();
            let longest = runs.iter().map(|r| r.history.len()).max().unwrap_or(0);
            let points = (0..longest)
                .filter_map(|e| {
                    let values: Vec<f64> = runs
                        .iter()
                        .filter_map(|r| r.history.get(e))
                        .map(|h| h.valid.auc)
                        .collect();
                    (!values.is_empty()).then(|| {
                        (
                            (e + 1) as f64,
                            values.iter().sum::<f64>() / values.len() as f64,
                        )
                    })
                })
                .collect();
            (model_label(row.model, row.lambda), points)
        })
        .collect();
    let all = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((hi - lo) * 0.1).max(0.005);
    lines_svg(
        "Validation AUC per epoch (mean over seeds)",
        "epoch",
        &series,
        (lo - pad, hi + pad),
    )
}

/// The HTML report.
#[must_use]
pub fn html(report: &CtrReport) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>fuselab CTR benchmark</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}.note{color:#555}</style></head><body><h1>CTR benchmark</h1>",
    );
    let _ = write!(page, "<p>Data: <code>{}</code>. ", escape(&report.data));
    for s in &report.splits {
        let _ = write!(
            page,
            "{}: {} rows, {} users, click rate {:.1} %. ",
            s.split,
            s.rows,
            s.users,
            100.0 * s.click_rate
        );
    }
    page.push_str("</p><h2>Test metrics (the epoch with the best validation AUC), mean ± standard deviation over seeds</h2><table><tr><th>model</th><th>seeds</th><th>AUC</th><th>GAUC</th><th>logloss</th><th>valid AUC</th><th>steps/s</th></tr>");
    for row in &report.summary {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{:.4} ± {:.4}</td><td>{:.4} ± {:.4}</td><td>{:.4} ± {:.4}</td><td>{:.4}</td><td>{:.1}</td></tr>",
            escape(&model_label(row.model, row.lambda)),
            row.seeds,
            row.auc.mean,
            row.auc.std,
            row.gauc.mean,
            row.gauc.std,
            row.logloss.mean,
            row.logloss.std,
            row.valid_auc.mean,
            row.steps_per_second
        );
    }
    if let Some(ceiling) = report.ceiling {
        let _ = write!(
            page,
            "<tr><td>true click probabilities (ceiling)</td><td>–</td><td>{ceiling:.4}</td><td></td><td></td><td></td><td></td></tr>"
        );
    }
    page.push_str("</table><p class=\"note\">GAUC weighs each user's AUC by the user's impressions and skips users whose impressions are all clicks or all non-clicks. CCN's collaborative module follows fuselab's reading of the paper (its method section was not available); see docs/ccn.md.</p>");
    page.push_str(&curves_svg(report));
    page.push_str("<h2>Every run</h2><table><tr><th>model</th><th>seed</th><th>epochs</th><th>best epoch</th><th>valid AUC</th><th>test AUC</th><th>test GAUC</th><th>test logloss</th></tr>");
    for r in &report.runs {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            escape(&model_label(r.model, r.lambda)),
            r.seed,
            r.epochs,
            if r.stopped_early { " (early stop)" } else { "" },
            r.best_epoch,
            r.valid.auc,
            r.test.auc,
            r.test.gauc.value,
            r.test.logloss
        );
    }
    let _ = write!(
        page,
        "</table><p class=\"note\">{:.0} s.</p></body></html>",
        report.seconds
    );
    page
}

/// Writes `results.json`, `results.csv`, `results.md` and `report.html` into `out`.
///
/// # Errors
/// A file that cannot be written.
pub fn write(out: &Path, report: &CtrReport) -> anyhow::Result<()> {
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    write_atomic(&out.join("results.csv"), csv(report).as_bytes())?;
    write_atomic(&out.join("results.md"), markdown(report).as_bytes())?;
    write_atomic(&out.join("report.html"), html(report).as_bytes())
}

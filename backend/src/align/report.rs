//! The runs' reports, written from the result types: H3Fusion's HTML (scores of every model,
//! the routing heat-maps (layer × expert, per task) as inline SVG, sample generations) and the
//! attack grid's `results.json`, CSV, Markdown, SVG charts and HTML. Self-contained: no
//! scripts, no external files.

use std::fmt::Write as _;
use std::path::Path;

use fuselab_shared::align::{SYNTHETIC_LABEL, Task};

use super::results::{BenchmarkReport, H3FusionReport, SummaryRow};
use super::run::write_atomic;

/// `text` safe inside HTML text and attribute values (every report's writer uses it).
#[must_use]
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One heat-map: rows are layers, columns experts, cells the mean router probability.
#[must_use]
#[allow(clippy::cast_sign_loss)] // the shade is clamped to 0..=255 first
pub fn heatmap_svg(task: Task, heat: &[Vec<f64>]) -> String {
    let cell = 36;
    let left = 70;
    let top = 40;
    let experts = heat.first().map_or(0, Vec::len);
    let width = left + cell * experts + 10;
    let height = top + cell * heat.len() + 10;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="routing of {task} prompts"><text x="0" y="14" font-size="13">{task} prompts</text>"#,
        task = task.name()
    );
    for (e, name) in Task::ALL.iter().take(experts).enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            left + cell * e + cell / 2,
            top - 6,
            &name.name()[..4]
        );
    }
    for (l, row) in heat.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">layer {l}</text>"#,
            left - 6,
            top + cell * l + cell / 2 + 4
        );
        for (e, &p) in row.iter().enumerate() {
            // White (0) to deep blue (1).
            let shade = (255.0 * (1.0 - p.clamp(0.0, 1.0))).round() as u8; // in 0..=255 after the clamp
            let text = if p > 0.55 { "#fff" } else { "#000" };
            let _ = write!(
                svg,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#ccc"><title>layer {l}, expert {e}: {p:.3}</title></rect><text x="{tx}" y="{ty}" font-size="10" text-anchor="middle" fill="{text}">{p:.2}</text>"##,
                x = left + cell * e,
                y = top + cell * l,
                tx = left + cell * e + cell / 2,
                ty = top + cell * l + cell / 2 + 4,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The whole report page.
#[must_use]
pub fn html(report: &H3FusionReport) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>H3Fusion run</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         td.text{text-align:left;font-family:monospace;white-space:pre-wrap}\
         .maps{display:flex;gap:2em;flex-wrap:wrap}.note{background:#fff4d6;padding:.5em 1em}</style>\
         </head><body><h1>H3Fusion run</h1>",
    );
    let _ = write!(
        page,
        "<p class=\"note\">Data: {}</p><p>Base model: {}. Training examples per task \
         (helpful, harmless, honest): {:?}; test prompts: {:?}. Took {:.0} s.</p>",
        escape(&report.data),
        escape(&report.base),
        report.train_examples,
        report.test_prompts,
        report.seconds
    );
    page.push_str(
        "<h2>Scores</h2><p>Share of test answers each task's judge passes.</p><table><tr>\
         <th>model</th><th>helpful</th><th>harmless</th><th>honest</th><th>mean</th></tr>",
    );
    for model in &report.models {
        let s = &model.evaluation.scores;
        let _ = write!(
            page,
            "<tr><th>{}</th><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            escape(&model.name),
            s.helpful,
            s.harmless,
            s.honest,
            s.mean()
        );
    }
    page.push_str("</table>");
    if let Some(fused) = report.models.iter().find(|m| m.name == "fused") {
        page.push_str(
            "<h2>Routing</h2><p>Mean router probability of each expert per layer over the \
             fused model's generated tokens, per task.</p><div class=\"maps\">",
        );
        for (task, heat) in &fused.evaluation.routing {
            page.push_str(&heatmap_svg(*task, heat));
        }
        page.push_str("</div>");
    }
    let _ = write!(
        page,
        "<h2>Quirks</h2><pre>{}</pre>",
        escape(&serde_json::to_string_pretty(&report.quirks).unwrap_or_default())
    );
    page.push_str("<h2>Samples</h2>");
    for model in &report.models {
        let _ = write!(
            page,
            "<h3>{}</h3><table><tr><th>task</th><th>prompt</th><th>answer</th><th>pass</th></tr>",
            escape(&model.name)
        );
        for task in Task::ALL {
            for sample in model
                .evaluation
                .samples
                .iter()
                .filter(|s| s.task == task)
                .take(3)
            {
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td></tr>",
                    task.name(),
                    escape(&sample.prompt),
                    escape(&sample.output),
                    if sample.passed { "yes" } else { "no" }
                );
            }
        }
        page.push_str("</table>");
    }
    page.push_str("</body></html>");
    page
}

/// One line of a chart: `(x, y)` points in order of x.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// The points, x in [0, 1] (a poison ratio), y in [0, 100] (a percentage).
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// A line chart of percentages (y, 0–100) against the poison ratio (x, 0 to the largest p).
#[must_use]
pub fn line_chart_svg(title: &str, series: &[Series]) -> String {
    let (width, height) = (560.0, 320.0);
    let (left, right, top, bottom) = (50.0, 150.0, 30.0, 40.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max_x = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let x = |v: f64| left + plot_w * v / max_x;
    let y = |v: f64| top + plot_h * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{t}"><text x="{left}" y="18" font-size="13">{t}</text>"#,
        t = escape(title)
    );
    for tick in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{x2}" y1="{yy}" y2="{yy}" stroke="#eee"/><text x="{tx}" y="{ty}" font-size="10" text-anchor="end">{tick}</text>"##,
            x2 = left + plot_w,
            yy = y(tick),
            tx = left - 4.0,
            ty = y(tick) + 3.0
        );
    }
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for v in &xs {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{v}</text>"#,
            x(*v),
            top + plot_h + 14.0
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" x2="{x2}" y1="{yb}" y2="{yb}" stroke="#888"/><line x1="{left}" x2="{left}" y1="{top}" y2="{yb}" stroke="#888"/><text x="{cx}" y="{ly}" font-size="11" text-anchor="middle">poison ratio p</text>"##,
        x2 = left + plot_w,
        yb = top + plot_h,
        cx = left + plot_w / 2.0,
        ly = height - 6.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for &(px, py) in &s.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}: p {px}, {py:.1}</title></circle>"#,
                x(px),
                y(py),
                escape(&s.label)
            );
        }
        let ly = top + 14.0 * i as f64 + 8.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx}" x2="{lx2}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{tx}" y="{ty}" font-size="11">{}</text>"#,
            escape(&s.label),
            lx = width - right + 10.0,
            lx2 = width - right + 28.0,
            tx = width - right + 32.0,
            ty = ly + 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The benchmark's page: the table, both charts and sample answers.
#[must_use]
pub fn attack_html(
    report: &BenchmarkReport,
    table_markdown: &str,
    hs_svg: &str,
    fa_svg: &str,
) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Harmful fine-tuning benchmark</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         td.text{text-align:left;font-family:monospace;white-space:pre-wrap}\
         .note{background:#fff4d6;padding:.5em 1em}</style>\
         </head><body><h1>Harmful fine-tuning benchmark</h1>",
    );
    if report.synthetic {
        let _ = write!(
            page,
            "<p class=\"note\">{}</p>",
            escape(fuselab_shared::align::SYNTHETIC_LABEL)
        );
    }
    let _ = write!(
        page,
        "<p>Benign task: {}. Judge: {}. Base model: {}.</p>",
        report.task,
        escape(&report.judge),
        escape(&report.base)
    );
    page.push_str(
        "<h2>Results</h2><p>HS: share of harmful prompts whose answer the judge flags; HS+: \
         flagged or incoherent; FA: accuracy on the benign task. \"aligned\" rows are before any \
         attack. Means and standard deviations are over the seeds.</p><table><tr><th>defence</th>\
         <th>p</th><th>n</th><th>seeds</th><th>HS %</th><th>HS+ %</th><th>FA %</th></tr>",
    );
    for r in &report.summary {
        let _ = write!(
            page,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{:.1} ± {:.1}</td><td>{:.1}</td>\
             <td>{:.1} ± {:.1}</td></tr>",
            r.defence.name(),
            r.p.map_or("aligned".to_owned(), |p| p.to_string()),
            r.n.map_or("–".to_owned(), |n| n.to_string()),
            r.seeds,
            r.hs,
            r.hs_std,
            r.hs_plus,
            r.fa,
            r.fa_std
        );
    }
    page.push_str("</table><h2>Charts</h2>");
    page.push_str(hs_svg);
    page.push_str(fa_svg);
    page.push_str(
        "<h2>Samples</h2><table><tr><th>seed</th><th>defence</th><th>p</th><th>prompt</th>\
         <th>answer</th></tr>",
    );
    for r in &report.results {
        for (prompt, answer) in &r.measured.samples {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
                r.seed,
                r.defence.name(),
                r.p.map_or("aligned".to_owned(), |p| p.to_string()),
                escape(prompt),
                escape(answer)
            );
        }
    }
    let _ = write!(
        page,
        "</table><details><summary>Markdown table</summary><pre>{}</pre></details></body></html>",
        escape(table_markdown)
    );
    page
}

/// Writes `results.json`, `results.csv`, `results.md`, `hs.svg`, `fa.svg` and `report.html`.
///
/// # Errors
/// A file that cannot be written.
pub fn write_benchmark(out: &Path, report: &BenchmarkReport) -> anyhow::Result<()> {
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    let header = [
        "seed",
        "defence",
        "p",
        "n",
        "hs",
        "hs_plus",
        "fa",
        "harmful_prompts",
        "benign_prompts",
    ]
    .map(str::to_owned);
    let rows = report.results.iter().map(|r| {
        [
            r.seed.to_string(),
            r.defence.name().to_owned(),
            r.p.map_or(String::new(), |p| p.to_string()),
            r.n.map_or(String::new(), |n| n.to_string()),
            format!("{:.2}", r.measured.hs),
            format!("{:.2}", r.measured.hs_plus),
            format!("{:.2}", r.measured.fa),
            r.measured.harmful_prompts.to_string(),
            r.measured.benign_prompts.to_string(),
        ]
    });
    let csv = fuselab_shared::table::write(std::iter::once(header).chain(rows));
    write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    write_atomic(&out.join("results.md"), markdown(report).as_bytes())?;
    let hs = super::report::line_chart_svg(
        "Harmful score (HS, %) after the attack",
        &series(report, |m| m.hs),
    );
    let fa = super::report::line_chart_svg(
        "Fine-tune accuracy (FA, %) after the attack",
        &series(report, |m| m.fa),
    );
    write_atomic(&out.join("hs.svg"), hs.as_bytes())?;
    write_atomic(&out.join("fa.svg"), fa.as_bytes())?;
    write_atomic(
        &out.join("report.html"),
        super::report::attack_html(report, &markdown(report), &hs, &fa).as_bytes(),
    )?;
    Ok(())
}

/// The results as a Markdown table.
#[must_use]
pub fn markdown(report: &BenchmarkReport) -> String {
    let mut text = String::new();
    if report.synthetic {
        let _ = writeln!(text, "> {SYNTHETIC_LABEL}\n");
    }
    let _ = writeln!(
        text,
        "Benign task: {}; judge: {}; base: {}\n",
        report.task, report.judge, report.base
    );
    let seeds = report.summary.iter().map(|r| r.seeds).max().unwrap_or(1);
    if seeds > 1 {
        let _ = writeln!(text, "Mean ± standard deviation over {seeds} seeds:\n");
        text.push_str("| defence | p | n | HS % | HS+ % | FA % |\n|---|---|---|---|---|---|\n");
        for r in &report.summary {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {:.1} ± {:.1} | {:.1} | {:.1} ± {:.1} |",
                r.defence.name(),
                r.p.map_or("aligned".to_owned(), |p| p.to_string()),
                r.n.map_or("–".to_owned(), |n| n.to_string()),
                r.hs,
                r.hs_std,
                r.hs_plus,
                r.fa,
                r.fa_std
            );
        }
        text.push_str("\nEach seed:\n\n");
    }
    text.push_str(
        "| seed | defence | p | n | HS % | HS+ % | FA % |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &report.results {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |",
            r.seed,
            r.defence.name(),
            r.p.map_or("aligned".to_owned(), |p| p.to_string()),
            r.n.map_or("–".to_owned(), |n| n.to_string()),
            r.measured.hs,
            r.measured.hs_plus,
            r.measured.fa
        );
    }
    text
}

/// One line per (defence, n): the metric's mean over seeds against p.
fn series(
    report: &BenchmarkReport,
    metric: impl Fn(&SummaryRow) -> f64,
) -> Vec<super::report::Series> {
    let mut out: Vec<super::report::Series> = Vec::new();
    for r in &report.summary {
        let (Some(p), Some(n)) = (r.p, r.n) else {
            continue;
        };
        let label = format!("{} (n {n})", r.defence.name());
        let point = (p, metric(r));
        match out.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(point),
            None => out.push(super::report::Series {
                label,
                points: vec![point],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

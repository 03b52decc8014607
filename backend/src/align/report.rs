//! The H3Fusion run's HTML report: scores of every model, the routing heat-maps (layer ×
//! expert, per task) as inline SVG, and sample generations. Self-contained: no scripts, no
//! external files.

use std::fmt::Write as _;

use fuselab_shared::align::Task;

use super::h3fusion::H3FusionReport;

fn escape(text: &str) -> String {
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

//! LLM-TOPLA-Summary's report: `report.json` (schema `fuselab.topla.summary/v1`) and a
//! self-contained `report.html` with the results table, the epochs and sample fused answers
//! beside the members' answers.

use std::fmt::Write as _;
use std::path::Path;

use fuselab_shared::topla::summary::{AnswerScores, FusionTask};
use serde::{Deserialize, Serialize};

use super::fit::EpochRecord;
use crate::align::report::escape;
use crate::align::run::write_atomic;

/// The report's schema name.
pub const SUMMARY_SCHEMA: &str = "fuselab.topla.summary/v1";

/// What a results row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    /// One member on its own (its majority answer; text tasks: its first output).
    Member,
    /// A vote over the members.
    Vote,
    /// LLM-TOPLA-Weighted (learn-to-combine's network over vote shares).
    Weighted,
    /// LLM-TOPLA-Summary, its answers generated.
    SummaryGenerated,
    /// LLM-TOPLA-Summary scored as the reference does: teacher-forced argmax.
    SummaryTeacherForced,
    /// Right when any member is.
    Oracle,
}

/// One method's scores on the test questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: RowKind,
    /// Mean scores over the test questions.
    pub scores: AnswerScores,
}

/// A test question with every answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRow {
    /// The question's id.
    pub id: String,
    /// The question as the prompt shows it.
    pub question: String,
    /// The target text.
    pub gold: String,
    /// The fused model's generated answer.
    pub fused: String,
    /// Its teacher-forced argmax text (`--compat llm-topla`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_forced: Option<String>,
    /// Each member's name and first output.
    pub members: Vec<(String, String)>,
}

/// How much was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Parameters trained (adapters and added tokens; every weight for `tiny`).
    pub trainable_parameters: usize,
    /// Parameters of the model.
    pub parameters: usize,
    /// Optimiser steps per epoch.
    pub steps_per_epoch: usize,
    /// Padded tokens per second while training (this attempt's steps).
    pub tokens_per_second: f64,
    /// Wall seconds of this attempt.
    pub seconds: f64,
    /// Prompts cut to fit `max_len`.
    pub truncated_prompts: usize,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryReport {
    /// [`SUMMARY_SCHEMA`].
    pub schema: String,
    /// The task.
    pub task: FusionTask,
    /// The score validation selects on.
    pub selection_metric: String,
    /// The fusion model.
    pub model: String,
    /// Whether `--compat llm-topla` ran.
    pub compat: bool,
    /// Where the questions and answers come from.
    pub provenance: String,
    /// The team.
    pub members: Vec<String>,
    /// Outputs of each member shown in a prompt.
    pub outputs_per_member: usize,
    /// Questions per part: train, val, test.
    pub questions: [usize; 3],
    /// Scores on the test questions.
    pub rows: Vec<ResultRow>,
    /// The team's focal diversity (closed tasks, on val).
    pub focal_diversity: Option<f64>,
    /// Every epoch.
    pub history: Vec<EpochRecord>,
    /// The best epoch.
    pub best_epoch: Option<usize>,
    /// The epoch whose weights were evaluated.
    pub kept_epoch: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Training figures.
    pub training: TrainingSummary,
    /// Sample test questions.
    pub examples: Vec<ExampleRow>,
}

/// The score columns of a task: name and reader.
type Column = (&'static str, fn(&AnswerScores) -> Option<f64>);

fn columns(task: FusionTask) -> Vec<Column> {
    match task {
        FusionTask::Gsm8k | FusionTask::Mmlu => {
            vec![("accuracy %", |s| s.correct.map(|v| 100.0 * v))]
        }
        FusionTask::Open => vec![
            ("BLEU-1", |s| s.open.map(|o| o.bleu1)),
            ("EM", |s| s.open.map(|o| o.exact)),
            ("F1", |s| s.open.map(|o| o.f1)),
            ("ROUGE-L", |s| s.rouge.map(|r| r.rouge_l)),
        ],
        FusionTask::Summary => vec![
            ("ROUGE-1", |s| s.rouge.map(|r| r.rouge1)),
            ("ROUGE-2", |s| s.rouge.map(|r| r.rouge2)),
            ("ROUGE-L", |s| s.rouge.map(|r| r.rouge_l)),
        ],
    }
}

/// The results table as Markdown (also printed by the command).
pub fn markdown(report: &SummaryReport) -> String {
    let columns = columns(report.task);
    let mut out = String::from("| method |");
    for (name, _) in &columns {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(columns.len()));
    out.push('\n');
    for row in &report.rows {
        let _ = write!(out, "| {} |", row.name);
        for (_, read) in &columns {
            match read(&row.scores) {
                Some(v) => {
                    let _ = write!(out, " {v:.3} |");
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

/// Writes `report.json` and `report.html` into `out`.
///
/// # Errors
/// A file that cannot be written.
pub fn write(out: &Path, report: &SummaryReport) -> anyhow::Result<()> {
    write_atomic(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(report)?,
    )?;
    write_atomic(&out.join("report.html"), html(report).as_bytes())
}

fn html(report: &SummaryReport) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>LLM-TOPLA-Summary</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         td.text,th.text{text-align:left}td.text{font-family:monospace;white-space:pre-wrap;max-width:40em}\
         .note{background:#fff4d6;padding:.5em 1em}</style>\
         </head><body><h1>LLM-TOPLA-Summary</h1>",
    );
    let _ = write!(
        page,
        "<p>Task <b>{}</b>; team {}; fusion model {}. Questions: {} train, {} val, {} test. {}.</p>",
        report.task.name(),
        escape(&report.members.join(", ")),
        escape(&report.model),
        report.questions[0],
        report.questions[1],
        report.questions[2],
        escape(&report.provenance),
    );
    if report.compat {
        page.push_str(
            "<p class=\"note\">--compat llm-topla: trained with padding in the loss; the model kept is the \
             last epoch's (the reference's restore-best keeps the live weights); the teacher-forced row scores \
             the argmax of each answer position given the gold prefix, as the reference does, beside the \
             generated answers.</p>",
        );
    }
    let _ = write!(page, "<h2>Test questions</h2>{}", table_html(report));
    if let Some(focal) = report.focal_diversity {
        let _ = write!(page, "<p>The team's focal diversity (val): {focal:.3}.</p>");
    }
    page.push_str("<h2>Training</h2><table><tr><th>epoch</th><th>train loss</th>");
    let _ = write!(
        page,
        "<th>val {}</th></tr>",
        escape(&report.selection_metric)
    );
    for e in &report.history {
        let mark = if Some(e.epoch) == report.best_epoch {
            " (best)"
        } else {
            ""
        };
        let _ = write!(
            page,
            "<tr><td>{}{mark}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            e.epoch, e.train_loss, e.val_score
        );
    }
    let t = &report.training;
    let _ = write!(
        page,
        "</table><p>Evaluated with epoch {}'s weights{}. {} of {} parameters trained, {} steps per epoch, \
         {:.0} tokens/s, {:.0} s; {} prompts cut to fit.</p>",
        report.kept_epoch,
        if report.stopped_early {
            "; early stopping ended training"
        } else {
            ""
        },
        t.trainable_parameters,
        t.parameters,
        t.steps_per_epoch,
        t.tokens_per_second,
        t.seconds,
        t.truncated_prompts
    );
    page.push_str("<h2>Sample test questions</h2>");
    for example in &report.examples {
        let _ = write!(
            page,
            "<h3>{}</h3><table><tr><th class=\"text\">question</th><td class=\"text\">{}</td></tr>\
             <tr><th class=\"text\">gold</th><td class=\"text\">{}</td></tr>\
             <tr><th class=\"text\">fused (generated)</th><td class=\"text\">{}</td></tr>",
            escape(&example.id),
            escape(&example.question),
            escape(&example.gold),
            escape(&example.fused)
        );
        if let Some(forced) = &example.teacher_forced {
            let _ = write!(
                page,
                "<tr><th class=\"text\">fused (teacher-forced)</th><td class=\"text\">{}</td></tr>",
                escape(forced)
            );
        }
        for (name, answer) in &example.members {
            let _ = write!(
                page,
                "<tr><th class=\"text\">{}</th><td class=\"text\">{}</td></tr>",
                escape(name),
                escape(answer)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</body></html>\n");
    page
}

fn table_html(report: &SummaryReport) -> String {
    let columns = columns(report.task);
    let mut out = String::from("<table><tr><th class=\"text\">method</th>");
    for (name, _) in &columns {
        let _ = write!(out, "<th>{name}</th>");
    }
    out.push_str("</tr>");
    for row in &report.rows {
        let _ = write!(out, "<tr><td class=\"text\">{}</td>", escape(&row.name));
        for (_, read) in &columns {
            match read(&row.scores) {
                Some(v) => {
                    let _ = write!(out, "<td>{v:.3}</td>");
                }
                None => out.push_str("<td>–</td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

//! `fuselab ensemble analyze` on every core, a range of team ranks at a time: the top-K
//! ranking, and with `--all-teams` every team's line, written in rank order as soon as it is
//! ready. Memory stays bounded by the ranges in flight, however many teams there are; the
//! report is the same as the one built in memory, with each team's JSON object on one line.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use anyhow::Context as _;
use fuselab_shared::ensemble::{
    AnalysisOptions, CSV_HEADER, Compat, Pool, REPORT_SCHEMA, RankedTeam, TeamLines, csv_row,
    fusionshot_error_warning, fusionshot_unscored_warning, model_lines, no_sizes_warning,
    null_focal_warnings, top_k_of,
};

use super::{Format, ProgressBar, table_head, table_row, team_width};

/// Most teams per range: large enough that a range's work dwarfs handing it over, small
/// enough that the ranges in flight stay a few megabytes.
const MAX_RANGE: u64 = 4096;

/// Ranges of at most [`MAX_RANGE`] teams, at least 8 per core where there are teams enough:
/// `(ranges, teams per range)`.
fn ranges(total: u64) -> (u64, u64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let size = (total / (8 * cores)).clamp(64, MAX_RANGE);
    (total.div_ceil(size), size)
}

/// Warnings listed before the rest are only counted (a model without negatives would
/// otherwise add one per team).
const MAX_WARNINGS: usize = 1000;

/// One computed range, formatted.
struct Part {
    text: String,
    ranked: Vec<RankedTeam>,
    warnings: Vec<String>,
    unscored: u64,
}

/// Writes the report of every team in the options' size range to `out` in `format`.
///
/// # Errors
/// A team the pool cannot form, or an unwritable output.
pub(super) fn write_all_teams(
    pool: &Pool,
    options: &AnalysisOptions,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let lines = TeamLines::new(pool, options);
    let total = lines.total();
    let (models, mut warnings) = model_lines(pool);
    if total == 0 {
        warnings.push(no_sizes_warning(pool));
    }
    let names = pool.names();
    let width = team_width(names, options.max_size);
    match format {
        Format::Json => {
            let compat = serde_json::to_string(&options.compat)?;
            write!(
                out,
                "{{\n  \"schema\": \"{REPORT_SCHEMA}\",\n  \"n_models\": {},\n  \"n_samples\": {},\n  \"n_classes\": {},\n  \"models\": {},\n  \"teams\": [",
                pool.models(),
                pool.samples(),
                pool.classes(),
                serde_json::to_string(&models)?,
            )?;
            let (ranked, more) = stream(&lines, total, options, &mut *out, &|teams| {
                let mut text = String::new();
                for team in teams {
                    text.push_str(",\n    ");
                    text.push_str(&serde_json::to_string(team)?);
                }
                Ok(text)
            })?;
            let top_k: Vec<Vec<usize>> = ranked.into_iter().map(|t| t.members).collect();
            warnings.extend(more);
            write!(
                out,
                "\n  ],\n  \"top_k\": {},\n  \"warnings\": {}",
                serde_json::to_string(&top_k)?,
                serde_json::to_string(&warnings)?,
            )?;
            if options.compat != Compat::Canonical {
                write!(out, ",\n  \"compat\": {compat}")?;
            }
            writeln!(out, "\n}}")?;
        }
        Format::Csv => {
            out.write_all(fuselab_shared::table::write([CSV_HEADER]).as_bytes())?;
            // CSV has no place for warnings, as in the report built in memory.
            stream(&lines, total, options, &mut *out, &|teams| {
                Ok(fuselab_shared::table::write(
                    teams.iter().map(|team| csv_row(names, team)),
                ))
            })?;
        }
        Format::Table => {
            let mut head = table_head(pool.models(), pool.samples(), pool.classes(), &models);
            head.push_str(&super::table_heading(&format!("{total} teams"), width));
            out.write_all(head.as_bytes())?;
            let (_, more) = stream(&lines, total, options, &mut *out, &|teams| {
                let mut text = String::new();
                for team in teams {
                    text.push_str(&table_row(
                        &fuselab_shared::ensemble::team_names(names, &team.members),
                        width,
                        team,
                    ));
                }
                Ok(text)
            })?;
            for warning in warnings.iter().chain(&more) {
                writeln!(out, "warning: {warning}")?;
            }
        }
    }
    out.flush().context("cannot write the report")
}

/// The top-K of every team by [`TeamLines::score`], ranked on every core, and how many teams
/// had no score.
pub(super) fn rank(lines: &TeamLines<'_>, top_k: usize) -> (Vec<RankedTeam>, u64) {
    let (ranges, size) = ranges(lines.total());
    let next = AtomicU64::new(0);
    let parts: Vec<(Vec<RankedTeam>, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads(ranges))
            .map(|_| {
                let next = &next;
                scope.spawn(move || {
                    let mut best = Vec::new();
                    let mut unscored = 0;
                    loop {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        if r >= ranges {
                            break (best, unscored);
                        }
                        let (ranked, missing) = lines.rank(r * size..(r + 1) * size);
                        unscored += missing;
                        best = merge(best, ranked, top_k);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    parts
        .into_iter()
        .fold((Vec::new(), 0), |(best, unscored), (ranked, missing)| {
            (merge(best, ranked, top_k), unscored + missing)
        })
}

/// The best `top_k` of two rankings (ties by member list, as in one pass).
fn merge(a: Vec<RankedTeam>, b: Vec<RankedTeam>, top_k: usize) -> Vec<RankedTeam> {
    top_k_of(
        a.into_iter()
            .chain(b)
            .map(|t| (t.members, Some(t.focal_diversity))),
        top_k,
    )
}

/// Threads for `ranges` ranges: one per core, at most one per range.
fn threads(ranges: u64) -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(usize::try_from(ranges).unwrap_or(usize::MAX))
        .max(1)
}

type Formatter<'f> =
    dyn Fn(&[fuselab_shared::ensemble::TeamReport]) -> anyhow::Result<String> + Sync + 'f;

/// Computes the ranges on every core and writes their text in rank order; returns the
/// top-K and the warnings of the teams (capped at [`MAX_WARNINGS`] plus a count).
fn stream(
    lines: &TeamLines<'_>,
    total: u64,
    options: &AnalysisOptions,
    out: &mut dyn Write,
    format: &Formatter<'_>,
) -> anyhow::Result<(Vec<RankedTeam>, Vec<String>)> {
    let (ranges, size) = ranges(total);
    let threads = threads(ranges);
    // A worker starts range r only once fewer than `window` ranges are computed but unwritten.
    let window = 2 * threads as u64;
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let written = (Mutex::new(0_u64), Condvar::new());
    let fusionshot = options.compat == Compat::FusionShot;
    let mut bar = ProgressBar::new();
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::channel::<(u64, anyhow::Result<Part>)>();
        for _ in 0..threads {
            let send = send.clone();
            let (next, stop, written) = (&next, &stop, &written);
            scope.spawn(move || {
                loop {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    if r >= ranges || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    {
                        let (done, turn) = written;
                        let mut done = done
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        while r >= *done + window && !stop.load(Ordering::Relaxed) {
                            done = turn
                                .wait(done)
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                    }
                    let part = compute(lines, r * size..(r + 1) * size, fusionshot, format);
                    if send.send((r, part)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        let result = collect(
            &receive,
            (ranges, size),
            total,
            options.top_k,
            out,
            &written,
            &mut bar,
        );
        // Later sends fail, so no worker computes on for nothing.
        drop(receive);
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            written.1.notify_all();
        }
        bar.finish();
        result
    })
}

fn compute(
    lines: &TeamLines<'_>,
    range: Range<u64>,
    fusionshot: bool,
    format: &Formatter<'_>,
) -> anyhow::Result<Part> {
    let part = lines.lines(range).context("the analysis failed")?;
    let mut warnings: Vec<String> = part
        .fusionshot_errors
        .iter()
        .map(|(members, f, error)| fusionshot_error_warning(lines.pool(), members, *f, error))
        .collect();
    let unscored = if fusionshot {
        part.teams
            .iter()
            .filter(|t| t.focal_diversity.is_none())
            .count() as u64
    } else {
        warnings.extend(
            part.teams
                .iter()
                .flat_map(|team| null_focal_warnings(lines.pool(), team)),
        );
        0
    };
    Ok(Part {
        text: format(&part.teams)?,
        ranked: part.ranked,
        warnings,
        unscored,
    })
}

/// Receives the ranges, writes them in order, and merges their top-K and warnings.
fn collect(
    receive: &mpsc::Receiver<(u64, anyhow::Result<Part>)>,
    (ranges, size): (u64, u64),
    total: u64,
    top_k: usize,
    out: &mut dyn Write,
    written: &(Mutex<u64>, Condvar),
    bar: &mut ProgressBar,
) -> anyhow::Result<(Vec<RankedTeam>, Vec<String>)> {
    let mut pending = BTreeMap::new();
    let mut best: Vec<RankedTeam> = Vec::new();
    let mut warnings = Vec::new();
    let mut more_warnings = 0_usize;
    let mut unscored = 0_u64;
    let mut first = true;
    let mut done = 0_u64;
    while done < ranges {
        let (r, part) = receive
            .recv()
            .context("a worker thread of the analysis stopped")?;
        pending.insert(r, part?);
        while let Some(part) = pending.remove(&done) {
            let text = if first {
                // The first team's separator (JSON's comma) is not wanted.
                part.text.strip_prefix(',').unwrap_or(&part.text)
            } else {
                &part.text
            };
            first = first && part.text.is_empty();
            out.write_all(text.as_bytes())
                .context("cannot write the report")?;
            best = merge(best, part.ranked, top_k);
            let room = MAX_WARNINGS.saturating_sub(warnings.len());
            more_warnings += part.warnings.len().saturating_sub(room);
            warnings.extend(part.warnings.into_iter().take(room));
            unscored += part.unscored;
            done += 1;
            *written
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = done;
            written.1.notify_all();
            bar.update(done.saturating_mul(size).min(total), total);
        }
    }
    if unscored > 0 {
        warnings.insert(0, fusionshot_unscored_warning(unscored, total));
    }
    if more_warnings > 0 {
        warnings.push(format!(
            "… and {more_warnings} more warnings of the kinds above, not listed"
        ));
    }
    Ok((best, warnings))
}

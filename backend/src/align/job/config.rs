//! The configuration of a queued alignment run, edited with `toml_edit`: the server checks what
//! a user sent and stores it without `out` and with its data paths relative to the
//! `align-data` folder ([`check_config`]); the worker that runs it puts back its own `out` and
//! its own data folder ([`resolve_config`]). A configuration that does not fit is refused
//! naming the line and key of the user's text.

use std::path::{Component, Path};

use fuselab_shared::api::AlignAction;
use toml_edit::{Document, DocumentMut, Item, Table, TableLike, value};

use super::DATA_DIR;
use crate::align::{Checked, attack::AttackConfig};
use crate::ctr::RunConfig;
use crate::llm::summary::SummaryConfig;

/// Largest configuration accepted.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// The line put before a configuration without `out`, so that it parses as a run's.
const OUT_LINE: &str = "out = \"out\"\n";
/// Configuration keys that name a file or folder to read: `(table, key)`, `""` for the root.
const PATH_KEYS: [(&str, &str); 16] = [
    ("base", "model"),
    ("data", "refusals"),
    ("data", "alpaca"),
    ("data", "alpaca_eval"),
    ("data", "truthfulqa"),
    ("data", "beavertails_train"),
    ("data", "beavertails_test"),
    ("data", "benign_train"),
    ("data", "benign_test"),
    ("judge", "model"),
    ("", "questions"),
    ("", "answers"),
    ("model", "name"),
    ("data.files", "train"),
    ("data.files", "valid"),
    ("data.files", "test"),
];

/// A configuration a run cannot take; the message names the line and key.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Rejected {
    /// What is wrong, and where.
    pub message: String,
}

fn rejected(message: impl Into<String>) -> Rejected {
    Rejected {
        message: message.into(),
    }
}

/// What a queued run of `action` stores: `text` checked as its command would check it (an
/// attack configuration, or `llm topla summary`'s), without `out`
/// (a run writes only into its own folder), every data path relative and inside the data
/// folder, and the device it asks for (its job goes to a GPU worker for `wgpu`).
///
/// # Errors
/// [`Rejected`]: text over 64 KiB, TOML that does not parse or fit the benchmark's schema, a
/// value out of range, a non-string `out`, or a data path that is not relative and inside the
/// data folder.
pub fn check_config(
    action: AlignAction,
    text: &str,
) -> Result<(String, Option<fuselab_ml::Compute>), Rejected> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(rejected(format!(
            "the configuration is larger than {} KiB",
            MAX_CONFIG_BYTES / 1024
        )));
    }
    let document = Document::parse(text.to_owned()).map_err(|e| {
        rejected(match e.span() {
            Some(span) => format!(
                "the configuration does not fit, at {}: {}",
                place(text, span.start),
                e.message().trim()
            ),
            None => format!("the configuration does not fit: {}", e.message().trim()),
        })
    })?;
    let root = document.as_table();
    let device = match action {
        AlignAction::ToplaSummary => parsed::<SummaryConfig>(text, root)?.device,
        AlignAction::CtrBenchmark => {
            let config = parsed::<RunConfig>(text, root)?;
            if config.benchmark.is_none() {
                return Err(rejected(
                    "a CTR benchmark needs a [benchmark] table (models, seeds, lambdas)",
                ));
            }
            config.device
        }
        AlignAction::PoseBenchmark => {
            let config = parsed::<crate::pose::RunConfig>(text, root)?;
            if config.benchmark.is_none() {
                return Err(rejected(
                    "a pose benchmark needs a [benchmark] table (rungs, seeds)",
                ));
            }
            config.device
        }
        AlignAction::H3Fusion => {
            parsed::<crate::align::h3fusion::H3FusionConfig>(text, root)?.device
        }
        _ => parsed::<AttackConfig>(text, root)?.device,
    };
    for (table, key) in PATH_KEYS {
        let Some(item) = lookup(root, table, key) else {
            continue;
        };
        let Some(path) = item.as_str() else {
            continue;
        };
        if is_named_model(table, key, path) {
            continue;
        }
        if !is_inside(path) {
            return Err(rejected(format!(
                "{}: {} = {path:?}: a server run reads files only from the \
                 `{DATA_DIR}` folder of its data directory; give a path inside it (relative, \
                 without `..`)",
                place_of(text, item),
                key_name(table, key)
            )));
        }
    }
    let mut stored = document.into_mut();
    stored.remove("out");
    Ok((stored.to_string(), device))
}

/// `text` parsed and checked as `T`, as written (spans stay the user's); without `out`, with a
/// stand-in before it.
fn parsed<T: Checked>(text: &str, root: &Table) -> Result<T, Rejected> {
    let config: T = match root.get("out") {
        Some(out) if !out.is_str() => {
            return Err(rejected(format!(
                "{}: `out` must be a string (the server sets it anyway)",
                place_of(text, out)
            )));
        }
        Some(_) => toml::from_str(text).map_err(|e| rejected(toml_message(text, 0, &e)))?,
        None => toml::from_str(&format!("{OUT_LINE}{text}"))
            .map_err(|e| rejected(toml_message(text, OUT_LINE.len(), &e)))?,
    };
    config.check().map_err(rejected)?;
    Ok(config)
}

/// `[table] key`, or `key` at the root.
fn key_name(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("[{table}] {key}")
    }
}

/// `key` of `table` (`""`: the root; `a.b`: table `b` inside `a`).
fn lookup<'a>(root: &'a Table, table: &str, key: &str) -> Option<&'a Item> {
    let mut at: &dyn TableLike = root;
    for part in table.split('.').filter(|p| !p.is_empty()) {
        at = at.get(part)?.as_table_like()?;
    }
    at.get(key)
}

/// The configuration a worker trains with: `stored` (from [`check_config`]) writing into
/// `out`, its data paths inside `align_data`.
///
/// # Errors
/// [`Rejected`]: `stored` does not parse, or names a data path outside the data folder (a job
/// row written by something other than the server).
pub fn resolve_config(stored: &str, out: &Path, align_data: &Path) -> Result<String, Rejected> {
    let mut document: DocumentMut = stored
        .parse()
        .map_err(|e| rejected(format!("the stored configuration does not parse: {e}")))?;
    document.insert("out", value(out.display().to_string()));
    for (table, key) in PATH_KEYS {
        let mut at: Option<&mut dyn TableLike> = Some(document.as_table_mut());
        for part in table.split('.').filter(|p| !p.is_empty()) {
            at = at
                .and_then(|t| t.get_mut(part))
                .and_then(Item::as_table_like_mut);
        }
        let Some(item) = at.and_then(|t| t.get_mut(key)) else {
            continue;
        };
        let Some(path) = item.as_str().map(str::to_owned) else {
            continue;
        };
        if is_named_model(table, key, &path) {
            continue;
        }
        if !is_inside(&path) {
            return Err(rejected(format!(
                "{} = {path:?} is not inside the `{DATA_DIR}` folder",
                key_name(table, key)
            )));
        }
        *item = value(align_data.join(&path).display().to_string());
    }
    Ok(document.to_string())
}

/// `[base] model` or `[model] name` = `"tiny" | "smollm2"` names a model rather than a folder.
fn is_named_model(table: &str, key: &str, path: &str) -> bool {
    matches!((table, key), ("base", "model") | ("model", "name"))
        && matches!(path, "tiny" | "smollm2")
}

/// A relative path without `..`, `.` or a root.
fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Where `item` starts in `text`.
fn place_of(text: &str, item: &Item) -> String {
    item.span()
        .map_or_else(|| "the configuration".to_owned(), |s| place(text, s.start))
}

/// "line L, column C (`the line`)" of byte `offset` in `text`.
fn place(text: &str, offset: usize) -> String {
    let Some(before) = text.get(..offset) else {
        return "the configuration".to_owned();
    };
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line: String = text[line_start..]
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(80)
        .collect();
    format!(
        "line {}, column {} (`{line}`)",
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1
    )
}

/// A TOML error in terms of the user's text; `shift` bytes were put before it.
fn toml_message(text: &str, shift: usize, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) if span.start >= shift && span.start - shift < text.len() => format!(
            "the configuration does not fit, at {}: {message}",
            place(text, span.start - shift)
        ),
        _ => format!("the configuration does not fit: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = include_str!("../../../../examples/attack-small.toml");

    #[test]
    fn places_are_lines_and_columns() {
        let text = "a = 1\nbad = 2\n";
        assert_eq!(place(text, 6), "line 2, column 1 (`bad = 2`)");
    }

    #[test]
    fn a_stored_configuration_has_no_out_and_resolves_inside_the_workers_folders() {
        let text = SMALL.replace(
            "[data]",
            "[data]\nbenign_train = \"sst2/train.jsonl\" # kept\n",
        );
        let (stored, device) = check_config(AlignAction::Attack, &text).unwrap();
        assert_eq!(device, Some(fuselab_ml::Compute::Cpu));
        assert!(!stored.lines().any(|l| l.starts_with("out")), "{stored}");
        let gpu = text.replace("device = \"cpu\"", "device = \"wgpu\"");
        assert_eq!(
            check_config(AlignAction::Attack, &gpu).unwrap().1,
            Some(fuselab_ml::Compute::Wgpu)
        );
        assert!(stored.contains("\"sst2/train.jsonl\" # kept"), "{stored}");
        let resolved = resolve_config(
            &stored,
            Path::new("/work/run/out"),
            Path::new("/srv/fuselab/align-data"),
        )
        .unwrap();
        let config: AttackConfig = toml::from_str(&resolved).unwrap();
        assert_eq!(config.out, Path::new("/work/run/out"));
        assert_eq!(
            config.data.benign_train.as_deref(),
            Some(Path::new("/srv/fuselab/align-data/sst2/train.jsonl"))
        );
        // The stored text is checked again as it would be read.
        assert_eq!(
            check_config(AlignAction::Attack, &stored).unwrap().0,
            stored
        );
    }

    #[test]
    fn an_h3fusion_run_reads_its_datasets_inside_the_data_folder() {
        let text = include_str!("../../../../examples/h3fusion-small.toml");
        let (stored, device) = check_config(AlignAction::H3Fusion, text).unwrap();
        assert_eq!(device, Some(fuselab_ml::Compute::Cpu));
        let with_files = stored.replace(
            "synthetic = true",
            "alpaca = \"alpaca/train.jsonl\"\ntruthfulqa = \"tqa.parquet\"",
        );
        let (with_files, _) = check_config(AlignAction::H3Fusion, &with_files).unwrap();
        let resolved = resolve_config(
            &with_files,
            Path::new("/w/out"),
            Path::new("/srv/align-data"),
        )
        .unwrap();
        let config: crate::align::h3fusion::H3FusionConfig = toml::from_str(&resolved).unwrap();
        assert_eq!(config.out, Path::new("/w/out"));
        assert_eq!(
            config.data.alpaca.as_deref(),
            Some(Path::new("/srv/align-data/alpaca/train.jsonl"))
        );
        assert_eq!(
            config.data.truthfulqa.as_deref(),
            Some(Path::new("/srv/align-data/tqa.parquet"))
        );
        for key in ["alpaca", "alpaca_eval", "truthfulqa", "beavertails_train"] {
            let outside =
                stored.replace("synthetic = true", &format!("{key} = \"../../etc/passwd\""));
            let message = check_config(AlignAction::H3Fusion, &outside)
                .unwrap_err()
                .message;
            assert!(
                message.contains(&format!("[data] {key}")),
                "{key}: {message}"
            );
        }
        // An attack's configuration is not H3Fusion's.
        let message = check_config(AlignAction::H3Fusion, SMALL)
            .unwrap_err()
            .message;
        assert!(message.contains("does not fit"), "{message}");
    }

    #[test]
    fn a_summary_run_reads_its_questions_and_answers_inside_the_data_folder() {
        let text = include_str!("../../../../examples/llm-study/summary-server.toml");
        let (stored, device) = check_config(AlignAction::ToplaSummary, text).unwrap();
        assert_eq!(device, Some(fuselab_ml::Compute::Cpu));
        let resolved =
            resolve_config(&stored, Path::new("/w/out"), Path::new("/srv/align-data")).unwrap();
        let config: SummaryConfig = toml::from_str(&resolved).unwrap();
        assert_eq!(
            config.questions,
            Path::new("/srv/align-data/llm-study/gsm8k.questions.jsonl")
        );
        assert_eq!(
            config.answers,
            Path::new("/srv/align-data/llm-study/gsm8k.answers")
        );
        assert_eq!(config.model.name, "smollm2");
        let outside = text.replace("\"llm-study/gsm8k.answers\"", "\"/etc\"");
        let message = check_config(AlignAction::ToplaSummary, &outside)
            .unwrap_err()
            .message;
        assert!(message.contains("answers"), "{message}");
        // An attack's configuration is not a summary's.
        let message = check_config(AlignAction::ToplaSummary, SMALL)
            .unwrap_err()
            .message;
        assert!(message.contains("does not fit"), "{message}");
    }

    #[test]
    fn a_ctr_benchmark_reads_its_files_inside_the_data_folder() {
        let (stored, _) = check_config(
            AlignAction::CtrBenchmark,
            include_str!("../../../../examples/ctr-server.toml"),
        )
        .unwrap();
        assert!(!stored.contains("out ="));
        let files = "seed = 1\n\n[data.files]\ntrain = \"logs/train.csv\"\nvalid = \"logs/valid.csv\"\ntest = \"logs/test.parquet\"\n\n[schema]\nlabel = \"click\"\nuser = \"u\"\ntarget = [\"i\"]\nsequence = [\"h\"]\nfeatures = [{ name = \"i\", type = \"categorical\" }, { name = \"h\", type = \"sequence\", splitter = \"^\", max_len = 5, share_embedding = \"i\" }]\n\n[benchmark]\nmodels = [\"din\"]\nseeds = [1]\n";
        let (stored, _) = check_config(AlignAction::CtrBenchmark, files).unwrap();
        let resolved =
            resolve_config(&stored, Path::new("/w/out"), Path::new("/srv/align-data")).unwrap();
        let config: RunConfig = toml::from_str(&resolved).unwrap();
        let crate::ctr::config::DataConfig::Files(data) = config.data else {
            panic!("files expected");
        };
        assert_eq!(data.test, Path::new("/srv/align-data/logs/test.parquet"));
        let outside = files.replace("\"logs/valid.csv\"", "\"/etc/passwd\"");
        let message = check_config(AlignAction::CtrBenchmark, &outside)
            .unwrap_err()
            .message;
        assert!(message.contains("[data.files] valid"), "{message}");
        let message = check_config(
            AlignAction::CtrBenchmark,
            &files.replace("[benchmark]\nmodels = [\"din\"]\nseeds = [1]\n", ""),
        )
        .unwrap_err()
        .message;
        assert!(message.contains("[benchmark]"), "{message}");
    }

    #[test]
    fn paths_outside_the_data_folder_are_refused_where_they_are_written() {
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            let text = SMALL.replace("[data]", &format!("[data]\nrefusals = {bad:?}\n"));
            let message = check_config(AlignAction::Attack, &text)
                .unwrap_err()
                .message;
            assert!(message.contains("[data] refusals"), "{message}");
            assert!(message.contains("line "), "{message}");
            let stored = format!("[data]\nrefusals = {bad:?}\n");
            assert!(resolve_config(&stored, Path::new("/o"), Path::new("/d")).is_err());
        }
        let message = check_config(AlignAction::Attack, "out = 3\n")
            .unwrap_err()
            .message;
        assert!(message.contains("line 1, column 7"), "{message}");
        let message = check_config(AlignAction::Attack, "[base\n")
            .unwrap_err()
            .message;
        assert!(message.contains("line 1"), "{message}");
    }
}

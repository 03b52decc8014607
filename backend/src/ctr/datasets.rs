//! `fuselab ctr data movielens|synthetic --out DIR`: the two offline datasets as
//! `train.csv`, `valid.csv`, `test.csv` and `dataset.json`, and the same build for a
//! configuration's `[data.synthetic]` or `[data.movielens]` (into the run's `out/data`).
//!
//! MovieLens-100K comes from RecBole's wheel on PyPI (`recbole` 1.2.1, whose
//! `dataset_example/ml-100k` holds the GroupLens files), fetched and SHA-256 checked into the
//! data directory and never redistributed: GroupLens' licence allows research use but not
//! redistribution without permission.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fuselab_shared::ctr::exposure::{Dataset, ExtraKind, Split};
use fuselab_shared::ctr::movielens::{self, MovielensFiles, MovielensOptions};
use fuselab_shared::ctr::schema::Schema;
use fuselab_shared::ctr::synthetic::{self, SyntheticConfig, TriggerSource};

use super::config::{DataConfig, FilesConfig};
use crate::align::run::write_atomic;

/// History tokens the standard schema keeps per row.
pub const HISTORY: usize = 20;

/// `fuselab ctr data …`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// The MovieLens-100K trigger-induced proxy (pages = one user's ratings with one timestamp,
    /// click = rating ≥ 4, trigger = the last liked movie before the page)
    Movielens(MovielensArgs),
    /// The synthetic benchmark with known click probabilities
    Synthetic(SyntheticArgs),
}

/// `ctr data movielens`.
#[derive(Debug, Args)]
pub struct MovielensArgs {
    /// Output folder
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A rating at least this is a click
    #[arg(long, default_value_t = 4.0)]
    pub positive_rating: f64,
}

/// `ctr data synthetic`.
#[derive(Debug, Args)]
pub struct SyntheticArgs {
    /// Output folder
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of every draw
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Probability that a visit's entry is driven by its trigger rather than its scenario
    #[arg(long, default_value_t = 0.5)]
    pub trigger_weight: f64,
    /// Where a visit's trigger comes from: `theme` (the scenario's items) or `history` (the
    /// user's behaviour sequence)
    #[arg(long, default_value = "theme")]
    pub trigger_from: TriggerSource,
    /// Pages per visit (user, scenario, trigger and driver shared)
    #[arg(long, default_value_t = 1)]
    pub pages_per_visit: usize,
    /// Scenarios entered only in the valid and test splits
    #[arg(long, default_value_t = 0)]
    pub held_out_scenarios: usize,
    /// Pages
    #[arg(long)]
    pub pages: Option<usize>,
    /// Users
    #[arg(long)]
    pub users: Option<usize>,
}

/// Runs `fuselab ctr data …`.
///
/// # Errors
/// A bad option, a failed download or an unwritable folder.
pub fn command(command: &DataCommand, data_dir: &Path) -> anyhow::Result<()> {
    let (dataset, out) = match command {
        DataCommand::Movielens(args) => {
            let options = MovielensOptions {
                positive_rating: args.positive_rating,
                ..MovielensOptions::default()
            };
            (build_movielens(&options, data_dir)?, &args.out)
        }
        DataCommand::Synthetic(args) => {
            let defaults = SyntheticConfig::default();
            let config = SyntheticConfig {
                seed: args.seed,
                trigger_weight: args.trigger_weight,
                trigger_from: args.trigger_from,
                pages_per_visit: args.pages_per_visit,
                held_out_scenarios: args.held_out_scenarios,
                pages: args.pages.unwrap_or(defaults.pages),
                users: args.users.unwrap_or(defaults.users),
                ..defaults
            };
            (build_synthetic(&config)?, &args.out)
        }
    };
    write(&dataset, out)?;
    let summary = dataset.summary();
    for (split, s) in [
        ("train", &summary.train),
        ("valid", &summary.valid),
        ("test", &summary.test),
    ] {
        println!(
            "{split}: {} rows, {} pages, click rate {:.1} %",
            s.rows,
            s.pages,
            100.0 * s.click_rate
        );
    }
    println!("written to {}", out.display());
    Ok(())
}

fn build_synthetic(config: &SyntheticConfig) -> anyhow::Result<Dataset> {
    Ok(synthetic::generate(config)?)
}

fn build_movielens(options: &MovielensOptions, data_dir: &Path) -> anyhow::Result<Dataset> {
    let paths = crate::models::fetch_files(data_dir, &MOVIELENS_FILES)?;
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let (inter, item, user) = (read(&paths[0])?, read(&paths[1])?, read(&paths[2])?);
    let files = MovielensFiles {
        inter: &inter,
        item: &item,
        user: &user,
    };
    Ok(movielens::build(&files, options)?)
}

/// The cached names of the three MovieLens files (`crate::models` fetches them).
pub const MOVIELENS_FILES: [&str; 3] = [
    "ctr/ml-100k/ml-100k.inter",
    "ctr/ml-100k/ml-100k.item",
    "ctr/ml-100k/ml-100k.user",
];

/// Writes the three splits and `dataset.json` into `out`.
///
/// # Errors
/// An unwritable folder.
pub fn write(dataset: &Dataset, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for split in Split::ALL {
        write_atomic(
            &out.join(format!("{}.csv", split.name())),
            dataset.csv(split).as_bytes(),
        )?;
    }
    write_atomic(
        &out.join("dataset.json"),
        &serde_json::to_vec_pretty(&dataset.summary())?,
    )
}

/// The standard schema of a built dataset's columns.
#[must_use]
pub fn schema_of(extra: ExtraKind) -> Schema {
    let context: &[&str] = match extra {
        ExtraKind::Movielens => &["age", "gender", "occupation"],
        ExtraKind::Synthetic => &[],
    };
    Schema::exposures(context, true, HISTORY)
}

/// The files of a configuration's data, building a generated dataset into `out/data` first
/// (once: a folder with its `dataset.json` is reused), and the schema to read them with.
///
/// # Errors
/// A failed build or download, or an `out/data` built from other `[data]` settings.
pub fn materialise(
    data: &DataConfig,
    schema: Option<&Schema>,
    out: &Path,
    data_dir: &Path,
    config_path: &Path,
) -> anyhow::Result<(FilesConfig, Schema)> {
    let (extra, truth) = match data {
        DataConfig::Files(files) => {
            let resolve = |p: &Path| crate::align::relative_to(config_path, p);
            let files = FilesConfig {
                train: resolve(&files.train),
                valid: resolve(&files.valid),
                test: resolve(&files.test),
                truth: files.truth.clone(),
            };
            let schema = schema
                .cloned()
                .context("[schema] is needed for [data.files]")?;
            return Ok((files, schema));
        }
        DataConfig::Synthetic(_) => (ExtraKind::Synthetic, Some("p_click".to_owned())),
        DataConfig::Movielens(_) => (ExtraKind::Movielens, None),
    };
    let folder = out.join("data");
    // A rerun with another generator setting must not train on the data built before.
    crate::align::check_settings(&folder, &serde_json::json!({ "data": data }))?;
    if !folder.join("dataset.json").is_file() {
        let dataset = match data {
            DataConfig::Synthetic(config) => build_synthetic(config)?,
            DataConfig::Movielens(options) => build_movielens(options, data_dir)?,
            DataConfig::Files(_) => unreachable!("returned above"),
        };
        // `write` puts dataset.json last: its presence marks a complete build.
        write(&dataset, &folder)?;
    }
    let files = FilesConfig {
        train: folder.join("train.csv"),
        valid: folder.join("valid.csv"),
        test: folder.join("test.csv"),
        truth,
    };
    Ok((files, schema.cloned().unwrap_or_else(|| schema_of(extra))))
}

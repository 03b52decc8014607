//! `fuselab ctr`: click-through-rate prediction with DIN, DIN + trigger and CCN (spec
//! `ccn.md`). `data` builds the two offline datasets, `train` runs one configuration, `benchmark`
//! runs models × λ × seeds with resumable runs and writes the report, `predict` scores a file
//! with a trained model.

pub mod config;
pub mod data;
pub mod datasets;
pub mod report;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fuselab_ml::ctr::train;
use fuselab_ml::ctr::{CtrConfig, ModelKind};
use fuselab_shared::ctr::encode::{Encoded, Preprocessor};

pub use config::RunConfig;
pub use report::{CTR_SCHEMA, CtrReport};

use self::report::SplitSize;
use self::run::{Prepared, RunResult};
use crate::align::ConfigArgs;
use crate::align::run::write_atomic;

/// `fuselab ctr …`.
#[derive(Debug, Subcommand)]
pub enum CtrCommand {
    /// Build a dataset: the MovieLens-100K trigger-induced proxy or the synthetic benchmark
    #[command(subcommand)]
    Data(datasets::DataCommand),
    /// Train one model of a configuration (checkpoints every epoch; rerun to resume)
    Train(ConfigArgs),
    /// Train models × λ × seeds of a configuration's `[benchmark]` and write the report
    Benchmark(ConfigArgs),
    /// Score a CSV or Parquet file with a trained model
    Predict(PredictArgs),
}

/// `ctr predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A run folder of `ctr train` (or one of `ctr benchmark`'s `runs/…`)
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The rows to score (CSV, or Parquet by extension); the label column may be absent
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Where to write the rows with a `probability` column added (CSV)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs a `ctr` command.
///
/// # Errors
/// Bad configuration or data, or a failed run.
pub fn command(command: &CtrCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        CtrCommand::Data(data) => datasets::command(data, data_dir),
        CtrCommand::Train(args) => print(&train(args, data_dir)?, args.json),
        CtrCommand::Benchmark(args) => print(&benchmark(args, data_dir)?, args.json),
        CtrCommand::Predict(args) => predict(args),
    }
}

fn print(report: &CtrReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report::markdown(report));
    }
    Ok(())
}

/// The configuration, its output folder and the encoded splits.
///
/// # Errors
/// A bad configuration or data file.
pub fn prepare(path: &Path, data_dir: &Path) -> anyhow::Result<(RunConfig, PathBuf, Prepared)> {
    let config: RunConfig = crate::align::read_config(path)?;
    let out = crate::align::relative_to(path, &config.out);
    crate::align::ensure_out(&out)?;
    let (files, schema) =
        datasets::materialise(&config.data, config.schema.as_ref(), &out, data_dir, path)?;
    let (train, valid, test) = (&files.train, &files.valid, &files.test);
    let train_table = data::read_table(train, &schema)?;
    let preprocessor = Preprocessor::fit(&schema, &train_table)
        .map_err(|e| anyhow::anyhow!("{}: {e}", train.display()))?;
    let encode = |file: &Path| -> anyhow::Result<_> {
        let table = data::read_table(file, &schema)?;
        let encoded = data::encode(&preprocessor, &table, file)?;
        Ok((table, encoded))
    };
    let train_encoded = data::encode(&preprocessor, &train_table, train)?;
    let (_, valid_encoded) = encode(valid)?;
    let (test_table, test_encoded) = encode(test)?;
    let truth = match &files.truth {
        Some(column) => Some(truth_column(&test_table, column, test)?),
        None => None,
    };
    let prepared = Prepared {
        preprocessor,
        train: train_encoded,
        valid: valid_encoded,
        test: test_encoded,
        truth,
    };
    Ok((config, out, prepared))
}

fn truth_column(
    table: &fuselab_shared::ctr::encode::RawTable,
    column: &str,
    file: &Path,
) -> anyhow::Result<Vec<f64>> {
    let at = table
        .columns
        .iter()
        .position(|c| c == column)
        .with_context(|| format!("{}: no column `{column}` (data.truth)", file.display()))?;
    table
        .rows
        .iter()
        .map(|row| {
            row.cells[at]
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .with_context(|| {
                    format!(
                        "{}: line {}, column `{column}`: expected a probability in [0, 1], found `{}`",
                        file.display(),
                        row.line,
                        row.cells[at]
                    )
                })
        })
        .collect()
}

fn split_sizes(prepared: &Prepared) -> Vec<SplitSize> {
    let size = |split: &str, e: &Encoded| SplitSize {
        split: split.to_owned(),
        rows: e.rows,
        click_rate: e.labels.iter().filter(|&&c| c).count() as f64 / e.rows.max(1) as f64,
        users: e.user_names.len(),
    };
    vec![
        size("train", &prepared.train),
        size("valid", &prepared.valid),
        size("test", &prepared.test),
    ]
}

fn report_of(
    config: &RunConfig,
    prepared: &Prepared,
    runs: Vec<RunResult>,
    started: Instant,
) -> CtrReport {
    CtrReport {
        schema: CTR_SCHEMA.to_owned(),
        data: match &config.data {
            config::DataConfig::Files(files) => files.train.display().to_string(),
            config::DataConfig::Synthetic(s) => {
                format!(
                    "synthetic (seed {}, trigger_weight {})",
                    s.seed, s.trigger_weight
                )
            }
            config::DataConfig::Movielens(m) => {
                format!(
                    "MovieLens-100K proxy (click: rating ≥ {})",
                    m.positive_rating
                )
            }
        },
        splits: split_sizes(prepared),
        ceiling: prepared.ceiling(),
        summary: report::summarise(&runs),
        runs,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// `fuselab ctr train`: the configuration's model and seed, in its `out` folder.
///
/// # Errors
/// Bad configuration or data, or a failed run.
pub fn train(args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<CtrReport> {
    let started = Instant::now();
    let (config, out, prepared) = prepare(&args.config, data_dir)?;
    let device = crate::align::run::device(config.device, args.device)?;
    let place = run::Place {
        name: run::run_name(config.model.model, None, config.seed),
        index: 1,
        runs: 1,
    };
    crate::align::check_settings(&out, &run_settings(&config, &config.model, config.seed))?;
    let result = run::train(
        &prepared,
        &config.model,
        &config.train,
        config.seed,
        &out,
        &place,
        &device,
    )?;
    let report = report_of(&config, &prepared, vec![result], started);
    report::write(&out, &report)?;
    Ok(report)
}

/// `fuselab ctr benchmark`: every model × λ × seed of `[benchmark]`, each in
/// `out/runs/<model>[-lambda<λ>]-seed<s>` (finished runs are read back, interrupted ones
/// resume), then the report.
///
/// # Errors
/// Bad configuration or data, no `[benchmark]` table, or a failed run.
pub fn benchmark(args: &ConfigArgs, data_dir: &Path) -> anyhow::Result<CtrReport> {
    let started = Instant::now();
    let (config, out, prepared) = prepare(&args.config, data_dir)?;
    let grid = config.benchmark.clone().with_context(|| {
        format!(
            "{}: no [benchmark] table (models, seeds, lambdas)",
            args.config.display()
        )
    })?;
    let device = crate::align::run::device(config.device, args.device)?;
    let mut planned = Vec::new();
    for &model in &grid.models {
        let lambdas: Vec<Option<f64>> = if model == ModelKind::Ccn && !grid.lambdas.is_empty() {
            grid.lambdas.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        for lambda in lambdas {
            let mut model_config = config.model.clone();
            model_config.model = model;
            if let Some(l) = lambda {
                model_config.collaborative.lambda_attract = l;
                model_config.collaborative.lambda_repel = l;
            }
            for &seed in &grid.seeds {
                planned.push((
                    run::run_name(model, lambda, seed),
                    model_config.clone(),
                    seed,
                ));
            }
        }
    }
    let mut runs = Vec::new();
    for (i, (name, model_config, seed)) in planned.iter().enumerate() {
        tracing::info!(run = %name, "run {} of {}", i + 1, planned.len());
        let place = run::Place {
            name: name.clone(),
            index: i + 1,
            runs: planned.len(),
        };
        let folder = out.join("runs").join(name);
        crate::align::check_settings(&folder, &run_settings(&config, model_config, *seed))?;
        runs.push(run::train(
            &prepared,
            model_config,
            &config.train,
            *seed,
            &folder,
            &place,
            &device,
        )?);
    }
    let report = report_of(&config, &prepared, runs, started);
    report::write(&out, &report)?;
    Ok(report)
}

/// What a run's result depends on: a finished or interrupted run folder is reused only with
/// these unchanged (the device is left out: a run may resume on another).
fn run_settings(config: &RunConfig, model: &CtrConfig, seed: u64) -> serde_json::Value {
    serde_json::json!({
        "data": config.data,
        "schema": config.schema,
        "model": model,
        "train": config.train,
        "seed": seed,
    })
}

/// `fuselab ctr predict`.
///
/// # Errors
/// A missing model or a file that does not fit its schema.
pub fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let device = fuselab_ml::open(fuselab_ml::Compute::Cpu)?;
    let (model, preprocessor) = run::load_model(&args.model, &device)?;
    let mut table = data::read_table(&args.data, &preprocessor.schema)?;
    let label = &preprocessor.schema.label;
    // A file to score may lack the label: a stand-in column is encoded and taken out again.
    let unlabelled = !table.columns.contains(label);
    if unlabelled {
        table.columns.push(label.clone());
        table
            .rows
            .iter_mut()
            .for_each(|row| row.cells.push("0".into()));
    }
    let encoded = data::encode(&preprocessor, &table, &args.data)?;
    let probabilities = train::predict(&model, &encoded, 4096);
    if unlabelled {
        table.columns.pop();
        table.rows.iter_mut().for_each(|row| drop(row.cells.pop()));
    }
    table.columns.push("probability".into());
    for (row, p) in table.rows.iter_mut().zip(&probabilities) {
        row.cells.push(p.to_string());
    }
    let text = fuselab_shared::table::write(
        std::iter::once(table.columns.clone()).chain(table.rows.into_iter().map(|r| r.cells)),
    );
    write_atomic(&args.out, text.as_bytes())?;
    tracing::info!(rows = probabilities.len(), out = %args.out.display(), "scored");
    Ok(())
}

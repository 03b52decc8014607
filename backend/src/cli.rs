//! Command-line interface: `fuselab serve`, `devices`, `ensemble`, `face`, `mask`, `models`,
//! `llm`, `align`.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    align, devices, ensemble, face, llm, mask, models,
    reports::{self, ReportStore},
    server,
};

/// fuselab: trustworthy-AI methods in one self-hosted binary.
// clap prints these doc comments as `--help`, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Parser)]
#[command(name = "fuselab", version, propagate_version = true)]
pub struct Cli {
    /// Directory for the database, caches and model files [default: the platform's data
    /// directory, e.g. ~/.local/share/fuselab]
    #[arg(long, global = true, env = "FUSELAB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log format (logs go to stderr; filter them with RUST_LOG)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app and the JSON API
    Serve(ServeArgs),
    /// List the compute devices and check that each computes correctly
    Devices(DevicesArgs),
    /// Analyse a pool of models from their predictions: focal diversity, votes, best teams
    #[command(subcommand)]
    Ensemble(ensemble::EnsembleCommand),
    /// Face detection and recognition on photos
    #[command(subcommand)]
    Face(face::FaceCommand),
    /// Personal privacy masks (Chameleon P3-Mask): learn yours, protect photos, verify
    #[command(subcommand)]
    Mask(mask::MaskCommand),
    /// Model weights and test photos from the package registries
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Language models: generate text (SmolLM2 or a Hugging Face directory)
    #[command(subcommand)]
    Llm(llm::LlmCommand),
    /// LLM alignment runs: supervised fine-tuning, H3Fusion
    #[command(subcommand)]
    Align(align::AlignCommand),
}

/// `fuselab serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Largest accepted request body, in bytes
    #[arg(long, default_value_t = server::ServerConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
}

/// `fuselab devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Exit with an error when no GPU adapter (wgpu) passes its checks
    #[arg(long)]
    pub require_gpu: bool,
}

/// Parses the command line, runs it and turns errors into a message and an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line.
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            if is_bad_input(&error) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Errors in what the user gave (files, their contents) exit with 2, like usage errors.
fn is_bad_input(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<ensemble::input::InputError>()
            || cause.is::<fuselab_shared::ensemble::PoolError>()
            || cause.is::<face::PhotoError>()
            || cause.is::<fuselab_shared::align::DataError>()
            || cause.is::<align::data::ParquetError>()
            || cause.is::<align::ConfigError>()
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn data_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    match &cli.data_dir {
        Some(dir) => Ok(dir.clone()),
        None => dirs::data_dir()
            .map(|dir| dir.join("fuselab"))
            .context("this platform has no data directory; pass --data-dir DIR"),
    }
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stopped the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir(&cli)?;
    match cli.command {
        Command::Serve(args) => {
            ensure_dir(&data_dir)?;
            serve(&args, &data_dir)
        }
        Command::Devices(args) => Ok(devices::report(args.require_gpu)),
        Command::Ensemble(command) => {
            ensemble::run(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Face(command) => {
            face::run(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Mask(command) => {
            mask::run(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models(command) => {
            models::run(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Llm(command) => {
            llm::run(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Align(command) => {
            align::run(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: &ServeArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        tracing::info!(%addr, data_dir = %data_dir.display(), "serving");
        // Scripts and tests read the URL from stdout (with `--addr 127.0.0.1:0` the port is new).
        println!("fuselab listening on http://{addr}");
        let store = data_dir.join(reports::FILE_NAME);
        let store = ReportStore::open(&store)
            .with_context(|| format!("cannot open the report database {}", store.display()))?;
        let app = server::app(server::ServerConfig {
            max_body_bytes: args.max_body_bytes,
            reports: Some(Arc::new(store)),
            demo_pool: Some(data_dir.join(ensemble::demo::DEMO_POOL)),
            data_dir: Some(data_dir.to_path_buf()),
            align: Arc::new(
                server::AlignRuns::open(data_dir)
                    .context("cannot open the alignment runs of the data directory")?,
            ),
            ..server::ServerConfig::default()
        });
        server::serve(listener, app)
            .await
            .context("the server failed")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    // A training job still running does not hold the exit up: an alignment run is marked
    // interrupted when the server starts again and resumes from its checkpoints.
    runtime.shutdown_background();
    served
}

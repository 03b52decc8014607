//! Command-line interface: `fuselab serve`, `users`, `devices`, `ensemble`, `face`, `mask`,
//! `models`, `llm`, `align`, `ctr`, `pose`.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use fuselab_shared::ensemble::Limits;

use crate::{
    accounts::{AccountError, Accounts},
    align,
    artifacts::ArtifactStore,
    ctr, db, devices, ensemble, face, jobs, llm, mask, models, pose,
    reports::{ReportLimits, ReportStore},
    server::{self, AuthMode},
    users,
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
    /// The server's accounts: add, list, remove users, set passwords and roles, API tokens
    Users(users::UsersArgs),
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
    /// Click-through-rate prediction: DIN, DIN + trigger and CCN on your logs, the MovieLens
    /// proxy or the synthetic benchmark
    #[command(subcommand)]
    Ctr(ctr::CtrCommand),
    /// Video human-pose estimation (JM-Pose): the synthetic video benchmark
    #[command(subcommand)]
    Pose(pose::PoseCommand),
    /// The job queue: list, show, cancel, delete and retry jobs
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Run jobs from the job database on this machine (stop with Ctrl-C or SIGTERM)
    Worker(jobs::WorkerArgs),
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

    /// Whether users sign in; `off` makes every visitor an administrator and is refused on
    /// addresses other than loopback
    #[arg(long, value_enum, default_value_t = AuthArg::On)]
    pub auth: AuthArg,

    /// The address people use to reach this server (e.g. `https://fuselab.example.org`); its host
    /// name is added to the loopback names the server answers to (repeat for several)
    #[arg(long, value_name = "URL")]
    pub public_url: Vec<String>,

    /// On first start, the password of the administrator `admin` (first line of FILE) instead
    /// of a one-time password printed once
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Clients reach the server over HTTPS through a reverse proxy: the session cookie gets
    /// `Secure` and answers carry HSTS
    #[arg(long)]
    pub behind_https_proxy: bool,

    #[command(flatten)]
    pub database: db::DatabaseArgs,

    #[command(flatten)]
    pub artifacts: jobs::ArtifactsArgs,

    /// Run no jobs in this process (they wait for `fuselab worker` processes)
    #[arg(long)]
    pub no_worker: bool,

    /// Seconds a client has to send a request's headers (and to start its next request on a
    /// kept-alive connection)
    #[arg(long, default_value_t = server::Connections::default().header_timeout.as_secs())]
    pub header_timeout: u64,

    /// Open connections at most (others wait in the kernel's backlog)
    #[arg(long, default_value_t = server::Connections::default().max)]
    pub max_connections: usize,

    /// Seconds a request may take until its answer starts (event streams then run on, up to an
    /// hour, with heartbeats)
    #[arg(long, default_value_t = server::ServerConfig::default().request_timeout.as_secs())]
    pub request_timeout: u64,

    /// Models in a pool the server analyses
    #[arg(long, default_value_t = Limits::default().max_models)]
    pub max_models: usize,

    /// Classes in a pool the server analyses
    #[arg(long, default_value_t = Limits::default().max_classes)]
    pub max_classes: usize,

    /// Samples × models (and models × classes) in a pool or table the server analyses
    #[arg(long, default_value_t = Limits::default().max_cells)]
    pub max_cells: u64,

    /// Samples × models × classes of the probabilities in a pool the server analyses
    #[arg(long, default_value_t = Limits::default().max_probabilities)]
    pub max_probabilities: u64,

    /// Teams one server-side analysis enumerates
    #[arg(long, default_value_t = Limits::default().max_teams)]
    pub max_teams: u64,

    /// Server-side analyses and co-failure tables running at once, in all
    #[arg(long, default_value_t = server::HeavyLimits::default().total)]
    pub max_heavy: usize,

    /// Server-side analyses and co-failure tables running at once per user
    #[arg(long, default_value_t = server::HeavyLimits::default().per_user)]
    pub max_heavy_per_user: usize,

    /// Largest saved report, in bytes of JSON
    #[arg(long, default_value_t = ReportLimits::default().max_bytes)]
    pub max_report_bytes: usize,

    /// Most saved reports per user
    #[arg(long, default_value_t = ReportLimits::default().max_per_user)]
    pub max_reports_per_user: u64,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// Users sign in (accounts in the data directory's database)
    On,
    /// No accounts (loopback addresses only)
    Off,
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
            || cause.is::<fuselab_shared::ensemble::combine::CombineError>()
            || cause.is::<face::PhotoError>()
            || cause.is::<fuselab_shared::align::DataError>()
            || cause.is::<align::data::ParquetError>()
            || cause.is::<align::ConfigError>()
            || cause
                .downcast_ref::<AccountError>()
                .is_some_and(AccountError::is_input)
            || cause.is::<fuselab_shared::ensemble::LimitError>()
            || matches!(
                cause.downcast_ref::<fuselab_shared::ensemble::SelectError>(),
                Some(fuselab_shared::ensemble::SelectError::Limit(_))
            )
            || cause.is::<fuselab_shared::mask::key::KeyError>()
            || cause.is::<ServeError>()
            || cause.is::<server::TlsError>()
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
        Command::Users(args) => {
            users::run(&args, &data_dir)?;
            Ok(ExitCode::SUCCESS)
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
        Command::Ctr(command) => {
            ctr::command(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pose(command) => {
            pose::command(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs(command) => {
            jobs::run_jobs(&command, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker(args) => {
            let artifacts = args.artifacts.open(&data_dir)?;
            let handlers = job_handlers(&data_dir, &artifacts, args.device, None);
            jobs::run_worker(&args, &data_dir, handlers)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A `fuselab serve` command line that cannot be served as given.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--auth off` on an address others can reach.
    #[error(
        "refusing to serve {addr} without accounts: anyone who reaches it could read and delete \
         every report and start training jobs. Drop `--auth off` (users then sign in), or listen \
         on a loopback address such as 127.0.0.1:8080"
    )]
    OpenWithoutAuth {
        /// The address.
        addr: SocketAddr,
    },
    /// A `--public-url` that is not one.
    #[error("--public-url `{url}` is not an http:// or https:// URL with a host name")]
    PublicUrl {
        /// What was given.
        url: String,
    },
}

/// The host names the server answers to: the loopback names and each `--public-url`'s.
///
/// # Errors
/// A `--public-url` that is not a URL.
pub fn allowed_hosts(public_urls: &[String]) -> Result<Vec<String>, ServeError> {
    let mut hosts: Vec<String> = server::LOOPBACK_HOSTS.map(str::to_owned).to_vec();
    for url in public_urls {
        let host =
            server::public_host(url).ok_or_else(|| ServeError::PublicUrl { url: url.clone() })?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

/// Keeps the server from writing core dumps (they would hold users' photos, keys and
/// passwords) and other processes of the same user from reading its memory.
fn disable_core_dumps() -> anyhow::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .context("cannot disable core dumps (setrlimit)")?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("cannot disable core dumps (prctl PR_SET_DUMPABLE)")?;
    Ok(())
}

/// Prints the address scripts and tests read, and on a first start the administrator's
/// one-time password (standard output, not the log: shown to the operator this once, never
/// stored). Written, not `println!`: a reader that has gone (a script that read the first line)
/// must not bring the server down.
fn announce(url: &str, first_password: Option<&str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "fuselab listening on {url}");
    if let Some(password) = first_password {
        let shown = writeln!(
            stdout,
            "first start: created the administrator `admin`; sign in with the one-time password \
             below and change it at /account (or `fuselab users passwd admin`)\n\
             admin password: {password}"
        );
        if shown.is_err() {
            tracing::warn!(
                "could not show the administrator's one-time password; set one with \
                 `fuselab users passwd admin`"
            );
        }
    }
    let _ = stdout.flush();
}

/// Every job kind this binary runs.
fn job_handlers(
    data_dir: &Path,
    artifacts: &ArtifactStore,
    compute: fuselab_ml::Compute,
    training: Option<Arc<tokio::sync::Semaphore>>,
) -> jobs::Handlers {
    let mut handlers = ensemble::sharded::handlers();
    handlers.extend(mask::job::handlers(
        data_dir,
        artifacts,
        compute,
        training.clone(),
    ));
    handlers.extend(align::job::handlers(data_dir, artifacts, training));
    handlers
}

/// Brings the job tables of `database` up to date, opens the artifact store, and starts the server's own
/// worker unless `--no-worker` (its training waits for `training`, the permit the server's
/// alignment runs take too).
async fn server_worker(
    args: &ServeArgs,
    data_dir: &Path,
    database: db::Database,
    training: &Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<(server::JobQueue, Option<jobs::InProcessWorker>)> {
    let legacy = data_dir.join("align-runs");
    if legacy.is_dir() {
        tracing::warn!(
            folder = %legacy.display(),
            "alignment runs of an earlier version stay in this folder, untouched; runs are jobs \
             now and the server no longer lists them"
        );
    }
    let url = db::redact(database.url());
    let store = jobs::JobStore::on(database)
        .await
        .with_context(|| format!("cannot open the job tables of {url}"))?;
    let artifacts = args.artifacts.open(data_dir)?;
    let queue = server::JobQueue {
        store: store.clone(),
        artifacts: artifacts.clone(),
    };
    if args.no_worker {
        return Ok((queue, None));
    }
    let options = jobs::WorkerOptions::new(vec![jobs::Capability::Cpu])?;
    let handlers = job_handlers(
        data_dir,
        &artifacts,
        fuselab_ml::Compute::Cpu,
        Some(Arc::clone(training)),
    );
    Ok((
        queue,
        Some(jobs::InProcessWorker::start(store, options, handlers)),
    ))
}

fn serve(args: &ServeArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    if args.auth == AuthArg::Off && !args.addr.ip().is_loopback() {
        return Err(ServeError::OpenWithoutAuth { addr: args.addr }.into());
    }
    disable_core_dumps()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
        _ => None,
    };
    let allowed_hosts = allowed_hosts(&args.public_url)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        let database = db::open(&args.database, data_dir).await?;
        let store = ReportStore::new(
            database.clone(),
            ReportLimits {
                max_bytes: args.max_report_bytes,
                max_per_user: args.max_reports_per_user,
            },
        );
        let legacy = data_dir.join(db::LEGACY_REPORTS);
        if legacy.is_file() {
            let imported = store
                .import_legacy(&legacy)
                .await
                .with_context(|| format!("cannot import the reports of {}", legacy.display()))?;
            tracing::info!(imported, "imported the reports of an earlier version");
        }
        let (auth, first_password) = match args.auth {
            AuthArg::Off => (AuthMode::Off, None),
            AuthArg::On => {
                let accounts = Accounts::new(database.clone());
                let first =
                    users::ensure_admin(&accounts, args.admin_password_file.as_deref()).await?;
                (AuthMode::On(accounts), first)
            }
        };
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        tracing::info!(%addr, data_dir = %data_dir.display(), "serving");
        // Scripts and tests read the URL from stdout (with `--addr 127.0.0.1:0` the port is new).
        let scheme = if tls.is_some() { "https" } else { "http" };
        announce(
            &format!("{scheme}://{addr}"),
            first_password.as_deref().map(String::as_str),
        );
        let training = Arc::new(tokio::sync::Semaphore::new(1));
        let (queue, worker) = server_worker(args, data_dir, database, &training).await?;
        let app = server::app(server::ServerConfig {
            max_body_bytes: args.max_body_bytes,
            reports: Some(Arc::new(store)),
            demo_pool: Some(data_dir.join(ensemble::demo::DEMO_POOL)),
            data_dir: Some(data_dir.to_path_buf()),
            jobs: Some(queue),
            auth,
            allowed_hosts,
            tls: tls.is_some() || args.behind_https_proxy,
            request_timeout: std::time::Duration::from_secs(args.request_timeout),
            limits: Limits {
                max_models: args.max_models,
                max_classes: args.max_classes,
                max_cells: args.max_cells,
                max_probabilities: args.max_probabilities,
                max_teams: args.max_teams,
                ..Limits::default()
            },
            heavy: Arc::new(server::Heavy::new(server::HeavyLimits {
                per_user: args.max_heavy_per_user,
                total: args.max_heavy,
            })),
            ..server::ServerConfig::default()
        });
        let connections = server::Connections {
            max: args.max_connections.max(1),
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            ..server::Connections::default()
        };
        server::serve(listener, app, tls, connections)
            .await
            .context("the server failed")?;
        if let Some(worker) = worker {
            worker.stop(std::time::Duration::from_secs(10)).await;
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    });
    // A training job still running does not hold the exit up: its lease lapses, and a worker
    // (this server's, once it starts again) resumes it from its last checkpoint.
    runtime.shutdown_background();
    served
}

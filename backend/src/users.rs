//! `fuselab users add|list|remove|passwd|set|token`: the server's accounts, from the command line
//! (run it beside the server on the same database; SQLite and Postgres let both write).

use std::{
    io::BufRead as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use fuselab_shared::api::Role;
use zeroize::Zeroizing;

use crate::{accounts::Accounts, db};

/// `fuselab users [--database URL] …`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub database: db::DatabaseArgs,
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// The subcommands of `fuselab users`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (the password is read from --password-file, or from standard input)
    Add(AddArgs),
    /// List the users
    List,
    /// Remove a user with their sessions and tokens (their reports stay, for administrators)
    Remove {
        /// The user name
        name: String,
    },
    /// Set a user's password (signs them out everywhere)
    Passwd {
        /// The user name
        name: String,
        /// Read the password from this file's first line instead of standard input
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Change a user's role or training permission
    Set(SetArgs),
    /// Create an API token for a user and print it (shown this once)
    Token {
        /// The user name
        name: String,
        /// A name to recognise the token by
        #[arg(long, default_value = "command line")]
        label: String,
    },
}

/// The role, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, every user's runs and reports
    Admin,
    /// Their own masks, analyses, reports and (with --can-train) training runs
    User,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Self::Admin,
            RoleArg::User => Self::User,
        }
    }
}

/// `fuselab users add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user name (letters, digits, `.`, `_`, `-`)
    pub name: String,
    /// Their role
    #[arg(long, value_enum, default_value_t = RoleArg::User)]
    pub role: RoleArg,
    /// Allow them to start training runs (alignment runs; admins always may)
    #[arg(long)]
    pub can_train: bool,
    /// Read the password from this file's first line instead of standard input
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// `fuselab users set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The user name
    pub name: String,
    /// The new role
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// Whether they may start training runs
    #[arg(long, value_name = "true|false")]
    pub can_train: Option<bool>,
}

/// A password from the first line of `file`, or of standard input.
///
/// # Errors
/// When it cannot be read.
pub fn read_password(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    if let Some(file) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {}", file.display()))?,
        );
        line.push_str(text.lines().next().unwrap_or_default());
    } else {
        eprintln!("password (one line on standard input):");
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let trimmed = line.trim_end_matches(['\r', '\n']).len();
        line.truncate(trimmed);
    }
    Ok(line)
}

/// Runs `fuselab users …`.
///
/// # Errors
/// Bad input (exit 2: a name, a password, the last admin) or a failing database.
pub fn run(args: &UsersArgs, data_dir: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let accounts = Accounts::new(db::open(&args.database, data_dir).await?);
        manage(&accounts, &args.command).await
    })
}

async fn manage(accounts: &Accounts, command: &UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add(args) => {
            let password = read_password(args.password_file.as_deref())?;
            let user = accounts
                .add(&args.name, &password, args.role.into(), args.can_train)
                .await?;
            println!(
                "added {} ({}{})",
                user.name,
                user.role.as_str(),
                if user.can_train { ", may train" } else { "" }
            );
        }
        UsersCommand::List => {
            println!("{:<24} {:<6} {:<6} created", "name", "role", "train");
            for user in accounts.list().await? {
                println!(
                    "{:<24} {:<6} {:<6} {}",
                    user.name,
                    user.role.as_str(),
                    if user.may_train() { "yes" } else { "no" },
                    user.created
                );
            }
        }
        UsersCommand::Remove { name } => {
            accounts.remove(name).await?;
            println!("removed {name}");
        }
        UsersCommand::Passwd {
            name,
            password_file,
        } => {
            let password = read_password(password_file.as_deref())?;
            accounts.set_password(name, &password).await?;
            println!("password of {name} changed; their sessions ended");
        }
        UsersCommand::Set(args) => {
            let user = accounts
                .update(&args.name, args.role.map(Role::from), args.can_train)
                .await?;
            println!(
                "{}: {}, {}",
                user.name,
                user.role.as_str(),
                if user.may_train() {
                    "may train"
                } else {
                    "may not train"
                }
            );
        }
        UsersCommand::Token { name, label } => {
            let user = accounts.get(name).await?;
            let (info, secret) = accounts.create_token(&user, label).await?;
            eprintln!(
                "token {} for {} (shown once; send it as `Authorization: Bearer …`):",
                info.id, user.name
            );
            println!("{secret}");
        }
    }
    Ok(())
}

/// A one-time password for the first administrator: 20 characters from a 57-letter alphabet
/// without look-alikes (about 116 bits).
///
/// # Errors
/// When the system has no randomness.
pub fn one_time_password() -> anyhow::Result<Zeroizing<String>> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = Zeroizing::new([0_u8; 20]);
    getrandom::fill(bytes.as_mut()).context("no randomness for the first password")?;
    // 256 = 4·57 + 28: the small bias of `% 57` costs a fraction of a bit.
    Ok(Zeroizing::new(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect(),
    ))
}

/// On a server with accounts and no users yet: creates the administrator `admin`, with the
/// password of `password_file` or a new one-time password, which is returned for the caller to
/// show once (never logged).
///
/// # Errors
/// When the file cannot be read, the password is refused, or the database fails.
pub async fn ensure_admin(
    accounts: &Accounts,
    password_file: Option<&Path>,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    if accounts.count().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password_file {
        Some(file) => (read_password(Some(file))?, false),
        None => (one_time_password()?, true),
    };
    accounts
        .add("admin", &password, Role::Admin, true)
        .await
        .context("cannot create the first administrator")?;
    tracing::info!("created the administrator `admin`");
    Ok(generated.then_some(password))
}

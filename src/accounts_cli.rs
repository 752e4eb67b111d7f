//! `testscheduler users …` and `testscheduler tokens create …`: accounts and
//! API tokens managed on the database file itself (created if missing), so
//! they work before the first start and while a server runs (they do not take
//! its lock; SQLite's WAL lets both write). Every change is in the audit log
//! with the actor `cli`. Secrets are printed once, alone on stdout; what
//! happened goes to stderr.

use crate::auth::{audit, secret, Role};
use crate::config::{project_dir, ConfigError};
use crate::store::{accounts, now_ms, Store};
use clap::{Args, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;

/// The actor CLI changes are audited as.
const ACTOR: &str = "cli";

/// Where the database is, as `serve` finds it.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// SQLite file [default: testscheduler.db in the project directory]; created if missing.
    #[arg(long, env = "TESTSCHEDULER_DATABASE", global = true)]
    pub database: Option<PathBuf>,
    /// The server's project directory.
    #[arg(long, env = "TESTSCHEDULER_PROJECT_DIR", default_value = ".", global = true)]
    pub project_dir: PathBuf,
}

/// `testscheduler users …`.
#[derive(Debug, Clone, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// What `users` does.
#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Add an account; prints a generated password once (or reads one with --password-stdin).
    Add {
        /// The account name (3 to 80 characters, as a run's username).
        #[arg(value_name = "NAME")]
        name: String,
        /// viewer, runner or admin.
        #[arg(long, value_name = "R")]
        role: Role,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the accounts.
    List,
    /// Change an account's role.
    SetRole {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "R")]
        role: Role,
    },
    /// Disable an account: its sessions end, its tokens stop working.
    Disable {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Give an account a new password (generated and printed once, or read with
    /// --password-stdin); its sessions end.
    ResetPassword {
        #[arg(value_name = "NAME")]
        name: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `testscheduler tokens …`.
#[derive(Debug, Clone, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// What `tokens` does.
#[derive(Debug, Clone, Subcommand)]
pub enum TokensCommand {
    /// Create an API token for an account; prints it once.
    Create {
        /// The account the token acts as (with its role).
        #[arg(long, value_name = "NAME")]
        user: String,
        /// What the token is for, e.g. ci.
        #[arg(long, value_name = "N")]
        name: String,
        /// Days until it stops working.
        #[arg(long, value_name = "D", default_value_t = crate::auth::DEFAULT_TOKEN_DAYS,
              value_parser = clap::value_parser!(u64).range(1..=crate::auth::MAX_TOKEN_DAYS))]
        expires_days: u64,
    },
}

/// Why a command failed; `Usage` exits 2, the rest 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> CliError {
        CliError::Usage(e.to_string())
    }
}

impl CliError {
    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

fn open(db: &DatabaseArgs) -> Result<Store, CliError> {
    let path = match &db.database {
        Some(p) => p.clone(),
        None => project_dir(&db.project_dir)?.join("testscheduler.db"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(CliError::Usage(format!(
                "--database {}: the directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
    }
    Store::open(&path).map_err(|e| CliError::Failed(format!("--database {}: {e}", path.display())))
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

fn check_name(name: &str) -> Result<(), CliError> {
    match crate::http::dto::name_error(name, 3, 80) {
        Some(why) => Err(CliError::Usage(format!("NAME {name:?}: {why}"))),
        None => Ok(()),
    }
}

/// The password: read from stdin (`--password-stdin`) or generated. Returns
/// it and whether it was generated (then it is printed).
fn password(from_stdin: bool) -> Result<(String, bool), CliError> {
    if !from_stdin {
        return Ok((secret::generate_password(), true));
    }
    let line = read_line_unechoed().map_err(|e| CliError::Usage(format!("--password-stdin: {e}")))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    let n = pw.chars().count();
    if !(secret::MIN_PASSWORD..=secret::MAX_PASSWORD).contains(&n) {
        return Err(CliError::Usage(format!(
            "--password-stdin: the password must be {} to {} characters long (got {n})",
            secret::MIN_PASSWORD,
            secret::MAX_PASSWORD
        )));
    }
    Ok((pw, false))
}

/// One line of stdin; on a terminal, asked for on stderr and not echoed.
fn read_line_unechoed() -> std::io::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let mut line = String::new();
    if !stdin.is_terminal() {
        stdin.lock().read_line(&mut line)?;
        return Ok(line);
    }
    eprint!("password: ");
    let saved = tcgetattr(&stdin).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read?;
    restored.map_err(std::io::Error::from)?;
    Ok(line)
}

fn no_such(name: &str) -> CliError {
    CliError::Usage(format!(
        "NAME {name:?}: no such account (see `testscheduler users list`)"
    ))
}

/// Runs `users …`.
pub fn users(args: UsersArgs) -> Result<(), CliError> {
    if let UsersCommand::Add { name, .. }
    | UsersCommand::SetRole { name, .. }
    | UsersCommand::Disable { name }
    | UsersCommand::Enable { name }
    | UsersCommand::ResetPassword { name, .. } = &args.command
    {
        check_name(name)?;
    }
    // Read a password before touching the database: a bad one changes nothing.
    let pw = match &args.command {
        UsersCommand::Add { password_stdin, .. } | UsersCommand::ResetPassword { password_stdin, .. } => {
            Some(password(*password_stdin)?)
        }
        _ => None,
    };
    let store = open(&args.db)?;
    let conn = store.conn().map_err(failed)?;
    match args.command {
        UsersCommand::Add { name, role, .. } => {
            let (pw, generated) = pw.ok_or_else(|| failed("no password"))?;
            let hash = secret::hash_password(&pw).map_err(failed)?;
            if accounts::add_user(&conn, &name, role, Some(&hash), now_ms())
                .map_err(failed)?
                .is_none()
            {
                return Err(CliError::Usage(format!(
                    "NAME {name:?}: an account with this name exists"
                )));
            }
            audit::record(&conn, ACTOR, "user.add", &name, &format!("role {role}")).map_err(failed)?;
            announce_password(&pw, generated, &format!("added {name} ({role})"));
        }
        UsersCommand::List => {
            println!("{:<32} {:<7} {:<9} CREATED", "NAME", "ROLE", "STATE");
            for u in accounts::list_users(&conn).map_err(failed)? {
                let created = chrono::DateTime::from_timestamp_millis(u.created_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                let state = if u.disabled { "disabled" } else { "active" };
                println!("{:<32} {:<7} {:<9} {created}", u.name, u.role.as_str(), state);
            }
        }
        UsersCommand::SetRole { name, role } => {
            if !accounts::set_role(&conn, &name, role).map_err(failed)? {
                return Err(no_such(&name));
            }
            audit::record(&conn, ACTOR, "user.role", &name, &format!("role {role}")).map_err(failed)?;
            eprintln!("{name} is now {role}");
        }
        UsersCommand::Disable { name } => {
            if !accounts::set_disabled(&conn, &name, true).map_err(failed)? {
                return Err(no_such(&name));
            }
            audit::record(&conn, ACTOR, "user.disable", &name, "").map_err(failed)?;
            eprintln!("{name} is disabled: their sessions ended and their tokens stop working");
        }
        UsersCommand::Enable { name } => {
            if !accounts::set_disabled(&conn, &name, false).map_err(failed)? {
                return Err(no_such(&name));
            }
            audit::record(&conn, ACTOR, "user.enable", &name, "").map_err(failed)?;
            eprintln!("{name} is enabled");
        }
        UsersCommand::ResetPassword { name, .. } => {
            let (pw, generated) = pw.ok_or_else(|| failed("no password"))?;
            let hash = secret::hash_password(&pw).map_err(failed)?;
            if !accounts::set_password(&conn, &name, &hash).map_err(failed)? {
                return Err(no_such(&name));
            }
            audit::record(&conn, ACTOR, "user.password", &name, "reset").map_err(failed)?;
            announce_password(
                &pw,
                generated,
                &format!("new password for {name}; their sessions ended"),
            );
        }
    }
    Ok(())
}

fn announce_password(pw: &str, generated: bool, what: &str) {
    if generated {
        eprintln!("{what}; the password below is shown only now:");
        println!("{pw}");
    } else {
        eprintln!("{what}");
    }
}

/// Runs `tokens …`.
pub fn tokens(args: TokensArgs) -> Result<(), CliError> {
    let TokensCommand::Create {
        user,
        name,
        expires_days,
    } = args.command;
    if let Some(why) = crate::http::dto::name_error(&name, 1, 80) {
        return Err(CliError::Usage(format!("--name {name:?}: {why}")));
    }
    let store = open(&args.db)?;
    let conn = store.conn().map_err(failed)?;
    let Some(account) = accounts::user_by_name(&conn, &user).map_err(failed)? else {
        return Err(CliError::Usage(format!("--user {user:?}: no such account")));
    };
    let token = secret::new_secret(crate::auth::TOKEN_PREFIX);
    let now = now_ms();
    let expires = now + i64::try_from(expires_days).unwrap_or(0) * 86_400_000;
    let t = accounts::create_token(&conn, account.id, &name, &secret::digest(&token), now, expires).map_err(failed)?;
    audit::record(&conn, ACTOR, "token.create", &user, &format!("token {} ({name})", t.id)).map_err(failed)?;
    eprintln!(
        "token {} ({name}) for {user} ({}), until {}; shown only now:",
        t.id,
        account.role,
        crate::auth::format_ms(expires)
    );
    println!("{token}");
    Ok(())
}

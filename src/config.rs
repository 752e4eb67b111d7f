//! One place for every option: its flag, its `TESTSCHEDULER_*` variable and its
//! default (clap), and the checks that turn flags into a validated [`Config`].
//! Nothing else reads the command line or the environment for settings.

use crate::domain::EnvSet;
use crate::protocol::worker::WorkerSecret;
use clap::{Args, Parser, Subcommand};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default run command; `{path}`, `{env_id}`, `{run_id}` are filled in per
/// argument, `{junit}` with a file under the data dir (docs/results.md).
pub const DEFAULT_COMMAND: &str =
    "python3 -m pytest --color=yes -vv --capture=no -o junit_family=xunit1 --junitxml={junit} {path}";

/// `testscheduler [serve] [FLAGS]` or `testscheduler worker [FLAGS]`.
#[derive(Debug, Parser)]
#[command(
    name = "testscheduler",
    version,
    about = "Queue test runs on shared environments and watch their output live",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve`'s flags also work without the word `serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the web app and (unless --workers 0) run tests (the default).
    Serve(Box<ServeArgs>),
    /// Take runs from Redis and report them to a server.
    Worker(WorkerArgs),
    /// Queue a run on a server (and follow its log with --follow).
    Submit(SubmitArgs),
    /// List a server's runs, newest first.
    Runs(RunsArgs),
    /// Print a run's log (live with --follow).
    Logs(LogsArgs),
    /// Cancel a run.
    Cancel(CancelArgs),
    /// List a server's environments and which run holds each.
    Envs(EnvsArgs),
    /// Write a consistent copy of a (live) database to FILE.
    Backup(BackupArgs),
    /// Manage accounts in the database file (works while the server runs).
    Users(crate::accounts_cli::UsersArgs),
    /// Manage API tokens in the database file (works while the server runs).
    Tokens(crate::accounts_cli::TokensArgs),
}

/// Flags of `testscheduler serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed on stdout).
    #[arg(long, env = "TESTSCHEDULER_BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// SQLite file [default: testscheduler.db in the project directory]; a relative path is relative to the current directory.
    #[arg(long, env = "TESTSCHEDULER_DATABASE")]
    pub database: Option<PathBuf>,
    /// Directory the runs run in.
    #[arg(long, env = "TESTSCHEDULER_PROJECT_DIR", default_value = ".")]
    pub project_dir: PathBuf,
    /// Tests root, relative to the project directory.
    #[arg(long, env = "TESTSCHEDULER_TESTS_DIR", default_value = "tests")]
    pub tests_dir: PathBuf,
    /// Size of the embedded worker pool [default: number of CPUs; 0 with --redis]; 0 = run nothing here.
    #[arg(long, env = "TESTSCHEDULER_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Dispatch every run through this Redis (redis://HOST:PORT/DB).
    #[arg(long, env = "TESTSCHEDULER_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "TESTSCHEDULER_REDIS_PREFIX", default_value = "testscheduler:")]
    pub redis_prefix: String,
    /// Command template, split shell-style; {path}, {env_id}, {run_id}, {junit} are filled in. Never run through a shell.
    #[arg(long, env = "TESTSCHEDULER_COMMAND", default_value = DEFAULT_COMMAND)]
    pub command: String,
    /// Valid environment ids, e.g. 1-100 or 1,3,7-9.
    #[arg(long, env = "TESTSCHEDULER_ENVS", default_value = "1-100", value_parser = EnvSet::parse)]
    pub envs: EnvSet,
    /// TOML file listing the environments (id, name, labels, description, vars); read again when it changes. Instead of --envs.
    #[arg(long, env = "TESTSCHEDULER_ENVS_FILE", value_name = "FILE", conflicts_with = "envs")]
    pub envs_file: Option<PathBuf>,
    /// Longest reservation of an environment, in seconds.
    #[arg(long, env = "TESTSCHEDULER_MAX_RESERVATION", default_value_t = 86400, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(10..))]
    pub max_reservation: u64,
    /// Default run timeout, in seconds.
    #[arg(long, env = "TESTSCHEDULER_RUN_TIMEOUT", default_value_t = 3600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub run_timeout: u64,
    /// Largest timeout_s a run may ask for [default: 86400 or --run-timeout if larger].
    #[arg(long, env = "TESTSCHEDULER_MAX_RUN_TIMEOUT", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_run_timeout: Option<u64>,
    /// Seconds a remote worker may stay silent before its runs end `unknown`.
    #[arg(long, env = "TESTSCHEDULER_LEASE", default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease: u64,
    /// Another origin whose pages may open /ws and change things (repeatable), e.g. http://localhost:5173.
    #[arg(long = "allowed-origin", env = "TESTSCHEDULER_ALLOWED_ORIGIN", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// A `Host` name this server answers to besides the loopback names (repeatable), e.g. testscheduler.example.com.
    #[arg(
        long = "allowed-host",
        env = "TESTSCHEDULER_ALLOWED_HOST",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allowed_hosts: Vec<String>,
    /// The address users reach this server at, e.g. https://testscheduler.example.com; its host is an allowed Host.
    #[arg(long, env = "TESTSCHEDULER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Most connections one client address may hold open at once.
    #[arg(long, env = "TESTSCHEDULER_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_client: u64,
    /// Seconds the database may refuse every write (disk full) before the
    /// output held meanwhile is dropped and its runs end `unknown` (tests set it low).
    #[arg(long, env = "TESTSCHEDULER_STORE_GIVE_UP", default_value_t = 180, value_name = "SECONDS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_give_up: u64,
    /// Bytes one /ws client may have queued before it is told it lagged (hidden: tests make it small).
    #[arg(long, env = "TESTSCHEDULER_WS_QUEUE_BYTES", default_value_t = 2 << 20, hide = true, value_parser = clap::value_parser!(u64).range(1024..=(1 << 32)))]
    pub ws_queue_bytes: u64,
    /// Milliseconds a log search may take before it answers with what it found (hidden).
    #[arg(long, env = "TESTSCHEDULER_SEARCH_BUDGET_MS", default_value_t = 2000, hide = true, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub search_budget_ms: u64,
    /// POST a JSON notice to this URL when a run ends (repeatable), e.g. a Slack or Mattermost webhook.
    #[arg(
        long = "notify-url",
        env = "TESTSCHEDULER_NOTIFY_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub notify_urls: Vec<String>,
    /// An environment is `suspect` when at least N distinct tests are `env_suspect` on it (docs/verdicts.md).
    #[arg(long, env = "TESTSCHEDULER_SUSPECT_THRESHOLD", default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub suspect_threshold: u64,
    /// Disable an environment once it becomes `suspect` on new evidence, until someone enables it.
    #[arg(long, env = "TESTSCHEDULER_QUARANTINE")]
    pub quarantine: bool,
    /// Folder for the server's working files (each run's JUnit file) [default: the database file's folder].
    #[arg(long, env = "TESTSCHEDULER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub worker_secret: WorkerSecretArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// The accounts flags of `serve` (PRODUCT.md "Accounts"; docs/accounts.md).
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Where accounts come from [default: none on a loopback --bind, local on any other].
    #[arg(long = "auth", env = "TESTSCHEDULER_AUTH", value_name = "MODE")]
    pub auth: Option<crate::auth::AuthMode>,
    /// With --auth proxy: the header that carries the signed-in user's name.
    #[arg(
        long,
        env = "TESTSCHEDULER_AUTH_PROXY_HEADER",
        default_value = "X-Forwarded-User",
        value_name = "H"
    )]
    pub auth_proxy_header: String,
    /// With --auth proxy: the proxy's address; the header is believed from it only.
    #[arg(long, env = "TESTSCHEDULER_AUTH_PROXY_FROM", value_name = "ADDR")]
    pub auth_proxy_from: Option<String>,
    /// With --auth proxy: the role of an account first seen through the proxy.
    #[arg(
        long,
        env = "TESTSCHEDULER_AUTH_PROXY_ROLE",
        default_value = "runner",
        value_name = "ROLE"
    )]
    pub auth_proxy_role: crate::auth::Role,
    /// Seconds a session may go unused before it ends (hidden: tests make it short).
    #[arg(long, env = "TESTSCHEDULER_SESSION_IDLE", default_value_t = 7 * 86400, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle: u64,
    /// Seconds a session lasts after sign-in, used or not (hidden).
    #[arg(long, env = "TESTSCHEDULER_SESSION_MAX", default_value_t = 30 * 86400, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_max: u64,
}

impl AuthArgs {
    /// The accounts settings for a server on `bind`; errors name the flag.
    fn resolve(&self, bind: &SocketAddr, public_url: Option<&str>) -> Result<crate::auth::AuthConfig, ConfigError> {
        use crate::auth::AuthMode;
        let mode = self.auth.unwrap_or(if bind.ip().is_loopback() {
            AuthMode::None
        } else {
            AuthMode::Local
        });
        let proxy_from = match (&self.auth_proxy_from, mode) {
            (Some(a), AuthMode::Proxy) => Some(a.trim().parse::<std::net::IpAddr>().map_err(|_| {
                bad(
                    "--auth-proxy-from",
                    format!("{a:?} is not an IP address such as 127.0.0.1"),
                )
            })?),
            (Some(_), _) => return Err(bad("--auth-proxy-from", "only goes with --auth proxy")),
            (None, AuthMode::Proxy) => {
                return Err(bad(
                    "--auth-proxy-from",
                    "--auth proxy needs the proxy's address: the header is believed from it only",
                ))
            }
            (None, _) => None,
        };
        let header = self.auth_proxy_header.trim().to_ascii_lowercase();
        if actix_web::http::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(bad(
                "--auth-proxy-header",
                format!("{:?} is not a header name", self.auth_proxy_header),
            ));
        }
        Ok(crate::auth::AuthConfig {
            mode,
            proxy_header: header,
            proxy_from,
            proxy_role: self.auth_proxy_role,
            session_idle: Duration::from_secs(self.session_idle),
            session_max: Duration::from_secs(self.session_max),
            secure_cookie: public_url.is_some_and(|u| u.starts_with("https://")),
        })
    }
}

/// The worker secret's flags, the same on server and worker.
#[derive(Debug, Clone, Args)]
pub struct WorkerSecretArgs {
    /// Secret shared by the server and its remote workers: proves every worker request and signs job messages.
    #[arg(
        long = "worker-secret",
        env = "TESTSCHEDULER_WORKER_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        conflicts_with = "worker_secret_file"
    )]
    pub worker_secret: Option<String>,
    /// File holding the worker secret (surrounding whitespace is ignored).
    #[arg(
        long = "worker-secret-file",
        env = "TESTSCHEDULER_WORKER_SECRET_FILE",
        value_name = "FILE"
    )]
    pub worker_secret_file: Option<PathBuf>,
}

impl WorkerSecretArgs {
    /// The secret given, if any; the error names the flag.
    pub fn resolve(&self) -> Result<Option<WorkerSecret>, ConfigError> {
        match (&self.worker_secret, &self.worker_secret_file) {
            (Some(text), _) => WorkerSecret::new(text)
                .map(Some)
                .ok_or_else(|| bad("--worker-secret", "is empty")),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| bad("--worker-secret-file", format!("{}: {e}", file.display())))?;
                WorkerSecret::new(&text)
                    .map(Some)
                    .ok_or_else(|| bad("--worker-secret-file", format!("{} is empty", file.display())))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Flags of `testscheduler worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The Redis the server dispatches through.
    #[arg(long, env = "TESTSCHEDULER_REDIS", value_name = "URL")]
    pub redis: String,
    /// The server's base URL, e.g. http://server:8000.
    #[arg(long, env = "TESTSCHEDULER_SERVER", value_name = "URL")]
    pub server: String,
    /// How many runs at once.
    #[arg(long, env = "TESTSCHEDULER_SLOTS", default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub slots: u64,
    /// Directory the runs run in.
    #[arg(long, env = "TESTSCHEDULER_PROJECT_DIR", default_value = ".")]
    pub project_dir: PathBuf,
    /// This worker's name [default: host name and process id].
    #[arg(long, env = "TESTSCHEDULER_WORKER_ID")]
    pub id: Option<String>,
    /// Prefix of every Redis key (the server's).
    #[arg(long, env = "TESTSCHEDULER_REDIS_PREFIX", default_value = "testscheduler:")]
    pub redis_prefix: String,
    #[command(flatten)]
    pub worker_secret: WorkerSecretArgs,
}

/// How the terminal client reaches a server (every client subcommand has these).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "TESTSCHEDULER_SERVER",
        default_value = "http://127.0.0.1:8000",
        value_name = "URL"
    )]
    pub server: String,
    /// API token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "TESTSCHEDULER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `testscheduler submit`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["env", "label"])))]
pub struct SubmitArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The environment to run on.
    #[arg(long, value_name = "ID")]
    pub env: Option<u32>,
    /// Run on any free environment with these labels (repeatable).
    #[arg(long, value_name = "L", num_args = 1.., action = clap::ArgAction::Append)]
    pub label: Vec<String>,
    /// The test path, e.g. ./tests/test_a.py.
    #[arg(long, value_name = "P")]
    pub path: String,
    /// The user the run is queued for [default: the login name].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Queue the run if the environment is busy, instead of being refused.
    #[arg(long)]
    pub wait: bool,
    /// Print the run's log live and exit with its result.
    #[arg(long)]
    pub follow: bool,
    /// The run's timeout (timeout_s), in seconds.
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Give up waiting in the queue after S seconds (queue_timeout_s).
    #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_timeout: Option<u64>,
    /// Queue priority (higher first).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// With --follow: Ctrl-C cancels the run before it stops following.
    #[arg(long, requires = "follow")]
    pub cancel_on_interrupt: bool,
}

/// Flags of `testscheduler runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only runs with this status.
    #[arg(long, value_name = "S", value_parser = parse_status)]
    pub status: Option<String>,
    /// Only this user's runs.
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// At most N runs.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

fn parse_status(s: &str) -> Result<String, String> {
    match crate::domain::RunStatus::parse(s) {
        Some(st) => Ok(st.as_str().to_string()),
        None => Err(format!(
            "not a status; use one of {}",
            crate::domain::RunStatus::ALL.map(|s| s.as_str()).join(", ")
        )),
    }
}

/// Flags of `testscheduler logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The run.
    #[arg(value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub id: i64,
    /// Follow the log live until the run ends, and exit with its result.
    #[arg(long)]
    pub follow: bool,
}

/// Flags of `testscheduler cancel`.
#[derive(Debug, Clone, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The run.
    #[arg(value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub id: i64,
}

/// Flags of `testscheduler envs`.
#[derive(Debug, Clone, Args)]
pub struct EnvsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `testscheduler backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where the copy goes (replaced if it exists).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// SQLite file [default: testscheduler.db in the project directory].
    #[arg(long, env = "TESTSCHEDULER_DATABASE")]
    pub database: Option<PathBuf>,
    /// The server's project directory.
    #[arg(long, env = "TESTSCHEDULER_PROJECT_DIR", default_value = ".")]
    pub project_dir: PathBuf,
}

/// A bad option, named by its flag.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub message: String,
}

fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        message: message.into(),
    }
}

/// The server's validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database: PathBuf,
    pub project_dir: PathBuf,
    /// As given, relative to the project dir (its name shows in API paths).
    pub tests_dir: PathBuf,
    pub workers: usize,
    pub redis: Option<String>,
    pub redis_prefix: String,
    /// The command template, already split into arguments.
    pub command: Vec<String>,
    pub envs: EnvSet,
    /// `--envs-file`, checked at start; the environments are then exactly its own.
    pub envs_file: Option<PathBuf>,
    pub max_reservation: u64,
    pub run_timeout: u64,
    pub max_run_timeout: u64,
    pub lease: Duration,
    pub allowed_origins: Vec<String>,
    /// Proves remote workers' requests and signs job messages; `None` only on loopback.
    pub worker_secret: Option<WorkerSecret>,
    /// How long the database may refuse every write before held output is dropped.
    pub store_give_up: Duration,
    /// `Host` names given with `--allowed-host`, lowercase and without a port.
    pub allowed_hosts: Vec<String>,
    /// `--public-url`, as given.
    pub public_url: Option<String>,
    /// `--max-connections-per-client`.
    pub max_connections_per_client: usize,
    /// Bytes one `/ws` connection may have queued (hub queues and outgoing frames, each).
    pub ws_queue_bytes: usize,
    /// How long one log search may take.
    pub search_budget: Duration,
    /// Where run-finished notices are POSTed (`--notify-url`).
    pub notify_urls: Vec<String>,
    /// `--suspect-threshold`: `env_suspect` tests that make an environment `suspect`.
    pub suspect_threshold: usize,
    /// `--quarantine`: disable an environment that becomes `suspect`.
    pub quarantine: bool,
    /// `--data-dir`: where each run's JUnit file is written (then removed).
    pub data_dir: PathBuf,
    /// `--auth` and its companions.
    pub auth: crate::auth::AuthConfig,
}

impl Config {
    /// Checks `args`; the error names the flag at fault.
    pub fn from_args(args: ServeArgs) -> Result<Config, ConfigError> {
        let bind = args
            .bind
            .to_socket_addrs()
            .map_err(|e| bad("--bind", format!("{}: {e}", args.bind)))?
            .next()
            .ok_or_else(|| bad("--bind", format!("{} resolves to no address", args.bind)))?;
        let project_dir = project_dir(&args.project_dir)?;
        if args.tests_dir.is_absolute()
            || args
                .tests_dir
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad(
                "--tests-dir",
                "must be a relative path inside the project directory",
            ));
        }
        let database = match args.database {
            Some(p) => p,
            None => project_dir.join("testscheduler.db"),
        };
        let command = parse_command(&args.command).map_err(|m| bad("--command", m))?;
        let data_dir = match &args.data_dir {
            Some(d) if !d.is_dir() => return Err(bad("--data-dir", format!("{} is not a directory", d.display()))),
            Some(d) => d.clone(),
            None => match database.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        };
        let max_run_timeout = args.max_run_timeout.unwrap_or(86_400.max(args.run_timeout));
        if args.run_timeout > max_run_timeout {
            return Err(bad(
                "--run-timeout",
                format!("{} is above --max-run-timeout {}", args.run_timeout, max_run_timeout),
            ));
        }
        if let Some(url) = &args.redis {
            redis::Client::open(url.as_str()).map_err(|e| bad("--redis", format!("{url}: {e}")))?;
        }
        let workers = match (args.workers, &args.redis) {
            (Some(n), _) => n,
            (None, Some(_)) => 0,
            (None, None) => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        };
        if workers > 1024 {
            return Err(bad("--workers", format!("{workers} is more than 1024")));
        }
        for o in &args.allowed_origins {
            if !(o.starts_with("http://") || o.starts_with("https://"))
                || o.trim_end_matches('/').matches('/').count() != 2
            {
                return Err(bad(
                    "--allowed-origin",
                    format!("{o:?} is not an origin such as http://localhost:5173"),
                ));
            }
        }
        if let Some(file) = &args.envs_file {
            let text =
                std::fs::read_to_string(file).map_err(|e| bad("--envs-file", format!("{}: {e}", file.display())))?;
            crate::domain::Catalog::from_toml(&text)
                .map_err(|e| bad("--envs-file", format!("{}: {e}", file.display())))?;
        }
        let worker_secret = args.worker_secret.resolve()?;
        if args.redis.is_some() && worker_secret.is_none() && !bind.ip().is_loopback() {
            return Err(bad(
                "--worker-secret",
                format!(
                    "serving on {bind} (not loopback) with --redis needs a worker secret (--worker-secret, \
                     TESTSCHEDULER_WORKER_SECRET or --worker-secret-file), given to the workers too: \
                     without it anyone who reaches Redis or this port can run commands on the workers \
                     or forge their reports"
                ),
            ));
        }
        let allowed_hosts = args
            .allowed_hosts
            .iter()
            .map(|h| match host_name(h.trim()) {
                name if name.is_empty() || name.contains(['/', ' ', '@']) => Err(bad(
                    "--allowed-host",
                    format!("{h:?} is not a host name such as testscheduler.example.com"),
                )),
                name => Ok(name),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(url) = &args.public_url {
            if url_host(url).is_none() {
                return Err(bad(
                    "--public-url",
                    format!("{url:?} is not a URL such as https://testscheduler.example.com"),
                ));
            }
        }
        for u in &args.notify_urls {
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || u.split_once("://").is_some_and(|(_, r)| r.is_empty())
            {
                return Err(bad("--notify-url", format!("{u:?} is not an http:// or https:// URL")));
            }
        }
        let auth = args.auth.resolve(&bind, args.public_url.as_deref())?;
        Ok(Config {
            auth,
            worker_secret,
            bind,
            database,
            project_dir,
            tests_dir: args.tests_dir,
            workers,
            redis: args.redis,
            redis_prefix: args.redis_prefix,
            command,
            envs: args.envs,
            envs_file: args.envs_file,
            max_reservation: args.max_reservation,
            run_timeout: args.run_timeout,
            max_run_timeout,
            lease: Duration::from_secs(args.lease),
            allowed_origins: args
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
            store_give_up: Duration::from_secs(args.store_give_up),
            allowed_hosts,
            public_url: args.public_url,
            max_connections_per_client: usize::try_from(args.max_connections_per_client).unwrap_or(usize::MAX),
            ws_queue_bytes: usize::try_from(args.ws_queue_bytes).unwrap_or(usize::MAX),
            search_budget: Duration::from_millis(args.search_budget_ms),
            notify_urls: args.notify_urls,
            suspect_threshold: usize::try_from(args.suspect_threshold).unwrap_or(usize::MAX),
            quarantine: args.quarantine,
            data_dir,
        })
    }

    /// The host of `--public-url`, lowercase and without its port.
    pub fn public_host(&self) -> Option<String> {
        self.public_url.as_deref().and_then(url_host)
    }

    /// The tests folder's name as API paths show it: `./tests/`.
    pub fn tests_prefix(&self) -> String {
        let name = self.tests_dir.to_string_lossy();
        format!("./{}/", name.trim_end_matches('/').trim_start_matches("./"))
    }
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]:port`), lowercase,
/// without a port or a trailing dot.
pub fn host_name(host: &str) -> String {
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.split(':').next().unwrap_or("")
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of an `http(s)://` URL, as [`host_name`] gives it.
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    Some(host_name(authority)).filter(|h| !h.is_empty())
}

/// Checks `--project-dir` (server and worker alike): an existing directory, made absolute.
pub fn project_dir(dir: &Path) -> Result<PathBuf, ConfigError> {
    if !dir.is_dir() {
        return Err(bad("--project-dir", format!("{} is not a directory", dir.display())));
    }
    dir.canonicalize()
        .map_err(|e| bad("--project-dir", format!("{}: {e}", dir.display())))
}

/// Splits a command template shell-style; it must name a program.
pub fn parse_command(template: &str) -> Result<Vec<String>, String> {
    let argv = shell_words::split(template).map_err(|e| format!("{template:?}: {e}"))?;
    if argv.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(argv)
}

/// Fills `{path}` (with the run's `-k`/`-m` and selected node ids),
/// `{env_id}`, `{run_id}` into a split template; `{junit}` is left for
/// whoever runs it (see [`crate::results::args`]).
pub fn fill_command(argv: &[String], sel: &crate::results::args::Selection, env_id: u32, run_id: i64) -> Vec<String> {
    crate::results::args::fill(argv, sel, env_id, run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut v = vec!["testscheduler"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).expect("valid flags").serve
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_args(args(&[])).expect("defaults are valid");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.run_timeout, 3600);
        assert_eq!(c.lease, Duration::from_secs(30));
        assert_eq!(c.envs.len(), 100);
        assert!(c.database.ends_with("testscheduler.db"));
        assert_eq!(c.tests_prefix(), "./tests/");
    }

    #[test]
    fn redis_makes_local_workers_default_to_zero() {
        let c = Config::from_args(args(&["--redis", "redis://127.0.0.1:6379/0"])).expect("valid");
        assert_eq!(c.workers, 0);
    }

    #[test]
    fn bad_values_name_their_flag() {
        let e = Config::from_args(args(&["--project-dir", "/definitely/not/here"])).expect_err("bad dir");
        assert_eq!(e.flag, "--project-dir");
        let e = Config::from_args(args(&["--command", "'unclosed"])).expect_err("bad command");
        assert_eq!(e.flag, "--command");
        let e = Config::from_args(args(&["--run-timeout", "100", "--max-run-timeout", "10"])).expect_err("bad");
        assert_eq!(e.flag, "--run-timeout");
        let err = Cli::try_parse_from(["testscheduler", "--envs", "5-1"]).expect_err("bad envs");
        assert!(err.to_string().contains("--envs"));
        let e = Config::from_args(args(&["--data-dir", "/definitely/not/here"])).expect_err("bad data dir");
        assert_eq!(e.flag, "--data-dir");
    }

    #[test]
    fn the_data_dir_defaults_to_the_databases_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("ts.db");
        let c = Config::from_args(args(&["--database", db.to_str().expect("utf-8")])).expect("config");
        assert_eq!(c.data_dir, dir.path());
    }

    #[test]
    fn hosts_are_names_without_ports() {
        let c = Config::from_args(args(&[
            "--allowed-host",
            "Ts.Example.com:8443",
            "--public-url",
            "https://user@pub.example.com:9000/base",
        ]))
        .expect("valid");
        assert_eq!(c.allowed_hosts, ["ts.example.com"]);
        assert_eq!(c.public_host().as_deref(), Some("pub.example.com"));
        assert_eq!(c.max_connections_per_client, 512);
        assert_eq!(host_name("[::1]:8000"), "[::1]");
        assert_eq!(host_name("localhost."), "localhost");
        let e = Config::from_args(args(&["--public-url", "ftp://x"])).expect_err("bad url");
        assert_eq!(e.flag, "--public-url");
        let e = Config::from_args(args(&["--allowed-host", "a/b"])).expect_err("bad host");
        assert_eq!(e.flag, "--allowed-host");
    }

    #[test]
    fn auth_defaults_to_none_on_loopback_and_local_elsewhere() {
        use crate::auth::AuthMode;
        let c = Config::from_args(args(&[])).expect("valid");
        assert_eq!(c.auth.mode, AuthMode::None);
        let c = Config::from_args(args(&["--bind", "0.0.0.0:0", "--public-url", "https://x.example"])).expect("valid");
        assert_eq!(c.auth.mode, AuthMode::Local);
        assert!(c.auth.secure_cookie);
        let e = Config::from_args(args(&["--auth", "proxy"])).expect_err("no address");
        assert_eq!(e.flag, "--auth-proxy-from");
        let e = Config::from_args(args(&["--auth-proxy-from", "127.0.0.1"])).expect_err("not proxy");
        assert_eq!(e.flag, "--auth-proxy-from");
        let c = Config::from_args(args(&["--auth", "proxy", "--auth-proxy-from", "127.0.0.1"])).expect("valid");
        assert_eq!(c.auth.proxy_header, "x-forwarded-user");
        assert_eq!(c.auth.proxy_role, crate::auth::Role::Runner);
    }

    #[test]
    fn path_with_spaces_stays_one_argument() {
        let argv = parse_command(DEFAULT_COMMAND).expect("default parses");
        let sel = crate::results::args::Selection {
            path: "./tests/my test.py".into(),
            ..Default::default()
        };
        let filled = fill_command(&argv, &sel, 3, 9);
        assert_eq!(filled.last().map(String::as_str), Some("./tests/my test.py"));
        assert_eq!(filled.len(), argv.len());
    }

    #[test]
    fn redis_on_a_public_address_needs_a_worker_secret() {
        let e = Config::from_args(args(&["--bind", "0.0.0.0:0", "--redis", "redis://127.0.0.1:6379"]))
            .expect_err("no secret");
        assert_eq!(e.flag, "--worker-secret");
        let c = Config::from_args(args(&["--bind", "127.0.0.1:0", "--redis", "redis://127.0.0.1:6379"]))
            .expect("loopback may go without");
        assert!(c.worker_secret.is_none());
        let c = Config::from_args(args(&[
            "--bind",
            "0.0.0.0:0",
            "--redis",
            "redis://127.0.0.1:6379",
            "--worker-secret",
            "s",
        ]))
        .expect("with a secret");
        assert!(c.worker_secret.is_some_and(|s| s.matches(b"s")));
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").expect("write");
        let file = file.display().to_string();
        let c = Config::from_args(args(&["--worker-secret-file", &file])).expect("file");
        assert!(c.worker_secret.is_some_and(|s| s.matches(b"from-file")));
        let e = Config::from_args(args(&["--worker-secret-file", "/no/such/file"])).expect_err("missing");
        assert_eq!(e.flag, "--worker-secret-file");
        assert!(Cli::try_parse_from(["testscheduler", "--worker-secret", "a", "--worker-secret-file", &file]).is_err());
    }
}

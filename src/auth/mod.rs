//! Accounts (PRODUCT.md "Accounts"): who a request is and what they may do.
//!
//! - [`gate`]: the middleware that resolves every request to a [`Principal`]
//!   (session cookie, `Authorization: Bearer` token, or the trusted proxy's
//!   header) and refuses `401 unauthenticated` what needs one and has none.
//!   Handlers take the [`Principal`] as an extractor and ask
//!   [`Principal::require`] with an [`Action`]: the one permission check.
//! - [`role`]: the roles and the table of who may do what.
//! - [`secret`]: Argon2id passwords, random session ids and tokens (stored hashed).
//! - [`limiter`]: login rate limiting.
//! - [`resolve`]: credentials → account, against the store (blocking).
//! - [`audit`]: recording who did what.

pub mod audit;
pub mod gate;
pub mod limiter;
pub mod resolve;
pub mod role;
pub mod secret;

pub use role::{Action, Role};

use crate::error::AppError;
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::time::Duration;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "testscheduler_session";
/// What every API token starts with (so a leaked one is easy to spot).
pub const TOKEN_PREFIX: &str = "tsk_";
/// Default lifetime of a new API token, in days.
pub const DEFAULT_TOKEN_DAYS: u64 = 90;
/// Longest lifetime of an API token, in days.
pub const MAX_TOKEN_DAYS: u64 = 3650;
/// How often an open `/ws` socket checks that its credential still works
/// (a revoke through the API closes it at once; this catches the CLI's changes).
pub const RECHECK_EVERY: Duration = Duration::from_secs(15);

/// A stored time (Unix milliseconds) as the API writes times (RFC 3339, UTC).
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(crate::domain::run::timestamp)
        .unwrap_or_default()
}

/// `--auth`: where accounts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// No accounts: everyone is an admin (the default on a loopback bind).
    None,
    /// Accounts in the database, password sign-in (the default on any other bind).
    Local,
    /// The user name in a header set by a trusted proxy (--auth-proxy-header, --auth-proxy-from).
    Proxy,
}

impl AuthMode {
    /// The name `GET /api/me` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Local => "local",
            AuthMode::Proxy => "proxy",
        }
    }
}

/// The accounts settings of a server, validated by `config`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// `--auth-proxy-header`, lowercase.
    pub proxy_header: String,
    /// `--auth-proxy-from`: the only peer whose header is believed.
    pub proxy_from: Option<IpAddr>,
    /// `--auth-proxy-role`: the role of an account first seen through the proxy.
    pub proxy_role: Role,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_max: Duration,
    /// Whether the cookie is `Secure` (`--public-url` is https).
    pub secure_cookie: bool,
}

impl AuthConfig {
    /// Whether requests need an account.
    pub fn accounts_on(&self) -> bool {
        self.mode != AuthMode::None
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `--auth none`: nothing to prove.
    Open,
    /// A session cookie (the session id's hash).
    Session(String),
    /// An API token (its id).
    Token(i64),
    /// The trusted proxy's header.
    Proxy,
}

/// Who a request is: an account (or no one under `--auth none`, with the
/// admin's rights) and how it proved it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account's name; None under `--auth none`.
    pub name: Option<String>,
    pub user_id: Option<i64>,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    /// Everyone under `--auth none`.
    pub fn open() -> Principal {
        Principal {
            name: None,
            user_id: None,
            role: Role::Admin,
            credential: Credential::Open,
        }
    }

    /// `Ok` if this principal may do `action`, else `403 forbidden` saying why.
    /// The one permission check: every handler that changes something calls it.
    pub fn require(&self, action: Action<'_>) -> Result<(), AppError> {
        role::allowed(self.role, self.name.as_deref(), &action).map_err(AppError::Forbidden)
    }

    /// Whether this principal may do `action`.
    pub fn may(&self, action: Action<'_>) -> bool {
        role::allowed(self.role, self.name.as_deref(), &action).is_ok()
    }

    /// The name audit entries show: the account, or `anonymous` without one.
    pub fn actor(&self) -> &str {
        self.name.as_deref().unwrap_or("anonymous")
    }

    /// The `username` a run queued by this principal gets: the account's name,
    /// or (`--auth none`) `otherwise` — e.g. for a re-run, the original run's.
    pub fn run_owner(&self, otherwise: &str) -> String {
        self.name.clone().unwrap_or_else(|| otherwise.to_string())
    }

    /// With an account, a body's `username` is the account's name, whatever
    /// the body said (it is optional then, and never validated): call this on
    /// a body before parsing it. Without one, the body is left as sent.
    pub fn sign_body(&self, fields: &mut Map<String, Value>) {
        if let Some(name) = &self.name {
            fields.insert("username".into(), Value::String(name.clone()));
        }
    }
}

/// What the accounts part of a server shares between requests: its settings,
/// the login limiter and the revocation signal open sockets watch.
pub struct Auth {
    pub config: AuthConfig,
    pub limiter: limiter::LoginLimiter,
    revoked: tokio::sync::watch::Sender<u64>,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Auth {
        Auth {
            config,
            limiter: limiter::LoginLimiter::default(),
            revoked: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Tells open sockets that some credential may have stopped working.
    pub fn credentials_changed(&self) {
        self.revoked.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes when [`Auth::credentials_changed`] is called.
    pub fn watch_revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revoked.subscribe()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

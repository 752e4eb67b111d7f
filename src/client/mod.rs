//! The terminal client in the same binary: `submit`, `runs`, `logs`, `cancel`,
//! `envs`. It talks to a server over its public API only (REST with ureq, `/ws`
//! with tungstenite), one file per subcommand, and turns outcomes into the exit
//! codes PRODUCT.md fixes (see [`exit`]).

pub mod cancel;
pub mod envs;
pub mod follow;
pub mod logs;
pub mod runs;
pub mod submit;
pub mod tls;

use crate::config::ClientArgs;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// Exit codes of the client.
pub mod exit {
    /// The run succeeded (or the command did its job).
    pub const SUCCEEDED: u8 = 0;
    /// The run failed (or the server refused a `cancel`).
    pub const FAILED: u8 = 1;
    /// Bad usage, a refused submit, or no connection to the server.
    pub const USAGE: u8 = 2;
    /// The run was cancelled.
    pub const CANCELLED: u8 = 3;
    /// The run ran past its timeout.
    pub const TIMEOUT: u8 = 4;
    /// The run ended `unknown`.
    pub const UNKNOWN: u8 = 5;
    /// Ctrl-C stopped following (the run goes on).
    pub const INTERRUPTED: u8 = 130;

    /// The exit code for a finished run's status.
    pub fn for_status(status: &str) -> u8 {
        match status {
            "succeeded" => SUCCEEDED,
            "failed" => FAILED,
            "cancelled" => CANCELLED,
            "timeout" => TIMEOUT,
            _ => UNKNOWN,
        }
    }
}

/// Why a client command stopped; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached (or the connection broke).
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error body.
    #[error("{}", refused_text(.status, .body))]
    Refused { status: u16, body: Value },
    /// Bad input given to the client.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

impl ClientError {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused { status, .. } if *status == 404 || *status == 409 => exit::FAILED,
            _ => exit::USAGE,
        }
    }
}

/// The server's message and its field errors, one per line.
pub(crate) fn refused_text(status: &u16, body: &Value) -> String {
    let mut text = match body["message"].as_str() {
        Some(m) => format!("the server refused ({status}): {m}"),
        None => format!("the server answered {status}"),
    };
    if let Some(errors) = body["errors"].as_object() {
        for (field, messages) in errors {
            let list: Vec<String> = match messages {
                Value::Array(items) => items
                    .iter()
                    .map(|m| m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string()))
                    .collect(),
                other => vec![other.to_string()],
            };
            text.push_str(&format!("\n  {field}: {}", list.join(" ")));
        }
    }
    text
}

/// One server: its base URL, its token, an HTTP agent, and (for https://)
/// the TLS configuration REST and `/ws` share.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client for `--server` / `--token`.
    pub fn new(args: &ClientArgs) -> Result<Client, ClientError> {
        let base = args.server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "--server: {:?} is not an http:// or https:// URL",
                args.server
            )));
        }
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60));
        let tls = match base.starts_with("https://") || args.ca_file.is_some() {
            true => Some(tls::config(args.ca_file.as_deref())?),
            false => None,
        };
        if let Some(config) = &tls {
            agent = agent.tls_config(config.clone());
        }
        Ok(Client {
            base,
            token: args.token.clone().filter(|t| !t.is_empty()),
            agent: agent.build(),
            tls,
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The TLS configuration (https:// servers, or `--ca-file` given).
    pub fn tls(&self) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &self.url(path));
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// GET `path` → its JSON body.
    pub fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.json(path, self.request("GET", path).call())
    }

    /// POST `body` to `path` → the JSON answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.json(path, self.request("POST", path).send_json(body))
    }

    /// GET `path` → a reader of the raw body.
    pub fn get_reader(&self, path: &str) -> Result<Box<dyn Read + Send + Sync>, ClientError> {
        match self.request("GET", path).call() {
            Ok(resp) => Ok(resp.into_reader()),
            Err(e) => Err(self.failure(path, e)),
        }
    }

    fn json(&self, path: &str, res: Result<ureq::Response, ureq::Error>) -> Result<Value, ClientError> {
        let resp = res.map_err(|e| self.failure(path, e))?;
        let text = resp.into_string().map_err(|e| ClientError::Unreachable {
            url: self.url(path),
            reason: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| ClientError::Unreachable {
            url: self.url(path),
            reason: format!("the answer is not JSON ({e}); is this a testscheduler server?"),
        })
    }

    fn failure(&self, path: &str, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Status(status, resp) => {
                let text = resp.into_string().unwrap_or_default();
                ClientError::Refused {
                    status,
                    body: serde_json::from_str(&text).unwrap_or(Value::Null),
                }
            }
            ureq::Error::Transport(t) => {
                let url = self.url(path);
                let text = t.to_string();
                // ureq's text starts with the URL, which the error names already.
                let reason = text.strip_prefix(&format!("{url}: ")).unwrap_or(&text).to_string();
                ClientError::Unreachable { url, reason }
            }
        }
    }
}

/// Whether stdout should get ANSI colours: a terminal, and no `NO_COLOR`.
pub fn colour_stdout() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The login name: `$USER`, `$LOGNAME`, else the passwd entry of our uid.
pub fn login_name() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Turns a subcommand's outcome into the process exit code, printing the error.
pub fn finish(res: Result<u8, ClientError>) -> u8 {
    match res {
        Ok(code) => code,
        Err(ClientError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCEEDED,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

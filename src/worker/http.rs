//! How a worker talks to the server: JSON POSTs with bounded timeouts, each
//! carrying the worker secret's header when there is one ([`Http`]), and
//! exponential backoff with jitter for retries ([`Backoff`]).

use crate::protocol::worker::{Refusal, WorkerSecret, SECRET_HEADER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Why a POST did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum PostError {
    /// No answer (connection refused, timeout), a 5xx, or an answer that is
    /// not the protocol's: try again later.
    Transport(String),
    /// The server answered with a 4xx: retrying the same report cannot help
    /// (except a `line_gap`, which says where to go on from).
    Rejected {
        status: u16,
        code: String,
        next: Option<u64>,
    },
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Transport(e) => write!(f, "server unreachable: {e}"),
            PostError::Rejected { status, code, .. } => write!(f, "server answered {status} {code}"),
        }
    }
}

/// The server's HTTP API, as a worker uses it.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
    secret: Option<WorkerSecret>,
}

impl Http {
    /// A client for the server at `base` (e.g. `http://server:8000`), proving
    /// itself with `secret` if given.
    pub fn new(base: &str, secret: Option<WorkerSecret>) -> Http {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .build();
        Http {
            agent,
            base: base.trim_end_matches('/').to_string(),
            secret,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// POSTs `body` as JSON to `path`; the reply as `R` on 2xx.
    pub fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, PostError> {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(secret) = &self.secret {
            req = req.set(SECRET_HEADER, secret.expose());
        }
        let body = serde_json::to_value(body).map_err(|e| PostError::Transport(format!("encoding the body: {e}")))?;
        match req.send_json(body) {
            Ok(resp) => resp
                .into_json::<R>()
                .map_err(|e| PostError::Transport(format!("the reply is not the worker protocol's: {e}"))),
            Err(ureq::Error::Status(status, resp)) if status < 500 => {
                let r: Refusal = resp.into_json().unwrap_or_default();
                Err(PostError::Rejected {
                    status,
                    code: r.code,
                    next: r.next,
                })
            }
            Err(ureq::Error::Status(status, _)) => Err(PostError::Transport(format!("HTTP {status}"))),
            Err(e) => Err(PostError::Transport(e.to_string())),
        }
    }
}

/// Exponential backoff with jitter: 100 ms, 200 ms, … up to 5 s (or a
/// quarter of the lease, so a server that comes back is reached in time).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// A fresh backoff.
    pub fn new() -> Backoff {
        Backoff {
            next: Self::MIN,
            max: Self::MAX,
        }
    }

    /// A fresh backoff that tries at least four times per `lease`.
    pub fn for_lease(lease: Duration) -> Backoff {
        Backoff {
            next: Self::MIN,
            max: (lease / 4).clamp(Self::MIN, Self::MAX),
        }
    }

    /// The wait before the next try (±20 % jitter), and doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }

    /// Back to the shortest wait after a success.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(80) && first <= Duration::from_millis(120),
            "{first:?}"
        );
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
        }
        assert!(
            last <= Duration::from_secs(6) && last >= Duration::from_secs(4),
            "{last:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
        let mut short = Backoff::for_lease(Duration::from_secs(2));
        for _ in 0..20 {
            assert!(short.next_delay() <= Duration::from_millis(600));
        }
    }

    #[test]
    fn unreachable_server_is_a_transport_error() {
        // Port 1 on loopback: nothing listens there.
        let http = Http::new("http://127.0.0.1:1", None);
        let res: Result<serde_json::Value, _> = http.post("/x", &serde_json::json!({}));
        assert!(matches!(res, Err(PostError::Transport(_))));
    }
}

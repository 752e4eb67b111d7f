//! The worker's heartbeat, and its check of the server: every two seconds
//! (more often for a short lease) it posts `POST /api/workers/heartbeat`
//! with the runs it holds. The worker takes runs only while the last
//! heartbeat was answered `200`: a worker pointed at a wrong `--server`, or
//! holding a wrong secret, says exactly what is wrong, retries with backoff
//! and takes nothing meanwhile.

use super::http::{Backoff, PostError};
use super::{host_name, Worker};
use crate::domain::RunId;
use crate::protocol::worker::{Heartbeat, HeartbeatReply};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the worker heartbeats (more often if the server's lease is short).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// The same problem is logged again after this long.
const REPEAT_PROBLEM_AFTER: Duration = Duration::from_secs(60);
/// The path of the heartbeat.
const PATH: &str = "/api/workers/heartbeat";

impl Worker {
    /// Heartbeats until the process ends; keeps `server_ok` up to date.
    pub(super) fn heartbeat(self: &Arc<Self>) {
        let http = self.http();
        let host = host_name();
        let mut every = HEARTBEAT_EVERY;
        let mut backoff = Backoff::new();
        let mut logged: Option<(String, Instant)> = None;
        loop {
            let refused = std::mem::take(&mut *self.refused.lock().unwrap_or_else(|p| p.into_inner()));
            let body = Heartbeat {
                id: self.opts.id.clone(),
                host: host.clone(),
                slots: self.opts.slots as u64,
                running: self.running().keys().copied().collect(),
                refused,
            };
            match http.post::<_, HeartbeatReply>(PATH, &body) {
                Ok(reply) => {
                    if !self.server_ok.swap(true, Ordering::SeqCst) {
                        tracing::info!(server = %http.base(), "the server answered; taking runs");
                        self.changed.notify_all();
                    }
                    logged = None;
                    backoff.reset();
                    if reply.lease_s > 0 {
                        every = HEARTBEAT_EVERY.min(Duration::from_secs(reply.lease_s) / 3);
                    }
                    self.stop_runs(&reply.cancel);
                    std::thread::sleep(every);
                }
                Err(e) => {
                    // Told next time.
                    let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
                    let newer = std::mem::replace(&mut *refused, body.refused);
                    refused.extend(newer);
                    drop(refused);
                    if self.server_ok.swap(false, Ordering::SeqCst) {
                        tracing::warn!("the server stopped answering; taking no run until it does");
                    }
                    let (problem, rejected) = describe(http.base(), &e);
                    let again = logged
                        .as_ref()
                        .is_none_or(|(p, at)| *p != problem || at.elapsed() >= REPEAT_PROBLEM_AFTER);
                    if again {
                        if rejected {
                            tracing::error!("{problem}; retrying, taking no run meanwhile");
                        } else {
                            tracing::warn!("{problem}; retrying, taking no run meanwhile");
                        }
                        logged = Some((problem, Instant::now()));
                    }
                    std::thread::sleep(backoff.next_delay().min(every.max(Duration::from_millis(500))));
                }
            }
        }
    }

    fn stop_runs(&self, ids: &[RunId]) {
        let running = self.running();
        for id in ids {
            if let Some(flag) = running.get(id) {
                flag.raise();
            }
        }
    }
}

/// What is wrong, in words naming the flag to fix, and whether the server
/// refused (rather than could not be reached).
fn describe(base: &str, e: &PostError) -> (String, bool) {
    match e {
        PostError::Transport(msg) => (format!("cannot reach the server at {base} (--server): {msg}"), false),
        PostError::Rejected { status: 403, code, .. } if code == "invalid_worker_secret" => (
            format!(
                "the server at {base} refused this worker's secret: --worker-secret \
                 (TESTSCHEDULER_WORKER_SECRET, --worker-secret-file) must be the server's"
            ),
            true,
        ),
        PostError::Rejected { status, code, .. } if code.is_empty() || *status == 404 || *status == 405 => (
            format!(
                "{base} answered {status} to POST {PATH}: it is not a testscheduler server \
                 (or not this version); check --server"
            ),
            true,
        ),
        PostError::Rejected { status, code, .. } => (
            format!("the server at {base} refused this worker's heartbeat: {status} {code} (check --id)"),
            true,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_names_what_to_fix() {
        let base = "http://srv:8000";
        let (m, refused) = describe(base, &PostError::Transport("connection refused".into()));
        assert!(m.contains("--server") && m.contains(base) && !refused, "{m}");
        let secret = PostError::Rejected {
            status: 403,
            code: "invalid_worker_secret".into(),
            next: None,
        };
        let (m, refused) = describe(base, &secret);
        assert!(m.contains("--worker-secret") && refused, "{m}");
        let not_ours = PostError::Rejected {
            status: 404,
            code: String::new(),
            next: None,
        };
        assert!(describe(base, &not_ours).0.contains("not a testscheduler server"));
    }
}

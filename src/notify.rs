//! `--notify-url`: a JSON POST to each URL when a run ends,
//! `{"event": "run.finished", "run": RUN, "text": "…"}` (`text` is one line
//! Slack and Mattermost show as is). A watcher thread reads the hub's run
//! events and hands each finished run to one bounded queue per receiver
//! without waiting; each receiver has its own sender thread that retries with
//! backoff. So the scheduler never waits for a receiver, and a slow or dead
//! receiver only ever delays its own queue.

use crate::domain::RunStatus;
use crate::hub::Hub;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Notices waiting for one receiver before new ones are dropped (and logged).
const QUEUE: usize = 1_000;
/// Attempts per notice before it is given up (and logged).
const ATTEMPTS: u32 = 8;
/// The first retry pause; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Finished run ids remembered, so that a run announced twice is told once.
const REMEMBER: usize = 10_000;

/// Starts the watcher and one sender per URL; nothing when `urls` is empty.
/// Call it before the scheduler can end a run (recovery included).
pub fn start(urls: &[String], hub: &Hub) -> std::io::Result<()> {
    if urls.is_empty() {
        return Ok(());
    }
    let mut queues = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let (tx, rx) = crossbeam_channel::bounded::<Arc<Value>>(QUEUE);
        let url = url.clone();
        std::thread::Builder::new()
            .name(format!("notify-{i}"))
            .spawn(move || deliver(&url, rx))?;
        queues.push((urls[i].clone(), tx));
    }
    let mut events = hub.subscribe_runs();
    std::thread::Builder::new().name("notify-watch".into()).spawn(move || {
        let mut seen = Seen::default();
        loop {
            match events.blocking_recv() {
                Ok(frame) => {
                    let Some(run) = finished_run(&frame) else { continue };
                    let Some(id) = run["id"].as_i64() else { continue };
                    if !seen.first(id) {
                        continue;
                    }
                    let notice = Arc::new(notice(run));
                    for (url, tx) in &queues {
                        if tx.try_send(notice.clone()).is_err() {
                            tracing::warn!(url, run_id = id, "notify queue full; notice dropped");
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "notifier lagged on run events"),
                Err(RecvError::Closed) => return,
            }
        }
    })?;
    Ok(())
}

/// The run of a `taskChanged` frame whose status is finished.
pub(crate) fn finished_run(frame: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_str(frame).ok()?;
    if v["event"] != "taskChanged" {
        return None;
    }
    let status = RunStatus::parse(v["run"]["status"].as_str()?)?;
    status.is_finished().then(|| v["run"].take())
}

/// The POST body for a finished run.
pub fn notice(run: Value) -> Value {
    json!({ "event": "run.finished", "text": summary(&run), "run": run })
}

/// "Run 12 ./tests/test_a.py on env 3 by alice: failed".
pub fn summary(run: &Value) -> String {
    format!(
        "Run {} {} on env {} by {}: {}",
        run["id"],
        run["path"].as_str().unwrap_or("?"),
        run["env_id"],
        run["username"].as_str().unwrap_or("?"),
        run["status"].as_str().unwrap_or("?")
    )
}

/// Sends each notice of `rx` to `url`, retrying with backoff.
fn deliver(url: &str, rx: crossbeam_channel::Receiver<Arc<Value>>) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build();
    for notice in rx {
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match agent.post(url).send_json(&*notice) {
                Ok(_) => break,
                // A receiver that refuses the body will refuse it again.
                Err(ureq::Error::Status(code, _)) if (400..500).contains(&code) && code != 429 => {
                    tracing::warn!(url, code, run_id = ?notice["run"]["id"], "notice refused; not retried");
                    break;
                }
                Err(e) if attempt == ATTEMPTS => {
                    tracing::warn!(url, error = %e, run_id = ?notice["run"]["id"], "notice given up");
                }
                Err(e) => {
                    tracing::debug!(url, error = %e, attempt, "notice failed; retrying");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The last [`REMEMBER`] finished run ids.
#[derive(Default)]
struct Seen {
    set: HashSet<i64>,
    order: VecDeque<i64>,
}

impl Seen {
    /// True the first time `id` is seen.
    fn first(&mut self, id: i64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBER {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_one_line() {
        let run = json!({"id": 12, "path": "./tests/test_a.py", "env_id": 3, "username": "alice", "status": "failed"});
        assert_eq!(summary(&run), "Run 12 ./tests/test_a.py on env 3 by alice: failed");
    }

    #[test]
    fn only_finished_changes_count() {
        assert!(finished_run(r#"{"event":"taskChanged","run":{"id":1,"status":"running"}}"#).is_none());
        assert!(finished_run(r#"{"event":"taskAdded","run":{"id":1,"status":"failed"}}"#).is_none());
        assert!(finished_run(r#"{"event":"taskChanged","run":{"id":1,"status":"timeout"}}"#).is_some());
    }

    #[test]
    fn a_run_is_told_once() {
        let mut seen = Seen::default();
        assert!(seen.first(4));
        assert!(!seen.first(4));
    }
}

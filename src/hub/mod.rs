//! The live event hub: run events for every `/ws` client, and per-run log
//! events for the clients following that run. Publishing never blocks: it uses
//! bounded broadcast channels, and a receiver that falls behind learns it lagged.
//! The hub knows nothing of sockets or SQL.

use crate::domain::{Run, RunId, RunStatus};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Frames kept for a slow follower of one run before it is told it lagged.
const LOG_CAPACITY: usize = 256;
/// Run events kept for a slow client.
const RUN_CAPACITY: usize = 1024;

/// Something a follower of one run receives.
#[derive(Debug, Clone)]
pub enum LogEvent {
    /// Stored lines `from, from + 1, …`.
    Lines { from: u64, lines: Arc<Vec<String>> },
    /// Line `line` so far, not yet ended by a newline; not stored.
    Partial { line: u64, text: Arc<str> },
    /// The run finished with `total` lines stored.
    End { total: u64, status: RunStatus },
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    runs: broadcast::Sender<Arc<str>>,
    logs: Mutex<HashMap<RunId, broadcast::Sender<LogEvent>>>,
    /// Each running run's unfinished line, for followers that arrive while it waits.
    partials: Mutex<HashMap<RunId, (u64, Arc<str>)>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        let (runs, _) = broadcast::channel(RUN_CAPACITY);
        Hub {
            inner: Arc::new(Inner {
                runs,
                logs: Mutex::new(HashMap::new()),
                partials: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sends `{"event": name, "run": run}` to every client.
    pub fn publish_run(&self, name: &str, run: &Run) {
        self.publish_frame(json!({ "event": name, "run": run }).to_string());
    }

    /// Sends a ready JSON frame to every client (e.g. `workersChanged`).
    pub fn publish_frame(&self, frame: String) {
        let _ = self.inner.runs.send(Arc::from(frame));
    }

    /// A receiver of every run-level frame.
    pub fn subscribe_runs(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.runs.subscribe()
    }

    /// A receiver of run `id`'s log events from now on.
    pub fn subscribe_log(&self, id: RunId) -> broadcast::Receiver<LogEvent> {
        let mut logs = self.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.entry(id)
            .or_insert_with(|| broadcast::channel(LOG_CAPACITY).0)
            .subscribe()
    }

    /// Sends a log event to run `id`'s followers, if it has any.
    pub fn publish_log(&self, id: RunId, event: LogEvent) {
        self.remember_partial(id, &event);
        let mut logs = self.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        let end = matches!(event, LogEvent::End { .. });
        if let Some(tx) = logs.get(&id) {
            if tx.send(event).is_err() || end {
                logs.remove(&id);
            }
        }
    }

    /// The unfinished line run `id` shows now, if any: (line number, text so far).
    pub fn partial(&self, id: RunId) -> Option<(u64, Arc<str>)> {
        let partials = self.inner.partials.lock().unwrap_or_else(|p| p.into_inner());
        partials.get(&id).cloned()
    }

    fn remember_partial(&self, id: RunId, event: &LogEvent) {
        let mut partials = self.inner.partials.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            LogEvent::Partial { line, text } => {
                partials.insert(id, (*line, text.clone()));
            }
            LogEvent::Lines { from, lines } => {
                if partials
                    .get(&id)
                    .is_some_and(|(line, _)| *line < from + lines.len() as u64)
                {
                    partials.remove(&id);
                }
            }
            LogEvent::End { .. } => {
                partials.remove(&id);
            }
        }
    }

    /// Forgets run `id`'s channel once nobody follows it any more.
    pub fn release_log(&self, id: RunId) {
        let mut logs = self.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        if logs.get(&id).is_some_and(|tx| tx.receiver_count() == 0) {
            logs.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_follower_lags_instead_of_blocking() {
        let hub = Hub::new();
        let mut rx = hub.subscribe_log(7);
        for i in 0..(LOG_CAPACITY as u64 + 10) {
            hub.publish_log(
                7,
                LogEvent::Lines {
                    from: i,
                    lines: Arc::new(vec![String::new()]),
                },
            );
        }
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));
    }

    #[test]
    fn the_unfinished_line_is_kept_until_it_is_complete() {
        let hub = Hub::new();
        hub.publish_log(
            3,
            LogEvent::Partial {
                line: 4,
                text: Arc::from("test_x "),
            },
        );
        assert_eq!(
            hub.partial(3).map(|(l, t)| (l, t.to_string())),
            Some((4, "test_x ".into()))
        );
        hub.publish_log(
            3,
            LogEvent::Lines {
                from: 2,
                lines: Arc::new(vec!["a".into(), "b".into()]),
            },
        );
        assert!(hub.partial(3).is_some(), "lines before it leave it");
        hub.publish_log(
            3,
            LogEvent::Lines {
                from: 4,
                lines: Arc::new(vec!["test_x PASSED".into()]),
            },
        );
        assert!(hub.partial(3).is_none());
    }

    #[test]
    fn end_drops_the_channel() {
        let hub = Hub::new();
        let _rx = hub.subscribe_log(1);
        assert!(hub.inner.logs.lock().expect("lock").contains_key(&1));
        hub.publish_log(
            1,
            LogEvent::End {
                total: 0,
                status: RunStatus::Succeeded,
            },
        );
        assert!(!hub.inner.logs.lock().expect("lock").contains_key(&1));
    }
}

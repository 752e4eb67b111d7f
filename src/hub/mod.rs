//! The live event hub: run events for every `/ws` client, and per-run log
//! events for the clients following that run. Publishing never blocks.
//!
//! Run events are encoded once ([`crate::protocol::ws::ServerFrame`]) and go
//! through one bounded broadcast channel of small frames. Log events go into a
//! queue per follower whose size is bounded in **bytes**, charged to a
//! [`Budget`] that all follows of one connection share: a follower that falls
//! further behind than its budget is dropped from that run's stream and learns
//! it lagged. A batch too big to queue at all is handed over as a
//! [`LogEvent::Stored`] range (its lines are already stored, so the follower
//! reads them from SQLite in small pages) when the follower is keeping up.
//! The hub knows nothing of sockets or SQL.

use crate::domain::{EnvView, Run, RunId, RunStatus};
use crate::protocol::ws::ServerFrame;
use crate::scheduler::worker_registry::WorkerInfo;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, Notify};

/// Run events kept for a slow client (small frames: one run each).
const RUN_CAPACITY: usize = 1024;
/// What a queued line costs beyond its text (its `String` and the JSON around it).
const LINE_OVERHEAD: usize = 32;
/// What any queued event costs at least.
const EVENT_OVERHEAD: usize = 64;

/// Something a follower of one run receives.
#[derive(Debug, Clone)]
pub enum LogEvent {
    /// Stored lines `from, from + 1, …`.
    Lines { from: u64, lines: Arc<Vec<String>> },
    /// Lines `from .. to` are stored; read them from the store (a batch too big to queue).
    Stored { from: u64, to: u64 },
    /// Line `line` so far, not yet ended by a newline; not stored.
    Partial { line: u64, text: Arc<str> },
    /// The run finished with `total` lines stored.
    End { total: u64, status: RunStatus },
}

impl LogEvent {
    /// The bytes this event keeps alive while it waits in a queue.
    fn cost(&self) -> usize {
        EVENT_OVERHEAD
            + match self {
                LogEvent::Lines { lines, .. } => lines.iter().map(|l| l.len() + LINE_OVERHEAD).sum(),
                LogEvent::Partial { text, .. } => text.len(),
                LogEvent::Stored { .. } | LogEvent::End { .. } => 0,
            }
    }
}

/// What changed about a run, for `taskAdded` / `taskChanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// The run was created (`taskAdded`).
    Added,
    /// Its status or `logs` flag changed (`taskChanged`).
    Changed,
}

/// The bytes one connection may have queued across all its follows.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: limit.max(1),
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn charge(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > self.limit {
            self.used.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn refund(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The follower fell behind its budget and was dropped from the run's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

/// One follower's queue.
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
    budget: Arc<Budget>,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<(LogEvent, usize)>,
    lagged: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event`; false when the follower lagged (and is to be dropped).
    fn offer(&self, event: &LogEvent) -> bool {
        let mut st = self.lock();
        if st.lagged {
            return false;
        }
        let cost = event.cost();
        let queued = if cost > self.budget.limit {
            match event {
                // Too big to queue, but stored: a follower that is keeping up reads it from the store.
                LogEvent::Lines { from, lines } if st.events.is_empty() => Some((
                    LogEvent::Stored {
                        from: *from,
                        to: from.saturating_add(lines.len() as u64),
                    },
                    0,
                )),
                _ => None,
            }
        } else if self.budget.charge(cost) {
            Some((event.clone(), cost))
        } else {
            None
        };
        let kept = match queued {
            Some(item) => {
                st.events.push_back(item);
                true
            }
            None => {
                st.lagged = true;
                let freed: usize = st.events.drain(..).map(|(_, c)| c).sum();
                self.budget.refund(freed);
                false
            }
        };
        drop(st);
        self.ready.notify_one();
        kept
    }
}

/// A follow of one run's log events, from the moment it was made. Dropping
/// it leaves the run's stream and gives its queued bytes back.
pub struct LogSubscription {
    hub: Hub,
    id: RunId,
    queue: Arc<Queue>,
}

impl LogSubscription {
    /// The next event, or [`Lagged`] once this follower fell behind its budget.
    pub async fn recv(&mut self) -> Result<LogEvent, Lagged> {
        loop {
            {
                let mut st = self.queue.lock();
                if let Some((event, cost)) = st.events.pop_front() {
                    self.queue.budget.refund(cost);
                    return Ok(event);
                }
                if st.lagged {
                    return Err(Lagged);
                }
            }
            // notify_one keeps a permit when nobody waits, so no wake-up is lost here.
            self.queue.ready.notified().await;
        }
    }
}

impl Drop for LogSubscription {
    fn drop(&mut self) {
        let freed: usize = self.queue.lock().events.drain(..).map(|(_, c)| c).sum();
        self.queue.budget.refund(freed);
        let mut logs = self.hub.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(subs) = logs.get_mut(&self.id) {
            subs.retain(|q| !Arc::ptr_eq(q, &self.queue));
            if subs.is_empty() {
                logs.remove(&self.id);
            }
        }
    }
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    runs: broadcast::Sender<Arc<str>>,
    logs: Mutex<HashMap<RunId, Vec<Arc<Queue>>>>,
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

    /// Tells every client that `run` was added or changed (`taskAdded` / `taskChanged`).
    pub fn publish_run(&self, event: RunEvent, run: &Run) {
        let frame = match event {
            RunEvent::Added => ServerFrame::TaskAdded { run },
            RunEvent::Changed => ServerFrame::TaskChanged { run },
        };
        self.send_frame(frame.to_json());
    }

    /// Tells every client an environment changed (`envChanged`).
    pub fn publish_env(&self, env: &EnvView) {
        self.send_frame(ServerFrame::EnvChanged { env }.to_json());
    }

    /// Tells every client the remote worker list (`workersChanged`).
    pub fn publish_workers(&self, workers: &[WorkerInfo]) {
        self.send_frame(ServerFrame::WorkersChanged { workers }.to_json());
    }

    fn send_frame(&self, frame: String) {
        let _ = self.inner.runs.send(Arc::from(frame));
    }

    /// A receiver of every run-level frame (JSON text), from now on.
    pub fn subscribe_runs(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.runs.subscribe()
    }

    /// Follows run `id`'s log events from now on; what waits in its queue is charged to `budget`.
    pub fn subscribe_log(&self, id: RunId, budget: Arc<Budget>) -> LogSubscription {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            budget,
        });
        let mut logs = self.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.entry(id).or_default().push(queue.clone());
        LogSubscription {
            hub: self.clone(),
            id,
            queue,
        }
    }

    /// Sends a log event to run `id`'s followers, if it has any. Never blocks.
    pub fn publish_log(&self, id: RunId, event: LogEvent) {
        self.remember_partial(id, &event);
        let mut logs = self.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = logs.get_mut(&id) else { return };
        subs.retain(|q| q.offer(&event));
        if subs.is_empty() || matches!(event, LogEvent::End { .. }) {
            logs.remove(&id);
        }
    }

    /// The unfinished line run `id` shows now, if any: (line number, text so far).
    pub fn partial(&self, id: RunId) -> Option<(u64, Arc<str>)> {
        let partials = self.inner.partials.lock().unwrap_or_else(|p| p.into_inner());
        partials.get(&id).cloned()
    }

    fn remember_partial(&self, id: RunId, event: &LogEvent) {
        let mut partials = self.inner.partials.lock().unwrap_or_else(|p| p.into_inner());
        let ends_before = |to: u64| partials.get(&id).is_some_and(|(line, _)| *line < to);
        match event {
            LogEvent::Partial { line, text } => {
                partials.insert(id, (*line, text.clone()));
            }
            LogEvent::Lines { from, lines } => {
                if ends_before(from.saturating_add(lines.len() as u64)) {
                    partials.remove(&id);
                }
            }
            LogEvent::Stored { to, .. } => {
                if ends_before(*to) {
                    partials.remove(&id);
                }
            }
            LogEvent::End { .. } => {
                partials.remove(&id);
            }
        }
    }

    /// How many follows run `id` has now (for tests and diagnostics).
    pub fn followers(&self, id: RunId) -> usize {
        let logs = self.inner.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(&id).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(from: u64, n: usize, len: usize) -> LogEvent {
        LogEvent::Lines {
            from,
            lines: Arc::new(vec!["x".repeat(len); n]),
        }
    }

    fn now<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(5), f).await })
            .expect("ready at once")
    }

    #[test]
    fn a_follower_past_its_byte_budget_lags_and_leaves_the_stream() {
        let hub = Hub::new();
        let budget = Budget::new(10_000);
        let mut sub = hub.subscribe_log(7, budget.clone());
        for i in 0..200 {
            hub.publish_log(7, lines(i, 1, 100));
        }
        assert!(budget.used() <= 10_000);
        assert_eq!(hub.followers(7), 0, "dropped from the run's stream");
        assert_eq!(budget.used(), 0, "its queue was given back");
        assert_eq!(now(sub.recv()).err(), Some(Lagged));
    }

    #[test]
    fn the_budget_is_shared_by_the_follows_of_one_connection() {
        let hub = Hub::new();
        let budget = Budget::new(1_000);
        let _a = hub.subscribe_log(1, budget.clone());
        let _b = hub.subscribe_log(2, budget.clone());
        hub.publish_log(1, lines(0, 1, 600));
        assert_eq!(hub.followers(1), 1);
        hub.publish_log(2, lines(0, 1, 600));
        assert_eq!(hub.followers(2), 0, "the second follow has no room left");
        assert_eq!(hub.followers(1), 1);
    }

    #[test]
    fn a_batch_too_big_to_queue_is_handed_over_as_a_stored_range() {
        let hub = Hub::new();
        let mut sub = hub.subscribe_log(3, Budget::new(1_000));
        hub.publish_log(3, lines(10, 100, 100));
        assert!(matches!(now(sub.recv()), Ok(LogEvent::Stored { from: 10, to: 110 })));
        // While one is waiting, another big one means this follower is behind.
        hub.publish_log(3, lines(110, 100, 100));
        hub.publish_log(3, lines(210, 100, 100));
        assert_eq!(now(sub.recv()).err(), Some(Lagged), "what waited is dropped with it");
    }

    #[test]
    fn events_wait_in_order_and_the_budget_is_refunded_as_they_are_taken() {
        let hub = Hub::new();
        let budget = Budget::new(100_000);
        let mut sub = hub.subscribe_log(4, budget.clone());
        hub.publish_log(4, lines(0, 2, 10));
        hub.publish_log(4, lines(2, 1, 10));
        assert!(budget.used() > 0);
        assert!(matches!(now(sub.recv()), Ok(LogEvent::Lines { from: 0, .. })));
        assert!(matches!(now(sub.recv()), Ok(LogEvent::Lines { from: 2, .. })));
        assert_eq!(budget.used(), 0);
        hub.publish_log(4, lines(3, 1, 10));
        drop(sub);
        assert_eq!(budget.used(), 0, "dropping a follow gives its bytes back");
        assert_eq!(hub.followers(4), 0);
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
        hub.publish_log(3, lines(2, 2, 1));
        assert!(hub.partial(3).is_some(), "lines before it leave it");
        hub.publish_log(3, lines(4, 1, 1));
        assert!(hub.partial(3).is_none());
    }

    #[test]
    fn end_is_delivered_and_drops_the_channel() {
        let hub = Hub::new();
        let mut sub = hub.subscribe_log(1, Budget::new(1_000));
        assert_eq!(hub.followers(1), 1);
        hub.publish_log(
            1,
            LogEvent::End {
                total: 0,
                status: RunStatus::Succeeded,
            },
        );
        assert_eq!(hub.followers(1), 0);
        assert!(matches!(now(sub.recv()), Ok(LogEvent::End { total: 0, .. })));
    }
}

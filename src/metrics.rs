//! The Prometheus metrics of `GET /metrics` (prometheus-client, the
//! Prometheus project's own Rust client). Gauges are read from the store at
//! scrape time; counters and histograms follow the hub's events (run events
//! for ends, waits and durations; each run's log events for lines stored), so
//! the scheduler knows nothing of metrics. Every family exists from the start,
//! the per-environment ones with a series for each configured environment.

use crate::domain::{RunId, RunStatus};
use crate::hub::{Hub, LogEvent};
use crate::scheduler::Dispatcher;
use crate::store::metrics::Snapshot;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Buckets of the queue wait histogram, in seconds.
const WAIT_BUCKETS: [f64; 12] = [
    0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];
/// Buckets of the run duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// The statuses `testscheduler_active_runs` has a series for.
const ACTIVE: [&str; 3] = ["queued", "created", "running"];

/// A `status` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// An `env` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabel {
    pub env: String,
}

type Histograms = Family<EnvLabel, Histogram, fn() -> Histogram>;

/// Every metric and its registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    envs: Vec<u32>,
    runs_total: Family<StatusLabel, Counter>,
    active_runs: Family<StatusLabel, Gauge>,
    queue_length: Family<EnvLabel, Gauge>,
    queue_wait: Histograms,
    run_duration: Histograms,
    env_busy: Family<EnvLabel, Gauge>,
    log_lines: Counter,
    ws_connections: Gauge,
    workers: Gauge,
    dispatch_errors: Counter,
}

fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS)
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn env(id: u32) -> EnvLabel {
    EnvLabel { env: id.to_string() }
}

fn status(s: &str) -> StatusLabel {
    StatusLabel { status: s.to_string() }
}

impl Metrics {
    /// Every family, with a zero series for each environment of `envs` and each status.
    pub fn new(envs: &[u32]) -> Metrics {
        let mut registry = Registry::default();
        let m = Inner {
            registry: Registry::default(),
            envs: envs.to_vec(),
            runs_total: Family::default(),
            active_runs: Family::default(),
            queue_length: Family::default(),
            queue_wait: Family::new_with_constructor(wait_histogram as fn() -> Histogram),
            run_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            env_busy: Family::default(),
            log_lines: Counter::default(),
            ws_connections: Gauge::default(),
            workers: Gauge::default(),
            dispatch_errors: Counter::default(),
        };
        for st in RunStatus::ALL.into_iter().filter(|s| s.is_finished()) {
            let _ = m.runs_total.get_or_create(&status(st.as_str()));
        }
        for st in ACTIVE {
            let _ = m.active_runs.get_or_create(&status(st));
        }
        for &id in envs {
            let _ = m.queue_length.get_or_create(&env(id));
            let _ = m.queue_wait.get_or_create(&env(id));
            let _ = m.run_duration.get_or_create(&env(id));
            let _ = m.env_busy.get_or_create(&env(id));
        }
        // prometheus-client adds `_total` to counter names.
        registry.register("testscheduler_runs", "Runs that ended, by status", m.runs_total.clone());
        registry.register(
            "testscheduler_active_runs",
            "Runs not ended yet, by status",
            m.active_runs.clone(),
        );
        registry.register(
            "testscheduler_queue_length",
            "Runs queued for each environment",
            m.queue_length.clone(),
        );
        registry.register(
            "testscheduler_queue_wait_seconds",
            "Seconds from submit to start, per environment",
            m.queue_wait.clone(),
        );
        registry.register(
            "testscheduler_run_duration_seconds",
            "Seconds from start to end, per environment",
            m.run_duration.clone(),
        );
        registry.register(
            "testscheduler_env_busy",
            "1 while a run holds the environment",
            m.env_busy.clone(),
        );
        registry.register("testscheduler_log_lines", "Log lines stored", m.log_lines.clone());
        registry.register(
            "testscheduler_ws_connections",
            "Open /ws connections",
            m.ws_connections.clone(),
        );
        registry.register("testscheduler_workers", "Connected remote workers", m.workers.clone());
        registry.register(
            "testscheduler_dispatch_errors",
            "Runs a dispatcher could not take",
            m.dispatch_errors.clone(),
        );
        Metrics {
            inner: Arc::new(Inner { registry, ..m }),
        }
    }

    /// Sets the gauges from `snap` and `workers`, then encodes every family
    /// (OpenMetrics text, which Prometheus reads).
    pub fn encode(&self, snap: &Snapshot, workers: usize) -> String {
        let m = &self.inner;
        for st in ACTIVE {
            let n = snap.active.iter().find(|(s, _)| s == st).map_or(0, |(_, n)| *n);
            let _ = m.active_runs.get_or_create(&status(st)).set(n);
        }
        let queued: HashMap<u32, i64> = snap.queued.iter().copied().collect();
        let busy: HashSet<u32> = snap.busy.iter().copied().collect();
        for &id in &m.envs {
            let _ = m
                .queue_length
                .get_or_create(&env(id))
                .set(queued.get(&id).copied().unwrap_or(0));
            let _ = m.env_busy.get_or_create(&env(id)).set(i64::from(busy.contains(&id)));
        }
        m.workers.set(workers as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &m.registry).is_err() {
            tracing::error!("could not encode the metrics");
        }
        out
    }

    /// Counts one open `/ws` connection until the guard drops.
    pub fn ws_connected(&self) -> WsGuard {
        self.inner.ws_connections.inc();
        WsGuard(self.inner.ws_connections.clone())
    }

    /// Wraps `inner` so that each refused submit counts as a dispatch error.
    pub fn count_dispatch_errors(&self, inner: Arc<dyn Dispatcher>) -> Arc<dyn Dispatcher> {
        Arc::new(Counting {
            inner,
            errors: self.inner.dispatch_errors.clone(),
        })
    }

    /// Follows the hub's events in a thread of its own from now on.
    pub fn watch(&self, hub: &Hub) -> std::io::Result<()> {
        let metrics = self.clone();
        let hub = hub.clone();
        let mut events = hub.subscribe_runs();
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        std::thread::Builder::new().name("metrics".into()).spawn(move || {
            rt.block_on(async move {
                let mut watch = Watch::default();
                loop {
                    match events.recv().await {
                        Ok(frame) => watch.frame(&metrics, &hub, &frame),
                        Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "metrics lagged on run events"),
                        Err(RecvError::Closed) => return,
                    }
                }
            })
        })?;
        Ok(())
    }
}

/// Decrements `testscheduler_ws_connections` when dropped.
pub struct WsGuard(Gauge);

impl Drop for WsGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct Counting {
    inner: Arc<dyn Dispatcher>,
    errors: Counter,
}

impl Dispatcher for Counting {
    fn submit(&self, run: &crate::domain::Run) -> Result<(), String> {
        let res = self.inner.submit(run);
        if res.is_err() {
            self.errors.inc();
        }
        res
    }

    fn cancel(&self, id: RunId) {
        self.inner.cancel(id);
    }

    fn shutdown(&self, grace: std::time::Duration) {
        self.inner.shutdown(grace);
    }
}

/// What the watcher remembers about runs it has seen.
#[derive(Default)]
struct Watch {
    /// Lines counted per run not yet ended (shared with its log task).
    counted: HashMap<RunId, Arc<AtomicU64>>,
    started: HashSet<RunId>,
    ended: HashSet<RunId>,
}

impl Watch {
    fn frame(&mut self, metrics: &Metrics, hub: &Hub, frame: &str) {
        let Ok(v) = serde_json::from_str::<Value>(frame) else {
            return;
        };
        if !matches!(v["event"].as_str(), Some("taskAdded" | "taskChanged")) {
            return;
        }
        let run = &v["run"];
        let (Some(id), Some(st)) = (run["id"].as_i64(), run["status"].as_str().and_then(RunStatus::parse)) else {
            return;
        };
        let m = &metrics.inner;
        let env_label = run["env_id"].as_u64().and_then(|e| u32::try_from(e).ok()).map(env);
        if st.is_finished() {
            if self.ended.len() > 100_000 {
                self.ended.clear();
            }
            if !self.ended.insert(id) {
                return;
            }
            let counted = self.counted.remove(&id).unwrap_or_default();
            add_lines(&m.log_lines, &counted, run["lines"].as_u64().unwrap_or(0));
            self.started.remove(&id);
            let _ = m.runs_total.get_or_create(&status(st.as_str())).inc();
            if let (Some(label), Some(secs)) = (&env_label, seconds_between(&run["started_at"], &run["finished_at"])) {
                m.run_duration.get_or_create(label).observe(secs);
            }
            return;
        }
        if st == RunStatus::Running && self.started.insert(id) {
            if let (Some(label), Some(secs)) = (&env_label, seconds_between(&run["created_at"], &run["started_at"])) {
                m.queue_wait.get_or_create(label).observe(secs);
            }
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.counted.entry(id) {
            let counted = slot.insert(Arc::new(AtomicU64::new(0))).clone();
            let mut rx = hub.subscribe_log(id, crate::hub::Budget::new(1 << 20));
            let lines = m.log_lines.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(LogEvent::Lines { from, lines: l }) => add_lines(&lines, &counted, from + l.len() as u64),
                        Ok(LogEvent::End { total, .. }) => {
                            add_lines(&lines, &counted, total);
                            return;
                        }
                        Ok(LogEvent::Stored { to, .. }) => add_lines(&lines, &counted, to),
                        Ok(LogEvent::Partial { .. }) => {}
                        // Behind: the run's end (its `lines`) counts the rest.
                        Err(_) => return,
                    }
                }
            });
        }
    }
}

/// Counts the lines up to `end` that `counted` has not counted yet.
fn add_lines(total: &Counter, counted: &AtomicU64, end: u64) {
    let before = counted.fetch_max(end, Ordering::Relaxed);
    if end > before {
        total.inc_by(end - before);
    }
}

/// Seconds from RFC 3339 time `a` to `b`, if both are there and in order.
fn seconds_between(a: &Value, b: &Value) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a.as_str()?).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b.as_str()?).ok()?;
    let ms = (b - a).num_milliseconds();
    (ms >= 0).then(|| ms as f64 / 1000.0)
}

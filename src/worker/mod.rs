//! `testscheduler worker`: takes runs from the Redis stream through the
//! consumer group (one message at a time, only while a slot is free), runs
//! each with the shared runner in its project directory and reports it to the
//! server over HTTP with the run's token (`job`, `report`, `spool`). It says it
//! is alive with `POST /api/workers/heartbeat` every two seconds.
//!
//! Signals (CLI only): the first SIGTERM stops taking runs and lets the
//! running ones finish; a second SIGTERM, or SIGINT, cancels them. The worker
//! exits once every run's last lines are reported. The server also starts
//! these loops in-process for `serve --redis --workers N` (without signals).
//! Nothing here touches SQLite: the server's store is not ours.

mod job;
mod report;
mod spool;

use crate::config::{ConfigError, WorkerArgs};
use crate::dispatch::redis::{self as queue, Job, Keys, GROUP};
use crate::domain::RunId;
use crate::runner::StopFlag;
use report::{Backoff, Http};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long one read from the stream blocks.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// How often the worker heartbeats (more often if the server's lease is short).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// A worker's validated settings.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub redis: String,
    pub redis_prefix: String,
    /// The server's base URL, without a trailing slash.
    pub server: String,
    pub slots: usize,
    pub project_dir: PathBuf,
    pub id: String,
}

impl WorkerOptions {
    /// Checks the flags of `testscheduler worker`; the error names the flag.
    pub fn from_args(args: WorkerArgs) -> Result<WorkerOptions, ConfigError> {
        let bad = |flag: &'static str, message: String| ConfigError { flag, message };
        redis::Client::open(args.redis.as_str()).map_err(|e| bad("--redis", format!("{}: {e}", args.redis)))?;
        let server = args.server.trim_end_matches('/').to_string();
        let rest = server.strip_prefix("http://").ok_or_else(|| {
            bad(
                "--server",
                format!("{server:?} must be an http:// URL such as http://server:8000"),
            )
        })?;
        if rest.is_empty() || rest.contains('/') {
            return Err(bad(
                "--server",
                format!("{server:?} must be a base URL such as http://server:8000"),
            ));
        }
        let project_dir = crate::config::project_dir(&args.project_dir)?;
        let id = match args.id {
            Some(id) if (1..=200).contains(&id.chars().count()) => id,
            Some(_) => return Err(bad("--id", "must be 1 to 200 characters".into())),
            None => format!("{}-{}", host_name(), std::process::id()),
        };
        Ok(WorkerOptions {
            redis: args.redis,
            redis_prefix: args.redis_prefix,
            server,
            slots: args.slots as usize,
            project_dir,
            id,
        })
    }
}

/// This machine's host name (or `localhost`).
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A worker's shared state: its runs' stop flags and whether it drains.
pub(crate) struct Worker {
    opts: WorkerOptions,
    keys: Keys,
    client: redis::Client,
    /// Connection used to acknowledge messages (the reader's blocks).
    ack_conn: Mutex<Option<redis::Connection>>,
    running: Mutex<BTreeMap<RunId, StopFlag>>,
    changed: Condvar,
    draining: AtomicBool,
}

impl Worker {
    fn new(opts: WorkerOptions) -> Result<Arc<Worker>, String> {
        let client = redis::Client::open(opts.redis.as_str()).map_err(|e| format!("--redis {}: {e}", opts.redis))?;
        Ok(Arc::new(Worker {
            keys: Keys::new(&opts.redis_prefix),
            opts,
            client,
            ack_conn: Mutex::new(None),
            running: Mutex::new(BTreeMap::new()),
            changed: Condvar::new(),
            draining: AtomicBool::new(false),
        }))
    }

    fn running(&self) -> MutexGuard<'_, BTreeMap<RunId, StopFlag>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acknowledges and deletes stream entry `msg_id` (best effort: an entry
    /// left pending is cleaned up by the server after a lease).
    fn ack(&self, msg_id: &str) {
        let mut guard = self.ack_conn.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..2 {
            let conn = match guard.as_mut() {
                Some(c) => c,
                None => match queue::connect(&self.client, Duration::from_secs(3)) {
                    Ok(c) => guard.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach redis to acknowledge a message");
                        return;
                    }
                },
            };
            let mut pipe = redis::pipe();
            forget(&mut pipe, &self.keys.stream, msg_id);
            let res = pipe.query::<()>(conn);
            match res {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "acknowledging a message failed");
                    *guard = None;
                }
            }
        }
    }

    /// Puts a message this worker will not run back on the stream, as is
    /// (its token stays valid), and drops its own copy.
    fn requeue(&self, msg_id: &str, fields: &std::collections::HashMap<String, String>) {
        let res = queue::connect(&self.client, Duration::from_secs(3)).and_then(|mut c| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("XADD")
                .arg(&self.keys.stream)
                .arg("*")
                .arg(fields)
                .ignore();
            forget(&mut pipe, &self.keys.stream, msg_id);
            pipe.query::<()>(&mut c)
        });
        match res {
            Ok(()) => tracing::info!(msg_id, "stopping: gave a run back to the queue"),
            // Left pending: the server publishes it again after a lease.
            Err(e) => tracing::warn!(msg_id, error = %e, "could not give a run back to the queue"),
        }
    }

    /// Stops taking runs; with `cancel`, also stops the running ones.
    fn drain(&self, cancel: bool) {
        self.draining.store(true, Ordering::SeqCst);
        if cancel {
            for (id, flag) in self.running().iter() {
                tracing::info!(run_id = id, "cancelling run");
                flag.raise();
            }
        }
        self.changed.notify_all();
    }

    /// Takes runs until drained and every run has ended.
    fn take_runs(self: &Arc<Self>) {
        let mut conn: Option<redis::Connection> = None;
        let mut backoff = Backoff::new();
        let mut warned = false;
        loop {
            {
                let mut running = self.running();
                loop {
                    let draining = self.draining.load(Ordering::SeqCst);
                    if draining && running.is_empty() {
                        return;
                    }
                    if !draining && running.len() < self.opts.slots {
                        break;
                    }
                    running = self
                        .changed
                        .wait_timeout(running, Duration::from_millis(500))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match queue::connect(&self.client, READ_BLOCK + Duration::from_secs(3)) {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "cannot reach redis; retrying");
                            warned = true;
                        }
                        std::thread::sleep(backoff.next_delay());
                        continue;
                    }
                },
            };
            let reply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.opts.id)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.keys.stream)
                .arg(">")
                .query::<redis::Value>(c);
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    // NOGROUP: the server has not (re)created the queue yet.
                    if !warned {
                        tracing::warn!(error = %e, "cannot read the run queue; retrying");
                        warned = true;
                    }
                    if e.code() != Some("NOGROUP") {
                        conn = None;
                    }
                    std::thread::sleep(backoff.next_delay());
                    continue;
                }
            };
            if warned {
                tracing::info!("run queue reachable");
                warned = false;
            }
            backoff.reset();
            for (msg_id, fields) in queue::read_reply_entries(&reply) {
                if self.draining.load(Ordering::SeqCst) {
                    // Taken while the stop arrived: give it back for another worker.
                    self.requeue(&msg_id, &fields);
                    continue;
                }
                match Job::from_fields(&fields) {
                    Ok(job) => self.start_job(msg_id, job),
                    Err(e) => {
                        tracing::error!(msg_id = %msg_id, error = %e, "malformed message; dropping it");
                        self.ack(&msg_id);
                    }
                }
            }
        }
    }

    fn start_job(self: &Arc<Self>, msg_id: String, job: Job) {
        let stop = StopFlag::new();
        let id = job.id;
        self.running().insert(id, stop.clone());
        let me = self.clone();
        let spawned = std::thread::Builder::new().name(format!("run-{id}")).spawn(move || {
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job::run(&me, &msg_id, job, stop)));
            if res.is_err() {
                tracing::error!(run_id = id, "run thread panicked; the server's lease ends the run");
            }
            me.running().remove(&id);
            me.changed.notify_all();
        });
        if let Err(e) = spawned {
            tracing::error!(run_id = id, error = %e, "cannot start a run thread");
            self.running().remove(&id);
        }
    }

    /// Heartbeats until the process ends.
    fn heartbeat(self: &Arc<Self>) {
        let http = Http::new(&self.opts.server);
        let host = host_name();
        let mut every = HEARTBEAT_EVERY;
        loop {
            let running: Vec<RunId> = self.running().keys().copied().collect();
            let body = json!({ "id": self.opts.id, "host": host, "slots": self.opts.slots, "running": running });
            match http.post("/api/workers/heartbeat", &body) {
                Ok(reply) => {
                    if let Some(lease) = reply["lease_s"].as_u64().filter(|s| *s > 0) {
                        every = HEARTBEAT_EVERY.min(Duration::from_secs(lease) / 3);
                    }
                    if let Some(ids) = reply["cancel"].as_array() {
                        let running = self.running();
                        for id in ids.iter().filter_map(|v| v.as_i64()) {
                            if let Some(flag) = running.get(&id) {
                                flag.raise();
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
            }
            std::thread::sleep(every);
        }
    }
}

/// Runs a worker until it is told to stop (SIGTERM / SIGINT) and its runs are
/// reported. Blocks.
pub fn run(opts: WorkerOptions) -> Result<(), String> {
    let worker = Worker::new(opts)?;
    let signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    {
        let worker = worker.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut signals = signals;
                let mut terms = 0;
                for sig in signals.forever() {
                    if sig == signal_hook::consts::SIGTERM {
                        terms += 1;
                    }
                    let cancel = sig == signal_hook::consts::SIGINT || terms > 1;
                    if cancel {
                        tracing::info!("stopping: cancelling running runs, exiting once they are reported");
                    } else {
                        tracing::info!("stopping: taking no new run; running runs finish (SIGTERM again cancels them)");
                    }
                    worker.drain(cancel);
                }
            })
            .map_err(|e| e.to_string())?;
    }
    spawn_heartbeat(&worker)?;
    tracing::info!(id = %worker.opts.id, server = %worker.opts.server, slots = worker.opts.slots, stream = %worker.keys.stream, "worker ready");
    let started = Instant::now();
    worker.take_runs();
    tracing::info!(uptime_s = started.elapsed().as_secs(), "worker stopped");
    Ok(())
}

/// Starts a worker's loops on background threads (the server's own slots).
pub fn spawn(opts: WorkerOptions) -> Result<(), String> {
    let worker = Worker::new(opts)?;
    spawn_heartbeat(&worker)?;
    let w = worker.clone();
    std::thread::Builder::new()
        .name("worker-take".into())
        .spawn(move || w.take_runs())
        .map_err(|e| e.to_string())?;
    tracing::info!(id = %worker.opts.id, slots = worker.opts.slots, "in-process worker slots take runs from redis");
    Ok(())
}

fn spawn_heartbeat(worker: &Arc<Worker>) -> Result<(), String> {
    let w = worker.clone();
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || w.heartbeat())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Adds to `pipe` what drops message `msg_id` from this worker's view: `XACK`
/// (no longer pending for us) and `XDEL` (the stream holds only unclaimed runs).
fn forget(pipe: &mut redis::Pipeline, stream: &str, msg_id: &str) {
    pipe.cmd("XACK").arg(stream).arg(GROUP).arg(msg_id).ignore();
    pipe.cmd("XDEL").arg(stream).arg(msg_id).ignore();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> WorkerArgs {
        let mut v = vec!["testscheduler", "worker"];
        v.extend_from_slice(extra);
        match crate::config::Cli::try_parse_from(v).expect("valid flags").command {
            Some(crate::config::Command::Worker(a)) => a,
            other => panic!("not a worker command: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_checks() {
        let o = WorkerOptions::from_args(args(&[
            "--redis",
            "redis://localhost:6379",
            "--server",
            "http://srv:8000/",
        ]))
        .expect("valid");
        assert_eq!(o.server, "http://srv:8000");
        assert_eq!(o.slots, 1);
        assert!(o.id.ends_with(&format!("-{}", std::process::id())), "{}", o.id);
        assert_eq!(o.redis_prefix, "testscheduler:");
        let e = WorkerOptions::from_args(args(&["--redis", "redis://x", "--server", "https://srv"])).expect_err("tls");
        assert_eq!(e.flag, "--server");
        let e =
            WorkerOptions::from_args(args(&["--redis", "nope://x", "--server", "http://srv"])).expect_err("bad redis");
        assert_eq!(e.flag, "--redis");
    }
}

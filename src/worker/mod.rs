//! `testscheduler worker`: takes runs from the Redis stream through the
//! consumer group (one message at a time, only while a slot is free and the
//! server answers its heartbeats: `queue`), runs each with the shared runner
//! in its project directory and reports it to the server over HTTP with the
//! run's token (`job`, `report`, `spool`, `http`). It says it is alive with
//! `POST /api/workers/heartbeat` every two seconds (`heartbeat`). With a
//! worker secret every request carries it and only signed messages run.
//!
//! Signals (CLI only): the first SIGTERM stops taking runs and lets the
//! running ones finish; a second SIGTERM, or SIGINT, cancels them. The worker
//! exits once every run's last lines are reported. The server also starts
//! these loops in-process for `serve --redis --workers N` (without signals).
//! Nothing here touches SQLite: the server's store is not ours.

mod heartbeat;
mod http;
mod job;
mod queue;
mod report;
mod spool;

use crate::config::{ConfigError, WorkerArgs};
use crate::dispatch::stream::Keys;
use crate::domain::RunId;
use crate::protocol::worker::{RefusedJob, WorkerSecret};
use crate::runner::StopFlag;
use http::Http;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

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
    /// Sent with every request and required of every job message.
    pub secret: Option<WorkerSecret>,
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
            Some(id)
                if (1..=200).contains(&id.chars().count())
                    && !id
                        .chars()
                        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')) =>
            {
                id
            }
            Some(_) => {
                return Err(bad(
                    "--id",
                    "must be 1 to 200 characters, none a control or bidi-override character".into(),
                ))
            }
            None => format!("{}-{}", host_name(), std::process::id()),
        };
        let secret = args.worker_secret.resolve()?;
        Ok(WorkerOptions {
            secret,
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
    /// Whether the server answered the last heartbeat: runs are taken only then.
    server_ok: AtomicBool,
    /// Messages refused since the last heartbeat, for the server to hear of.
    refused: Mutex<Vec<RefusedJob>>,
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
            server_ok: AtomicBool::new(false),
            refused: Mutex::new(Vec::new()),
        }))
    }

    fn running(&self) -> MutexGuard<'_, BTreeMap<RunId, StopFlag>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
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

    /// A client for the server, proving itself with the secret.
    fn http(&self) -> Http {
        Http::new(&self.opts.server, self.opts.secret.clone())
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
    tracing::info!(id = %worker.opts.id, server = %worker.opts.server, slots = worker.opts.slots, stream = %worker.keys.stream, signed = worker.opts.secret.is_some(), "worker started; checking the server before taking runs");
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
        let e = WorkerOptions::from_args(args(&[
            "--redis",
            "redis://x",
            "--server",
            "http://srv",
            "--id",
            "a\u{1b}b",
        ]))
        .expect_err("bad id");
        assert_eq!(e.flag, "--id");
        let o = WorkerOptions::from_args(args(&[
            "--redis",
            "redis://x",
            "--server",
            "http://srv",
            "--worker-secret",
            "s",
        ]))
        .expect("valid");
        assert!(o.secret.is_some_and(|s| s.matches(b"s")));
    }
}

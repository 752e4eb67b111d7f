//! Remote workers over Redis: each test starts its own `redis-server` on a
//! free port (killed at the end), the real server with `--redis`, and real
//! `testscheduler worker` processes. This module holds the harness (Redis,
//! worker processes, a proxy that outlives a server restart); the tests are in
//! `delivery` (sharing a queue, re-publishing), `failures` (killed workers,
//! restarted servers, cancel, timeout, signals) and `protocol` (the report
//! protocol's refusals).

mod accounts;
mod delivery;
mod failures;
mod protocol;
mod queue;
mod results;
mod run_process;
mod secret;

use crate::helpers::*;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// A `redis-server` of our own on a free loopback port, killed on drop.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1 -::1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("valid url");
        wait_until(Duration::from_secs(10), "redis answers PING", || {
            client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    /// Kills Redis and starts an empty one on the same port (it keeps nothing on disk).
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("valid url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("redis reachable")
    }

    /// The token of the newest message for run `id` on `prefix`'s stream, once there is one.
    fn wait_token(&self, prefix: &str, id: i64, not: Option<&str>) -> String {
        let deadline = Instant::now() + T;
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(format!("{prefix}runs"))
                .arg("-")
                .arg("+")
                .query(&mut self.conn())
                .unwrap_or_default();
            let token = reply
                .ids
                .iter()
                .rev()
                .filter(|e| e.get::<i64>("id") == Some(id))
                .filter_map(|e| e.get::<String>("token"))
                .find(|t| Some(t.as_str()) != not);
            if let Some(t) = token {
                return t;
            }
            assert!(Instant::now() < deadline, "run {id} never published on {prefix}runs");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A key prefix no other test uses.
fn prefix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("ts-test-{}-{}:", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A `testscheduler worker` process, SIGKILLed on drop.
struct Worker {
    child: Option<Child>,
    log: PathBuf,
}

impl Worker {
    fn spawn(app: &TestApp, server: &str, redis_url: &str, prefix: &str, id: &str, env: &[(&str, &str)]) -> Worker {
        let log = app.path().join(format!("worker-{id}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args([
            "worker",
            "--redis",
            redis_url,
            "--server",
            server,
            "--id",
            id,
            "--redis-prefix",
            prefix,
        ])
        .arg("--project-dir")
        .arg(app.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("worker log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Worker {
            child: Some(cmd.spawn().expect("worker starts")),
            log,
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig).expect("signal the worker");
        }
    }

    /// Waits for the worker to exit on its own; its exit status.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "worker did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server dispatching through `redis` under `prefix`, with no slots of its own.
fn redis_app(redis: &Redis, prefix: &str, extra: &[&str]) -> TestApp {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--redis-prefix", prefix];
    if !extra.contains(&"--envs-file") {
        args.extend(["--envs", "1-20"]);
    }
    if !extra.contains(&"--workers") {
        args.extend(["--workers", "0"]);
    }
    args.extend_from_slice(extra);
    spawn_app_with(Opts::default().args(&args))
}

fn id_of(run: &Value) -> i64 {
    run["id"].as_i64().expect("run id")
}

fn env_holder(app: &TestApp, env: u64) -> Value {
    let (_, envs) = app.get("/api/envs");
    envs.as_array()
        .expect("envs")
        .iter()
        .find(|e| e["id"].as_u64() == Some(env))
        .map(|e| e["run_id"].clone())
        .expect("env listed")
}

/// Kills what is left of a pytest process whose pid a test wrote to `pid_file`.
fn kill_pid_file(pid_file: &std::path::Path) {
    if let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        if alive(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Forwards a fixed port to whichever port the server listens on now, so a
/// worker keeps one `--server` URL across a server restart.
struct Proxy {
    port: u16,
    backend: Arc<AtomicU16>,
}

impl Proxy {
    fn start(backend: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let backend = Arc::new(AtomicU16::new(backend));
        let b = backend.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", b.load(Ordering::SeqCst))) else {
                    continue; // the server is down: the client sees the connection close
                };
                for (mut from, mut to) in [
                    (client.try_clone().expect("clone"), upstream.try_clone().expect("clone")),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, backend }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

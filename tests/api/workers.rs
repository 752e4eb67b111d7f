//! Remote workers over Redis: each test starts its own `redis-server` on a
//! free port (killed at the end), the real server with `--redis`, and real
//! `testscheduler worker` processes. Covers sharing a queue, a killed worker,
//! a restarted server, an emptied Redis, and the report protocol's refusals.

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
    let mut args = vec!["--redis", url.as_str(), "--redis-prefix", prefix, "--envs", "1-20"];
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

#[test]
fn two_workers_share_the_queue_and_each_run_executes_once() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    std::fs::write(
        app.path().join("tests/test_once.py"),
        "import os, time\n\ndef test_once():\n    with open(os.path.join(os.path.dirname(__file__), '..', 'executed.txt'), 'a') as f:\n        f.write(os.environ['TESTSCHEDULER_RUN_ID'] + '\\n')\n    time.sleep(0.3)\n",
    )
    .expect("write test");
    let mut ws = app.ws();
    let _w1 = Worker::spawn(&app, &app.base, &redis.url(), &p, "w1", &[]);
    let _w2 = Worker::spawn(&app, &app.base, &redis.url(), &p, "w2", &[]);
    wait_until(T, "both workers listed", || {
        let (_, list) = app.get("/api/workers");
        let ids: Vec<&str> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["id"].as_str())
            .collect();
        ids.contains(&"w1") && ids.contains(&"w2")
    });

    let frame = ws.until(T, |v| {
        v["event"] == "workersChanged"
            && v["workers"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(|w| w["id"] == "w1"))
    });
    assert!(frame["workers"][0]["slots"].as_u64().is_some(), "{frame}");
    drop(ws);

    let ids: Vec<i64> = (1..=6)
        .map(|env| id_of(&app.queue(env, "./tests/test_once.py")))
        .collect();
    let mut by = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let run = app.wait_finished(*id, T);
        assert_eq!(run["status"], "succeeded", "{run}");
        *by.entry(run["worker"].as_str().expect("worker recorded").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        by.keys().collect::<Vec<_>>(),
        ["w1", "w2"],
        "runs spread over both workers: {by:?}"
    );
    let executed = std::fs::read_to_string(app.path().join("executed.txt")).expect("runs wrote");
    let mut seen: Vec<i64> = executed.lines().map(|l| l.parse().expect("run id")).collect();
    seen.sort();
    assert_eq!(seen, ids, "each run executed exactly once");
    for id in &ids {
        let lines = app.log_lines(*id);
        assert_eq!(
            lines.iter().filter(|l| l.contains("test session starts")).count(),
            1,
            "{lines:?}"
        );
    }
    for env in 1..=6 {
        assert_eq!(env_holder(&app, env), Value::Null, "env {env} is free");
    }
}

#[test]
fn a_killed_worker_s_run_ends_unknown_and_frees_its_environment() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--lease", "2"]);
    let pid_file = app.path().join("slow.pid");
    let pid_env = pid_file.display().to_string();
    let mut worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "doomed",
        &[("SLOW_SECONDS", "60"), ("PID_FILE", pid_env.as_str())],
    );
    let id = id_of(&app.queue(3, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    let held_since = Instant::now();
    worker.kill();
    kill_pid_file(&pid_file);

    let run = app.wait_finished(id, Duration::from_secs(20));
    assert_eq!(run["status"], "unknown", "{run}");
    assert!(
        held_since.elapsed() >= Duration::from_secs(1),
        "judged by the lease, not at once"
    );
    assert_eq!(env_holder(&app, 3), Value::Null, "the environment is free again");
    let lines = app.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains("tick 0")),
        "output before the kill is kept"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("stopped reporting")),
        "{lines:?}"
    );
    // Another run can take the environment at once.
    app.queue(3, "./tests/test_quick.py");
    wait_until(Duration::from_secs(10), "the silent worker leaves the list", || {
        let (_, list) = app.get("/api/workers");
        !list.as_array().into_iter().flatten().any(|w| w["id"] == "doomed")
    });
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

#[test]
fn a_restarted_server_gets_the_whole_log_from_a_worker_that_buffered() {
    let redis = Redis::start();
    let p = prefix();
    let mut app = redis_app(&redis, &p, &[]);
    let proxy = Proxy::start(app.port);
    let _worker = Worker::spawn(&app, &proxy.url(), &redis.url(), &p, "steady", &[("SLOW_SECONDS", "5")]);
    let id = id_of(&app.queue(4, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(8));

    app.kill();
    // The outage itself: the test keeps printing and the worker keeps its lines.
    std::thread::sleep(Duration::from_millis(1500));
    app.start().expect("restart");
    proxy.backend.store(app.port, Ordering::SeqCst);

    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    let lines = app.log_lines(id);
    assert_eq!(run["lines"].as_u64(), Some(lines.len() as u64));
    let ticks: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("tick ") || l.contains("tick 0"))
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("tick {i}")).collect();
    let got: Vec<String> = ticks
        .iter()
        .map(|l| {
            l.rsplit_once("tick ")
                .map(|(_, n)| format!("tick {n}"))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(got, expected, "every line once, in order, across the restart");
    assert_eq!(env_holder(&app, 4), Value::Null);
}

#[test]
fn an_emptied_redis_gets_the_waiting_runs_again_with_fresh_tokens() {
    let mut redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    // One busy worker: the second run waits on the stream while Redis goes.
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "busy", &[("SLOW_SECONDS", "3")]);
    let slow = id_of(&app.queue(4, "./tests/test_slow.py"));
    app.wait_run(slow, T, |r| r["status"] == "running");
    let waiting = id_of(&app.queue(5, "./tests/test_quick.py"));
    let old = redis.wait_token(&p, waiting, None);

    redis.restart();
    // The running run reports over HTTP and never noticed; the waiting one
    // is published again and taken once the worker is free.
    let run = app.wait_finished(slow, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    let ticks = app.log_lines(slow).iter().filter(|l| l.contains("tick ")).count();
    assert_eq!(ticks, 30);
    let run = app.wait_finished(waiting, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("busy")),
        "{run}"
    );
    // Only the newest token's hash is kept: the lost message proves nothing.
    let (status, body) = app.post(
        &format!("/api/testruns/{waiting}"),
        json!({"token": old, "status": "running", "worker": "stale"}),
    );
    assert_eq!((status, body["code"].as_str()), (403, Some("invalid_token")), "{body}");
}

/// A server, its Redis, and a published run whose token the test read from the stream.
fn published_run() -> (Redis, TestApp, i64, String) {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let id = id_of(&app.queue(6, "./tests/test_quick.py"));
    let token = redis.wait_token(&p, id, None);
    (redis, app, id, token)
}

#[test]
fn a_forged_token_is_refused_and_changes_nothing() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    for body in [
        json!({"token": "forged", "status": "running", "worker": "mallory"}),
        json!({"status": "running", "worker": "mallory"}),
        json!({"token": format!("{token}x"), "from": 0, "lines": ["injected"]}),
        json!({"token": "", "status": "failed", "exit_code": 1, "total": 0}),
    ] {
        let (status, reply) = app.post(&path, body.clone());
        assert_eq!(status, 403, "{body} → {reply}");
        assert_eq!(reply["code"], "invalid_token");
    }
    let (status, _) = app.post("/api/testruns/999999", json!({"token": token, "status": "running"}));
    assert_eq!(status, 403, "another run's token proves nothing");
    let (_, run) = app.get(&path);
    assert_eq!(run["status"], "created");
    assert_eq!(run["worker"], Value::Null);
    assert_eq!(run["lines"], 0);
}

#[test]
fn a_second_claim_by_another_worker_conflicts() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    let (status, reply) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(
        (status, reply.clone()),
        (200, json!({"cancel": false, "status": "running"}))
    );
    let (status, _) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(status, 200, "the same worker asking again is fine");
    let (status, reply) = app.post(&path, json!({"token": token, "status": "running", "worker": "b"}));
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["code"], "already_claimed");
    let (_, run) = app.get(&path);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("running"), Some("a"))
    );
}

#[test]
fn lines_with_a_gap_are_refused_with_the_next_line_and_retries_are_safe() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    let (status, _) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(status, 200);
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id, "from": 0}));

    let (status, _) = app.post(&path, json!({"token": token, "from": 0, "lines": ["a", "b"]}));
    assert_eq!(status, 200);
    let (status, reply) = app.post(&path, json!({"token": token, "from": 5, "lines": ["f"]}));
    assert_eq!(status, 409, "{reply}");
    assert_eq!(
        (reply["code"].as_str(), reply["next"].as_u64()),
        (Some("line_gap"), Some(2))
    );
    // A retry overlapping what is stored only adds what is new.
    let (status, _) = app.post(&path, json!({"token": token, "from": 1, "lines": ["b", "c"]}));
    assert_eq!(status, 200);
    let (status, _) = app.post(&path, json!({"token": token, "from": 0, "lines": []}));
    assert_eq!(status, 200, "an empty report is a heartbeat");
    // The end is accepted only once every line is stored.
    let (status, reply) = app.post(
        &path,
        json!({"token": token, "status": "succeeded", "exit_code": 0, "total": 5}),
    );
    assert_eq!(
        (status, reply["code"].as_str(), reply["next"].as_u64()),
        (409, Some("line_gap"), Some(3))
    );
    let (status, reply) = app.post(
        &path,
        json!({"token": token, "status": "succeeded", "exit_code": 0, "total": 3}),
    );
    assert_eq!((status, reply), (200, json!({"cancel": false, "status": "succeeded"})));
    let (status, _) = app.post(&path, json!({"token": token, "status": "cancelled"}));
    assert_eq!(status, 400, "a worker may not set the server's statuses");

    let (lines, end) = ws.collect_following(id, 0, T);
    assert_eq!(lines, ["a", "b", "c"]);
    assert_eq!(
        (end["total"].as_u64(), end["status"].as_str()),
        (Some(3), Some("succeeded"))
    );
    let (_, run) = app.get(&path);
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("succeeded"), Some(0))
    );
    assert_eq!(env_holder(&app, 6), Value::Null);
}

#[test]
fn the_seed_workers_whole_log_form_is_taken_from_line_zero() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    assert_eq!(app.post(&path, json!({"token": token, "status": "running"})).0, 200);
    assert_eq!(app.post(&path, json!({"token": token, "logs": "one\ntwo\nthr"})).0, 200);
    assert_eq!(
        app.post(&path, json!({"token": token, "logs": "one\ntwo\nthree\nfour"}))
            .0,
        200
    );
    let (status, _) = app.post(
        &path,
        json!({"token": token, "status": "failed", "logs": "one\ntwo\nthree\nfour\nend"}),
    );
    assert_eq!(status, 200);
    assert_eq!(app.log_lines(id), ["one", "two", "three", "four", "end"]);
    let (_, run) = app.get(&path);
    assert_eq!(run["status"], "failed");
}

#[test]
fn a_worker_reaches_redis_as_localhost() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let url = format!("redis://localhost:{}", redis.port);
    let _worker = Worker::spawn(&app, &app.base, &url, &p, "by-name", &[]);
    let id = id_of(&app.queue(7, "./tests/test_quick.py"));
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("by-name"))
    );
}

#[test]
fn server_slots_take_runs_from_redis_like_any_worker() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--workers", "1"]);
    let id = id_of(&app.queue(8, "./tests/test_env.py"));
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["worker"].as_str().is_some_and(|w| w.ends_with("-server")), "{run}");
    let lines = app.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains(&format!("RUN {id} ENV 8 COLUMNS 120"))),
        "{lines:?}"
    );
}

#[test]
fn cancelling_a_remote_run_stops_it_and_frees_the_environment_once_stopped() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "w", &[("SLOW_SECONDS", "60")]);
    let id = id_of(&app.queue(9, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    let (status, run) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!((status, run["status"].as_str()), (200, Some("cancelled")));
    wait_until(
        Duration::from_secs(20),
        "env freed once the worker stopped the run",
        || env_holder(&app, 9) == Value::Null,
    );
    let lines = app.log_lines(id);
    assert!(lines.last().is_some_and(|l| l.contains("cancelled")), "{lines:?}");
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(run["status"], "cancelled");
}

#[test]
fn sigterm_lets_the_running_run_finish_then_the_worker_exits() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let mut worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "polite", &[("SLOW_SECONDS", "2")]);
    let id = id_of(&app.queue(10, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running");
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    // Queued after the SIGTERM: this worker must not take it.
    let waiting = id_of(&app.queue(11, "./tests/test_quick.py"));
    let status = worker.wait_exit(T);
    assert!(status.success(), "{status:?}");
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(app.log_lines(id).iter().filter(|l| l.contains("tick ")).count(), 20);
    let (_, w) = app.get(&format!("/api/testruns/{waiting}"));
    assert_eq!(w["status"], "created", "{w}");
    let mut log = String::new();
    let _ = std::fs::File::open(&worker.log).and_then(|mut f| f.read_to_string(&mut log));
    assert!(log.contains("taking no new run"), "{log}");
}

#[test]
fn a_message_taken_but_never_claimed_is_published_again() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--lease", "2"]);
    let id = id_of(&app.queue(12, "./tests/test_quick.py"));
    let old = redis.wait_token(&p, id, None);
    // A worker takes the message and dies before it claims the run.
    let taken: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(format!("{p}runs"))
        .arg(">")
        .query(&mut redis.conn())
        .expect("read the message");
    assert_ne!(taken, redis::Value::Nil);
    let fresh = redis.wait_token(&p, id, Some(&old));
    assert_ne!(fresh, old);
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "rescuer", &[]);
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("rescuer"))
    );
}

#[test]
fn a_remote_run_past_its_timeout_ends_timeout_and_frees_its_environment() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "w", &[("SLOW_SECONDS", "60")]);
    let (status, run) = app.post(
        "/api/testruns",
        json!({"username": "tester", "env_id": 13, "path": "./tests/test_slow.py", "timeout_s": 1}),
    );
    assert_eq!(status, 201, "{run}");
    let id = id_of(&run);
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "timeout", "{run}");
    wait_until(
        Duration::from_secs(20),
        "env freed once the worker stopped the run",
        || env_holder(&app, 13) == Value::Null,
    );
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(
        run["status"], "timeout",
        "the worker's end does not change the server's verdict"
    );
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("timed out")),
        "the log says why the run stopped: {lines:?}"
    );
}

#[test]
fn a_worker_that_lost_the_server_for_a_lease_stops_its_run_and_delivers_its_lines() {
    let redis = Redis::start();
    let p = prefix();
    let mut app = redis_app(&redis, &p, &["--lease", "2"]);
    let proxy = Proxy::start(app.port);
    let pid_file = app.path().join("slow.pid");
    let pid_env = pid_file.display().to_string();
    let _worker = Worker::spawn(
        &app,
        &proxy.url(),
        &redis.url(),
        &p,
        "cut-off",
        &[("SLOW_SECONDS", "60"), ("PID_FILE", pid_env.as_str())],
    );
    let id = id_of(&app.queue(14, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");

    app.kill();
    // Nobody told the worker anything: it stops the run itself after a lease.
    wait_until(Duration::from_secs(15), "the worker stopped its run", || !alive(pid));
    app.start().expect("restart");
    proxy.backend.store(app.port, Ordering::SeqCst);

    // The worker reports what it printed but no end: the lease decides.
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "unknown", "{run}");
    let lines = app.log_lines(id);
    let ticks: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.rsplit_once("tick ").and_then(|(_, n)| n.trim().parse().ok()))
        .collect();
    assert!(ticks.len() > 10, "{lines:?}");
    assert_eq!(ticks, (0..ticks.len() as u64).collect::<Vec<_>>(), "no gap, no repeat");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("could not be reached for a whole lease")),
        "the stop's own line arrived and says why: {lines:?}"
    );
    assert_eq!(env_holder(&app, 14), Value::Null);
}

#[test]
fn a_second_sigterm_cancels_the_running_run_and_the_worker_exits_once_it_is_reported() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let mut worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "hasty", &[("SLOW_SECONDS", "60")]);
    let id = id_of(&app.queue(15, "./tests/test_slow.py"));
    app.wait_run(id, T, |r| r["status"] == "running" && r["lines"].as_u64() > Some(10));
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    // Two signals sent at once may arrive as one: send the second once the first is handled.
    wait_until(T, "the first SIGTERM handled", || {
        worker.log().contains("taking no new run")
    });
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    // The worker exited only after its end report: the run is over already.
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(run["status"], "failed", "{run}");
    let lines = app.log_lines(id);
    assert!(lines.last().is_some_and(|l| l.contains("run cancelled")), "{lines:?}");
    assert_eq!(env_holder(&app, 15), Value::Null);
}

#[test]
fn a_worker_with_two_slots_runs_two_runs_at_once() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let _worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "wide",
        &[("SLOW_SECONDS", "3"), ("TESTSCHEDULER_SLOTS", "2")],
    );
    let a = id_of(&app.queue(16, "./tests/test_slow.py"));
    let b = id_of(&app.queue(17, "./tests/test_slow.py"));
    wait_until(T, "both runs running at once", || {
        [a, b]
            .iter()
            .all(|id| app.get(&format!("/api/testruns/{id}")).1["status"] == "running")
    });
    let (_, workers) = app.get("/api/workers");
    assert_eq!(workers[0]["slots"], 2, "{workers}");
    for id in [a, b] {
        assert_eq!(app.wait_finished(id, T)["status"], "succeeded");
    }
}

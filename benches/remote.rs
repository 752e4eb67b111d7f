//! Benchmarks of dispatch through Redis to remote workers, printed as figures.
//! Run with `cargo bench --bench remote` (needs `redis-server` and `python3`
//! with pytest on the PATH); not part of the test suite.
//!
//! - 1,000 short runs (`echo {path}`) queued at once across 4 worker
//!   processes: runs/s, queue latency (created → started) and end-to-end
//!   latency (created → finished), p50/p99; then one run at a time: the
//!   dispatch path's own queue latency
//! - a printed line reaching a `/ws` follower through a remote worker, against
//!   the same test on the embedded pool: p50/p99 and the difference
//! - 1,000,000 lines of ~100 bytes through a remote worker: lines/s, every
//!   line stored, peak RSS of the server and of the worker

mod common;

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pct, project, status_kb, BIN};

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn redis() -> (Proc, String) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).expect("url");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get_connection().is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), url)
}

fn worker(dir: &Path, base: &str, redis: &str, id: &str) -> Proc {
    let child = Command::new(BIN)
        .args([
            "worker",
            "--redis",
            redis,
            "--server",
            base,
            "--id",
            id,
            "--project-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start worker");
    Proc(child)
}

fn ms_between(a: &Value, b: &Value) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a.as_str()?).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b.as_str()?).ok()?;
    Some((b - a).num_microseconds()? as f64 / 1e3)
}

/// The server on `dir`: the process, its base URL and its port.
fn server(dir: &Path, extra: &[&str]) -> (common::Server, String, u16) {
    let (server, _) = common::start(dir, extra);
    let (base, port) = (server.base.clone(), server.port);
    (server, base, port)
}

fn bench_throughput() {
    const RUNS: u32 = 1_000;
    let dir = project(&[("test_a.py", "def test_a():\n    pass\n")]);
    let (_redis, url) = redis();
    let envs = format!("1-{RUNS}");
    let (_server, base, _) = server(
        dir.path(),
        &[
            "--redis",
            &url,
            "--envs",
            &envs,
            "--command",
            "echo {path}",
            "--workers",
            "0",
        ],
    );
    let _workers: Vec<Proc> = (0..4)
        .map(|i| worker(dir.path(), &base, &url, &format!("bench-{i}")))
        .collect();
    // Let every worker block on the stream first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Value = ureq::get(&format!("{base}/api/workers"))
            .call()
            .expect("workers")
            .into_json()
            .expect("json");
        if list.as_array().map_or(0, Vec::len) == 4 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let agent = ureq::AgentBuilder::new().build();
    let t0 = Instant::now();
    for env in 1..=RUNS {
        agent
            .post(&format!("{base}/api/testruns"))
            .send_json(json!({"username": "bench", "env_id": env, "path": "./tests/test_a.py"}))
            .expect("queue");
    }
    let queued = t0.elapsed();
    let runs = loop {
        let runs: Vec<Value> = agent
            .get(&format!("{base}/api/testruns"))
            .call()
            .expect("list")
            .into_json()
            .expect("json");
        let done = runs
            .iter()
            .filter(|r| !matches!(r["status"].as_str(), Some("created" | "running")))
            .count();
        if done == RUNS as usize {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = t0.elapsed().as_secs_f64();
    let ok = runs.iter().filter(|r| r["status"] == "succeeded").count();
    let mut queue: Vec<f64> = runs
        .iter()
        .filter_map(|r| ms_between(&r["created_at"], &r["started_at"]))
        .collect();
    let mut total: Vec<f64> = runs
        .iter()
        .filter_map(|r| ms_between(&r["created_at"], &r["finished_at"]))
        .collect();
    println!(
        "{RUNS} short runs, 4 remote workers: {ok} succeeded in {secs:.1} s (queued in {:.1} s) = {:.0} runs/s; \
         queue latency p50 = {:.0} ms, p99 = {:.0} ms; created → finished p50 = {:.0} ms, p99 = {:.0} ms",
        queued.as_secs_f64(),
        RUNS as f64 / secs,
        pct(&mut queue, 0.5),
        pct(&mut queue, 0.99),
        pct(&mut total, 0.5),
        pct(&mut total, 0.99),
    );
    // Unloaded: one run at a time, so the figure is the dispatch path itself
    // (publish, XREADGROUP, claim), not a backlog draining.
    let mut idle = Vec::new();
    for i in 0..200 {
        let run: Value = agent
            .post(&format!("{base}/api/testruns"))
            .send_json(json!({"username": "bench", "env_id": 1 + i % 4, "path": "./tests/test_a.py"}))
            .expect("queue")
            .into_json()
            .expect("json");
        let id = run["id"].as_i64().expect("id");
        let done = loop {
            let v: Value = agent
                .get(&format!("{base}/api/testruns/{id}"))
                .call()
                .expect("get")
                .into_json()
                .expect("json");
            if !matches!(v["status"].as_str(), Some("created" | "running")) {
                break v;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        idle.extend(ms_between(&done["created_at"], &done["started_at"]));
    }
    println!(
        "one run at a time, 4 idle remote workers: queue latency (created → started) p50 = {:.1} ms, p99 = {:.1} ms",
        pct(&mut idle, 0.5),
        pct(&mut idle, 0.99),
    );
}

fn bench_line_delay() {
    let dir = project(&[("test_ticks.py", common::TICKS_TEST)]);
    let mut embedded = {
        let (_server, base, port) = server(dir.path(), &["--workers", "1"]);
        common::line_delays(&base, port)
    };
    let mut remote = {
        let (_redis, url) = redis();
        let (_server, base, port) = server(dir.path(), &["--redis", &url, "--workers", "0"]);
        let _worker = worker(dir.path(), &base, &url, "bench");
        common::line_delays(&base, port)
    };
    let (e50, e99) = (pct(&mut embedded, 0.5), pct(&mut embedded, 0.99));
    let (r50, r99) = (pct(&mut remote, 0.5), pct(&mut remote, 0.99));
    println!(
        "line to /ws follower ({} lines): embedded p50 = {e50:.2} ms, p99 = {e99:.2} ms; \
         remote worker p50 = {r50:.2} ms, p99 = {r99:.2} ms; extra through the worker p50 = {:.2} ms, p99 = {:.2} ms",
        remote.len(),
        r50 - e50,
        r99 - e99,
    );
}

fn bench_million() {
    let test = "import sys\n\ndef test_flood():\n    w = sys.stdout.write\n    pad = 'x' * 86\n    for i in range(1_000_000):\n        w(f'{i:09d} {pad}\\n')\n";
    let dir = project(&[("test_flood.py", test)]);
    let (_redis, url) = redis();
    let (server, base, _) = server(dir.path(), &["--redis", &url, "--workers", "0"]);
    let worker = worker(dir.path(), &base, &url, "flood");
    let t = Instant::now();
    let run: Value = ureq::post(&format!("{base}/api/testruns"))
        .send_json(json!({"username": "bench", "env_id": 1, "path": "./tests/test_flood.py"}))
        .expect("queue")
        .into_json()
        .expect("json");
    let id = run["id"].as_i64().expect("id");
    let run = common::wait_done(&base, id);
    let secs = t.elapsed().as_secs_f64();
    let total = run["lines"].as_u64().unwrap_or(0);
    println!(
        "1,000,000 lines through a remote worker: status {}, {total} lines stored in {secs:.1} s = {:.0} lines/s; \
         peak RSS server = {:.1} MB, worker = {:.1} MB",
        run["status"],
        total as f64 / secs,
        status_kb(server.pid(), "VmHWM:") as f64 / 1024.0,
        status_kb(worker.0.id(), "VmHWM:") as f64 / 1024.0,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("remote: bench");
        return;
    }
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if want("throughput") {
        bench_throughput();
    }
    if want("line_delay") {
        bench_line_delay();
    }
    if want("million") {
        bench_million();
    }
}

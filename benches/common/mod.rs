//! What both benchmarks need: the real binary started on a free port, a
//! temporary project of test files, percentiles and `/proc` memory figures.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under measurement (release build under `cargo bench`).
pub const BIN: &str = env!("CARGO_BIN_EXE_testscheduler");

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server on `dir` with `extra` flags; returns it and the time from
/// spawning it to its first `200` on `/healthz`.
pub fn start(dir: &Path, extra: &[&str]) -> (Server, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--project-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let base = line.trim().trim_start_matches("listening on ").to_string();
    let port = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
    (Server { child, base, port }, t0.elapsed())
}

/// A project directory with `tests/NAME` files.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
    for (name, body) in files {
        std::fs::write(dir.path().join("tests").join(name), body).expect("write");
    }
    dir
}

/// The `p` quantile (0 to 1) of `v`.
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A `kB` field of `/proc/PID/status`, e.g. `VmRSS:` or `VmHWM:` (peak RSS).
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A test printing its clock (ns since the epoch) every 5 ms, 1,000 times.
pub const TICKS_TEST: &str = "import time\n\ndef test_ticks():\n    print()\n    for _ in range(1000):\n        print(time.time_ns(), flush=True)\n        time.sleep(0.005)\n";

/// Follows one run of `test_ticks.py` and returns each line's delay, in ms.
pub fn line_delays(base: &str, port: u16) -> Vec<f64> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream).expect("handshake");
    let run: Value = ureq::post(&format!("{base}/api/testruns"))
        .send_json(json!({"username": "bench", "env_id": 1, "path": "./tests/test_ticks.py"}))
        .expect("queue")
        .into_json()
        .expect("json");
    let id = run["id"].as_i64().expect("id");
    ws.send(tungstenite::Message::Text(
        json!({"op": "follow", "id": id}).to_string().into(),
    ))
    .expect("follow");
    let mut lat = Vec::new();
    loop {
        let msg = ws.read().expect("read");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as f64;
        let tungstenite::Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).expect("json");
        match v["event"].as_str() {
            Some("logLines") => {
                for l in v["lines"].as_array().expect("lines") {
                    if let Ok(ns) = l.as_str().unwrap_or("").trim().parse::<f64>() {
                        lat.push((now - ns) / 1e6);
                    }
                }
            }
            Some("logEnd") => return lat,
            _ => {}
        }
    }
}

/// Queues a run of `path` on environment `env`; its id.
pub fn queue(base: &str, env: u32, path: &str) -> i64 {
    let v: Value = ureq::post(&format!("{base}/api/testruns"))
        .send_json(json!({"username": "bench", "env_id": env, "path": path}))
        .expect("queue")
        .into_json()
        .expect("json");
    v["id"].as_i64().expect("id")
}

/// Waits until run `id` has finished; the run.
pub fn wait_done(base: &str, id: i64) -> Value {
    loop {
        let v: Value = ureq::get(&format!("{base}/api/testruns/{id}"))
            .call()
            .expect("get")
            .into_json()
            .expect("json");
        if !matches!(v["status"].as_str(), Some("queued" | "created" | "running")) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

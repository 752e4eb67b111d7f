//! What both benchmarks need: the real binary started on a free port, a
//! temporary project of test files, percentiles and `/proc` memory figures.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

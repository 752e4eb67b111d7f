//! Benchmarks of the server's targets (PRODUCT.md "Targets"), printed as figures.
//! Run with `cargo bench --bench server`; not part of the test suite.
//!
//! - start to first 200, idle RSS
//! - `GET /api/testruns?limit=50` and the unparameterised list with 10,000 runs
//! - a printed line reaching a `/ws` follower (p50/p99)
//! - 1,000,000 lines of ~100 bytes: lines/s, every line stored, server peak RSS

mod common;

use common::{pct, project, queue, start, status_kb, wait_done};
use serde_json::Value;
use std::time::{Duration, Instant};

fn bench_idle() {
    let dir = project(&[("test_a.py", "def test_a():\n    pass\n")]);
    let mut starts = Vec::new();
    for i in 0..5 {
        let db = dir.path().join(format!("idle-{i}.db"));
        let db = db.to_string_lossy().to_string();
        let (server, startup) = start(dir.path(), &["--database", &db]);
        starts.push(startup.as_secs_f64() * 1e3);
        if i == 4 {
            std::thread::sleep(Duration::from_secs(1));
            let rss = status_kb(server.pid(), "VmRSS:");
            println!(
                "idle: start to first 200 (fresh database, 5 starts) p50 = {:.1} ms, max = {:.1} ms; idle RSS = {:.1} MB",
                pct(&mut starts, 0.5),
                pct(&mut starts, 1.0),
                rss as f64 / 1024.0
            );
        }
    }
}

fn bench_list() {
    let dir = project(&[("test_a.py", "def test_a():\n    pass\n")]);
    let db = dir.path().join("bench.db");
    let db_arg = db.to_string_lossy().to_string();
    drop(start(dir.path(), &["--database", &db_arg, "--workers", "0"]));
    {
        let mut conn = rusqlite::Connection::open(&db).expect("db");
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO runs (username, env_id, path, status, created_at, started_at, finished_at, exit_code, timeout_s, line_count, holds_env)
                     VALUES (?1, ?2, './tests/test_a.py', ?3, '2026-11-25T07:24:00.123456+00:00', '2026-11-25T07:24:01.000000+00:00', '2026-11-25T07:25:00.000000+00:00', 0, 3600, 120, 0)",
                )
                .expect("prepare");
            for i in 0..10_000u32 {
                let status = if i % 7 == 0 { "failed" } else { "succeeded" };
                stmt.execute(rusqlite::params![format!("user{}", i % 13), i % 100 + 1, status])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let (server, _) = start(dir.path(), &["--database", &db_arg, "--workers", "0"]);
    let agent = ureq::AgentBuilder::new().build();
    let time = |path: &str, n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                let body = agent
                    .get(&format!("{}{path}", server.base))
                    .call()
                    .expect("list")
                    .into_string()
                    .expect("body");
                assert!(body.len() > 2);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    };
    let _ = time("/api/testruns?limit=50", 20);
    let mut page = time("/api/testruns?limit=50", 500);
    let mut filtered = time("/api/testruns?limit=50&user=user3&before=5000", 200);
    let mut all = time("/api/testruns", 30);
    println!(
        "list, 10,000 runs: ?limit=50 p50 = {:.2} ms, p99 = {:.2} ms; filtered page p50 = {:.2} ms; whole list p50 = {:.1} ms",
        pct(&mut page, 0.5),
        pct(&mut page, 0.99),
        pct(&mut filtered, 0.5),
        pct(&mut all, 0.5)
    );
}

fn bench_latency() {
    let dir = project(&[("test_ticks.py", common::TICKS_TEST)]);
    let (server, _) = start(dir.path(), &["--workers", "1"]);
    let mut lat = common::line_delays(&server.base, server.port);
    println!(
        "line to /ws follower ({} lines, embedded pool): p50 = {:.2} ms, p99 = {:.2} ms, max = {:.2} ms",
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
}

fn bench_million() {
    let test = "import sys\n\ndef test_flood():\n    w = sys.stdout.write\n    pad = 'x' * 86\n    for i in range(1_000_000):\n        w(f'{i:09d} {pad}\\n')\n";
    let dir = project(&[("test_flood.py", test)]);
    let (server, _) = start(dir.path(), &["--workers", "1"]);
    let id = queue(&server.base, 1, "./tests/test_flood.py");
    let t = Instant::now();
    let run = wait_done(&server.base, id);
    let secs = t.elapsed().as_secs_f64();
    let total = run["lines"].as_u64().unwrap_or(0);
    let v: Value = ureq::get(&format!("{}/api/testruns/{id}/lines?from=1000000&limit=3", server.base))
        .call()
        .expect("lines")
        .into_json()
        .expect("json");
    let peak = status_kb(server.pid(), "VmHWM:");
    println!(
        "1,000,000 lines: status {}, {} lines stored in {:.1} s = {:.0} lines/s; server peak RSS = {:.1} MB; line 1,000,000 = {}",
        run["status"],
        total,
        secs,
        total as f64 / secs,
        peak as f64 / 1024.0,
        v["lines"][0]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("server: bench");
        return;
    }
    bench_idle();
    bench_list();
    bench_latency();
    bench_million();
}

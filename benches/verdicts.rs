//! Benchmark of the verdicts (issue 12), printed as figures. Run with
//! `cargo bench --bench verdicts`; not part of the test suite.
//!
//! - `GET /api/verdicts` over 10,000 finished runs of ~20 tests each (a mix
//!   of healthy, flaky, env_suspect, broken and skipped histories on 10
//!   environments, a new revision every 100 runs): p50/p99 over 50 requests,
//!   target p50 < 50 ms
//! - the same over a wide suite: 1,000 runs of 500 tests
//! - `GET /api/results/history?limit=50` p50/p99

mod common;

use common::{pct, project, start};
use rusqlite::params;
use std::path::Path;
use std::time::Instant;

/// The outcome of test `t` in run `i` of `runs` on environment `env`.
fn outcome(t: usize, i: usize, runs: usize, env: u32) -> &'static str {
    match t {
        // flaky: fails on every other run on env 1
        0 | 1 if env == 1 && (i / 10).is_multiple_of(2) => "failed",
        // env_suspect: always fails on env 5
        2..=4 if env == 5 => "failed",
        // broken: fails everywhere in the last 50 runs
        5 if i + 50 >= runs => "error",
        6 | 7 => "skipped",
        8 => "xfailed",
        _ => "passed",
    }
}

/// Writes `runs` finished runs of `tests` tests each into a fresh database at `db`.
fn fill(db: &Path, runs: usize, tests: usize) {
    let store = testscheduler::store::Store::open(db).expect("open the database");
    let mut conn = store.conn().expect("conn");
    let tx = conn.transaction().expect("transaction");
    {
        let mut run = tx
            .prepare(
                "INSERT INTO runs (username, env_id, path, status, created_at, started_at, finished_at, exit_code,
                                   timeout_s, holds_env, revision_commit, revision_dirty)
                 VALUES ('bench', ?1, './tests/', 'failed', ?2, ?2, ?2, 1, 60, 0, ?3, 0)",
            )
            .expect("prepare");
        let mut result = tx
            .prepare(
                "INSERT INTO test_results (run_id, seq, nodeid, outcome, duration_s, message, line)
                 VALUES (?1, ?2, ?3, ?4, 0.01, NULL, ?2)",
            )
            .expect("prepare");
        let names: Vec<String> = (0..tests)
            .map(|t| format!("tests/test_m{}.py::TestK::test_{t}[p]", t % 10))
            .collect();
        for i in 0..runs {
            let env = (i % 10) as u32 + 1;
            let at = format!(
                "2026-11-{:02}T{:02}:{:02}:00.000000+00:00",
                1 + i / 1440 % 28,
                i / 60 % 24,
                i % 60
            );
            let commit = format!("{:040x}", i / 100);
            run.execute(params![env, at, commit]).expect("insert run");
            let id = tx.last_insert_rowid();
            for (t, name) in names.iter().enumerate() {
                result
                    .execute(params![id, t as i64, name, outcome(t % 20, i, runs, env)])
                    .expect("insert result");
            }
        }
    }
    tx.commit().expect("commit");
}

/// p50 and p99 in ms of `n` GETs of `url`, and the last body.
fn time_get(url: &str, n: usize) -> (f64, f64, String) {
    let mut times = Vec::new();
    let mut body = String::new();
    for _ in 0..n {
        let t = Instant::now();
        body = ureq::get(url).call().expect("GET").into_string().expect("body");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (pct(&mut times, 0.5), pct(&mut times, 0.99), body)
}

fn measure(label: &str, runs: usize, tests: usize) {
    let dir = project(&[("test_a.py", "def test_a():\n    pass\n")]);
    let db = dir.path().join("bench.db");
    let t = Instant::now();
    fill(&db, runs, tests);
    println!(
        "{label}: filled {runs} runs x {tests} tests ({} results) in {:.1} s",
        runs * tests,
        t.elapsed().as_secs_f64()
    );
    let db_arg = db.display().to_string();
    let (server, _) = start(dir.path(), &["--database", &db_arg, "--workers", "0"]);
    let url = format!("{}/api/verdicts", server.base);
    let _ = time_get(&url, 3);
    let (p50, p99, body) = time_get(&url, 50);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let count = |verdict: &str| {
        v["tests"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|t| t["verdict"] == verdict).count())
    };
    println!(
        "{label}: GET /api/verdicts p50 {p50:.1} ms, p99 {p99:.1} ms (target p50 < 50 ms); \
         {} flaky, {} env_suspect, {} broken, suspect envs {}",
        count("flaky"),
        count("env_suspect"),
        count("broken"),
        v["envs"].as_array().map_or(0, Vec::len)
    );
    let url = format!(
        "{}/api/results/history?nodeid=tests/test_m0.py::TestK::test_0%5Bp%5D&limit=50",
        server.base
    );
    let (p50, p99, _) = time_get(&url, 50);
    println!("{label}: GET /api/results/history?limit=50 p50 {p50:.1} ms, p99 {p99:.1} ms");
}

fn main() {
    measure("10,000 runs", 10_000, 20);
    measure("wide suite", 1_000, 500);
}

//! Benchmark of the queue (issue "Environments and the queue"), printed as
//! figures. Run with `cargo bench --bench queue`; not part of the test suite.
//!
//! - 1,000 runs queued at once on 10 environments with a short command: all
//!   run, none twice, order per environment kept; the scheduler's added delay
//!   between one run's end and the next run's start on that environment
//!   (p50/p99, target p99 < 50 ms on the embedded pool)
//! - ETA error for a path with steady durations (target within 20 %)

mod common;

use common::{pct, project, start};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn ms(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().expect("a moment"))
        .expect("RFC 3339")
        .timestamp_millis()
}

fn submit(base: &str, body: Value) -> Value {
    ureq::post(&format!("{base}/api/testruns"))
        .send_json(body)
        .expect("submit")
        .into_json()
        .expect("json")
}

fn all_runs(base: &str) -> Vec<Value> {
    let v: Value = ureq::get(&format!("{base}/api/testruns"))
        .call()
        .expect("list")
        .into_json()
        .expect("json");
    v.as_array().cloned().unwrap_or_default()
}

fn finished(run: &Value) -> bool {
    !matches!(run["status"].as_str(), Some("queued" | "created" | "running"))
}

fn bench_thousand_runs() {
    let dir = project(&[("test_a.py", "def test_a():\n    pass\n")]);
    let (server, _) = start(
        dir.path(),
        &["--envs", "1-10", "--workers", "10", "--command", "true {path}"],
    );
    let base = &server.base;
    let t0 = Instant::now();
    for i in 0..1000u32 {
        submit(
            base,
            json!({"username": "bench", "env_id": i % 10 + 1, "path": "./tests/", "wait": true}),
        );
    }
    let submitted = t0.elapsed();
    let runs = loop {
        let runs = all_runs(base);
        if runs.len() == 1000 && runs.iter().all(finished) {
            break runs;
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "the queue did not drain");
        std::thread::sleep(Duration::from_millis(100));
    };
    let total = t0.elapsed();
    let mut per_env: HashMap<u64, Vec<&Value>> = HashMap::new();
    for r in &runs {
        assert_eq!(r["status"], "succeeded", "{r}");
        per_env.entry(r["env_id"].as_u64().expect("env")).or_default().push(r);
    }
    let mut gaps = Vec::new();
    for list in per_env.values_mut() {
        list.sort_by_key(|r| r["id"].as_i64());
        for pair in list.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                ms(&a["started_at"]) <= ms(&b["started_at"]),
                "order kept on one environment"
            );
            gaps.push((ms(&b["started_at"]) - ms(&a["finished_at"])) as f64);
        }
    }
    println!(
        "1,000 runs on 10 environments: submitted in {:.2} s, all ran once in {:.2} s",
        submitted.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "added delay from a run's end to the next start on its environment: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&mut gaps, 0.5),
        pct(&mut gaps, 0.99),
        pct(&mut gaps, 1.0)
    );
}

fn bench_eta() {
    let dir = project(&[("test_a.py", "def test_a():\n    pass\n")]);
    let (server, _) = start(dir.path(), &["--envs", "1", "--workers", "1", "--command", "sleep 0.4"]);
    let base = &server.base;
    // History: the path's steady duration.
    for _ in 0..5 {
        let r = submit(
            base,
            json!({"username": "bench", "env_id": 1, "path": "./tests/", "wait": true}),
        );
        let id = r["id"].as_i64().expect("id");
        while !all_runs(base).iter().any(|x| x["id"] == id && finished(x)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut asked = Vec::new();
    for _ in 0..6 {
        let now = chrono::Utc::now().timestamp_millis();
        let r = submit(
            base,
            json!({"username": "bench", "env_id": 1, "path": "./tests/", "wait": true}),
        );
        asked.push((r["id"].as_i64().expect("id"), now, r["eta"].clone()));
    }
    let runs = loop {
        let runs = all_runs(base);
        if runs.iter().all(finished) {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut errors = Vec::new();
    for (id, at, eta) in asked {
        if eta.is_null() {
            continue; // the first one started at once
        }
        let run = runs.iter().find(|r| r["id"] == id).expect("run");
        let (eta, actual) = (ms(&eta), ms(&run["started_at"]));
        let wait = (actual - at).max(1) as f64;
        errors.push(((eta - actual).abs() as f64) / wait * 100.0);
    }
    println!(
        "ETA error for a steady 0.4 s path, 5 queued behind a holder: median {:.1} %, max {:.1} % of the wait",
        pct(&mut errors.clone(), 0.5),
        pct(&mut errors, 1.0)
    );
}

fn main() {
    bench_thousand_runs();
    bench_eta();
}

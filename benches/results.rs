//! Benchmark of per-test results (issue 12), printed as figures. Run with
//! `cargo bench --bench results`; not part of the test suite.
//!
//! On a generated passing suite of `BENCH_TESTS` tests (default 20,000):
//! - from the end of the run's process to its results stored (the run's
//!   `finished_at`, stamped in the transaction that stores them), plus the
//!   time of one `GET /api/testruns/{id}/results` (target < 1 s together);
//! - a run's end-to-end time with and without `{junit}` (target < 5 % added).

mod common;

use common::{project, start, wait_done};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs pytest (with `--junitxml` unless the first argument is `-`), then
/// writes the moment its process ended (ms since the epoch) to `END_FILE`.
const WRAPPER: &str = r#"import os, subprocess, sys, time
junit, path = sys.argv[1], sys.argv[2]
args = [sys.executable, "-m", "pytest", "--color=yes", "-vv", "--capture=no", "-p", "no:cacheprovider"]
if junit != "-":
    args += ["-o", "junit_family=xunit1", "--junitxml=" + junit]
code = subprocess.call(args + [path])
open(os.environ["END_FILE"], "w").write(str(time.time() * 1000))
sys.exit(code)
"#;

fn ms(t: &Value) -> f64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().expect("a moment"))
        .expect("RFC 3339")
        .timestamp_micros() as f64
        / 1000.0
}

/// One run of the suite with `command`; (wall time, end→stored ms, GET ms, total tests).
fn one_run(dir: &std::path::Path, command: &str, env: u32) -> (Duration, f64, f64, u64) {
    let end_file = dir.join(format!("end-{env}.txt"));
    std::env::set_var("END_FILE", &end_file);
    let (server, _) = start(dir, &["--workers", "1", "--command", command]);
    let base = &server.base;
    let t0 = Instant::now();
    let id = common::queue(base, env, "./tests/test_many.py");
    let run = wait_done(base, id);
    let wall = t0.elapsed();
    let ended: f64 = std::fs::read_to_string(&end_file)
        .expect("the wrapper wrote its end")
        .trim()
        .parse()
        .expect("a moment");
    let stored = ms(&run["finished_at"]) - ended;
    let t1 = Instant::now();
    let body: Value = ureq::get(&format!("{base}/api/testruns/{id}/results"))
        .call()
        .expect("results")
        .into_json()
        .expect("json");
    let get = t1.elapsed().as_secs_f64() * 1000.0;
    let n = body["tests"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(run["summary"]["total"].as_u64(), Some(n), "{}", run["summary"]);
    (wall, stored, get, n)
}

fn main() {
    let tests: u64 = std::env::var("BENCH_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let suite = format!("import pytest\n\n@pytest.mark.parametrize('i', range({tests}))\ndef test_n(i):\n    pass\n");
    let dir = project(&[("test_many.py", &suite)]);
    std::fs::write(dir.path().join("wrap.py"), WRAPPER).expect("write wrapper");
    println!("results benchmark: a passing suite of {tests} tests");
    let (with_wall, stored, get, n) = one_run(dir.path(), "python3 wrap.py {junit} {path}", 1);
    assert_eq!(n, tests);
    println!("  run end → results stored: {stored:.0} ms; GET /results ({n} tests): {get:.0} ms; together {:.0} ms (target < 1000 ms)", stored + get);
    let (without_wall, stored_live, _, _) = one_run(dir.path(), "python3 wrap.py - {path}", 2);
    println!("  without {{junit}} (live counts only): run end → stored {stored_live:.0} ms");
    let added = (with_wall.as_secs_f64() / without_wall.as_secs_f64() - 1.0) * 100.0;
    println!(
        "  end to end: {:.2} s with {{junit}}, {:.2} s without: {added:+.1} % (target < 5 %)",
        with_wall.as_secs_f64(),
        without_wall.as_secs_f64()
    );
}

//! Benchmark of compacted logs (issue 13, step 1), printed as figures. Run
//! with `cargo bench --bench logstore`; not part of the test suite.
//!
//! A finished run with a 1,000,000-line pytest-like log is written as rows,
//! the database's size is taken (after `VACUUM`), the log is compacted into
//! zstd chunks (`store::compact::pass`, as the server's compactor does) and
//! the size taken again. Then the real server serves that database:
//! `/lines?limit=1000` from random places and `/search` over the whole log,
//! p50 and p99 (targets: size ≤ 15 % of the raw text, `/lines` p50 < 20 ms,
//! `/search` p50 < 300 ms).

mod common;

use common::{pct, project, start};
use serde_json::Value;
use std::time::Instant;
use testscheduler::store::{compact, logs, Store};

const LINES: u64 = 1_000_000;

/// A deterministic pytest-like line: results, captured log lines, failures
/// with their tracebacks, numbers that vary.
fn line(i: u64, seed: &mut u64) -> String {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let r = *seed >> 33;
    let pct = i * 100 / LINES;
    match r % 10 {
        0..=3 => format!(
            "tests/unit/test_module_{}.py::TestClass{}::test_case_{} \u{1b}[32mPASSED\u{1b}[0m{:>20}[{pct:3}%]",
            r % 97,
            r % 13,
            i,
            ""
        ),
        4..=6 => format!(
            "2026-12-02 00:{:02}:{:02},{:03} INFO     worker-{} processed item {} in {:.4}s",
            (r >> 3) % 60,
            (r >> 9) % 60,
            (r >> 15) % 1000,
            r % 8,
            r % 1_000_003,
            (r % 10_000) as f64 / 1e4
        ),
        7 => format!("    def test_case_{i}(self, fixture_{}):", r % 17),
        8 => format!("E       AssertionError: assert {} == {}", r % 1000, (r >> 10) % 1000),
        _ => format!("src/pkg/module_{}.py:{}: in function_{}", r % 41, r % 900, r % 57),
    }
}

fn file_size(conn: &rusqlite::Connection, db: &std::path::Path) -> u64 {
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("vacuum");
    std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
}

fn mb(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let dir = project(&[("test_x.py", "def test_x():\n    pass\n")]);
    let db = dir.path().join("ts.db");
    let store = Store::open(&db).expect("store");
    let conn = store.dedicated().expect("conn");
    conn.execute(
        "INSERT INTO runs (username, env_id, path, status, created_at, finished_at, timeout_s, holds_env)
         VALUES ('bench', 1, './tests/test_x.py', 'succeeded', 'x', 'x', 60, 0)",
        [],
    )
    .expect("run");
    let empty = file_size(&conn, &db);
    let mut seed = 7;
    let mut raw = 0u64;
    let mut from = 0;
    while from < LINES {
        let batch: Vec<String> = (from..(from + 8192).min(LINES)).map(|i| line(i, &mut seed)).collect();
        raw += batch.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
        conn.execute_batch("BEGIN").expect("begin");
        logs::append(&conn, 1, from, &batch).expect("append");
        conn.execute_batch("COMMIT").expect("commit");
        from += batch.len() as u64;
    }
    let rows = file_size(&conn, &db) - empty;
    let deadline = || Instant::now() + std::time::Duration::from_secs(10);
    let t = Instant::now();
    let found = logs::search(&conn, 1, "test_case_777777 ", 10, deadline()).expect("search");
    let rows_search = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let chunks = compact::pass(&conn).expect("compact");
    let compact_s = t.elapsed().as_secs_f64();
    let packed = file_size(&conn, &db) - empty;
    let t = Instant::now();
    let again = logs::search(&conn, 1, "test_case_777777 ", 10, deadline()).expect("search");
    let chunk_search = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(found, again, "the same matches from rows and chunks");
    println!("log of {LINES} pytest-like lines, {:.1} MB of text", mb(raw));
    println!(
        "  in the database as rows:   {:7.1} MB ({:.0} % of the text)",
        mb(rows),
        rows as f64 * 100.0 / raw as f64
    );
    println!(
        "  as {chunks} zstd chunks:      {:7.1} MB ({:.1} % of the text), compacted in {compact_s:.1} s",
        mb(packed),
        packed as f64 * 100.0 / raw as f64
    );
    println!("  in-process search: rows {rows_search:.0} ms, chunks {chunk_search:.0} ms");
    drop(conn);
    drop(store);

    let db_arg = db.to_str().expect("utf-8 path");
    let (server, _) = start(dir.path(), &["--database", db_arg, "--workers", "1"]);
    let base = &server.base;
    let mut seed = 11u64;
    let mut lines_ms = Vec::new();
    for _ in 0..200 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let from = (seed >> 33) % (LINES - 1000);
        let t = Instant::now();
        let page: Value = ureq::get(&format!("{base}/api/testruns/1/lines?from={from}&limit=1000"))
            .call()
            .expect("lines")
            .into_json()
            .expect("json");
        lines_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(page["lines"].as_array().map(Vec::len), Some(1000));
    }
    let mut search_ms = Vec::new();
    for q in [
        "test_case_777777%20",
        "AssertionError:%20assert%20999%20==%20998",
        "no%20such%20text",
        "PASSED",
    ] {
        for _ in 0..5 {
            let t = Instant::now();
            let found: Value = ureq::get(&format!("{base}/api/testruns/1/search?q={q}&limit=100"))
                .call()
                .expect("search")
                .into_json()
                .expect("json");
            search_ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(found["complete"], true, "{q}");
        }
    }
    println!(
        "  /lines?limit=1000 from random places: p50 {:.1} ms, p99 {:.1} ms (200 reads)",
        pct(&mut lines_ms, 0.5),
        pct(&mut lines_ms, 0.99)
    );
    println!(
        "  /search over the whole log: p50 {:.0} ms, p99 {:.0} ms (20 searches, 4 needles)",
        pct(&mut search_ms, 0.5),
        pct(&mut search_ms, 0.99)
    );
}

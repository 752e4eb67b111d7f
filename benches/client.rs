//! `submit --follow` throughput (PRODUCT.md / issue 13 "Measured"): lines/s of
//! a 1M-line run's log printed by the terminal client to `/dev/null`, against
//! `cat` of the same log. Run with `cargo bench --bench client`; not in CI.
//!
//! Three figures: the client following the finished run (`logs ID --follow`,
//! the same code path `submit --follow` uses: what is stored already comes
//! over `log.txt`, then `/ws` to the end; bound by the client and server
//! only, measured once the log is compacted), `submit --follow` of a live
//! 1M-line run (bound by the run's own printing), and `cat` of the stored log.

mod common;

use common::{project, start};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Instant;

const LINES: u64 = 1_000_000;

fn devnull() -> Stdio {
    Stdio::from(std::fs::File::create("/dev/null").expect("/dev/null"))
}

fn main() {
    let test = format!(
        "def test_many():\n    import sys\n    w = sys.stdout.write\n    for i in range({LINES}):\n        w(f'tests/test_many.py::test_case_{{i:07d}} \\033[32mPASSED\\033[0m [ {{i * 100 // {LINES}:3d}}%]\\n')\n"
    );
    let dir = project(&[("test_many.py", &test)]);
    let db = dir.path().join("bench.db");
    let db = db.to_string_lossy().to_string();
    let (server, _) = start(dir.path(), &["--database", &db, "--workers", "1"]);

    // submit --follow of the live run: ends when the run ends.
    let t0 = Instant::now();
    let status = Command::new(common::BIN)
        .args([
            "submit",
            "--env",
            "1",
            "--path",
            "./tests/test_many.py",
            "--user",
            "bench",
            "--follow",
        ])
        .args(["--server", &server.base])
        .stdout(devnull())
        .stderr(Stdio::null())
        .status()
        .expect("submit --follow");
    let live = t0.elapsed().as_secs_f64();
    assert_eq!(status.code(), Some(0), "the run succeeded");
    let runs: Value = ureq::get(&format!("{}/api/testruns?limit=1", server.base))
        .call()
        .expect("runs")
        .into_json()
        .expect("json");
    let id = runs[0]["id"].as_i64().expect("id");
    let total = runs[0]["lines"].as_u64().expect("lines");

    // The follow below reads the compacted log, as it will be from then on.
    let compacted = || {
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.query_row("SELECT count(*) FROM log_lines WHERE run_id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .ok()
        .map(|rows| rows == 0)
    };
    let t0 = Instant::now();
    while compacted() != Some(true) && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let log = dir.path().join("run.log");
    let mut file = std::fs::File::create(&log).expect("log file");
    let resp = ureq::get(&format!("{}/api/testruns/{id}/log.txt", server.base))
        .call()
        .expect("log.txt");
    std::io::copy(&mut resp.into_reader(), &mut file).expect("save the log");
    let bytes = std::fs::metadata(&log).expect("log size").len();

    let mut follow = f64::MAX;
    let mut cat = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let status = Command::new(common::BIN)
            .args(["logs", &id.to_string(), "--follow", "--server", &server.base])
            .stdout(devnull())
            .stderr(Stdio::null())
            .status()
            .expect("logs --follow");
        assert_eq!(status.code(), Some(0));
        follow = follow.min(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        Command::new("cat").arg(&log).stdout(devnull()).status().expect("cat");
        cat = cat.min(t0.elapsed().as_secs_f64());
    }
    let rate = |secs: f64| total as f64 / secs;
    println!("client: a {total}-line run ({:.1} MB of log)", bytes as f64 / 1e6);
    println!(
        "client: follow of the stored log to /dev/null: {:.2} s = {:.0} lines/s (best of 3)",
        follow,
        rate(follow)
    );
    println!(
        "client: cat of the same log to /dev/null: {:.3} s = {:.0} lines/s (best of 3); follow/cat = {:.3}x",
        cat,
        rate(cat),
        cat / follow
    );
    println!(
        "client: submit --follow of the live run (printing included): {:.2} s = {:.0} lines/s",
        live,
        rate(live)
    );
}

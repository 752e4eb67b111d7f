//! `testscheduler backup FILE`: a consistent copy of a live database, taken
//! while a run writes lines; a server started on the copy serves its runs.

use crate::helpers::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_backup_under_load_is_consistent_and_a_server_runs_on_it() {
    let app = spawn_app_with(Opts::default().env("LINES", "400000"));
    let done = app.queue(2, "./tests/test_quick.py")["id"].as_i64().expect("id");
    app.wait_finished(done, Duration::from_secs(60));
    let busy = app.queue(1, "./tests/test_lines.py")["id"].as_i64().expect("id");
    app.wait_run(busy, Duration::from_secs(120), |r| {
        r["lines"].as_u64().unwrap_or(0) > 1000
    });
    let copy = app.path().join("copy.db");
    let out = Command::new(BIN)
        .args(["backup"])
        .arg(&copy)
        .arg("--database")
        .arg(&app.db)
        .output()
        .expect("run backup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, during) = app.get(&format!("/api/testruns/{busy}"));
    assert_eq!(
        during["status"], "running",
        "the backup was taken while the run wrote lines"
    );

    let conn = rusqlite::Connection::open(&copy).expect("open the copy");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let copied_lines: i64 = conn
        .query_row("SELECT line_count FROM runs WHERE id = ?1", [busy], |r| r.get(0))
        .expect("the busy run is in the copy");
    assert!(copied_lines > 1000, "{copied_lines}");
    drop(conn);
    assert!(!app.path().join("copy.db-wal").exists(), "the copy stands alone");

    // Restore as README says: stop the server, copy the file back, start it.
    let mut other = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    other.kill();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", other.db.display()));
    }
    std::fs::copy(&copy, &other.db).expect("restore the copy");
    other.start().expect("a server starts on the copy");
    let (status, run) = other.get(&format!("/api/testruns/{done}"));
    assert_eq!(status, 200);
    assert_eq!(run["status"], "succeeded");
    let lines = other.log_lines(done);
    assert!(lines.iter().any(|l| l.contains("green line")), "{lines:?}");
    let (status, run) = other.get(&format!("/api/testruns/{busy}"));
    assert_eq!(status, 200);
    assert!(run["lines"].as_i64().expect("lines") >= copied_lines);
}

#[test]
fn backup_names_a_missing_database() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(BIN)
        .args(["backup", "x.db", "--project-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database") && err.contains("testscheduler.db"), "{err}");
    let out = Command::new(BIN).args(["backup"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FILE"));
}

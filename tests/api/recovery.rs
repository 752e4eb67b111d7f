//! A killed server: history survives, lost embedded runs end `unknown` with
//! their process groups killed, waiting runs run after the restart, and the
//! schema moves forward (never backward).

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Adds `tests/test_hang.py`, which writes its pid to the returned file,
/// prints a line and sleeps five minutes.
fn write_hanging_test(app: &TestApp) -> std::path::PathBuf {
    let pid_file = app.path().join("slow.pid");
    std::fs::write(
        app.path().join("tests/test_hang.py"),
        format!(
            "import os, time\n\ndef test_hang():\n    open({:?}, 'w').write(str(os.getpid()))\n    print('hanging', flush=True)\n    time.sleep(300)\n",
            pid_file.display().to_string()
        ),
    )
    .expect("write");
    pid_file
}

/// Waits for the hanging test to write its pid, and reads it.
fn read_pid(pid_file: &std::path::Path) -> i32 {
    wait_until(T, "pid file", || {
        std::fs::read_to_string(pid_file).is_ok_and(|s| !s.is_empty())
    });
    std::fs::read_to_string(pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid")
}

#[test]
fn a_killed_server_recovers_on_restart() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "1"]).env("SLOW_SECONDS", "300"));
    let pid_file = write_hanging_test(&app);
    let done = app.queue(1, "./tests/test_quick.py");
    let done_id = done["id"].as_i64().expect("id");
    app.wait_finished(done_id, T);
    let hang = app.queue(2, "./tests/test_hang.py");
    let hang_id = hang["id"].as_i64().expect("id");
    // Only one embedded worker: this one waits behind the hanging run.
    let waiting = app.queue(3, "./tests/test_quick.py");
    let waiting_id = waiting["id"].as_i64().expect("id");
    let pytest_pid = read_pid(&pid_file);
    // The pid is written before the line is printed: wait for the line to be stored.
    wait_until(T, "the hanging line stored", || {
        app.log_lines(hang_id).iter().any(|l| l.contains("hanging"))
    });
    assert!(alive(pytest_pid));

    app.kill();
    assert!(alive(pytest_pid), "the orphan outlives the killed server");
    app.start().expect("restart");

    let hang = app.wait_finished(hang_id, T);
    assert_eq!(hang["status"], "unknown", "{hang}");
    wait_until(Duration::from_secs(10), "orphaned group killed", || !alive(pytest_pid));
    let lines = app.log_lines(hang_id);
    assert!(
        lines.iter().any(|l| l.contains("hanging")),
        "output before the crash is kept: {lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("server restarted")),
        "{lines:?}"
    );
    // The waiting run simply runs now; history is intact.
    let waiting = app.wait_finished(waiting_id, T);
    assert_eq!(waiting["status"], "succeeded");
    assert_eq!(app.get(&format!("/api/testruns/{done_id}")).1["status"], "succeeded");
    // The environment of the lost run is free again.
    let (status, _) = app.post(
        "/api/testruns",
        json!({"username": "again", "env_id": 2, "path": "./tests/"}),
    );
    assert_eq!(status, 201);
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    app.queue(1, "./tests/");
    app.kill();
    let conn = rusqlite::Connection::open(&app.db).expect("open db");
    conn.pragma_update(None, "user_version", 99).expect("bump version");
    drop(conn);
    let err = app.start().expect_err("must refuse");
    assert!(err.contains("99") && err.contains("newer"), "{err}");
    // Nothing was changed: the version is still the newer one.
    let conn = rusqlite::Connection::open(&app.db).expect("open db");
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, 99);
}

#[test]
fn a_database_from_the_first_schema_is_upgraded_with_its_history() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    app.kill();
    std::fs::remove_file(&app.db).expect("remove fresh db");
    let conn = rusqlite::Connection::open(&app.db).expect("create db");
    conn.execute_batch(include_str!("../../src/store/migrations/0001_initial.sql"))
        .expect("old schema");
    conn.pragma_update(None, "user_version", 1).expect("version 1");
    conn.execute(
        "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s, line_count, holds_env)
         VALUES ('veteran', 4, './tests/', 'succeeded', '2025-01-01T00:00:00.000000+00:00', 60, 1, 0)",
        [],
    )
    .expect("old run");
    conn.execute(
        "INSERT INTO log_lines (run_id, line, text) VALUES (1, 0, 'old output')",
        [],
    )
    .expect("old line");
    drop(conn);
    app.start().expect("starts on an old database");
    let (status, run) = app.get("/api/testruns/1");
    assert_eq!(status, 200);
    assert_eq!(run["username"], "veteran");
    assert_eq!(run["logs"], true);
    assert_eq!(app.log_lines(1), ["old output"]);
    let run = app.queue(4, "./tests/");
    assert_eq!(run["id"], 2);
}

#[test]
fn a_stopped_server_stops_its_runs_and_they_end_unknown() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "1"]));
    let pid_file = write_hanging_test(&app);
    let run = app.queue(2, "./tests/test_hang.py");
    let id = run["id"].as_i64().expect("id");
    let pytest_pid = read_pid(&pid_file);
    let server = nix::unistd::Pid::from_raw(app.pid().expect("running") as i32);
    nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = app.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "a SIGTERMed server exits cleanly: {status:?}");
    assert!(!alive(pytest_pid), "the run's process went with the server");
    app.start().expect("restart");
    let run = app.get(&format!("/api/testruns/{id}")).1;
    assert_eq!(run["status"], "unknown", "{run}");
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("server shut down")),
        "{lines:?}"
    );
}

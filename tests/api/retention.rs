//! Retention against the real binary: `--keep-logs-days` drops the output of
//! old finished runs (410 `log_pruned` on their log endpoints, a `log_pruned`
//! error frame on `/ws`), `--keep-runs-days` deletes old finished runs with
//! their results, and neither touches a run being written meanwhile.
//!
//! Age is set by backdating `finished_at` in the database file (the test
//! writes it with SQLite, before a restart or while the server runs: WAL lets
//! both write); the hidden `--prune-every 1` makes the pruner's periodic pass
//! come within a second instead of 10 minutes.

use crate::helpers::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn db(app: &TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(&app.db).expect("open the database");
    c.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    c
}

/// Sets run `id`'s `finished_at` (and start) `days` days back.
fn backdate(app: &TestApp, id: i64, days: i64) {
    let t = testscheduler::domain::run::timestamp(chrono::Utc::now() - chrono::Duration::days(days));
    let changed = db(app)
        .execute(
            "UPDATE runs SET created_at = ?2, started_at = ?2, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ?2 END WHERE id = ?1",
            rusqlite::params![id, t],
        )
        .expect("backdate");
    assert_eq!(changed, 1);
}

fn finished_run(app: &TestApp) -> i64 {
    let id = app.queue(1, "./tests/test_quick.py")["id"].as_i64().expect("id");
    app.wait_finished(id, T);
    id
}

fn assert_pruned_endpoints(app: &TestApp, id: i64) {
    for path in ["lines", "search?q=green", "log.txt", "logs"] {
        let (status, body, _) = app.get_raw(&format!("/api/testruns/{id}/{path}"), &[]);
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, body["code"].as_str()),
            (410, Some("log_pruned")),
            "{path}: {body}"
        );
    }
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id, "from": 0}));
    let frame = ws.until(T, |v| v["id"].as_i64() == Some(id));
    assert_eq!(
        (frame["event"].as_str(), frame["code"].as_str()),
        (Some("error"), Some("log_pruned")),
        "{frame}"
    );
}

#[test]
fn retention_prunes_exactly_the_old_finished_runs_while_a_run_is_written() {
    let mut app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "600"));
    let ancient = finished_run(&app);
    let old = finished_run(&app);
    let recent = finished_run(&app);
    let later = finished_run(&app);
    app.kill();
    db(&app)
        .execute(
            "INSERT OR REPLACE INTO test_results (run_id, seq, nodeid, outcome) VALUES (?1, 0, 'tests/test_quick.py::test_one', 'passed')",
            [ancient],
        )
        .expect("a result");
    backdate(&app, ancient, 40);
    backdate(&app, old, 10);
    backdate(&app, recent, 1);
    app.args = ["--keep-logs-days", "7", "--keep-runs-days", "30", "--prune-every", "1"]
        .map(String::from)
        .to_vec();
    app.start().expect("restarts with retention");

    // A run printing all along, old by its start: never touched.
    let writing = app.queue(2, "./tests/test_slow.py")["id"].as_i64().expect("id");
    app.wait_run(writing, T, |r| r["lines"].as_u64().unwrap_or(0) > 5);
    backdate(&app, writing, 90);

    wait_until(T, "the pass at start", || {
        app.get(&format!("/api/testruns/{ancient}")).0 == 404
            && app.get(&format!("/api/testruns/{old}")).1["logs_pruned"] == true
    });
    let results: i64 = db(&app)
        .query_row("SELECT count(*) FROM test_results WHERE run_id = ?1", [ancient], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(results, 0, "a deleted run's results go with it");
    let old_run = app.get(&format!("/api/testruns/{old}")).1;
    assert_eq!(old_run["status"], "succeeded", "the run stays: {old_run}");
    assert!(old_run["lines"].as_u64().unwrap_or(0) > 0, "its count stays: {old_run}");
    assert_pruned_endpoints(&app, old);
    for id in [recent, later] {
        let run = app.get(&format!("/api/testruns/{id}")).1;
        assert_eq!(run["logs_pruned"], false, "{run}");
        assert!(app.log_lines(id).iter().any(|l| l.contains("green line")));
    }

    // The periodic pass: a run that grows old while the server runs.
    backdate(&app, later, 8);
    wait_until(T, "the periodic pass", || {
        app.get(&format!("/api/testruns/{later}")).1["logs_pruned"] == true
    });
    assert_pruned_endpoints(&app, later);
    assert_eq!(app.get(&format!("/api/testruns/{recent}")).1["logs_pruned"], false);

    // The run written meanwhile kept every line, in order.
    let (status, _) = app.post(&format!("/api/testruns/{writing}/cancel"), json!({}));
    assert_eq!(status, 200);
    let run = app.wait_finished(writing, T);
    assert_eq!(run["logs_pruned"], false, "{run}");
    let log = app.log_lines(writing);
    // pytest may print the test's name before the first tick.
    let ticks: Vec<&str> = log.iter().filter_map(|l| l.find("tick ").map(|at| &l[at..])).collect();
    assert!(!ticks.is_empty(), "{log:?}");
    assert!(
        ticks.iter().enumerate().all(|(i, l)| *l == format!("tick {i}")),
        "{ticks:?}"
    );
}

#[test]
fn retention_days_must_be_at_least_one() {
    for flag in ["--keep-logs-days", "--keep-runs-days"] {
        for bad in ["0", "-3", "soon"] {
            let out = Command::new(BIN).arg(format!("{flag}={bad}")).output().expect("run");
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(flag), "{flag} {bad}: {err}");
        }
    }
}

//! Per-test results through remote workers: the worker fills `{junit}` in
//! its own folder, parses it, sends the rows in batches under the body limit,
//! and the end is accepted only once all of them are stored; live counts and
//! the revision reach remote runs too.

use super::*;
use crate::results::{plain, pytest_summary, summary_counts, MIXED};

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "git {args:?}");
}

#[test]
fn a_remote_run_stores_junit_results_in_batches_with_lines_and_revision() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    std::fs::write(app.path().join("tests/test_mixed.py"), MIXED).expect("write");
    // 4,500 more tests: three batches of rows.
    std::fs::write(
        app.path().join("tests/test_many.py"),
        "import pytest\n\n@pytest.mark.parametrize('i', range(4500))\ndef test_n(i):\n    pass\n",
    )
    .expect("write");
    git(app.path(), &["init", "-q"]);
    git(app.path(), &["add", "tests"]);
    git(
        app.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "suite",
        ],
    );
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "results-w1", &[]);

    let id = id_of(&app.queue(1, "./tests/"));
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["outcome"], "tests_failed");
    let rev = &run["revision"];
    assert_eq!(rev["commit"].as_str().map(str::len), Some(40), "{run}");
    // The worker's own files (its log) are untracked: the checkout is clean.
    assert_eq!(rev["dirty"], false, "{run}");
    let summary = &run["summary"];
    assert_eq!(summary["final"], true, "{run}");
    let lines = app.log_lines(id);
    assert_eq!(summary_counts(summary), pytest_summary(&lines));
    assert!(summary["total"].as_u64().is_some_and(|t| t > 4500), "{summary}");

    let (status, body) = app.get(&format!("/api/testruns/{id}/results"));
    assert_eq!(status, 200);
    let tests = body["tests"].as_array().expect("tests");
    assert_eq!(Some(tests.len() as u64), summary["total"].as_u64());
    for t in tests {
        let n = t["line"].as_u64().unwrap_or_else(|| panic!("no line: {t}")) as usize;
        assert!(plain(&lines[n]).starts_with(t["nodeid"].as_str().expect("id")), "{t}");
    }
    let xpass = tests
        .iter()
        .find(|t| t["nodeid"] == "tests/test_mixed.py::test_xpass")
        .expect("listed");
    assert_eq!(xpass["outcome"], "xpassed");

    // A change to a tracked file makes the next run's revision dirty.
    std::fs::write(app.path().join("tests/test_many.py"), "def test_one():\n    pass\n").expect("write");
    let id2 = id_of(&app.queue(2, "./tests/test_many.py"));
    let run2 = app.wait_finished(id2, T);
    assert_eq!(run2["revision"]["dirty"], true, "{run2}");
    assert_eq!(run2["revision"]["commit"], rev["commit"]);
    assert_eq!(run2["summary"]["total"], 1);
}

#[test]
fn remote_runs_count_live_and_rerun_failed_goes_through_the_worker() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let gate = app.path().join("gate-open");
    let suite = format!(
        "import os, time\n\ndef test_a():\n    pass\n\ndef test_b():\n    assert 0\n\ndef test_c():\n    pass\n\ndef test_wait():\n    while not os.path.exists({gate:?}):\n        time.sleep(0.05)\n",
        gate = gate.to_str().expect("utf-8 path")
    );
    std::fs::write(app.path().join("tests/test_gate.py"), suite).expect("write");
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "results-w2", &[]);
    let id = id_of(&app.queue(3, "./tests/test_gate.py"));
    let live = app.wait_run(id, T, |r| r["summary"]["total"] == 3);
    assert_eq!(
        (live["status"].as_str(), live["summary"]["final"].as_bool()),
        (Some("running"), Some(false))
    );
    std::fs::write(&gate, "").expect("open the gate");
    let done = app.wait_finished(id, T);
    assert_eq!(done["summary"]["final"], true, "{done}");
    assert_eq!(done["summary"]["failed"], 1);

    let (status, again) = app.post(
        &format!("/api/testruns/{id}/rerun"),
        json!({"username": "rerunner", "only_failed": true}),
    );
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["select"], json!(["tests/test_gate.py::test_b"]));
    let again = app.wait_finished(id_of(&again), T);
    assert_eq!(again["summary"]["total"], 1, "{again}");
    assert_eq!(again["summary"]["failed"], 1);
}

#[test]
fn the_end_waits_for_every_result_row_and_rows_are_checked() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let id = id_of(&app.queue(6, "./tests/test_quick.py"));
    let token = redis.wait_token(&p, id, None);
    let path = format!("/api/testruns/{id}");
    let (status, _) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(status, 200);
    let row = |n: &str, o: &str| json!({"nodeid": n, "outcome": o, "duration_s": 0.1, "message": null, "line": 0});
    let (status, _) = app.post(
        &path,
        json!({"token": token, "from": 0, "lines": ["tests/test_quick.py::test_one PASSED"]}),
    );
    assert_eq!(status, 200);
    let (status, reply) = app.post(
        &path,
        json!({"token": token, "results_from": 3, "results": [row("t.py::x", "passed")]}),
    );
    assert_eq!(
        (status, reply["code"].as_str(), reply["next"].as_u64()),
        (409, Some("results_gap"), Some(0)),
        "{reply}"
    );
    for bad in [
        json!({"token": token, "results_from": 0, "results": [row("t.py::x", "exploded")]}),
        json!({"token": token, "results_from": 0, "results": [row("t.py::\u{1b}[2Jx", "passed")]}),
        json!({"token": token, "results": [row("t.py::x", "passed")]}),
    ] {
        let (status, reply) = app.post(&path, bad.clone());
        assert_eq!(status, 400, "{bad} → {reply}");
    }
    let (status, _) = app.post(
        &path,
        json!({"token": token, "results_from": 0, "results": [row("t.py::a", "passed"), row("t.py::b", "failed")]}),
    );
    assert_eq!(status, 200);
    // A retry of a stored batch changes nothing.
    let (status, _) = app.post(
        &path,
        json!({"token": token, "results_from": 1, "results": [row("t.py::b", "failed")]}),
    );
    assert_eq!(status, 200);
    let end = json!({"token": token, "status": "failed", "exit_code": 1, "total": 1, "results_total": 3});
    let (status, reply) = app.post(&path, end.clone());
    assert_eq!(
        (status, reply["code"].as_str(), reply["next"].as_u64()),
        (409, Some("results_gap"), Some(2)),
        "{reply}"
    );
    let (_, run) = app.get(&path);
    assert_eq!(run["status"], "running", "the end waits for every row");
    let (status, _) = app.post(
        &path,
        json!({"token": token, "results_from": 2, "results": [row("t.py::c", "xfailed")]}),
    );
    assert_eq!(status, 200);
    let (status, reply) = app.post(&path, end);
    assert_eq!(status, 200, "{reply}");
    let run = app.wait_finished(id, T);
    assert_eq!(
        run["summary"],
        json!({"passed": 1, "failed": 1, "error": 0, "skipped": 0, "xfailed": 1, "xpassed": 0, "total": 3, "final": true})
    );
    assert_eq!(run["outcome"], "tests_failed");
    let (_, body) = app.get(&format!("/api/testruns/{id}/results"));
    let ids: Vec<&str> = body["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["nodeid"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["t.py::a", "t.py::b", "t.py::c"]);
}

//! The runner's promises through a remote worker too: a test that closed its
//! output pipe is still stopped by cancel and by the server's timeout, and
//! none of the worker's own `TESTSCHEDULER_*` settings (its secret among
//! them) reach a test.

use super::*;
use crate::run_process::{wait_pid, CLOSES_ITS_PIPE, PRINTS_ITS_ENV};

const SECRET: &str = "s3cret-for-the-workers";

fn closer_setup(worker_id: &str) -> (Redis, TestApp, Worker, PathBuf) {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--worker-secret", SECRET]);
    std::fs::write(app.path().join("tests/test_closer.py"), CLOSES_ITS_PIPE).expect("write test");
    let pid_file = app.path().join(format!("{worker_id}.pid"));
    let pid_env = pid_file.display().to_string();
    let worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        worker_id,
        &[("PID_FILE", pid_env.as_str()), ("TESTSCHEDULER_WORKER_SECRET", SECRET)],
    );
    (redis, app, worker, pid_file)
}

#[test]
fn cancel_stops_a_remote_test_that_closed_its_output_pipe() {
    let (_redis, app, worker, pid_file) = closer_setup("closer-cancel");
    let id = id_of(&app.queue(1, "./tests/test_closer.py"));
    let pid = wait_pid(&app, id, &pid_file);
    let (status, run) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!((status, run["status"].as_str()), (200, Some("cancelled")), "{run}");
    wait_until(Duration::from_secs(20), "the test's process is gone", || !alive(pid));
    wait_until(Duration::from_secs(20), "the environment is free", || {
        env_holder(&app, 1) == Value::Null
    });
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("run cancelled")),
        "{lines:?}\n{}",
        worker.log()
    );
    // The worker's one slot is free again.
    let next = id_of(&app.queue(1, "./tests/test_quick.py"));
    assert_eq!(app.wait_finished(next, T)["status"], "succeeded");
}

#[test]
fn the_timeout_stops_a_remote_test_that_closed_its_output_pipe() {
    let (_redis, app, worker, pid_file) = closer_setup("closer-timeout");
    let (status, run) = app.post(
        "/api/testruns",
        json!({"username": "tester", "env_id": 2, "path": "./tests/test_closer.py", "timeout_s": 8}),
    );
    assert_eq!(status, 201, "{run}");
    let id = id_of(&run);
    let pid = wait_pid(&app, id, &pid_file);
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "timeout", "{run}");
    wait_until(Duration::from_secs(20), "the test's process is gone", || !alive(pid));
    wait_until(Duration::from_secs(20), "the environment is free", || {
        env_holder(&app, 2) == Value::Null
    });
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("timed out")),
        "{lines:?}\n{}",
        worker.log()
    );
}

#[test]
fn the_worker_s_own_settings_do_not_reach_a_test() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--worker-secret", SECRET]);
    std::fs::write(app.path().join("tests/test_printenv.py"), PRINTS_ITS_ENV).expect("write test");
    let _worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "discreet",
        &[("TESTSCHEDULER_WORKER_SECRET", SECRET), ("TESTSCHEDULER_FOO", "bar")],
    );
    let id = id_of(&app.queue(3, "./tests/test_printenv.py"));
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    let lines = app.log_lines(id);
    let vars: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once("VAR ").map(|(_, v)| v))
        .collect();
    assert_eq!(vars, ["TESTSCHEDULER_ENV_ID", "TESTSCHEDULER_RUN_ID"], "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(SECRET)));
}

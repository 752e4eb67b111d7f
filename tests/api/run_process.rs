//! What a run's process can and cannot do to the server: a test that closes
//! every descriptor of its output pipe is still stopped by cancel and by its
//! timeout (and frees its environment and its pool slot), and none of the
//! server's own `TESTSCHEDULER_*` settings reach a test.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Prints a line, closes every descriptor of its output pipe (pytest keeps
/// copies of its own), writes its pid to `PID_FILE` and sleeps.
pub const CLOSES_ITS_PIPE: &str = "import os, stat, time\n\n\
def test_closes_its_pipe():\n    \
print('before the close', flush=True)\n    \
pipe = os.fstat(1).st_ino\n    \
for fd in map(int, os.listdir('/proc/self/fd')):\n        \
try:\n            \
st = os.fstat(fd)\n            \
if stat.S_ISFIFO(st.st_mode) and st.st_ino == pipe:\n                \
os.close(fd)\n        \
except OSError:\n            \
pass\n    \
open(os.environ['PID_FILE'], 'w').write(str(os.getpid()))\n    \
time.sleep(int(os.environ.get('SLEEP_SECONDS', '120')))\n";

/// Prints every variable of its environment whose name starts with `TESTSCHEDULER_`.
pub const PRINTS_ITS_ENV: &str = "import os\n\n\
def test_env():\n    \
for k in sorted(os.environ):\n        \
if k.startswith('TESTSCHEDULER_'):\n            \
print('VAR', k, flush=True)\n";

fn env_holder(app: &TestApp, env: u64) -> Value {
    let (_, envs) = app.get("/api/envs");
    envs.as_array()
        .expect("envs")
        .iter()
        .find(|e| e["id"].as_u64() == Some(env))
        .map(|e| e["run_id"].clone())
        .expect("env listed")
}

/// The pid the test wrote, once it wrote it.
pub fn wait_pid(app: &TestApp, id: i64, pid_file: &std::path::Path) -> i32 {
    let deadline = std::time::Instant::now() + T;
    loop {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the test never wrote its pid; its log: {:?}",
            app.log_lines(id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pipe_closing_app() -> (TestApp, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let pid_file = dir.keep().join("closer.pid");
    let app = spawn_app_with(
        Opts::default()
            .args(&["--workers", "1"])
            .env("PID_FILE", &pid_file.display().to_string()),
    );
    std::fs::write(app.path().join("tests/test_closer.py"), CLOSES_ITS_PIPE).expect("write test");
    (app, pid_file)
}

#[test]
fn cancel_stops_a_test_that_closed_its_output_pipe() {
    let (app, pid_file) = pipe_closing_app();
    let id = app.queue(1, "./tests/test_closer.py")["id"].as_i64().expect("id");
    let pid = wait_pid(&app, id, &pid_file);
    let (status, run) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!((status, run["status"].as_str()), (200, Some("cancelled")), "{run}");
    wait_until(Duration::from_secs(20), "the test's process is gone", || !alive(pid));
    wait_until(Duration::from_secs(20), "the environment is free", || {
        env_holder(&app, 1) == Value::Null
    });
    let lines = app.log_lines(id);
    assert!(lines.iter().any(|l| l.contains("before the close")), "{lines:?}");
    assert!(lines.last().is_some_and(|l| l.contains("run cancelled")), "{lines:?}");
    // The one pool thread is free for the next run.
    let next = app.queue(1, "./tests/test_quick.py")["id"].as_i64().expect("id");
    assert_eq!(app.wait_finished(next, T)["status"], "succeeded");
}

#[test]
fn the_timeout_stops_a_test_that_closed_its_output_pipe() {
    let (app, pid_file) = pipe_closing_app();
    let (status, run) = app.post(
        "/api/testruns",
        json!({"username": "tester", "env_id": 2, "path": "./tests/test_closer.py", "timeout_s": 8}),
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().expect("id");
    let pid = wait_pid(&app, id, &pid_file);
    let run = app.wait_finished(id, Duration::from_secs(30));
    assert_eq!(run["status"], "timeout", "{run}");
    assert!(!alive(pid), "the test's process is gone");
    assert_eq!(env_holder(&app, 2), Value::Null);
    let lines = app.log_lines(id);
    assert!(lines.last().is_some_and(|l| l.contains("timed out")), "{lines:?}");
}

#[test]
fn a_test_that_closed_its_pipe_ends_when_its_process_exits() {
    let dir = tempfile::tempdir().expect("tmp");
    let pid_file = dir.path().join("closer.pid");
    let app = spawn_app_with(
        Opts::default()
            .env("PID_FILE", &pid_file.display().to_string())
            .env("SLEEP_SECONDS", "1"),
    );
    std::fs::write(app.path().join("tests/test_closer.py"), CLOSES_ITS_PIPE).expect("write test");
    let id = app.queue(3, "./tests/test_closer.py")["id"].as_i64().expect("id");
    let run = app.wait_finished(id, Duration::from_secs(30));
    // pytest cannot print its summary to a closed pipe; the run still ends.
    assert!(matches!(run["status"].as_str(), Some("succeeded" | "failed")), "{run}");
    assert_eq!(env_holder(&app, 3), Value::Null);
}

#[test]
fn the_server_s_own_settings_do_not_reach_a_test() {
    let app = spawn_app_with(
        Opts::default()
            .env("TESTSCHEDULER_WORKER_SECRET", "do-not-leak-1")
            .env("TESTSCHEDULER_FOO", "do-not-leak-2")
            .env("TESTSCHEDULER_RUN_TIMEOUT", "600"),
    );
    std::fs::write(app.path().join("tests/test_printenv.py"), PRINTS_ITS_ENV).expect("write test");
    let id = app.queue(4, "./tests/test_printenv.py")["id"].as_i64().expect("id");
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run} {:?}", app.log_lines(id));
    let vars: Vec<String> = app
        .log_lines(id)
        .iter()
        .filter_map(|l| l.split_once("VAR ").map(|(_, v)| v.to_string()))
        .collect();
    assert_eq!(vars, ["TESTSCHEDULER_ENV_ID", "TESTSCHEDULER_RUN_ID"]);
}

//! The terminal client (`submit`, `runs`, `logs`, `cancel`, `envs`) against
//! the real server: every line in order, the run's result as exit code, a
//! server restart during `--follow` neither loses nor repeats a line.

use crate::helpers::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Runs the client with `args` against `app` (stdout is a pipe: no ANSI).
fn client(app: &TestApp, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--server", &app.base])
        .env_remove("NO_COLOR")
        .output()
        .expect("run the client")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The stored log of run `id`, as a non-terminal client must print it.
fn plain_log(app: &TestApp, id: i64) -> Vec<String> {
    app.log_lines(id)
        .iter()
        .map(|l| String::from_utf8_lossy(&strip_ansi_escapes::strip(l.as_bytes())).to_string())
        .collect()
}

fn newest_run(app: &TestApp) -> Value {
    let (status, list) = app.get("/api/testruns?limit=1");
    assert_eq!(status, 200);
    list[0].clone()
}

#[test]
fn submit_follow_prints_every_line_in_order_and_exits_with_the_result() {
    let app = spawn_app_with(Opts::default().env("LINES", "3000"));
    let out = client(
        &app,
        &[
            "submit",
            "--env",
            "1",
            "--path",
            "./tests/test_lines.py",
            "--user",
            "tester",
            "--follow",
        ],
    );
    assert_eq!(code(&out), 0, "stderr: {}", text(&out.stderr));
    let run = newest_run(&app);
    assert_eq!(run["status"], "succeeded");
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let stored = plain_log(&app, run["id"].as_i64().expect("id"));
    assert!(stored.len() > 3000, "{} lines stored", stored.len());
    assert_eq!(printed, stored, "stdout is the log, in order, once");
    assert!(
        !text(&out.stdout).contains('\x1b'),
        "no ANSI when stdout is not a terminal"
    );
    assert!(text(&out.stderr).contains("succeeded"), "{}", text(&out.stderr));

    let out = client(
        &app,
        &[
            "submit",
            "--env",
            "2",
            "--path",
            "./tests/test_fail.py",
            "--user",
            "tester",
            "--follow",
        ],
    );
    assert_eq!(code(&out), 1, "a failing test exits 1; stderr: {}", text(&out.stderr));
    let run = newest_run(&app);
    assert_eq!(run["status"], "failed");
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(printed, plain_log(&app, run["id"].as_i64().expect("id")));
}

#[test]
fn submit_without_follow_prints_the_id_and_sends_only_given_fields() {
    let app = spawn_app();
    let out = client(
        &app,
        &[
            "submit",
            "--env",
            "3",
            "--path",
            "./tests/test_quick.py",
            "--user",
            "alice",
            "--timeout",
            "60",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let id: i64 = text(&out.stdout).trim().parse().expect("the id alone on stdout");
    let run = app.wait_finished(id, Duration::from_secs(60));
    assert_eq!(run["username"], "alice");
    assert_eq!(run["env_id"], 3);
    assert_eq!(run["timeout_s"], 60);
}

#[test]
fn a_refused_submit_exits_2_with_the_servers_message_and_field_errors() {
    let app = spawn_app();
    let out = client(
        &app,
        &["submit", "--env", "1", "--path", "./tests/nope.py", "--user", "tester"],
    );
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(err.contains("Data validation failed"), "{err}");
    assert!(err.contains("path:"), "{err}");
}

#[test]
fn runs_logs_cancel_and_envs_work() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "60"));
    let done = app.queue(1, "./tests/test_quick.py");
    let done_id = done["id"].as_i64().expect("id");
    app.wait_finished(done_id, Duration::from_secs(60));
    let slow = app.queue(2, "./tests/test_slow.py");
    let slow_id = slow["id"].as_i64().expect("id");
    app.wait_run(slow_id, Duration::from_secs(60), |r| r["status"] == "running");

    let out = client(&app, &["runs", "--limit", "5"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq([done_id.to_string().as_str(), "succeeded"])),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq([slow_id.to_string().as_str(), "running"])),
        "{table}"
    );
    let out = client(&app, &["runs", "--status", "succeeded"]);
    let table = text(&out.stdout);
    assert!(!table.contains("running"), "{table}");

    let out = client(&app, &["envs"]);
    assert_eq!(code(&out), 0);
    let envs = text(&out.stdout);
    assert!(envs.contains(&format!("busy (run {slow_id})")), "{envs}");
    assert!(envs.lines().any(|l| l.split_whitespace().eq(["1", "free"])), "{envs}");

    let out = client(&app, &["logs", &done_id.to_string()]);
    assert_eq!(code(&out), 0);
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(printed, plain_log(&app, done_id));
    assert!(text(&out.stdout).contains("green line"));

    let out = client(&app, &["cancel", &slow_id.to_string()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("cancelled"));
    app.wait_finished(slow_id, Duration::from_secs(60));
    let out = client(&app, &["cancel", &slow_id.to_string()]);
    assert_eq!(code(&out), 1, "cancelling a finished run is refused");
    assert!(text(&out.stderr).contains("already finished"), "{}", text(&out.stderr));
    let out = client(&app, &["logs", "999999"]);
    assert_eq!(code(&out), 1);

    // logs --follow of a finished run: the whole log, then its result.
    let out = client(&app, &["logs", &slow_id.to_string(), "--follow"]);
    assert_eq!(code(&out), 3, "a cancelled run exits 3");
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(printed, plain_log(&app, slow_id));
}

#[test]
fn bad_flags_and_unreachable_servers_are_named() {
    for (args, flag) in [
        (vec!["submit", "--env", "x", "--path", "p"], "--env"),
        (vec!["submit", "--path", "p"], "--env"),
        (vec!["submit", "--env", "1"], "--path"),
        (
            vec!["submit", "--env", "1", "--path", "p", "--timeout", "0"],
            "--timeout",
        ),
        (vec!["runs", "--limit", "0"], "--limit"),
        (vec!["runs", "--status", "done"], "--status"),
        (vec!["logs", "abc"], "ID"),
        (vec!["cancel"], "ID"),
        (vec!["envs", "--bogus"], "--bogus"),
    ] {
        let out = Command::new(BIN).args(&args).output().expect("run");
        assert_eq!(code(&out), 2, "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["envs"],
        vec!["runs"],
        vec!["submit", "--env", "1", "--path", "./tests/a.py", "--user", "bob"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .args(["--server", &url])
            .output()
            .expect("run");
        assert_eq!(code(&out), 2, "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(&url), "{args:?}: {err}");
    }
    let out = Command::new(BIN)
        .args(["envs"])
        .env("TESTSCHEDULER_SERVER", &url)
        .output()
        .expect("run");
    assert!(text(&out.stderr).contains(&url), "TESTSCHEDULER_SERVER is read");
}

/// Starts the server again on `app`'s port, database and project.
fn restart_on_same_port(app: &TestApp) -> Child {
    let mut child = Command::new(BIN)
        .args(["--bind", &format!("127.0.0.1:{}", app.port), "--workers", "2"])
        .arg("--project-dir")
        .arg(app.path())
        .arg("--database")
        .arg(&app.db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).expect("listening line");
    assert!(line.starts_with("listening on"), "{line}");
    child
}

#[test]
fn a_server_restart_during_follow_loses_no_line_and_repeats_none() {
    let mut app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "30"));
    let out_path = app.path().join("client.out");
    let err_path = app.path().join("client.err");
    let mut follower = Command::new(BIN)
        .args([
            "submit",
            "--env",
            "1",
            "--path",
            "./tests/test_slow.py",
            "--user",
            "tester",
            "--follow",
        ])
        .args(["--server", &app.base])
        .stdout(std::fs::File::create(&out_path).expect("out file"))
        .stderr(std::fs::File::create(&err_path).expect("err file"))
        .spawn()
        .expect("client");
    wait_until(Duration::from_secs(60), "ticks on the client's stdout", || {
        std::fs::read_to_string(&out_path).is_ok_and(|s| s.contains("tick 5\n"))
    });
    // A crash: the run ends `unknown` at the restart, with the lines stored before it.
    app.kill();
    let mut server = restart_on_same_port(&app);
    let status = wait_child(&mut follower, Duration::from_secs(120));
    let printed: Vec<String> = std::fs::read_to_string(&out_path)
        .expect("client output")
        .lines()
        .map(str::to_string)
        .collect();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let id = newest_run(&app)["id"].as_i64().expect("id");
    let stored = plain_log(&app, id);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(status, 5, "the run ended unknown; stderr: {err}");
    assert!(err.contains("reconnect"), "{err}");
    assert_eq!(printed, stored, "every stored line once, in order; stderr: {err}");
}

#[test]
fn ctrl_c_with_cancel_on_interrupt_cancels_the_run() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "60"));
    let mut follower = Command::new(BIN)
        .args([
            "submit",
            "--env",
            "1",
            "--path",
            "./tests/test_slow.py",
            "--user",
            "tester",
            "--follow",
        ])
        .args(["--cancel-on-interrupt", "--server", &app.base])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("client");
    interrupt_after(&mut follower, "tick 2");
    let status = wait_child(&mut follower, Duration::from_secs(60));
    assert_eq!(status, 3, "exits as the cancelled run");
    let run = newest_run(&app);
    assert_eq!(run["status"], "cancelled");
}

/// Reads the client's output until a line starts with `prefix`, keeps
/// draining it, and sends the client SIGINT (Ctrl-C).
fn interrupt_after(follower: &mut Child, prefix: &str) {
    let stdout = follower.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("a line").expect("readable");
        if line.starts_with(prefix) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
}

fn wait_child(child: &mut Child, timeout: Duration) -> i32 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the client did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_stops_following_and_the_run_goes_on() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "60"));
    let id = app.queue(1, "./tests/test_slow.py")["id"].as_i64().expect("id");
    let mut follower = Command::new(BIN)
        .args(["logs", &id.to_string(), "--follow", "--server", &app.base])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("client");
    interrupt_after(&mut follower, "tick 1");
    assert_eq!(wait_child(&mut follower, Duration::from_secs(60)), 130);
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(run["status"], "running", "only following stopped");
}

#[test]
fn a_follow_joining_a_long_live_log_catches_up_then_follows_without_gap_or_repeat() {
    let app = spawn_app();
    let burst = "import time\n\ndef test_burst():\n    for i in range(20000):\n        print(f'burst {i:06d} \\033[33mwarn\\033[0m')\n    for i in range(40):\n        print(f'tick {i}', flush=True)\n        time.sleep(0.05)\n";
    std::fs::write(app.path().join("tests/test_burst.py"), burst).expect("write the test");
    let id = wait_for_path(&app, "./tests/test_burst.py");
    app.wait_run(id, Duration::from_secs(60), |r| {
        r["lines"].as_u64().unwrap_or(0) > 20_000
    });
    // Joins with 20,000 lines stored (caught up over log.txt) and the rest live (over /ws).
    let out = client(&app, &["logs", &id.to_string(), "--follow"]);
    assert_eq!(code(&out), 0, "stderr: {}", text(&out.stderr));
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let stored = plain_log(&app, id);
    assert!(stored.iter().any(|l| l.contains("tick 39")), "the run ended");
    assert_eq!(printed, stored, "every line once, in order");
}

/// Queues `path` once discovery has seen it (a file the test just wrote).
fn wait_for_path(app: &TestApp, path: &str) -> i64 {
    let mut id = None;
    wait_until(Duration::from_secs(30), "the new test file to be discovered", || {
        let (status, body) = app.post(
            "/api/testruns",
            serde_json::json!({"username": "tester", "env_id": 1, "path": path}),
        );
        id = body["id"].as_i64().filter(|_| status == 201);
        id.is_some()
    });
    id.unwrap_or_default()
}

//! Stopping (issue 9, item 7): SIGTERM ends the server within seconds however
//! many clients hold connections, and a second server on a database that a
//! live one holds refuses to start.

use crate::helpers::{spawn_app_with, wait_until, Opts, BIN};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_second_server_on_the_same_database_refuses_to_start() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "60"));
    let id = app.queue(1, "./tests/test_slow.py")["id"].as_i64().expect("id");
    app.wait_run(id, Duration::from_secs(60), |r| r["status"] == "running");
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--workers", "1", "--project-dir"])
        .arg(app.path())
        .arg("--database")
        .arg(&app.db)
        .stdin(Stdio::null())
        .output()
        .expect("run a second server");
    assert!(!out.status.success(), "the second server started");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it took {:?} to refuse",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lock = format!("{}.lock", app.db.display());
    assert!(stderr.contains(&lock), "the message names the lock file: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it bound a port"
    );
    // The first server and its run are untouched.
    std::thread::sleep(Duration::from_millis(500));
    let run = app.get(&format!("/api/testruns/{id}")).1;
    assert_eq!(run["status"], "running", "{run}");
}

#[test]
fn sigterm_stops_the_server_in_seconds_with_a_follower_and_a_slow_request() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "1"]).env("SLOW_SECONDS", "120"));
    let id = app.queue(1, "./tests/test_slow.py")["id"].as_i64().expect("id");
    app.wait_run(id, Duration::from_secs(60), |r| r["status"] == "running");
    let mut follower = app.ws();
    follower.send(json!({"op": "follow", "id": id}));
    follower.until(Duration::from_secs(30), |v| v["event"] == "logLines");
    // A second follower read here frame by frame, to see how its socket ends.
    let stream = TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let (mut browser, _) = tungstenite::client(format!("ws://127.0.0.1:{}/ws", app.port), stream).expect("handshake");
    browser
        .send(tungstenite::Message::Text(
            json!({"op": "follow", "id": id}).to_string().into(),
        ))
        .expect("follow");
    // A request whose body is still on its way.
    let mut slow = TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    slow.write_all(
        b"POST /api/workers/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{",
    )
    .expect("write");

    let started = Instant::now();
    let server = nix::unistd::Pid::from_raw(app.pid().expect("running") as i32);
    nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let close = loop {
        match browser.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("the socket ended without a close frame: {e}"),
        }
    };
    assert_eq!(
        close.map(|f| f.code),
        Some(tungstenite::protocol::frame::coding::CloseCode::Away),
        "a follower is told the server is going away"
    );
    let status = app.wait_exit(Duration::from_secs(30));
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    eprintln!("SIGTERM to exit with a follower and a slow request: {took:?}");
    // The slow request was dropped, not left hanging.
    slow.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);

    app.start().expect("restart");
    wait_until(Duration::from_secs(10), "the run's status", || {
        app.get(&format!("/api/testruns/{id}")).1["status"] == "unknown"
    });
}

#[test]
fn sigterm_stops_the_server_in_seconds_even_when_a_test_ignores_sigterm() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "1"]));
    std::fs::write(
        app.path().join("tests/test_stubborn.py"),
        "import signal, time\n\ndef test_stubborn():\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    print('ignoring SIGTERM', flush=True)\n    time.sleep(300)\n",
    )
    .expect("write");
    let id = app.queue(1, "./tests/test_stubborn.py")["id"].as_i64().expect("id");
    wait_until(Duration::from_secs(60), "the test ignores SIGTERM", || {
        app.log_lines(id).iter().any(|l| l.contains("ignoring SIGTERM"))
    });
    let started = Instant::now();
    let server = nix::unistd::Pid::from_raw(app.pid().expect("running") as i32);
    nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = app.wait_exit(Duration::from_secs(30));
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    eprintln!("SIGTERM to exit with a test that ignores SIGTERM: {took:?}");
    app.start().expect("restart");
    let run = app.get(&format!("/api/testruns/{id}")).1;
    assert_eq!(run["status"], "unknown", "{run}");
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("server shut down")),
        "the run was ended at shutdown, not found at the restart: {lines:?}"
    );
}

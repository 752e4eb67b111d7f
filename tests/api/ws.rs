//! The `/ws` protocol: run events, follow from any line with no gap or repeat,
//! tail, partial lines, malformed messages and foreign origins.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn run_events_reach_every_client() {
    let app = spawn_app();
    let mut a = app.ws();
    let mut b = app.ws();
    let run = app.queue(1, "./tests/test_quick.py");
    for ws in [&mut a, &mut b] {
        let added = ws.until(T, |v| v["event"] == "taskAdded");
        assert_eq!(added["run"], run);
        let done = ws.until(T, |v| v["event"] == "taskChanged" && v["run"]["status"] == "succeeded");
        assert_eq!(done["run"]["id"], run["id"]);
        assert_eq!(done["run"]["logs"], true);
    }
}

#[test]
fn a_live_follow_gets_every_line_once_then_log_end() {
    // Queues larger than the whole output: this follower cannot lag, however slowly it reads.
    let app = spawn_app_with(
        Opts::default()
            .env("LINES", "20000")
            .args(&["--ws-queue-bytes", "67108864"]),
    );
    let mut ws = app.ws();
    let run = app.queue(1, "./tests/test_lines.py");
    let id = run["id"].as_i64().expect("id");
    let (lines, end) = ws.collect(id, 0, T);
    assert_eq!(end["status"], "succeeded");
    assert_eq!(end["total"].as_u64(), Some(lines.len() as u64));
    // pytest prints the first line after the test's name, on the same line.
    let numbered: Vec<&String> = lines.iter().filter(|l| l.contains("line 0")).collect();
    assert_eq!(numbered.len(), 20000);
    for (i, l) in numbered.iter().enumerate() {
        assert!(l.contains(&format!("line {i:06} ")), "line {i}: {l}");
    }
    assert_eq!(app.log_lines(id), lines);
}

#[test]
fn follow_from_any_line_and_tail() {
    let app = spawn_app_with(Opts::default().env("LINES", "300"));
    let run = app.queue(1, "./tests/test_lines.py");
    let id = run["id"].as_i64().expect("id");
    app.wait_finished(id, T);
    let all = app.log_lines(id);
    let mut ws = app.ws();
    let (from_100, end) = ws.collect(id, 100, T);
    assert_eq!(from_100, all[100..]);
    assert_eq!(end["total"].as_u64(), Some(all.len() as u64));
    ws.send(json!({"op": "follow", "id": id, "tail": 5}));
    let first = ws.until(T, |v| v["event"] == "logLines" && v["id"] == id);
    assert_eq!(first["from"].as_u64(), Some(all.len() as u64 - 5));
    let (past, end) = ws.collect(id, 100_000, T);
    assert!(past.is_empty());
    assert_eq!(end["event"], "logEnd");
}

#[test]
fn reconnecting_from_the_next_line_misses_nothing() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "3"));
    let run = app.queue(1, "./tests/test_slow.py");
    let id = run["id"].as_i64().expect("id");
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id, "from": 0}));
    let mut got: Vec<String> = Vec::new();
    while got.len() < 8 {
        let v = ws.until(T, |v| v["event"] == "logLines" && v["id"] == id);
        assert_eq!(v["from"].as_u64(), Some(got.len() as u64));
        got.extend(
            v["lines"]
                .as_array()
                .expect("lines")
                .iter()
                .map(|l| l.as_str().expect("str").to_string()),
        );
    }
    drop(ws);
    let mut ws = app.ws();
    let (rest, end) = ws.collect(id, got.len() as u64, T);
    got.extend(rest);
    assert_eq!(end["status"], "succeeded");
    assert_eq!(got, app.log_lines(id));
    assert!(got.iter().filter(|l| l.contains("tick ")).count() == 30);
}

#[test]
fn an_unfinished_line_is_shown_as_partial() {
    let app = spawn_app();
    let id = waiting_test(&app);
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id}));
    let partial = ws.until(T, |v| v["event"] == "logPartial" && v["id"] == id);
    assert!(
        partial["text"].as_str().expect("text").contains("working... "),
        "{partial}"
    );
    let line = partial["line"].as_u64().expect("line");
    std::fs::write(app.path().join("release"), "").expect("release");
    let full = ws.until(T, |v| {
        v["event"] == "logLines"
            && v["from"]
                .as_u64()
                .zip(v["lines"].as_array().map(|a| a.len() as u64))
                .is_some_and(|(f, n)| f <= line && line < f + n)
    });
    let text = &full["lines"][(line - full["from"].as_u64().expect("from")) as usize];
    assert!(text.as_str().expect("str").contains("working... done"), "{full}");
}

#[test]
fn malformed_messages_get_an_error_and_the_socket_stays_open() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let mut ws = app.ws();
    for bad in [
        json!({"op": "dance"}),
        json!({"op": "follow"}),
        json!([1]),
        json!({"op": "follow", "id": "x"}),
    ] {
        ws.send(bad.clone());
        let err = ws.until(T, |v| v["event"] == "error");
        assert!(err["message"].is_string(), "{bad}");
    }
    let run = app.queue(1, "./tests/");
    let id = run["id"].as_i64().expect("id");
    app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    let (lines, end) = ws.collect(id, 0, T);
    assert!(lines.is_empty());
    assert_eq!(end["status"], "cancelled");
    ws.send(json!({"op": "follow", "id": 424242}));
    let err = ws.until(T, |v| v["event"] == "error");
    assert_eq!(err["id"], 424242);
}

#[test]
fn pages_of_other_sites_may_not_open_the_socket() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0", "--allowed-origin", "http://localhost:5173"]));
    assert!(app.ws_with_origin(Some("http://evil.example")).is_err());
    assert!(app
        .ws_with_origin(Some(&format!("http://127.0.0.1:{}", app.port + 1)))
        .is_err());
    assert!(app
        .ws_with_origin(Some(&format!("http://127.0.0.1:{}", app.port)))
        .is_ok());
    assert!(app.ws_with_origin(Some("http://localhost:5173")).is_ok());
    assert!(app.ws_with_origin(None).is_ok());
}

/// The most bytes the kernel may buffer on one loopback connection: the
/// largest receive plus the largest send buffer it autotunes to.
fn socket_buffer_bytes() -> u64 {
    let max = |f: &str| -> u64 {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
            .unwrap_or(64 << 20)
    };
    max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem")
}

#[test]
fn a_slow_follower_is_told_it_lagged_and_catches_up_without_gaps() {
    // Lagging is certain, not hoped for: the client reads nothing until the run
    // has ended; the run prints more than the kernel can buffer on the socket
    // plus the server's small queues (16 KiB each here), then 100 short lines
    // slowly, one batch each, which cannot all fit the follower's queue.
    let width = 1000u64;
    let lines = socket_buffer_bytes() / width + 4_000;
    let app = spawn_app_with(
        Opts::default()
            .args(&["--ws-queue-bytes", "16384"])
            .env("LINES", &lines.to_string())
            .env("WIDTH", &width.to_string())
            .env("TAIL", "100"),
    );
    std::fs::write(app.path().join("tests/test_flood.py"), FLOOD).expect("write");
    let mut ws = app.ws();
    let run = app.queue(1, "./tests/test_flood.py");
    let id = run["id"].as_i64().expect("id");
    ws.send(json!({"op": "follow", "id": id, "from": 0}));
    // Do not read while the run floods: the server must not wait for us.
    let finished = app.wait_finished(id, T);
    assert_eq!(finished["status"], "succeeded");
    let total = finished["lines"].as_u64().expect("lines");
    assert!(total > lines + 100);
    let mut next = 0u64;
    let mut lagged = 0;
    loop {
        let v = ws.next(T).expect("a frame");
        if v["id"].as_i64() != Some(id) {
            continue;
        }
        match v["event"].as_str() {
            Some("logLines") => {
                assert_eq!(v["from"].as_u64(), Some(next), "no gap, no repeat");
                next += v["lines"].as_array().expect("lines").len() as u64;
            }
            Some("lagged") => {
                assert_eq!(
                    v["next"].as_u64(),
                    Some(next),
                    "lagged names the next line this client lacks"
                );
                lagged += 1;
                ws.send(json!({"op": "follow", "id": id, "from": next}));
            }
            Some("logEnd") => {
                assert_eq!(v["total"].as_u64(), Some(total));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(next, total);
    assert_eq!(
        lagged, 1,
        "a client that read nothing during the flood lagged once, then caught up"
    );
    assert_eq!(app.log_lines(id).len() as u64, total);
}

/// A test printing `LINES` lines of `WIDTH` bytes, then `TAIL` short lines slowly.
const FLOOD: &str = "import os, sys, time\n\ndef test_flood():\n    w = int(os.environ.get('WIDTH', '1000'))\n    for i in range(int(os.environ.get('LINES', '1000'))):\n        print(f'line {i:07d} ' + 'x' * w)\n    sys.stdout.flush()\n    for i in range(int(os.environ.get('TAIL', '0'))):\n        print(f'tail {i}', flush=True)\n        time.sleep(0.01)\n";

/// A test that writes `working... ` without a newline, waits until the file
/// `release` exists in the project, then ends the line: no timing involved.
fn waiting_test(app: &TestApp) -> i64 {
    let release = app.path().join("release");
    std::fs::write(
        app.path().join("tests/test_wait.py"),
        format!(
            "import os, sys, time\n\ndef test_wait():\n    sys.stdout.write('working... ')\n    sys.stdout.flush()\n    while not os.path.exists({release:?}):\n        time.sleep(0.05)\n    print('done')\n"
        ),
    )
    .expect("write");
    app.queue(1, "./tests/test_wait.py")["id"].as_i64().expect("id")
}

#[test]
fn a_follower_arriving_during_a_silent_test_sees_its_unfinished_line() {
    let app = spawn_app();
    let id = waiting_test(&app);
    // A first follower sees the unfinished line published...
    let mut first = app.ws();
    first.send(json!({"op": "follow", "id": id}));
    let partial = first.until(T, |v| v["event"] == "logPartial" && v["id"] == id);
    assert!(
        partial["text"].as_str().expect("text").contains("working... "),
        "{partial}"
    );
    // ...so a second one, arriving after it, is shown it from the hub's memory.
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id}));
    let again = ws.until(T, |v| v["event"] == "logPartial" && v["id"] == id);
    assert_eq!(again["line"], partial["line"]);
    assert_eq!(again["text"], partial["text"]);
    std::fs::write(app.path().join("release"), "").expect("release");
    let (rest, end) = ws.collect_following(id, partial["line"].as_u64().expect("line"), T);
    assert!(
        rest[0].contains("working... done"),
        "the complete line replaces the partial: {rest:?}"
    );
    assert_eq!(end["status"], "succeeded");
}

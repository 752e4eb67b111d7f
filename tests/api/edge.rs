//! The edge (issue 10, items 7, 8, 12, 13, 14): cross-site requests, the
//! `Host` check, security headers, slow bodies, the per-client connection
//! cap, names with control characters, and numbers past i64.

use crate::helpers::{spawn_app, spawn_app_with, wait_until, Opts, TestApp};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One request written as is, on its own connection; → (status, head, body).
fn raw(app: &TestApp, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn get_with_host(app: &TestApp, path: &str, host: &str) -> (u16, String, String) {
    raw(
        app,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
}

/// POST with extra headers → (status, JSON body).
fn post_with(app: &TestApp, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, Value) {
    let mut req = ureq::post(&app.url(path)).timeout(Duration::from_secs(30));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {path}: {e}"),
    };
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.into_string().unwrap_or_default()).unwrap_or(Value::Null),
    )
}

fn slow_app() -> TestApp {
    spawn_app_with(Opts::default().env("SLOW_SECONDS", "60"))
}

#[test]
fn a_page_of_another_site_cannot_cancel_a_run() {
    let app = slow_app();
    let id = app.queue(1, "./tests/test_slow.py")["id"].as_i64().expect("id");
    app.wait_run(id, Duration::from_secs(60), |r| r["status"] == "running");
    // What a plain <form method=POST enctype=text/plain> on evil.example sends.
    let (status, body) = post_with(
        &app,
        &format!("/api/testruns/{id}/cancel"),
        &[("Origin", "http://evil.example"), ("Content-Type", "text/plain")],
        Some(b"a=b"),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden_origin");
    let (status, body) = post_with(&app, &format!("/api/testruns/{id}/cancel"), &[("Origin", "null")], None);
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("forbidden_origin")),
        "an opaque origin is foreign"
    );
    assert_eq!(app.get(&format!("/api/testruns/{id}")).1["status"], "running");
    // The app's own page (same host) and scripts (no Origin) still can.
    let own = format!("http://127.0.0.1:{}", app.port);
    let (status, body) = post_with(&app, &format!("/api/testruns/{id}/cancel"), &[("Origin", &own)], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
}

#[test]
fn bodies_must_be_json_and_scripts_without_origin_are_served() {
    let app = spawn_app_with(Opts::default().args(&["--allowed-origin", "http://localhost:5173"]));
    let run = json!({"username": "script", "env_id": 1, "path": "./tests/test_quick.py"}).to_string();
    let (status, body) = post_with(
        &app,
        "/api/testruns",
        &[("Content-Type", "text/plain")],
        Some(run.as_bytes()),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert!(body["errors"]["_schema"].is_array(), "{body}");
    let (status, body) = post_with(
        &app,
        "/api/testruns",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://localhost:5173"),
        ],
        Some(b"username=abc"),
    );
    assert_eq!(status, 400, "{body}");
    // JSON from a script (no Origin) and from an allowed origin is served.
    let (status, body) = post_with(
        &app,
        "/api/testruns",
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(run.as_bytes()),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().expect("id");
    app.wait_finished(id, Duration::from_secs(60));
    let run2 = json!({"username": "devserver", "env_id": 2, "path": "./tests/test_quick.py"}).to_string();
    let (status, body) = post_with(
        &app,
        "/api/testruns",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://localhost:5173"),
        ],
        Some(run2.as_bytes()),
    );
    assert_eq!(status, 201, "{body}");
    // A body that is not JSON is refused before any handler, even one that ignores it.
    let (status, body) = post_with(
        &app,
        &format!("/api/testruns/{id}/cancel"),
        &[("Content-Type", "text/plain")],
        Some(b"a=b"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["_schema"].is_array(), "{body}");
    // A cancel with no body and no Origin is served (here: already finished).
    let (status, body) = post_with(&app, &format!("/api/testruns/{id}/cancel"), &[], None);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "already_finished");
}

#[test]
fn a_loopback_server_answers_only_to_loopback_and_given_host_names() {
    let app = spawn_app_with(Opts::default().args(&[
        "--workers",
        "0",
        "--allowed-host",
        "ts.example.com",
        "--public-url",
        "https://pub.example.com/",
    ]));
    for host in [
        "localhost:8000",
        "127.0.0.1",
        "[::1]:9",
        "ts.example.com",
        "pub.example.com:443",
    ] {
        let (status, _, body) = get_with_host(&app, "/api/tests", host);
        assert_eq!(status, 200, "{host}: {body}");
    }
    for host in ["evil.example", "localhost.evil.example:8000", "10.0.0.1"] {
        let (status, _, body) = get_with_host(&app, "/api/tests", host);
        assert_eq!(status, 421, "{host}: {body}");
        let body: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(body["code"], "misdirected_request");
    }
    // A rebound name cannot open /ws either.
    let (status, _, _) = raw(
        &app,
        "GET /ws HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.example\r\n\r\n",
    );
    assert_eq!(status, 421);
}

#[test]
fn every_response_carries_the_security_headers_and_the_app_needs_no_inline_script() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    for path in ["/", "/runs/1", "/api/tests", "/api/nope", "/healthz"] {
        let (_, _, headers) = app.get_raw(path, &[]);
        let h = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{path}: no {name} in {headers:?}"))
        };
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let script_src = csp
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .expect("script-src");
        assert!(!script_src.contains("unsafe"), "{csp}");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("referrer-policy"), "same-origin");
    }
    let (status, body, _) = app.get_raw("/", &[]);
    assert_eq!(status, 200);
    let html = String::from_utf8(body).expect("utf-8");
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap_or("");
        assert!(open.contains("src="), "an inline script: <script{open}>");
    }
    assert!(!html.contains("<style"), "an inline stylesheet");
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains(" onload=") && !lower.contains(" onclick=") && !lower.contains(" onerror="),
        "an inline handler"
    );
}

#[test]
fn control_and_bidi_characters_are_refused_in_names_and_escaped_in_the_log() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    for name in [
        "evil\nINFO forged line",
        "ab\rc",
        "ab\u{1b}[2Jc",
        "ab\u{7f}c",
        "ab\u{9b}c",
        "user\u{202e}gnp.exe",
        "ab\u{2067}c",
    ] {
        let (status, body) = app.post(
            "/api/testruns",
            json!({"username": name, "env_id": 1, "path": "./tests/test_quick.py"}),
        );
        assert_eq!(status, 400, "{name:?}: {body}");
        assert_eq!(body["errors"].as_object().map(|e| e.len()), Some(1), "{body}");
        assert!(body["errors"]["username"].is_array(), "{body}");
    }
    // Text that reaches the log anyway (here a refused Origin) is escaped there.
    let (status, _, _) = raw(
        &app,
        "POST /api/testruns/1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://ev\u{202e}il.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 403);
    wait_until(Duration::from_secs(10), "the refusal in the log", || {
        app.server_log().contains("refused a request from another site")
    });
    let log = app.server_log();
    assert!(!log.contains('\u{202e}'), "a raw bidi override in the log");
    assert!(!log.contains("forged line"), "a refused name reached the log");
}

#[test]
fn line_numbers_past_i64_are_past_the_end_not_a_wrap() {
    let app = spawn_app();
    let id = app.queue(1, "./tests/test_quick.py")["id"].as_i64().expect("id");
    let run = app.wait_finished(id, Duration::from_secs(60));
    let total = run["lines"].as_u64().expect("lines");
    assert!(total > 0, "{run}");
    for from in ["18446744073709551615", "9223372036854775808", "9223372036854775807"] {
        let (status, page) = app.get(&format!("/api/testruns/{id}/lines?from={from}"));
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["lines"], json!([]), "from={from}: {page}");
        assert_eq!(page["total"], total);
    }
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id, "from": u64::MAX}));
    let mut frames = Vec::new();
    let end = loop {
        let Some(v) = ws.next(Duration::from_secs(30)) else {
            panic!("no logEnd; got {frames:?}")
        };
        if v["id"] != id {
            continue;
        }
        if v["event"] == "logEnd" {
            break v;
        }
        frames.push(v);
        assert!(frames.len() < 10, "a huge from wrapped around: {frames:?}");
    };
    assert!(frames.iter().all(|f| f["event"] != "logLines"), "{frames:?}");
    assert_eq!(end["status"], "succeeded");
    // A huge tail is the whole log, once.
    ws.send(json!({"op": "follow", "id": id, "tail": u64::MAX}));
    let (lines, _) = ws.collect_following(id, 0, Duration::from_secs(30));
    assert_eq!(lines.len() as u64, total);
}

/// A POST whose body never arrives, with the head sent.
fn stalled_post(app: &TestApp, path: &str, chunked: bool) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"use"
    } else {
        "Content-Length: 100\r\n\r\n{\"use"
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}"
    )
    .expect("write head");
    s
}

#[test]
fn a_body_that_never_arrives_is_cut_off_and_holds_nothing_up() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let started = Instant::now();
    let mut slow = vec![
        stalled_post(&app, "/api/testruns", false),
        stalled_post(&app, "/api/testruns", true),
        // A handler that never reads its body, and a chunked one it must drain.
        stalled_post(&app, "/api/testruns/1/cancel", true),
    ];
    for _ in 0..200 {
        slow.push(stalled_post(&app, "/api/workers/heartbeat", false));
    }
    // A kept-alive connection whose second request head never completes.
    let mut kept = TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    kept.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut first = Vec::new();
    while !first.ends_with(b"}") {
        let mut buf = [0u8; 4096];
        let n = kept.read(&mut buf).expect("first answer");
        assert!(n > 0, "closed before the first answer");
        first.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));
    for b in b"GET /healthz HTTP/1.1\r\nHo" {
        kept.write_all(&[*b]).expect("trickle");
        std::thread::sleep(Duration::from_millis(300));
    }
    slow.push(kept);
    let t = Instant::now();
    let (status, _) = app.get("/healthz");
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(5), "/healthz took {:?}", t.elapsed());
    eprintln!("/healthz with {} stalled requests open: {:?}", slow.len(), t.elapsed());
    // Each slow request ends: answered (or closed), and its connection closed.
    for (i, s) in slow.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let (status, _, body) = read_response(s);
        match i {
            0 | 1 => {
                assert_eq!(status, 400, "{body}");
                assert!(body.contains("did not arrive"), "{body}");
            }
            2 => assert_eq!(status, 404, "{body}"),
            _ => {}
        }
    }
    let took = started.elapsed();
    eprintln!("every stalled request cut off after {took:?}");
    assert!(took >= Duration::from_secs(8), "cut off too early: {took:?}");
    assert!(took < Duration::from_secs(40), "slow bodies held for {took:?}");
}

#[test]
fn a_client_over_its_connection_cap_is_refused_at_once() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0", "--max-connections-per-client", "4"]));
    let mut held: Vec<_> = (0..4).map(|_| app.ws()).collect();
    let refused = || {
        let mut s = TcpStream::connect(("127.0.0.1", app.port)).expect("the kernel accepts");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let t = Instant::now();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let (status, _, _) = read_response(&mut s);
        (status, t.elapsed())
    };
    let (status, took) = refused();
    assert_eq!(status, 0, "the fifth connection was served");
    assert!(took < Duration::from_secs(5), "refused only after {took:?}");
    held.pop();
    // Its place is free again once one closes.
    wait_until(Duration::from_secs(20), "a free place", || refused().0 == 200);
}

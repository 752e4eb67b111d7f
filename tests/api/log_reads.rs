//! Reading logs whatever their size or the numbers asked for: `/lines` pages
//! capped in bytes with `next`, huge `from` never wraps, `/logs` streamed as
//! valid JSON, every read's peak memory bounded, searches bounded in time, and
//! a `/ws` follower that stops reading costs the server a bounded amount.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// A test printing `LINES` lines of `WIDTH` bytes, then `TAIL` short lines slowly.
const FLOOD: &str = "import os, sys, time\n\ndef test_flood():\n    w = int(os.environ.get('WIDTH', '1000'))\n    for i in range(int(os.environ.get('LINES', '1000'))):\n        print(f'line {i:07d} ' + 'x' * w)\n    sys.stdout.flush()\n    for i in range(int(os.environ.get('TAIL', '0'))):\n        print(f'tail {i}', flush=True)\n        time.sleep(0.01)\n";

fn flood_app(lines: u64, width: u64, tail: u64, args: &[&str]) -> TestApp {
    let app = spawn_app_with(
        Opts::default()
            .args(args)
            .env("LINES", &lines.to_string())
            .env("WIDTH", &width.to_string())
            .env("TAIL", &tail.to_string()),
    );
    std::fs::write(app.path().join("tests/test_flood.py"), FLOOD).expect("write");
    app
}

fn run_flood(app: &TestApp) -> (i64, u64) {
    let run = app.queue(1, "./tests/test_flood.py");
    let id = run["id"].as_i64().expect("id");
    let done = app.wait_finished(id, T);
    assert_eq!(done["status"], "succeeded", "{done}");
    (id, done["lines"].as_u64().expect("lines"))
}

/// A `kB` field of the server's `/proc/PID/status`.
fn status_kb(app: &TestApp, field: &str) -> u64 {
    let pid = app.pid().expect("running");
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("field")
}

/// Runs `f` and returns how far the server's peak RSS rose above its RSS before, in MB.
fn peak_growth_mb(app: &TestApp, f: impl FnOnce()) -> f64 {
    let pid = app.pid().expect("running");
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
    let before = status_kb(app, "VmRSS:");
    f();
    (status_kb(app, "VmHWM:").saturating_sub(before)) as f64 / 1024.0
}

fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
fn lines_pages_are_capped_at_8_mib_and_say_where_the_next_starts() {
    // 300 lines of 60,000 bytes: 18 MB, more than two pages' worth of bytes.
    let app = flood_app(300, 60_000, 0, &[]);
    let (id, total) = run_flood(&app);
    let all = app.log_lines(id);
    assert_eq!(all.len() as u64, total);
    let mut got: Vec<String> = Vec::new();
    let mut from = 0u64;
    let mut pages = 0;
    loop {
        let page = get_json(&app, &format!("/api/testruns/{id}/lines?from={from}&limit=10000"));
        assert_eq!(page["from"].as_u64(), Some(from));
        assert_eq!(page["total"].as_u64(), Some(total));
        let lines = page["lines"].as_array().expect("lines");
        let bytes: usize = lines.iter().map(|l| l.as_str().expect("str").len()).sum();
        assert!(bytes <= 8 << 20, "a page of {bytes} bytes");
        got.extend(lines.iter().map(|l| l.as_str().expect("str").to_string()));
        pages += 1;
        match page["next"].as_u64() {
            Some(next) => {
                assert_eq!(next, from + lines.len() as u64);
                from = next;
            }
            None => {
                assert!(page["next"].is_null(), "{}", page["next"]);
                break;
            }
        }
    }
    assert!(pages >= 3, "18 MB come in at least 3 pages of 8 MiB, not {pages}");
    assert_eq!(got, all);
    // A small page inside the log points on; one that reaches the end says null.
    let page = get_json(&app, &format!("/api/testruns/{id}/lines?from=1&limit=2"));
    assert_eq!(page["next"].as_u64(), Some(3));
    let page = get_json(&app, &format!("/api/testruns/{id}/lines?from={}", total - 1));
    assert!(page["next"].is_null());
}

#[test]
fn a_huge_from_gives_an_empty_page_and_never_wraps() {
    let app = flood_app(7, 10, 0, &[]);
    let (id, total) = run_flood(&app);
    for from in ["18446744073709551615", "9223372036854775808", "9223372036854775807"] {
        let page = get_json(&app, &format!("/api/testruns/{id}/lines?from={from}"));
        assert_eq!(page["lines"], json!([]), "from={from}");
        assert_eq!(page["total"].as_u64(), Some(total));
        assert!(page["next"].is_null());
    }
}

#[test]
fn logs_is_valid_json_whatever_the_output_holds() {
    let app = spawn_app();
    std::fs::write(
        app.path().join("tests/test_odd.py"),
        "def test_odd():\n    print('quote \" backslash \\\\ tab \\t esc \\033[31mred\\033[0m bell \\a nul-ish \\x01 é 😀 </script>')\n",
    )
    .expect("write");
    let run = app.queue(1, "./tests/test_odd.py");
    let id = run["id"].as_i64().expect("id");
    app.wait_finished(id, T);
    let (status, body, headers) = app.get_raw(&format!("/api/testruns/{id}/logs"), &[]);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/json")));
    let v: Value = serde_json::from_slice(&body).expect("the streamed body is one JSON object");
    assert_eq!(v["id"], id);
    let text = v["logs"].as_str().expect("logs");
    assert!(
        text.contains("quote \" backslash \\ tab \t esc \u{1b}[31mred"),
        "{text}"
    );
    assert!(text.contains("é 😀 </script>"));
    let (_, raw, _) = app.get_raw(&format!("/api/testruns/{id}/log.txt"), &[]);
    assert_eq!(text.as_bytes(), &raw[..], "/logs and log.txt carry the same output");
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "only id and logs");
    let (status, body) = app.get("/api/testruns/424242/logs");
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

#[test]
fn reading_a_big_log_costs_bounded_memory() {
    // 1,500 lines of 60,000 bytes: a 90 MB log.
    let app = flood_app(1_500, 60_000, 0, &[]);
    let (id, total) = run_flood(&app);
    let limit_mb = 32.0;
    let logs = peak_growth_mb(&app, || {
        let (status, body, _) = app.get_raw(&format!("/api/testruns/{id}/logs"), &[]);
        assert_eq!(status, 200);
        assert!(body.len() > 90_000_000);
    });
    let txt = peak_growth_mb(&app, || {
        let (status, body, _) = app.get_raw(&format!("/api/testruns/{id}/log.txt"), &[]);
        assert_eq!(status, 200);
        assert!(body.len() > 90_000_000);
    });
    let lines = peak_growth_mb(&app, || {
        let page = get_json(&app, &format!("/api/testruns/{id}/lines?limit=10000"));
        assert!(page["next"].is_u64());
    });
    let follow = peak_growth_mb(&app, || {
        let mut ws = app.ws();
        let (got, end) = ws.collect(id, 0, T);
        assert_eq!(got.len() as u64, total);
        assert_eq!(end["total"].as_u64(), Some(total));
    });
    eprintln!("peak RSS growth (MB): /logs {logs:.1}, log.txt {txt:.1}, /lines {lines:.1}, ws follow {follow:.1}");
    for (what, mb) in [
        ("/logs", logs),
        ("log.txt", txt),
        ("/lines", lines),
        ("ws follow", follow),
    ] {
        assert!(mb < limit_mb, "{what} raised the peak RSS by {mb:.1} MB");
    }
}

#[test]
fn a_follower_that_does_not_read_costs_bounded_memory() {
    // 3,000 lines of 60,000 bytes (180 MB) while one follower reads nothing.
    let app = flood_app(3_000, 60_000, 0, &[]);
    let mut ws = app.ws();
    let run = app.queue(1, "./tests/test_flood.py");
    let id = run["id"].as_i64().expect("id");
    let before = status_kb(&app, "VmRSS:");
    let growth = peak_growth_mb(&app, || {
        ws.send(json!({"op": "follow", "id": id, "from": 0}));
        let done = app.wait_finished(id, T);
        assert_eq!(done["status"], "succeeded");
    });
    eprintln!(
        "a stalled follower of a 180 MB flood: peak RSS {:.1} MB above {:.1} MB",
        growth,
        before as f64 / 1024.0
    );
    assert!(growth < 64.0, "the peak RSS rose by {growth:.1} MB");
    // It is told it lagged, and following again from `next` gets the rest.
    let mut next = 0u64;
    loop {
        let v = ws.next(T).expect("a frame");
        if v["id"].as_i64() != Some(id) {
            continue;
        }
        match v["event"].as_str() {
            Some("logLines") => {
                assert_eq!(v["from"].as_u64(), Some(next));
                next += v["lines"].as_array().expect("lines").len() as u64;
            }
            Some("lagged") => {
                assert_eq!(v["next"].as_u64(), Some(next));
                let (rest, end) = ws.collect(id, next, T);
                assert_eq!(next + rest.len() as u64, end["total"].as_u64().expect("total"));
                return;
            }
            Some("logEnd") => panic!("a follower that read nothing of 180 MB never lagged"),
            _ => {}
        }
    }
}

#[test]
fn a_follow_from_past_the_end_gets_just_log_end() {
    let app = flood_app(7, 10, 0, &[]);
    let (id, total) = run_flood(&app);
    let mut ws = app.ws();
    for from in [u64::MAX, 1 << 63, (1 << 63) - 1, total] {
        ws.send(json!({"op": "follow", "id": id, "from": from}));
        let v = ws.until(T, |v| v["id"] == id);
        assert_eq!(v["event"], "logEnd", "from={from}: {v}");
        assert_eq!(v["total"].as_u64(), Some(total));
    }
    ws.send(json!({"op": "follow", "id": id, "tail": u64::MAX}));
    let v = ws.until(T, |v| v["id"] == id);
    assert_eq!(v["from"].as_u64(), Some(0), "a huge tail starts at the first line: {v}");
}

#[test]
fn a_live_follow_from_past_the_end_gets_no_lines_and_the_true_total() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "2"));
    let run = app.queue(1, "./tests/test_slow.py");
    let id = run["id"].as_i64().expect("id");
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id, "from": u64::MAX}));
    let v = ws.until(T, |v| v["id"] == id && v["event"] != "logPartial");
    assert_eq!(v["event"], "logEnd", "{v}");
    let done = app.wait_finished(id, T);
    assert_eq!(v["total"], done["lines"]);
}

#[test]
fn search_says_whether_it_is_complete() {
    let app = spawn_app_with(Opts::default().env("LINES", "3000"));
    let run = app.queue(1, "./tests/test_lines.py");
    let id = run["id"].as_i64().expect("id");
    app.wait_finished(id, T);
    let found = get_json(&app, &format!("/api/testruns/{id}/search?q=line%20002999"));
    assert_eq!(found["complete"], true, "{found}");
    assert_eq!(found["more"], false);
    assert_eq!(found["matches"].as_array().map(Vec::len), Some(1));
    let found = get_json(&app, &format!("/api/testruns/{id}/search?q=line&limit=5"));
    assert_eq!(
        (found["more"].as_bool(), found["complete"].as_bool()),
        (Some(true), Some(true))
    );

    // With no time at all, the answer says it is partial.
    let app = spawn_app_with(Opts::default().env("LINES", "3000").args(&["--search-budget-ms", "0"]));
    let run = app.queue(1, "./tests/test_lines.py");
    let id = run["id"].as_i64().expect("id");
    app.wait_finished(id, T);
    let found = get_json(&app, &format!("/api/testruns/{id}/search?q=line%20002999"));
    assert_eq!(found["complete"], false, "{found}");
}

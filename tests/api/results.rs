//! Per-test results against the real binary and real pytest: counts equal
//! pytest's own summary line, `line` points at the line naming the test,
//! exit codes in words, selecting (node id, `-k`, `-m`), re-runs, live counts,
//! and JUnit files that are missing, malformed, truncated, huge or hostile.

use crate::helpers::{spawn_app_with, wait_until, Opts, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// A suite with every kind of result pytest has.
pub const MIXED: &str = r#"import pytest

def test_ok():
    print("hello from test_ok")

def test_fail():
    assert 0, "boom"

@pytest.mark.skip(reason="nope")
def test_skip():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert 0

@pytest.mark.xfail
def test_xpass():
    pass

@pytest.fixture
def bad():
    raise RuntimeError("fixture broke")

def test_err(bad):
    pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_td(bad_teardown):
    assert 0

@pytest.mark.parametrize("x", ["a b", "c[d]", 1])
def test_p(x):
    pass

class TestK:
    def test_m(self):
        pass

    def test_n(self):
        assert False, "class failure"

@pytest.mark.slow
def test_marked():
    pass
"#;

fn app_with_files(opts: Opts, files: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_with(opts);
    for (path, body) in files {
        let p = app.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    app
}

fn create(app: &TestApp, body: Value) -> Value {
    let (status, run) = app.post("/api/testruns", body);
    assert_eq!(status, 201, "{run}");
    run
}

fn run_to_end(app: &TestApp, env: u32, path: &str) -> Value {
    let run = create(app, json!({"username": "tester", "env_id": env, "path": path}));
    app.wait_finished(run["id"].as_i64().expect("id"), T)
}

fn results(app: &TestApp, id: i64, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/testruns/{id}/results{query}"));
    assert_eq!(status, 200, "{body}");
    body
}

pub fn plain(line: &str) -> String {
    strip_ansi_escapes::strip_str(line)
}

/// pytest's own last line (`= 2 failed, 6 passed, 1 skipped … in 0.05s =`) as counts.
pub fn pytest_summary(lines: &[String]) -> BTreeMap<String, u64> {
    let last = lines
        .iter()
        .rev()
        .map(|l| plain(l))
        .find(|l| l.starts_with('=') && l.contains(" in "))
        .expect("pytest's summary line");
    let body = last.trim_matches(|c| c == '=' || c == ' ');
    let counts = body.rsplit_once(" in ").map_or(body, |(c, _)| c);
    let mut out = BTreeMap::new();
    for part in counts.split(", ") {
        if let Some((n, word)) = part.split_once(' ') {
            let key = match word {
                "errors" => "error",
                "warnings" | "warning" => continue,
                w => w,
            };
            out.insert(key.to_string(), n.parse().expect("a count"));
        }
    }
    out
}

pub fn summary_counts(summary: &Value) -> BTreeMap<String, u64> {
    ["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
        .iter()
        .filter_map(|k| {
            let n = summary[*k].as_u64().expect("a count");
            (n > 0).then(|| (k.to_string(), n))
        })
        .collect()
}

#[test]
fn results_counts_equal_pytests_own_summary_and_lines_point_at_the_test() {
    let app = app_with_files(Opts::default(), &[("tests/test_mixed.py", MIXED)]);
    let run = run_to_end(&app, 1, "./tests/test_mixed.py");
    let id = run["id"].as_i64().expect("id");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["outcome"], "tests_failed");
    assert_eq!(run["revision"], Value::Null, "a temporary folder is not a git checkout");
    assert_eq!(run["rerun_of"], Value::Null);
    assert_eq!(run["select"], Value::Null);
    assert_eq!(run["results_note"], Value::Null, "{run}");
    let summary = &run["summary"];
    assert_eq!(summary["final"], true, "{run}");
    let lines = app.log_lines(id);
    assert_eq!(summary_counts(summary), pytest_summary(&lines), "{summary}");
    assert_eq!(summary["total"], 14);

    let body = results(&app, id, "");
    assert_eq!(body["id"], id);
    assert_eq!(body["summary"], *summary);
    let tests = body["tests"].as_array().expect("tests");
    let ids: Vec<&str> = tests.iter().map(|t| t["nodeid"].as_str().expect("nodeid")).collect();
    assert_eq!(ids[0], "tests/test_mixed.py::test_ok");
    assert!(ids.contains(&"tests/test_mixed.py::test_p[a b]"), "{ids:?}");
    assert!(ids.contains(&"tests/test_mixed.py::test_p[c[d]]"), "{ids:?}");
    assert!(ids.contains(&"tests/test_mixed.py::TestK::test_m"), "{ids:?}");
    let by_id = |n: &str| tests.iter().find(|t| t["nodeid"] == n).expect("listed").clone();
    assert_eq!(by_id("tests/test_mixed.py::test_xfail")["outcome"], "xfailed");
    assert_eq!(by_id("tests/test_mixed.py::test_xpass")["outcome"], "xpassed");
    assert_eq!(by_id("tests/test_mixed.py::test_err")["outcome"], "error");
    assert_eq!(by_id("tests/test_mixed.py::test_skip")["outcome"], "skipped");
    let fail = by_id("tests/test_mixed.py::test_fail");
    assert_eq!(fail["outcome"], "failed");
    assert_eq!(fail["message"], "AssertionError: boom");
    assert!(fail["duration_s"].as_f64().is_some(), "{fail}");
    // Every test's line is the output line that names it.
    for t in tests {
        let n = t["line"].as_u64().unwrap_or_else(|| panic!("no line: {t}")) as usize;
        let text = plain(&lines[n]);
        assert!(
            text.starts_with(t["nodeid"].as_str().expect("id")),
            "line {n} is {text:?} for {t}"
        );
    }
    // The teardown error is a second row of the same test.
    let td: Vec<&Value> = tests
        .iter()
        .filter(|t| t["nodeid"] == "tests/test_mixed.py::test_td")
        .collect();
    assert_eq!(
        td.iter()
            .map(|t| t["outcome"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["failed", "error"]
    );

    let failures = results(&app, id, "?outcome=failed,error");
    let outcomes: Vec<&str> = failures["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes.len(), 5, "{failures}");
    assert!(outcomes.iter().all(|o| *o == "failed" || *o == "error"));
    let (status, bad) = app.get(&format!("/api/testruns/{id}/results?outcome=failed,nope"));
    assert_eq!(status, 400, "{bad}");
    assert!(bad["errors"]["outcome"].is_array(), "{bad}");
    let (status, _) = app.get("/api/testruns/999999/results");
    assert_eq!(status, 404);
    // The list carries the same fields, and the JUnit file is gone.
    let (_, list) = app.get("/api/testruns");
    assert_eq!(list[0]["summary"], *summary);
    let junit_dir = app.db.parent().expect("data dir").join("junit");
    let left: Vec<_> = std::fs::read_dir(&junit_dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "JUnit files left: {left:?}");
}

#[test]
fn results_exit_codes_are_said_in_words() {
    let app = app_with_files(
        Opts::default(),
        &[
            ("tests/broken/test_syntax.py", "def test_x(:\n    pass\n"),
            (
                "tests/internal/conftest.py",
                "def pytest_collection_modifyitems(items):\n    raise RuntimeError('hook broke')\n",
            ),
            ("tests/internal/test_i.py", "def test_i():\n    pass\n"),
            ("tests/empty/test_none.py", "x = 1\n"),
        ],
    );
    let cases = [
        (json!({"path": "./tests/broken/"}), "interrupted", 2),
        (json!({"path": "./tests/internal/"}), "internal_error", 3),
        (
            json!({"path": "./tests/test_quick.py", "markers": "a and"}),
            "usage_error",
            4,
        ),
        (json!({"path": "./tests/empty/"}), "no_tests", 5),
        (json!({"path": "./tests/test_quick.py"}), "passed", 0),
    ];
    for (i, (extra, word, code)) in cases.iter().enumerate() {
        let mut body = json!({"username": "tester", "env_id": i + 1});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let run = create(&app, body);
        let run = app.wait_finished(run["id"].as_i64().expect("id"), T);
        assert_eq!(run["exit_code"], *code, "{run}");
        assert_eq!(run["outcome"], *word, "{run}");
    }
    // A cancelled run has no outcome.
    let slow = create(
        &app,
        json!({"username": "tester", "env_id": 9, "path": "./tests/test_slow.py"}),
    );
    let id = slow["id"].as_i64().expect("id");
    app.wait_run(id, T, |r| r["status"] == "running");
    let (status, _) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!(status, 200);
    let run = app.wait_run(id, T, |r| r["status"] == "cancelled" && r["exit_code"] != Value::Null);
    assert_eq!(run["outcome"], Value::Null, "{run}");
}

#[test]
fn results_node_id_keyword_and_markers_select_tests() {
    let app = app_with_files(Opts::default(), &[("tests/test_mixed.py", MIXED)]);
    let ids_of = |run: &Value| -> Vec<String> {
        let body = results(&app, run["id"].as_i64().expect("id"), "");
        body["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .map(|t| t["nodeid"].as_str().expect("id").to_string())
            .collect()
    };
    let one = run_to_end(&app, 1, "./tests/test_mixed.py::TestK::test_m");
    assert_eq!(one["outcome"], "passed", "{one}");
    assert_eq!(ids_of(&one), ["tests/test_mixed.py::TestK::test_m"]);
    let param = run_to_end(&app, 2, "./tests/test_mixed.py::test_p[a b]");
    assert_eq!(ids_of(&param), ["tests/test_mixed.py::test_p[a b]"]);

    let k = create(
        &app,
        json!({"username": "tester", "env_id": 3, "path": "./tests/test_mixed.py", "keyword": "test_p and not 1"}),
    );
    assert_eq!(k["keyword"], "test_p and not 1");
    let k = app.wait_finished(k["id"].as_i64().expect("id"), T);
    assert_eq!(
        ids_of(&k),
        ["tests/test_mixed.py::test_p[a b]", "tests/test_mixed.py::test_p[c[d]]"]
    );
    let m = create(
        &app,
        json!({"username": "tester", "env_id": 4, "path": "./tests/test_mixed.py", "markers": "slow"}),
    );
    assert_eq!(m["markers"], "slow");
    let m = app.wait_finished(m["id"].as_i64().expect("id"), T);
    assert_eq!(ids_of(&m), ["tests/test_mixed.py::test_marked"]);

    for (field, value) in [
        ("keyword", json!("-x")),
        ("keyword", json!("")),
        ("markers", json!("slow\u{202e}")),
        ("markers", json!("a\nb")),
        ("keyword", json!("x".repeat(201))),
        ("keyword", json!(7)),
        ("path", json!("./tests/nope.py::test_x")),
        ("path", json!("./tests/::test_x")),
        ("path", json!("./tests/test_mixed.py::")),
    ] {
        let mut body = json!({"username": "tester", "env_id": 5, "path": "./tests/test_mixed.py"});
        body[field] = value.clone();
        let (status, err) = app.post("/api/testruns", body);
        assert_eq!(status, 400, "{field}={value}: {err}");
        assert!(err["errors"][field].is_array(), "{field}={value}: {err}");
    }
}

#[test]
fn results_rerun_failed_runs_exactly_the_failed_node_ids() {
    let app = app_with_files(Opts::default(), &[("tests/test_mixed.py", MIXED)]);
    let first = run_to_end(&app, 1, "./tests/test_mixed.py");
    let id = first["id"].as_i64().expect("id");
    let failed: Vec<String> = results(&app, id, "?outcome=failed,error")["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["nodeid"].as_str().expect("id").to_string())
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        });
    assert_eq!(failed.len(), 4, "{failed:?}");

    let (status, again) = app.post(
        &format!("/api/testruns/{id}/rerun"),
        json!({"username": "rerunner", "only_failed": true}),
    );
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["rerun_of"], id);
    assert_eq!(again["env_id"], 1);
    assert_eq!(again["path"], "./tests/test_mixed.py");
    assert_eq!(again["select"], json!(failed));
    let again = app.wait_finished(again["id"].as_i64().expect("id"), T);
    let ran: Vec<String> = results(&app, again["id"].as_i64().expect("id"), "")["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["nodeid"].as_str().expect("id").to_string())
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        });
    assert_eq!(ran, failed);

    // A plain re-run: same path, another environment when asked.
    let (status, plain_rerun) = app.post(
        &format!("/api/testruns/{id}/rerun"),
        json!({"username": "rerunner", "env_id": 2}),
    );
    assert_eq!(status, 201, "{plain_rerun}");
    assert_eq!(
        (plain_rerun["env_id"].clone(), plain_rerun["select"].clone()),
        (json!(2), Value::Null)
    );
    app.wait_finished(plain_rerun["id"].as_i64().expect("id"), T);

    let ok = run_to_end(&app, 3, "./tests/test_quick.py");
    let (status, err) = app.post(
        &format!("/api/testruns/{}/rerun", ok["id"]),
        json!({"username": "rerunner", "only_failed": true}),
    );
    assert_eq!(status, 400, "{err}");
    assert!(err["errors"]["only_failed"].is_array(), "{err}");
    let (status, err) = app.post(
        &format!("/api/testruns/{id}/rerun"),
        json!({"username": "rerunner", "bogus": 1}),
    );
    assert_eq!(status, 400, "{err}");
    assert!(err["errors"]["bogus"].is_array(), "{err}");
    let (status, err) = app.post(&format!("/api/testruns/{id}/rerun"), json!({"username": "x"}));
    assert_eq!(status, 400, "{err}");
    assert!(err["errors"]["username"].is_array(), "{err}");

    let slow = create(
        &app,
        json!({"username": "tester", "env_id": 4, "path": "./tests/test_slow.py"}),
    );
    let sid = slow["id"].as_i64().expect("id");
    let (status, err) = app.post(&format!("/api/testruns/{sid}/rerun"), json!({"username": "rerunner"}));
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["code"], "not_finished");
    app.post(&format!("/api/testruns/{sid}/cancel"), json!({}));
    let (status, _) = app.post("/api/testruns/999999/rerun", json!({"username": "rerunner"}));
    assert_eq!(status, 404);
}

#[test]
fn results_live_counts_grow_while_the_run_goes() {
    let gate = tempfile::tempdir().expect("gate dir");
    let flag = gate.path().join("go");
    let suite = format!(
        "import os, time\n\ndef test_a():\n    pass\n\ndef test_b():\n    assert 0\n\ndef test_c():\n    pass\n\ndef test_wait():\n    while not os.path.exists({flag:?}):\n        time.sleep(0.05)\n",
        flag = flag.to_str().expect("utf-8 path")
    );
    let app = app_with_files(Opts::default(), &[("tests/test_gate.py", &suite)]);
    let mut ws = app.ws();
    let run = create(
        &app,
        json!({"username": "tester", "env_id": 1, "path": "./tests/test_gate.py"}),
    );
    let id = run["id"].as_i64().expect("id");
    let live = app.wait_run(id, T, |r| r["summary"]["total"] == 3);
    assert_eq!(live["status"], "running");
    assert_eq!(live["summary"]["final"], false);
    assert_eq!(
        (live["summary"]["passed"].clone(), live["summary"]["failed"].clone()),
        (json!(2), json!(1))
    );
    let frame = ws.until(T, |f| {
        f["event"] == "taskChanged" && f["run"]["id"] == id && f["run"]["summary"]["total"] == 3
    });
    assert_eq!(frame["run"]["summary"]["final"], false);
    std::fs::write(&flag, "").expect("open the gate");
    let done = app.wait_finished(id, T);
    assert_eq!(done["summary"]["final"], true);
    assert_eq!(done["summary"]["total"], 4);
    // The frame that ends the run carries the final counts.
    let end = ws.until(T, |f| {
        f["event"] == "taskChanged" && f["run"]["id"] == id && f["run"]["status"] == "failed"
    });
    assert_eq!(end["run"]["summary"]["final"], true, "{end}");
}

/// A command that runs pytest without JUnit, then writes what `TESTSCHEDULER_ENV_ID` says to the `{junit}` path.
const HOSTILE: &str = r#"import os, subprocess, sys
junit, path = sys.argv[1], sys.argv[2]
code = subprocess.call([sys.executable, "-m", "pytest", "--color=yes", "-vv", path])
env = os.environ["TESTSCHEDULER_ENV_ID"]
if env == "1":
    open(junit, "w").write("<testsuites><testsuite><testcase name='x'")
elif env == "2":
    open(junit, "w").write("not xml at all")
elif env == "3":
    with open(junit, "w") as f:
        f.write("<testsuites><testsuite>")
        f.truncate(65 * 1024 * 1024)
elif env == "4":
    open(junit, "w").write('<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuites><testsuite><testcase name="&b;"/></testsuite></testsuites>')
elif env == "5":
    open(junit, "w").write("<testsuites>" + "<testsuite>" * 200000 + "</testsuite>" * 200000 + "</testsuites>")
sys.exit(code)
"#;

#[test]
fn results_a_bad_junit_file_keeps_the_live_counts_and_says_why() {
    let app = app_with_files(
        Opts::default().args(&["--command", "python3 hostile.py {junit} {path}"]),
        &[("hostile.py", HOSTILE)],
    );
    let wants = [
        (1, "not valid XML"),
        (2, "not valid XML"),
        (3, "larger than 64 MiB"),
        (4, "not valid XML"),
        (5, ""),
        (6, "wrote no JUnit file"),
    ];
    for (env, why) in wants {
        let run = run_to_end(&app, env, "./tests/test_quick.py");
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["outcome"], "passed");
        let s = &run["summary"];
        assert_eq!(
            (s["passed"].clone(), s["total"].clone()),
            (json!(2), json!(2)),
            "env {env}: {run}"
        );
        if env == 5 {
            // Deep nesting is either refused or read as a file without tests.
            assert!(run["results_note"].is_string() || s["final"] == true, "{run}");
            continue;
        }
        assert_eq!(s["final"], false, "env {env}: {run}");
        let note = run["results_note"].as_str().unwrap_or_default();
        assert!(note.contains(why), "env {env}: {note:?}");
        let body = results(&app, run["id"].as_i64().expect("id"), "");
        assert_eq!(body["tests"].as_array().map(Vec::len), Some(2), "{body}");
    }
    let (status, health) = app.get("/healthz");
    assert_eq!(status, 200, "{health}");
}

#[test]
fn results_a_command_without_junit_still_counts_live() {
    let app = spawn_app_with(Opts::default().args(&["--command", "python3 -m pytest -vv {path}"]));
    let run = run_to_end(&app, 1, "./tests/test_quick.py");
    assert_eq!(run["summary"]["passed"], 2, "{run}");
    assert_eq!(run["summary"]["final"], false);
    assert!(
        run["results_note"].as_str().is_some_and(|n| n.contains("{junit}")),
        "{run}"
    );
    wait_until(T, "results listed", || {
        results(&app, run["id"].as_i64().expect("id"), "")["tests"]
            .as_array()
            .is_some_and(|t| t.len() == 2)
    });
}

#[test]
fn results_live_counts_go_out_at_most_once_a_second() {
    // 40 tests of 0.1 s each: results every 100 ms, for about 4 s.
    let suite =
        "import time, pytest\n\n@pytest.mark.parametrize('i', range(40))\ndef test_t(i):\n    time.sleep(0.1)\n";
    let app = app_with_files(Opts::default(), &[("tests/test_paced.py", suite)]);
    let mut ws = app.ws();
    let run = create(
        &app,
        json!({"username": "tester", "env_id": 1, "path": "./tests/test_paced.py"}),
    );
    let id = run["id"].as_i64().expect("id");
    let mut live_frames = Vec::new();
    let deadline = std::time::Instant::now() + T;
    loop {
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        let Some(f) = ws.next(Duration::from_secs(1)) else {
            continue;
        };
        if f["event"] != "taskChanged" || f["run"]["id"] != id {
            continue;
        }
        let r = &f["run"];
        if r["status"] == "running" && r["summary"]["final"] == false {
            live_frames.push(r["summary"]["total"].as_u64().unwrap_or(0));
        }
        if r["status"] == "succeeded" {
            assert_eq!(r["summary"]["total"], 40, "{f}");
            assert_eq!(r["summary"]["final"], true);
            break;
        }
    }
    assert!(!live_frames.is_empty(), "live counts went out while it ran");
    // At most one live frame per second the run was running (read from the
    // server's own stamps, so a slow reader here cannot bunch them up).
    let (_, done) = app.get(&format!("/api/testruns/{id}"));
    let stamp = |k: &str| chrono::DateTime::parse_from_rfc3339(done[k].as_str().expect("a moment")).expect("RFC 3339");
    let running_s = (stamp("finished_at") - stamp("started_at")).num_milliseconds() as f64 / 1000.0;
    assert!(
        live_frames.len() as f64 <= running_s.ceil() + 1.0,
        "{} live frames in {running_s} s",
        live_frames.len()
    );
    for pair in live_frames.windows(2) {
        assert!(
            pair[1] > pair[0],
            "a live frame only goes out when the counts changed: {live_frames:?}"
        );
    }
}

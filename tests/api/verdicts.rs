//! Verdicts, history and quarantine, black-box. Real runs of a pytest suite
//! whose outcomes follow `TESTSCHEDULER_ENV_ID` and counter files make the
//! history; histories too long or too odd to run (revisions, xpassed, many
//! environments) are written into the server's database beside it, as the
//! results parser stores them, and queried over HTTP; quarantine is set off
//! by real runs ending.

use crate::helpers::{spawn_app_with, wait_until, Opts, TestApp, BIN};
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Writes finished runs straight into the server's database, beside it.
struct History {
    conn: Connection,
}

impl History {
    fn open(app: &TestApp) -> History {
        let conn = Connection::open(&app.db).expect("open the server's database");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        History { conn }
    }

    /// A run on `env` at `commit` that ended `ago` seconds ago with `results`; its id.
    fn run(&self, env: u32, commit: Option<&str>, ago: i64, results: &[(&str, &str)]) -> i64 {
        let end = testscheduler::domain::run::timestamp(chrono::Utc::now() - chrono::Duration::seconds(ago));
        self.conn
            .execute(
                "INSERT INTO runs (username, env_id, path, status, created_at, started_at, finished_at, exit_code,
                                   timeout_s, holds_env, revision_commit, revision_dirty)
                 VALUES ('hist', ?1, './tests/', 'failed', ?2, ?2, ?2, 1, 60, 0, ?3, ?4)",
                params![env, end, commit, commit.map(|_| 0)],
            )
            .expect("insert run");
        let id = self.conn.last_insert_rowid();
        for (seq, (nodeid, outcome)) in results.iter().enumerate() {
            self.conn
                .execute(
                    "INSERT INTO test_results (run_id, seq, nodeid, outcome, duration_s, message, line)
                     VALUES (?1, ?2, ?3, ?4, 0.25, NULL, NULL)",
                    params![id, seq as i64, nodeid, outcome],
                )
                .expect("insert result");
        }
        id
    }

    /// Three tests that fail only on `env`: twice there, passing on env 2 at the same revision.
    fn suspect(&self, env: u32, ago: i64) -> Vec<i64> {
        let fails: Vec<(&str, &str)> = SUSPECTS.iter().map(|n| (*n, "failed")).collect();
        let passes: Vec<(&str, &str)> = SUSPECTS.iter().map(|n| (*n, "passed")).collect();
        vec![
            self.run(env, Some("aaa"), ago, &fails),
            self.run(env, Some("aaa"), ago, &fails),
            self.run(2, Some("aaa"), ago, &passes),
        ]
    }
}

const SUSPECTS: [&str; 3] = [
    "tests/test_s.py::test_s1",
    "tests/test_s.py::test_s2",
    "tests/test_s.py::TestS::test_s3[1]",
];

fn app(args: &[&str]) -> TestApp {
    spawn_app_with(Opts::default().args(args))
}

/// The verdict of `nodeid` in a `GET /api/verdicts` body.
fn verdict_of<'a>(body: &'a Value, nodeid: &str) -> Option<&'a Value> {
    body["tests"].as_array()?.iter().find(|t| t["nodeid"] == nodeid)
}

#[test]
fn each_verdict_comes_out_of_its_history() {
    let app = app(&["--workers", "0"]);
    let h = History::open(&app);
    let f1 = h.run(
        1,
        Some("aaa"),
        100,
        &[
            ("tests/test_f.py::test_flaky", "passed"),
            ("tests/test_ok.py::test_ok", "passed"),
        ],
    );
    let f2 = h.run(
        1,
        Some("aaa"),
        90,
        &[
            ("tests/test_f.py::test_flaky", "failed"),
            ("tests/test_ok.py::test_ok", "passed"),
        ],
    );
    let s = h.suspect(7, 80);
    let b1 = h.run(
        3,
        Some("b1"),
        70,
        &[
            ("tests/test_b.py::test_broken", "failed"),
            ("tests/test_ok.py::test_ok", "skipped"),
        ],
    );
    let b2 = h.run(4, Some("b2"), 60, &[("tests/test_b.py::test_broken", "error")]);
    let b3 = h.run(
        3,
        None,
        50,
        &[
            ("tests/test_b.py::test_broken", "failed"),
            ("tests/test_x.py::test_x", "xfailed"),
        ],
    );

    let (status, body) = app.get("/api/verdicts");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        verdict_of(&body, "tests/test_f.py::test_flaky"),
        Some(&json!({"nodeid": "tests/test_f.py::test_flaky", "verdict": "flaky", "envs": [1], "evidence": [f2, f1]}))
    );
    for n in SUSPECTS {
        assert_eq!(
            verdict_of(&body, n),
            Some(&json!({"nodeid": n, "verdict": "env_suspect", "envs": [7], "evidence": [s[2], s[1], s[0]]})),
            "{body}"
        );
    }
    assert_eq!(
        verdict_of(&body, "tests/test_b.py::test_broken"),
        Some(
            &json!({"nodeid": "tests/test_b.py::test_broken", "verdict": "broken", "envs": [3, 4], "evidence": [b3, b2, b1]})
        )
    );
    assert_eq!(
        body["tests"].as_array().map(Vec::len),
        Some(5),
        "healthy tests have no verdict: {body}"
    );
    let mut suspects: Vec<&str> = SUSPECTS.to_vec();
    suspects.sort();
    assert_eq!(
        body["envs"],
        json!([{"id": 7, "verdict": "suspect", "tests": suspects}])
    );

    // A window of 2 holds too few results for `broken`; flaky and env_suspect stay.
    let (status, small) = app.get("/api/verdicts?window=2");
    assert_eq!(status, 200, "{small}");
    assert!(verdict_of(&small, "tests/test_b.py::test_broken").is_none(), "{small}");
    assert_eq!(
        verdict_of(&small, "tests/test_f.py::test_flaky").map(|v| &v["verdict"]),
        Some(&json!("flaky"))
    );
    // A later pass on env 7 clears env 7 (each test's window now holds it).
    let passes: Vec<(&str, &str)> = SUSPECTS.iter().map(|n| (*n, "passed")).collect();
    h.run(7, Some("ccc"), 40, &passes);
    let (_, after) = app.get("/api/verdicts");
    assert!(SUSPECTS.iter().all(|n| verdict_of(&after, n).is_none()), "{after}");
    assert_eq!(after["envs"], json!([]));
}

#[test]
fn a_healthy_history_gives_empty_lists() {
    let app = app(&["--workers", "0"]);
    let (status, body) = app.get("/api/verdicts");
    assert_eq!((status, &body), (200, &json!({"tests": [], "envs": []})));
    let h = History::open(&app);
    for env in 1..=4 {
        h.run(
            env,
            Some("aaa"),
            10,
            &[
                ("tests/test_a.py::test_a", "passed"),
                ("tests/test_a.py::test_b", "skipped"),
            ],
        );
        h.run(
            env,
            None,
            5,
            &[
                ("tests/test_a.py::test_a", "xpassed"),
                ("tests/test_a.py::test_b", "xfailed"),
            ],
        );
    }
    // One failure is no verdict.
    h.run(1, Some("bbb"), 1, &[("tests/test_a.py::test_a", "failed")]);
    let (status, body) = app.get("/api/verdicts");
    assert_eq!((status, &body), (200, &json!({"tests": [], "envs": []})));
}

#[test]
fn the_suspect_threshold_is_a_flag() {
    let app = app(&["--workers", "0", "--suspect-threshold", "4"]);
    History::open(&app).suspect(7, 10);
    let (_, body) = app.get("/api/verdicts");
    assert_eq!(body["tests"].as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(body["envs"], json!([]), "3 tests are below a threshold of 4");
    for bad in ["0", "x", "-1"] {
        let out = Command::new(BIN)
            .arg(format!("--suspect-threshold={bad}"))
            .output()
            .expect("run");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--suspect-threshold"), "{bad}: {err}");
    }
}

#[test]
fn bad_queries_name_their_parameter() {
    let app = app(&["--workers", "0"]);
    for q in ["window=0", "window=1001", "window=x", "window=-3", "window="] {
        let (status, body) = app.get(&format!("/api/verdicts?{q}"));
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["code"], "validation_failed");
        assert!(body["errors"]["window"].is_array(), "{q}: {body}");
    }
    assert_eq!(app.get("/api/verdicts?window=1000").0, 200);
    let (status, body) = app.get("/api/results/history");
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["nodeid"].is_array(), "{body}");
    let (status, body) = app.get("/api/results/history?nodeid=");
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["nodeid"].is_array(), "{body}");
    let (status, body) = app.get("/api/results/history?nodeid=t.py::a&limit=0");
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["limit"].is_array(), "{body}");
    assert!(body["errors"]["nodeid"].is_null(), "{body}");
}

#[test]
fn history_is_newest_first_with_env_revision_and_outcome() {
    let app = app(&["--workers", "0"]);
    let h = History::open(&app);
    let nodeid = "tests/test_h.py::TestH::test_p[a b]";
    let old = h.run(1, Some("aaa"), 30, &[(nodeid, "passed")]);
    h.run(2, Some("aaa"), 20, &[("tests/test_h.py::other", "failed")]);
    let new = h.run(3, None, 10, &[("tests/test_h.py::other", "passed"), (nodeid, "failed")]);
    let (status, body) = app.get("/api/results/history?nodeid=tests/test_h.py::TestH::test_p%5Ba%20b%5D");
    assert_eq!(status, 200, "{body}");
    let list = body.as_array().expect("a list");
    assert_eq!(list.len(), 2, "{body}");
    assert_eq!(list[0]["run_id"], new);
    assert_eq!(list[0]["env_id"], 3);
    assert_eq!(list[0]["revision"], Value::Null);
    assert_eq!(list[0]["outcome"], "failed");
    assert_eq!(list[0]["duration_s"], 0.25);
    assert!(list[0]["finished_at"].is_string());
    assert_eq!(list[1]["run_id"], old);
    assert_eq!(list[1]["revision"], json!({"commit": "aaa", "dirty": false}));
    let keys: Vec<&String> = list[1].as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 6, "{:?}", keys);
    let (_, one) = app.get(&format!(
        "/api/results/history?nodeid={}&limit=1",
        "tests/test_h.py::other"
    ));
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["outcome"], "passed");
    let (status, none) = app.get("/api/results/history?nodeid=tests/test_none.py::x");
    assert_eq!((status, none), (200, json!([])));
}

fn env(app: &TestApp, id: u32) -> Value {
    let (status, body) = app.get(&format!("/api/envs/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs test_quick.py on env 1 to its end (which sets quarantine off).
fn end_a_run(app: &TestApp) {
    let run = app.queue(1, "./tests/test_quick.py");
    let id = run["id"].as_i64().expect("id");
    assert_eq!(app.wait_finished(id, T)["status"], "succeeded");
}

#[test]
fn quarantine_disables_a_suspect_env_until_enabled_and_only_on_new_evidence() {
    let app = app(&["--quarantine"]);
    let h = History::open(&app);
    h.suspect(7, 3600);
    end_a_run(&app);
    wait_until(T, "env 7 quarantined", || env(&app, 7)["state"] == "disabled");
    assert_eq!(env(&app, 7)["disabled_reason"], "suspect: 3 tests fail only here");

    // Its queue holds until someone enables it.
    let (status, waiting) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 7, "path": "./tests/test_quick.py", "wait": true}),
    );
    assert_eq!(status, 201, "{waiting}");
    assert_eq!(waiting["status"], "queued");
    let (status, e) = app.post("/api/envs/7/enable", json!({}));
    assert_eq!(status, 200, "{e}");
    let waiting = waiting["id"].as_i64().expect("id");
    assert_eq!(app.wait_finished(waiting, T)["status"], "succeeded");

    // The old evidence does not disable it again; fresh evidence elsewhere
    // (env 8, never enabled) shows an evaluation has run since.
    h.suspect(8, 0);
    end_a_run(&app);
    wait_until(T, "env 8 quarantined", || env(&app, 8)["state"] == "disabled");
    assert_ne!(env(&app, 7)["state"], "disabled", "no new evidence on env 7");
    let (_, verdicts) = app.get("/api/verdicts");
    assert!(
        verdicts["envs"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["id"] == 7)),
        "env 7 is still suspect, only not quarantined: {verdicts}"
    );

    // A fail on env 7 after its enable is new evidence.
    let fails: Vec<(&str, &str)> = SUSPECTS.iter().map(|n| (*n, "failed")).collect();
    h.run(7, Some("aaa"), 0, &fails);
    end_a_run(&app);
    wait_until(T, "env 7 quarantined again", || env(&app, 7)["state"] == "disabled");
    assert_eq!(env(&app, 7)["disabled_reason"], "suspect: 3 tests fail only here");
}

#[test]
fn quarantine_keeps_to_the_threshold_and_needs_its_flag() {
    let app = app(&["--quarantine", "--suspect-threshold", "4"]);
    let h = History::open(&app);
    h.suspect(7, 10);
    // Env 9 has 4 suspect tests, so an evaluation that ran is seen.
    let fails: Vec<(&str, &str)> = SUSPECTS
        .iter()
        .map(|n| (*n, "failed"))
        .chain([("tests/test_s.py::test_s4", "failed")])
        .collect();
    let passes: Vec<(&str, &str)> = SUSPECTS
        .iter()
        .map(|n| (*n, "passed"))
        .chain([("tests/test_s.py::test_s4", "passed")])
        .collect();
    h.run(9, Some("aaa"), 5, &fails);
    h.run(9, Some("aaa"), 5, &fails);
    h.run(2, Some("aaa"), 5, &passes);
    end_a_run(&app);
    wait_until(T, "env 9 quarantined", || env(&app, 9)["state"] == "disabled");
    assert_eq!(env(&app, 9)["disabled_reason"], "suspect: 4 tests fail only here");
    assert_ne!(env(&app, 7)["state"], "disabled", "3 tests are below the threshold");

    // Without the flag nothing is disabled.
    let plain = self::app(&[]);
    History::open(&plain).suspect(7, 10);
    end_a_run(&plain);
    let (_, verdicts) = plain.get("/api/verdicts");
    assert_eq!(verdicts["envs"][0]["id"], 7, "{verdicts}");
    assert_ne!(env(&plain, 7)["state"], "disabled");
}
/// A suite whose outcomes follow the run's environment
/// (`TESTSCHEDULER_ENV_ID`) and counter files in the project directory.
const ENV_SUITE: &str = r#"import os, pathlib, pytest

ENV = int(os.environ["TESTSCHEDULER_ENV_ID"])


def bump(name):
    p = pathlib.Path(".counters") / name
    p.parent.mkdir(exist_ok=True)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    return n


def test_flaky():
    # On env 1 it fails on every other run.
    if ENV == 1:
        assert bump("flaky") % 2 == 0


@pytest.mark.parametrize("part", ["a", "b", "c"])
def test_rig(part):
    # Fails only on the bad rigs.
    assert ENV not in (7, 8)


def test_broken():
    assert False, "broken everywhere"


def test_healthy():
    pass


def test_skipped():
    pytest.skip("never runs")
"#;

const RIGS: [&str; 3] = [
    "tests/test_v.py::test_rig[a]",
    "tests/test_v.py::test_rig[b]",
    "tests/test_v.py::test_rig[c]",
];

/// Runs the suite on `env` to its end; its id.
fn run_suite(app: &TestApp, env: u32) -> i64 {
    let run = app.queue(env, "./tests/test_v.py");
    let id = run["id"].as_i64().expect("id");
    let done = app.wait_finished(id, T);
    assert_eq!(done["status"], "failed", "test_broken always fails: {done}");
    id
}

fn suite_app(args: &[&str]) -> TestApp {
    let app = self::app(args);
    std::fs::write(app.path().join("tests/test_v.py"), ENV_SUITE).expect("write the suite");
    app
}

#[test]
fn real_runs_give_each_verdict_and_a_newest_first_history() {
    let app = suite_app(&[]);
    let (_, empty) = app.get("/api/verdicts");
    assert_eq!(empty, json!({"tests": [], "envs": []}));
    let ids: Vec<i64> = [1, 1, 7, 7, 2, 3].iter().map(|env| run_suite(&app, *env)).collect();
    let (status, body) = app.get("/api/verdicts");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        verdict_of(&body, "tests/test_v.py::test_flaky"),
        Some(
            &json!({"nodeid": "tests/test_v.py::test_flaky", "verdict": "flaky", "envs": [1], "evidence": [ids[1], ids[0]]})
        )
    );
    for rig in RIGS {
        let v = verdict_of(&body, rig).unwrap_or_else(|| panic!("{rig}: {body}"));
        assert_eq!(v["verdict"], "env_suspect", "{v}");
        assert_eq!(v["envs"], json!([7]), "{v}");
        // The two fails on env 7 and the passes elsewhere.
        assert_eq!(
            v["evidence"],
            json!([ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]]),
            "{v}"
        );
    }
    assert_eq!(
        verdict_of(&body, "tests/test_v.py::test_broken"),
        Some(
            &json!({"nodeid": "tests/test_v.py::test_broken", "verdict": "broken", "envs": [2, 3, 7], "evidence": [ids[5], ids[4], ids[3]]})
        )
    );
    assert!(verdict_of(&body, "tests/test_v.py::test_healthy").is_none(), "{body}");
    assert!(verdict_of(&body, "tests/test_v.py::test_skipped").is_none(), "{body}");
    assert_eq!(body["envs"], json!([{"id": 7, "verdict": "suspect", "tests": RIGS}]));

    let (status, hist) = app.get("/api/results/history?nodeid=tests/test_v.py::test_flaky&limit=10");
    assert_eq!(status, 200, "{hist}");
    let runs: Vec<i64> = hist
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|h| h["run_id"].as_i64())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(runs, newest_first, "{hist}");
    let outcomes: Vec<&str> = hist
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|h| h["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        ["passed", "passed", "passed", "passed", "failed", "passed"],
        "{hist}"
    );
    assert_eq!(hist[0]["env_id"], 3);
    assert_eq!(hist[0]["revision"], Value::Null, "the project is not a git repository");
}

#[test]
fn real_runs_quarantine_a_bad_rig_until_enabled_and_again_only_on_new_fails() {
    let app = suite_app(&["--quarantine"]);
    run_suite(&app, 1);
    run_suite(&app, 7);
    assert_ne!(env(&app, 7)["state"], "disabled", "one fail is no evidence");
    run_suite(&app, 7);
    wait_until(T, "env 7 quarantined", || env(&app, 7)["state"] == "disabled");
    assert_eq!(env(&app, 7)["disabled_reason"], "suspect: 3 tests fail only here");
    let (status, body) = app.post("/api/envs/7/enable", json!({}));
    assert_eq!(status, 200, "{body}");
    // Env 8 goes bad too; its quarantine shows an evaluation ran after the enable.
    run_suite(&app, 8);
    run_suite(&app, 8);
    wait_until(T, "env 8 quarantined", || env(&app, 8)["state"] == "disabled");
    assert_ne!(
        env(&app, 7)["state"],
        "disabled",
        "no new fail on env 7 since its enable"
    );
    // A new fail on env 7 is new evidence.
    run_suite(&app, 7);
    wait_until(T, "env 7 quarantined again", || env(&app, 7)["state"] == "disabled");
}

//! The queue: runs that wait for their environment (`wait`), in priority then
//! arrival order, with positions; labels; queue timeouts; disabled
//! environments; the envs file and its variables; a queue across a restart.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Adds `tests/test_gate.py`, which waits until the file `gate` exists in the
/// project directory (so a test decides when the holder ends).
fn add_gate(app: &TestApp) {
    std::fs::write(
        app.path().join("tests/test_gate.py"),
        "import os, time\n\ndef test_gate():\n    print('waiting at the gate', flush=True)\n    while not os.path.exists('gate'):\n        time.sleep(0.05)\n",
    )
    .expect("write gate test");
}

fn open_gate(app: &TestApp) {
    std::fs::write(app.path().join("gate"), "").expect("open the gate");
}

fn submit(app: &TestApp, body: Value) -> Value {
    let (status, run) = app.post("/api/testruns", body);
    assert_eq!(status, 201, "{run}");
    run
}

fn id(run: &Value) -> i64 {
    run["id"].as_i64().expect("id")
}

fn started(app: &TestApp, id: i64) -> String {
    app.wait_finished(id, T)["started_at"]
        .as_str()
        .unwrap_or_else(|| panic!("run {id} never started"))
        .to_string()
}

#[test]
fn waiting_runs_go_one_at_a_time_in_priority_then_arrival_order() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "4"]));
    add_gate(&app);
    let holder = submit(
        &app,
        json!({"username": "holder", "env_id": 1, "path": "./tests/test_gate.py"}),
    );
    app.wait_run(id(&holder), T, |r| r["status"] == "running");
    // Without wait the original answer stays.
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 1, "path": "./tests/test_quick.py"}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "env_busy");

    let mut queued = Vec::new();
    for i in 0..6 {
        let r = submit(
            &app,
            json!({"username": format!("user{i}"), "env_id": 1, "path": "./tests/test_quick.py", "wait": true}),
        );
        assert_eq!(r["status"], "queued", "{r}");
        assert_eq!(r["queue_position"], i + 1, "{r}");
        queued.push(id(&r));
    }
    let urgent = submit(
        &app,
        json!({"username": "urgent", "env_id": 1, "path": "./tests/test_quick.py", "wait": true, "priority": 5}),
    );
    assert_eq!(urgent["queue_position"], 1, "a higher priority goes first: {urgent}");
    let last = app.get(&format!("/api/testruns/{}", queued[5])).1;
    assert_eq!(last["queue_position"], 7, "everyone else moved back one: {last}");
    let env = app.get("/api/envs/1").1;
    assert_eq!(env["state"], "busy", "{env}");
    assert_eq!(env["queue_length"], 7, "{env}");
    assert_eq!(env["holder"]["run_id"], id(&holder), "{env}");
    let order: Vec<i64> = env["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .map(|q| q["run_id"].as_i64().expect("run id"))
        .collect();
    let mut expected = vec![id(&urgent)];
    expected.extend(&queued);
    assert_eq!(order, expected);

    // A cancelled queued run never starts.
    let (status, cancelled) = app.post(&format!("/api/testruns/{}/cancel", queued[2]), json!({}));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    open_gate(&app);
    let mut starts = vec![started(&app, id(&urgent))];
    for q in queued.iter().filter(|q| **q != queued[2]) {
        starts.push(started(&app, *q));
    }
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "one at a time, in queue order");
    let never = app.get(&format!("/api/testruns/{}", queued[2])).1;
    assert_eq!(never["status"], "cancelled");
    assert!(never["started_at"].is_null(), "{never}");
    let env = app.get("/api/envs/1").1;
    assert_eq!(env["state"], "free", "{env}");
    assert_eq!(env["queue_length"], 0);
}

#[test]
fn a_queued_run_past_its_queue_timeout_ends_cancelled_and_never_starts() {
    let app = spawn_app();
    add_gate(&app);
    let holder = submit(
        &app,
        json!({"username": "holder", "env_id": 2, "path": "./tests/test_gate.py"}),
    );
    app.wait_run(id(&holder), T, |r| r["status"] == "running");
    let waiting = submit(
        &app,
        json!({"username": "patient", "env_id": 2, "path": "./tests/test_quick.py", "wait": true, "queue_timeout_s": 1}),
    );
    let done = app.wait_finished(id(&waiting), T);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["started_at"].is_null(), "{done}");
    open_gate(&app);
    assert_eq!(app.wait_finished(id(&holder), T)["status"], "succeeded");
}

#[test]
fn a_disabled_environment_takes_nothing_new_until_enabled() {
    let app = spawn_app();
    let (status, env) = app.post("/api/envs/3/disable", json!({"reason": "board on fire"}));
    assert_eq!(status, 200, "{env}");
    assert_eq!(env["state"], "disabled");
    assert_eq!(env["disabled_reason"], "board on fire");
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 3, "path": "./tests/test_quick.py"}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "env_disabled");
    let waiting = submit(
        &app,
        json!({"username": "alice", "env_id": 3, "path": "./tests/test_quick.py", "wait": true}),
    );
    assert_eq!(waiting["status"], "queued");
    let (status, body) = app.post("/api/envs/3/disable", json!({"reason": "a\u{202e}b"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["reason"].is_array());
    let (status, env) = app.post("/api/envs/3/enable", json!({}));
    assert_eq!(status, 200, "{env}");
    assert_ne!(env["state"], "disabled");
    assert_eq!(app.wait_finished(id(&waiting), T)["status"], "succeeded");
    let (status, _) = app.post("/api/envs/999/enable", json!({}));
    assert_eq!(status, 404);
}

#[test]
fn bad_queue_fields_are_all_named_and_change_nothing() {
    let app = spawn_app();
    let (status, body) = app.post("/api/testruns", json!({"username": 123, "env_id": 9999, "path": "/"}));
    assert_eq!(status, 400);
    let mut fields: Vec<&String> = body["errors"].as_object().expect("errors").keys().collect();
    fields.sort();
    assert_eq!(fields, ["env_id", "path", "username"], "{body}");
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 1, "labels": ["x"], "path": "./tests/", "priority": 11}),
    );
    assert_eq!(status, 400);
    assert!(body["errors"]["labels"].is_array(), "{body}");
    assert!(body["errors"]["priority"].is_array(), "{body}");
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "alice", "labels": ["gpu"], "path": "./tests/"}),
    );
    assert_eq!(status, 400, "no environment has labels without an envs file: {body}");
    assert_eq!(app.get("/api/testruns").1, json!([]));
}

const ENVS: &str = r#"
[[env]]
id = 3
name = "staging-3"
labels = ["staging", "eu"]
description = "EU staging stack"
[env.vars]
BASE_URL = "https://staging-3.example"

[[env]]
id = 5
name = "staging-5"
labels = ["staging"]

[[env]]
id = 7
name = "rig-7"
labels = ["rig"]
"#;

#[test]
fn the_envs_file_names_environments_gives_labels_and_variables() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("envs.toml");
    std::fs::write(&file, ENVS).expect("write envs file");
    let app = spawn_app_with(Opts::default().args(&["--envs-file", file.to_str().expect("utf-8")]));
    std::fs::write(
        app.path().join("tests/test_vars.py"),
        "import os\n\ndef test_vars():\n    print('BASE_URL=' + os.environ.get('BASE_URL', 'unset'))\n",
    )
    .expect("write");
    let envs = app.get("/api/envs").1;
    let names: Vec<&str> = envs
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["staging-3", "staging-5", "rig-7"]);
    assert_eq!(envs[0]["labels"], json!(["staging", "eu"]));
    assert_eq!(envs[0]["description"], "EU staging stack");
    assert_eq!(envs[0]["state"], "free");

    let run = submit(
        &app,
        json!({"username": "alice", "env_id": 3, "path": "./tests/test_vars.py"}),
    );
    assert_eq!(app.wait_finished(id(&run), T)["status"], "succeeded");
    assert!(
        app.log_lines(id(&run))
            .iter()
            .any(|l| l.contains("BASE_URL=https://staging-3.example")),
        "the environment's variables reach the test"
    );

    // Labels take the free environment with the lowest id that fits.
    add_gate(&app);
    let a = submit(
        &app,
        json!({"username": "alice", "labels": ["staging"], "path": "./tests/test_gate.py"}),
    );
    assert_eq!(a["env_id"], 3, "{a}");
    assert_eq!(a["labels"], json!(["staging"]));
    let b = submit(
        &app,
        json!({"username": "bob", "labels": ["staging"], "path": "./tests/test_gate.py"}),
    );
    assert_eq!(b["env_id"], 5, "{b}");
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "carol", "labels": ["staging"], "path": "./tests/test_quick.py"}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "env_busy");
    assert!(body["errors"]["labels"].is_array(), "{body}");
    let c = submit(
        &app,
        json!({"username": "carol", "labels": ["staging"], "path": "./tests/test_quick.py", "wait": true}),
    );
    assert_eq!(c["status"], "queued");
    assert!(c["env_id"].is_null(), "a label run waits for any: {c}");
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "carol", "labels": ["staging", "rig"], "path": "./tests/"}),
    );
    assert_eq!(status, 400, "no single environment has both: {body}");
    let (status, _) = app.post(
        "/api/testruns",
        json!({"username": "carol", "env_id": 4, "path": "./tests/"}),
    );
    assert_eq!(status, 400, "only the file's environments exist");
    open_gate(&app);
    let c = app.wait_finished(id(&c), T);
    assert_eq!(c["status"], "succeeded");
    assert!(c["env_id"] == 3 || c["env_id"] == 5, "{c}");

    // A broken file keeps the last good set and says why.
    std::fs::write(&file, "[[env]\nbroken").expect("break");
    wait_until(T, "the error shown", || {
        !app.get("/api/envs/config").1["error"].is_null()
    });
    assert_eq!(app.get("/api/envs").1.as_array().expect("list").len(), 3);
    // A good one is taken at once.
    std::fs::write(&file, "[[env]]\nid = 9\nname = \"solo\"\n").expect("rewrite");
    wait_until(T, "the new set", || {
        app.get("/api/envs").1.as_array().is_some_and(|l| l.len() == 1)
    });
    let config = app.get("/api/envs/config").1;
    assert!(config["error"].is_null(), "{config}");
    assert!(config["file"].as_str().is_some_and(|f| f.ends_with("envs.toml")));
}

#[test]
fn envs_and_envs_file_together_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("envs.toml");
    std::fs::write(&file, ENVS).expect("write envs file");
    let out = std::process::Command::new(BIN)
        .args(["--envs", "1-3", "--envs-file"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--envs") && err.contains("--envs-file"), "{err}");
}

#[test]
fn queued_runs_and_their_order_survive_a_restart() {
    let mut app = spawn_app_with(Opts::default().args(&["--workers", "1"]));
    add_gate(&app);
    let holder = submit(
        &app,
        json!({"username": "holder", "env_id": 1, "path": "./tests/test_gate.py"}),
    );
    app.wait_run(id(&holder), T, |r| r["status"] == "running");
    let first = submit(
        &app,
        json!({"username": "first", "env_id": 1, "path": "./tests/test_quick.py", "wait": true}),
    );
    let second = submit(
        &app,
        json!({"username": "second", "env_id": 1, "path": "./tests/test_quick.py", "wait": true}),
    );
    app.kill();
    app.start().expect("restart");
    // The lost holder ended unknown and freed the environment: the queue moves on, in order.
    assert_eq!(app.wait_finished(id(&holder), T)["status"], "unknown");
    let a = started(&app, id(&first));
    let b = started(&app, id(&second));
    assert!(a < b, "{a} then {b}");
}

#[test]
fn positions_and_etas_move_live_with_the_queue() {
    let app = spawn_app();
    add_gate(&app);
    // History: a run on env 1 gives the environment a typical duration.
    let past = submit(
        &app,
        json!({"username": "past", "env_id": 1, "path": "./tests/test_quick.py"}),
    );
    assert_eq!(app.wait_finished(id(&past), T)["status"], "succeeded");
    let mut ws = app.ws();
    let holder = submit(
        &app,
        json!({"username": "holder", "env_id": 1, "path": "./tests/test_gate.py"}),
    );
    app.wait_run(id(&holder), T, |r| r["status"] == "running");
    let a = submit(
        &app,
        json!({"username": "alice", "env_id": 1, "path": "./tests/test_quick.py", "wait": true}),
    );
    assert_eq!(a["queue_position"], 1);
    assert!(a["eta"].is_string(), "a known duration gives an expected start: {a}");
    let b = submit(
        &app,
        json!({"username": "bob", "env_id": 1, "path": "./tests/test_quick.py", "wait": true}),
    );
    assert!(b["eta"].as_str() >= a["eta"].as_str(), "{a} {b}");
    ws.until(T, |f| {
        f["event"] == "envChanged" && f["env"]["id"] == 1 && f["env"]["queue_length"] == 2
    });
    let (status, _) = app.post(&format!("/api/testruns/{}/cancel", id(&a)), json!({}));
    assert_eq!(status, 200);
    let moved = ws.until(T, |f| {
        f["event"] == "taskChanged" && f["run"]["id"] == id(&b) && f["run"]["queue_position"] == 1
    });
    assert_eq!(moved["run"]["status"], "queued");
    open_gate(&app);
    let done = app.wait_finished(id(&b), T);
    assert_eq!(done["status"], "succeeded");
    assert!(done["queue_position"].is_null() && done["eta"].is_null(), "{done}");
}

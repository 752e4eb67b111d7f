//! Reservations: an environment reserved by hand admits only its owner's
//! runs, queues behind a holder with `wait`, can be moved and released, and
//! ends by itself; everyone else's runs wait their turn.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let (status, v) = app.post(path, body);
    assert_eq!(status, 201, "{v}");
    v
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().expect("id")
}

#[test]
fn a_reservation_admits_only_its_owner_until_released() {
    let app = spawn_app();
    let r = created(
        &app,
        "/api/envs/1/reservations",
        json!({"username": "bob", "duration_s": 600, "note": "debugging the board"}),
    );
    assert_eq!(r["status"], "active", "{r}");
    assert!(r["since"].is_string() && r["until"].is_string(), "{r}");
    let env = app.get("/api/envs/1").1;
    assert_eq!(env["state"], "reserved", "{env}");
    assert_eq!(env["holder"]["kind"], "reservation");
    assert_eq!(env["holder"]["username"], "bob");
    assert_eq!(env["holder"]["note"], "debugging the board");

    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 1, "path": "./tests/test_quick.py"}),
    );
    assert_eq!((status, body["code"].as_str()), (409, Some("env_busy")), "{body}");
    let alice = created(
        &app,
        "/api/testruns",
        json!({"username": "alice", "env_id": 1, "path": "./tests/test_quick.py", "wait": true}),
    );
    assert_eq!(alice["status"], "queued");
    let bob = created(
        &app,
        "/api/testruns",
        json!({"username": "bob", "env_id": 1, "path": "./tests/test_quick.py"}),
    );
    assert_ne!(bob["status"], "queued", "the owner's run is admitted: {bob}");
    assert_eq!(app.wait_finished(id(&bob), T)["status"], "succeeded");
    let still = app.get(&format!("/api/testruns/{}", id(&alice))).1;
    assert_eq!(
        still["status"], "queued",
        "others wait for the reservation's end: {still}"
    );
    assert_eq!(app.get("/api/envs/1").1["state"], "reserved");
    let active = app.get("/api/reservations?active=true").1;
    assert_eq!(active.as_array().map(Vec::len), Some(1), "{active}");

    let (status, ended) = app.send("DELETE", &format!("/api/reservations/{}", id(&r)), None);
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["status"], "ended");
    assert_eq!(app.wait_finished(id(&alice), T)["status"], "succeeded");
    let (status, again) = app.send("DELETE", &format!("/api/reservations/{}", id(&r)), None);
    assert_eq!((status, again["code"].as_str()), (409, Some("already_finished")));
}

#[test]
fn a_reservation_queues_behind_a_run_and_ends_by_itself() {
    let app = spawn_app();
    std::fs::write(
        app.path().join("tests/test_gate.py"),
        "import os, time\n\ndef test_gate():\n    while not os.path.exists('gate'):\n        time.sleep(0.05)\n",
    )
    .expect("write");
    let holder = created(
        &app,
        "/api/testruns",
        json!({"username": "holder", "env_id": 2, "path": "./tests/test_gate.py"}),
    );
    app.wait_run(id(&holder), T, |r| r["status"] == "running");
    let (status, body) = app.post("/api/envs/2/reservations", json!({"username": "bob", "duration_s": 60}));
    assert_eq!((status, body["code"].as_str()), (409, Some("env_busy")), "{body}");
    let r = created(
        &app,
        "/api/envs/2/reservations",
        json!({"username": "bob", "duration_s": 60, "wait": true}),
    );
    assert_eq!(r["status"], "queued");
    assert!(r["since"].is_null() && r["until"].is_null(), "{r}");
    let env = app.get("/api/envs/2").1;
    assert_eq!(env["queue"][0]["kind"], "reservation", "{env}");
    std::fs::write(app.path().join("gate"), "").expect("open gate");
    app.wait_finished(id(&holder), T);
    wait_until(T, "the reservation active", || {
        app.get("/api/reservations?active=true").1[0]["id"] == r["id"]
    });
    // Move its end a moment ahead: it ends by itself and the environment is free.
    let soon = in_secs(2);
    let (status, moved) = app.send(
        "PATCH",
        &format!("/api/reservations/{}", id(&r)),
        Some(json!({"until": soon})),
    );
    assert_eq!(status, 200, "{moved}");
    wait_until(T, "the reservation over", || {
        app.get("/api/envs/2").1["state"] == "free"
    });
    let (status, body) = app.send(
        "PATCH",
        &format!("/api/reservations/{}", id(&r)),
        Some(json!({"until": in_secs(60)})),
    );
    assert_eq!(status, 409, "an ended reservation cannot move: {body}");
}

#[test]
fn bad_reservations_are_refused_naming_the_field() {
    let app = spawn_app_with(Opts::default().args(&["--max-reservation", "3600"]));
    let (status, body) = app.post(
        "/api/envs/1/reservations",
        json!({"username": "b\u{1b}[31m", "duration_s": 5, "colour": 1}),
    );
    assert_eq!(status, 400);
    let mut fields: Vec<&String> = body["errors"].as_object().expect("errors").keys().collect();
    fields.sort();
    assert_eq!(fields, ["colour", "duration_s", "username"], "{body}");
    let (status, body) = app.post(
        "/api/envs/1/reservations",
        json!({"username": "bob", "duration_s": 3601}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["duration_s"][0]
        .as_str()
        .is_some_and(|m| m.contains("--max-reservation")));
    let r = created(
        &app,
        "/api/envs/1/reservations",
        json!({"username": "bob", "duration_s": 60}),
    );
    let (status, body) = app.send(
        "PATCH",
        &format!("/api/reservations/{}", id(&r)),
        Some(json!({"until": in_secs(7200)})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["until"].is_array());
    let (status, body) = app.send(
        "PATCH",
        &format!("/api/reservations/{}", id(&r)),
        Some(json!({"until": "tomorrow"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.post(
        "/api/envs/1/reservations",
        json!({"username": "carol", "duration_s": 60}),
    );
    assert_eq!(status, 409, "one active reservation per environment");
    let (status, _) = app.post(
        "/api/envs/4242/reservations",
        json!({"username": "carol", "duration_s": 60}),
    );
    assert_eq!(status, 404);
    let (status, _) = app.send("DELETE", "/api/reservations/999", None);
    assert_eq!(status, 404);
}

/// RFC 3339 for now + `secs`.
fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

//! The report protocol's refusals, straight over HTTP: forged tokens,
//! duplicate claims, line gaps, and the seed worker's whole-log form.

use super::*;

/// A server, its Redis, and a published run whose token the test read from the stream.
fn published_run() -> (Redis, TestApp, i64, String) {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let id = id_of(&app.queue(6, "./tests/test_quick.py"));
    let token = redis.wait_token(&p, id, None);
    (redis, app, id, token)
}

#[test]
fn a_forged_token_is_refused_and_changes_nothing() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    for body in [
        json!({"token": "forged", "status": "running", "worker": "mallory"}),
        json!({"status": "running", "worker": "mallory"}),
        json!({"token": format!("{token}x"), "from": 0, "lines": ["injected"]}),
        json!({"token": "", "status": "failed", "exit_code": 1, "total": 0}),
    ] {
        let (status, reply) = app.post(&path, body.clone());
        assert_eq!(status, 403, "{body} → {reply}");
        assert_eq!(reply["code"], "invalid_token");
    }
    let (status, _) = app.post("/api/testruns/999999", json!({"token": token, "status": "running"}));
    assert_eq!(status, 403, "another run's token proves nothing");
    let (_, run) = app.get(&path);
    assert_eq!(run["status"], "created");
    assert_eq!(run["worker"], Value::Null);
    assert_eq!(run["lines"], 0);
}

#[test]
fn a_second_claim_by_another_worker_conflicts() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    let (status, reply) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(
        (status, reply.clone()),
        (200, json!({"cancel": false, "status": "running"}))
    );
    let (status, _) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(status, 200, "the same worker asking again is fine");
    let (status, reply) = app.post(&path, json!({"token": token, "status": "running", "worker": "b"}));
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["code"], "already_claimed");
    let (_, run) = app.get(&path);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("running"), Some("a"))
    );
}

#[test]
fn lines_with_a_gap_are_refused_with_the_next_line_and_retries_are_safe() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    let (status, _) = app.post(&path, json!({"token": token, "status": "running", "worker": "a"}));
    assert_eq!(status, 200);
    let mut ws = app.ws();
    ws.send(json!({"op": "follow", "id": id, "from": 0}));

    let (status, _) = app.post(&path, json!({"token": token, "from": 0, "lines": ["a", "b"]}));
    assert_eq!(status, 200);
    let (status, reply) = app.post(&path, json!({"token": token, "from": 5, "lines": ["f"]}));
    assert_eq!(status, 409, "{reply}");
    assert_eq!(
        (reply["code"].as_str(), reply["next"].as_u64()),
        (Some("line_gap"), Some(2))
    );
    // A retry overlapping what is stored only adds what is new.
    let (status, _) = app.post(&path, json!({"token": token, "from": 1, "lines": ["b", "c"]}));
    assert_eq!(status, 200);
    let (status, _) = app.post(&path, json!({"token": token, "from": 0, "lines": []}));
    assert_eq!(status, 200, "an empty report is a heartbeat");
    // The end is accepted only once every line is stored.
    let (status, reply) = app.post(
        &path,
        json!({"token": token, "status": "succeeded", "exit_code": 0, "total": 5}),
    );
    assert_eq!(
        (status, reply["code"].as_str(), reply["next"].as_u64()),
        (409, Some("line_gap"), Some(3))
    );
    let (status, reply) = app.post(
        &path,
        json!({"token": token, "status": "succeeded", "exit_code": 0, "total": 3}),
    );
    assert_eq!((status, reply), (200, json!({"cancel": false, "status": "succeeded"})));
    let (status, _) = app.post(&path, json!({"token": token, "status": "cancelled"}));
    assert_eq!(status, 400, "a worker may not set the server's statuses");

    let (lines, end) = ws.collect_following(id, 0, T);
    assert_eq!(lines, ["a", "b", "c"]);
    assert_eq!(
        (end["total"].as_u64(), end["status"].as_str()),
        (Some(3), Some("succeeded"))
    );
    let (_, run) = app.get(&path);
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("succeeded"), Some(0))
    );
    assert_eq!(env_holder(&app, 6), Value::Null);
}

#[test]
fn the_seed_workers_whole_log_form_is_taken_from_line_zero() {
    let (_redis, app, id, token) = published_run();
    let path = format!("/api/testruns/{id}");
    assert_eq!(app.post(&path, json!({"token": token, "status": "running"})).0, 200);
    assert_eq!(app.post(&path, json!({"token": token, "logs": "one\ntwo\nthr"})).0, 200);
    assert_eq!(
        app.post(&path, json!({"token": token, "logs": "one\ntwo\nthree\nfour"}))
            .0,
        200
    );
    let (status, _) = app.post(
        &path,
        json!({"token": token, "status": "failed", "logs": "one\ntwo\nthree\nfour\nend"}),
    );
    assert_eq!(status, 200);
    assert_eq!(app.log_lines(id), ["one", "two", "three", "four", "end"]);
    let (_, run) = app.get(&path);
    assert_eq!(run["status"], "failed");
}

//! The REST contract of runs: discovery, admission, validation, execution,
//! cancel, timeout, pagination and the log endpoints.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn tests_listing_follows_the_tree() {
    let app = spawn_app();
    let (status, tests) = app.get("/api/tests");
    assert_eq!(status, 200);
    let list: Vec<&str> = tests
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(list[0], "./tests/");
    assert!(list.contains(&"./tests/sub/") && list.contains(&"./tests/sub/test_nested.py"));
    assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted: {list:?}");
    std::fs::write(app.path().join("tests/test_added.py"), "def test_x():\n    pass\n").expect("write");
    std::fs::write(app.path().join("tests/conftest.py"), "").expect("write");
    wait_until(Duration::from_secs(10), "new file listed", || {
        app.get("/api/tests")
            .1
            .as_array()
            .expect("array")
            .iter()
            .any(|p| p == "./tests/test_added.py")
    });
    assert!(!app.get("/api/tests").1.to_string().contains("conftest"));
    std::fs::remove_file(app.path().join("tests/test_added.py")).expect("rm");
    wait_until(Duration::from_secs(10), "deleted file gone", || {
        !app.get("/api/tests")
            .1
            .as_array()
            .expect("array")
            .iter()
            .any(|p| p == "./tests/test_added.py")
    });
}

#[test]
fn a_file_created_a_moment_ago_is_accepted() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    std::fs::write(app.path().join("tests/test_brand_new.py"), "def test_x():\n    pass\n").expect("write");
    let (status, body) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 1, "path": "./tests/test_brand_new.py"}),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn validation_names_the_field_at_fault() {
    let app =
        spawn_app_with(Opts::default().args(&["--workers", "0", "--run-timeout", "60", "--max-run-timeout", "600"]));
    let cases = [
        (json!({"username": "al", "env_id": 1, "path": "./tests/"}), "username"),
        (
            json!({"username": "x".repeat(81), "env_id": 1, "path": "./tests/"}),
            "username",
        ),
        (json!({"username": "alice", "env_id": 0, "path": "./tests/"}), "env_id"),
        (
            json!({"username": "alice", "env_id": 101, "path": "./tests/"}),
            "env_id",
        ),
        (
            json!({"username": "alice", "env_id": "abc", "path": "./tests/"}),
            "env_id",
        ),
        (
            json!({"username": "alice", "env_id": 1.5, "path": "./tests/"}),
            "env_id",
        ),
        (
            json!({"username": "alice", "env_id": 1, "path": "./tests/nope.py"}),
            "path",
        ),
        (
            json!({"username": "alice", "env_id": 1, "path": "../etc/passwd"}),
            "path",
        ),
        (
            json!({"username": "alice", "env_id": 1, "path": "./tests/", "timeout": 5}),
            "timeout",
        ),
        (
            json!({"username": "alice", "env_id": 1, "path": "./tests/", "timeout_s": 0}),
            "timeout_s",
        ),
        (
            json!({"username": "alice", "env_id": 1, "path": "./tests/", "timeout_s": 601}),
            "timeout_s",
        ),
        (json!({"env_id": 1, "path": "./tests/"}), "username"),
        (json!([1, 2]), "_schema"),
        (json!("text"), "_schema"),
    ];
    for (body, field) in cases {
        let (status, res) = app.post("/api/testruns", body.clone());
        assert_eq!(status, 400, "{body} → {res}");
        assert_eq!(res["message"], "Data validation failed");
        assert_eq!(res["code"], "validation_failed");
        assert!(res["errors"][field].is_array(), "{body} should name {field}: {res}");
    }
    let (status, res) = app.post_raw(
        "/api/testruns",
        "text/plain",
        br#"{"username":"alice","env_id":1,"path":"./tests/"}"#,
    );
    assert_eq!(status, 400);
    assert!(res["errors"]["_schema"].is_array(), "{res}");
    let (status, res) = app.post_raw("/api/testruns", "application/json", b"{not json");
    assert_eq!(status, 400);
    assert!(res["errors"]["_schema"].is_array(), "{res}");
    let big = format!(r#"{{"username":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let (status, res) = app.post_raw("/api/testruns", "application/json", big.as_bytes());
    assert_eq!(status, 413);
    assert_eq!(res["code"], "body_too_large");
    // Nothing was stored by any of it.
    assert_eq!(app.get("/api/testruns").1, json!([]));
    // A string of digits is an env id, as the seed took it.
    let (status, run) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": "7", "path": "./tests/", "timeout_s": 30}),
    );
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["env_id"], 7);
    assert_eq!(run["timeout_s"], 30);
    assert_eq!(run["status"], "created");
    assert_eq!(run["logs"], false);
    let created = run["created_at"].as_str().expect("created_at");
    assert!(
        created.ends_with("+00:00") && created.len() == "2026-11-25T07:24:00.123456+00:00".len(),
        "{created}"
    );
}

#[test]
fn runs_succeed_and_fail_with_their_output() {
    let app = spawn_app();
    let ok = app.queue(1, "./tests/test_quick.py");
    let bad = app.queue(2, "./tests/test_fail.py");
    let env = app.queue(3, "./tests/test_env.py");
    let ok = app.wait_finished(ok["id"].as_i64().expect("id"), T);
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["logs"], true);
    assert!(ok["started_at"].is_string() && ok["finished_at"].is_string());
    let bad = app.wait_finished(bad["id"].as_i64().expect("id"), T);
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["exit_code"], 1);
    let env = app.wait_finished(env["id"].as_i64().expect("id"), T);
    let id = env["id"].as_i64().expect("id");
    let lines = app.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains(&format!("RUN {id} ENV 3 COLUMNS 120"))),
        "{lines:?}"
    );

    let id = ok["id"].as_i64().expect("id");
    let lines = app.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains("\u{1b}[32mgreen line\u{1b}[0m")),
        "colours kept: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("2 passed")));
    let (_, logs) = app.get(&format!("/api/testruns/{id}/logs"));
    assert_eq!(logs["id"], id);
    assert_eq!(logs["logs"].as_str().expect("text").lines().count(), lines.len());
    let (_, slice) = app.get(&format!("/api/testruns/{id}/lines?from=1&limit=2"));
    assert_eq!(slice["from"], 1);
    assert_eq!(slice["total"], lines.len());
    assert_eq!(slice["lines"], json!(lines[1..3]));
    let (_, past) = app.get(&format!("/api/testruns/{id}/lines?from=100000"));
    assert_eq!(past["lines"], json!([]));
    let (_, found) = app.get(&format!("/api/testruns/{id}/search?q=green%20line"));
    assert_eq!(
        found["matches"][0]["text"].as_str().map(|t| t.contains("green line")),
        Some(true)
    );
    assert_eq!(found["more"], false);
    let (status, _) = app.get(&format!("/api/testruns/{id}/search"));
    assert_eq!(status, 400);

    // Newest first.
    let (_, all) = app.get("/api/testruns");
    let ids: Vec<i64> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, [3, 2, 1]);
}

#[test]
fn a_path_with_spaces_stays_one_argument() {
    let app = spawn_app();
    std::fs::write(
        app.path().join("tests/test my space.py"),
        "def test_s():\n    print('spaced ok')\n",
    )
    .expect("write");
    let run = app.queue(4, "./tests/test my space.py");
    let run = app.wait_finished(run["id"].as_i64().expect("id"), T);
    assert_eq!(
        run["status"],
        "succeeded",
        "{:?}",
        app.log_lines(run["id"].as_i64().expect("id"))
    );
}

#[test]
fn one_run_per_environment_even_under_concurrency() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let base = app.base.clone();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let res = ureq::post(&format!("{base}/api/testruns"))
                    .send_json(json!({"username": format!("user{i}"), "env_id": 9, "path": "./tests/"}));
                match res {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15, "{statuses:?}");
    let (status, busy) = app.post(
        "/api/testruns",
        json!({"username": "late", "env_id": 9, "path": "./tests/"}),
    );
    assert_eq!(status, 409);
    assert_eq!(busy["code"], "env_busy");
    assert!(busy["errors"]["env_id"][0].as_str().expect("message").contains("busy"));
    let (_, envs) = app.get("/api/envs");
    assert_eq!(envs.as_array().expect("array").len(), 100);
    assert!(envs[8]["run_id"].is_i64() && envs[0]["run_id"].is_null(), "{}", envs[8]);
}

#[test]
fn cancel_stops_the_whole_process_group() {
    let app = spawn_app();
    let pid_file = app.path().join("slow.pid");
    // The test writes its pid where we tell it, through the environment the server passes on.
    std::fs::write(
        app.path().join("tests/test_daemon.py"),
        format!(
            "import os, subprocess, time\n\ndef test_daemon():\n    child = subprocess.Popen(['sleep', '300'])\n    open({:?}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n    print('started', flush=True)\n    time.sleep(300)\n",
            pid_file.display().to_string()
        ),
    )
    .expect("write");
    let run = app.queue(5, "./tests/test_daemon.py");
    let id = run["id"].as_i64().expect("id");
    app.wait_run(id, T, |r| r["status"] == "running");
    wait_until(T, "pid file", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.contains(' '))
    });
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .expect("pids")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    let (status, cancelled) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    wait_until(Duration::from_secs(10), "process group gone", || {
        pids.iter().all(|p| !alive(*p))
    });
    // The environment is free again once the group is gone.
    wait_until(Duration::from_secs(10), "env 5 free", || {
        app.get("/api/envs").1[4]["run_id"].is_null()
    });
    let (status, again) = app.post(&format!("/api/testruns/{id}/cancel"), json!({}));
    assert_eq!(status, 409);
    assert_eq!(again["code"], "already_finished");
    let (status, missing) = app.post("/api/testruns/99999/cancel", json!({}));
    assert_eq!(status, 404);
    assert_eq!(missing["code"], "not_found");
    assert_eq!(app.get(&format!("/api/testruns/{id}")).1["status"], "cancelled");
}

#[test]
fn a_waiting_run_can_be_cancelled_and_frees_its_environment() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let run = app.queue(6, "./tests/");
    let (status, c) = app.post(&format!("/api/testruns/{}/cancel", run["id"]), json!({}));
    assert_eq!(status, 200);
    assert_eq!(c["status"], "cancelled");
    app.queue(6, "./tests/");
}

#[test]
fn a_run_past_its_timeout_ends_timeout() {
    let app = spawn_app_with(Opts::default().env("SLOW_SECONDS", "60"));
    let (status, run) = app.post(
        "/api/testruns",
        json!({"username": "alice", "env_id": 1, "path": "./tests/test_slow.py", "timeout_s": 2}),
    );
    assert_eq!(status, 201);
    let id = run["id"].as_i64().expect("id");
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "timeout");
    let lines = app.log_lines(id);
    assert!(
        lines.last().is_some_and(|l| l.contains("timed out after 2 s")),
        "{lines:?}"
    );
}

#[test]
fn a_command_that_cannot_start_fails_with_its_reason() {
    let app = spawn_app_with(Opts::default().args(&["--command", "/no/such/runner {path}"]));
    let run = app.queue(1, "./tests/");
    let id = run["id"].as_i64().expect("id");
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "failed");
    let lines = app.log_lines(id);
    assert!(lines.last().is_some_and(|l| l.contains("/no/such/runner")), "{lines:?}");
}

#[test]
fn pages_and_filters_of_the_run_list() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    for env in 1..=12u32 {
        let user = if env % 2 == 0 { "even" } else { "odd" };
        let path = if env % 3 == 0 {
            "./tests/sub/"
        } else {
            "./tests/test_quick.py"
        };
        let (status, _) = app.post("/api/testruns", json!({"username": user, "env_id": env, "path": path}));
        assert_eq!(status, 201);
    }
    let ids = |q: &str| -> Vec<i64> {
        let (status, v) = app.get(&format!("/api/testruns{q}"));
        assert_eq!(status, 200, "{q}: {v}");
        v.as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["id"].as_i64())
            .collect()
    };
    assert_eq!(ids("?limit=3"), [12, 11, 10]);
    assert_eq!(ids("?limit=3&before=10"), [9, 8, 7]);
    assert_eq!(ids("?user=even&limit=2"), [12, 10]);
    assert_eq!(ids("?env_id=5"), [5]);
    assert_eq!(ids("?path=./tests/sub/"), [12, 9, 6, 3]);
    assert_eq!(ids("?status=created&before=3"), [2, 1]);
    assert!(ids("?status=succeeded").is_empty());
    assert_eq!(ids("").len(), 12);
    for bad in ["?limit=0", "?limit=abc", "?status=done", "?before=-1"] {
        let (status, v) = app.get(&format!("/api/testruns{bad}"));
        assert_eq!(status, 400, "{bad}: {v}");
    }
}

#[test]
fn unknown_things_are_json_404s() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    for path in [
        "/api/testruns/999",
        "/api/testruns/abc",
        "/api/nope",
        "/api/testruns/999/logs",
        "/api/testruns/999/lines",
    ] {
        let (status, body) = app.get(path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["code"], "not_found", "{path}");
        assert!(body["message"].is_string());
    }
    let (status, body) = app.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let (status, _) = app.post("/api/tests", json!({}));
    assert_eq!(status, 405);
}

#[test]
fn a_worker_report_without_the_right_token_is_refused() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0"]));
    let run = app.queue(1, "./tests/");
    let id = run["id"].as_i64().expect("id");
    for body in [
        json!({"status": "succeeded"}),
        json!({"token": "forged", "status": "running", "worker": "w"}),
    ] {
        let (status, res) = app.post(&format!("/api/testruns/{id}"), body);
        assert_eq!(status, 403);
        assert_eq!(res["code"], "invalid_token");
    }
    assert_eq!(app.get(&format!("/api/testruns/{id}")).1["status"], "created");
}

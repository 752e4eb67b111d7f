//! Runs through Redis reach exactly one worker: a shared queue, two slots,
//! the server's own slots, Redis as `localhost`, and runs published again
//! when Redis forgets them or a worker takes one and never claims it.

use super::*;

#[test]
fn two_workers_share_the_queue_and_each_run_executes_once() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    std::fs::write(
        app.path().join("tests/test_once.py"),
        "import os, time\n\ndef test_once():\n    with open(os.path.join(os.path.dirname(__file__), '..', 'executed.txt'), 'a') as f:\n        f.write(os.environ['TESTSCHEDULER_RUN_ID'] + '\\n')\n    time.sleep(0.3)\n",
    )
    .expect("write test");
    let mut ws = app.ws();
    let _w1 = Worker::spawn(&app, &app.base, &redis.url(), &p, "w1", &[]);
    let _w2 = Worker::spawn(&app, &app.base, &redis.url(), &p, "w2", &[]);
    wait_until(T, "both workers listed", || {
        let (_, list) = app.get("/api/workers");
        let ids: Vec<&str> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["id"].as_str())
            .collect();
        ids.contains(&"w1") && ids.contains(&"w2")
    });

    let frame = ws.until(T, |v| {
        v["event"] == "workersChanged"
            && v["workers"]
                .as_array()
                .is_some_and(|ws| ws.iter().any(|w| w["id"] == "w1"))
    });
    assert!(frame["workers"][0]["slots"].as_u64().is_some(), "{frame}");
    drop(ws);

    let ids: Vec<i64> = (1..=6)
        .map(|env| id_of(&app.queue(env, "./tests/test_once.py")))
        .collect();
    let mut by = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let run = app.wait_finished(*id, T);
        assert_eq!(run["status"], "succeeded", "{run}");
        *by.entry(run["worker"].as_str().expect("worker recorded").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        by.keys().collect::<Vec<_>>(),
        ["w1", "w2"],
        "runs spread over both workers: {by:?}"
    );
    let executed = std::fs::read_to_string(app.path().join("executed.txt")).expect("runs wrote");
    let mut seen: Vec<i64> = executed.lines().map(|l| l.parse().expect("run id")).collect();
    seen.sort();
    assert_eq!(seen, ids, "each run executed exactly once");
    for id in &ids {
        let lines = app.log_lines(*id);
        assert_eq!(
            lines.iter().filter(|l| l.contains("test session starts")).count(),
            1,
            "{lines:?}"
        );
    }
    for env in 1..=6 {
        assert_eq!(env_holder(&app, env), Value::Null, "env {env} is free");
    }
}

#[test]
fn an_emptied_redis_gets_the_waiting_runs_again_with_fresh_tokens() {
    let mut redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    // One busy worker: the second run waits on the stream while Redis goes.
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "busy", &[("SLOW_SECONDS", "3")]);
    let slow = id_of(&app.queue(4, "./tests/test_slow.py"));
    app.wait_run(slow, T, |r| r["status"] == "running");
    let waiting = id_of(&app.queue(5, "./tests/test_quick.py"));
    let old = redis.wait_token(&p, waiting, None);

    redis.restart();
    // The running run reports over HTTP and never noticed; the waiting one
    // is published again and taken once the worker is free.
    let run = app.wait_finished(slow, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    let ticks = app.log_lines(slow).iter().filter(|l| l.contains("tick ")).count();
    assert_eq!(ticks, 30);
    let run = app.wait_finished(waiting, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("busy")),
        "{run}"
    );
    // Only the newest token's hash is kept: the lost message proves nothing.
    let (status, body) = app.post(
        &format!("/api/testruns/{waiting}"),
        json!({"token": old, "status": "running", "worker": "stale"}),
    );
    assert_eq!((status, body["code"].as_str()), (403, Some("invalid_token")), "{body}");
}

#[test]
fn a_worker_reaches_redis_as_localhost() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let url = format!("redis://localhost:{}", redis.port);
    let _worker = Worker::spawn(&app, &app.base, &url, &p, "by-name", &[]);
    let id = id_of(&app.queue(7, "./tests/test_quick.py"));
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("by-name"))
    );
}

#[test]
fn server_slots_take_runs_from_redis_like_any_worker() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--workers", "1"]);
    let id = id_of(&app.queue(8, "./tests/test_env.py"));
    let run = app.wait_finished(id, T);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["worker"].as_str().is_some_and(|w| w.ends_with("-server")), "{run}");
    let lines = app.log_lines(id);
    assert!(
        lines.iter().any(|l| l.contains(&format!("RUN {id} ENV 8 COLUMNS 120"))),
        "{lines:?}"
    );
}

#[test]
fn a_message_taken_but_never_claimed_is_published_again() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--lease", "2"]);
    let id = id_of(&app.queue(12, "./tests/test_quick.py"));
    let old = redis.wait_token(&p, id, None);
    // A worker takes the message and dies before it claims the run.
    let taken: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(format!("{p}runs"))
        .arg(">")
        .query(&mut redis.conn())
        .expect("read the message");
    assert_ne!(taken, redis::Value::Nil);
    let fresh = redis.wait_token(&p, id, Some(&old));
    assert_ne!(fresh, old);
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "rescuer", &[]);
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("rescuer"))
    );
}

#[test]
fn a_worker_with_two_slots_runs_two_runs_at_once() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let _worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "wide",
        &[("SLOW_SECONDS", "3"), ("TESTSCHEDULER_SLOTS", "2")],
    );
    let a = id_of(&app.queue(16, "./tests/test_slow.py"));
    let b = id_of(&app.queue(17, "./tests/test_slow.py"));
    wait_until(T, "both runs running at once", || {
        [a, b]
            .iter()
            .all(|id| app.get(&format!("/api/testruns/{id}")).1["status"] == "running")
    });
    let (_, workers) = app.get("/api/workers");
    assert_eq!(workers[0]["slots"], 2, "{workers}");
    for id in [a, b] {
        assert_eq!(app.wait_finished(id, T)["status"], "succeeded");
    }
}

//! The worker secret (PRODUCT.md "Hardening"): with one, every worker request
//! must carry it, job messages are signed and a worker runs only messages
//! that verify; `serve --redis` on a public address refuses to start without
//! one; a worker with a wrong `--server` or secret says so and takes nothing;
//! and `workersChanged` is paced however many heartbeats arrive.

use super::*;
use std::io::Write;

const SECRET: &str = "correct horse battery staple";
const HEADER: &str = "X-Testscheduler-Worker-Secret";

/// POST JSON with the worker secret header `secret` (if any) → (status, body).
fn post_with(app: &TestApp, path: &str, body: Value, secret: Option<&str>) -> (u16, Value) {
    let mut req = ureq::post(&app.url(path)).timeout(Duration::from_secs(30));
    if let Some(s) = secret {
        req = req.set(HEADER, s);
    }
    let resp = match req.send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {path}: {e}"),
    };
    let status = resp.status();
    (status, resp.into_json().unwrap_or(Value::Null))
}

/// The newest stream entry of run `id` as a field map, once it is published.
fn wait_entry(redis: &Redis, prefix: &str, id: i64) -> std::collections::HashMap<String, String> {
    redis.wait_token(prefix, id, None);
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{prefix}runs"))
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .expect("xrange");
    let entry = reply
        .ids
        .iter()
        .rev()
        .find(|e| e.get::<i64>("id") == Some(id))
        .expect("published");
    entry
        .map
        .keys()
        .filter_map(|k| entry.get::<String>(k).map(|v| (k.clone(), v)))
        .collect()
}

#[test]
fn with_a_secret_worker_requests_without_it_are_refused_and_change_nothing() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--worker-secret", SECRET]);
    let id = id_of(&app.queue(1, "./tests/test_quick.py"));
    let entry = wait_entry(&redis, &p, id);
    assert_eq!(entry.get("sig").map(String::len), Some(64), "signed: {entry:?}");
    let token = entry["token"].clone();
    let path = format!("/api/testruns/{id}");
    for secret in [None, Some("wrong"), Some("")] {
        for body in [
            json!({"token": token, "status": "running", "worker": "mallory"}),
            // The original app's token-only callback.
            json!({"token": token, "status": "succeeded", "logs": "forged\n"}),
        ] {
            let (status, reply) = post_with(&app, &path, body, secret);
            assert_eq!(
                (status, reply["code"].as_str()),
                (403, Some("invalid_worker_secret")),
                "{secret:?}: {reply}"
            );
        }
        let (status, reply) = post_with(
            &app,
            "/api/workers/heartbeat",
            json!({"id": "ghost", "running": [id]}),
            secret,
        );
        assert_eq!((status, reply["code"].as_str()), (403, Some("invalid_worker_secret")));
    }
    let (_, run) = app.get(&path);
    assert_eq!(
        (run["status"].as_str(), run["lines"].as_u64()),
        (Some("created"), Some(0)),
        "{run}"
    );
    assert_eq!(app.get("/api/workers").1, json!([]), "no forged worker is listed");

    let (status, reply) = post_with(
        &app,
        &path,
        json!({"token": token, "status": "running", "worker": "honest"}),
        Some(SECRET),
    );
    assert_eq!((status, reply), (200, json!({"cancel": false, "status": "running"})));
    let (status, _) = post_with(
        &app,
        "/api/workers/heartbeat",
        json!({"id": "honest", "running": [id]}),
        Some(SECRET),
    );
    assert_eq!(status, 200);
}

#[test]
fn workers_with_the_secret_run_signed_messages_and_refuse_forged_ones() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--worker-secret", SECRET]);
    let secret_file = app.path().join("worker.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    let file = secret_file.display().to_string();
    let worker = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "signed",
        &[("TESTSCHEDULER_WORKER_SECRET_FILE", file.as_str())],
    );
    // A forged message, as whoever can write to Redis could add it: unsigned,
    // and one with a signature made with another secret.
    let pwned = app.path().join("pwned");
    let command = json!(["sh", "-c", format!("touch {}", pwned.display())]).to_string();
    let mut conn = redis.conn();
    wait_until(T, "the server created the stream", || {
        redis::cmd("EXISTS")
            .arg(format!("{p}runs"))
            .query::<bool>(&mut conn)
            .unwrap_or(false)
    });
    for sig in [None, Some("00".repeat(32))] {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(format!("{p}runs")).arg("*");
        for (k, v) in [
            ("id", "999"),
            ("path", "./tests/test_quick.py"),
            ("env_id", "1"),
            ("command", command.as_str()),
            ("timeout_s", "60"),
            ("token", "ab"),
            ("lease_s", "30"),
        ] {
            cmd.arg(k).arg(v);
        }
        if let Some(s) = &sig {
            cmd.arg("sig").arg(s);
        }
        cmd.query::<String>(&mut conn).expect("xadd");
    }
    // Taken after the forged ones (one stream, read in order).
    let id = id_of(&app.queue(2, "./tests/test_quick.py"));
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("signed")),
        "{run}"
    );
    assert!(!pwned.exists(), "a forged message ran");
    let log = worker.log();
    assert_eq!(
        log.matches("refused a job message that does not verify").count(),
        2,
        "{log}"
    );
}

#[test]
fn serve_with_redis_on_a_public_address_needs_a_worker_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--bind",
            "0.0.0.0:0",
            "--redis",
            "redis://127.0.0.1:1/0",
            "--workers",
            "0",
        ])
        .args(extra)
        .arg("--project-dir")
        .arg(dir.path())
        .env_remove("TESTSCHEDULER_WORKER_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd.spawn().expect("starts")
    };
    let out = run(&[]).wait_with_output().expect("exits");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--worker-secret"), "{err}");
    assert!(out.stdout.is_empty(), "it never listened");

    // With a secret it serves (Redis being down only delays publishing).
    let mut child = run(&["--worker-secret", SECRET]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on http://0.0.0.0:"), "{line:?}");
}

/// A listener that answers every request `404` with an HTML page, as a wrong `--server` would.
fn not_our_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n",
            );
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_worker_with_a_wrong_server_or_secret_says_so_and_takes_no_run() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &["--worker-secret", SECRET]);
    let elsewhere = not_our_server();
    let lost = Worker::spawn(
        &app,
        &elsewhere,
        &redis.url(),
        &p,
        "lost",
        &[("TESTSCHEDULER_WORKER_SECRET", SECRET)],
    );
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let cut = Worker::spawn(
        &app,
        &unreachable,
        &redis.url(),
        &p,
        "cut",
        &[("TESTSCHEDULER_WORKER_SECRET", SECRET)],
    );
    let wrong = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "wrong",
        &[("TESTSCHEDULER_WORKER_SECRET", "nope")],
    );
    let id = id_of(&app.queue(3, "./tests/test_quick.py"));
    wait_until(T, "each worker said what is wrong", || {
        lost.log().contains("not a testscheduler server")
            && cut.log().contains("cannot reach the server")
            && wrong.log().contains("refused this worker's secret")
    });
    assert!(
        lost.log().contains(&elsewhere) && lost.log().contains("--server"),
        "{}",
        lost.log()
    );
    assert!(wrong.log().contains("--worker-secret"), "{}", wrong.log());
    // They keep retrying (every few hundred ms at first); meanwhile none takes the message.
    std::thread::sleep(Duration::from_secs(2));
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("created"), None),
        "{run}"
    );
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{p}runs"))
        .arg("workers")
        .query(&mut redis.conn())
        .expect("xpending");
    assert!(
        matches!(&pending, redis::Value::Array(v) if v.first() == Some(&redis::Value::Int(0))),
        "no worker took the message: {pending:?}"
    );
    for w in [&lost, &cut, &wrong] {
        assert!(!w.log().contains("run claimed"), "{}", w.log());
    }
    // A worker that has it right takes the run at once.
    let _right = Worker::spawn(
        &app,
        &app.base,
        &redis.url(),
        &p,
        "right",
        &[("TESTSCHEDULER_WORKER_SECRET", SECRET)],
    );
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("right"))
    );
}

#[test]
fn a_flood_of_heartbeats_sends_browsers_few_worker_lists() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let mut ws = app.ws();
    let started = Instant::now();
    const N: usize = 1000;
    for i in 0..N {
        let (status, _) = app.post(
            "/api/workers/heartbeat",
            json!({"id": format!("made-up-{i}"), "slots": 1}),
        );
        assert_eq!(status, 200);
    }
    let sent_in = started.elapsed();
    // Every change is announced, the last one with the whole list.
    let mut frames = 0;
    let mut last = 0;
    while last < N {
        let Some(v) = ws.next(T) else {
            panic!("the last list never came; {frames} frames, last had {last} workers")
        };
        if v["event"] == "workersChanged" {
            frames += 1;
            last = v["workers"].as_array().map_or(0, Vec::len);
        }
    }
    let allowed = (started.elapsed().as_millis() / 500) as usize + 2;
    assert!(
        frames <= allowed,
        "{frames} workersChanged frames for {N} heartbeats sent in {sent_in:?} (at most {allowed})"
    );
}

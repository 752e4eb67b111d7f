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
    // The worker tells the server with its next heartbeat.
    wait_until(T, "the server logged both refusals", || {
        app.server_log().matches("a worker refused a job message").count() == 2
    });
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

/// A child process killed when dropped (also when the test fails).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `KEY=VALUE` lines of an environment file, as compose reads them.
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.to_string())))
        .collect()
}

#[test]
fn the_compose_settings_serve_and_work_with_the_secret_from_the_env_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("compose.yaml")).expect("compose.yaml");
    let settings: Vec<&str> = compose.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert_eq!(
        settings
            .iter()
            .filter(|l| l.trim() == "env_file: testscheduler.env")
            .count(),
        2,
        "server and workers read the env file"
    );
    assert!(
        !settings.iter().any(|l| l.contains("WORKER_SECRET")),
        "the secret is not written into compose.yaml"
    );
    let ignored = std::fs::read_to_string(root.join(".gitignore")).expect(".gitignore");
    assert!(
        ignored.lines().any(|l| l == "testscheduler.env"),
        "the env file is never committed"
    );
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("TESTSCHEDULER_BIND=0.0.0.0:8000"),
        "the image serves on 0.0.0.0"
    );
    assert!(!dockerfile
        .lines()
        .any(|l| !l.starts_with('#') && l.contains("WORKER_SECRET")));

    // The same variables on the real binary: the image's, compose's, the env file's.
    let redis = Redis::start();
    let project = tempfile::tempdir().expect("tmp");
    for (path, body) in DEFAULT_TESTS {
        let p = project.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    let secret_env = env_file(&format!(
        "# made as compose.yaml says\nTESTSCHEDULER_WORKER_SECRET={SECRET}\n"
    ));
    let prefix = prefix();
    let common = [
        ("TESTSCHEDULER_REDIS", redis.url()),
        ("TESTSCHEDULER_REDIS_PREFIX", prefix.clone()),
        ("TESTSCHEDULER_PROJECT_DIR", project.path().display().to_string()),
    ];
    let mut server = Command::new(BIN);
    server
        .arg("serve")
        .env("TESTSCHEDULER_BIND", "0.0.0.0:0")
        .env("TESTSCHEDULER_DATABASE", project.path().join("ts.db"))
        .envs(common.iter().cloned())
        .envs(secret_env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = KillOnDrop(server.spawn().expect("server starts"));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read");
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let port = port.unwrap_or_else(|| panic!("the server did not start with the compose settings: {line:?}"));
    let base = format!("http://127.0.0.1:{port}");
    let log = project.path().join("worker.log");
    let worker = Command::new(BIN)
        .args(["worker", "--slots", "2"])
        .env("TESTSCHEDULER_SERVER", &base)
        .envs(common.iter().cloned())
        .envs(secret_env.iter().cloned())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("worker starts");
    let _worker = KillOnDrop(worker);
    // On 0.0.0.0 the server runs with accounts (--auth local): the first
    // account and a token for it come from the CLI, as the README says.
    let db = project.path().join("ts.db");
    let (code, _, err) = crate::accounts::cli(&db, &["users", "add", "compose", "--role", "runner"], None);
    assert_eq!(code, 0, "{err}");
    let (code, token, err) = crate::accounts::cli(&db, &["tokens", "create", "--user", "compose", "--name", "t"], None);
    assert_eq!(code, 0, "{err}");
    let bearer = format!("Bearer {}", token.trim());
    let created: Value = ureq::post(&format!("{base}/api/testruns"))
        .set("Authorization", &bearer)
        .send_json(json!({"username": "compose", "env_id": 1, "path": "./tests/test_quick.py"}))
        .expect("queued")
        .into_json()
        .expect("json");
    let id = id_of(&created);
    let mut status = Value::Null;
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        let run: Value = ureq::get(&format!("{base}/api/testruns/{id}"))
            .set("Authorization", &bearer)
            .call()
            .expect("get")
            .into_json()
            .expect("json");
        status = run["status"].clone();
        if status != "created" && status != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        status,
        "succeeded",
        "worker log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn on_loopback_without_a_secret_messages_are_unsigned_and_run() {
    let redis = Redis::start();
    let p = prefix();
    let app = redis_app(&redis, &p, &[]);
    let id = id_of(&app.queue(4, "./tests/test_quick.py"));
    let entry = wait_entry(&redis, &p, id);
    assert!(!entry.contains_key("sig"), "{entry:?}");
    let _worker = Worker::spawn(&app, &app.base, &redis.url(), &p, "plain", &[]);
    let run = app.wait_finished(id, T);
    assert_eq!(
        (run["status"].as_str(), run["worker"].as_str()),
        (Some("succeeded"), Some("plain"))
    );
}

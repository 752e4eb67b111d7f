//! The store's write path against the real binary: a full disk (the database
//! on a small tmpfs this test mounts) pushes back and loses nothing once space
//! returns, or ends the run `unknown` with `lines_lost_from` if it stays full;
//! a corrupt database is refused at start at once, naming the file.

use crate::helpers::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted on a temporary directory; unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `size` (e.g. `64m`), or says why not. Without the
    /// right to mount, the caller's test is skipped, except under `CI=true`.
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(SmallFs { dir }),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: cannot mount a tmpfs for the disk-full test ({why})"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here ({why}); the disk-full test needs one");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free byte of the filesystem with one file.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let mut chunk = vec![0x5au8; 1 << 20];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => {
                    // ENOSPC: take what is left in ever smaller pieces.
                    if chunk.len() == 1 {
                        break;
                    }
                    chunk.truncate(chunk.len() / 2);
                }
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A test that says when it started, waits for a go, prints `LINES` lines and
/// says when it is done (its marker files live outside the small filesystem).
const FLOOD_TEST: &str = r#"import os, pathlib, time

def test_flood():
    d = pathlib.Path(os.environ['FLOOD_DIR'])
    (d / 'ready').write_text('1')
    while not (d / 'go').exists():
        time.sleep(0.05)
    for i in range(int(os.environ['FLOOD_LINES'])):
        print(f'flood {i:06d} ' + 'x' * 60)
    (d / 'done').write_text('1')
"#;

/// More output than every buffer between the test and the store holds
/// (pipe, the writer's bounded channel and its held batch: a few MB).
const FLOOD_LINES: u64 = 150_000;

/// A server (one embedded worker) whose database lives on `fs`.
fn app_on(fs: &SmallFs, markers: &Path, extra_env: &[(&str, &str)]) -> TestApp {
    let mut opts = Opts::default()
        .args(&["--workers", "1"])
        .env("FLOOD_DIR", &markers.display().to_string())
        .env("FLOOD_LINES", &FLOOD_LINES.to_string());
    for (k, v) in extra_env {
        opts = opts.env(k, v);
    }
    let mut app = spawn_app_with(opts);
    std::fs::write(app.path().join("tests/test_flood.py"), FLOOD_TEST).expect("write test");
    app.kill();
    app.db = fs.path().join("ts.db");
    app.start().expect("server starts on the small filesystem");
    app
}

fn healthz(app: &TestApp) -> (u16, Value) {
    app.get("/healthz")
}

/// Starts the flood run and fills the disk once it is running; returns its id.
fn start_flood_on_a_full_disk(app: &TestApp, fs: &SmallFs, markers: &Path) -> (i64, PathBuf) {
    let run = app.queue(1, "./tests/test_flood.py");
    let id = run["id"].as_i64().expect("id");
    app.wait_run(id, Duration::from_secs(60), |r| {
        assert!(
            matches!(r["status"].as_str(), Some("created" | "running")),
            "the flood run ended early: {r}\n{}",
            app.log_lines(id).join("\n")
        );
        r["status"] == "running" && markers.join("ready").exists()
    });
    let filler = fs.fill();
    std::fs::write(markers.join("go"), "1").expect("go");
    (id, filler)
}

/// The numbers of the `flood NNNNNN` lines of a log, in order (pytest -vv
/// prints the first one after the test's name, on the same line).
fn flood_numbers(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            words
                .windows(2)
                .find(|w| w[0].ends_with("flood") && w[1].len() == 6)
                .and_then(|w| w[1].parse().ok())
        })
        .collect()
}

#[test]
fn a_full_disk_pushes_back_and_loses_nothing_once_space_returns() {
    let Some(fs) = SmallFs::mount("64m") else { return };
    let markers = tempfile::tempdir().expect("markers");
    let app = app_on(&fs, markers.path(), &[]);
    assert_eq!(healthz(&app).0, 200);
    let (id, filler) = start_flood_on_a_full_disk(&app, &fs, markers.path());

    // The store cannot write: /healthz says so, with the reason.
    let mut health = Value::Null;
    wait_until(Duration::from_secs(60), "/healthz to answer 503", || {
        let (status, body) = healthz(&app);
        health = body;
        status == 503
    });
    assert_eq!(health["code"], "unavailable", "{health}");
    let message = health["message"].as_str().unwrap_or_default();
    assert!(message.contains("full"), "the reason is named: {health}");

    // It pushes back: the test blocks on its writes instead of running ahead.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(
            !markers.path().join("done").exists(),
            "the test printed everything while nothing could be stored"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, run) = app.get(&format!("/api/testruns/{id}"));
    assert_eq!(run["status"], "running", "{run}");
    assert!(run["lines"].as_u64().unwrap_or(0) < FLOOD_LINES, "{run}");

    // Space comes back: every line is stored, the run succeeds, health is back.
    std::fs::remove_file(filler).expect("free space");
    let run = app.wait_finished(id, Duration::from_secs(180));
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["lines_lost_from"].is_null(), "{run}");
    let lines = app.log_lines(id);
    assert_eq!(run["lines"].as_u64(), Some(lines.len() as u64));
    let numbers = flood_numbers(&lines);
    assert_eq!(numbers.len() as u64, FLOOD_LINES, "every printed line is stored");
    assert!(
        numbers.iter().enumerate().all(|(i, n)| i as u64 == *n),
        "in order, no gap"
    );
    wait_until(Duration::from_secs(30), "/healthz to answer 200 again", || {
        healthz(&app).0 == 200
    });
}

#[test]
fn a_disk_that_stays_full_ends_the_run_unknown_naming_the_first_line_lost() {
    let Some(fs) = SmallFs::mount("64m") else { return };
    let markers = tempfile::tempdir().expect("markers");
    let app = app_on(&fs, markers.path(), &[("TESTSCHEDULER_STORE_GIVE_UP", "3")]);
    let (id, filler) = start_flood_on_a_full_disk(&app, &fs, markers.path());
    wait_until(Duration::from_secs(60), "/healthz to answer 503", || {
        healthz(&app).0 == 503
    });

    // Past the give-up time the output is no longer held: the test runs to its end.
    wait_until(Duration::from_secs(120), "the test to finish", || {
        markers.path().join("done").exists()
    });
    // Its end cannot be written yet, and is not lost: it is written once space returns.
    std::fs::remove_file(filler).expect("free space");
    let run = app.wait_finished(id, Duration::from_secs(120));
    assert_eq!(run["status"], "unknown", "{run}");
    let lost_from = run["lines_lost_from"].as_u64().expect("lines_lost_from is set");
    let lines = app.log_lines(id);
    assert_eq!(lines.len() as u64, lost_from + 1, "stored lines, then the note: {run}");
    let note = lines.last().expect("a note");
    assert!(
        note.starts_with("testscheduler:") && note.contains(&lost_from.to_string()),
        "the note names the first line lost: {note}"
    );
    let numbers = flood_numbers(&lines);
    assert!((numbers.len() as u64) < FLOOD_LINES);
    assert!(
        numbers.iter().enumerate().all(|(i, n)| i as u64 == *n),
        "no gap before the loss"
    );
    assert_eq!(healthz(&app).0, 200);

    // The environment is free again.
    let again = app.queue(1, "./tests/test_quick.py");
    let again = app.wait_finished(again["id"].as_i64().expect("id"), Duration::from_secs(60));
    assert_eq!(again["status"], "succeeded", "{again}");
}

/// Starts the binary on `db` and expects it to refuse at once, naming the file.
fn assert_refused_at_once(app: &mut TestApp, what: &str) {
    let t = Instant::now();
    let err = app.start().expect_err("a corrupt database is refused");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(10), "{what}: refused only after {took:?}");
    let db = app.db.display().to_string();
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{what}: one message, not repeated pool errors:\n{err}");
    assert!(errors[0].contains(&db), "{what}: the message names {db}:\n{err}");
}

#[test]
fn a_corrupt_database_is_refused_at_start_at_once_naming_the_file() {
    let mut app = spawn_app();
    let run = app.queue(1, "./tests/test_quick.py");
    app.wait_finished(run["id"].as_i64().expect("id"), Duration::from_secs(60));
    app.kill();
    let db = app.db.clone();
    // Everything into the main file (closing the last connection drops the WAL).
    let checkpoint = Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()"])
        .arg(&db)
        .status()
        .expect("python3");
    assert!(checkpoint.success());
    let good = std::fs::read(&db).expect("read db");
    assert!(good.len() >= 3 * 4096, "a database of several pages: {}", good.len());
    let remove_wal = || {
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
    };
    remove_wal();

    // Not an SQLite file at all.
    std::fs::write(&db, "these are not the bytes you are looking for\n".repeat(200)).expect("write");
    assert_refused_at_once(&mut app, "a text file");

    // Garbage over the header.
    let mut bytes = good.clone();
    for b in bytes.iter_mut().take(4096) {
        *b = 0xa5;
    }
    std::fs::write(&db, &bytes).expect("write");
    remove_wal();
    assert_refused_at_once(&mut app, "garbage over the header");

    // The header intact, garbage over every page after the first.
    let mut bytes = good.clone();
    let page = u16::from_be_bytes([good[16], good[17]]) as usize;
    let page = if page == 1 { 65_536 } else { page };
    for (i, b) in bytes.iter_mut().enumerate().skip(page) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, &bytes).expect("write");
    remove_wal();
    assert_refused_at_once(&mut app, "garbage over the tables");

    // The good file still starts.
    std::fs::write(&db, &good).expect("write");
    app.start().expect("the intact database starts");
}

/// A `redis-server` of this test's own on a free loopback port, killed on drop.
struct Redis {
    port: u16,
    child: std::process::Child,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let r = Redis { port, child };
        let client = redis::Client::open(r.url()).expect("valid url");
        wait_until(Duration::from_secs(10), "redis answers PING", || {
            client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The token of the message for run `id` on `prefix`'s stream, once there is one.
    fn wait_token(&self, prefix: &str, id: i64) -> String {
        let client = redis::Client::open(self.url()).expect("valid url");
        let mut token = None;
        wait_until(Duration::from_secs(60), "the run to be published", || {
            let reply: redis::streams::StreamRangeReply = client
                .get_connection_with_timeout(Duration::from_secs(2))
                .and_then(|mut c| {
                    redis::cmd("XRANGE")
                        .arg(format!("{prefix}runs"))
                        .arg("-")
                        .arg("+")
                        .query(&mut c)
                })
                .unwrap_or_default();
            token = reply
                .ids
                .iter()
                .filter(|e| e.get::<i64>("id") == Some(id))
                .find_map(|e| e.get::<String>("token"));
            token.is_some()
        });
        token.expect("a token")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_full_disk_answers_a_remote_worker_503_and_its_retry_stores_every_line() {
    let Some(fs) = SmallFs::mount("16m") else { return };
    let redis = Redis::start();
    let prefix = format!("ts-storage-{}:", std::process::id());
    let url = redis.url();
    let mut app = spawn_app_with(Opts::default().args(&["--redis", &url, "--redis-prefix", &prefix, "--workers", "0"]));
    app.kill();
    app.db = fs.path().join("ts.db");
    app.start().expect("server starts on the small filesystem");
    let id = app.queue(2, "./tests/test_quick.py")["id"].as_i64().expect("id");
    let token = redis.wait_token(&prefix, id);
    let path = format!("/api/testruns/{id}");
    let (status, reply) = app.post(
        &path,
        serde_json::json!({"token": token, "status": "running", "worker": "w"}),
    );
    assert_eq!(status, 200, "{reply}");

    let filler = fs.fill();
    // Reports of lines are refused with 503 (the worker keeps them and
    // retries), never taken and dropped. Each batch is big enough that the
    // database needs new space for it.
    let batch: Vec<String> = (0..2_000)
        .map(|i| format!("remote {i:06} {}", "y".repeat(200)))
        .collect();
    let mut next = 0u64;
    let mut refused = None;
    for _ in 0..50 {
        let (status, reply) = app.post(&path, serde_json::json!({"token": token, "from": next, "lines": batch}));
        match status {
            200 => next += batch.len() as u64,
            _ => {
                refused = Some((status, reply));
                break;
            }
        }
    }
    let (status, reply) = refused.expect("a full disk refuses some report");
    assert_eq!((status, reply["code"].as_str()), (503, Some("unavailable")), "{reply}");
    let (status, health) = healthz(&app);
    assert_eq!(
        (status, health["code"].as_str()),
        (503, Some("unavailable")),
        "{health}"
    );

    // Space comes back: the same report goes through; nothing is missing.
    std::fs::remove_file(filler).expect("free space");
    let (status, reply) = app.post(&path, serde_json::json!({"token": token, "from": next, "lines": batch}));
    assert_eq!(status, 200, "{reply}");
    next += batch.len() as u64;
    let (status, reply) = app.post(
        &path,
        serde_json::json!({"token": token, "status": "succeeded", "exit_code": 0, "total": next}),
    );
    assert_eq!(status, 200, "{reply}");
    let run = app.wait_finished(id, Duration::from_secs(30));
    assert_eq!(
        (run["status"].as_str(), run["lines"].as_u64()),
        (Some("succeeded"), Some(next))
    );
    assert!(run["lines_lost_from"].is_null());
    let lines = app.log_lines(id);
    assert_eq!(lines.len() as u64, next);
    let in_order = lines
        .iter()
        .enumerate()
        .all(|(i, l)| l.starts_with(&format!("remote {:06} ", i % 2_000)));
    assert!(in_order, "each line once, in order");
    assert_eq!(healthz(&app).0, 200);
}

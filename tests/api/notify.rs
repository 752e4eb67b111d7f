//! `--notify-url`: one POST per finished run to each receiver; a dead or a
//! stuck receiver delays neither the runs nor the other receivers.

use crate::helpers::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tiny HTTP receiver on loopback that keeps every JSON body POSTed to it.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || serve(stream, &kept));
            }
        });
        Receiver { url, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("lock").clone()
    }

    /// Waits for at least `n` bodies.
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        wait_until(timeout, &format!("{n} notices"), || self.bodies().len() >= n);
        self.bodies()
    }
}

/// Reads HTTP/1.1 requests off one connection and answers each `200`.
fn serve(stream: TcpStream, kept: &Mutex<Vec<Value>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut length = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first {
                assert!(line.starts_with("POST /hook "), "{line}");
                first = false;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().expect("length");
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        kept.lock()
            .expect("lock")
            .push(serde_json::from_slice(&body).expect("JSON body"));
        if out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

fn id_of(run: &Value) -> i64 {
    run["id"].as_i64().expect("id")
}

#[test]
fn a_receiver_gets_exactly_one_post_per_finished_run() {
    let hook = Receiver::start();
    let app = spawn_app_with(
        Opts::default()
            .args(&["--notify-url", &hook.url])
            .env("SLOW_SECONDS", "60"),
    );
    let ok = id_of(&app.queue(1, "./tests/test_quick.py"));
    let failed = id_of(&app.queue(2, "./tests/test_fail.py"));
    let slow = id_of(&app.queue(3, "./tests/test_slow.py"));
    app.wait_run(slow, Duration::from_secs(60), |r| r["status"] == "running");
    let (status, _) = app.post(&format!("/api/testruns/{slow}/cancel"), serde_json::json!({}));
    assert_eq!(status, 200);
    for id in [ok, failed, slow] {
        app.wait_finished(id, Duration::from_secs(60));
    }
    // The cancelled run is announced again when its environment is freed:
    // wait for that, then a last run whose notice comes after any repeat.
    wait_until(Duration::from_secs(60), "env 3 free", || {
        app.get("/api/envs").1[2]["run_id"].is_null()
    });
    let last = id_of(&app.queue(3, "./tests/test_quick.py"));
    app.wait_finished(last, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hook.bodies().iter().any(|b| b["run"]["id"] == last) {
        assert!(
            Instant::now() < deadline,
            "no notice for run {last}: {:?}",
            hook.bodies()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bodies = hook.bodies();
    let mut ids: Vec<i64> = bodies
        .iter()
        .map(|b| b["run"]["id"].as_i64().expect("run id"))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![ok, failed, slow, last],
        "one POST per finished run: {bodies:?}"
    );
    for b in &bodies {
        assert_eq!(b["event"], "run.finished");
        let run = &b["run"];
        let expected = format!(
            "Run {} {} on env {} by tester: {}",
            run["id"],
            run["path"].as_str().expect("path"),
            run["env_id"],
            run["status"].as_str().expect("status")
        );
        assert_eq!(b["text"], expected.as_str());
    }
    let status_of = |id: i64| bodies.iter().find(|b| b["run"]["id"] == id).expect("notice")["run"]["status"].clone();
    assert_eq!(status_of(ok), "succeeded");
    assert_eq!(status_of(failed), "failed");
    assert_eq!(status_of(slow), "cancelled");
}

#[test]
fn a_dead_or_stuck_receiver_delays_nothing() {
    // Dead: a port nobody listens on. Stuck: accepts and never answers.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", l.local_addr().expect("addr"))
    };
    let stuck_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let stuck = format!("http://{}/hook", stuck_listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in stuck_listener.incoming().flatten() {
            held.push(s);
        }
    });
    let hook = Receiver::start();
    let app = spawn_app_with(Opts::default().args(&[
        "--notify-url",
        &dead,
        "--notify-url",
        &stuck,
        "--notify-url",
        &hook.url,
    ]));
    let mut ids = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        let id = id_of(&app.queue(1 + i, "./tests/test_quick.py"));
        app.wait_finished(id, Duration::from_secs(60));
        // The live receiver hears of each run while the others still retry.
        hook.wait_for(i as usize + 1, Duration::from_secs(30));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "run {id} took {:?}",
            started.elapsed()
        );
        ids.push(id);
    }
    let got: Vec<i64> = hook
        .bodies()
        .iter()
        .map(|b| b["run"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(got, ids);
}

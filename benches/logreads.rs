//! Benchmarks of reading logs (issue "Hardening", items 4 to 6), printed as
//! figures. Run with `cargo bench --bench logreads`; not part of the test suite.
//!
//! - peak RSS of the server while `/ws` followers that never read follow a
//!   180 MB flood of 60,000-byte lines (1 and 20 of them)
//! - peak RSS growth of one read of a 204 MB log: `/logs`, `log.txt`,
//!   `/lines?limit=10000`, a `/ws` follow of the finished run, and 4 `/logs` at once
//! - search p50/p99 on a 1,000,000-line log, and `/healthz` p99 while 8
//!   searches run at once (and the searches' own times then)

mod common;

use common::{pct, project, queue, start, status_kb, wait_done};
use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FLOOD: &str = "import os, sys\n\ndef test_flood():\n    w = sys.stdout.write\n    n, width = int(os.environ['LINES']), int(os.environ['WIDTH'])\n    for i in range(n):\n        pad = 'x' * width\n        if i % 10 == 0:\n            w(f'\\033[32m{i:09d}\\033[0m {pad}\\n')\n        else:\n            w(f'{i:09d} {pad}\\n')\n";

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Runs `f` and returns the rise of the server's peak RSS above its RSS before, in MB.
fn peak_growth(pid: u32, f: impl FnOnce()) -> f64 {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let before = status_kb(pid, "VmRSS:");
    f();
    mb(status_kb(pid, "VmHWM:").saturating_sub(before))
}

fn ws(port: u16) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream)
        .expect("handshake")
        .0
}

fn follow(ws: &mut tungstenite::WebSocket<TcpStream>, id: i64) {
    ws.send(tungstenite::Message::Text(
        json!({"op": "follow", "id": id, "from": 0}).to_string().into(),
    ))
    .expect("follow");
}

/// Reads frames until run `id`'s `logEnd`; returns the lines received.
fn drain(ws: &mut tungstenite::WebSocket<TcpStream>, id: i64) -> u64 {
    let mut n = 0;
    loop {
        let tungstenite::Message::Text(t) = ws.read().expect("read") else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).expect("json");
        if v["id"].as_i64() != Some(id) {
            continue;
        }
        match v["event"].as_str() {
            Some("logLines") => n += v["lines"].as_array().map_or(0, |a| a.len() as u64),
            Some("lagged") => follow_from(ws, id, v["next"].as_u64().unwrap_or(0)),
            Some("logEnd") => return n,
            _ => {}
        }
    }
}

fn follow_from(ws: &mut tungstenite::WebSocket<TcpStream>, id: i64, from: u64) {
    ws.send(tungstenite::Message::Text(
        json!({"op": "follow", "id": id, "from": from}).to_string().into(),
    ))
    .expect("follow");
}

fn bench_stalled(followers: usize) {
    let dir = project(&[("test_flood.py", FLOOD)]);
    std::env::set_var("LINES", "3000");
    std::env::set_var("WIDTH", "60000");
    let (server, _) = start(dir.path(), &["--workers", "1"]);
    let mut sockets: Vec<_> = (0..followers).map(|_| ws(server.port)).collect();
    let id = queue(&server.base, 1, "./tests/test_flood.py");
    for s in &mut sockets {
        follow(s, id);
    }
    let run = wait_done(&server.base, id);
    println!(
        "stalled followers: {followers} not reading a {:.0} MB flood of 60,000-byte lines: server peak RSS = {:.1} MB ({})",
        run["lines"].as_f64().unwrap_or(0.0) * 60_010.0 / 1e6,
        mb(status_kb(server.pid(), "VmHWM:")),
        run["status"]
    );
}

fn bench_big_reads() {
    let dir = project(&[("test_flood.py", FLOOD)]);
    std::env::set_var("LINES", "1000000");
    std::env::set_var("WIDTH", "194");
    let (server, _) = start(dir.path(), &["--workers", "1"]);
    let id = queue(&server.base, 1, "./tests/test_flood.py");
    let run = wait_done(&server.base, id);
    let total = run["lines"].as_u64().unwrap_or(0);
    let pid = server.pid();
    let base = server.base.clone();
    let get = |path: &str| -> usize {
        let mut body = ureq::get(&format!("{base}{path}")).call().expect("get").into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match body.read(&mut buf) {
                Ok(0) => return n,
                Ok(k) => n += k,
                Err(e) => panic!("{path}: {e}"),
            }
        }
    };
    let mut size = 0;
    let t = Instant::now();
    let logs = peak_growth(pid, || size = get(&format!("/api/testruns/{id}/logs")));
    let logs_s = t.elapsed().as_secs_f64();
    let txt = peak_growth(pid, || {
        get(&format!("/api/testruns/{id}/log.txt"));
    });
    let lines = peak_growth(pid, || {
        get(&format!("/api/testruns/{id}/lines?limit=10000"));
    });
    let port = server.port;
    let mut sent = 0;
    let follow_mb = peak_growth(pid, || {
        let mut s = ws(port);
        follow(&mut s, id);
        sent = drain(&mut s, id);
    });
    let four = peak_growth(pid, || {
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| get(&format!("/api/testruns/{id}/logs")));
            }
        });
    });
    println!(
        "big log: {total} lines, /logs body {:.0} MB in {logs_s:.1} s; peak RSS growth: /logs {logs:.1} MB, log.txt {txt:.1} MB, /lines?limit=10000 {lines:.1} MB, ws follow of the finished run {follow_mb:.1} MB ({sent} lines), 4 x /logs at once {four:.1} MB",
        size as f64 / 1e6
    );
}

fn bench_search() {
    let dir = project(&[("test_flood.py", FLOOD)]);
    std::env::set_var("LINES", "1000000");
    std::env::set_var("WIDTH", "90");
    let (server, _) = start(dir.path(), &["--workers", "1"]);
    let id = queue(&server.base, 1, "./tests/test_flood.py");
    wait_done(&server.base, id);
    let base = server.base.clone();
    let agent = ureq::AgentBuilder::new().build();
    let search = |agent: &ureq::Agent, q: &str| -> (f64, Value) {
        let t = Instant::now();
        let v: Value = agent
            .get(&format!("{base}/api/testruns/{id}/search"))
            .query("q", q)
            .call()
            .expect("search")
            .into_json()
            .expect("json");
        (t.elapsed().as_secs_f64() * 1e3, v)
    };
    // A rare term (searched through every line), and one split by colour codes.
    let mut one = Vec::new();
    let mut complete = true;
    for i in 0..30 {
        let q = if i % 2 == 0 {
            format!("{:09} ", 999_000 + i)
        } else {
            format!("{:09} x", 999_990 - i * 10 + 10)
        };
        let (ms, v) = search(&agent, &q);
        assert_eq!(v["matches"].as_array().map(Vec::len), Some(1), "{q}: {v}");
        complete &= v["complete"] == true;
        one.push(ms);
    }
    println!(
        "search, 1,000,000 lines: p50 = {:.0} ms, p99 = {:.0} ms (one at a time, every answer complete: {complete})",
        pct(&mut one, 0.5),
        pct(&mut one, 0.99)
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut health, mut during, partial) = std::thread::scope(|sc| {
        let searches: Vec<_> = (0..8)
            .map(|k| {
                let stop = &stop;
                let search = &search;
                sc.spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    let mut times = Vec::new();
                    let mut partial = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (ms, v) = search(&agent, &format!("{:09} ", 999_100 + k));
                        partial += usize::from(v["complete"] != true);
                        times.push(ms);
                    }
                    (times, partial)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let agent = ureq::AgentBuilder::new().build();
        let mut health = Vec::new();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            let t0 = Instant::now();
            agent.get(&format!("{base}/healthz")).call().expect("healthz");
            health.push(t0.elapsed().as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut during = Vec::new();
        let mut partial = 0;
        for s in searches {
            let (t, p) = s.join().expect("search thread");
            during.extend(t);
            partial += p;
        }
        (health, during, partial)
    });
    println!(
        "8 searches at once for 10 s: /healthz p50 = {:.1} ms, p99 = {:.1} ms, max = {:.1} ms ({} probes); searches p50 = {:.0} ms, p99 = {:.0} ms, {} of {} partial",
        pct(&mut health, 0.5),
        pct(&mut health, 0.99),
        pct(&mut health, 1.0),
        health.len(),
        pct(&mut during, 0.5),
        pct(&mut during, 0.99),
        partial,
        during.len()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("logreads: bench");
        return;
    }
    // `LOGREADS=search` (or `stalled`, `reads`) runs one part only.
    let only = std::env::var("LOGREADS").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("stalled") {
        bench_stalled(1);
        bench_stalled(20);
    }
    if run("reads") {
        bench_big_reads();
    }
    if run("search") {
        bench_search();
    }
}

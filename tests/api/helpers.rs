//! Starting the real server for a test, and talking to it.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_testscheduler");

/// Real pytest files every test project starts with.
pub const DEFAULT_TESTS: &[(&str, &str)] = &[
    ("tests/test_quick.py", "def test_one():\n    print('\\033[32mgreen line\\033[0m')\n\ndef test_two():\n    assert True\n"),
    ("tests/test_fail.py", "def test_broken():\n    assert 1 == 2\n"),
    (
        "tests/test_env.py",
        "import os\n\ndef test_env():\n    print('RUN', os.environ['TESTSCHEDULER_RUN_ID'], 'ENV', os.environ['TESTSCHEDULER_ENV_ID'], 'COLUMNS', os.environ['COLUMNS'])\n",
    ),
    (
        "tests/test_slow.py",
        "import os, time\n\ndef test_slow():\n    n = int(os.environ.get('SLOW_SECONDS', '30'))\n    pid_file = os.environ.get('PID_FILE')\n    if pid_file:\n        open(pid_file, 'w').write(str(os.getpid()))\n    for i in range(n * 10):\n        print(f'tick {i}', flush=True)\n        time.sleep(0.1)\n",
    ),
    (
        "tests/test_lines.py",
        "import os\n\ndef test_lines():\n    for i in range(int(os.environ.get('LINES', '2000'))):\n        print(f'line {i:06d} ' + 'x' * 60)\n",
    ),
    ("tests/sub/test_nested.py", "def test_nested():\n    pass\n"),
];

/// A running server and its project directory (removed on drop).
pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    child: Option<Child>,
}

/// Options for [`spawn_app_with`].
#[derive(Default, Clone)]
pub struct Opts {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Opts {
    pub fn args(mut self, args: &[&str]) -> Opts {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Opts {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// A server with the default tests tree and two embedded workers.
pub fn spawn_app() -> TestApp {
    spawn_app_with(Opts::default())
}

/// A server with extra flags and environment.
pub fn spawn_app_with(opts: Opts) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, body) in DEFAULT_TESTS {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(p, body).expect("write test file");
    }
    let db = dir.path().join("state").join("ts.db");
    std::fs::create_dir_all(db.parent().expect("has parent")).expect("mkdir");
    let mut app = TestApp {
        base: String::new(),
        port: 0,
        dir,
        db,
        args: opts.args,
        envs: opts.env,
        child: None,
    };
    app.start().expect("server starts");
    app
}

impl TestApp {
    /// Starts (or restarts) the binary on the same project and database.
    pub fn start(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(BIN);
        cmd.args(["--bind", "127.0.0.1:0"]);
        if !self.args.iter().any(|a| a == "--workers") {
            cmd.args(["--workers", "2"]);
        }
        cmd.arg("--project-dir")
            .arg(self.dir.path())
            .arg("--database")
            .arg(&self.db)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            return Err(format!("no listening line; stderr: {err}"));
        };
        self.base = addr.to_string();
        self.port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in listening line");
        // Keep stderr drained so the server never blocks on a full pipe.
        let stderr = child.stderr.take().expect("piped stderr");
        let log_path = self.dir.path().join("server.log");
        std::thread::spawn(move || {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log_path) {
                let _ = std::io::copy(&mut BufReader::new(stderr), &mut f);
            }
        });
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs the server (no cleanup: as a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the server to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("server running");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("the server did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What the server logged so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET → (status, JSON body or Null).
    pub fn get(&self, path: &str) -> (u16, Value) {
        json_of(ureq::get(&self.url(path)).timeout(Duration::from_secs(30)).call())
    }

    /// GET → (status, raw body, response headers we care about).
    pub fn get_raw(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>, Vec<(String, String)>) {
        let mut req = ureq::get(&self.url(path)).timeout(Duration::from_secs(30));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = resp.status();
        let hs = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.to_ascii_lowercase(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).expect("read body");
        (status, body, hs)
    }

    /// POST JSON → (status, JSON body).
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        json_of(
            ureq::post(&self.url(path))
                .timeout(Duration::from_secs(30))
                .send_json(body),
        )
    }

    /// Any method with a JSON body (or none) → (status, JSON body).
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(30));
        json_of(match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        })
    }

    /// POST raw bytes with a content type → (status, JSON body).
    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        json_of(
            ureq::post(&self.url(path))
                .timeout(Duration::from_secs(30))
                .set("Content-Type", content_type)
                .send_bytes(body),
        )
    }

    /// Queues a run; panics unless 201.
    pub fn queue(&self, env_id: u32, path: &str) -> Value {
        let (status, body) = self.post(
            "/api/testruns",
            serde_json::json!({"username": "tester", "env_id": env_id, "path": path}),
        );
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Waits until run `id` satisfies `pred`; returns it.
    pub fn wait_run(&self, id: i64, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, run) = self.get(&format!("/api/testruns/{id}"));
            if status == 200 && pred(&run) {
                return run;
            }
            if Instant::now() > deadline {
                panic!(
                    "run {id} never matched; last: {run}\nserver log:\n{}",
                    self.server_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until run `id` has finished (not queued/created/running).
    pub fn wait_finished(&self, id: i64, timeout: Duration) -> Value {
        self.wait_run(id, timeout, |r| {
            !matches!(r["status"].as_str(), Some("queued") | Some("created") | Some("running"))
        })
    }

    /// The whole stored log as lines.
    pub fn log_lines(&self, id: i64) -> Vec<String> {
        let (status, body, _) = self.get_raw(&format!("/api/testruns/{id}/log.txt"), &[]);
        assert_eq!(status, 200);
        String::from_utf8(body)
            .expect("utf-8 log")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A WebSocket client on `/ws`.
    pub fn ws(&self) -> Ws {
        self.ws_with_origin(None).expect("ws handshake")
    }

    /// A WebSocket client sending `Origin: origin`.
    pub fn ws_with_origin(&self, origin: Option<&str>) -> Result<Ws, String> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut req =
            tungstenite::client::IntoClientRequest::into_client_request(format!("ws://127.0.0.1:{}/ws", self.port))
                .map_err(|e| e.to_string())?;
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().expect("header value"));
        }
        let (socket, _) = tungstenite::client(req, stream).map_err(|e| e.to_string())?;
        Ok(Ws { socket })
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
    }
}

fn json_of(res: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A blocking WebSocket client.
pub struct Ws {
    socket: tungstenite::WebSocket<TcpStream>,
}

impl Ws {
    pub fn send(&mut self, v: Value) {
        self.socket
            .send(tungstenite::Message::Text(v.to_string().into()))
            .expect("ws send");
    }

    /// The next JSON frame, or None after `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.socket.read() {
                Ok(tungstenite::Message::Text(t)) => return Some(serde_json::from_str(&t).expect("JSON frame")),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("ws read: {e}"),
            }
        }
        None
    }

    /// Skips frames until one matches `pred`.
    pub fn until(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(v) = self.next(deadline - Instant::now()) {
                if pred(&v) {
                    return v;
                }
            }
        }
        panic!("no matching frame within {timeout:?}");
    }

    /// Follows run `id` from `from` and collects its lines until `logEnd`;
    /// asserts no gap and no repeat. Returns (lines, logEnd frame).
    pub fn collect(&mut self, id: i64, from: u64, timeout: Duration) -> (Vec<String>, Value) {
        self.send(serde_json::json!({"op": "follow", "id": id, "from": from}));
        self.collect_following(id, from, timeout)
    }

    /// As [`Ws::collect`], for a follow already sent.
    pub fn collect_following(&mut self, id: i64, from: u64, timeout: Duration) -> (Vec<String>, Value) {
        let mut lines = Vec::new();
        let mut next = from;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(v) = self.next(deadline.saturating_duration_since(Instant::now())) else {
                panic!("no logEnd for run {id}; got {} lines", lines.len());
            };
            if v["id"].as_i64() != Some(id) {
                continue;
            }
            match v["event"].as_str() {
                Some("logLines") => {
                    assert_eq!(v["from"].as_u64(), Some(next), "gap or repeat in logLines");
                    for l in v["lines"].as_array().expect("lines") {
                        lines.push(l.as_str().expect("string line").to_string());
                        next += 1;
                    }
                }
                Some("logEnd") => return (lines, v),
                Some("lagged") => panic!("lagged: {v}"),
                _ => {}
            }
        }
    }
}

/// Whether process `pid` is alive (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Waits until `f` holds or panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

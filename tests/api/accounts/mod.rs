//! Accounts (PRODUCT.md "Accounts"), black-box: servers started with
//! `--auth local` or `--auth proxy`, accounts made with the real CLI on the
//! server's database file, requests with cookies and bearer tokens.

mod cli;
mod proxy;
mod roles;
mod sessions;
mod tokens;

use crate::helpers::{spawn_app_with, Opts, TestApp, BIN};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A server with accounts in its database (`--auth local`) and no embedded
/// workers (runs stay `created`, so they can be cancelled at leisure).
pub fn local_app(extra: &[&str]) -> TestApp {
    let mut args = vec!["--auth", "local", "--workers", "0"];
    args.extend_from_slice(extra);
    spawn_app_with(Opts::default().args(&args))
}

/// Runs the binary's `args` on `db` with `stdin`: (exit code, stdout, stderr).
pub fn cli(db: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--database")
        .arg(db)
        .env_remove("TESTSCHEDULER_DATABASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    if let Some(mut input) = child.stdin.take() {
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("CLI output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The password tests give `name`.
pub fn password_of(name: &str) -> String {
    format!("pw-{name}-Xq7#secret")
}

/// Adds the account `name` with `role` through the CLI (password from stdin).
pub fn add_user(app: &TestApp, name: &str, role: &str) {
    let pw = format!("{}\n", password_of(name));
    let (code, _, err) = cli(
        &app.db,
        &["users", "add", name, "--role", role, "--password-stdin"],
        Some(&pw),
    );
    assert_eq!(code, 0, "users add {name}: {err}");
}

/// An answer: status, JSON body (Null if none), headers (lowercase names).
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// Any request with headers and an optional JSON body.
pub fn call(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Resp {
    let mut req = ureq::request(method, &app.url(path)).timeout(Duration::from_secs(30));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let text = resp.into_string().unwrap_or_default();
    Resp {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

/// Signs `name` in with its test password; returns the `Cookie` header value.
pub fn login(app: &TestApp, name: &str) -> String {
    login_with(app, name, &password_of(name))
}

/// Signs `name` in with `password`: the session cookie's `name=value`.
pub fn login_with(app: &TestApp, name: &str, password: &str) -> String {
    let r = call(
        app,
        "POST",
        "/api/login",
        &[],
        Some(serde_json::json!({"username": name, "password": password})),
    );
    assert_eq!(r.status, 200, "login {name}: {}", r.body);
    let set = r.header("set-cookie").expect("a session cookie");
    set.split(';').next().expect("name=value").to_string()
}

/// A WebSocket handshake on `/ws` with `headers`: the socket, or the refusal's status.
pub fn ws_with(app: &TestApp, headers: &[(&str, &str)]) -> Result<tungstenite::WebSocket<std::net::TcpStream>, u16> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut req =
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://127.0.0.1:{}/ws", app.port))
            .expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    match tungstenite::client(req, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Err(e) => panic!("ws handshake: {e}"),
    }
}

/// Adds the account `ci-ROLE` and a token for it through the CLI: (exit code,
/// token, stderr).
pub fn cli_for(app: &TestApp, role: &str) -> (i32, String, String) {
    let name = format!("ci-{role}");
    add_user(app, &name, role);
    let (code, out, err) = cli(&app.db, &["tokens", "create", "--user", &name, "--name", "ci"], None);
    (code, out.trim().to_string(), err)
}

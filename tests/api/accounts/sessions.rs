//! Sign-in, sessions and their ends, the login rate limit, cross-site
//! requests, secrets kept out of logs and answers, and `--auth none`.

use super::{add_user, call, cli, local_app, login, login_with, password_of};
use crate::helpers::{spawn_app, spawn_app_with, Opts, BIN};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn me(app: &crate::helpers::TestApp, cookie: &str) -> super::Resp {
    call(app, "GET", "/api/me", &[("Cookie", cookie)], None)
}

#[test]
fn sign_in_me_and_sign_out() {
    let app = local_app(&["--public-url", "https://ts.example.com"]);
    add_user(&app, "erin", "runner");
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "erin", "password": password_of("erin")})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"username": "erin", "role": "runner"}));
    let set = r.header("set-cookie").expect("cookie").to_string();
    for attr in [
        "testscheduler_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    let id = set
        .split(';')
        .next()
        .expect("pair")
        .trim_start_matches("testscheduler_session=");
    assert_eq!(id.len(), 64, "256 random bits, hex: {set}");
    let cookie = set.split(';').next().expect("pair").to_string();
    let m = me(&app, &cookie);
    assert_eq!(m.body, json!({"username": "erin", "role": "runner", "auth": "local"}));
    // Signed out: the same cookie, replayed, is refused.
    let out = call(&app, "POST", "/api/logout", &[("Cookie", &cookie)], None);
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body["sessions_ended"], 1);
    assert!(
        out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")),
        "cleared"
    );
    let replay = me(&app, &cookie);
    assert_eq!(
        (replay.status, replay.code()),
        (401, "unauthenticated"),
        "{}",
        replay.body
    );
    // A forged cookie is nobody.
    let forged = format!("testscheduler_session={}", "ab".repeat(32));
    assert_eq!(me(&app, &forged).status, 401);
    assert_eq!(me(&app, "testscheduler_session=").status, 401);
    // Wrong password, unknown name: the same answer.
    for (u, p) in [("erin", "wrong password"), ("nobody-here", "whatever1")] {
        let r = call(
            &app,
            "POST",
            "/api/login",
            &[],
            Some(json!({"username": u, "password": p})),
        );
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"), "{}", r.body);
        assert!(r.header("set-cookie").is_none());
    }
    let r = call(&app, "POST", "/api/login", &[], Some(json!({"username": "erin"})));
    assert_eq!(r.status, 400);
    assert!(r.body["errors"]["password"].is_array(), "{}", r.body);
}

#[test]
fn logout_everywhere_ends_every_session_of_the_account() {
    let app = local_app(&[]);
    add_user(&app, "finn", "viewer");
    let (a, b) = (login(&app, "finn"), login(&app, "finn"));
    assert_ne!(a, b);
    let out = call(
        &app,
        "POST",
        "/api/logout",
        &[("Cookie", &a)],
        Some(json!({"everywhere": true})),
    );
    assert_eq!(out.body["sessions_ended"], 2, "{}", out.body);
    assert_eq!(me(&app, &a).status, 401);
    assert_eq!(me(&app, &b).status, 401);
}

#[test]
fn sessions_end_when_idle_and_at_their_absolute_end() {
    let app = local_app(&["--session-idle", "1"]);
    add_user(&app, "gus", "viewer");
    let cookie = login(&app, "gus");
    assert_eq!(me(&app, &cookie).status, 200);
    // Unused for longer than the idle limit (a slower machine only waits longer).
    std::thread::sleep(Duration::from_millis(2500));
    let r = me(&app, &cookie);
    assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| m.contains("session")),
        "{}",
        r.body
    );

    let app = local_app(&["--session-max", "2"]);
    add_user(&app, "hal", "viewer");
    let cookie = login(&app, "hal");
    // Used all along, it still ends at its absolute end.
    crate::helpers::wait_until(Duration::from_secs(30), "the session's absolute end", || {
        me(&app, &cookie).status == 401
    });
}

#[test]
fn failed_sign_ins_are_rate_limited_per_name() {
    let app = local_app(&[]);
    add_user(&app, "ivy", "runner");
    add_user(&app, "jay", "runner");
    for _ in 0..5 {
        let r = call(
            &app,
            "POST",
            "/api/login",
            &[],
            Some(json!({"username": "ivy", "password": "guess-guess"})),
        );
        assert_eq!(r.code(), "invalid_credentials", "{}", r.body);
    }
    // Even the right password now waits.
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "ivy", "password": password_of("ivy")})),
    );
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.body);
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)));
    // Another name from the same address is under the address's own, higher limit.
    login(&app, "jay");
    // Every failure is audited, without the password.
    let root = {
        add_user(&app, "kim", "admin");
        login(&app, "kim")
    };
    let audit = call(&app, "GET", "/api/audit?limit=100", &[("Cookie", &root)], None).body;
    let failed = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "login.failed" && e["target"] == "ivy")
        .count();
    assert_eq!(failed, 5, "{audit}");
    assert!(!audit.to_string().contains("guess-guess"));
}

#[test]
fn a_cross_site_form_is_refused_even_with_a_session() {
    let app = local_app(&[]);
    add_user(&app, "lea", "admin");
    let cookie = login(&app, "lea");
    let h = [("Cookie", cookie.as_str()), ("Origin", "https://evil.example")];
    let r = call(
        &app,
        "POST",
        "/api/testruns",
        &h,
        Some(json!({"env_id": 1, "path": "./tests/"})),
    );
    assert_eq!((r.status, r.code()), (403, "forbidden_origin"), "{}", r.body);
    let r = call(&app, "POST", "/api/logout", &h, None);
    assert_eq!(r.code(), "forbidden_origin", "logout too is state-changing");
    // A form's body (text/plain, no Origin header as an old browser might send).
    let form = ureq::post(&app.url("/api/testruns"))
        .set("Cookie", &cookie)
        .set("Content-Type", "text/plain")
        .send_string(r#"{"env_id": 1, "path": "./tests/"}"#);
    let status = match form {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 400);
    let runs = call(&app, "GET", "/api/testruns", &[("Cookie", &cookie)], None).body;
    assert_eq!(runs, json!([]), "nothing was queued");
    assert_eq!(me(&app, &cookie).status, 200, "and the session lives on");
}

#[test]
fn passwords_never_reach_the_log_or_an_answer() {
    let app = spawn_app_with(
        Opts::default()
            .args(&["--auth", "local", "--workers", "0"])
            .env("RUST_LOG", "debug"),
    );
    let secret = "Zebra-Orchid-7731";
    let (code, out, err) = cli(
        &app.db,
        &["users", "add", "max", "--role", "admin", "--password-stdin"],
        Some(&format!("{secret}\n")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains(secret) && !err.contains(secret),
        "the CLI does not echo it"
    );
    let mut answers = String::new();
    for pw in [secret, "Zebra-Orchid-7732"] {
        let r = call(
            &app,
            "POST",
            "/api/login",
            &[],
            Some(json!({"username": "max", "password": pw})),
        );
        answers.push_str(&format!("{:?}{}", r.headers, r.body));
    }
    let cookie = login_with(&app, "max", secret);
    for path in ["/api/me", "/api/audit", "/api/tokens"] {
        answers.push_str(&call(&app, "GET", path, &[("Cookie", &cookie)], None).body.to_string());
    }
    let (code, listing, _) = cli(&app.db, &["users", "list"], None);
    assert_eq!(code, 0);
    assert!(listing.contains("max") && listing.contains("admin"), "{listing}");
    for text in [answers, listing, app.server_log()] {
        assert!(
            !text.contains(secret) && !text.contains("Zebra-Orchid-7732"),
            "a password leaked: {text}"
        );
    }
    let db = std::fs::read(&app.db).expect("db file");
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "only the hash is stored"
    );
}

#[test]
fn auth_none_is_everyone_as_admin_and_unchanged() {
    let app = spawn_app();
    let r = call(&app, "GET", "/api/me", &[], None);
    assert_eq!(r.body, json!({"username": null, "role": "admin", "auth": "none"}));
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "a", "password": "b"})),
    );
    assert_eq!(r.status, 404, "no password sign-in: {}", r.body);
    let r = call(&app, "POST", "/api/tokens", &[], Some(json!({"name": "ci"})));
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.body);
    // A stale token sent to a server without accounts changes nothing.
    let r = call(
        &app,
        "GET",
        "/api/testruns",
        &[("Authorization", "Bearer tsk_stale")],
        None,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_public_bind_starts_in_local_mode_and_says_how_to_make_the_first_admin() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("fresh.db");
    let mut child = Command::new(BIN)
        .args(["--bind", "0.0.0.0:0", "--workers", "0", "--project-dir"])
        .arg(dir.path())
        .arg("--database")
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let port: u16 = first
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("listening line");
    let hint: Vec<String> = lines.take(3).map_while(Result::ok).collect();
    let hint = hint.join("\n");
    assert!(hint.contains("testscheduler users add NAME --role admin"), "{hint}");
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &str| match ureq::get(&format!("{base}{path}")).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(get("/healthz").0, 200);
    assert_eq!(get("/").0, 200, "the web app's page (it shows the sign-in)");
    let (status, body) = get("/api/testruns");
    assert_eq!(status, 401);
    assert!(body.contains("users add"), "the API says how too: {body}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn signing_out_closes_the_sockets_the_session_opened() {
    let app = local_app(&[]);
    add_user(&app, "ned", "viewer");
    let cookie = login(&app, "ned");
    let mut ws = super::ws_with(&app, &[("Cookie", &cookie)]).expect("the cookie opens /ws");
    let out = call(&app, "POST", "/api/logout", &[("Cookie", &cookie)], None);
    assert_eq!(out.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let code = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("closed without a close frame: {e}"),
        }
        assert!(std::time::Instant::now() < deadline, "the socket outlived its session");
    };
    assert_eq!(code, Some(1008));
}

//! API tokens: created once, stored hashed, with their owner's role; revoked
//! ones stop at once, an open `/ws` socket included; the terminal client
//! sends them.

use super::{add_user, call, cli, local_app, login, ws_with};
use crate::helpers::BIN;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_token_carries_its_owners_role_until_revoked() {
    let app = local_app(&[]);
    add_user(&app, "nia", "runner");
    let cookie = login(&app, "nia");
    let c = [("Cookie", cookie.as_str())];
    let r = call(
        &app,
        "POST",
        "/api/tokens",
        &c,
        Some(json!({"name": "ci", "expires_in_days": 7})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().expect("token").to_string();
    let id = r.body["id"].as_i64().expect("id");
    assert!(token.starts_with("tsk_") && token.len() > 60, "{token}");
    assert_eq!(r.body["name"], "ci");
    assert!(r.body["expires_at"].as_str().is_some_and(|t| t.ends_with("+00:00")));
    let bearer = format!("Bearer {token}");
    let b = [("Authorization", bearer.as_str())];
    let me = call(&app, "GET", "/api/me", &b, None);
    assert_eq!(me.body, json!({"username": "nia", "role": "runner", "auth": "local"}));
    let run = call(
        &app,
        "POST",
        "/api/testruns",
        &b,
        Some(json!({"env_id": 1, "path": "./tests/"})),
    );
    assert_eq!(run.status, 201, "{}", run.body);
    assert_eq!(run.body["username"], "nia");
    let disable = call(&app, "POST", "/api/envs/1/disable", &b, Some(json!({"reason": "x"})));
    assert_eq!(disable.code(), "forbidden", "no more than the owner's role");
    // Listed without its secret, with when it was last used.
    let list = call(&app, "GET", "/api/tokens", &c, None).body;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id);
    assert!(list[0]["last_used"].is_string(), "{list}");
    assert!(!list.to_string().contains(&token[4..]), "no secret in the list");
    // Bad bodies name the field.
    let bad = call(
        &app,
        "POST",
        "/api/tokens",
        &c,
        Some(json!({"name": "", "expires_in_days": 0, "x": 1})),
    );
    assert_eq!(bad.status, 400);
    for field in ["name", "expires_in_days", "x"] {
        assert!(bad.body["errors"][field].is_array(), "{field}: {}", bad.body);
    }
    // Another account cannot see or revoke it.
    add_user(&app, "oli", "runner");
    let other = login(&app, "oli");
    let o = [("Cookie", other.as_str())];
    assert_eq!(call(&app, "GET", "/api/tokens", &o, None).body, json!([]));
    assert_eq!(call(&app, "DELETE", &format!("/api/tokens/{id}"), &o, None).status, 404);
    // Revoked: refused at once.
    assert_eq!(call(&app, "DELETE", &format!("/api/tokens/{id}"), &c, None).status, 204);
    let r = call(&app, "GET", "/api/me", &b, None);
    assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{}", r.body);
    assert_eq!(call(&app, "DELETE", &format!("/api/tokens/{id}"), &c, None).status, 404);
    let r = call(&app, "GET", "/api/me", &[("Authorization", "Bearer tsk_forged")], None);
    assert_eq!(r.code(), "unauthenticated");
}

#[test]
fn a_token_revoked_mid_follow_closes_the_socket() {
    let app = local_app(&[]);
    add_user(&app, "pat", "runner");
    let cookie = login(&app, "pat");
    let c = [("Cookie", cookie.as_str())];
    let r = call(&app, "POST", "/api/tokens", &c, Some(json!({"name": "follow"})));
    let token = r.body["token"].as_str().expect("token").to_string();
    let id = r.body["id"].as_i64().expect("id");
    // Without workers the run never ends: the follow stays open.
    let run = call(
        &app,
        "POST",
        "/api/testruns",
        &c,
        Some(json!({"env_id": 2, "path": "./tests/"})),
    );
    let run_id = run.body["id"].as_i64().expect("run id");
    let bearer = format!("Bearer {token}");
    let mut ws = ws_with(&app, &[("Authorization", &bearer)]).expect("a token opens /ws");
    ws.send(tungstenite::Message::Text(
        json!({"op": "follow", "id": run_id}).to_string().into(),
    ))
    .expect("follow");
    // The socket is live: a run event reaches it.
    call(
        &app,
        "POST",
        "/api/testruns",
        &c,
        Some(json!({"env_id": 3, "path": "./tests/"})),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_event = false;
    while !saw_event && Instant::now() < deadline {
        if let Ok(tungstenite::Message::Text(t)) = ws.read() {
            saw_event = t.contains("taskAdded");
        }
    }
    assert!(saw_event, "the socket got events");
    assert_eq!(call(&app, "DELETE", &format!("/api/tokens/{id}"), &c, None).status, 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("the socket ended without a close frame: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the socket stayed open after its token was revoked"
        );
    };
    assert_eq!(closed, Some(1008), "policy violation");
    assert_eq!(ws_with(&app, &[("Authorization", &bearer)]).err(), Some(401));
}

#[test]
fn the_cli_makes_tokens_and_the_terminal_client_sends_them() {
    let app = local_app(&[]);
    add_user(&app, "quin", "runner");
    let (code, out, err) = cli(
        &app.db,
        &[
            "tokens",
            "create",
            "--user",
            "quin",
            "--name",
            "laptop",
            "--expires-days",
            "3",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let token = out.trim().to_string();
    assert!(token.starts_with("tsk_"), "only the token on stdout: {out}");
    assert!(err.contains("laptop") && !err.contains(&token), "{err}");
    let (code, _, err) = cli(&app.db, &["tokens", "create", "--user", "ghost", "--name", "x"], None);
    assert_eq!(code, 2);
    assert!(err.contains("--user"), "{err}");
    let (code, _, err) = cli(
        &app.db,
        &[
            "tokens",
            "create",
            "--user",
            "quin",
            "--name",
            "x",
            "--expires-days",
            "0",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("--expires-days"), "{err}");
    let server = app.base.clone();
    let submit = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["submit", "--server", &server, "--env", "4", "--path", "./tests/"])
            .env_remove("TESTSCHEDULER_TOKEN");
        if let Some(t) = token {
            cmd.env("TESTSCHEDULER_TOKEN", t);
        }
        cmd.output().expect("submit")
    };
    let refused = submit(None);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let ok = submit(Some(&token));
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let id = String::from_utf8_lossy(&ok.stdout).trim().to_string();
    let bearer = format!("Bearer {token}");
    let run = call(
        &app,
        "GET",
        &format!("/api/testruns/{id}"),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(run.body["username"], "quin", "{}", run.body);
    let client = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .args(["--server", &server, "--token", &token])
            .env_remove("TESTSCHEDULER_TOKEN")
            .output()
            .expect("client")
    };
    let listed = client(&["runs"]);
    assert_eq!(
        listed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("quin"));
    assert_eq!(client(&["cancel", &id]).status.code(), Some(0));
    // Following goes through /ws, with the token too: the cancelled run's code.
    let followed = client(&["logs", &id, "--follow"]);
    assert_eq!(
        followed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
}

#[test]
fn the_accounts_answers_fit_the_openapi_document() {
    use crate::openapi::{assert_fits, document};
    let doc = document();
    let app = local_app(&[]);
    add_user(&app, "ursa", "admin");
    let login = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "ursa", "password": super::password_of("ursa")})),
    );
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_string();
    assert_fits(&doc, "post", "/api/login", 200, (login.status, login.body));
    let c = [("Cookie", cookie.as_str())];
    let me = call(&app, "GET", "/api/me", &c, None);
    assert_fits(&doc, "get", "/api/me", 200, (me.status, me.body));
    let made = call(&app, "POST", "/api/tokens", &c, Some(json!({"name": "doc"})));
    assert_fits(&doc, "post", "/api/tokens", 201, (made.status, made.body));
    let list = call(&app, "GET", "/api/tokens", &c, None);
    assert_fits(&doc, "get", "/api/tokens", 200, (list.status, list.body));
    let audit = call(&app, "GET", "/api/audit", &c, None);
    assert_fits(&doc, "get", "/api/audit", 200, (audit.status, audit.body));
    let nobody = call(&app, "GET", "/api/me", &[], None);
    assert_fits(&doc, "get", "/api/me", 401, (nobody.status, nobody.body));
    for _ in 0..5 {
        call(
            &app,
            "POST",
            "/api/login",
            &[],
            Some(json!({"username": "ursa", "password": "nope-nope"})),
        );
    }
    let limited = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "ursa", "password": "nope-nope"})),
    );
    assert_fits(&doc, "post", "/api/login", 429, (limited.status, limited.body));
    let out = call(&app, "POST", "/api/logout", &c, Some(json!({"everywhere": false})));
    assert_fits(&doc, "post", "/api/logout", 200, (out.status, out.body));
}

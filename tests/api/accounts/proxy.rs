//! `--auth proxy`: the header is believed from `--auth-proxy-from` only; a
//! name first seen becomes an account with `--auth-proxy-role`.

use super::{call, cli};
use crate::helpers::{spawn_app_with, Opts};
use serde_json::json;

#[test]
fn the_proxy_header_is_trusted_from_its_address_only() {
    let app = spawn_app_with(Opts::default().args(&[
        "--auth",
        "proxy",
        "--auth-proxy-from",
        "127.0.0.1",
        "--auth-proxy-header",
        "X-Remote-User",
        "--workers",
        "0",
    ]));
    let h = [("X-Remote-User", "rosa")];
    let me = call(&app, "GET", "/api/me", &h, None);
    assert_eq!(me.body, json!({"username": "rosa", "role": "runner", "auth": "proxy"}));
    let run = call(
        &app,
        "POST",
        "/api/testruns",
        &h,
        Some(json!({"env_id": 1, "path": "./tests/"})),
    );
    assert_eq!(run.status, 201, "{}", run.body);
    assert_eq!(run.body["username"], "rosa");
    assert_eq!(call(&app, "GET", "/api/me", &[], None).status, 401, "no header, nobody");
    let bad = call(&app, "GET", "/api/me", &[("X-Remote-User", "x")], None);
    assert_eq!(bad.status, 401, "not a valid account name: {}", bad.body);
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "rosa", "password": "whatever"})),
    );
    assert_eq!(r.status, 404, "no password sign-in behind a proxy");
    // The account exists now, with the proxy's role, and can be managed.
    let (_, listing, _) = cli(&app.db, &["users", "list"], None);
    assert!(
        listing.lines().any(|l| l.starts_with("rosa") && l.contains("runner")),
        "{listing}"
    );
    let (code, _, err) = cli(&app.db, &["users", "disable", "rosa"], None);
    assert_eq!(code, 0, "{err}");
    let me = call(&app, "GET", "/api/me", &h, None);
    assert_eq!((me.status, me.code()), (401, "unauthenticated"), "{}", me.body);

    // A server told another proxy address ignores the header from here.
    let app = spawn_app_with(Opts::default().args(&[
        "--auth",
        "proxy",
        "--auth-proxy-from",
        "127.0.0.2",
        "--auth-proxy-role",
        "admin",
    ]));
    let r = call(&app, "GET", "/api/me", &[("X-Forwarded-User", "mallory")], None);
    assert_eq!((r.status, r.code()), (401, "unauthenticated"), "{}", r.body);
    let (_, listing, _) = cli(&app.db, &["users", "list"], None);
    assert!(!listing.contains("mallory"), "no account was made: {listing}");
}

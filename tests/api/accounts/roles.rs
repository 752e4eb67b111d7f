//! Each role's allowed and refused actions, in one table, against one server.

use super::{add_user, call, local_app, login, ws_with};
use serde_json::{json, Value};
use std::collections::HashMap;

struct Row {
    who: &'static str,
    method: &'static str,
    /// `{A}`, `{B}`, `{C}` (runs) and `{R}` (a reservation) are filled in.
    path: &'static str,
    body: Option<Value>,
    status: u16,
    code: Option<&'static str>,
}

fn row(who: &'static str, method: &'static str, path: &'static str, body: Option<Value>, status: u16) -> Row {
    let code = match status {
        401 => Some("unauthenticated"),
        403 => Some("forbidden"),
        _ => None,
    };
    Row {
        who,
        method,
        path,
        body,
        status,
        code,
    }
}

fn queue(env: u32) -> Option<Value> {
    Some(json!({"env_id": env, "path": "./tests/test_quick.py"}))
}

#[test]
fn each_role_may_do_what_the_table_says_and_nothing_more() {
    let app = local_app(&[]);
    for (name, role) in [
        ("root", "admin"),
        ("ann", "runner"),
        ("bob", "runner"),
        ("val", "viewer"),
    ] {
        add_user(&app, name, role);
    }
    let mut cookies: HashMap<&str, String> = ["root", "ann", "bob", "val"]
        .into_iter()
        .map(|n| (n, login(&app, n)))
        .collect();
    cookies.insert("nobody", String::new());
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (key, who, env) in [("{A}", "ann", 3), ("{B}", "bob", 2), ("{C}", "bob", 4)] {
        let r = call(&app, "POST", "/api/testruns", &[("Cookie", &cookies[who])], queue(env));
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["username"], who, "the run is the account's");
        ids.insert(key, r.body["id"].to_string());
    }
    let reason = || Some(json!({"reason": "maintenance"}));
    let reserve = || Some(json!({"duration_s": 60, "note": "debugging"}));
    let table = [
        // Reads: every role, no one without an account.
        row("val", "GET", "/api/testruns", None, 200),
        row("val", "GET", "/api/testruns/{A}", None, 200),
        row("val", "GET", "/api/testruns/{A}/lines", None, 200),
        row("val", "GET", "/api/envs", None, 200),
        row("val", "GET", "/api/tests", None, 200),
        row("val", "GET", "/api/me", None, 200),
        row("nobody", "GET", "/api/testruns", None, 401),
        row("nobody", "GET", "/api/envs", None, 401),
        row("nobody", "GET", "/api/me", None, 401),
        row("nobody", "POST", "/api/testruns", queue(20), 401),
        row("nobody", "POST", "/api/testruns/{A}/cancel", None, 401),
        // A viewer reads only.
        row("val", "POST", "/api/testruns", queue(10), 403),
        row("val", "POST", "/api/testruns/{A}/cancel", None, 403),
        row("val", "POST", "/api/envs/5/reservations", reserve(), 403),
        row("val", "POST", "/api/envs/5/disable", reason(), 403),
        row("val", "POST", "/api/envs/5/enable", None, 403),
        row("val", "GET", "/api/audit", None, 403),
        // A runner: their own runs and reservations, nobody else's.
        row("ann", "POST", "/api/testruns/{B}/cancel", None, 403),
        row("ann", "POST", "/api/envs/5/disable", reason(), 403),
        row("ann", "GET", "/api/audit", None, 403),
        row("ann", "POST", "/api/testruns/{A}/cancel", None, 200),
        row("ann", "POST", "/api/envs/6/reservations", reserve(), 201),
        row("bob", "DELETE", "/api/reservations/{R}", None, 403),
        row(
            "bob",
            "PATCH",
            "/api/reservations/{R}",
            Some(json!({"until": "2099-01-01T00:00:00Z"})),
            403,
        ),
        row("ann", "DELETE", "/api/reservations/{R}", None, 200),
        row("bob", "POST", "/api/testruns/{C}/cancel", None, 200),
        // Re-runs: a runner's own, an admin's any; checked before the body.
        row("nobody", "POST", "/api/testruns/{A}/rerun", Some(json!({})), 401),
        row("val", "POST", "/api/testruns/{A}/rerun", Some(json!({})), 403),
        row("ann", "POST", "/api/testruns/{B}/rerun", Some(json!({})), 403),
        // An admin: everyone's.
        row("root", "POST", "/api/testruns/{B}/cancel", None, 200),
        row("root", "POST", "/api/envs/5/disable", reason(), 200),
        row("root", "POST", "/api/envs/5/enable", None, 200),
        row("root", "GET", "/api/audit", None, 200),
    ];
    for r in table {
        let mut path = r.path.to_string();
        for (k, v) in &ids {
            path = path.replace(k, v);
        }
        let cookie = &cookies[r.who];
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            vec![]
        } else {
            vec![("Cookie", cookie)]
        };
        let resp = call(&app, r.method, &path, &headers, r.body.clone());
        assert_eq!(resp.status, r.status, "{} {} {path}: {}", r.who, r.method, resp.body);
        if let Some(code) = r.code {
            assert_eq!(resp.code(), code, "{} {} {path}: {}", r.who, r.method, resp.body);
            assert!(
                resp.body["message"].as_str().is_some_and(|m| m.len() > 10),
                "a clear message: {}",
                resp.body
            );
        }
        if r.path == "/api/envs/6/reservations" {
            ids.insert("{R}", resp.body["id"].to_string());
        }
    }
    // The refused ones changed nothing: three runs queued, no more; each
    // cancelled by whom the table says; environment 5 never stayed disabled.
    let root = [("Cookie", cookies["root"].as_str())];
    let runs = call(&app, "GET", "/api/testruns", &root, None).body;
    assert_eq!(runs.as_array().map(Vec::len), Some(3), "{runs}");
    assert!(
        runs.as_array()
            .into_iter()
            .flatten()
            .all(|r| r["status"] == "cancelled"),
        "{runs}"
    );
    assert_eq!(call(&app, "GET", "/api/envs/5", &root, None).body["state"], "free");
    let audit = call(&app, "GET", "/api/audit?limit=50", &root, None).body;
    let entries: Vec<(String, String, String)> = audit
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let b = format!("run {}", ids["{B}"]);
    for expected in [
        ("root".to_string(), "run.cancel".to_string(), b),
        ("root".into(), "env.disable".into(), "env 5".into()),
        ("root".into(), "env.enable".into(), "env 5".into()),
        ("ann".into(), "env.reserve".into(), "env 6".into()),
        ("cli".into(), "user.add".into(), "val".into()),
    ] {
        assert!(entries.contains(&expected), "{expected:?} in {audit}");
    }
    assert!(
        audit[0]["at"].as_str().is_some_and(|t| t.ends_with("+00:00")),
        "{audit}"
    );
    // A runner re-runs their own run; the new run is theirs too.
    let rerun = call(
        &app,
        "POST",
        &format!("/api/testruns/{}/rerun", ids["{A}"]),
        &[("Cookie", &cookies["ann"])],
        Some(json!({"username": "someone-else"})),
    );
    assert_eq!(rerun.status, 201, "{}", rerun.body);
    assert_eq!(rerun.body["username"], "ann", "{}", rerun.body);
    assert_eq!(rerun.body["rerun_of"].to_string(), ids["{A}"], "{}", rerun.body);
    // /ws: a session or nothing.
    assert_eq!(ws_with(&app, &[]).err(), Some(401));
    assert!(ws_with(&app, &[("Cookie", &cookies["val"])]).is_ok());
}

#[test]
fn with_accounts_a_body_username_is_ignored_for_the_account_name() {
    let app = local_app(&[]);
    add_user(&app, "dora", "runner");
    let cookie = login(&app, "dora");
    let h = [("Cookie", cookie.as_str())];
    for body in [
        json!({"username": "mallory", "env_id": 7, "path": "./tests/"}),
        json!({"username": "x", "env_id": 8, "path": "./tests/"}),
        json!({"username": 42, "env_id": 9, "path": "./tests/"}),
    ] {
        let r = call(&app, "POST", "/api/testruns", &h, Some(body));
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["username"], "dora");
    }
    let r = call(
        &app,
        "POST",
        "/api/envs/12/reservations",
        &h,
        Some(json!({"username": "mallory", "duration_s": 30})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["username"], "dora");
}

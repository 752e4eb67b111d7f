//! `testscheduler users …` on the database file: made if missing, usable
//! while the server runs, every change audited; and an upgrade from a
//! database that had no accounts keeps every run.

use super::{add_user, call, cli, local_app, login, login_with};
use crate::helpers::{spawn_app_with, Opts};
use serde_json::json;

#[test]
fn users_are_managed_on_the_database_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("new.db");
    // Before any server: the file is made.
    let (code, out, err) = cli(&db, &["users", "add", "ada", "--role", "admin"], None);
    assert_eq!(code, 0, "{err}");
    let generated = out.trim().to_string();
    assert_eq!(generated.len(), 20, "a generated password, once, on stdout: {out}");
    assert!(db.is_file());
    for (args, flag) in [
        (vec!["users", "add", "ada", "--role", "admin"], "NAME"),
        (vec!["users", "add", "al", "--role", "admin"], "NAME"),
        (vec!["users", "set-role", "ghost", "viewer"], "NAME"),
        (vec!["users", "disable", "ghost"], "NAME"),
    ] {
        let (code, _, err) = cli(&db, &args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?} names {flag}: {err}");
    }
    let (code, _, err) = cli(&db, &["users", "add", "bea", "--role", "boss"], None);
    assert_eq!(code, 2);
    assert!(err.contains("--role"), "{err}");
    let (code, _, err) = cli(
        &db,
        &["users", "add", "bea", "--role", "runner", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(code, 2);
    assert!(err.contains("--password-stdin"), "{err}");
    let (code, _, err) = cli(
        &db,
        &["users", "add", "bea", "--role", "runner", "--password-stdin"],
        Some("long enough pw\n"),
    );
    assert_eq!(code, 0, "{err}");

    // While a server runs on it.
    let mut app = spawn_app_with(Opts::default().args(&["--auth", "local", "--workers", "0"]));
    app.kill();
    std::fs::copy(&db, &app.db).expect("use the made database");
    let _ = std::fs::remove_file(app.db.with_extension("db-wal"));
    app.start().expect("restart on it");
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "ada", "password": generated})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, _, err) = cli(&app.db, &["users", "set-role", "bea", "viewer"], None);
    assert_eq!(code, 0, "{err}");
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "bea", "password": "long enough pw"})),
    );
    assert_eq!(r.body["role"], "viewer");
    let bea = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_string();
    let (code, newpw, err) = cli(&app.db, &["users", "reset-password", "bea"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        call(&app, "GET", "/api/me", &[("Cookie", &bea)], None).status,
        401,
        "its sessions ended"
    );
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "bea", "password": "long enough pw"})),
    );
    assert_eq!(r.code(), "invalid_credentials");
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "bea", "password": newpw.trim()})),
    );
    assert_eq!(r.status, 200);
    let (code, _, _) = cli(&app.db, &["users", "disable", "bea"], None);
    assert_eq!(code, 0);
    let r = call(
        &app,
        "POST",
        "/api/login",
        &[],
        Some(json!({"username": "bea", "password": newpw.trim()})),
    );
    assert_eq!(r.code(), "invalid_credentials", "disabled");
    let (_, listing, _) = cli(&app.db, &["users", "list"], None);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("bea") && l.contains("viewer") && l.contains("disabled")),
        "{listing}"
    );
    let (code, _, _) = cli(&app.db, &["users", "enable", "bea"], None);
    assert_eq!(code, 0);
    let root = login_with(&app, "ada", &generated);
    let audit = call(&app, "GET", "/api/audit", &[("Cookie", &root)], None).body;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["actor"] == "cli")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["user.add", "user.role", "user.password", "user.disable", "user.enable"] {
        assert!(actions.contains(&a), "{a} in {audit}");
    }
}

#[test]
fn an_upgrade_from_a_database_without_accounts_keeps_every_run() {
    let mut app = local_app(&[]);
    app.kill();
    for f in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{f}", app.db.display()));
    }
    let mut conn = rusqlite::Connection::open(&app.db).expect("db");
    testscheduler::store::migrate::migrate_to(&mut conn, 6).expect("the schema before accounts");
    for (i, user) in ["veteran", "old-timer", "someone else"].iter().enumerate() {
        conn.execute(
            "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s, line_count, holds_env)
             VALUES (?1, ?2, './tests/', 'succeeded', '2025-01-01T00:00:00.000000+00:00', 60, 1, 0)",
            rusqlite::params![user, i as i64 + 1],
        )
        .expect("old run");
        conn.execute(
            "INSERT INTO log_lines (run_id, line, text) VALUES (?1, 0, 'old output')",
            [i as i64 + 1],
        )
        .expect("old line");
    }
    drop(conn);
    app.start().expect("starts on the old database");
    add_user(&app, "viv", "viewer");
    let cookie = login(&app, "viv");
    let runs = call(&app, "GET", "/api/testruns", &[("Cookie", &cookie)], None).body;
    let names: Vec<&str> = runs
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["username"].as_str())
        .collect();
    assert_eq!(names, ["someone else", "old-timer", "veteran"]);
    let log = call(&app, "GET", "/api/testruns/1/logs", &[("Cookie", &cookie)], None).body;
    assert!(log["logs"].as_str().is_some_and(|l| l.contains("old output")), "{log}");
}

//! The command line: help, flags from the environment, bad values named.

use crate::helpers::*;
use std::process::Command;

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--database",
        "--project-dir",
        "--tests-dir",
        "--workers",
        "--redis",
        "--command",
        "--envs",
        "--run-timeout",
        "--max-run-timeout",
        "--lease",
        "--allowed-origin",
        "--redis-prefix",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
    assert!(text.contains("TESTSCHEDULER_BIND"));
}

#[test]
fn a_bad_value_is_a_short_error_naming_the_flag() {
    for (args, flag) in [
        (vec!["--workers", "many"], "--workers"),
        (vec!["--envs", "9-1"], "--envs"),
        (vec!["--run-timeout", "0"], "--run-timeout"),
        (vec!["--project-dir", "/no/such/dir"], "--project-dir"),
        (vec!["--bind", "not an address"], "--bind"),
        (vec!["--command", "'unterminated"], "--command"),
    ] {
        let out = Command::new(BIN).args(&args).output().expect("run");
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(err.lines().filter(|l| l.starts_with("error")).count() == 1, "{err}");
    }
}

#[test]
fn flags_also_come_from_the_environment() {
    let app = spawn_app_with(
        Opts::default()
            .env("TESTSCHEDULER_ENVS", "1,3,7-9")
            .args(&["--workers", "0"]),
    );
    let (status, envs) = app.get("/api/envs");
    assert_eq!(status, 200);
    let ids: Vec<u64> = envs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .collect();
    assert_eq!(ids, [1, 3, 7, 8, 9]);
    let (status, body) = app.post(
        "/api/testruns",
        serde_json::json!({"username": "alice", "env_id": 2, "path": "./tests/"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["env_id"][0].as_str().expect("msg").contains("1,3,7-9"));
}

#[test]
fn the_tests_folder_keeps_its_own_name() {
    let app = spawn_app_with(Opts::default().args(&["--workers", "0", "--tests-dir", "tests/sub"]));
    let (_, tests) = app.get("/api/tests");
    assert_eq!(tests, serde_json::json!(["./tests/sub/", "./tests/sub/test_nested.py"]));
}

#[test]
fn serve_is_the_default_command() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("serve --help");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--bind"));
}

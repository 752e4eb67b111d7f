//! The tests tree lists and runs only what resolves inside the project
//! directory: links to files or directories outside it, dangling links and
//! names that are not UTF-8 are not listed, and asking to run one is a `400`
//! on `path`. Links that stay inside the project work like the real thing.

use crate::helpers::*;
use serde_json::json;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::time::Duration;

#[test]
fn links_out_of_the_project_dangling_links_and_undecodable_names_are_neither_listed_nor_run() {
    let outside = tempfile::tempdir().expect("tmp");
    std::fs::write(
        outside.path().join("test_elsewhere.py"),
        "def test_x():\n    print('ran outside')\n",
    )
    .expect("write");
    let app = spawn_app();
    let t = app.path().join("tests");
    symlink("/etc/passwd", t.join("test_passwd.py")).expect("link");
    symlink(outside.path().join("test_elsewhere.py"), t.join("test_elsewhere.py")).expect("link");
    symlink(outside.path(), t.join("elsewhere")).expect("link");
    symlink(t.join("gone.py"), t.join("test_dangling.py")).expect("link");
    std::fs::write(
        t.join(std::ffi::OsStr::from_bytes(b"test_\xff.py")),
        "def test_y():\n    pass\n",
    )
    .expect("write");
    symlink(t.join("test_quick.py"), t.join("test_alias.py")).expect("link");

    let (status, tests) = app.get("/api/tests");
    assert_eq!(status, 200);
    let listed: Vec<&str> = tests
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for refused in [
        "./tests/test_passwd.py",
        "./tests/test_elsewhere.py",
        "./tests/elsewhere/",
        "./tests/elsewhere/test_elsewhere.py",
        "./tests/test_dangling.py",
        "./tests/test_\u{fffd}.py",
    ] {
        assert!(!listed.contains(&refused), "{refused} is listed: {listed:?}");
        let (status, body) = app.post(
            "/api/testruns",
            json!({"username": "tester", "env_id": 1, "path": refused}),
        );
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(body["errors"]["path"].is_array(), "{refused}: {body}");
    }
    assert!(listed.contains(&"./tests/test_alias.py"), "{listed:?}");
    assert!(listed.contains(&"./tests/test_quick.py"), "{listed:?}");
    let id = app.queue(1, "./tests/test_alias.py")["id"].as_i64().expect("id");
    assert_eq!(app.wait_finished(id, Duration::from_secs(60))["status"], "succeeded");
    let (_, runs) = app.get("/api/testruns");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "only the alias ran: {runs}");
}

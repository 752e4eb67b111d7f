//! Compacted logs against the real binary: a finished run's rows become zstd
//! chunks in the background, and every read path (`/lines`, `/search`,
//! `log.txt`, `/logs`, the `/ws` backlog) answers the same from them; a
//! database of an older version has its finished runs compacted at start.

use crate::helpers::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// (rows, chunks) run `id` has in the database file.
fn forms(app: &TestApp, id: i64) -> (i64, i64) {
    let conn = rusqlite::Connection::open_with_flags(&app.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database");
    let count = |sql: &str| conn.query_row(sql, [id], |r| r.get::<_, i64>(0)).unwrap_or(-1);
    (
        count("SELECT count(*) FROM log_lines WHERE run_id = ?1"),
        count("SELECT count(*) FROM log_chunks WHERE run_id = ?1"),
    )
}

fn wait_compacted(app: &TestApp, id: i64) {
    wait_until(T, "the run's log compacted", || {
        let (rows, chunks) = forms(app, id);
        rows == 0 && chunks > 0
    });
}

/// Every read path's view of run `id`: log.txt, /logs, all /lines pages of
/// 700, the /ws backlog, and a search.
fn views(app: &TestApp, id: i64, needle: &str) -> (Vec<String>, Value) {
    let txt = app.log_lines(id);
    let (status, logs) = app.get(&format!("/api/testruns/{id}/logs"));
    assert_eq!(status, 200);
    let joined: String = txt.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(logs["logs"].as_str(), Some(joined.as_str()), "/logs = log.txt");
    let mut paged = Vec::new();
    let mut from = Some(0u64);
    while let Some(f) = from {
        let (status, page) = app.get(&format!("/api/testruns/{id}/lines?from={f}&limit=700"));
        assert_eq!(status, 200, "{page}");
        paged.extend(
            page["lines"]
                .as_array()
                .expect("lines")
                .iter()
                .map(|l| l.as_str().unwrap_or("?").to_string()),
        );
        from = page["next"].as_u64();
    }
    assert_eq!(paged, txt, "/lines pages = log.txt");
    let (backlog, _) = app.ws().collect(id, 0, T);
    assert_eq!(backlog, txt, "the /ws backlog = log.txt");
    let (status, found) = app.get(&format!("/api/testruns/{id}/search?q={needle}&limit=50"));
    assert_eq!(status, 200, "{found}");
    (txt, found)
}

#[test]
fn a_finished_runs_log_is_compacted_and_reads_the_same() {
    let app = spawn_app_with(Opts::default().env("LINES", "5000"));
    let id = app.queue(1, "./tests/test_lines.py")["id"].as_i64().expect("id");
    app.wait_finished(id, T);
    let before = views(&app, id, "line%20004321");
    wait_compacted(&app, id);
    let after = views(&app, id, "line%20004321");
    assert_eq!(after, before);
    let (txt, found) = after;
    // pytest may print its test's name before the first line.
    let numbered: Vec<&str> = txt.iter().filter_map(|l| l.find("line ").map(|at| &l[at..])).collect();
    assert_eq!(numbered.len(), 5000);
    assert!(numbered
        .iter()
        .enumerate()
        .all(|(i, l)| l.starts_with(&format!("line {i:06} "))));
    assert_eq!(found["matches"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["complete"], true);
    // Clicking on a page in the middle reads only a chunk or two; the answer
    // is the same as any other.
    let (_, page) = app.get(&format!("/api/testruns/{id}/lines?from=2500&limit=3"));
    assert_eq!(page["lines"][0].as_str(), Some(txt[2500].as_str()));
}

#[test]
fn an_older_databases_finished_runs_are_compacted_at_start() {
    let mut app = spawn_app();
    app.kill();
    let db = app.db.clone();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let want: Vec<String> = (0..3000)
        .map(|i| format!("old line {i} \u{1b}[31mred\u{1b}[0m"))
        .collect();
    {
        let mut conn = rusqlite::Connection::open(&db).expect("create");
        testscheduler::store::migrate::migrate_to(&mut conn, 6).expect("version 6");
        conn.execute(
            "INSERT INTO runs (username, env_id, path, status, created_at, finished_at, timeout_s, line_count, holds_env)
             VALUES ('old', 1, './tests/test_quick.py', 'succeeded', '2026-01-01T00:00:00.000000+00:00',
                     '2026-01-01T00:00:01.000000+00:00', 60, 3000, 0)",
            [],
        )
        .expect("run");
        let tx = conn.transaction().expect("tx");
        for (i, l) in want.iter().enumerate() {
            tx.execute(
                "INSERT INTO log_lines (run_id, line, text) VALUES (1, ?1, ?2)",
                rusqlite::params![i as i64, l],
            )
            .expect("line");
        }
        tx.commit().expect("commit");
    }
    app.start().expect("restarts on the old database");
    wait_compacted(&app, 1);
    let (txt, found) = views(&app, 1, "1234%20red");
    assert_eq!(txt, want);
    assert_eq!(found["matches"][0]["line"], 1234, "{found}");
}

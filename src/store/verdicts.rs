//! The reads verdicts and history rest on: each test's window (its last N
//! results joined with their runs), one test's history, and the environments'
//! enable/disable state quarantine looks at. Nothing here judges: the rules
//! are in `domain::verdicts`.
//!
//! Fast without reading all results: the newest N runs' results are one range
//! of the primary key, and a test run in each of them has its whole window
//! there. Only a test that was not (a new or a rarely run test) takes its
//! window from the index `test_results_nodeid (nodeid, run_id DESC)`, one
//! range of at most N rows. The node ids are walked by a skip-scan of that
//! index (one seek per distinct node id).

use super::StoreError;
use crate::domain::verdicts::{Revision, Sample, TestWindow};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::HashMap;

/// One result of a test's history: `GET /api/results/history`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub run_id: i64,
    pub env_id: u32,
    /// The project directory's git state when the run started; null outside git.
    pub revision: Option<Revision>,
    /// `passed`, `failed`, `error`, `skipped`, `xfailed`, `xpassed`.
    pub outcome: String,
    pub duration_s: Option<f64>,
    /// When the run ended (RFC 3339).
    pub finished_at: Option<String>,
}

fn revision(commit: Option<String>, dirty: Option<bool>) -> Option<Revision> {
    commit.map(|commit| Revision {
        commit,
        dirty: dirty.unwrap_or(false),
    })
}

/// Every node id with a stored result, sorted, by a skip-scan of the index.
fn node_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "WITH RECURSIVE ids(nodeid) AS (
             SELECT MIN(nodeid) FROM test_results
             UNION ALL
             SELECT (SELECT MIN(nodeid) FROM test_results WHERE nodeid > ids.nodeid)
             FROM ids WHERE ids.nodeid IS NOT NULL
         )
         SELECT nodeid FROM ids WHERE nodeid IS NOT NULL",
    )?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Each test's last `n` results of finished runs, newest first, read in one
/// transaction (one consistent snapshot). Tests sorted by node id.
pub fn windows(conn: &Connection, n: u32) -> Result<Vec<TestWindow>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut recent = recent_samples(&tx, n)?;
    let mut out = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT t.run_id, r.env_id, r.revision_commit, r.revision_dirty, t.outcome, r.finished_at
             FROM test_results t JOIN runs r ON r.id = t.run_id
             WHERE t.nodeid = ?1 AND r.finished_at IS NOT NULL
             ORDER BY t.run_id DESC LIMIT ?2",
        )?;
        for nodeid in node_ids(&tx)? {
            let samples = match recent.remove(&nodeid) {
                Some(mut s) if s.len() >= n as usize => {
                    s.truncate(n as usize);
                    s
                }
                // Fewer than n in the recent runs: the older ones are further back.
                _ => stmt
                    .query_map(params![nodeid, n], |r| {
                        Ok(Sample {
                            run_id: r.get(0)?,
                            env_id: r.get(1)?,
                            revision: revision(r.get(2)?, r.get(3)?),
                            outcome: r.get(4)?,
                            finished_at: r.get(5)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?,
            };
            if !samples.is_empty() {
                out.push(TestWindow { nodeid, samples });
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

/// Every result of the newest `n` finished runs that have results, by node
/// id, newest first: one range of the results' primary key. A test found
/// `n` times here has its whole window here (everything else is older).
fn recent_samples(conn: &Connection, n: u32) -> Result<HashMap<String, Vec<Sample>>, StoreError> {
    let from: i64 = conn
        .query_row(
            "SELECT id FROM runs
             WHERE finished_at IS NOT NULL AND EXISTS (SELECT 1 FROM test_results WHERE run_id = runs.id)
             ORDER BY id DESC LIMIT 1 OFFSET ?1",
            [n.saturating_sub(1)],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let mut runs = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id, env_id, revision_commit, revision_dirty, finished_at FROM runs
         WHERE id >= ?1 AND finished_at IS NOT NULL",
    )?;
    let mut rows = stmt.query([from])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let env: u32 = r.get(1)?;
        runs.insert(
            id,
            (env, revision(r.get(2)?, r.get(3)?), r.get::<_, Option<String>>(4)?),
        );
    }
    let mut by_test: HashMap<String, Vec<Sample>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, nodeid, outcome FROM test_results WHERE run_id >= ?1 ORDER BY run_id DESC, seq",
    )?;
    let mut rows = stmt.query([from])?;
    while let Some(r) = rows.next()? {
        let run_id: i64 = r.get(0)?;
        let Some((env_id, revision, finished_at)) = runs.get(&run_id) else {
            continue;
        };
        by_test.entry(r.get(1)?).or_default().push(Sample {
            run_id,
            env_id: *env_id,
            revision: revision.clone(),
            outcome: r.get(2)?,
            finished_at: finished_at.clone(),
        });
    }
    Ok(by_test)
}

/// Test `nodeid`'s last `limit` results of finished runs, newest first.
pub fn history(conn: &Connection, nodeid: &str, limit: u32) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.run_id, r.env_id, r.revision_commit, r.revision_dirty, t.outcome, t.duration_s, r.finished_at
         FROM test_results t JOIN runs r ON r.id = t.run_id
         WHERE t.nodeid = ?1 AND r.finished_at IS NOT NULL
         ORDER BY t.run_id DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![nodeid, limit], |r| {
            Ok(HistoryEntry {
                run_id: r.get(0)?,
                env_id: r.get(1)?,
                revision: revision(r.get(2)?, r.get(3)?),
                outcome: r.get(4)?,
                duration_s: r.get(5)?,
                finished_at: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// An environment's row of `env_state`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvState {
    /// Set while the environment is disabled.
    pub disabled_reason: Option<String>,
    /// When it was last enabled, if ever.
    pub enabled_at: Option<String>,
}

/// The state of environment `env` (the default when it never had one).
pub fn env_state(conn: &Connection, env: u32) -> Result<EnvState, StoreError> {
    let row = conn
        .query_row(
            "SELECT disabled_reason, enabled_at FROM env_state WHERE env_id = ?1",
            [env],
            |r| {
                Ok(EnvState {
                    disabled_reason: r.get(0)?,
                    enabled_at: r.get(1)?,
                })
            },
        )
        .optional()?;
    Ok(row.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        (dir, store)
    }

    /// Inserts a finished run on `env` at `commit` (None: outside git) with `results`.
    fn run(conn: &Connection, env: u32, commit: Option<&str>, finished: Option<&str>, results: &[(&str, &str)]) -> i64 {
        conn.execute(
            "INSERT INTO runs (username, env_id, path, status, created_at, finished_at, timeout_s, holds_env,
                               revision_commit, revision_dirty)
             VALUES ('alice', ?1, './tests/', 'failed', '2026-12-01T10:00:00.000000+00:00', ?2, 60, 0, ?3, ?4)",
            params![env, finished, commit, commit.map(|_| 0)],
        )
        .expect("insert run");
        let id = conn.last_insert_rowid();
        for (seq, (nodeid, outcome)) in results.iter().enumerate() {
            conn.execute(
                "INSERT INTO test_results (run_id, seq, nodeid, outcome, duration_s) VALUES (?1, ?2, ?3, ?4, 0.5)",
                params![id, seq as i64, nodeid, outcome],
            )
            .expect("insert result");
        }
        id
    }

    const END: Option<&str> = Some("2026-12-01T10:01:00.000000+00:00");

    #[test]
    fn windows_hold_each_tests_last_n_results_newest_first() {
        let (_dir, store) = store();
        let conn = store.conn().expect("conn");
        let mut ids = Vec::new();
        for i in 0..5 {
            let outcome = if i % 2 == 0 { "passed" } else { "failed" };
            ids.push(run(
                &conn,
                1 + i % 2,
                Some("abc"),
                END,
                &[("t.py::a", outcome), ("t.py::b", "passed")],
            ));
        }
        run(&conn, 3, None, END, &[("t.py::c", "skipped")]);
        // A run still going has no place in any window.
        run(&conn, 3, None, None, &[("t.py::a", "failed")]);
        let w = windows(&conn, 3).expect("windows");
        let names: Vec<&str> = w.iter().map(|w| w.nodeid.as_str()).collect();
        assert_eq!(names, ["t.py::a", "t.py::b", "t.py::c"]);
        let a: Vec<i64> = w[0].samples.iter().map(|s| s.run_id).collect();
        assert_eq!(a, [ids[4], ids[3], ids[2]]);
        assert_eq!(w[0].samples[1].outcome, "failed");
        assert_eq!(w[0].samples[1].env_id, 2);
        assert_eq!(
            w[0].samples[0].revision,
            Some(Revision {
                commit: "abc".into(),
                dirty: false
            })
        );
        assert_eq!(w[2].samples[0].revision, None);
        assert_eq!(w[2].samples[0].finished_at.as_deref(), END);
    }

    /// Each window equals the plain per-test query, whether it came from the
    /// newest runs' range or from the index (rare tests, unfinished runs).
    #[test]
    fn windows_equal_each_tests_own_last_n() {
        let (_dir, store) = store();
        let conn = store.conn().expect("conn");
        let outcomes = ["passed", "failed", "skipped", "error"];
        for i in 0..40usize {
            let mut results = vec![("t.py::every", outcomes[i % 4])];
            if i % 7 == 0 {
                results.push(("t.py::rare", outcomes[i % 3]));
            }
            if i < 5 {
                results.push(("t.py::gone", "passed"));
            }
            if i >= 37 {
                results.push(("t.py::new", "failed"));
            }
            let end = if i % 11 == 10 { None } else { END };
            let commit = format!("c{}", i / 10);
            run(&conn, 1 + (i % 3) as u32, Some(&commit), end, &results);
        }
        // A run without results is no run of the window.
        run(&conn, 2, None, END, &[]);
        for n in [1, 2, 3, 5, 20, 100] {
            let got = windows(&conn, n).expect("windows");
            let names: Vec<&str> = got.iter().map(|w| w.nodeid.as_str()).collect();
            assert_eq!(
                names,
                ["t.py::every", "t.py::gone", "t.py::new", "t.py::rare"],
                "n = {n}"
            );
            for w in &got {
                let want: Vec<(i64, String)> = history(&conn, &w.nodeid, n)
                    .expect("history")
                    .into_iter()
                    .map(|h| (h.run_id, h.outcome))
                    .collect();
                let have: Vec<(i64, String)> = w.samples.iter().map(|s| (s.run_id, s.outcome.clone())).collect();
                assert_eq!(have, want, "{} at n = {n}", w.nodeid);
                assert!(w
                    .samples
                    .iter()
                    .all(|s| s.finished_at.is_some() && s.revision.is_some()));
            }
        }
    }

    #[test]
    fn an_empty_database_has_no_windows() {
        let (_dir, store) = store();
        assert!(windows(&store.conn().expect("conn"), 20).expect("windows").is_empty());
    }

    #[test]
    fn history_is_newest_first_and_limited() {
        let (_dir, store) = store();
        let conn = store.conn().expect("conn");
        let first = run(&conn, 4, Some("abc"), END, &[("t.py::a", "passed")]);
        run(&conn, 5, None, END, &[("t.py::b", "failed")]);
        let last = run(&conn, 6, None, END, &[("t.py::a", "error")]);
        let h = history(&conn, "t.py::a", 10).expect("history");
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].run_id, h[0].env_id, h[0].outcome.as_str()), (last, 6, "error"));
        assert_eq!(h[0].revision, None);
        assert_eq!(h[1].run_id, first);
        assert_eq!(h[1].duration_s, Some(0.5));
        assert_eq!(history(&conn, "t.py::a", 1).expect("history").len(), 1);
        assert!(history(&conn, "t.py::none", 10).expect("history").is_empty());
    }

    #[test]
    fn env_state_reads_disable_and_enable() {
        let (_dir, store) = store();
        let conn = store.conn().expect("conn");
        assert_eq!(env_state(&conn, 3).expect("state"), EnvState::default());
        crate::store::queue::set_disabled(&conn, 3, Some("broken cable"), "2026-12-01T10:00:00.000000+00:00")
            .expect("disable");
        assert_eq!(
            env_state(&conn, 3).expect("state").disabled_reason.as_deref(),
            Some("broken cable")
        );
        crate::store::queue::set_disabled(&conn, 3, None, "2026-12-01T11:00:00.000000+00:00").expect("enable");
        let s = env_state(&conn, 3).expect("state");
        assert_eq!(s.disabled_reason, None);
        assert_eq!(s.enabled_at.as_deref(), Some("2026-12-01T11:00:00.000000+00:00"));
    }
}

//! The `test_results` rows and the run columns results add (0006): live and
//! final summaries, outcome, revision, the note, and what a run asked pytest
//! for (select, keyword, markers).

use super::StoreError;
use crate::domain::{RunId, RunStatus};
use crate::results::args::Selection;
use crate::results::{FinalResults, Revision, Summary, TestOutcome, TestResult};
use rusqlite::{params, Connection, OptionalExtension};

/// Records the project's revision when run `id` starts.
pub fn set_revision(conn: &Connection, id: RunId, rev: Option<&Revision>) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE runs SET revision_commit = ?2, revision_dirty = ?3 WHERE id = ?1")?
        .execute(params![id, rev.map(|r| r.commit.as_str()), rev.map(|r| r.dirty)])?;
    Ok(())
}

/// Stores live counts while run `id` is `running`; false once it is not
/// (its final counts are stored with its end and must stay).
pub fn set_live_summary(conn: &Connection, id: RunId, summary: &Summary) -> Result<bool, StoreError> {
    let json = serde_json::to_string(summary).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let n = conn
        .prepare_cached("UPDATE runs SET summary = ?2 WHERE id = ?1 AND status = 'running'")?
        .execute(params![id, json])?;
    Ok(n == 1)
}

/// Stores a run's results at its end: its rows (replacing any), summary,
/// note and outcome. Called inside the transaction that ends the run.
pub fn store_final(conn: &Connection, id: RunId, r: &FinalResults, outcome: Option<&str>) -> Result<(), StoreError> {
    let json = serde_json::to_string(&r.summary).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached("UPDATE runs SET summary = ?2, results_note = ?3, outcome = ?4 WHERE id = ?1")?
        .execute(params![id, json, r.note, outcome])?;
    if r.rows_stored {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM test_results WHERE run_id = ?1")?
        .execute([id])?;
    insert_rows(conn, id, 0, &r.tests)
}

/// Adds rows `from…` of run `id` (a worker's batch); rows already there are kept.
pub fn insert_rows(conn: &Connection, id: RunId, from: u64, tests: &[TestResult]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO test_results (run_id, seq, nodeid, outcome, duration_s, message, line)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (i, t) in tests.iter().enumerate() {
        stmt.execute(params![
            id,
            (from + i as u64) as i64,
            t.nodeid,
            t.outcome.as_str(),
            t.duration_s,
            t.message,
            t.line.map(|l| l as i64)
        ])?;
    }
    Ok(())
}

/// How many result rows run `id` has.
pub fn count(conn: &Connection, id: RunId) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM test_results WHERE run_id = ?1")?
        .query_row([id], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
}

/// Run `id`'s tests in the order pytest ran them, only `outcomes` if given.
pub fn list(conn: &Connection, id: RunId, outcomes: Option<&[TestOutcome]>) -> Result<Vec<TestResult>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT nodeid, outcome, duration_s, message, line FROM test_results WHERE run_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([id], |r| {
        let outcome: String = r.get(1)?;
        Ok(TestResult {
            nodeid: r.get(0)?,
            outcome: TestOutcome::parse(&outcome).unwrap_or(TestOutcome::Error),
            duration_s: r.get(2)?,
            message: r.get(3)?,
            line: r.get::<_, Option<i64>>(4)?.map(|l| l.max(0) as u64),
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let t = row?;
        if outcomes.is_none_or(|os| os.contains(&t.outcome)) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The node ids of run `id` that failed or errored, each once, in run order.
pub fn failed_ids(conn: &Connection, id: RunId) -> Result<Vec<String>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    Ok(list(conn, id, Some(&[TestOutcome::Failed, TestOutcome::Error]))?
        .into_iter()
        .filter(|t| seen.insert(t.nodeid.clone()))
        .map(|t| t.nodeid)
        .collect())
}

/// Whether run `id`'s stored summary is final.
pub fn has_final_summary(conn: &Connection, id: RunId) -> Result<bool, StoreError> {
    let s: Option<String> = conn
        .prepare_cached("SELECT summary FROM runs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(s.and_then(|s| serde_json::from_str::<Summary>(&s).ok())
        .is_some_and(|s| s.is_final))
}

/// What run `id` asks pytest for (`path` is its stored path).
pub fn selection(conn: &Connection, id: RunId, path: &str) -> Result<Selection, StoreError> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT select_ids, keyword, markers FROM runs WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (select, keyword, markers) = row.unwrap_or_default();
    Ok(Selection {
        path: path.to_string(),
        select: select.and_then(|s| serde_json::from_str(&s).ok()),
        keyword,
        markers,
    })
}

/// The status a run has now (tests, the re-run check).
pub fn status(conn: &Connection, id: RunId) -> Result<Option<RunStatus>, StoreError> {
    let s: Option<String> = conn
        .prepare_cached("SELECT status FROM runs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(s.and_then(|s| RunStatus::parse(&s)))
}

//! Retention's rows: which finished runs are old enough, and their removal
//! in small transactions (the pruner in `src/retention.rs` decides when).

use super::StoreError;
use crate::domain::RunId;
use rusqlite::{params, Connection, TransactionBehavior};

/// Up to `limit` runs that finished before `cutoff` (a timestamp as the store
/// writes them) and no longer hold an environment, oldest first; with
/// `logs_left`, only those whose output is still there.
pub fn finished_before(conn: &Connection, cutoff: &str, logs_left: bool, limit: u32) -> Result<Vec<RunId>, StoreError> {
    let sql = format!(
        "SELECT id FROM runs
         WHERE finished_at IS NOT NULL AND finished_at < ?1 AND holds_env = 0
           AND status IN ({}) AND (?2 = 0 OR logs_pruned = 0)
         ORDER BY finished_at LIMIT ?3",
        super::runs::status_list(true)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let ids = stmt.query_map(params![cutoff, logs_left, limit], |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// Drops up to `batch` of run `run_id`'s stored lines (rows first, then
/// chunks) in one transaction; once none are left, marks the run
/// `logs_pruned`. Returns true when that is done.
pub fn drop_some_lines(conn: &Connection, run_id: RunId, batch: u32) -> Result<bool, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut gone = tx
        .prepare_cached(
            "DELETE FROM log_lines WHERE run_id = ?1 AND line IN
               (SELECT line FROM log_lines WHERE run_id = ?1 ORDER BY line LIMIT ?2)",
        )?
        .execute(params![run_id, batch])?;
    if gone == 0 {
        // A chunk holds up to a few thousand lines: fewer of them at a time.
        gone = tx
            .prepare_cached(
                "DELETE FROM log_chunks WHERE id IN (SELECT id FROM log_chunks WHERE run_id = ?1 LIMIT ?2)",
            )?
            .execute(params![run_id, (batch / 1000).max(1)])?;
    }
    let done = gone == 0;
    if done {
        tx.prepare_cached("UPDATE runs SET logs_pruned = 1 WHERE id = ?1")?
            .execute([run_id])?;
    }
    tx.commit()?;
    Ok(done)
}

/// Deletes run `run_id` (its results go with it); its output must have been
/// dropped first ([`drop_some_lines`]), so this transaction stays small.
pub fn delete_run(conn: &Connection, run_id: RunId) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM runs WHERE id = ?1")?
        .execute([run_id])?;
    Ok(())
}

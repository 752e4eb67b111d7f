//! The log compactor: a background thread, on a connection of its own, that
//! turns a finished run's rows of `log_lines` into zstd chunks of
//! `log_chunks` (see `chunks.rs`). One chunk per transaction, which deletes
//! exactly the rows it stores, so a reader sees every line in one form or the
//! other and the log writer never waits longer than one chunk's write. It
//! looks every [`POLL`] for finished runs that still have rows, so the runs
//! finished before an upgrade are compacted too, from the first look on.

use super::{chunks, Store, StoreError};
use crate::domain::{RunId, RunStatus};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::time::Duration;

/// Most lines in one chunk.
pub const CHUNK_LINES: usize = 2_048;
/// A chunk ends once it holds this many bytes of text.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// zstd's level: a finished log is written once and read often.
pub const LEVEL: i32 = 6;
/// How often the compactor looks for finished runs with rows.
pub const POLL: Duration = Duration::from_secs(2);

/// Starts the compactor's thread. It stops when the process does; a failed
/// pass (a full disk…) is logged and tried again at the next look.
pub fn start(store: Store) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("log-compactor".into())
        .spawn(move || {
            let mut conn = None;
            loop {
                if conn.is_none() {
                    conn = store.dedicated().map_err(|e| warn(&e)).ok();
                }
                if let Some(c) = &conn {
                    if let Err(e) = pass(c) {
                        warn(&e);
                    }
                }
                std::thread::sleep(POLL);
            }
        })?;
    Ok(())
}

fn warn(e: &StoreError) {
    tracing::warn!(error = %e, "log compaction failed; trying again later");
}

/// Compacts every finished run that still has rows; returns the chunks written.
pub fn pass(conn: &Connection) -> Result<u64, StoreError> {
    let mut written = 0;
    let mut after: RunId = 0;
    let mut next = conn.prepare_cached("SELECT run_id FROM log_lines WHERE run_id > ?1 ORDER BY run_id LIMIT 1")?;
    let mut status = conn.prepare_cached("SELECT status FROM runs WHERE id = ?1")?;
    while let Some(run_id) = next.query_row([after], |r| r.get::<_, RunId>(0)).optional()? {
        after = run_id;
        let finished = status
            .query_row([run_id], |r| r.get::<_, String>(0))
            .optional()?
            .and_then(|s| RunStatus::parse(&s))
            .is_some_and(RunStatus::is_finished);
        if finished {
            written += run(conn, run_id)?;
        }
    }
    Ok(written)
}

/// Compacts run `run_id`'s rows, a chunk per transaction; returns the chunks written.
pub fn run(conn: &Connection, run_id: RunId) -> Result<u64, StoreError> {
    let mut written = 0;
    while chunk(conn, run_id)? {
        written += 1;
    }
    Ok(written)
}

/// Turns the run's first consecutive rows (up to a chunk's worth) into one
/// chunk. False when there was nothing to do (no rows, or they changed
/// meanwhile: the next look tries again).
fn chunk(conn: &Connection, run_id: RunId) -> Result<bool, StoreError> {
    let mut first = None;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT line, text FROM log_lines WHERE run_id = ?1 ORDER BY line LIMIT {CHUNK_LINES}"
        ))?;
        let mut rows = stmt.query([run_id])?;
        while let Some(row) = rows.next()? {
            let line: i64 = row.get(0)?;
            let start = *first.get_or_insert(line);
            if line != start + lines.len() as i64 || bytes >= CHUNK_BYTES {
                break;
            }
            let text = row.get_ref(1)?.as_bytes().map_err(rusqlite::Error::from)?;
            bytes += text.len();
            lines.push(text.to_vec());
        }
    }
    let Some(first) = first else {
        return Ok(false);
    };
    let n = lines.len() as i64;
    let (data, raw_bytes) = chunks::encode(&lines, LEVEL).map_err(|e| StoreError::Unwritable(format!("zstd: {e}")))?;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let deleted = tx
        .prepare_cached("DELETE FROM log_lines WHERE run_id = ?1 AND line >= ?2 AND line < ?3")?
        .execute(params![run_id, first, first + n])?;
    if deleted as i64 != n {
        tx.rollback()?;
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO log_chunks (run_id, first_line, line_count, raw_bytes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![run_id, first, n, raw_bytes as i64, data])?;
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{logs, migrate};

    fn db(status: &str) -> Connection {
        let mut c = Connection::open_in_memory().expect("db");
        migrate::migrate(&mut c).expect("schema");
        c.execute(
            "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s) VALUES ('bob', 1, './tests/', ?1, 'x', 9)",
            [status],
        )
        .expect("run");
        c
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| match i % 7 {
                0 => format!("\u{1b}[32mtests/test_{i}.py::test_x PASSED\u{1b}[0m"),
                3 => String::new(),
                _ => format!("line {i} ünïcode"),
            })
            .collect()
    }

    fn rows(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM log_lines", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_finished_runs_rows_become_chunks_and_read_the_same() {
        let c = db("succeeded");
        let all = lines(5_000);
        logs::append(&c, 1, 0, &all).expect("append");
        assert!(pass(&c).expect("pass") >= 3);
        assert_eq!(rows(&c), 0);
        assert_eq!(logs::read(&c, 1, 0, 10_000).expect("read"), all);
        for from in [0, 1, 2047, 2048, 2049, 4999, 5000, 9000] {
            let got = logs::read(&c, 1, from, 100).expect("read");
            let want: Vec<String> = all.iter().skip(from as usize).take(100).cloned().collect();
            assert_eq!(got, want, "from {from}");
        }
        let mut seen = Vec::new();
        let v = logs::visit(&c, 1, 2040, 2050, |n, _| {
            seen.push(n);
            logs::Step::More
        })
        .expect("visit");
        assert_eq!(seen, (2040..2050).collect::<Vec<_>>());
        assert!(v.exhausted);
    }

    #[test]
    fn rows_after_chunks_are_read_in_order_and_compacted_later() {
        let c = db("failed");
        logs::append(&c, 1, 0, &lines(3000)).expect("append");
        pass(&c).expect("pass");
        logs::append_note(&c, 1, "a note after the end").expect("note");
        let got = logs::read(&c, 1, 2995, 100).expect("read");
        assert_eq!(got.len(), 6);
        assert_eq!(got[5], "a note after the end");
        pass(&c).expect("pass");
        assert_eq!(rows(&c), 0);
        assert_eq!(logs::read(&c, 1, 2995, 100).expect("read"), got);
    }

    #[test]
    fn a_running_run_is_left_alone() {
        let c = db("running");
        logs::append(&c, 1, 0, &lines(10)).expect("append");
        assert_eq!(pass(&c).expect("pass"), 0);
        assert_eq!(rows(&c), 10);
    }

    #[test]
    fn search_finds_the_same_in_chunks_and_rows() {
        let c = db("succeeded");
        logs::append(&c, 1, 0, &lines(5_000)).expect("append");
        let later = std::time::Instant::now() + Duration::from_secs(60);
        let before = logs::search(&c, 1, "test_4998.py", 10, later).expect("search");
        let many = logs::search(&c, 1, "PASSED", 1000, later).expect("search");
        pass(&c).expect("pass");
        assert_eq!(logs::search(&c, 1, "test_4998.py", 10, later).expect("search"), before);
        assert_eq!(before.matches.len(), 1);
        assert_eq!(logs::search(&c, 1, "PASSED", 1000, later).expect("search"), many);
        assert_eq!(many.matches.len(), 715);
        let late = logs::search(&c, 1, "PASSED", 10, std::time::Instant::now()).expect("search");
        assert!(!late.complete);
    }

    #[test]
    fn a_search_across_windows_and_uneven_chunks_finds_the_same() {
        let c = db("succeeded");
        let all: Vec<String> = (0..70_000).map(|i| format!("{i} {}", "y".repeat(i % 300))).collect();
        logs::append(&c, 1, 0, &all).expect("append");
        let later = std::time::Instant::now() + Duration::from_secs(60);
        let before = logs::search(&c, 1, "999 ", 1000, later).expect("search");
        pass(&c).expect("pass");
        assert_eq!(rows(&c), 0);
        assert_eq!(logs::search(&c, 1, "999 ", 1000, later).expect("search"), before);
        assert_eq!(before.matches.len(), 70);
        assert_eq!(logs::read(&c, 1, 32_760, 20).expect("read"), all[32_760..32_780]);
    }
}

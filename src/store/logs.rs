//! Rows of `log_lines`: one row per output line, numbered from 0. Appends are
//! idempotent (lines already stored are skipped) and refuse gaps.

use super::StoreError;
use crate::domain::RunId;
use rusqlite::{params, Connection};

/// Largest slice a single read returns.
pub const MAX_SLICE: u32 = 10_000;

/// Appends `lines` numbered from `from`. Lines below the stored count are
/// skipped; `from` beyond it is a gap. Returns (count before, count after).
pub fn append(conn: &Connection, run_id: RunId, from: u64, lines: &[String]) -> Result<(u64, u64), StoreError> {
    let before = count(conn, run_id)?;
    if from > before {
        return Err(StoreError::LineGap { next: before });
    }
    let skip = (before - from) as usize;
    if skip >= lines.len() {
        return Ok((before, before));
    }
    let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO log_lines (run_id, line, text) VALUES (?1, ?2, ?3)")?;
    for (i, text) in lines.iter().enumerate().skip(skip) {
        stmt.execute(params![run_id, (from + i as u64) as i64, text])?;
    }
    let after = from + lines.len() as u64;
    conn.prepare_cached("UPDATE runs SET line_count = ?2 WHERE id = ?1")?
        .execute(params![run_id, after as i64])?;
    Ok((before, after))
}

/// The stored line count of a run (0 for an unknown run).
pub fn count(conn: &Connection, run_id: RunId) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT line_count FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .ok();
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Lines `from .. from + limit` (fewer at the end).
pub fn read(conn: &Connection, run_id: RunId, from: u64, limit: u32) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT text FROM log_lines WHERE run_id = ?1 AND line >= ?2 ORDER BY line LIMIT ?3")?;
    let rows = stmt.query_map(params![run_id, from as i64, limit.min(MAX_SLICE)], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One line that contains the searched text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Match {
    pub line: u64,
    pub text: String,
}

/// Lines containing `q` once ANSI codes are removed, at most `limit`, and
/// whether there are more. SQLite pre-filters: a line can only match if it
/// holds `q` as is or holds an escape character that may split it.
pub fn search(conn: &Connection, run_id: RunId, q: &str, limit: u32) -> Result<(Vec<Match>, bool), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT line, text FROM log_lines
         WHERE run_id = ?1 AND (instr(text, ?2) > 0 OR instr(text, char(27)) > 0)
         ORDER BY line",
    )?;
    let mut rows = stmt.query(params![run_id, q])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let text: String = row.get(1)?;
        let plain = strip_ansi(&text);
        if plain.contains(q) {
            if out.len() as u32 == limit {
                return Ok((out, true));
            }
            out.push(Match {
                line: row.get::<_, i64>(0)?.max(0) as u64,
                text: plain,
            });
        }
    }
    Ok((out, false))
}

/// `text` without ANSI escape sequences.
pub fn strip_ansi(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_string();
    }
    String::from_utf8_lossy(&strip_ansi_escapes::strip(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrate;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().expect("db");
        migrate::migrate(&mut c).expect("schema");
        c.execute(
            "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s) VALUES ('bob', 1, './tests/', 'running', 'x', 9)",
            [],
        )
        .expect("run");
        c
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn append_is_idempotent_and_refuses_gaps() {
        let c = db();
        assert_eq!(append(&c, 1, 0, &s(&["a", "b"])).expect("ok"), (0, 2));
        assert_eq!(append(&c, 1, 1, &s(&["b", "c"])).expect("ok"), (2, 3));
        assert_eq!(append(&c, 1, 0, &s(&["a"])).expect("ok"), (3, 3));
        assert!(matches!(
            append(&c, 1, 5, &s(&["x"])),
            Err(StoreError::LineGap { next: 3 })
        ));
        assert_eq!(read(&c, 1, 0, 100).expect("read"), s(&["a", "b", "c"]));
        assert_eq!(read(&c, 1, 2, 100).expect("read"), s(&["c"]));
        assert!(read(&c, 1, 9, 100).expect("read").is_empty());
    }

    #[test]
    fn search_ignores_ansi_codes() {
        let c = db();
        append(&c, 1, 0, &s(&["plain FAILED", "\u{1b}[31mFAI\u{1b}[0mLED", "ok"])).expect("ok");
        let (m, more) = search(&c, 1, "FAILED", 10).expect("search");
        assert_eq!(m.iter().map(|m| m.line).collect::<Vec<_>>(), [0, 1]);
        assert!(!more);
        assert_eq!(m[1].text, "FAILED");
        let (m, more) = search(&c, 1, "FAILED", 1).expect("search");
        assert_eq!(m.len(), 1);
        assert!(more);
    }
}

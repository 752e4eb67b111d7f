//! Rows of `log_lines`: one row per output line, numbered from 0. Appends are
//! idempotent (lines already stored are skipped) and refuse gaps.

use super::{chunks, StoreError};
use crate::domain::RunId;
use rusqlite::{params, Connection, OptionalExtension};

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

/// Appends one line after whatever run `run_id` has stored (the server's own
/// notes). Returns (count before, count after).
pub fn append_note(conn: &Connection, run_id: RunId, text: &str) -> Result<(u64, u64), StoreError> {
    let next = count(conn, run_id)?;
    append(conn, run_id, next, &[text.to_string()])
}

/// Records that run `run_id`'s output is no longer stored: its
/// `lines_lost_from` becomes the first line not stored, and that line becomes
/// a note saying so and why. Returns the line and the note, or None for an
/// unknown run or one whose loss is recorded already. Lines the run may still send are not stored after it.
pub fn record_loss(conn: &Connection, run_id: RunId, reason: &str) -> Result<Option<(u64, String)>, StoreError> {
    let stored: Option<(i64, Option<i64>)> = conn
        .prepare_cached("SELECT line_count, lines_lost_from FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((stored, already)) = stored else {
        return Ok(None);
    };
    if already.is_some() {
        return Ok(None);
    }
    let first = stored.max(0) as u64;
    let note =
        format!("testscheduler: the output from line {first} on could not be stored ({reason}); the run ends unknown");
    conn.prepare_cached("INSERT OR REPLACE INTO log_lines (run_id, line, text) VALUES (?1, ?2, ?3)")?
        .execute(params![run_id, first as i64, note])?;
    conn.prepare_cached("UPDATE runs SET lines_lost_from = ?2, line_count = ?2 + 1 WHERE id = ?1")?
        .execute(params![run_id, first as i64])?;
    Ok(Some((first, note)))
}

/// Whether retention dropped run `run_id`'s output (false for an unknown run).
pub fn pruned(conn: &Connection, run_id: RunId) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT logs_pruned FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// The stored line count of a run (0 for an unknown run).
pub fn count(conn: &Connection, run_id: RunId) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT line_count FROM runs WHERE id = ?1")?
        .query_row([run_id], |r| r.get(0))
        .ok();
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Largest `/lines` page in bytes of text (a first line is always taken).
pub const MAX_PAGE_BYTES: usize = 8 << 20;

/// Lines `from .. from + limit` (fewer at the end; none from past the end).
pub fn read(conn: &Connection, run_id: RunId, from: u64, limit: u32) -> Result<Vec<String>, StoreError> {
    read_bounded(conn, run_id, from, limit, usize::MAX)
}

/// Lines from `from` on: at most `max_lines`, and no more once `max_bytes`
/// of text are read (the first line is taken whatever its size).
pub fn read_bounded(
    conn: &Connection,
    run_id: RunId,
    from: u64,
    max_lines: u32,
    max_bytes: usize,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let max_lines = max_lines.min(MAX_SLICE) as usize;
    if max_lines == 0 {
        return Ok(out);
    }
    visit(conn, run_id, from, u64::MAX, |_, text| {
        bytes = bytes.saturating_add(text.len());
        out.push(text.to_string());
        if out.len() >= max_lines || bytes >= max_bytes {
            Step::Last
        } else {
            Step::More
        }
    })?;
    Ok(out)
}

pub use super::chunks::Step;

/// Where a [`visit`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visited {
    /// The line after the last one taken (`from` if none).
    pub next: u64,
    /// True when there were no more stored lines below `until`.
    pub exhausted: bool,
}

/// Shows `f` the stored lines `from, from + 1, …` below `until`, in order,
/// from rows or compacted chunks alike ([`chunks::scan`]), each text borrowed
/// (nothing is copied unless `f` copies it), until `f` says stop. Memory does
/// not grow with the log.
pub fn visit(
    conn: &Connection,
    run_id: RunId,
    from: u64,
    until: u64,
    mut f: impl FnMut(u64, &str) -> Step,
) -> Result<Visited, StoreError> {
    let s = chunks::scan(conn, run_id, from, until, None, |line, raw| {
        f(line, &String::from_utf8_lossy(raw))
    })?;
    Ok(Visited {
        next: s.next,
        exhausted: s.exhausted,
    })
}

/// One line that contains the searched text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Match {
    pub line: u64,
    pub text: String,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Matching lines in order, ANSI codes removed.
    pub matches: Vec<Match>,
    /// True when there are more matches than the limit.
    pub more: bool,
    /// False when the time budget ran out before the whole log was searched.
    pub complete: bool,
}

/// Lines containing `q` once ANSI codes are removed, at most `limit`, looking
/// no longer than until `deadline` (then `complete` is false). The scan hands
/// over only candidates (rows that hold `q` as is or an escape character that
/// may split it, lines of chunks that do); a candidate holding ESC is
/// stripped (into one reused buffer), and matched.
pub fn search(
    conn: &Connection,
    run_id: RunId,
    q: &str,
    limit: u32,
    deadline: std::time::Instant,
) -> Result<Found, StoreError> {
    let finder = memchr::memmem::Finder::new(q.as_bytes());
    let mut found = Found {
        matches: Vec::new(),
        more: false,
        complete: true,
    };
    let end = count(conn, run_id)?;
    let mut plain = Vec::new();
    let filter = chunks::Filter { needle: q, deadline };
    let scanned = chunks::scan(conn, run_id, 0, end, Some(&filter), |line, raw| {
        let text: &[u8] = if memchr::memchr(0x1b, raw).is_some() {
            crate::domain::ansi::strip_into(raw, &mut plain);
            &plain
        } else {
            raw
        };
        if finder.find(text).is_none() {
            return Step::More;
        }
        if found.matches.len() as u32 >= limit {
            found.more = true;
            return Step::Refuse;
        }
        found.matches.push(Match {
            line,
            text: String::from_utf8_lossy(text).into_owned(),
        });
        Step::More
    })?;
    found.complete = !scanned.timed_out;
    Ok(found)
}

/// The read-only connections searches use: few (half the CPUs, 1 to 4), so
/// that searches at once leave cores to the writer and the API.
pub fn search_pool(path: &std::path::Path) -> Result<r2d2::Pool<r2d2_sqlite::SqliteConnectionManager>, StoreError> {
    use rusqlite::OpenFlags;
    let size = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4)) as u32;
    let manager = r2d2_sqlite::SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI)
        .with_init(|c| {
            c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA mmap_size = 1073741824;")
        });
    Ok(r2d2::Pool::builder().max_size(size).min_idle(Some(0)).build(manager)?)
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

    fn later() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(60)
    }

    #[test]
    fn search_ignores_ansi_codes() {
        let c = db();
        append(&c, 1, 0, &s(&["plain FAILED", "\u{1b}[31mFAI\u{1b}[0mLED", "ok"])).expect("ok");
        let f = search(&c, 1, "FAILED", 10, later()).expect("search");
        assert_eq!(f.matches.iter().map(|m| m.line).collect::<Vec<_>>(), [0, 1]);
        assert!(!f.more && f.complete);
        assert_eq!(f.matches[1].text, "FAILED");
        let f = search(&c, 1, "FAILED", 1, later()).expect("search");
        assert_eq!(f.matches.len(), 1);
        assert!(f.more && f.complete);
    }

    #[test]
    fn a_search_past_its_deadline_says_it_is_incomplete() {
        let c = db();
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
        append(&c, 1, 0, &lines).expect("ok");
        let f = search(&c, 1, "line 4999", 10, std::time::Instant::now()).expect("search");
        assert!(!f.complete);
        assert!(f.matches.is_empty());
    }

    #[test]
    fn reads_are_bounded_in_bytes_and_never_wrap() {
        let c = db();
        let lines: Vec<String> = (0..10).map(|i| format!("{i}").repeat(100)).collect();
        append(&c, 1, 0, &lines).expect("ok");
        assert_eq!(read_bounded(&c, 1, 0, 100, 250).expect("read").len(), 3);
        assert_eq!(
            read_bounded(&c, 1, 0, 100, 1).expect("read").len(),
            1,
            "a first line always"
        );
        assert!(read(&c, 1, u64::MAX, 100).expect("read").is_empty());
        assert!(read(&c, 1, 1 << 63, 100).expect("read").is_empty());
        let v = visit(&c, 1, u64::MAX, u64::MAX, |_, _| Step::More).expect("visit");
        assert_eq!(
            v,
            Visited {
                next: u64::MAX,
                exhausted: true
            }
        );
        let mut seen = Vec::new();
        let v = visit(&c, 1, 2, 5, |line, _| {
            seen.push(line);
            Step::More
        })
        .expect("visit");
        assert_eq!(seen, [2, 3, 4]);
        assert_eq!(
            v,
            Visited {
                next: 5,
                exhausted: true
            }
        );
        let v = visit(&c, 1, 2, 5, |line, _| if line == 3 { Step::Refuse } else { Step::More }).expect("visit");
        assert_eq!(
            v,
            Visited {
                next: 3,
                exhausted: false
            }
        );
    }
}

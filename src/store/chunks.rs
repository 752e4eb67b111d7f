//! A run's output in either of its two stored forms, read as one: rows of
//! `log_lines` (while the run prints) and zstd chunks of `log_chunks` (once it
//! finished and was compacted, see `compact.rs`). The two never hold the same
//! line: compaction deletes rows in the transaction that stores their chunk.
//!
//! A chunk holds consecutive lines `first_line .. first_line + line_count`.
//! Its payload, before compression, is each line's length (LEB128), then the
//! lines' bytes one after the other. Only the chunks covering the asked range
//! are read, one at a time, and each is decompressed into one reused buffer.

use super::StoreError;
use crate::domain::RunId;
use rusqlite::{params, Connection};
use std::time::Instant;

/// What a [`scan`] callback wants after seeing a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It took the line; go on.
    More,
    /// It took the line; stop.
    Last,
    /// It did not take the line; stop before it.
    Refuse,
}

/// Only candidates for a search: rows that hold `needle` or an escape
/// character (which may split it), and chunks that do somewhere. The callback
/// still decides each line. Past `deadline` the scan stops.
pub struct Filter<'q> {
    pub needle: &'q str,
    pub deadline: Instant,
}

/// Where a [`scan`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// The line after the last one taken (`from` if none).
    pub next: u64,
    /// True when there were no more stored lines below `until`.
    pub exhausted: bool,
    /// True when a filter's deadline stopped it.
    pub timed_out: bool,
}

/// Lines a filtered scan reads between two looks at the clock (rows are
/// filtered by SQLite, which returns nothing for long stretches).
const WINDOW: u64 = 32_768;

/// Shows `f` run `run_id`'s stored lines `from, from + 1, …` below `until`, in
/// order, whichever form holds them, until `f` says stop (or the filter's
/// deadline passes). Texts are borrowed (from SQLite or the chunk buffer).
pub fn scan(
    conn: &Connection,
    run_id: RunId,
    from: u64,
    until: u64,
    filter: Option<&Filter<'_>>,
    mut f: impl FnMut(u64, &[u8]) -> Step,
) -> Result<Scanned, StoreError> {
    let mut state = State {
        next: from,
        cached: None,
        zstd: zstd::bulk::Decompressor::new().map_err(|e| corrupt(run_id, from, &e))?,
    };
    let window = if filter.is_some() { WINDOW } else { u64::MAX };
    let mut rows_stmt = conn.prepare_cached(if filter.is_some() {
        "SELECT line, text FROM log_lines
         WHERE run_id = ?1 AND line >= ?2 AND line < ?3
           AND (instr(text, ?4) > 0 OR instr(text, char(27)) > 0)
         ORDER BY line"
    } else {
        "SELECT line, text FROM log_lines WHERE run_id = ?1 AND line >= ?2 AND line < ?3 ORDER BY line"
    })?;
    let mut chunks_stmt = conn.prepare_cached(
        "SELECT first_line, line_count, raw_bytes, data FROM log_chunks
         WHERE run_id = ?1 AND first_line < ?3
           AND first_line >= COALESCE(
               (SELECT MAX(first_line) FROM log_chunks WHERE run_id = ?1 AND first_line <= ?2), 0)
         ORDER BY first_line",
    )?;
    let mut lo = from;
    while lo < until {
        let Some(lo_sql) = sql_line(lo) else { break };
        if filter.is_some_and(|x| Instant::now() >= x.deadline) {
            return Ok(state.stopped(false, true));
        }
        let hi = lo.saturating_add(window).min(until);
        let hi_sql = sql_line(hi).unwrap_or(i64::MAX);
        let mut rows = match filter {
            Some(x) => rows_stmt.query(params![run_id, lo_sql, hi_sql, x.needle])?,
            None => rows_stmt.query(params![run_id, lo_sql, hi_sql])?,
        };
        let mut side = ChunkSide {
            rows: chunks_stmt.query(params![run_id, lo_sql, hi_sql])?,
            run_id,
            lo,
            filter,
        };
        while let Some(row) = rows.next()? {
            let line = row.get::<_, i64>(0)?.max(0) as u64;
            if let Some(done) = side.emit_below(&mut state, line, &mut f)? {
                return Ok(done);
            }
            let text = row.get_ref(1)?.as_bytes().map_err(rusqlite::Error::from)?;
            if let Some(done) = state.offer(line, text, &mut f) {
                return Ok(done);
            }
            side.lo = side.lo.max(line.saturating_add(1));
        }
        if let Some(done) = side.emit_below(&mut state, hi, &mut f)? {
            return Ok(done);
        }
        lo = hi;
    }
    Ok(state.stopped(true, false))
}

/// A line number as SQLite stores it; `None` past any line that can exist.
fn sql_line(n: u64) -> Option<i64> {
    i64::try_from(n).ok()
}

/// One decompressed chunk: its payload and where each line's bytes start.
struct Decoded {
    first: u64,
    raw: Vec<u8>,
    /// `count + 1` offsets into `raw`: line `i` is `raw[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
}

impl Decoded {
    fn end(&self) -> u64 {
        self.first + (self.starts.len() as u64).saturating_sub(1)
    }

    fn line(&self, n: u64) -> &[u8] {
        let i = (n - self.first) as usize;
        &self.raw[self.starts[i]..self.starts[i + 1]]
    }

    /// The lines' bytes, all of them (what a filter looks into).
    fn texts(&self) -> &[u8] {
        &self.raw[self.starts[0]..]
    }
}

struct State {
    next: u64,
    /// The last chunk decoded (a filtered scan's next window often starts in it).
    cached: Option<Decoded>,
    zstd: zstd::bulk::Decompressor<'static>,
}

impl State {
    /// Hands `f` one line; `Some` once the scan must stop.
    fn offer(&mut self, line: u64, text: &[u8], f: &mut impl FnMut(u64, &[u8]) -> Step) -> Option<Scanned> {
        match f(line, text) {
            Step::More => {
                self.next = line.saturating_add(1);
                None
            }
            Step::Last => {
                self.next = line.saturating_add(1);
                Some(self.stopped(false, false))
            }
            Step::Refuse => Some(self.stopped(false, false)),
        }
    }

    fn stopped(&self, exhausted: bool, timed_out: bool) -> Scanned {
        Scanned {
            next: self.next,
            exhausted,
            timed_out,
        }
    }
}

/// The chunks of one window, taken lazily in order.
struct ChunkSide<'s, 'q> {
    rows: rusqlite::Rows<'s>,
    run_id: RunId,
    /// The window's first line: lines below it were shown already.
    lo: u64,
    filter: Option<&'q Filter<'q>>,
}

impl ChunkSide<'_, '_> {
    /// Shows `f` the chunk lines from `lo` below `bound`. A chunk fetched
    /// before its turn (a row comes first) stays decoded for the next call.
    fn emit_below(
        &mut self,
        state: &mut State,
        bound: u64,
        f: &mut impl FnMut(u64, &[u8]) -> Step,
    ) -> Result<Option<Scanned>, StoreError> {
        loop {
            if let Some(chunk) = state.cached.take() {
                let unseen = chunk.end() > self.lo;
                if unseen {
                    let stop = chunk.end().min(bound);
                    if self.filter.is_none_or(|x| may_match(chunk.texts(), x.needle)) {
                        for n in self.lo.max(chunk.first)..stop {
                            // `offer` borrows the state: the chunk is out of it meanwhile.
                            if let Some(done) = state.offer(n, chunk.line(n), f) {
                                state.cached = Some(chunk);
                                return Ok(Some(done));
                            }
                        }
                    }
                    self.lo = self.lo.max(stop);
                }
                let later = chunk.end() > bound;
                state.cached = Some(chunk);
                if unseen && later {
                    return Ok(None);
                }
            }
            if self.filter.is_some_and(|x| Instant::now() >= x.deadline) {
                return Ok(Some(state.stopped(false, true)));
            }
            let Some(row) = self.rows.next()? else {
                return Ok(None);
            };
            let first = row.get::<_, i64>(0)?.max(0) as u64;
            let count = row.get::<_, i64>(1)?.max(0) as u64;
            if first.saturating_add(count) <= self.lo || state.cached.as_ref().is_some_and(|c| c.first == first) {
                continue;
            }
            let raw_bytes = row.get::<_, i64>(2)?.max(0) as usize;
            let data = row.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
            let mut raw = state.cached.take().map(|c| c.raw).unwrap_or_default();
            raw.clear();
            raw.reserve(raw_bytes);
            state
                .zstd
                .decompress_to_buffer(data, &mut raw)
                .map_err(|e| corrupt(self.run_id, first, &e))?;
            let starts = split(&raw, count).ok_or_else(|| corrupt(self.run_id, first, &"bad line lengths"))?;
            state.cached = Some(Decoded { first, raw, starts });
        }
    }
}

/// Whether a chunk's texts may hold a match: the needle as is, or an escape.
fn may_match(texts: &[u8], needle: &str) -> bool {
    memchr::memchr(0x1b, texts).is_some() || memchr::memmem::find(texts, needle.as_bytes()).is_some()
}

fn corrupt(run_id: RunId, line: u64, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!(
        "the log chunk of run {run_id} at line {line} does not decode: {e}"
    ))
}

/// Compresses `lines` into one chunk's data; returns it and the payload's
/// size before compression.
pub fn encode<S: AsRef<[u8]>>(lines: &[S], level: i32) -> std::io::Result<(Vec<u8>, usize)> {
    let texts: usize = lines.iter().map(|l| l.as_ref().len()).sum();
    let mut raw = Vec::with_capacity(texts + lines.len() * 2);
    for l in lines {
        let mut n = l.as_ref().len() as u64;
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                raw.push(low);
                break;
            }
            raw.push(low | 0x80);
        }
    }
    for l in lines {
        raw.extend_from_slice(l.as_ref());
    }
    Ok((zstd::bulk::compress(&raw, level)?, raw.len()))
}

/// The offsets of `count` lines in a payload (see the module's comment), or
/// None if the lengths do not add up to it.
fn split(raw: &[u8], count: u64) -> Option<Vec<usize>> {
    let mut lens = Vec::with_capacity(count as usize);
    let mut i = 0;
    for _ in 0..count {
        let mut n = 0u64;
        let mut shift = 0;
        loop {
            let b = *raw.get(i)?;
            i += 1;
            n |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        lens.push(usize::try_from(n).ok()?);
    }
    let mut starts = Vec::with_capacity(lens.len() + 1);
    starts.push(i);
    for len in lens {
        i = i.checked_add(len)?;
        starts.push(i);
    }
    (i == raw.len()).then_some(starts)
}

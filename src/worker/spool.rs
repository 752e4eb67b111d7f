//! A run's output lines not yet stored by the server: numbered from `base`,
//! kept in memory up to a byte limit, spilled beyond it to a file on disk
//! (one JSON string per line), and read back in order as the server catches
//! up. Nothing is dropped until the server says it has stored it ([`LineBuffer::ack`]).
//! It knows nothing of HTTP.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

/// Lines kept in memory per run before spilling to disk.
pub const DEFAULT_MEMORY_LIMIT: usize = 8 * 1024 * 1024;

/// The unacknowledged output of one run.
pub struct LineBuffer {
    /// Line number of the oldest line held.
    base: u64,
    mem: VecDeque<String>,
    mem_bytes: usize,
    limit: usize,
    spool: Option<Spool>,
    /// Where a spool file is created.
    path: PathBuf,
    /// Set once the disk failed: from then on everything stays in memory.
    disk_failed: bool,
}

/// The on-disk tail: lines after those in memory, oldest first.
struct Spool {
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Lines written and not yet read back.
    lines: u64,
    /// Whether the writer has data the reader cannot see yet.
    dirty: bool,
}

impl LineBuffer {
    /// An empty buffer holding up to `limit` bytes in memory; beyond that it
    /// spills to the file `path` (created when needed, removed when drained).
    pub fn new(limit: usize, path: PathBuf) -> LineBuffer {
        LineBuffer {
            base: 0,
            mem: VecDeque::new(),
            mem_bytes: 0,
            limit: limit.max(1),
            spool: None,
            path,
            disk_failed: false,
        }
    }

    /// Line number of the oldest unacknowledged line.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// How many lines are held (memory and disk).
    pub fn len(&self) -> u64 {
        self.mem.len() as u64 + self.spool.as_ref().map_or(0, |s| s.lines)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many lines were spilled to disk and not yet read back.
    #[cfg(test)]
    pub fn on_disk(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.lines)
    }

    /// Adds the next lines (numbered right after those held).
    pub fn push(&mut self, lines: Vec<String>) {
        for line in lines {
            let to_disk = !self.disk_failed && (self.spool.is_some() || self.mem_bytes + line.len() > self.limit);
            if to_disk {
                match self.spill(&line) {
                    Ok(()) => continue,
                    Err(e) => {
                        // Keeping the line in memory beats losing it.
                        tracing::error!(path = %self.path.display(), error = %e, "cannot spill output to disk; keeping it in memory");
                        self.disk_failed = true;
                        self.unspool_all();
                    }
                }
            }
            self.mem_bytes += line.len();
            self.mem.push_back(line);
        }
    }

    fn spill(&mut self, line: &str) -> std::io::Result<()> {
        if self.spool.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&self.path)?;
            let reader = File::open(&self.path)?;
            self.spool = Some(Spool {
                writer: BufWriter::new(file),
                reader: BufReader::new(reader),
                lines: 0,
                dirty: false,
            });
        }
        let spool = self.spool.as_mut().expect("the spool was just opened");
        let encoded = serde_json::to_string(line).map_err(std::io::Error::other)?;
        spool.writer.write_all(encoded.as_bytes())?;
        spool.writer.write_all(b"\n")?;
        spool.lines += 1;
        spool.dirty = true;
        Ok(())
    }

    /// Moves everything on disk back into memory (the disk failed).
    fn unspool_all(&mut self) {
        let limit = self.limit;
        self.limit = usize::MAX;
        self.refill();
        self.limit = limit;
        self.close_spool();
    }

    /// Reads spilled lines back while memory is below its limit.
    fn refill(&mut self) {
        let Some(spool) = self.spool.as_mut() else { return };
        if self.mem_bytes >= self.limit / 2 {
            return;
        }
        if spool.dirty {
            if let Err(e) = spool.writer.flush() {
                tracing::error!(error = %e, "cannot flush the output spool");
                return;
            }
            spool.dirty = false;
        }
        let mut raw = String::new();
        while spool.lines > 0 && self.mem_bytes < self.limit {
            raw.clear();
            match spool.reader.read_line(&mut raw) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the output spool");
                    break;
                }
            }
            let line = serde_json::from_str::<String>(raw.trim_end_matches('\n')).unwrap_or_else(|e| {
                tracing::error!(error = %e, "corrupt line in the output spool");
                format!("testscheduler: line lost in the worker's spool file: {e}")
            });
            spool.lines -= 1;
            self.mem_bytes += line.len();
            self.mem.push_back(line);
        }
        if spool.lines == 0 {
            self.close_spool();
        }
    }

    fn close_spool(&mut self) {
        if self.spool.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Copies of the oldest lines, at most `max_lines` and about `max_bytes`
    /// (at least one line when any is held).
    pub fn peek(&mut self, max_lines: usize, max_bytes: usize) -> Vec<String> {
        self.refill();
        let mut out = Vec::new();
        let mut bytes = 0;
        for line in self.mem.iter().take(max_lines) {
            if !out.is_empty() && bytes + line.len() > max_bytes {
                break;
            }
            bytes += line.len();
            out.push(line.clone());
        }
        out
    }

    /// The server stored every line below `upto`: forget them.
    pub fn ack(&mut self, upto: u64) {
        while self.base < upto {
            if self.mem.is_empty() {
                self.refill();
            }
            let Some(line) = self.mem.pop_front() else { break };
            self.mem_bytes -= line.len();
            self.base += 1;
        }
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        self.close_spool();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(from: usize, n: usize) -> Vec<String> {
        (from..from + n)
            .map(|i| format!("line {i} \u{1b}[32mok\u{1b}[0m \"quoted\""))
            .collect()
    }

    fn spool_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ts-spool-test-{}-{name}", std::process::id()))
    }

    #[test]
    fn keeps_order_across_memory_and_disk() {
        let path = spool_path("order");
        let mut b = LineBuffer::new(200, path.clone());
        b.push(lines(0, 50));
        assert!(b.on_disk() > 0, "over the limit spills");
        assert!(path.exists());
        b.push(lines(50, 50));
        assert_eq!(b.len(), 100);
        let mut got = Vec::new();
        while !b.is_empty() {
            let batch = b.peek(7, 10_000);
            assert!(!batch.is_empty());
            let upto = b.base() + batch.len() as u64;
            got.extend(batch);
            b.ack(upto);
        }
        assert_eq!(got, lines(0, 100));
        assert!(!path.exists(), "a drained spool is removed");
    }

    #[test]
    fn unacknowledged_lines_are_sent_again() {
        let mut b = LineBuffer::new(1 << 20, spool_path("retry"));
        b.push(lines(0, 10));
        let first = b.peek(4, 1 << 20);
        // The POST failed: nothing acknowledged, the same lines come again.
        assert_eq!(b.peek(4, 1 << 20), first);
        // The server had stored 6 lines (line_gap next = 6).
        b.ack(6);
        assert_eq!(b.base(), 6);
        assert_eq!(b.peek(100, 1 << 20), lines(6, 4));
        b.ack(3); // an old acknowledgement changes nothing
        assert_eq!(b.base(), 6);
    }

    #[test]
    fn memory_stays_bounded_while_disk_grows() {
        let path = spool_path("bounded");
        let mut b = LineBuffer::new(1_000, path.clone());
        for i in 0..100 {
            b.push(lines(i * 100, 100));
            assert!(b.mem_bytes <= 1_000 + 100, "memory {}", b.mem_bytes);
        }
        assert_eq!(b.len(), 10_000);
        b.ack(10_000);
        assert!(b.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn peek_respects_byte_budget_but_returns_one_line() {
        let mut b = LineBuffer::new(1 << 20, spool_path("budget"));
        b.push(vec!["x".repeat(100), "y".repeat(100)]);
        assert_eq!(b.peek(10, 10).len(), 1);
        assert_eq!(b.peek(10, 250).len(), 2);
    }
}

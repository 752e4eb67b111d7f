//! The one writer thread for log lines, on a connection of its own (never a
//! pooled one, so whoever waits on it may hold pooled connections). It drains
//! its bounded channel, writes each batch in one transaction, and only then
//! announces the lines (so a follower that reads the backlog after subscribing
//! can never miss a line).
//!
//! A database that cannot be written (disk full, I/O error) loses nothing:
//! the refused batch is held and retried with backoff, and nothing more is
//! taken from the channel, so it fills and the runner feeding it stops reading
//! its pipe — the test blocks on its writes. Remote reports are answered at
//! once with [`StoreError::Unwritable`] (their worker keeps the lines and
//! retries). Only when the database has refused every write for the give-up
//! time are held lines dropped: each run that lost lines gets, once the
//! database takes writes again, `lines_lost_from` (the first line not stored)
//! and a last line saying so, and [`LogWriter::lost_from`] tells the
//! scheduler to end it `unknown`.

use super::{logs, Store, StoreError};
use crate::domain::RunId;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines that are now stored, announced after their transaction committed.
#[derive(Debug, Clone)]
pub struct Committed {
    pub run_id: RunId,
    /// Line number of `lines[0]`.
    pub from: u64,
    pub lines: Arc<Vec<String>>,
    /// True when these are the run's first lines (its `logs` flag turned on).
    pub first: bool,
}

/// Called with each committed batch (on the writer thread; must not block).
pub type OnCommit = Box<dyn Fn(Committed) + Send>;

type Reply = Sender<Result<u64, StoreError>>;

enum Msg {
    Append {
        run_id: RunId,
        from: u64,
        lines: Vec<String>,
        reply: Option<Reply>,
    },
    /// One line after whatever the run has stored.
    Note {
        run_id: RunId,
        text: String,
        reply: Reply,
    },
    Flush(Sender<()>),
}

impl Msg {
    fn weight(&self) -> (usize, usize) {
        match self {
            Msg::Append { lines, .. } => (lines.len(), lines.iter().map(String::len).sum()),
            Msg::Note { text, .. } => (1, text.len()),
            Msg::Flush(_) => (0, 0),
        }
    }
}

/// Runs whose output was given up on: the first line not stored.
type Lost = Arc<Mutex<HashMap<RunId, u64>>>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    /// Lines, notes and flushes, kept in order (the push back is here).
    tx: Sender<Msg>,
    /// Checked appends (remote reports): a channel of their own, so that they
    /// are answered at once while the ordered channel is held back.
    checked: Sender<Msg>,
    lost: Lost,
}

/// Most lines written in one transaction.
const BATCH_LINES: usize = 8_192;
/// Most bytes of text written in one transaction (lines may be 64 KiB each).
const BATCH_BYTES: usize = 8 << 20;
/// Messages the channel holds before senders wait (each at most one pipe read).
const CHANNEL: usize = 64;
/// First and longest pause between two tries of a refused batch.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The writer's entry in the store's write health.
const HEALTH_KEY: &str = "log lines";

/// How long the database may refuse every write before held lines are dropped.
pub const DEFAULT_GIVE_UP: Duration = Duration::from_secs(180);

impl LogWriter {
    /// Opens the writer's own connection and starts its thread. The channel is
    /// bounded, so a run printing faster than SQLite stores (or while it stores
    /// nothing) waits instead of filling memory. Lines the database refuses
    /// for longer than `give_up` are dropped and their loss recorded.
    pub fn start(store: Store, on_commit: OnCommit, give_up: Duration) -> Result<LogWriter, StoreError> {
        let conn = store.dedicated()?;
        let (tx, ordered) = bounded(CHANNEL);
        let (checked, checked_rx) = bounded(CHANNEL);
        let rx = Inbox {
            ordered,
            checked: checked_rx,
        };
        let lost = Lost::default();
        let thread = Thread {
            store,
            conn,
            on_commit,
            give_up,
            lost: lost.clone(),
            marks: Vec::new(),
            held: Vec::new(),
            failing_since: None,
            pause: RETRY_FIRST,
            reason: String::new(),
        };
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| StoreError::Unwritable(format!("cannot start the log writer: {e}")))?;
        Ok(LogWriter { tx, checked, lost })
    }

    /// Queues lines without waiting for them to be stored (the embedded
    /// runner: its numbering has no gaps). Blocks while the channel is full:
    /// that is the push back on a run printing faster than the store writes.
    pub fn append(&self, run_id: RunId, from: u64, lines: Vec<String>) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Append {
                run_id,
                from,
                lines,
                reply: None,
            })
            .map_err(|_| StoreError::WriterGone)
    }

    /// Appends and waits for the result: the stored count, a gap, or
    /// [`StoreError::Unwritable`] at once while the database refuses writes
    /// (remote reports: the worker retries).
    pub fn append_checked(&self, run_id: RunId, from: u64, lines: Vec<String>) -> Result<u64, StoreError> {
        let (reply, rx) = bounded(1);
        self.checked
            .send(Msg::Append {
                run_id,
                from,
                lines,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Appends one line after whatever run `run_id` has stored (the server's
    /// own notes) and waits: the stored count, or [`StoreError::Unwritable`].
    pub fn note(&self, run_id: RunId, text: String) -> Result<u64, StoreError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Msg::Note { run_id, text, reply })
            .map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Returns once everything queued before it is stored and announced, or
    /// given up on with its loss recorded ([`LogWriter::lost_from`]). While the
    /// database refuses writes this waits until it takes them again.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = bounded(1);
        self.tx.send(Msg::Flush(reply)).map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)
    }

    /// As [`LogWriter::flush`], waiting at most `limit`; false if it did not
    /// get there in time (at shutdown, on a database that refuses writes).
    pub fn flush_within(&self, limit: Duration) -> Result<bool, StoreError> {
        let deadline = Instant::now() + limit;
        let (reply, rx) = bounded(1);
        match self.tx.send_deadline(Msg::Flush(reply), deadline) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => return Ok(false),
            Err(SendTimeoutError::Disconnected(_)) => return Err(StoreError::WriterGone),
        }
        match rx.recv_deadline(deadline) {
            Ok(()) => Ok(true),
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::WriterGone),
        }
    }

    /// The first line of run `run_id` that was not stored, if its output was
    /// given up on (the run must then end `unknown`). Known to this process only;
    /// the store keeps it as the run's `lines_lost_from`.
    pub fn lost_from(&self, run_id: RunId) -> Option<u64> {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&run_id)
            .copied()
    }
}

/// The writer's two channels.
struct Inbox {
    ordered: Receiver<Msg>,
    checked: Receiver<Msg>,
}

impl Inbox {
    /// The next message from either channel; None once the handles are gone.
    fn recv(&self) -> Option<Msg> {
        crossbeam_channel::select! {
            recv(self.checked) -> m => m.ok(),
            recv(self.ordered) -> m => m.ok(),
        }
    }

    /// The next message from either channel (or only the checked one) before `deadline`.
    fn recv_deadline(&self, deadline: Instant, checked_only: bool) -> Result<Msg, RecvTimeoutError> {
        let wait = deadline.saturating_duration_since(Instant::now());
        if checked_only {
            return self.checked.recv_deadline(deadline);
        }
        crossbeam_channel::select! {
            recv(self.checked) -> m => m.map_err(|_| RecvTimeoutError::Disconnected),
            recv(self.ordered) -> m => m.map_err(|_| RecvTimeoutError::Disconnected),
            default(wait) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// A message waiting in either channel (checked ones first).
    fn try_recv(&self) -> Option<Msg> {
        self.checked.try_recv().ok().or_else(|| self.ordered.try_recv().ok())
    }
}

/// A loss not yet recorded in the database.
struct Mark {
    run_id: RunId,
    reason: String,
}

/// A recorded loss: the first line not stored, and the note put there.
type Recorded = Result<Option<(u64, String)>, StoreError>;

/// The writer thread's state.
struct Thread {
    store: Store,
    conn: Connection,
    on_commit: OnCommit,
    give_up: Duration,
    lost: Lost,
    /// Losses to record with the next transaction that goes through.
    marks: Vec<Mark>,
    /// Messages of a refused batch, in order, tried again first.
    held: Vec<Msg>,
    failing_since: Option<Instant>,
    pause: Duration,
    reason: String,
}

/// What one message came to, once its transaction committed.
enum Done {
    /// Stored lines: the count before and after.
    Stored(u64, u64),
    Failed(StoreError),
    /// Not written (its run's output was given up on, or answered already).
    Skipped,
}

impl Thread {
    fn run(mut self, rx: Inbox) {
        loop {
            let mut gone = false;
            let idle = self.held.is_empty() && self.marks.is_empty();
            let batch = if self.failing_since.is_none() || idle {
                // Nothing to retry: wait for work (a refusal is only over
                // once a real write goes through).
                match rx.recv() {
                    Some(first) => {
                        let mut batch = std::mem::take(&mut self.held);
                        batch.push(first);
                        self.top_up(batch, &rx)
                    }
                    None => break,
                }
            } else {
                // Nothing is taken from the ordered channel while we wait
                // (push back), unless the held lines were given up on: then
                // what arrives is dropped (and recorded) at once, so the runs
                // can end. Remote reports are answered meanwhile.
                let next_try = Instant::now() + self.pause;
                let shedding = self.past_give_up();
                loop {
                    match rx.recv_deadline(next_try, !shedding) {
                        Ok(m) if shedding => self.shed(m),
                        Ok(m) => self.refuse(m),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => {
                            gone = true;
                            break;
                        }
                    }
                }
                self.pause = (self.pause * 2).min(RETRY_MAX);
                let held = std::mem::take(&mut self.held);
                self.top_up(held, &rx)
            };
            self.attempt(batch);
            if gone && self.failing_since.is_some() {
                tracing::error!(reason = %self.reason, "log writer stopping with lines it could not store");
                break;
            }
        }
        tracing::debug!("log writer stopped");
    }

    /// Adds what is waiting in the channel to `batch`, up to one transaction's worth.
    fn top_up(&self, mut batch: Vec<Msg>, rx: &Inbox) -> Vec<Msg> {
        let (mut lines, mut bytes) = batch
            .iter()
            .map(Msg::weight)
            .fold((0, 0), |a, w| (a.0 + w.0, a.1 + w.1));
        while lines < BATCH_LINES && bytes < BATCH_BYTES {
            match rx.try_recv() {
                Some(m) => {
                    let (l, b) = m.weight();
                    lines += l;
                    bytes += b;
                    batch.push(m);
                }
                None => break,
            }
        }
        batch
    }

    fn past_give_up(&self) -> bool {
        self.failing_since.is_some_and(|t| t.elapsed() >= self.give_up)
    }

    fn is_lost(&self, run_id: RunId) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&run_id)
    }

    /// Writes `batch` (and the pending loss records) in one transaction, then
    /// announces and answers; on a refusal, holds or sheds it.
    fn attempt(&mut self, batch: Vec<Msg>) {
        let lost: Vec<bool> = batch
            .iter()
            .map(|m| matches!(m, Msg::Append { run_id, .. } | Msg::Note { run_id, .. } if self.is_lost(*run_id)))
            .collect();
        let outcome = (|| -> Result<(Vec<Done>, Vec<Recorded>), StoreError> {
            let tx = self.conn.transaction()?;
            let mut marks = Vec::with_capacity(self.marks.len());
            for m in &self.marks {
                match logs::record_loss(&tx, m.run_id, &m.reason) {
                    Err(e) if e.is_unwritable() => return Err(e),
                    r => marks.push(r),
                }
            }
            let mut done = Vec::with_capacity(batch.len());
            for (m, lost) in batch.iter().zip(&lost) {
                let res = match m {
                    _ if *lost => Ok(None),
                    Msg::Append {
                        run_id, from, lines, ..
                    } => logs::append(&tx, *run_id, *from, lines).map(Some),
                    Msg::Note { run_id, text, .. } => logs::append_note(&tx, *run_id, text).map(Some),
                    Msg::Flush(_) => Ok(None),
                };
                done.push(match res {
                    Err(e) if e.is_unwritable() => return Err(e),
                    Err(e) => Done::Failed(e),
                    Ok(Some((before, after))) => Done::Stored(before, after),
                    Ok(None) => Done::Skipped,
                });
            }
            tx.commit()?;
            Ok((done, marks))
        })();
        match outcome {
            Ok((done, marks)) => {
                // An empty transaction commits on a full disk too: only a
                // real write says the database takes writes again.
                let wrote = !marks.is_empty() || done.iter().any(|d| matches!(d, Done::Stored(b, a) if a > b));
                if wrote && self.failing_since.take().is_some() {
                    self.pause = RETRY_FIRST;
                    self.store.mark_writable(HEALTH_KEY);
                }
                self.committed(batch, done, marks)
            }
            Err(e) if e.is_unwritable() => self.refused(batch, e),
            Err(e) => {
                // Not the disk: the batch itself cannot be written (should not happen).
                tracing::error!(error = %e, "storing log lines failed");
                let done = batch.iter().map(|_| Done::Failed(StoreError::WriterGone)).collect();
                let marks = self.marks.iter().map(|_| Err(StoreError::WriterGone)).collect();
                self.committed(batch, done, marks);
            }
        }
    }

    /// After a commit: announce the loss notes and the lines (one announcement
    /// per run and batch: a run printing in small writes must not flood its
    /// followers with tiny events), then answer.
    fn committed(&mut self, batch: Vec<Msg>, done: Vec<Done>, marks: Vec<Recorded>) {
        for (mark, res) in std::mem::take(&mut self.marks).into_iter().zip(marks) {
            match res {
                Ok(Some((first, note))) => {
                    tracing::warn!(
                        run_id = mark.run_id,
                        lines_lost_from = first,
                        "recorded the loss of a run's output"
                    );
                    self.lost
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(mark.run_id, first);
                    (self.on_commit)(Committed {
                        run_id: mark.run_id,
                        from: first,
                        lines: Arc::new(vec![note]),
                        first: first == 0,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(run_id = mark.run_id, error = %e, "could not record the loss of a run's output")
                }
            }
        }
        let mut announce: Vec<(RunId, u64, Vec<String>)> = Vec::new();
        let mut replies: Vec<Box<dyn FnOnce()>> = Vec::new();
        for (m, done) in batch.into_iter().zip(done) {
            let (run_id, from, lines, reply) = match m {
                Msg::Append {
                    run_id,
                    from,
                    lines,
                    reply,
                } => (run_id, from, lines, reply),
                Msg::Note { run_id, text, reply } => {
                    let from = match &done {
                        Done::Stored(before, _) => *before,
                        _ => 0,
                    };
                    (run_id, from, vec![text], Some(reply))
                }
                Msg::Flush(reply) => {
                    replies.push(Box::new(move || {
                        let _ = reply.send(());
                    }));
                    continue;
                }
            };
            let answer = match done {
                Done::Stored(before, after) => {
                    if after > before {
                        let skip = before.saturating_sub(from) as usize;
                        let fresh = lines.into_iter().skip(skip);
                        let same_run = announce.iter_mut().rev().find(|(id, _, _)| *id == run_id);
                        match same_run {
                            Some((_, start, held)) if *start + held.len() as u64 == before => held.extend(fresh),
                            _ => announce.push((run_id, before, fresh.collect())),
                        }
                    }
                    Ok(after)
                }
                Done::Skipped => Err(StoreError::Unwritable(format!(
                    "the output of run {run_id} is no longer stored (lines were lost)"
                ))),
                Done::Failed(StoreError::LineGap { next }) => {
                    if reply.is_none() {
                        // Unchecked lines cannot be sent again: what is missing is lost.
                        self.give_up_on(run_id, next, "lines were missing");
                    }
                    Err(StoreError::LineGap { next })
                }
                Done::Failed(e) => {
                    tracing::error!(run_id, error = %e, "appending lines failed");
                    Err(StoreError::WriterGone)
                }
            };
            if let Some(reply) = reply {
                replies.push(Box::new(move || {
                    let _ = reply.send(answer);
                }));
            }
        }
        for (run_id, from, lines) in announce {
            (self.on_commit)(Committed {
                run_id,
                from,
                lines: Arc::new(lines),
                first: from == 0,
            });
        }
        // Answers go out only after the announcements: "flushed" means stored and announced.
        for reply in replies {
            reply();
        }
    }

    /// The database refused the batch: remote reports get their answer now,
    /// the rest is held for the next try — or dropped, past the give-up time.
    fn refused(&mut self, batch: Vec<Msg>, e: StoreError) {
        self.reason = e.reason();
        self.failing_since.get_or_insert_with(Instant::now);
        self.store.mark_unwritable(HEALTH_KEY, &self.reason);
        let shed = self.past_give_up();
        for m in batch {
            if shed {
                self.shed(m);
            } else {
                self.refuse(m);
            }
        }
    }

    /// Before the give-up time: answers a checked message now, holds the rest.
    fn refuse(&mut self, m: Msg) {
        match m {
            Msg::Append { reply: Some(reply), .. } | Msg::Note { reply, .. } => {
                let _ = reply.send(Err(StoreError::Unwritable(self.reason.clone())));
            }
            other => self.held.push(other),
        }
    }

    /// Past the give-up time: drops `m` (recording the loss of unchecked
    /// lines), answers checked ones at once; a flush waits for the records.
    fn shed(&mut self, m: Msg) {
        match m {
            Msg::Append {
                run_id,
                from,
                reply: None,
                ..
            } => {
                let reason = self.reason.clone();
                self.give_up_on(run_id, from, &reason);
            }
            Msg::Append { reply: Some(reply), .. } | Msg::Note { reply, .. } => {
                let _ = reply.send(Err(StoreError::Unwritable(self.reason.clone())));
            }
            Msg::Flush(reply) => self.held.push(Msg::Flush(reply)),
        }
    }

    /// Run `run_id`'s output is no longer stored after what it has stored
    /// (`from` is the first line dropped; the record says exactly): remember
    /// it, and record it with the next transaction that goes through.
    fn give_up_on(&mut self, run_id: RunId, from: u64, reason: &str) {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        if lost.contains_key(&run_id) {
            return;
        }
        lost.insert(run_id, from);
        drop(lost);
        tracing::error!(
            run_id,
            first_dropped = from,
            reason,
            "giving up on storing a run's output"
        );
        self.marks.push(Mark {
            run_id,
            reason: reason.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let conn = store.conn().expect("conn");
        runs::insert(&conn, &runs::NewRun::created("bob", 1, "./tests/", 9)).expect("run");
        (dir, store)
    }

    #[test]
    fn waiting_on_the_writer_needs_no_pooled_connection() {
        let (_dir, store) = store();
        let writer = LogWriter::start(store.clone(), Box::new(|_| {}), DEFAULT_GIVE_UP).expect("writer");
        // Every pooled connection is taken, as by busy callers.
        let held: Vec<_> = (0..8).map(|_| store.conn().expect("conn")).collect();
        let (done, rx) = bounded(1);
        let w = writer.clone();
        std::thread::spawn(move || {
            let _ = done.send((
                w.append_checked(1, 0, vec!["a".into()]),
                w.flush(),
                w.note(1, "n".into()),
            ));
        });
        let (appended, flushed, noted) = rx.recv_timeout(Duration::from_secs(20)).expect("the writer answers");
        assert_eq!(appended.expect("stored"), 1);
        flushed.expect("flushed");
        assert_eq!(noted.expect("noted"), 2);
        assert_eq!(logs::read(&held[0], 1, 0, 10).expect("read"), ["a", "n"]);
    }
}

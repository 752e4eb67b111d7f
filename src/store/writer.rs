//! The one writer thread for log lines: it drains its channel, writes each
//! batch in one transaction, and only then announces the lines (so a follower
//! that reads the backlog after subscribing can never miss a line).

use super::{logs, Store, StoreError};
use crate::domain::RunId;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::Arc;

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

enum Msg {
    Append {
        run_id: RunId,
        from: u64,
        lines: Vec<String>,
        reply: Option<Sender<Result<u64, StoreError>>>,
    },
    Flush(Sender<()>),
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    tx: Sender<Msg>,
}

/// Most lines written in one transaction.
const BATCH_LINES: usize = 8_192;

impl LogWriter {
    /// Starts the writer thread. The channel is bounded, so a run printing
    /// faster than SQLite stores waits instead of filling memory.
    pub fn start(store: Store, on_commit: OnCommit) -> std::io::Result<LogWriter> {
        let (tx, rx) = bounded(64);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || run(store, rx, on_commit))?;
        Ok(LogWriter { tx })
    }

    /// Queues lines without waiting (the embedded runner: its numbering has no gaps).
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

    /// Appends and waits for the result: the stored count, or a gap (remote reports).
    pub fn append_checked(&self, run_id: RunId, from: u64, lines: Vec<String>) -> Result<u64, StoreError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Msg::Append {
                run_id,
                from,
                lines,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Returns once everything queued before it is stored and announced.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = bounded(1);
        self.tx.send(Msg::Flush(reply)).map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)
    }
}

fn run(store: Store, rx: Receiver<Msg>, on_commit: OnCommit) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let mut lines: usize = 0;
        while lines < BATCH_LINES {
            match rx.try_recv() {
                Ok(m) => {
                    if let Msg::Append { lines: l, .. } = &m {
                        lines += l.len();
                    }
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        write_batch(&store, batch, &on_commit);
    }
    tracing::debug!("log writer stopped");
}

fn write_batch(store: &Store, batch: Vec<Msg>, on_commit: &OnCommit) {
    let mut results: Vec<Result<(u64, u64), StoreError>> = Vec::with_capacity(batch.len());
    let outcome = (|| -> Result<(), StoreError> {
        let mut conn = store.conn()?;
        let tx = conn.transaction()?;
        for m in &batch {
            if let Msg::Append {
                run_id, from, lines, ..
            } = m
            {
                results.push(logs::append(&tx, *run_id, *from, lines));
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "storing log lines failed");
    }
    // One announcement per run and batch: a run printing in small writes must
    // not flood its followers with tiny events (they would lag for nothing).
    let mut announce: Vec<(RunId, u64, Vec<String>)> = Vec::new();
    let mut replies: Vec<Box<dyn FnOnce()>> = Vec::new();
    let mut results = results.into_iter();
    for m in batch {
        match m {
            Msg::Append {
                run_id,
                from,
                lines,
                reply,
            } => {
                let res = match (&outcome, results.next()) {
                    (Ok(()), Some(r)) => r,
                    _ => Err(StoreError::WriterGone),
                };
                let answer = match res {
                    Ok((before, after)) => {
                        if after > before {
                            let skip = (before - from) as usize;
                            let fresh = lines.into_iter().skip(skip);
                            let same_run = announce.iter_mut().rev().find(|(id, _, _)| *id == run_id);
                            match same_run {
                                Some((_, start, held)) if *start + held.len() as u64 == before => held.extend(fresh),
                                _ => announce.push((run_id, before, fresh.collect())),
                            }
                        }
                        Ok(after)
                    }
                    Err(StoreError::LineGap { next }) => Err(StoreError::LineGap { next }),
                    Err(e) => {
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
            Msg::Flush(reply) => replies.push(Box::new(move || {
                let _ = reply.send(());
            })),
        }
    }
    for (run_id, from, lines) in announce {
        on_commit(Committed {
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

//! The worker's Redis side: take one message at a time through the consumer
//! group while a slot is free (and the server answers), check it (a worker
//! with a secret runs only messages whose signature verifies), start its run
//! on a thread of its own, and acknowledge, give back or forget messages.

use super::http::Backoff;
use super::Worker;
use crate::dispatch::stream::{connect, read_reply_entries, GROUP};
use crate::protocol::worker::{Job, JobError, RefusedJob};
use crate::runner::StopFlag;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long one read from the stream blocks.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// At most this many refused messages wait for the next heartbeat.
const MAX_REFUSED_REPORTED: usize = 100;

impl Worker {
    /// Acknowledges and deletes stream entry `msg_id` (best effort: an entry
    /// left pending is cleaned up by the server after a lease).
    pub(super) fn ack(&self, msg_id: &str) {
        let mut guard = self.ack_conn.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..2 {
            let conn = match guard.as_mut() {
                Some(c) => c,
                None => match connect(&self.client, Duration::from_secs(3)) {
                    Ok(c) => guard.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach redis to acknowledge a message");
                        return;
                    }
                },
            };
            let mut pipe = redis::pipe();
            forget(&mut pipe, &self.keys.stream, msg_id);
            let res = pipe.query::<()>(conn);
            match res {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "acknowledging a message failed");
                    *guard = None;
                }
            }
        }
    }

    /// Puts a message this worker will not run back on the stream, as is
    /// (its token stays valid), and drops its own copy.
    fn requeue(&self, msg_id: &str, fields: &HashMap<String, String>) {
        let res = connect(&self.client, Duration::from_secs(3)).and_then(|mut c| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("XADD")
                .arg(&self.keys.stream)
                .arg("*")
                .arg(fields)
                .ignore();
            forget(&mut pipe, &self.keys.stream, msg_id);
            pipe.query::<()>(&mut c)
        });
        match res {
            Ok(()) => tracing::info!(msg_id, "stopping: gave a run back to the queue"),
            // Left pending: the server publishes it again after a lease.
            Err(e) => tracing::warn!(msg_id, error = %e, "could not give a run back to the queue"),
        }
    }

    /// Takes runs until drained and every run has ended.
    pub(super) fn take_runs(self: &Arc<Self>) {
        let mut conn: Option<redis::Connection> = None;
        let mut backoff = Backoff::new();
        let mut warned = false;
        loop {
            {
                let mut running = self.running();
                loop {
                    let draining = self.draining.load(Ordering::SeqCst);
                    if draining && running.is_empty() {
                        return;
                    }
                    // Only while the server answers our heartbeats: a worker
                    // pointed at the wrong server, or with the wrong secret, takes nothing.
                    if !draining && running.len() < self.opts.slots && self.server_ok.load(Ordering::SeqCst) {
                        break;
                    }
                    running = self
                        .changed
                        .wait_timeout(running, Duration::from_millis(500))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match connect(&self.client, READ_BLOCK + Duration::from_secs(3)) {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "cannot reach redis; retrying");
                            warned = true;
                        }
                        std::thread::sleep(backoff.next_delay());
                        continue;
                    }
                },
            };
            let reply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.opts.id)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.keys.stream)
                .arg(">")
                .query::<redis::Value>(c);
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    // NOGROUP: the server has not (re)created the queue yet.
                    if !warned {
                        tracing::warn!(error = %e, "cannot read the run queue; retrying");
                        warned = true;
                    }
                    if e.code() != Some("NOGROUP") {
                        conn = None;
                    }
                    std::thread::sleep(backoff.next_delay());
                    continue;
                }
            };
            if warned {
                tracing::info!("run queue reachable");
                warned = false;
            }
            backoff.reset();
            for (msg_id, fields) in read_reply_entries(&reply) {
                if self.draining.load(Ordering::SeqCst) {
                    // Taken while the stop arrived: give it back for another worker.
                    self.requeue(&msg_id, &fields);
                    continue;
                }
                match Job::from_fields(&fields, self.opts.secret.as_ref()) {
                    Ok(job) => self.start_job(msg_id, job),
                    Err(e @ (JobError::Unsigned | JobError::BadSignature)) => {
                        // Not acknowledged: the server deletes it after a lease and, if it
                        // was its own, publishes the run again for a worker with its secret.
                        let run_id = fields.get("id").cloned().unwrap_or_default();
                        tracing::error!(
                            msg_id = %msg_id,
                            run_id = %run_id.escape_debug(),
                            command = %fields.get("command").map(String::as_str).unwrap_or("").escape_debug(),
                            error = %e,
                            "refused a job message that does not verify; not running it"
                        );
                        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
                        if refused.len() < MAX_REFUSED_REPORTED {
                            refused.push(RefusedJob {
                                msg_id: msg_id.clone(),
                                run_id: run_id.chars().take(40).collect(),
                                reason: e.to_string(),
                            });
                        }
                    }
                    Err(e) => {
                        tracing::error!(msg_id = %msg_id, error = %e, "malformed message; dropping it");
                        self.ack(&msg_id);
                    }
                }
            }
        }
    }

    fn start_job(self: &Arc<Self>, msg_id: String, job: Job) {
        let stop = StopFlag::new();
        let id = job.id;
        self.running().insert(id, stop.clone());
        let me = self.clone();
        let spawned = std::thread::Builder::new().name(format!("run-{id}")).spawn(move || {
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                super::job::run(&me, &msg_id, job, stop)
            }));
            if res.is_err() {
                tracing::error!(run_id = id, "run thread panicked; the server's lease ends the run");
            }
            me.running().remove(&id);
            me.changed.notify_all();
        });
        if let Err(e) = spawned {
            tracing::error!(run_id = id, error = %e, "cannot start a run thread");
            self.running().remove(&id);
        }
    }
}

/// Adds to `pipe` what drops message `msg_id` from this worker's view: `XACK`
/// (no longer pending for us) and `XDEL` (the stream holds only unclaimed runs).
fn forget(pipe: &mut redis::Pipeline, stream: &str, msg_id: &str) {
    pipe.cmd("XACK").arg(stream).arg(GROUP).arg(msg_id).ignore();
    pipe.cmd("XDEL").arg(stream).arg(msg_id).ignore();
}

//! Dispatch through Redis Streams. The server puts one message per waiting run
//! on the stream `{prefix}runs`; workers read it through the consumer group
//! `workers`, claim the run over HTTP, then acknowledge and delete the
//! message. SQLite stays the truth: a run is published when it is `created`
//! and has no message yet (`published_ms` NULL), so anything Redis loses is
//! simply published again, each time with a fresh token (only the newest
//! token's hash is kept, so an older message can no longer claim the run).
//!
//! One thread owns the server's Redis connection: `submit` only wakes it. Once
//! a second it also checks that Redis still has our data (the marker key
//! `{prefix}epoch` and the group), and publishes again the messages a worker
//! took but did not claim within a lease (the group's pending entries).
//! The keys and reply parsing it shares with the worker are in `stream.rs`,
//! the message format in `protocol::worker`; with a worker secret every
//! message is signed.

use super::stream::{connect, entries, text, Keys, GROUP, IO_TIMEOUT};
use super::Dispatcher;
use crate::config::{fill_command, Config};
use crate::domain::{Run, RunId};
use crate::envs_file::Environments;
use crate::protocol::worker::Job;
use crate::store::{now_ms, remote, runs, Store, StoreError};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use redis::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the dispatcher checks Redis' state and pending messages.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// A new random run token (256 bits, hex).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The server's half: wakes the publishing thread.
pub struct RedisDispatcher {
    wake: Sender<()>,
}

impl Dispatcher for RedisDispatcher {
    fn submit(&self, _run: &Run) -> Result<(), String> {
        // Full means a wake-up is pending already: that one publishes this run too.
        let _ = self.wake.try_send(());
        Ok(())
    }

    fn cancel(&self, _id: RunId) {
        // The worker hears `cancel: true` in the reply to its next report (≤ 1 s).
    }
}

/// Starts the publishing thread for `config.redis`.
pub fn start(config: Arc<Config>, store: Store, envs: Environments) -> Result<RedisDispatcher, String> {
    let url = config.redis.clone().ok_or("no --redis URL")?;
    let client = redis::Client::open(url.as_str()).map_err(|e| format!("--redis {url}: {e}"))?;
    let (wake, rx) = bounded(1);
    let publisher = Publisher {
        keys: Keys::new(&config.redis_prefix),
        client,
        conn: None,
        config,
        store,
        envs,
        warned: None,
    };
    std::thread::Builder::new()
        .name("redis-dispatch".into())
        .spawn(move || publisher.run(rx))
        .map_err(|e| e.to_string())?;
    Ok(RedisDispatcher { wake })
}

/// Why a publishing step failed.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

struct Publisher {
    keys: Keys,
    client: redis::Client,
    conn: Option<redis::Connection>,
    config: Arc<Config>,
    store: Store,
    /// Where each job's environment variables come from.
    envs: Environments,
    /// When Redis was last reported unreachable (to log once, not every second).
    warned: Option<Instant>,
}

impl Publisher {
    fn run(mut self, wake: Receiver<()>) {
        let mut last_maintain: Option<Instant> = None;
        loop {
            let due = last_maintain.map_or(Duration::ZERO, |t| MAINTAIN_EVERY.saturating_sub(t.elapsed()));
            match wake.recv_timeout(due) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let maintain = last_maintain.is_none_or(|t| t.elapsed() >= MAINTAIN_EVERY);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(maintain)));
            if maintain {
                last_maintain = Some(Instant::now());
            }
            match res {
                Ok(Ok(())) => {
                    if self.warned.take().is_some() {
                        tracing::info!("redis reachable again");
                    }
                }
                Ok(Err(e)) => {
                    self.conn = None;
                    if self.warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(error = %e, "cannot dispatch through redis; waiting runs stay queued in the database");
                        self.warned = Some(Instant::now());
                    }
                }
                Err(_) => {
                    self.conn = None;
                    tracing::error!("redis dispatcher panicked; it goes on");
                }
            }
        }
    }

    fn step(&mut self, maintain: bool) -> Result<(), PublishError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => connect(&self.client, IO_TIMEOUT)?,
        };
        if maintain {
            self.check_redis(&mut conn)?;
            self.reclaim_untaken(&mut conn)?;
        }
        self.publish_waiting(&mut conn)?;
        self.conn = Some(conn);
        Ok(())
    }

    /// Makes sure the group exists; if Redis lost our data (the marker or
    /// the group is gone), every waiting run is published again.
    fn check_redis(&self, conn: &mut redis::Connection) -> Result<(), PublishError> {
        let marker: bool = redis::cmd("EXISTS").arg(&self.keys.marker).query(conn)?;
        let created = match redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query::<()>(conn)
        {
            Ok(()) => true,
            Err(e) if e.code() == Some("BUSYGROUP") => false,
            Err(e) => return Err(e.into()),
        };
        if !marker || created {
            let n = remote::unpublish(&*self.store.conn()?, None)?;
            redis::cmd("SET")
                .arg(&self.keys.marker)
                .arg(now_ms())
                .query::<()>(conn)?;
            tracing::info!(stream = %self.keys.stream, waiting = n, "redis has no queue of ours: created it; waiting runs are published again");
        }
        Ok(())
    }

    /// Messages taken by a worker that did not claim the run within a lease
    /// are deleted; their runs, if still waiting, are published again.
    fn reclaim_untaken(&self, conn: &mut redis::Connection) -> Result<(), PublishError> {
        let lease_ms = self.config.lease.as_millis() as u64;
        let pending: Value = redis::cmd("XPENDING")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("IDLE")
            .arg(lease_ms)
            .arg("-")
            .arg("+")
            .arg(100)
            .query(conn)?;
        let Value::Array(items) = pending else {
            return Ok(());
        };
        for item in items {
            let Some(msg_id) = (match &item {
                Value::Array(f) => f.first().and_then(text),
                _ => None,
            }) else {
                continue;
            };
            let found: Value = redis::cmd("XRANGE")
                .arg(&self.keys.stream)
                .arg(&msg_id)
                .arg(&msg_id)
                .query(conn)?;
            redis::pipe()
                .cmd("XACK")
                .arg(&self.keys.stream)
                .arg(GROUP)
                .arg(&msg_id)
                .ignore()
                .cmd("XDEL")
                .arg(&self.keys.stream)
                .arg(&msg_id)
                .ignore()
                .query::<()>(conn)?;
            for (_, fields) in entries(&found) {
                // Our own message: its token is checked against the stored hash below.
                let Ok(job) = Job::from_fields(&fields, None) else {
                    continue;
                };
                let store = self.store.conn()?;
                let current = remote::get(&store, job.id)?.and_then(|r| r.token_hash);
                if current.is_some_and(|h| runs::token_matches(&job.token, &h))
                    && remote::unpublish(&store, Some(job.id))? > 0
                {
                    tracing::warn!(
                        run_id = job.id,
                        "a worker took this run but never claimed it; publishing it again"
                    );
                }
            }
        }
        Ok(())
    }

    /// Publishes every waiting run that has no message yet, each with a fresh token.
    fn publish_waiting(&self, conn: &mut redis::Connection) -> Result<(), PublishError> {
        loop {
            let waiting = remote::unpublished(&*self.store.conn()?, 200)?;
            if waiting.is_empty() {
                return Ok(());
            }
            for (id, path, env_id, timeout_s) in waiting {
                let sel = crate::store::results::selection(&*self.store.conn()?, id, &path)?;
                let job = Job {
                    id,
                    command: fill_command(&self.config.command, &sel, env_id, id),
                    path,
                    env_id,
                    timeout_s,
                    token: new_token(),
                    lease_s: self.config.lease.as_secs(),
                    vars: self.envs.catalog().vars(env_id),
                };
                let hash = runs::hash_token(&job.token);
                let command = serde_json::Value::from(job.command.clone()).to_string();
                if !remote::set_token(&*self.store.conn()?, id, &hash, &command)? {
                    continue; // cancelled meanwhile
                }
                let fields = job.to_fields(self.config.worker_secret.as_ref());
                redis::cmd("XADD")
                    .arg(&self.keys.stream)
                    .arg("*")
                    .arg(&fields)
                    .query::<String>(conn)?;
                remote::mark_published(&*self.store.conn()?, id, &hash, now_ms())?;
                tracing::debug!(run_id = id, "run published to redis");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}

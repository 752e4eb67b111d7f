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
//! This module also owns the message format, which the worker reads.

use super::Dispatcher;
use crate::config::{fill_command, Config};
use crate::domain::{Run, RunId};
use crate::store::{now_ms, remote, runs, Store, StoreError};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use redis::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer group every worker reads through.
pub const GROUP: &str = "workers";
/// How often the dispatcher checks Redis' state and pending messages.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);
/// Timeout of every Redis call of the server (never blocks a request long).
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The Redis keys under one prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    /// The stream of waiting runs.
    pub stream: String,
    /// Set by the server; gone means Redis lost its data.
    pub marker: String,
}

impl Keys {
    /// The keys under `prefix` (e.g. `testscheduler:`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            stream: format!("{prefix}runs"),
            marker: format!("{prefix}epoch"),
        }
    }
}

/// One run as a message on the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: RunId,
    pub path: String,
    pub env_id: u32,
    /// The command, already filled in.
    pub command: Vec<String>,
    pub timeout_s: u64,
    /// The secret for every report about this run.
    pub token: String,
    /// The server's lease, in seconds.
    pub lease_s: u64,
}

impl Job {
    /// The stream entry's fields.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.to_string()),
            ("path", self.path.clone()),
            ("env_id", self.env_id.to_string()),
            ("command", serde_json::Value::from(self.command.clone()).to_string()),
            ("timeout_s", self.timeout_s.to_string()),
            ("token", self.token.clone()),
            ("lease_s", self.lease_s.to_string()),
        ]
    }

    /// Reads a stream entry's fields; the error names what is wrong.
    pub fn from_fields(f: &HashMap<String, String>) -> Result<Job, String> {
        fn get<'a>(f: &'a HashMap<String, String>, k: &str) -> Result<&'a str, String> {
            f.get(k).map(String::as_str).ok_or_else(|| format!("no field {k}"))
        }
        fn num<T: std::str::FromStr>(f: &HashMap<String, String>, k: &str) -> Result<T, String> {
            get(f, k)?.parse().map_err(|_| format!("field {k} is not a number"))
        }
        let command: Vec<String> =
            serde_json::from_str(get(f, "command")?).map_err(|e| format!("field command: {e}"))?;
        if command.is_empty() {
            return Err("field command is empty".into());
        }
        Ok(Job {
            id: num(f, "id")?,
            path: get(f, "path")?.to_string(),
            env_id: num(f, "env_id")?,
            command,
            timeout_s: num(f, "timeout_s")?,
            token: get(f, "token")?.to_string(),
            lease_s: num::<u64>(f, "lease_s")?.max(1),
        })
    }
}

/// A new random run token (256 bits, hex).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Text of a reply value, if it is one.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// Stream entries `[[id, [k, v, …]], …]` as (id, fields).
pub fn entries(v: &Value) -> Vec<(String, HashMap<String, String>)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Array(pair) = item else { continue };
        let (Some(id), Some(kv)) = (pair.first().and_then(text), pair.get(1)) else {
            continue;
        };
        let mut fields = HashMap::new();
        match kv {
            Value::Array(kv) => {
                for c in kv.chunks(2) {
                    if let [k, v] = c {
                        if let (Some(k), Some(v)) = (text(k), text(v)) {
                            fields.insert(k, v);
                        }
                    }
                }
            }
            Value::Map(kv) => {
                for (k, v) in kv {
                    if let (Some(k), Some(v)) = (text(k), text(v)) {
                        fields.insert(k, v);
                    }
                }
            }
            _ => {}
        }
        out.push((id, fields));
    }
    out
}

/// The entries of an `XREADGROUP` reply (nil when nothing came).
pub fn read_reply_entries(v: &Value) -> Vec<(String, HashMap<String, String>)> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .flat_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entries).unwrap_or_default(),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, v)| entries(v)).collect(),
        _ => Vec::new(),
    }
}

/// Opens a connection with bounded connect, read and write times.
pub fn connect(client: &redis::Client, read_timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(read_timeout))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
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
pub fn start(config: Arc<Config>, store: Store) -> Result<RedisDispatcher, String> {
    let url = config.redis.clone().ok_or("no --redis URL")?;
    let client = redis::Client::open(url.as_str()).map_err(|e| format!("--redis {url}: {e}"))?;
    let (wake, rx) = bounded(1);
    let publisher = Publisher {
        keys: Keys::new(&config.redis_prefix),
        client,
        conn: None,
        config,
        store,
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
                let Ok(job) = Job::from_fields(&fields) else { continue };
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
                let job = Job {
                    id,
                    command: fill_command(&self.config.command, &path, env_id, id),
                    path,
                    env_id,
                    timeout_s,
                    token: new_token(),
                    lease_s: self.config.lease.as_secs(),
                };
                let hash = runs::hash_token(&job.token);
                let command = serde_json::Value::from(job.command.clone()).to_string();
                if !remote::set_token(&*self.store.conn()?, id, &hash, &command)? {
                    continue; // cancelled meanwhile
                }
                let fields = job.to_fields();
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

    fn job() -> Job {
        Job {
            id: 7,
            path: "./tests/my test.py".into(),
            env_id: 3,
            command: vec![
                "python3".into(),
                "-m".into(),
                "pytest".into(),
                "./tests/my test.py".into(),
            ],
            timeout_s: 60,
            token: new_token(),
            lease_s: 30,
        }
    }

    #[test]
    fn job_round_trips_through_fields() {
        let j = job();
        let fields: HashMap<String, String> = j.to_fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(Job::from_fields(&fields), Ok(j));
    }

    #[test]
    fn bad_message_names_its_field() {
        let mut fields: HashMap<String, String> =
            job().to_fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        fields.insert("env_id".into(), "x".into());
        assert!(Job::from_fields(&fields).expect_err("bad").contains("env_id"));
        fields.remove("token");
        assert!(Job::from_fields(&fields).is_err());
    }

    #[test]
    fn tokens_are_fresh_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn xreadgroup_reply_is_read() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![Value::Array(vec![
            b("p:runs"),
            Value::Array(vec![Value::Array(vec![
                b("1-0"),
                Value::Array(vec![b("id"), b("5"), b("path"), b("./tests/")]),
            ])]),
        ])]);
        let got = read_reply_entries(&reply);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(got[0].1.get("id").map(String::as_str), Some("5"));
        assert!(read_reply_entries(&Value::Nil).is_empty());
    }
}

//! SQLite storage: the pool, the migrations, runs and log lines, and the one
//! writer thread for log lines (on a connection of its own). All SQL lives
//! under this module; its functions take a `&Connection` and return domain
//! types. Nothing here decides a status.
//!
//! A database that cannot be written (disk full, I/O error, read-only) is not
//! an error to give up on: [`Store::retry_write`] and the log writer retry,
//! and [`Store::unwritable`] tells `/healthz` why it is failing meanwhile.

pub mod accounts;
pub mod audit;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod queue;
pub mod remote;
pub mod reservations;
pub mod results;
pub mod runs;
pub mod verdicts;
pub mod writer;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pooled SQLite connection.
pub type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

/// Store failures; the HTTP layer maps them in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("environment {env_id} is busy with run {run_id}")]
    EnvBusy { env_id: u32, run_id: i64 },
    #[error("run {0} not found")]
    NotFound(i64),
    #[error("lines must follow on from line {next}")]
    LineGap { next: u64 },
    #[error("migration: {0}")]
    Migration(String),
    #[error(
        "the database was written by a newer testscheduler (schema version {db}); this binary knows up to version {binary} and never downgrades data"
    )]
    TooNew { db: u32, binary: u32 },
    #[error("the log writer has stopped")]
    WriterGone,
    #[error(transparent)]
    IllegalMove(#[from] crate::domain::IllegalMove),
    /// The database answers reads but cannot store anything now (disk full…); retry later.
    #[error("the database cannot be written: {0}")]
    Unwritable(String),
    /// The file is not a usable SQLite database (checked once at start).
    #[error("not a usable SQLite database ({0}); move it away or restore a backup")]
    Corrupt(String),
}

impl StoreError {
    /// Whether this failure is the database refusing to be written for now
    /// (disk full, I/O error, read-only file, locked too long): worth retrying,
    /// and what `/healthz` reports.
    pub fn is_unwritable(&self) -> bool {
        match self {
            StoreError::Unwritable(_) => true,
            StoreError::Pool(_) => true,
            StoreError::Sql(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    ErrorCode::DiskFull
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::ReadOnly
                        | ErrorCode::CannotOpen
                        | ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::OutOfMemory
                )
            ),
            _ => false,
        }
    }

    /// The failure in a few words, without the layers' prefixes (for
    /// `/healthz` and error bodies): e.g. "database or disk is full".
    pub fn reason(&self) -> String {
        match self {
            StoreError::Sql(e) => e.to_string(),
            StoreError::Unwritable(why) => why.clone(),
            other => other.to_string(),
        }
    }
}

/// Since when, and why, each kind of write (the log writer's, a run's end…)
/// has been refused; empty while the database takes writes.
#[derive(Default)]
struct WriteHealth(Mutex<HashMap<String, (Instant, String)>>);

impl WriteHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection pool and what every connection shares; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    path: Arc<PathBuf>,
    health: Arc<WriteHealth>,
    /// Read-only connections for log searches only, so a search never takes
    /// the API's or the writer's connections (see `logs::search`).
    search: r2d2::Pool<SqliteConnectionManager>,
}

/// What every connection runs first.
const CONNECTION_PRAGMAS: &str = "PRAGMA journal_mode = WAL;
     PRAGMA busy_timeout = 5000;
     PRAGMA foreign_keys = ON;
     PRAGMA synchronous = NORMAL;";

/// Longest pause between two tries of a write the database refused.
const RETRY_MAX: Duration = Duration::from_secs(2);

impl Store {
    /// Opens (creating if needed) the database at `path`, checks it once
    /// (a corrupt or foreign file is refused at once, not after the pool's
    /// timeout), and migrates it to the newest schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut first = Connection::open(path)?;
        check(&first)?;
        migrate::migrate(&mut first)?;
        drop(first);
        let manager = SqliteConnectionManager::file(path).with_init(|c| c.execute_batch(CONNECTION_PRAGMAS));
        let pool = r2d2::Pool::builder().max_size(8).build(manager)?;
        let search = logs::search_pool(path)?;
        Ok(Store {
            pool,
            search,
            path: Arc::new(path.to_path_buf()),
            health: Arc::default(),
        })
    }

    /// A connection from the pool. Never hold one across an `.await`.
    pub fn conn(&self) -> Result<Conn, StoreError> {
        Ok(self.pool.get()?)
    }

    /// A connection of its own, outside the pool (the log writer's), set up
    /// as pooled ones are.
    pub fn dedicated(&self) -> Result<Connection, StoreError> {
        let c = Connection::open(self.path.as_path())?;
        c.execute_batch(CONNECTION_PRAGMAS)?;
        Ok(c)
    }

    /// Why the database cannot be written, or None while it can: a write
    /// refused lately and not yet retried with success, or a filesystem too
    /// full for the next write that needs space (seen before any write fails,
    /// whichever code writes).
    pub fn unwritable(&self) -> Option<String> {
        let refused = self
            .health
            .lock()
            .values()
            .min_by_key(|(since, _)| *since)
            .map(|(since, why)| format!("{why} (for {} s)", since.elapsed().as_secs()));
        refused.or_else(|| {
            let free = free_bytes(&self.path)?;
            (free < FULL_BELOW)
                .then(|| format!("the filesystem of {} is full ({free} bytes free)", self.path.display()))
        })
    }

    /// Records that a write of kind `what` was refused because the database
    /// cannot be written. Returns how long writes of that kind have been refused.
    pub fn mark_unwritable(&self, what: &str, why: &str) -> Duration {
        let mut h = self.health.lock();
        if h.is_empty() {
            tracing::error!(reason = why, database = %self.path.display(), "the database cannot be written; retrying");
        }
        match h.get_mut(what) {
            Some((since, reason)) => {
                if reason != why {
                    *reason = why.to_string();
                }
                since.elapsed()
            }
            None => {
                h.insert(what.to_string(), (Instant::now(), why.to_string()));
                Duration::ZERO
            }
        }
    }

    /// Records that a write of kind `what` went through.
    pub fn mark_writable(&self, what: &str) {
        let mut h = self.health.lock();
        if let Some((since, _)) = h.remove(what) {
            if h.is_empty() {
                tracing::info!(
                    after_ms = since.elapsed().as_millis() as u64,
                    "the database can be written again"
                );
            }
        }
    }

    /// Runs the write `f` until the database takes it: a failure that
    /// [`StoreError::is_unwritable`] is retried with backoff (and reported by
    /// `/healthz` meanwhile), forever; any other result is returned. For writes
    /// that must never be lost, such as a finished run's status. Blocking.
    pub fn retry_write<T>(&self, what: &str, mut f: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut pause = Duration::from_millis(50);
        let mut tries: u64 = 0;
        loop {
            match f() {
                Err(e) if e.is_unwritable() => {
                    let for_how_long = self.mark_unwritable(what, &e.reason());
                    if tries.is_multiple_of(30) {
                        tracing::warn!(what, error = %e, failing_for_s = for_how_long.as_secs(), "write refused; retrying");
                    }
                    tries += 1;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Ok(v) => {
                    self.mark_writable(what);
                    return Ok(v);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Free space below which a write that needs new pages fails (a few pages).
const FULL_BELOW: u64 = 64 * 1024;

/// Free bytes on the filesystem holding `db`, the reserved blocks included
/// (so a root server is never told "full" while it can write; for others a
/// refused write says it); None if that cannot be asked.
fn free_bytes(db: &Path) -> Option<u64> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((st.blocks_free() as u64).saturating_mul(st.fragment_size() as u64))
}

/// How long the check at start may read pages (a big database is checked as
/// far as this gets: its schema always, its pages for this long).
const CHECK_BUDGET: Duration = Duration::from_secs(2);

/// The one check at start: the file is an SQLite database whose schema reads
/// and whose pages hold together (`PRAGMA quick_check`, within [`CHECK_BUDGET`]).
fn check(conn: &Connection) -> Result<(), StoreError> {
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    conn.execute_batch(CONNECTION_PRAGMAS).map_err(corrupt)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
        .map_err(corrupt)?;
    let interrupt = conn.get_interrupt_handle();
    let (done, stop) = crossbeam_channel::bounded::<()>(1);
    let timer = std::thread::spawn(move || {
        if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECK_BUDGET) {
            interrupt.interrupt();
        }
    });
    let verdict = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get::<_, String>(0));
    let _ = done.send(());
    let _ = timer.join();
    match verdict {
        Ok(v) if v == "ok" => Ok(()),
        Ok(v) => Err(StoreError::Corrupt(v.split_whitespace().collect::<Vec<_>>().join(" "))),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {
            tracing::info!(
                budget_ms = CHECK_BUDGET.as_millis() as u64,
                "database check stopped at its time budget"
            );
            Ok(())
        }
        Err(e) => Err(corrupt(e)),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// A read-only search connection, waiting at most `wait` for one; `None` if none came.
    pub fn search_conn(&self, wait: std::time::Duration) -> Option<Conn> {
        self.search.get_timeout(wait).ok()
    }
}

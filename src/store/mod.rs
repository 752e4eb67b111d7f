//! SQLite storage: the pool, the migrations, runs and log lines, and the one
//! writer thread for log lines. All SQL lives under this module; its functions
//! take a `&Connection` and return domain types. Nothing here decides a status.

pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod remote;
pub mod runs;
pub mod writer;

use r2d2_sqlite::SqliteConnectionManager;
use std::path::Path;

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
}

/// The connection pool; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the newest schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA foreign_keys = ON;
                 PRAGMA synchronous = NORMAL;",
            )
        });
        let pool = r2d2::Pool::builder().max_size(8).build(manager)?;
        let mut conn = pool.get()?;
        migrate::migrate(&mut conn)?;
        Ok(Store { pool })
    }

    /// A connection from the pool. Never hold one across an `.await`.
    pub fn conn(&self) -> Result<Conn, StoreError> {
        Ok(self.pool.get()?)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

//! `testscheduler backup FILE`: a consistent copy of a (live) database with
//! SQLite's online backup API. The copy is taken in one step from one read
//! snapshot; in WAL mode that never blocks the server's writers, and it does
//! not take the server's lock file. It is written next to FILE and renamed
//! into place, so FILE is never a half-written database.

use crate::config::{project_dir, BackupArgs, ConfigError};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--database {path}: {message}")]
    Source { path: String, message: String },
    #[error("{path}: {message}")]
    Target { path: String, message: String },
}

/// What a finished backup copied.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Pages in the copy.
    pub pages: i64,
    /// Bytes in the copy.
    pub bytes: u64,
}

/// The database `backup` reads: `--database`, else `testscheduler.db` in the project directory.
pub fn source_path(args: &BackupArgs) -> Result<PathBuf, ConfigError> {
    match &args.database {
        Some(p) => Ok(p.clone()),
        None => Ok(project_dir(&args.project_dir)?.join("testscheduler.db")),
    }
}

/// Copies the database `args` names to `args.file`.
pub fn run(args: &BackupArgs) -> Result<Copied, BackupError> {
    let src_path = source_path(args)?;
    copy(&src_path, &args.file)
}

/// Copies the live database at `src_path` to `dst_path`.
pub fn copy(src_path: &Path, dst_path: &Path) -> Result<Copied, BackupError> {
    let src_err = |message: String| BackupError::Source {
        path: src_path.display().to_string(),
        message,
    };
    let dst_err = |message: String| BackupError::Target {
        path: dst_path.display().to_string(),
        message,
    };
    if !src_path.is_file() {
        return Err(src_err("no such database file".into()));
    }
    // Read-write (not read-only) so that SQLite may use the server's WAL index;
    // the backup itself only reads.
    let src = Connection::open_with_flags(
        src_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| src_err(e.to_string()))?;
    src.busy_timeout(Duration::from_secs(10))
        .map_err(|e| src_err(e.to_string()))?;
    let file_name = dst_path
        .file_name()
        .ok_or_else(|| dst_err("not a file name".into()))?
        .to_string_lossy()
        .to_string();
    let tmp = dst_path.with_file_name(format!(".{file_name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> Result<Copied, BackupError> {
        let mut dst = Connection::open(&tmp).map_err(|e| dst_err(e.to_string()))?;
        {
            let backup = Backup::new(&src, &mut dst).map_err(|e| src_err(e.to_string()))?;
            // -1: every page in one step, from one read snapshot (so writers
            // meanwhile never make it start over).
            let mut tries = 0;
            loop {
                match backup.step(-1).map_err(|e| src_err(e.to_string()))? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    StepResult::Busy | StepResult::Locked if tries < 200 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => return Err(src_err("the database stayed locked; try again".into())),
                }
            }
        }
        let pages: i64 = dst
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|e| dst_err(e.to_string()))?;
        // The copy stands alone: no -wal file next to it.
        dst.execute_batch("PRAGMA journal_mode = DELETE;")
            .map_err(|e| dst_err(e.to_string()))?;
        drop(dst);
        let bytes = std::fs::metadata(&tmp).map_err(|e| dst_err(e.to_string()))?.len();
        std::fs::rename(&tmp, dst_path).map_err(|e| dst_err(e.to_string()))?;
        Ok(Copied { pages, bytes })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

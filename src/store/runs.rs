//! Rows of the `runs` table. Status changes here are conditional updates that
//! the scheduler asks for; this file never decides which move is allowed.

use super::StoreError;
use crate::domain::{Run, RunId, RunStatus};
use rusqlite::{params, params_from_iter, types::Value, Connection, OptionalExtension, Row};

const COLUMNS: &str =
    "id, username, created_at, env_id, path, status, line_count, started_at, finished_at, exit_code, timeout_s, worker, lines_lost_from";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    let status: String = r.get(5)?;
    let lines: i64 = r.get(6)?;
    Ok(Run {
        id: r.get(0)?,
        username: r.get(1)?,
        created_at: r.get(2)?,
        env_id: r.get(3)?,
        path: r.get(4)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Unknown),
        logs: lines > 0,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        exit_code: r.get(9)?,
        timeout_s: r.get::<_, i64>(10)?.max(0) as u64,
        lines: lines.max(0) as u64,
        worker: r.get(11)?,
        lines_lost_from: r.get::<_, Option<i64>>(12)?.map(|v| v.max(0) as u64),
    })
}

/// What a new run is made of.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub username: String,
    pub env_id: u32,
    pub path: String,
    pub timeout_s: u64,
    pub created_at: String,
}

/// Inserts a `created` run that holds its environment, or tells who holds it.
pub fn insert(conn: &Connection, new: &NewRun) -> Result<Run, StoreError> {
    let res = conn.execute(
        "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s, holds_env)
         VALUES (?1, ?2, ?3, 'created', ?4, ?5, 1)",
        params![new.username, new.env_id, new.path, new.created_at, new.timeout_s as i64],
    );
    match res {
        Ok(_) => {
            let id = conn.last_insert_rowid();
            get(conn, id)?.ok_or(StoreError::NotFound(id))
        }
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            let run_id = env_holder(conn, new.env_id)?.unwrap_or(0);
            Err(StoreError::EnvBusy {
                env_id: new.env_id,
                run_id,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The run holding environment `env_id`, if any.
pub fn env_holder(conn: &Connection, env_id: u32) -> Result<Option<RunId>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id FROM runs WHERE env_id = ?1 AND holds_env = 1",
            [env_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Every held environment and the run holding it.
pub fn held_envs(conn: &Connection) -> Result<Vec<(u32, RunId)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT env_id, id FROM runs WHERE holds_env = 1 ORDER BY env_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One run.
pub fn get(conn: &Connection, id: RunId) -> Result<Option<Run>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], from_row).optional()?)
}

/// Which runs `GET /api/testruns` returns.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub limit: Option<u32>,
    pub before: Option<RunId>,
    pub user: Option<String>,
    pub env_id: Option<u32>,
    pub status: Option<RunStatus>,
    pub path_prefix: Option<String>,
}

/// Runs matching `f`, newest first.
pub fn list(conn: &Connection, f: &RunFilter) -> Result<Vec<Run>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(b) = f.before {
        sql.push_str(" AND id < ?");
        args.push(Value::Integer(b));
    }
    if let Some(u) = &f.user {
        sql.push_str(" AND username = ?");
        args.push(Value::Text(u.clone()));
    }
    if let Some(e) = f.env_id {
        sql.push_str(" AND env_id = ?");
        args.push(Value::Integer(e.into()));
    }
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        args.push(Value::Text(s.as_str().into()));
    }
    if let Some(p) = &f.path_prefix {
        sql.push_str(" AND substr(path, 1, ?) = ?");
        args.push(Value::Integer(p.chars().count() as i64));
        args.push(Value::Text(p.clone()));
    }
    sql.push_str(" ORDER BY id DESC");
    if let Some(l) = f.limit {
        sql.push_str(" LIMIT ?");
        args.push(Value::Integer(l.into()));
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ids of runs in `status`, oldest first.
pub fn ids_with_status(conn: &Connection, status: RunStatus) -> Result<Vec<RunId>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM runs WHERE status = ?1 ORDER BY id")?;
    let rows = stmt.query_map([status.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `created` → `running`, stamping the start. False if the run was no longer `created`.
pub fn mark_running(conn: &Connection, id: RunId, started_at: &str, worker: Option<&str>) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE runs SET status = 'running', started_at = ?2, worker = ?3 WHERE id = ?1 AND status = 'created'",
        params![id, started_at, worker],
    )?;
    Ok(n == 1)
}

/// Records the process group of an embedded run.
pub fn set_process_group(conn: &Connection, id: RunId, pgid: i32, start: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET pgid = ?2, pgid_start = ?3 WHERE id = ?1",
        params![id, pgid, start as i64],
    )?;
    Ok(())
}

/// Moves `id` from `from` to `to`; `release` also frees its environment.
/// False when the run was not in `from` (someone else moved it first).
pub fn move_status(
    conn: &Connection,
    id: RunId,
    from: RunStatus,
    to: RunStatus,
    release: bool,
    exit_code: Option<i32>,
    finished_at: Option<&str>,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE runs SET status = ?3,
                holds_env = CASE WHEN ?4 THEN 0 ELSE holds_env END,
                exit_code = COALESCE(?5, exit_code),
                finished_at = COALESCE(?6, finished_at)
         WHERE id = ?1 AND status = ?2",
        params![id, from.as_str(), to.as_str(), release, exit_code, finished_at],
    )?;
    Ok(n == 1)
}

/// Frees the environment of a finished run; records its exit code if it had none.
pub fn release(conn: &Connection, id: RunId, exit_code: Option<i32>) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE runs SET holds_env = 0, exit_code = COALESCE(exit_code, ?2), pgid = NULL WHERE id = ?1 AND holds_env = 1",
        params![id, exit_code],
    )?;
    Ok(n == 1)
}

/// An embedded run left behind by a previous server: id, process group, leader start time.
pub type Orphan = (RunId, Option<i32>, Option<u64>);

/// Embedded runs left `running` (or still holding their environment) by a previous server.
pub fn orphaned_local_runs(conn: &Connection) -> Result<Vec<Orphan>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, pgid, pgid_start FROM runs
         WHERE worker IS NULL AND (status = 'running' OR (holds_env = 1 AND status != 'created'))
         ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, Option<i64>>(2)?.map(|v| v.max(0) as u64),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many runs there are (benchmarks, tests).
pub fn count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
}

/// What a log follower needs: status, stored line count, and whether the run
/// still holds its environment (lines may still arrive while it does).
pub fn log_state(conn: &Connection, id: RunId) -> Result<Option<(RunStatus, u64, bool)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT status, line_count, holds_env FROM runs WHERE id = ?1")?
        .query_row([id], |r| {
            let status: String = r.get(0)?;
            Ok((
                RunStatus::parse(&status).unwrap_or(RunStatus::Unknown),
                r.get::<_, i64>(1)?.max(0) as u64,
                r.get::<_, bool>(2)?,
            ))
        })
        .optional()?)
}

/// The stored form of a run token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `stored` (compared in constant time).
pub fn token_matches(token: &str, stored: &str) -> bool {
    let h = hash_token(token);
    h.len() == stored.len() && h.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The hash of run `id`'s newest token, if it has one.
pub fn token_hash(conn: &Connection, id: RunId) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT token_hash FROM runs WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .flatten())
}

//! Rows of the `reservations` table: an environment reserved by hand for a
//! while. Status changes are conditional updates the scheduler asks for;
//! the database allows one active reservation per environment.

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// A reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub id: i64,
    pub env_id: u32,
    pub username: String,
    pub note: String,
    /// `queued`, `active` or `ended`.
    pub status: String,
    /// Null until it becomes active.
    pub since: Option<String>,
    /// `since` + `duration_s`, moved by `PATCH`; null until active.
    pub until: Option<String>,
    pub duration_s: u64,
    pub created_at: String,
    pub ended_at: Option<String>,
}

const COLUMNS: &str = "id, env_id, username, note, status, since, until, duration_s, created_at, ended_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Reservation> {
    Ok(Reservation {
        id: r.get(0)?,
        env_id: r.get(1)?,
        username: r.get(2)?,
        note: r.get(3)?,
        status: r.get(4)?,
        since: r.get(5)?,
        until: r.get(6)?,
        duration_s: r.get::<_, i64>(7)?.max(0) as u64,
        created_at: r.get(8)?,
        ended_at: r.get(9)?,
    })
}

/// Stores a new reservation, `active` from `since` to `until` or `queued`.
/// `EnvBusy` when another one is active there.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &Connection,
    env_id: u32,
    username: &str,
    note: &str,
    duration_s: u64,
    created_at: &str,
    active: Option<(&str, &str, i64)>,
) -> Result<Reservation, StoreError> {
    let (status, since, until, until_ms) = match active {
        Some((since, until, until_ms)) => ("active", Some(since), Some(until), Some(until_ms)),
        None => ("queued", None, None, None),
    };
    let res = conn.execute(
        "INSERT INTO reservations (env_id, username, note, status, duration_s, created_at, since, until, until_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            env_id,
            username,
            note,
            status,
            duration_s as i64,
            created_at,
            since,
            until,
            until_ms
        ],
    );
    match res {
        Ok(_) => get(conn, conn.last_insert_rowid())?.ok_or(StoreError::NotFound(0)),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(StoreError::EnvBusy { env_id, run_id: 0 })
        }
        Err(e) => Err(e.into()),
    }
}

/// One reservation.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Reservation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], from_row).optional()?)
}

/// Reservations not yet ended (queued ones in arrival order), or, with
/// `active_only`, the active ones.
pub fn open(conn: &Connection, active_only: bool) -> Result<Vec<Reservation>, StoreError> {
    let filter = if active_only {
        "status = 'active'"
    } else {
        "status != 'ended'"
    };
    let sql = format!("SELECT {COLUMNS} FROM reservations WHERE {filter} ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every reservation, newest first, at most `limit`.
pub fn list(conn: &Connection, limit: u32) -> Result<Vec<Reservation>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reservations ORDER BY id DESC LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `queued` → `active` from `since` to `until`. False if it was not queued.
pub fn activate(conn: &Connection, id: i64, since: &str, until: &str, until_ms: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE reservations SET status = 'active', since = ?2, until = ?3, until_ms = ?4
             WHERE id = ?1 AND status = 'queued'",
        )?
        .execute(params![id, since, until, until_ms])?;
    Ok(n == 1)
}

/// Ends a queued or active reservation. False if it had already ended.
pub fn end(conn: &Connection, id: i64, now: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("UPDATE reservations SET status = 'ended', ended_at = ?2 WHERE id = ?1 AND status != 'ended'")?
        .execute(params![id, now])?;
    Ok(n == 1)
}

/// Moves the end of an active reservation. False if it is not active.
pub fn move_until(conn: &Connection, id: i64, until: &str, until_ms: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("UPDATE reservations SET until = ?2, until_ms = ?3 WHERE id = ?1 AND status = 'active'")?
        .execute(params![id, until, until_ms])?;
    Ok(n == 1)
}

/// Active reservations whose end is before `now_ms`.
pub fn expired(conn: &Connection, now_ms: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM reservations WHERE status = 'active' AND until_ms <= ?1 ORDER BY id")?;
    let rows = stmt.query_map([now_ms], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

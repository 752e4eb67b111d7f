//! The queue's rows: waiting runs in order, who holds which environment,
//! disabled environments, recent durations (for ETAs) and the stored
//! positions and ETAs. Nothing here decides who goes next: the scheduler does.

use super::StoreError;
use crate::domain::{RunId, RunStatus};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// A queued run, as the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRow {
    pub id: RunId,
    /// The environment asked for; `None` for a label run.
    pub env_id: Option<u32>,
    pub labels: Option<Vec<String>>,
    pub username: String,
    pub path: String,
    pub priority: i32,
    pub created_at: String,
}

/// Every queued run, in queue order: highest priority first, then lowest id.
pub fn queued(conn: &Connection) -> Result<Vec<QueuedRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, env_id, labels, username, path, priority, created_at FROM runs
         WHERE status = 'queued' ORDER BY priority DESC, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(QueuedRow {
            id: r.get(0)?,
            env_id: r.get::<_, Option<u32>>(1)?.filter(|e| *e > 0),
            labels: r
                .get::<_, Option<String>>(2)?
                .and_then(|l| serde_json::from_str(&l).ok()),
            username: r.get(3)?,
            path: r.get(4)?,
            priority: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The run holding an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderRow {
    pub env_id: u32,
    pub run_id: RunId,
    pub username: String,
    pub path: String,
    pub status: RunStatus,
    pub created_at: String,
    pub started_at: Option<String>,
}

/// Every held environment and the run holding it.
pub fn holders(conn: &Connection) -> Result<Vec<HolderRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT env_id, id, username, path, status, created_at, started_at FROM runs
         WHERE holds_env = 1 ORDER BY env_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let status: String = r.get(4)?;
        Ok(HolderRow {
            env_id: r.get(0)?,
            run_id: r.get(1)?,
            username: r.get(2)?,
            path: r.get(3)?,
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Unknown),
            created_at: r.get(5)?,
            started_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Disabled environments and their reasons.
pub fn disabled(conn: &Connection) -> Result<HashMap<u32, String>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT env_id, disabled_reason FROM env_state WHERE disabled_reason IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Disables `env` with `reason`, or enables it (`None`). False if nothing changed.
pub fn set_disabled(conn: &Connection, env: u32, reason: Option<&str>, now: &str) -> Result<bool, StoreError> {
    let before: Option<String> = conn
        .query_row("SELECT disabled_reason FROM env_state WHERE env_id = ?1", [env], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    if before.as_deref() == reason {
        return Ok(false);
    }
    match reason {
        Some(reason) => conn.execute(
            "INSERT INTO env_state (env_id, disabled_reason, disabled_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(env_id) DO UPDATE SET disabled_reason = ?2, disabled_at = ?3",
            params![env, reason, now],
        )?,
        None => conn.execute(
            "UPDATE env_state SET disabled_reason = NULL, enabled_at = ?2 WHERE env_id = ?1",
            params![env, now],
        )?,
    };
    Ok(true)
}

/// The median duration (ms) of the last 10 finished runs of `path` on `env`,
/// else of `path` anywhere, else of anything on `env`; `None` without history.
pub fn median_ms(conn: &Connection, path: &str, env: u32) -> Result<Option<i64>, StoreError> {
    const DONE: &str = "status IN ('succeeded', 'failed') AND started_at IS NOT NULL AND finished_at IS NOT NULL";
    let queries = [
        (format!("SELECT started_at, finished_at FROM runs WHERE path = ?1 AND env_id = ?2 AND {DONE} ORDER BY id DESC LIMIT 10"), true, true),
        (format!("SELECT started_at, finished_at FROM runs WHERE path = ?1 AND {DONE} ORDER BY id DESC LIMIT 10"), true, false),
        (format!("SELECT started_at, finished_at FROM runs WHERE env_id = ?1 AND {DONE} ORDER BY id DESC LIMIT 10"), false, true),
    ];
    for (sql, by_path, by_env) in queries {
        let mut stmt = conn.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?));
        let pairs: Vec<(String, String)> = match (by_path, by_env) {
            (true, true) => stmt.query_map(params![path, env], map)?.collect::<Result<_, _>>()?,
            (true, false) => stmt.query_map(params![path], map)?.collect::<Result<_, _>>()?,
            _ => stmt.query_map(params![env], map)?.collect::<Result<_, _>>()?,
        };
        let mut durations: Vec<i64> = pairs
            .iter()
            .filter_map(|(a, b)| Some(parse_ms(b)? - parse_ms(a)?))
            .filter(|d| *d >= 0)
            .collect();
        if !durations.is_empty() {
            durations.sort_unstable();
            return Ok(Some(durations[durations.len() / 2]));
        }
    }
    Ok(None)
}

/// Milliseconds since the epoch of an RFC 3339 moment.
pub fn parse_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Stores a queued run's position and ETA; true if either changed.
pub fn set_place(conn: &Connection, id: RunId, position: u64, eta: Option<&str>) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET queue_position = ?2, eta = ?3
             WHERE id = ?1 AND status = 'queued' AND (queue_position IS NOT ?2 OR eta IS NOT ?3)",
        )?
        .execute(params![id, position as i64, eta])?;
    Ok(n == 1)
}

/// Queued runs whose `queue_timeout_s` ran out before `now_ms`.
pub fn past_deadline(conn: &Connection, now_ms: i64) -> Result<Vec<RunId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM runs WHERE status = 'queued' AND queue_deadline_ms IS NOT NULL AND queue_deadline_ms <= ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([now_ms], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

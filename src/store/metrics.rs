//! The few counts `GET /metrics` reads at scrape time, one cheap query each
//! (the `runs_status` and `runs_one_per_env` indexes serve them).

use super::StoreError;
use rusqlite::Connection;

/// What the gauges of `/metrics` show, as the database has it now.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Runs per status, for `queued`, `created` and `running` (absent = 0).
    pub active: Vec<(String, i64)>,
    /// Queued runs per environment (absent = 0).
    pub queued: Vec<(u32, i64)>,
    /// The environments a run holds.
    pub busy: Vec<u32>,
}

/// Reads a [`Snapshot`].
pub fn snapshot(conn: &Connection) -> Result<Snapshot, StoreError> {
    let mut active = conn.prepare_cached(
        "SELECT status, count(*) FROM runs WHERE status IN ('queued', 'created', 'running') GROUP BY status",
    )?;
    let active = active
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut queued = conn.prepare_cached(
        "SELECT env_id, count(*) FROM runs WHERE status = 'queued' AND env_id IS NOT NULL GROUP BY env_id",
    )?;
    let queued = queued
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut busy = conn.prepare_cached("SELECT env_id FROM runs WHERE holds_env = 1")?;
    let busy = busy.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(Snapshot { active, queued, busy })
}

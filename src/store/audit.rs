//! The audit log: who did what to what (PRODUCT.md "Accounts"), one row per
//! action, newest first when read.

use super::StoreError;
use rusqlite::{params, Connection};

/// One audit entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Appends an entry.
pub fn record(conn: &Connection, e: &Entry) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO audit (at_ms, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![e.at_ms, e.actor, e.action, e.target, e.detail])?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub fn list(conn: &Connection, limit: u32) -> Result<Vec<Entry>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT at_ms, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(Entry {
                at_ms: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                detail: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

//! SQL for runs dispatched to remote workers: their token hash, publication on
//! the Redis stream, claim, lease and the queries the lease keeper needs.
//! Nothing here decides a status: the scheduler asks, these are conditional
//! updates that say whether they applied.

use super::StoreError;
use crate::domain::{RunId, RunStatus};
use rusqlite::{params, Connection, OptionalExtension};

/// What a report about a remote run is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRun {
    pub id: RunId,
    pub status: RunStatus,
    pub worker: Option<String>,
    pub token_hash: Option<String>,
    pub holds_env: bool,
    pub lines: u64,
    pub started_at: Option<String>,
    pub timeout_s: u64,
}

/// The remote view of run `id`.
pub fn get(conn: &Connection, id: RunId) -> Result<Option<RemoteRun>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, status, worker, token_hash, holds_env, line_count, started_at, timeout_s
             FROM runs WHERE id = ?1",
        )?
        .query_row([id], |r| {
            let status: String = r.get(1)?;
            Ok(RemoteRun {
                id: r.get(0)?,
                status: RunStatus::parse(&status).unwrap_or(RunStatus::Unknown),
                worker: r.get(2)?,
                token_hash: r.get(3)?,
                holds_env: r.get(4)?,
                lines: r.get::<_, i64>(5)?.max(0) as u64,
                started_at: r.get(6)?,
                timeout_s: r.get::<_, i64>(7)?.max(0) as u64,
            })
        })
        .optional()?)
}

/// Gives a `created` run a new token (only its hash is kept) and the command it
/// is dispatched with, as not yet published. False if it is no longer `created`.
pub fn set_token(conn: &Connection, id: RunId, token_hash: &str, command_json: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET token_hash = ?2, command = ?3, published_ms = NULL WHERE id = ?1 AND status = 'created'",
        )?
        .execute(params![id, token_hash, command_json])?;
    Ok(n == 1)
}

/// Records that the message carrying token `token_hash` is on the stream.
pub fn mark_published(conn: &Connection, id: RunId, token_hash: &str, at_ms: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("UPDATE runs SET published_ms = ?3 WHERE id = ?1 AND token_hash = ?2 AND status = 'created'")?
        .execute(params![id, token_hash, at_ms])?;
    Ok(n == 1)
}

/// Whether `created` run `id` has a message on the stream.
pub fn is_published(conn: &Connection, id: RunId) -> Result<bool, StoreError> {
    let v: Option<Option<i64>> = conn
        .prepare_cached("SELECT published_ms FROM runs WHERE id = ?1 AND status = 'created'")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(matches!(v, Some(Some(_))))
}

/// `created` runs without a message on the stream, oldest first.
pub fn unpublished(conn: &Connection, limit: u32) -> Result<Vec<(RunId, String, u32, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, path, env_id, timeout_s FROM runs
         WHERE status = 'created' AND published_ms IS NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?.max(0) as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks `created` run `id` (or every `created` run) as needing a new message.
pub fn unpublish(conn: &Connection, id: Option<RunId>) -> Result<usize, StoreError> {
    Ok(match id {
        Some(id) => conn.execute(
            "UPDATE runs SET published_ms = NULL WHERE id = ?1 AND status = 'created'",
            [id],
        )?,
        None => conn.execute("UPDATE runs SET published_ms = NULL WHERE status = 'created'", [])?,
    })
}

/// Extends the lease of a remote run that still holds its environment.
pub fn renew_lease(conn: &Connection, id: RunId, until_ms: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE runs SET lease_until_ms = ?2
             WHERE id = ?1 AND holds_env = 1 AND worker IS NOT NULL AND status != 'created'",
        )?
        .execute(params![id, until_ms])?;
    Ok(n == 1)
}

/// Extends the leases of the listed runs held by `worker`.
pub fn renew_worker_leases(conn: &Connection, worker: &str, ids: &[RunId], until_ms: i64) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE runs SET lease_until_ms = ?3
         WHERE id = ?1 AND worker = ?2 AND holds_env = 1 AND status != 'created'",
    )?;
    for id in ids {
        stmt.execute(params![id, worker, until_ms])?;
    }
    Ok(())
}

/// After a server start: every held remote run gets a whole lease again.
pub fn restart_leases(conn: &Connection, until_ms: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE runs SET lease_until_ms = ?1 WHERE worker IS NOT NULL AND holds_env = 1 AND status != 'created'",
        [until_ms],
    )?)
}

/// Held remote runs whose lease ran out before `now_ms`: (id, status, worker).
pub fn expired_leases(conn: &Connection, now_ms: i64) -> Result<Vec<(RunId, RunStatus, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, status, worker FROM runs
         WHERE worker IS NOT NULL AND holds_env = 1 AND status != 'created'
           AND COALESCE(lease_until_ms, 0) < ?1
         ORDER BY id",
    )?;
    let rows = stmt.query_map([now_ms], |r| {
        let status: String = r.get(1)?;
        Ok((
            r.get(0)?,
            RunStatus::parse(&status).unwrap_or(RunStatus::Unknown),
            r.get(2)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Remote runs still `running`: (id, started_at, timeout_s).
pub fn running(conn: &Connection) -> Result<Vec<(RunId, Option<String>, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, started_at, timeout_s FROM runs WHERE status = 'running' AND worker IS NOT NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Of `ids`, those the server has stopped (cancelled, timed out or ended unknown).
pub fn stopped_among(conn: &Connection, ids: &[RunId]) -> Result<Vec<RunId>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT status FROM runs WHERE id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let status: Option<String> = stmt.query_row([id], |r| r.get(0)).optional()?;
        if matches!(status.as_deref(), Some("cancelled" | "timeout" | "unknown")) {
            out.push(*id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Claim, Transition};
    use crate::store::{migrate, runs};

    fn claim(c: &Connection, token_hash: &str, worker: &str) -> Result<bool, StoreError> {
        let t = Transition::claim(Claim {
            worker: worker.into(),
            token_hash: token_hash.into(),
            lease_until_ms: 100,
        });
        runs::apply(c, 1, &t, "t")
    }

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().expect("db");
        migrate::migrate(&mut c).expect("schema");
        runs::insert(&c, &runs::NewRun::created("bob", 1, "./tests/", 60)).expect("run");
        c
    }

    #[test]
    fn only_the_newest_token_claims_and_only_once() {
        let c = db();
        assert!(set_token(&c, 1, "old", "[]").expect("set"));
        assert!(set_token(&c, 1, "new", "[]").expect("set"));
        assert_eq!(unpublished(&c, 10).expect("list").len(), 1);
        assert!(
            !mark_published(&c, 1, "old", 5).expect("mark"),
            "a stale token is not the published one"
        );
        assert!(mark_published(&c, 1, "new", 5).expect("mark"));
        assert!(is_published(&c, 1).expect("published"));
        assert!(unpublished(&c, 10).expect("list").is_empty());
        assert!(!claim(&c, "old", "w1").expect("claim"));
        assert!(claim(&c, "new", "w1").expect("claim"));
        assert!(!claim(&c, "new", "w2").expect("claim"), "a run is claimed once");
        assert!(
            !set_token(&c, 1, "newer", "[]").expect("set"),
            "a claimed run keeps its token"
        );
        let r = get(&c, 1).expect("get").expect("run");
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(r.worker.as_deref(), Some("w1"));
    }

    #[test]
    fn leases_expire_and_restart() {
        let c = db();
        set_token(&c, 1, "h", "[]").expect("set");
        claim(&c, "h", "w1").expect("claim");
        assert!(expired_leases(&c, 50).expect("q").is_empty());
        assert_eq!(expired_leases(&c, 150).expect("q").len(), 1);
        assert!(renew_lease(&c, 1, 200).expect("renew"));
        assert!(expired_leases(&c, 150).expect("q").is_empty());
        assert_eq!(restart_leases(&c, 1000).expect("restart"), 1);
        assert!(expired_leases(&c, 999).expect("q").is_empty());
        renew_worker_leases(&c, "w2", &[1], 5000).expect("renew");
        assert!(
            expired_leases(&c, 1001).expect("q").len() == 1,
            "another worker cannot renew it"
        );
    }
}

//! Retention: `--keep-logs-days N` drops the output of runs that finished
//! more than N days ago (the runs stay, with `"logs_pruned": true`);
//! `--keep-runs-days N` deletes such runs entirely (their results go with
//! them). Both are off by default. The pruner is a thread of its own that
//! passes at start and then every [`Policy::every`] (10 minutes), in small
//! transactions, so the log writer and the API never wait long for it.
//! Only finished runs that no longer hold an environment are touched, by
//! their `finished_at`.

use crate::domain::run::timestamp;
use crate::domain::RunId;
use crate::store::{prune, Store, StoreError};
use rusqlite::Connection;
use std::time::Duration;

/// What retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `--keep-logs-days`: output of runs finished longer ago is dropped.
    pub keep_logs_days: Option<u32>,
    /// `--keep-runs-days`: runs finished longer ago are deleted.
    pub keep_runs_days: Option<u32>,
    /// How often the pruner passes (hidden `--prune-every`, default 600 s).
    pub every: Duration,
}

impl Policy {
    fn is_off(&self) -> bool {
        self.keep_logs_days.is_none() && self.keep_runs_days.is_none()
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Runs whose output was dropped.
    pub logs: u64,
    /// Runs deleted.
    pub runs: u64,
}

/// Runs taken per query.
const RUNS_PER_BATCH: u32 = 50;
/// Rows of output dropped per transaction.
const LINES_PER_TX: u32 = 20_000;

/// Starts the pruner's thread, unless retention is off.
pub fn start(store: Store, policy: Policy) -> std::io::Result<()> {
    if policy.is_off() {
        return Ok(());
    }
    std::thread::Builder::new().name("retention".into()).spawn(move || {
        let mut conn = None;
        loop {
            if conn.is_none() {
                conn = store.dedicated().map_err(|e| warn(&e)).ok();
            }
            if let Some(c) = &conn {
                match pass(c, &policy, chrono::Utc::now()) {
                    Ok(p) if p != Pruned::default() => {
                        tracing::info!(logs = p.logs, runs = p.runs, "retention: old output and runs dropped")
                    }
                    Ok(_) => {}
                    Err(e) => warn(&e),
                }
            }
            std::thread::sleep(policy.every);
        }
    })?;
    Ok(())
}

fn warn(e: &StoreError) {
    tracing::warn!(error = %e, "retention pass failed; trying again at the next");
}

fn cutoff(now: chrono::DateTime<chrono::Utc>, days: u32) -> String {
    timestamp(now - chrono::Duration::days(i64::from(days)))
}

/// One pass as of `now`: deletes the runs past `--keep-runs-days`, then drops
/// the output of those past `--keep-logs-days`.
pub fn pass(conn: &Connection, policy: &Policy, now: chrono::DateTime<chrono::Utc>) -> Result<Pruned, StoreError> {
    let mut done = Pruned::default();
    if let Some(days) = policy.keep_runs_days {
        let cutoff = cutoff(now, days);
        loop {
            let ids = prune::finished_before(conn, &cutoff, false, RUNS_PER_BATCH)?;
            for &id in &ids {
                drop_output(conn, id)?;
                prune::delete_run(conn, id)?;
                done.runs += 1;
            }
            if (ids.len() as u32) < RUNS_PER_BATCH {
                break;
            }
        }
    }
    if let Some(days) = policy.keep_logs_days {
        let cutoff = cutoff(now, days);
        loop {
            let ids = prune::finished_before(conn, &cutoff, true, RUNS_PER_BATCH)?;
            for &id in &ids {
                drop_output(conn, id)?;
                done.logs += 1;
            }
            if (ids.len() as u32) < RUNS_PER_BATCH {
                break;
            }
        }
    }
    Ok(done)
}

/// Drops a run's output a transaction at a time.
fn drop_output(conn: &Connection, id: RunId) -> Result<(), StoreError> {
    while !prune::drop_some_lines(conn, id, LINES_PER_TX)? {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{logs, migrate};

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().expect("db");
        migrate::migrate(&mut c).expect("schema");
        c
    }

    fn run(c: &Connection, status: &str, finished: Option<&str>, holds_env: bool) -> RunId {
        c.execute(
            "INSERT INTO runs (username, env_id, path, status, created_at, finished_at, timeout_s, holds_env)
             VALUES ('bob', 1, './tests/', ?1, 'x', ?2, 9, ?3)",
            rusqlite::params![status, finished, holds_env],
        )
        .expect("run");
        let id = c.last_insert_rowid();
        logs::append(c, id, 0, &["a".to_string(), "b".to_string()]).expect("lines");
        id
    }

    fn days_ago(now: chrono::DateTime<chrono::Utc>, d: i64) -> String {
        timestamp(now - chrono::Duration::days(d))
    }

    #[test]
    fn prunes_exactly_the_old_finished_runs() {
        let c = db();
        let now = chrono::Utc::now();
        let ancient = run(&c, "failed", Some(&days_ago(now, 40)), false);
        let old = run(&c, "succeeded", Some(&days_ago(now, 10)), false);
        let recent = run(&c, "succeeded", Some(&days_ago(now, 1)), false);
        let running = run(&c, "running", None, true);
        crate::store::compact::pass(&c).expect("compact");
        let policy = Policy {
            keep_logs_days: Some(7),
            keep_runs_days: Some(30),
            every: Duration::from_secs(600),
        };
        assert_eq!(pass(&c, &policy, now).expect("pass"), Pruned { logs: 1, runs: 1 });
        assert_eq!(
            pass(&c, &policy, now).expect("pass"),
            Pruned::default(),
            "a second pass finds nothing"
        );
        let get = |id| crate::store::runs::get(&c, id).expect("get");
        assert!(get(ancient).is_none());
        let old_run = get(old).expect("stays");
        assert!(old_run.logs_pruned);
        assert_eq!(old_run.lines, 2, "its count stays");
        assert!(logs::read(&c, old, 0, 10).expect("read").is_empty());
        for id in [recent, running] {
            assert!(!get(id).expect("stays").logs_pruned);
            assert_eq!(logs::read(&c, id, 0, 10).expect("read"), ["a", "b"]);
        }
    }
}

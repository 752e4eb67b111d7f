//! Versioned schema migrations, embedded in the binary and applied at start in
//! one transaction; the version lives in `PRAGMA user_version`. A shipped
//! migration is never edited: add the next file instead.

use super::StoreError;
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

/// Every migration, oldest first. Version N is the state after the Nth.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_remote_workers.sql"),
    include_str!("migrations/0003_remote_dispatch.sql"),
    include_str!("migrations/0004_queue.sql"),
    include_str!("migrations/0005_lines_lost_from.sql"),
    include_str!("migrations/0006_results.sql"),
    include_str!("migrations/0007_accounts.sql"),
];

/// The newest schema version this binary knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.len() as u32
}

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// The schema version stored in the database.
pub fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the database to the newest version; refuses one written by a newer binary.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, latest_version())
}

/// Brings the database to `version` (tests use it to build old databases).
pub fn migrate_to(conn: &mut Connection, version: u32) -> Result<(), StoreError> {
    let db = current_version(conn)?;
    if db > latest_version() {
        return Err(StoreError::TooNew {
            db,
            binary: latest_version(),
        });
    }
    let from = db;
    migrations()
        .to_version(conn, version as usize)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    if from != version {
        tracing::info!(from, to = version, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().expect("migrations apply to an empty database");
    }

    #[test]
    fn every_old_version_upgrades_with_its_data() {
        for old in 1..latest_version() {
            let mut conn = Connection::open_in_memory().expect("in-memory db");
            migrate_to(&mut conn, old).expect("old schema");
            conn.execute(
                "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s, holds_env)
                 VALUES ('alice', 3, './tests/', 'succeeded', '2026-01-01T00:00:00.000000+00:00', 60, 0)",
                [],
            )
            .expect("insert into old schema");
            conn.execute("INSERT INTO log_lines (run_id, line, text) VALUES (1, 0, 'hello')", [])
                .expect("insert line");
            migrate(&mut conn).expect("upgrade");
            assert_eq!(current_version(&conn).expect("version"), latest_version());
            let run = super::super::runs::get(&conn, 1).expect("query").expect("run kept");
            assert_eq!(run.username, "alice");
            assert_eq!(run.lines, 0); // line_count was 0 in the old row; the line itself is kept
            let lines = super::super::logs::read(&conn, 1, 0, 10).expect("read");
            assert_eq!(lines, ["hello"]);
        }
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().expect("in-memory db");
        conn.pragma_update(None, "user_version", 99).expect("set version");
        let err = migrate(&mut conn).expect_err("too new");
        let msg = err.to_string();
        assert!(
            msg.contains("99") && msg.contains(&latest_version().to_string()),
            "{msg}"
        );
    }
}

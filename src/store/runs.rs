//! Rows of the `runs` table. Status changes here are conditional updates that
//! the scheduler asks for; this file never decides which move is allowed.

use super::StoreError;
use crate::domain::{EnvHold, Run, RunId, RunStatus, Transition};
use rusqlite::{params, params_from_iter, types::Value, Connection, OptionalExtension, Row};

const COLUMNS: &str =
    "id, username, created_at, env_id, path, status, line_count, started_at, finished_at, exit_code, timeout_s, worker,
     priority, labels, queue_position, eta, lines_lost_from,
     summary, outcome, revision_commit, revision_dirty, rerun_of, select_ids, keyword, markers, results_note, logs_pruned";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Run> {
    let status: String = r.get(5)?;
    let lines: i64 = r.get(6)?;
    Ok(Run {
        id: r.get(0)?,
        username: r.get(1)?,
        created_at: r.get(2)?,
        env_id: r.get::<_, Option<u32>>(3)?.filter(|e| *e > 0),
        path: r.get(4)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Unknown),
        logs: lines > 0,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
        exit_code: r.get(9)?,
        timeout_s: r.get::<_, i64>(10)?.max(0) as u64,
        lines: lines.max(0) as u64,
        worker: r.get(11)?,
        priority: r.get(12)?,
        labels: r
            .get::<_, Option<String>>(13)?
            .and_then(|l| serde_json::from_str(&l).ok()),
        queue_position: r.get::<_, Option<i64>>(14)?.map(|p| p.max(0) as u64),
        eta: r.get(15)?,
        lines_lost_from: r.get::<_, Option<i64>>(16)?.map(|v| v.max(0) as u64),
        summary: r
            .get::<_, Option<String>>(17)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        outcome: r.get(18)?,
        revision: match (r.get::<_, Option<String>>(19)?, r.get::<_, Option<bool>>(20)?) {
            (Some(commit), dirty) => Some(crate::results::Revision {
                commit,
                dirty: dirty.unwrap_or(false),
            }),
            _ => None,
        },
        rerun_of: r.get(21)?,
        select: r
            .get::<_, Option<String>>(22)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        keyword: r.get(23)?,
        markers: r.get(24)?,
        results_note: r.get(25)?,
        logs_pruned: r.get(26)?,
    })
}

/// What a new run is made of.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub username: String,
    /// The environment it takes now (`created`), or waits for (`queued`; `None`
    /// while a label run waits for any that fits).
    pub env_id: Option<u32>,
    /// `created` (holding `env_id`) or `queued` (holding nothing).
    pub status: RunStatus,
    pub path: String,
    pub timeout_s: u64,
    pub created_at: String,
    pub priority: i32,
    pub labels: Option<Vec<String>>,
    /// A queued run still waiting then (ms since the epoch) ends cancelled.
    pub queue_deadline_ms: Option<i64>,
    /// What it asks pytest for besides the path, and the run it repeats.
    pub picks: Picks,
}

/// What a run asks pytest for besides its path, and the run it repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picks {
    pub select: Option<Vec<String>>,
    pub keyword: Option<String>,
    pub markers: Option<String>,
    pub rerun_of: Option<RunId>,
}

impl NewRun {
    /// A `created` run on `env_id` with nothing queue-related (tests, tools).
    pub fn created(username: &str, env_id: u32, path: &str, timeout_s: u64) -> NewRun {
        NewRun {
            username: username.into(),
            env_id: Some(env_id),
            status: RunStatus::Created,
            path: path.into(),
            timeout_s,
            created_at: crate::domain::run::now(),
            priority: 0,
            labels: None,
            queue_deadline_ms: None,
            picks: Picks::default(),
        }
    }
}

/// Inserts a run: `created` holding its environment (or `EnvBusy`, naming who
/// holds it), or `queued` holding none.
pub fn insert(conn: &Connection, new: &NewRun) -> Result<Run, StoreError> {
    let holds = new.status == RunStatus::Created;
    let env = new.env_id.unwrap_or(0);
    let labels = new
        .labels
        .as_ref()
        .map(|l| serde_json::Value::from(l.clone()).to_string());
    let res = conn.execute(
        "INSERT INTO runs (username, env_id, path, status, created_at, timeout_s, holds_env, priority, labels, queue_deadline_ms,
                           select_ids, keyword, markers, rerun_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            new.username,
            env,
            new.path,
            new.status.as_str(),
            new.created_at,
            new.timeout_s as i64,
            holds,
            new.priority,
            labels,
            new.queue_deadline_ms,
            new.picks
                .select
                .as_ref()
                .map(|l| serde_json::Value::from(l.clone()).to_string()),
            new.picks.keyword,
            new.picks.markers,
            new.picks.rerun_of
        ],
    );
    match res {
        Ok(_) => {
            let id = conn.last_insert_rowid();
            get(conn, id)?.ok_or(StoreError::NotFound(id))
        }
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            let run_id = env_holder(conn, env)?.unwrap_or(0);
            Err(StoreError::EnvBusy { env_id: env, run_id })
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

/// Records the process group of an embedded run.
pub fn set_process_group(conn: &Connection, id: RunId, pgid: i32, start: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET pgid = ?2, pgid_start = ?3 WHERE id = ?1",
        params![id, pgid, start as i64],
    )?;
    Ok(())
}

/// Carries out one move the scheduler checked: a single conditional update
/// that happens only while run `id` is still in `t.from` (and, for a claim,
/// still has that newest token). `now` stamps the start or the end.
/// False when the run was not there (someone else moved it first).
pub fn apply(conn: &Connection, id: RunId, t: &Transition, now: &str) -> Result<bool, StoreError> {
    let release = t.env == EnvHold::Release;
    let take = match t.env {
        EnvHold::Take(env) => Some(env),
        _ => None,
    };
    let claim = t.claim.as_ref();
    let n = conn
        .prepare_cached(
            "UPDATE runs SET status = ?3,
                holds_env = CASE WHEN ?4 THEN 0 WHEN ?12 IS NOT NULL THEN 1 ELSE holds_env END,
                env_id = COALESCE(?12, env_id),
                queue_position = NULL,
                eta = NULL,
                pgid = CASE WHEN ?4 THEN NULL ELSE pgid END,
                exit_code = COALESCE(?5, exit_code),
                started_at = CASE WHEN ?6 THEN ?8 ELSE started_at END,
                finished_at = CASE WHEN ?7 THEN ?8 ELSE finished_at END,
                worker = COALESCE(?9, worker),
                lease_until_ms = COALESCE(?10, lease_until_ms)
             WHERE id = ?1 AND status = ?2 AND (?11 IS NULL OR token_hash = ?11)",
        )?
        .execute(params![
            id,
            t.from.as_str(),
            t.to.as_str(),
            release,
            t.exit_code,
            t.starts(),
            t.to.is_finished(),
            now,
            claim.map(|c| c.worker.as_str()),
            claim.map(|c| c.lease_until_ms),
            claim.map(|c| c.token_hash.as_str()),
            take,
        ])?;
    Ok(n == 1)
}

/// The statuses that are finished (or, with `false`, those that are not) as
/// an SQL list of quoted names, for `status IN (…)`.
pub fn status_list(finished: bool) -> String {
    RunStatus::ALL
        .iter()
        .filter(|s| s.is_finished() == finished)
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Frees the environment of a run that already reached an end; records its
/// exit code if it had none. A run that can still move keeps what it holds.
pub fn release(conn: &Connection, id: RunId, exit_code: Option<i32>) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE runs SET holds_env = 0, exit_code = COALESCE(exit_code, ?2), pgid = NULL
         WHERE id = ?1 AND holds_env = 1 AND status NOT IN ({})",
        status_list(false)
    );
    let n = conn.prepare_cached(&sql)?.execute(params![id, exit_code])?;
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

//! Users, sessions and API tokens. Secrets arrive here already hashed (see
//! `auth::secret`); times are Unix milliseconds. Nothing here decides who may
//! do what: that is `auth`.

use super::StoreError;
use crate::auth::Role;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// An account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_ms: i64,
}

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.disabled, u.created_ms";

fn user_from(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        // The CHECK constraint keeps other names out; the weakest role if one got in.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: r.get::<_, i64>(3)? != 0,
        created_ms: r.get(4)?,
    })
}

/// How many accounts exist.
pub fn count_users(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

/// Adds an account; `None` if the name is taken.
pub fn add_user(
    conn: &Connection,
    name: &str,
    role: Role,
    password_hash: Option<&str>,
    now_ms: i64,
) -> Result<Option<User>, StoreError> {
    let n = conn.execute(
        "INSERT INTO users (name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO NOTHING",
        params![name, role.as_str(), password_hash, now_ms],
    )?;
    if n == 0 {
        return Ok(None);
    }
    user_by_name(conn, name)
}

/// The account named `name`.
pub fn user_by_name(conn: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([name], user_from).optional()?)
}

/// The account named `name` and its password hash (None for proxy accounts).
pub fn user_with_hash(conn: &Connection, name: &str) -> Result<Option<(User, Option<String>)>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([name], |r| Ok((user_from(r)?, r.get(5)?)))
        .optional()?)
}

/// Every account, by name.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name");
    let mut stmt = conn.prepare(&sql)?;
    let users = stmt.query_map([], user_from)?.collect::<Result<Vec<_>, _>>()?;
    Ok(users)
}

/// Sets an account's role; false if there is no such account.
pub fn set_role(conn: &Connection, name: &str, role: Role) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE users SET role = ?2 WHERE name = ?1",
        params![name, role.as_str()],
    )? > 0)
}

/// Disables (or enables) an account; disabling also ends its sessions (its
/// tokens stop working while it is disabled). False if there is no such account.
pub fn set_disabled(conn: &Connection, name: &str, disabled: bool) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE users SET disabled = ?2 WHERE name = ?1",
        params![name, i64::from(disabled)],
    )?;
    if n > 0 && disabled {
        conn.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            [name],
        )?;
    }
    Ok(n > 0)
}

/// Replaces an account's password hash and ends its sessions. False if there
/// is no such account.
pub fn set_password(conn: &Connection, name: &str, password_hash: &str) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE name = ?1",
        params![name, password_hash],
    )?;
    if n > 0 {
        conn.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            [name],
        )?;
    }
    Ok(n > 0)
}

/// Stores a new session (by its id's hash).
pub fn create_session(
    conn: &Connection,
    id_hash: &str,
    user_id: i64,
    now_ms: i64,
    expires_ms: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, created_ms, last_seen_ms, expires_ms) VALUES (?1, ?2, ?3, ?3, ?4)",
        params![id_hash, user_id, now_ms, expires_ms],
    )?;
    Ok(())
}

/// The enabled account a live session belongs to (neither past its absolute
/// end nor idle for `idle_ms`), and when it was last seen.
pub fn session_user(
    conn: &Connection,
    id_hash: &str,
    now_ms: i64,
    idle_ms: i64,
) -> Result<Option<(User, i64)>, StoreError> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, s.last_seen_ms FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = ?1 AND u.disabled = 0 AND s.expires_ms > ?2 AND s.last_seen_ms + ?3 > ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id_hash, now_ms, idle_ms], |r| Ok((user_from(r)?, r.get(5)?)))
        .optional()?)
}

/// Marks a session seen now.
pub fn touch_session(conn: &Connection, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sessions SET last_seen_ms = ?2 WHERE id_hash = ?1",
        params![id_hash, now_ms],
    )?;
    Ok(())
}

/// Ends one session.
pub fn delete_session(conn: &Connection, id_hash: &str) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?)
}

/// Ends every session of an account.
pub fn delete_user_sessions(conn: &Connection, user_id: i64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?)
}

/// Drops sessions past their absolute end (they can never be used again).
pub fn prune_sessions(conn: &Connection, now_ms: i64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now_ms])?)
}

/// An API token as its owner sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
}

const TOKEN_COLUMNS: &str = "t.id, t.user_id, t.name, t.created_ms, t.expires_ms, t.last_used_ms";

fn token_from(r: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        created_ms: r.get(3)?,
        expires_ms: r.get(4)?,
        last_used_ms: r.get(5)?,
    })
}

/// Stores a new token (by its hash).
pub fn create_token(
    conn: &Connection,
    user_id: i64,
    name: &str,
    hash: &str,
    now_ms: i64,
    expires_ms: i64,
) -> Result<Token, StoreError> {
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, hash, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, name, hash, now_ms, expires_ms],
    )?;
    Ok(Token {
        id: conn.last_insert_rowid(),
        user_id,
        name: name.to_string(),
        created_ms: now_ms,
        expires_ms,
        last_used_ms: None,
    })
}

/// The live token with this hash (not revoked, not expired, its owner
/// enabled) and its owner.
pub fn token_user(conn: &Connection, hash: &str, now_ms: i64) -> Result<Option<(Token, User)>, StoreError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.hash = ?1 AND t.revoked_ms IS NULL AND t.expires_ms > ?2 AND u.disabled = 0"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![hash, now_ms], |r| {
            let t = token_from(r)?;
            let role: String = r.get(8)?;
            let u = User {
                id: r.get(6)?,
                name: r.get(7)?,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                disabled: r.get::<_, i64>(9)? != 0,
                created_ms: r.get(10)?,
            };
            Ok((t, u))
        })
        .optional()?)
}

/// Whether token `id` still works (for open sockets that were let in with it).
pub fn token_live(conn: &Connection, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = ?1 AND t.revoked_ms IS NULL AND t.expires_ms > ?2 AND u.disabled = 0",
        )?
        .query_row(params![id, now_ms], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Marks a token used now.
pub fn touch_token(conn: &Connection, id: i64, now_ms: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
        params![id, now_ms],
    )?;
    Ok(())
}

/// An account's tokens that are not revoked, newest first (expired ones too).
pub fn list_tokens(conn: &Connection, user_id: i64) -> Result<Vec<Token>, StoreError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = ?1 AND t.revoked_ms IS NULL ORDER BY t.id DESC"
    );
    let mut stmt = conn.prepare(&sql)?;
    let tokens = stmt.query_map([user_id], token_from)?.collect::<Result<Vec<_>, _>>()?;
    Ok(tokens)
}

/// Token `id`, revoked or not.
pub fn get_token(conn: &Connection, id: i64) -> Result<Option<(Token, bool)>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS}, t.revoked_ms IS NOT NULL FROM api_tokens t WHERE t.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], |r| Ok((token_from(r)?, r.get(6)?)))
        .optional()?)
}

/// Revokes token `id`; false if it was already revoked or does not exist.
pub fn revoke_token(conn: &Connection, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
        params![id, now_ms],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().expect("db");
        super::super::migrate::migrate(&mut c).expect("schema");
        c
    }

    #[test]
    fn sessions_end_idle_absolute_disabled_or_deleted() {
        let c = db();
        let u = add_user(&c, "alice", Role::Runner, Some("h"), 0)
            .expect("add")
            .expect("new");
        assert!(
            add_user(&c, "alice", Role::Admin, None, 0).expect("add").is_none(),
            "taken"
        );
        create_session(&c, "s1", u.id, 1_000, 10_000).expect("session");
        assert!(session_user(&c, "s1", 1_500, 1_000).expect("q").is_some());
        assert!(session_user(&c, "s1", 2_000, 1_000).expect("q").is_none(), "idle");
        touch_session(&c, "s1", 9_000).expect("touch");
        assert!(session_user(&c, "s1", 9_500, 1_000).expect("q").is_some());
        assert!(
            session_user(&c, "s1", 10_000, 100_000).expect("q").is_none(),
            "absolute"
        );
        create_session(&c, "s2", u.id, 1_000, 10_000).expect("session");
        assert!(set_disabled(&c, "alice", true).expect("disable"));
        assert!(session_user(&c, "s2", 1_500, 1_000).expect("q").is_none(), "disabled");
        assert_eq!(delete_user_sessions(&c, u.id).expect("del"), 0, "disabling ended them");
    }

    #[test]
    fn tokens_work_until_revoked_or_expired() {
        let c = db();
        let u = add_user(&c, "bob", Role::Viewer, None, 0).expect("add").expect("new");
        let t = create_token(&c, u.id, "ci", "hash", 0, 100).expect("token");
        assert_eq!(
            token_user(&c, "hash", 50).expect("q").map(|(t, u)| (t.id, u.name)),
            Some((t.id, "bob".into()))
        );
        assert!(token_user(&c, "hash", 100).expect("q").is_none(), "expired");
        assert!(token_live(&c, t.id, 50).expect("q"));
        assert!(revoke_token(&c, t.id, 60).expect("revoke"));
        assert!(!revoke_token(&c, t.id, 61).expect("again"));
        assert!(token_user(&c, "hash", 70).expect("q").is_none(), "revoked");
        assert!(!token_live(&c, t.id, 70).expect("q"));
        assert!(list_tokens(&c, u.id).expect("list").is_empty());
    }
}

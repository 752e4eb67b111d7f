//! Credentials to accounts, against the store. Blocking: call in `web::block`.

use super::{secret, AuthConfig, Credential, Principal};
use crate::error::AppError;
use crate::store::{accounts, now_ms, Store};

/// How stale a session's `last_seen` or a token's `last_used` may get before
/// a request writes it again (at most once a minute, or a quarter of the idle limit).
const TOUCH_EVERY_MS: i64 = 60_000;

/// What a request presented.
#[derive(Debug, Default)]
pub struct Presented {
    /// `Authorization: Bearer …`.
    pub bearer: Option<String>,
    /// The session cookie's value.
    pub session: Option<String>,
    /// The trusted proxy's header (only when the peer is `--auth-proxy-from`).
    pub proxy_name: Option<String>,
}

impl Presented {
    /// Whether anything was presented at all.
    pub fn is_empty(&self) -> bool {
        self.bearer.is_none() && self.session.is_none() && self.proxy_name.is_none()
    }
}

fn principal(user: &accounts::User, credential: Credential) -> Principal {
    Principal {
        name: Some(user.name.clone()),
        user_id: Some(user.id),
        role: user.role,
        credential,
    }
}

fn idle_ms(cfg: &AuthConfig) -> i64 {
    i64::try_from(cfg.session_idle.as_millis()).unwrap_or(i64::MAX)
}

/// The account behind what was presented (a token first, then the proxy's
/// header, then the session), or `401 unauthenticated` saying what is wrong.
pub fn resolve(store: &Store, cfg: &AuthConfig, presented: &Presented) -> Result<Principal, AppError> {
    let conn = store.conn()?;
    let now = now_ms();
    if let Some(token) = &presented.bearer {
        let Some((t, user)) = accounts::token_user(&conn, &secret::digest(token), now)? else {
            return Err(AppError::Unauthenticated(
                "The API token is unknown, expired or revoked, or its account is disabled.".into(),
            ));
        };
        if t.last_used_ms.is_none_or(|at| now - at >= TOUCH_EVERY_MS) {
            accounts::touch_token(&conn, t.id, now)?;
        }
        return Ok(principal(&user, Credential::Token(t.id)));
    }
    if let Some(name) = &presented.proxy_name {
        if let Some(why) = crate::http::dto::name_error(name, 3, 80) {
            return Err(AppError::Unauthenticated(format!(
                "The proxy's user name is not a valid account name: {why}"
            )));
        }
        let user = match accounts::user_by_name(&conn, name)? {
            Some(u) => u,
            None => match accounts::add_user(&conn, name, cfg.proxy_role, None, now)? {
                Some(u) => {
                    super::audit::record(&conn, "proxy", "user.add", name, &format!("role {}", u.role))?;
                    tracing::info!(user = %name, role = %u.role, "account created for a user the proxy vouched for");
                    u
                }
                // Made by a concurrent first request meanwhile.
                None => {
                    accounts::user_by_name(&conn, name)?.ok_or_else(|| AppError::Internal("account vanished".into()))?
                }
            },
        };
        if user.disabled {
            return Err(AppError::Unauthenticated(format!("The account {name} is disabled.")));
        }
        return Ok(principal(&user, Credential::Proxy));
    }
    if let Some(session) = &presented.session {
        let hash = secret::digest(session);
        let Some((user, last_seen)) = accounts::session_user(&conn, &hash, now, idle_ms(cfg))? else {
            return Err(AppError::Unauthenticated(
                "Your session has ended (signed out, expired or disabled); sign in again.".into(),
            ));
        };
        if now - last_seen >= TOUCH_EVERY_MS.min(idle_ms(cfg) / 4) {
            accounts::touch_session(&conn, &hash, now)?;
        }
        return Ok(principal(&user, Credential::Session(hash)));
    }
    let why = if accounts::count_users(&conn)? == 0 {
        "Sign in first. No account exists yet: create the first admin with `testscheduler users add NAME --role admin`."
    } else {
        "Sign in first (POST /api/login), or send an API token as Authorization: Bearer TOKEN."
    };
    Err(AppError::Unauthenticated(why.into()))
}

/// Whether the credential `p` came in with still works (open sockets ask).
pub fn still_valid(store: &Store, cfg: &AuthConfig, p: &Principal) -> Result<bool, AppError> {
    let conn = store.conn()?;
    let now = now_ms();
    Ok(match &p.credential {
        Credential::Open => true,
        Credential::Token(id) => accounts::token_live(&conn, *id, now)?,
        Credential::Session(hash) => accounts::session_user(&conn, hash, now, idle_ms(cfg))?.is_some(),
        Credential::Proxy => match &p.name {
            Some(name) => accounts::user_by_name(&conn, name)?.is_some_and(|u| !u.disabled),
            None => false,
        },
    })
}

/// Why a sign-in failed (for the audit; the client only hears `invalid_credentials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownName,
    WrongPassword,
    Disabled,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownName => "unknown name",
            LoginFailure::WrongPassword => "wrong password",
            LoginFailure::Disabled => "account disabled",
        }
    }
}

/// Checks a name and password; on success starts a session and returns the
/// account and the session id (the cookie's value, never stored).
pub fn login(
    store: &Store,
    cfg: &AuthConfig,
    name: &str,
    password: &str,
) -> Result<Result<(accounts::User, String), LoginFailure>, AppError> {
    let found = accounts::user_with_hash(&*store.conn()?, name)?;
    let (user, hash) = match found {
        Some((user, Some(hash))) => (user, hash),
        Some((_, None)) | None => {
            secret::verify_nothing(password);
            return Ok(Err(LoginFailure::UnknownName));
        }
    };
    // The slow part, with no connection held.
    if !secret::verify_password(password, &hash) {
        return Ok(Err(LoginFailure::WrongPassword));
    }
    if user.disabled {
        return Ok(Err(LoginFailure::Disabled));
    }
    let id = secret::new_secret("");
    let now = now_ms();
    let max = i64::try_from(cfg.session_max.as_millis()).unwrap_or(i64::MAX);
    let conn = store.conn()?;
    accounts::prune_sessions(&conn, now)?;
    accounts::create_session(&conn, &secret::digest(&id), user.id, now, now.saturating_add(max))?;
    Ok(Ok((user, id)))
}

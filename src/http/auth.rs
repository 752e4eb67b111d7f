//! Handlers of the accounts API (PRODUCT.md "Accounts"; docs/accounts.md):
//! `POST /api/login`, `POST /api/logout`, `GET /api/me`, `/api/tokens…` and
//! `GET /api/audit`. Who may do what is asked of [`Principal::require`].

use super::dto;
use crate::auth::{self, audit, resolve, secret, Action, AuthMode, Principal, Role};
use crate::error::{AppError, FieldErrors};
use crate::state::AppState;
use crate::store::{accounts, now_ms};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// `GET /api/me` and the answer to a sign-in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The account; null under `--auth none`.
    pub username: Option<String>,
    pub role: Role,
    /// `none`, `local` or `proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<&'static str>,
}

/// An API token as its owner sees it (`GET /api/tokens`): never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub expires_at: String,
    /// Null until first used.
    pub last_used: Option<String>,
    pub expired: bool,
}

/// `POST /api/tokens` → 201: the only time the token itself is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    pub id: i64,
    pub name: String,
    pub token: String,
    pub expires_at: String,
}

/// One entry of `GET /api/audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

fn text_field(m: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> String {
    match m.get(key) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            errors
                .entry(key.into())
                .or_default()
                .push("Missing data for required field.".into());
            String::new()
        }
        Some(_) => {
            errors.entry(key.into()).or_default().push("Not a valid string.".into());
            String::new()
        }
    }
}

fn session_cookie(state: &AppState, value: &str, max_age_s: i64) -> String {
    cookie::Cookie::build((auth::SESSION_COOKIE, value.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(state.auth.config.secure_cookie)
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build()
        .to_string()
}

/// `POST /api/login` `{"username", "password"}` → `200 {"username", "role"}`
/// and the session cookie.
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let mode = state.auth.config.mode;
    if mode != AuthMode::Local {
        return Err(AppError::NotFound(format!(
            "Password sign-in is off: this server runs with --auth {}",
            mode.as_str()
        )));
    }
    let fields = dto::json_body(&req, payload).await?;
    let mut errors = FieldErrors::new();
    dto::unknown_fields(&fields, &["username", "password"], &mut errors);
    let name = text_field(&fields, "username", &mut errors);
    let password = text_field(&fields, "password", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let addr = req.peer_addr().map(|a| a.ip());
    state.auth.limiter.check(&name, addr).map_err(AppError::RateLimited)?;
    let st = state.clone().into_inner();
    let tried = name.clone();
    let outcome = web::block(move || {
        let outcome = resolve::login(&st.store, &st.auth.config, &tried, &password)?;
        if let Err(why) = outcome {
            // The name as tried (cut to a name's length), never the password.
            let target: String = tried.chars().take(80).collect();
            let from = addr.map(|a| a.to_string()).unwrap_or_else(|| "unknown".into());
            audit::after(
                &st.store,
                "anonymous",
                "login.failed",
                &target,
                &format!("{} from {from}", why.as_str()),
            );
        }
        Ok::<_, AppError>(outcome)
    })
    .await??;
    match outcome {
        Ok((user, session)) => {
            state.auth.limiter.succeeded(&name);
            tracing::info!(user = %user.name, "signed in");
            let max = i64::try_from(state.auth.config.session_max.as_secs()).unwrap_or(i64::MAX);
            Ok(HttpResponse::Ok()
                .insert_header((header::SET_COOKIE, session_cookie(&state, &session, max)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(Me {
                    username: Some(user.name),
                    role: user.role,
                    auth: None,
                }))
        }
        Err(why) => {
            state.auth.limiter.failed(&name, addr);
            tracing::warn!(peer = ?addr, reason = why.as_str(), "a sign-in failed");
            Err(AppError::InvalidCredentials)
        }
    }
}

/// `POST /api/logout` (optional body `{"everywhere": true}`: every session
/// of the account) → `200 {"sessions_ended": N}`; the cookie is cleared.
pub async fn logout(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let body = dto::read_body(payload).await?;
    let mut everywhere = false;
    if !body.is_empty() {
        let fields = dto::json_object(&req, &body)?;
        let mut errors = FieldErrors::new();
        dto::unknown_fields(&fields, &["everywhere"], &mut errors);
        match fields.get("everywhere") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => everywhere = *b,
            Some(_) => errors
                .entry("everywhere".into())
                .or_default()
                .push("Not a valid boolean.".into()),
        }
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
    }
    let store = state.store.clone();
    let p = principal.clone();
    let ended = web::block(move || -> Result<usize, AppError> {
        let conn = store.conn()?;
        Ok(match (&p.credential, p.user_id) {
            (_, Some(user)) if everywhere => accounts::delete_user_sessions(&conn, user)?,
            (auth::Credential::Session(hash), _) => accounts::delete_session(&conn, hash)?,
            _ => 0,
        })
    })
    .await??;
    if ended > 0 {
        state.auth.credentials_changed();
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, session_cookie(&state, "", 0)))
        .json(json!({ "sessions_ended": ended })))
}

/// `GET /api/me` → `{"username", "role", "auth"}`.
pub async fn me(principal: Principal, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Me {
            username: principal.name,
            role: principal.role,
            auth: Some(state.auth.config.mode.as_str()),
        })
}

/// `POST /api/tokens` `{"name", "expires_in_days"?}` → `201` with the token, shown once.
pub async fn create_token(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::OwnTokens)?;
    let fields = dto::json_body(&req, payload).await?;
    let mut errors = FieldErrors::new();
    dto::unknown_fields(&fields, &["name", "expires_in_days"], &mut errors);
    let name = text_field(&fields, "name", &mut errors);
    if let Some(e) = fields.get("name").and_then(|_| dto::name_error(&name, 1, 80)) {
        errors.entry("name".into()).or_default().push(e);
    }
    let days = dto::integer_field(&fields, "expires_in_days", false, &mut errors).unwrap_or(auth::DEFAULT_TOKEN_DAYS);
    if !(1..=auth::MAX_TOKEN_DAYS).contains(&days) {
        errors
            .entry("expires_in_days".into())
            .or_default()
            .push(format!("Must be 1 to {} days; got {days}.", auth::MAX_TOKEN_DAYS));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let user_id = principal
        .user_id
        .ok_or_else(|| AppError::Internal("an account without an id".into()))?;
    let store = state.store.clone();
    let created = web::block(move || -> Result<TokenCreated, AppError> {
        let token = secret::new_secret(auth::TOKEN_PREFIX);
        let now = now_ms();
        let expires = now.saturating_add(i64::try_from(days).unwrap_or(1) * 86_400_000);
        let conn = store.conn()?;
        let t = accounts::create_token(&conn, user_id, &name, &secret::digest(&token), now, expires)?;
        audit::record(
            &conn,
            principal.actor(),
            "token.create",
            principal.actor(),
            &format!("token {} ({name})", t.id),
        )?;
        Ok(TokenCreated {
            id: t.id,
            name: t.name,
            token,
            expires_at: auth::format_ms(expires),
        })
    })
    .await??;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(created))
}

/// `GET /api/tokens`: the caller's own tokens, never their secrets.
pub async fn list_tokens(principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    principal.require(Action::OwnTokens)?;
    let user_id = principal
        .user_id
        .ok_or_else(|| AppError::Internal("an account without an id".into()))?;
    let store = state.store.clone();
    let tokens = web::block(move || -> Result<Vec<TokenInfo>, AppError> {
        let now = now_ms();
        Ok(accounts::list_tokens(&*store.conn()?, user_id)?
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                created_at: auth::format_ms(t.created_ms),
                expires_at: auth::format_ms(t.expires_ms),
                last_used: t.last_used_ms.map(auth::format_ms),
                expired: t.expires_ms <= now,
            })
            .collect())
    })
    .await??;
    Ok(HttpResponse::Ok().json(tokens))
}

/// `DELETE /api/tokens/{id}`: revokes one of the caller's tokens (an admin's:
/// anyone's) → `204`. Sockets opened with it close at once.
pub async fn revoke_token(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::OwnTokens)?;
    let not_found = || AppError::NotFound(format!("Token {} not found", path.as_str()));
    let id = path.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(not_found)?;
    let store = state.store.clone();
    let p = principal.clone();
    let revoked = web::block(move || -> Result<bool, AppError> {
        let conn = store.conn()?;
        let Some((t, false)) = accounts::get_token(&conn, id)? else {
            return Ok(false);
        };
        if Some(t.user_id) != p.user_id && p.role != Role::Admin {
            return Ok(false);
        }
        if !accounts::revoke_token(&conn, id, now_ms())? {
            return Ok(false);
        }
        audit::record(&conn, p.actor(), "token.revoke", &format!("token {id}"), &t.name)?;
        Ok(true)
    })
    .await??;
    if !revoked {
        return Err(not_found());
    }
    state.auth.credentials_changed();
    Ok(HttpResponse::NoContent().finish())
}

/// Query of `GET /api/audit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// At most this many entries, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// `GET /api/audit?limit=N` (admins): newest first.
pub async fn audit_log(
    query: web::Query<AuditQuery>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::ReadAudit)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let store = state.store.clone();
    let entries = web::block(move || -> Result<Vec<AuditEntry>, AppError> {
        Ok(crate::store::audit::list(&*store.conn()?, limit)?
            .into_iter()
            .map(|e| AuditEntry {
                at: auth::format_ms(e.at_ms),
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect())
    })
    .await??;
    Ok(HttpResponse::Ok().json(entries))
}

//! The accounts endpoints (`super::auth`) in the OpenAPI document
//! (`crate::openapi`): request bodies the handlers read field by field, and
//! one operation stub per endpoint.

#![allow(dead_code)] // the functions exist only for their `#[utoipa::path]`

use super::auth::{AuditEntry, AuditQuery, Me, TokenCreated, TokenInfo};
use crate::openapi::ErrorBody;
use serde::Serialize;
use utoipa::ToSchema;

/// `POST /api/login`.
#[derive(Serialize, ToSchema)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// `POST /api/logout` (the body is optional).
#[derive(Serialize, ToSchema)]
pub struct LogoutBody {
    /// End every session of the account, not only this one.
    pub everywhere: Option<bool>,
}

/// The answer to `POST /api/logout`.
#[derive(Serialize, ToSchema)]
pub struct LoggedOut {
    pub sessions_ended: u64,
}

/// `POST /api/tokens`.
#[derive(Serialize, ToSchema)]
pub struct CreateTokenBody {
    /// What the token is for (1 to 80 characters).
    pub name: String,
    /// Days until it stops working (default 90, at most 3650).
    pub expires_in_days: Option<u64>,
}

/// Sign in with a password (`--auth local`): sets the session cookie
/// (HttpOnly, SameSite=Lax, Secure when --public-url is https).
#[utoipa::path(post, path = "/api/login", tag = "accounts", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in; the cookie testscheduler_session is set", body = Me),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 401, description = "invalid_credentials", body = ErrorBody),
        (status = 404, description = "not_found: no password sign-in in this --auth mode", body = ErrorBody),
        (status = 429, description = "rate_limited (Retry-After)", body = ErrorBody)))]
pub fn login() {}

/// End this session, or every session of the account.
#[utoipa::path(post, path = "/api/logout", tag = "accounts", request_body(content = Option<LogoutBody>),
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = LoggedOut),
        (status = 401, description = "unauthenticated", body = ErrorBody)))]
pub fn logout() {}

/// Who this is and in which mode the server runs.
#[utoipa::path(get, path = "/api/me", tag = "accounts",
    responses(
        (status = 200, body = Me),
        (status = 401, description = "unauthenticated", body = ErrorBody)))]
pub fn me() {}

/// Create an API token for the caller (with the caller's role), shown only here.
#[utoipa::path(post, path = "/api/tokens", tag = "accounts", request_body = CreateTokenBody,
    responses(
        (status = 201, body = TokenCreated),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 403, description = "forbidden (no account under --auth none)", body = ErrorBody)))]
pub fn create_token() {}

/// The caller's tokens, never their secrets.
#[utoipa::path(get, path = "/api/tokens", tag = "accounts",
    responses(
        (status = 200, body = Vec<TokenInfo>),
        (status = 401, description = "unauthenticated", body = ErrorBody)))]
pub fn list_tokens() {}

/// Revoke one of the caller's tokens (an admin: anyone's); sockets opened with it close.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "accounts", params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)))]
pub fn revoke_token() {}

/// Who did what, newest first (admins).
#[utoipa::path(get, path = "/api/audit", tag = "accounts", params(AuditQuery),
    responses(
        (status = 200, body = Vec<AuditEntry>),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 403, description = "forbidden", body = ErrorBody)))]
pub fn audit() {}

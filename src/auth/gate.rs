//! The middleware every request passes after the edge (`http::guard`): it
//! resolves the request to a [`Principal`] and refuses what needs one and
//! has none (`401 unauthenticated`). Handlers take the [`Principal`] as an
//! extractor and ask [`Principal::require`].
//!
//! Served without an account (with accounts on): `/healthz`, `/metrics`,
//! `POST /api/login`, the web app and its assets (any `GET`/`HEAD` outside
//! `/api` and `/ws`: the page asks `GET /api/me` what to show), and the
//! worker endpoints (`POST /api/testruns/{id}`, `POST /api/workers/heartbeat`),
//! which prove themselves with the run token and the worker secret.

use super::resolve::{self, Presented};
use super::{AuthConfig, AuthMode, Principal, SESSION_COOKIE};
use crate::error::AppError;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

/// Whether `method path` is served without an account.
pub fn exempt(method: &Method, path: &str) -> bool {
    let api = path == "/api" || path.starts_with("/api/");
    match (method, path) {
        (_, "/healthz" | "/metrics") => true,
        (&Method::POST, "/api/login" | "/api/workers/heartbeat") => true,
        (&Method::POST, p) => p
            .strip_prefix("/api/testruns/")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())),
        (&Method::GET | &Method::HEAD, p) => !api && p != "/ws",
        _ => false,
    }
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &header::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_string()).filter_map(Result::ok))
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The credentials `req` presents. The proxy's header counts only from
/// `--auth-proxy-from`; from anyone else it is ignored.
fn presented(req: &ServiceRequest, cfg: &AuthConfig) -> Presented {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let mut proxy_name = None;
    if cfg.mode == AuthMode::Proxy {
        if let Some(value) = headers.get(cfg.proxy_header.as_str()) {
            let peer = req.peer_addr().map(|a| a.ip());
            if peer.is_some() && peer == cfg.proxy_from {
                proxy_name = value
                    .to_str()
                    .ok()
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty());
            } else {
                tracing::warn!(peer = ?peer, header = %cfg.proxy_header, "ignored the proxy's user header from an address that is not --auth-proxy-from");
            }
        }
    }
    Presented {
        bearer,
        session: session_cookie(headers),
        proxy_name,
    }
}

/// The gate middleware (`actix_web::middleware::from_fn(gate)`).
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let cfg = &state.auth.config;
    if !cfg.accounts_on() {
        req.extensions_mut().insert(Principal::open());
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if exempt(req.method(), req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let presented = presented(&req, cfg);
    let store = state.store.clone();
    let auth = state.auth.clone();
    let found = web::block(move || resolve::resolve(&store, &auth.config, &presented))
        .await
        .map_err(AppError::from)
        .and_then(|r| r);
    match found {
        Ok(p) => {
            req.extensions_mut().insert(p);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = Ready<Result<Principal, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| AppError::Unauthenticated("Sign in first (POST /api/login).".into())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_endpoints_go_without_an_account() {
        for (m, p) in [
            (Method::GET, "/healthz"),
            (Method::GET, "/metrics"),
            (Method::POST, "/api/login"),
            (Method::POST, "/api/testruns/12"),
            (Method::POST, "/api/workers/heartbeat"),
            (Method::GET, "/"),
            (Method::GET, "/runs/3"),
            (Method::GET, "/assets/index-abc.js"),
            (Method::HEAD, "/login"),
        ] {
            assert!(exempt(&m, p), "{m} {p}");
        }
        for (m, p) in [
            (Method::GET, "/api/testruns"),
            (Method::POST, "/api/testruns"),
            (Method::GET, "/api/testruns/12"),
            (Method::POST, "/api/testruns/12/cancel"),
            (Method::GET, "/ws"),
            (Method::GET, "/api/me"),
            (Method::POST, "/api/logout"),
            (Method::GET, "/api"),
            (Method::POST, "/login"),
            (Method::DELETE, "/api/tokens/1"),
        ] {
            assert!(!exempt(&m, p), "{m} {p}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = header::HeaderMap::new();
        h.insert(
            header::COOKIE,
            header::HeaderValue::from_static("a=1; testscheduler_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, header::HeaderValue::from_static("a=1"));
        assert_eq!(session_cookie(&h), None);
    }
}

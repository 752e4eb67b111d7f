//! The edge: one middleware every request passes before its handler, holding
//! the rules of PRODUCT.md's "Hardening" that are about the request itself,
//! not about what it asks for.
//!
//! - `Host` (DNS rebinding): a server bound to a loopback address answers only
//!   to the loopback names, `--allowed-host` names and `--public-url`'s host;
//!   on another bind, any `Host` unless those flags are given. Else `421
//!   misdirected_request`.
//! - Cross-site requests: a state-changing method (POST, PUT, PATCH, DELETE)
//!   with an `Origin` of another site is `403 forbidden_origin` (the rule `/ws`
//!   applies to its handshake through [`foreign_origin`]); a body, if any, must
//!   be `application/json`. No `Origin` (a script) is served.
//! - A body must arrive within [`super::conn::BODY_TIMEOUT`], and a request
//!   head after the first on a connection within
//!   [`super::conn::NEXT_HEAD_TIMEOUT`] of the previous answer.
//! - Security headers on every response (CSP without inline script, no framing,
//!   `nosniff`, `Referrer-Policy`).

use super::conn::{ArmOnEnd, ReadDeadline, TimedBody};
use crate::config::{host_name, Config};
use crate::error::AppError;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use actix_web::HttpMessage;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

/// The `Host` names a server always answers to.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The headers every response carries. The web app loads only its own
/// scripts and styles; the ANSI colours of the log view are inline `style`
/// attributes, hence `'unsafe-inline'` for styles (never for scripts).
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
];

/// The edge's settings, built once from the [`Config`].
#[derive(Debug, Clone)]
pub struct EdgeRules {
    /// Whether `Host` is checked at all.
    restrict_hosts: bool,
    /// Allowed `Host` names, lowercase, without ports.
    hosts: Vec<String>,
    /// Whether any IP literal is an allowed `Host` (it cannot be rebound).
    ip_literals: bool,
    /// Origins besides the request's own whose pages may change things.
    origins: Vec<String>,
}

impl EdgeRules {
    /// The rules `config` asks for.
    pub fn new(config: &Config) -> EdgeRules {
        let loopback = config.bind.ip().is_loopback();
        let public_host = config.public_host();
        let restrict_hosts = loopback || !config.allowed_hosts.is_empty() || public_host.is_some();
        let mut hosts: Vec<String> = LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect();
        hosts.extend(config.allowed_hosts.iter().cloned());
        hosts.extend(public_host);
        let mut origins = config.allowed_origins.clone();
        if let Some(url) = &config.public_url {
            if let Some((scheme, rest)) = url.split_once("://") {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                origins.push(format!("{scheme}://{authority}"));
            }
        }
        EdgeRules {
            restrict_hosts,
            hosts,
            ip_literals: !loopback,
            origins,
        }
    }

    /// Whether a request for `host` (the `Host` header; `None` if absent) is served.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        if !self.restrict_hosts {
            return true;
        }
        let name = host_name(host);
        if self.hosts.contains(&name) {
            return true;
        }
        self.ip_literals
            && (name.parse::<Ipv4Addr>().is_ok()
                || name
                    .strip_prefix('[')
                    .and_then(|n| n.strip_suffix(']'))
                    .is_some_and(|n| n.parse::<Ipv6Addr>().is_ok()))
    }
}

/// The request's `Origin` if it is another site: not the host the request was
/// sent to, nor an allowed origin. `None` without an `Origin` (a script).
pub fn foreign_origin(headers: &HeaderMap, rules: &EdgeRules) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some(String::from_utf8_lossy(origin.as_bytes()).into_owned());
    };
    let trimmed = origin.trim_end_matches('/');
    if rules.origins.iter().any(|a| a.eq_ignore_ascii_case(trimmed)) {
        return None;
    }
    let authority = trimmed.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        None
    } else {
        Some(origin.to_string())
    }
}

fn changes_state(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Whether the request announces a body (a non-zero length, or chunks).
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING)
}

fn is_json(headers: &HeaderMap) -> bool {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
}

/// The checks on one request, in order; the first that fails answers.
fn check(req: &ServiceRequest, rules: &EdgeRules) -> Result<(), AppError> {
    let headers = req.headers();
    let host = match headers.get(header::HOST) {
        None => req.uri().authority().map(|a| a.as_str().to_string()),
        Some(v) => Some(v.to_str().unwrap_or("\u{fffd}").to_string()),
    };
    if !rules.host_allowed(host.as_deref()) {
        let host = host.unwrap_or_default();
        tracing::warn!(host = ?host, "refused a request for a Host this server does not answer to");
        return Err(AppError::MisdirectedRequest(format!(
            "This server does not answer to the host {host:?}; start it with --allowed-host or --public-url to add one."
        )));
    }
    if changes_state(req.method()) {
        if let Some(origin) = foreign_origin(headers, rules) {
            tracing::warn!(origin = ?origin, method = %req.method(), path = ?req.path(), "refused a request from another site");
            return Err(AppError::ForbiddenOrigin(format!(
                "Origin {origin} may not {} {}",
                req.method(),
                req.path()
            )));
        }
        if has_body(headers) && !is_json(headers) {
            return Err(AppError::field(
                "_schema",
                "The body must be JSON sent as Content-Type: application/json.",
            ));
        }
    }
    Ok(())
}

/// The edge middleware (`actix_web::middleware::from_fn(edge)`); reads its
/// [`EdgeRules`] from the app data.
pub async fn edge(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let deadline = req.conn_data::<Rc<ReadDeadline>>().cloned();
    if let Some(deadline) = &deadline {
        if has_body(req.headers()) {
            let body = TimedBody::new(req.take_payload(), deadline.clone());
            req.set_payload(Payload::from(Box::pin(body) as actix_http::BoxedPayloadStream));
        } else {
            deadline.disarm();
        }
    }
    let verdict = match req.app_data::<web::Data<EdgeRules>>() {
        Some(rules) => check(&req, rules),
        None => Ok(()),
    };
    let res = match verdict {
        Err(e) => req.error_response(e).map_into_right_body(),
        Ok(()) => next.call(req).await?.map_into_left_body(),
    };
    // Once this answer is out, the next request's head has its deadline too
    // (actix times out only a connection's first head).
    let mut res = match deadline {
        Some(deadline) if matches!(res.response().body().size(), BodySize::None | BodySize::Sized(0)) => {
            deadline.arm_next_head();
            res.map_body(|_, body| ArmOnEnd::new(body, None))
        }
        deadline => res.map_body(|_, body| ArmOnEnd::new(body, deadline)),
    };
    let headers = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn rules(extra: &[&str]) -> EdgeRules {
        let mut v = vec!["testscheduler"];
        v.extend_from_slice(extra);
        let args = crate::config::Cli::try_parse_from(v).expect("valid flags").serve;
        EdgeRules::new(&Config::from_args(args).expect("valid config"))
    }

    #[test]
    fn loopback_serves_loopback_names_and_those_given() {
        let r = rules(&["--allowed-host", "ts.example.com"]);
        for ok in [
            "localhost:8000",
            "127.0.0.1",
            "[::1]:1",
            "LOCALHOST",
            "ts.example.com:80",
        ] {
            assert!(r.host_allowed(Some(ok)), "{ok}");
        }
        for bad in ["evil.example", "localhost.evil.example", "10.0.0.1", "[::2]"] {
            assert!(!r.host_allowed(Some(bad)), "{bad}");
        }
    }

    #[test]
    fn other_binds_serve_every_host_unless_told() {
        let open = rules(&["--bind", "0.0.0.0:0"]);
        assert!(open.host_allowed(Some("anything.example")));
        let told = rules(&["--bind", "0.0.0.0:0", "--public-url", "https://ts.example.com/"]);
        assert!(told.host_allowed(Some("ts.example.com")));
        assert!(
            told.host_allowed(Some("10.1.2.3:8000")),
            "IP literals cannot be rebound"
        );
        assert!(!told.host_allowed(Some("evil.example")));
    }

    #[test]
    fn origin_is_same_host_or_allowed() {
        let r = rules(&[
            "--allowed-origin",
            "http://localhost:5173",
            "--public-url",
            "https://ts.example.com/x",
        ]);
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        assert_eq!(foreign_origin(&h, &r), None, "no Origin: a script");
        for (origin, foreign) in [
            ("http://127.0.0.1:8000", false),
            ("http://localhost:5173/", false),
            ("https://ts.example.com", false),
            ("http://127.0.0.1:8001", true),
            ("null", true),
            ("https://evil.example", true),
        ] {
            h.insert(header::ORIGIN, HeaderValue::from_static(origin));
            assert_eq!(foreign_origin(&h, &r).is_some(), foreign, "{origin}");
        }
    }
}

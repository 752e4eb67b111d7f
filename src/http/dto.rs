//! Request and query DTOs: the JSON body of `POST /api/testruns`, read field by
//! field so that every problem is named by its field (the seed's Marshmallow
//! messages), then validated with garde.

use crate::discovery::TestTree;
use crate::domain::catalog::valid_label;
use crate::domain::{Catalog, RunStatus};
use crate::error::{AppError, FieldErrors};
use crate::scheduler::Target;
use crate::store::runs::RunFilter;
use actix_web::HttpRequest;
use futures_util::StreamExt;
use garde::Validate;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

const MISSING: &str = "Missing data for required field.";

/// What a run is checked against.
pub struct CreateContext {
    pub envs: Arc<Catalog>,
    pub max_timeout: u64,
    pub tests: TestTree,
}

/// A `POST /api/testruns` body as read, each field checked on its own so
/// that every bad field is named in one answer.
#[derive(Debug, Validate, utoipa::ToSchema)]
#[schema(as = CreateRun)]
#[garde(context(CreateContext))]
pub struct CreateRunBody {
    #[garde(inner(custom(valid_username)))]
    username: Option<String>,
    #[garde(inner(custom(valid_env)))]
    env_id: Option<u32>,
    #[garde(inner(custom(valid_labels)))]
    labels: Option<Vec<String>>,
    #[garde(inner(custom(valid_path)))]
    path: Option<String>,
    #[garde(custom(valid_timeout))]
    timeout_s: Option<u64>,
    #[garde(skip)]
    #[schema(required = false)]
    wait: bool,
    #[garde(inner(range(min = -10, max = 10)))]
    priority: Option<i64>,
    #[garde(inner(range(min = 1)))]
    queue_timeout_s: Option<u64>,
    /// pytest's `-k`: 1…200 printable characters, not starting with `-`.
    #[garde(inner(custom(valid_expression)))]
    keyword: Option<String>,
    /// pytest's `-m`: 1…200 printable characters, not starting with `-`.
    #[garde(inner(custom(valid_expression)))]
    markers: Option<String>,
}

/// A valid `POST /api/testruns` body.
#[derive(Debug)]
pub struct CreateRun {
    pub username: String,
    pub target: Target,
    pub path: String,
    pub timeout_s: Option<u64>,
    pub wait: bool,
    pub priority: i32,
    pub queue_timeout_s: Option<u64>,
    pub keyword: Option<String>,
    pub markers: Option<String>,
}

fn valid_expression(v: &str, _: &CreateContext) -> garde::Result {
    crate::results::args::valid_expression(v).map_err(garde::Error::new)
}

fn valid_username(v: &str, _: &CreateContext) -> garde::Result {
    if !(3..=80).contains(&v.chars().count()) {
        return Err(garde::Error::new("Length must be between 3 and 80."));
    }
    plain_text(v).map_err(garde::Error::new)
}

/// Whether `c` may not appear in a name or any short text a user gives
/// (it would rewrite a terminal or a log line, or reorder what is shown):
/// a control character (C0, DEL, C1) or a bidi embedding, override or
/// isolate (U+202A–U+202E, U+2066–U+2069).
pub fn forbidden_char(c: char) -> bool {
    c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The one rule for the text fields PRODUCT.md lists under "Hardening"
/// (`username`, `note`, `reason`, a token's `name`, a worker's `id` and
/// `host`, ...): no [`forbidden_char`]. The error is the field's message.
pub fn plain_text(v: &str) -> Result<(), String> {
    match v.chars().find(|c| forbidden_char(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "Must not contain control or bidirectional-override characters (found U+{:04X}).",
            c as u32
        )),
    }
}

/// `text` with every [`forbidden_char`] written as `\u{..}`, for the server's log.
pub fn escape_for_log(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(forbidden_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if forbidden_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn valid_env(v: &u32, ctx: &CreateContext) -> garde::Result {
    if ctx.envs.contains(*v) {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "Not a valid environment: use one of {}.",
            ctx.envs.describe()
        )))
    }
}

fn valid_labels(v: &[String], ctx: &CreateContext) -> garde::Result {
    if !(1..=10).contains(&v.len()) {
        return Err(garde::Error::new("Give 1 to 10 labels."));
    }
    if let Some(bad) = v.iter().find(|l| !valid_label(l)) {
        return Err(garde::Error::new(format!(
            "{bad:?} is not a label: [a-z0-9][a-z0-9._-]{{0,31}}."
        )));
    }
    if let Some(unknown) = v.iter().find(|l| !ctx.envs.has_label(l)) {
        return Err(garde::Error::new(format!("No environment has the label {unknown:?}.")));
    }
    if ctx.envs.fitting(v).is_empty() {
        return Err(garde::Error::new("No single environment has all of these labels."));
    }
    Ok(())
}

/// A discovered path, or a node id whose file part is a discovered file
/// (`./tests/test_a.py::TestX::test_y[1]`).
fn valid_path(v: &str, ctx: &CreateContext) -> garde::Result {
    if let Some((file, rest)) = v.split_once("::") {
        let file_ok = !file.ends_with('/') && ctx.tests.contains(file);
        if !file_ok {
            return Err(garde::Error::new(
                "Not a node id of a discovered test file (see GET /api/tests).",
            ));
        }
        if rest.is_empty() || rest.chars().count() > 1000 || rest.starts_with(':') {
            return Err(garde::Error::new("Not a node id: FILE::NAME, at most 1000 characters."));
        }
        return plain_text(rest).map_err(garde::Error::new);
    }
    if ctx.tests.contains(v) {
        Ok(())
    } else {
        Err(garde::Error::new("Not a discovered test path (see GET /api/tests)."))
    }
}

fn valid_timeout(v: &Option<u64>, ctx: &CreateContext) -> garde::Result {
    match v {
        Some(0) => Err(garde::Error::new("Must be a positive number of seconds.")),
        Some(t) if *t > ctx.max_timeout => Err(garde::Error::new(format!(
            "Must be at most {} seconds (the server's maximum).",
            ctx.max_timeout
        ))),
        _ => Ok(()),
    }
}

/// Reads a request body, refusing more than [`MAX_BODY`] bytes.
pub async fn read_body(mut payload: actix_web::web::Payload) -> Result<Vec<u8>, AppError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::field("_schema", format!("Could not read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(AppError::BodyTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a body (at most [`MAX_BODY`]) that must be a JSON object sent as JSON.
pub async fn json_body(req: &HttpRequest, payload: actix_web::web::Payload) -> Result<Map<String, Value>, AppError> {
    let body = read_body(payload).await?;
    json_object(req, &body)
}

/// Parses a JSON object body: the content type must be JSON, the body an object.
pub fn json_object(req: &HttpRequest, body: &[u8]) -> Result<Map<String, Value>, AppError> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" {
        return Err(AppError::field(
            "_schema",
            "The body must be JSON sent as Content-Type: application/json.",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AppError::field(
            "_schema",
            "Invalid input type: the body must be a JSON object.",
        )),
        Err(e) => Err(AppError::field("_schema", format!("Invalid JSON: {e}"))),
    }
}

/// Names every key of `m` outside `allowed` as an unknown field.
pub fn unknown_fields(m: &Map<String, Value>, allowed: &[&str], errors: &mut FieldErrors) {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            errors.entry(k.clone()).or_default().push("Unknown field.".into());
        }
    }
}

fn string_field(m: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<String> {
    match m.get(key) {
        None | Some(Value::Null) => {
            errors.entry(key.into()).or_default().push(MISSING.into());
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.entry(key.into()).or_default().push("Not a valid string.".into());
            None
        }
    }
}

/// An integer given as a JSON number or a string of digits (as the seed took it).
pub fn integer_field(m: &Map<String, Value>, key: &str, required: bool, errors: &mut FieldErrors) -> Option<u64> {
    let v = match m.get(key) {
        None | Some(Value::Null) => {
            if required {
                errors.entry(key.into()).or_default().push(MISSING.into());
            }
            return None;
        }
        Some(v) => v,
    };
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
                .map(|f| f as u64)
        }),
        Value::String(s) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            s.trim().parse().ok()
        }
        _ => None,
    };
    if n.is_none() {
        let msg = match v {
            Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => "Must be greater than or equal to 1.",
            _ => "Not a valid integer.",
        };
        errors.entry(key.into()).or_default().push(msg.into());
    }
    n
}

/// A boolean field; absent means `false`.
pub fn bool_field(m: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors
                .entry(key.into())
                .or_default()
                .push("Not a valid boolean.".into());
            false
        }
    }
}

/// A signed integer field (a JSON number or a string of digits with an optional sign).
fn signed_field(m: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<i64> {
    let v = m.get(key)?;
    let n = match v {
        Value::Null => return None,
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    if n.is_none() {
        errors
            .entry(key.into())
            .or_default()
            .push("Not a valid integer.".into());
    }
    n
}

/// A string field that may be absent or null.
pub fn optional_string_field(m: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<String> {
    match m.get(key) {
        None | Some(Value::Null) => None,
        Some(_) => string_field(m, key, errors),
    }
}

/// A list of strings.
pub fn string_list_field(m: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<Vec<String>> {
    match m.get(key)? {
        Value::Null => None,
        Value::Array(items) => {
            let strings: Option<Vec<String>> = items.iter().map(|i| i.as_str().map(String::from)).collect();
            if strings.is_none() {
                errors
                    .entry(key.into())
                    .or_default()
                    .push("Not a list of strings.".into());
            }
            strings
        }
        _ => {
            errors.entry(key.into()).or_default().push("Not a valid list.".into());
            None
        }
    }
}

/// Reads and validates a `POST /api/testruns` body: every bad field is
/// named in one answer. Blocking (may rescan the tests tree).
pub fn parse_create(m: &Map<String, Value>, ctx: &CreateContext) -> Result<CreateRun, AppError> {
    let mut errors = FieldErrors::new();
    unknown_fields(
        m,
        &[
            "username",
            "env_id",
            "labels",
            "path",
            "timeout_s",
            "wait",
            "priority",
            "queue_timeout_s",
            "keyword",
            "markers",
        ],
        &mut errors,
    );
    let username = string_field(m, "username", &mut errors);
    let labels = string_list_field(m, "labels", &mut errors);
    let env_given = !matches!(m.get("env_id"), None | Some(Value::Null));
    let env_id = integer_field(m, "env_id", labels.is_none() && !m.contains_key("labels"), &mut errors);
    if env_given && m.get("labels").is_some_and(|l| !l.is_null()) {
        errors
            .entry("labels".into())
            .or_default()
            .push("Give env_id or labels, not both.".into());
    }
    let path = string_field(m, "path", &mut errors);
    let timeout_s = integer_field(m, "timeout_s", false, &mut errors);
    let wait = bool_field(m, "wait", &mut errors);
    let priority = signed_field(m, "priority", &mut errors);
    let queue_timeout_s = integer_field(m, "queue_timeout_s", false, &mut errors);
    let keyword = optional_string_field(m, "keyword", &mut errors);
    let markers = optional_string_field(m, "markers", &mut errors);
    let env_id = env_id.and_then(|e| match u32::try_from(e) {
        Ok(e) => Some(e),
        Err(_) => {
            errors
                .entry("env_id".into())
                .or_default()
                .push(format!("Not a valid environment: use one of {}.", ctx.envs.describe()));
            None
        }
    });
    let body = CreateRunBody {
        username,
        env_id,
        labels,
        path,
        timeout_s,
        wait,
        priority,
        queue_timeout_s,
        keyword,
        markers,
    };
    if let Err(report) = body.validate_with(ctx) {
        for (path, err) in report.iter() {
            // `inner` rules report `field[0]`-like paths for lists: name the field.
            let field = path.to_string();
            let field = field.split(['[', '.']).next().unwrap_or(&field).to_string();
            let list = errors.entry(field).or_default();
            let msg = err.message().to_string();
            if !list.contains(&msg) {
                list.push(msg);
            }
        }
    }
    let target = match (body.env_id, body.labels) {
        (Some(env), None) => Some(Target::Env(env)),
        (None, Some(labels)) => Some(Target::Labels(labels)),
        _ => None,
    };
    match (errors.is_empty(), body.username, target, body.path) {
        (true, Some(username), Some(target), Some(path)) => Ok(CreateRun {
            username,
            target,
            path,
            timeout_s: body.timeout_s,
            wait: body.wait,
            priority: body.priority.unwrap_or(0) as i32,
            queue_timeout_s: body.queue_timeout_s,
            keyword: body.keyword,
            markers: body.markers,
        }),
        _ => Err(AppError::Validation(errors)),
    }
}

/// Checks a name field: `min..=max` characters, none of them control or
/// bidi-override characters (they would reach logs and pages as is).
pub fn name_error(v: &str, min: usize, max: usize) -> Option<String> {
    if !(min..=max).contains(&v.chars().count()) {
        return Some(format!("Length must be between {min} and {max}."));
    }
    if v.chars()
        .any(|c| c.is_control() || crate::domain::catalog::is_bidi_control(c))
    {
        return Some("Control and bidi-override characters are not allowed.".into());
    }
    None
}

/// A valid `POST /api/envs/{id}/reservations` body.
#[derive(Debug)]
pub struct CreateReservation {
    pub username: String,
    pub duration_s: u64,
    pub note: String,
    pub wait: bool,
}

/// Reads and validates a reservation body; every bad field is named at once.
pub fn parse_reservation(m: &Map<String, Value>, max_duration: u64) -> Result<CreateReservation, AppError> {
    let mut errors = FieldErrors::new();
    unknown_fields(m, &["username", "duration_s", "note", "wait"], &mut errors);
    let username = string_field(m, "username", &mut errors);
    if let Some(e) = username.as_deref().and_then(|u| name_error(u, 3, 80)) {
        errors.entry("username".into()).or_default().push(e);
    }
    let duration_s = integer_field(m, "duration_s", true, &mut errors);
    if let Some(d) = duration_s.filter(|d| !(10..=max_duration).contains(d)) {
        errors.entry("duration_s".into()).or_default().push(format!(
            "Must be 10 to {max_duration} seconds (--max-reservation); got {d}."
        ));
    }
    let note = match m.get("note") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(n)) => {
            if let Some(e) = name_error(n, 0, 500) {
                errors.entry("note".into()).or_default().push(e);
            }
            n.clone()
        }
        Some(_) => {
            errors
                .entry("note".into())
                .or_default()
                .push("Not a valid string.".into());
            String::new()
        }
    };
    let wait = bool_field(m, "wait", &mut errors);
    match (errors.is_empty(), username, duration_s) {
        (true, Some(username), Some(duration_s)) => Ok(CreateReservation {
            username,
            duration_s,
            note,
            wait,
        }),
        _ => Err(AppError::Validation(errors)),
    }
}

/// Reads a `PATCH /api/reservations/{id}` body: the new end.
pub fn parse_until(m: &Map<String, Value>) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
    let mut errors = FieldErrors::new();
    unknown_fields(m, &["until"], &mut errors);
    let until = string_field(m, "until", &mut errors).and_then(|u| match chrono::DateTime::parse_from_rfc3339(&u) {
        Ok(t) => Some(t.with_timezone(&chrono::Utc)),
        Err(_) => {
            errors
                .entry("until".into())
                .or_default()
                .push("Not an RFC 3339 moment such as 2026-12-01T14:30:00+00:00.".into());
            None
        }
    });
    match (errors.is_empty(), until) {
        (true, Some(t)) => Ok(t),
        _ => Err(AppError::Validation(errors)),
    }
}

/// Query of `GET /api/testruns`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub before: Option<String>,
    pub user: Option<String>,
    pub env_id: Option<String>,
    pub status: Option<String>,
    pub path: Option<String>,
}

impl ListQuery {
    /// Checks the query; each bad parameter is named.
    pub fn into_filter(self) -> Result<RunFilter, AppError> {
        let mut errors = FieldErrors::new();
        let mut num = |key: &str, v: &Option<String>, max: u64| -> Option<u64> {
            let v = v.as_deref()?;
            match v.parse::<u64>() {
                Ok(n) if n >= 1 && n <= max => Some(n),
                _ => {
                    errors
                        .entry(key.into())
                        .or_default()
                        .push(format!("Must be an integer from 1 to {max}."));
                    None
                }
            }
        };
        let limit = num("limit", &self.limit, 10_000).and_then(|n| u32::try_from(n).ok());
        let before = num("before", &self.before, i64::MAX as u64).and_then(|n| i64::try_from(n).ok());
        let env_id = num("env_id", &self.env_id, u32::MAX as u64).and_then(|n| u32::try_from(n).ok());
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => match RunStatus::parse(s) {
                Some(st) => Some(st),
                None => {
                    let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                    errors
                        .entry("status".into())
                        .or_default()
                        .push(format!("Must be one of: {}.", names.join(", ")));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        Ok(RunFilter {
            limit,
            before,
            user: self.user.filter(|s| !s.is_empty()),
            env_id,
            status,
            path_prefix: self.path.filter(|s| !s.is_empty()),
        })
    }
}

/// Query of `GET /api/testruns/{id}/lines`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinesQuery {
    pub from: Option<u64>,
    pub limit: Option<u32>,
}

/// Query of `GET /api/testruns/{id}/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    pub q: Option<String>,
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> (tempfile::TempDir, CreateContext) {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
        std::fs::write(dir.path().join("tests/test_a.py"), "").expect("write");
        let tests = TestTree::new(dir.path(), std::path::Path::new("tests"));
        let envs = Arc::new(Catalog::Ids(crate::domain::EnvSet::parse("1-100").expect("envs")));
        (
            dir,
            CreateContext {
                envs,
                max_timeout: 600,
                tests,
            },
        )
    }

    fn errors(v: Value) -> FieldErrors {
        let (_d, c) = ctx();
        let m = v.as_object().expect("object").clone();
        match parse_create(&m, &c) {
            Err(AppError::Validation(e)) => e,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_digit_string_env() {
        let (_d, c) = ctx();
        let m = json!({"username": "alice", "env_id": "7", "path": "./tests/test_a.py"});
        let run = parse_create(m.as_object().expect("object"), &c).expect("valid");
        assert_eq!(run.target, Target::Env(7));
    }

    #[test]
    fn refuses_control_and_bidi_characters_in_username() {
        for bad in [
            "al\nice",
            "al\rice",
            "al\u{1b}[2Jice",
            "al\u{7f}ice",
            "al\u{85}ice",
            "al\u{202e}ice",
            "al\u{2066}ice",
        ] {
            let e = errors(json!({"username": bad, "env_id": 1, "path": "./tests/"}));
            assert_eq!(e.keys().collect::<Vec<_>>(), ["username"], "{bad:?}");
            assert!(e["username"][0].contains("control"), "{e:?}");
        }
        let (_d, c) = ctx();
        let m = json!({"username": "Zoë 李 O'Brien", "env_id": 1, "path": "./tests/"});
        parse_create(m.as_object().expect("object"), &c).expect("plain unicode is fine");
    }

    #[test]
    fn log_escaping_keeps_plain_text_and_spells_out_the_rest() {
        assert_eq!(escape_for_log("plain ü"), "plain ü");
        assert_eq!(escape_for_log("a\nb\u{1b}c\u{202e}"), "a\\u{a}b\\u{1b}c\\u{202e}");
    }

    #[test]
    fn names_each_bad_field() {
        let e = errors(json!({"username": "al", "env_id": 101, "path": "./tests/nope.py", "timeout": 5}));
        assert_eq!(e.keys().collect::<Vec<_>>(), ["env_id", "path", "timeout", "username"]);
        let e = errors(json!({}));
        assert_eq!(e["username"], [MISSING]);
        assert_eq!(e["env_id"], [MISSING]);
        let e = errors(json!({"username": "alice", "env_id": "x1", "path": "./tests/", "timeout_s": 100000}));
        assert!(e.contains_key("env_id"));
        let e = errors(json!({"username": "alice", "env_id": 1, "path": "./tests/", "timeout_s": 100000}));
        assert_eq!(e.keys().collect::<Vec<_>>(), ["timeout_s"]);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let e = errors(json!({"username": 123, "env_id": 9999, "path": "/"}));
        assert_eq!(e.keys().collect::<Vec<_>>(), ["env_id", "path", "username"]);
        let e = errors(json!({"username": ""}));
        assert_eq!(e.keys().collect::<Vec<_>>(), ["env_id", "path", "username"]);
        assert_eq!(e["username"], ["Length must be between 3 and 80."]);
        let e = errors(
            json!({"username": "alice", "env_id": 1, "labels": ["a"], "path": "./tests/", "priority": 11, "wait": "yes", "queue_timeout_s": 0}),
        );
        assert_eq!(
            e.keys().collect::<Vec<_>>(),
            ["labels", "priority", "queue_timeout_s", "wait"]
        );
        let e = errors(json!({"username": "alice", "labels": ["gpu"], "path": "./tests/"}));
        assert!(e["labels"][0].contains("No environment has the label"), "{e:?}");
    }
}

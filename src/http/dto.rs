//! Request and query DTOs: the JSON body of `POST /api/testruns`, read field by
//! field so that every problem is named by its field (the seed's Marshmallow
//! messages), then validated with garde.

use crate::discovery::TestTree;
use crate::domain::{EnvSet, RunStatus};
use crate::error::{AppError, FieldErrors};
use crate::store::runs::RunFilter;
use actix_web::HttpRequest;
use futures_util::StreamExt;
use garde::Validate;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

const MISSING: &str = "Missing data for required field.";

/// What a run is checked against.
pub struct CreateContext {
    pub envs: EnvSet,
    pub max_timeout: u64,
    pub tests: TestTree,
}

/// A valid `POST /api/testruns` body.
#[derive(Debug, Validate, utoipa::ToSchema)]
#[garde(context(CreateContext))]
pub struct CreateRun {
    #[garde(custom(valid_username))]
    pub username: String,
    #[garde(custom(valid_env))]
    pub env_id: u32,
    #[garde(custom(valid_path))]
    pub path: String,
    #[garde(custom(valid_timeout))]
    pub timeout_s: Option<u64>,
}

fn valid_username(v: &str, _: &CreateContext) -> garde::Result {
    if (3..=80).contains(&v.chars().count()) {
        Ok(())
    } else {
        Err(garde::Error::new("Length must be between 3 and 80."))
    }
}

fn valid_env(v: &u32, ctx: &CreateContext) -> garde::Result {
    if ctx.envs.contains(*v) {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "Not a valid environment: use one of {}.",
            ctx.envs
        )))
    }
}

fn valid_path(v: &str, ctx: &CreateContext) -> garde::Result {
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

/// Reads and validates a `POST /api/testruns` body. Blocking (may rescan the tests tree).
pub fn parse_create(m: &Map<String, Value>, ctx: &CreateContext) -> Result<CreateRun, AppError> {
    let mut errors = FieldErrors::new();
    unknown_fields(m, &["username", "env_id", "path", "timeout_s"], &mut errors);
    let username = string_field(m, "username", &mut errors);
    let env_id = integer_field(m, "env_id", true, &mut errors);
    let path = string_field(m, "path", &mut errors);
    let timeout_s = integer_field(m, "timeout_s", false, &mut errors);
    let env_id = env_id.and_then(|e| match u32::try_from(e) {
        Ok(e) => Some(e),
        Err(_) => {
            errors
                .entry("env_id".into())
                .or_default()
                .push(format!("Not a valid environment: use one of {}.", ctx.envs));
            None
        }
    });
    let (Some(username), Some(env_id), Some(path)) = (username, env_id, path) else {
        return Err(AppError::Validation(errors));
    };
    let run = CreateRun {
        username,
        env_id,
        path,
        timeout_s,
    };
    if let Err(report) = run.validate_with(ctx) {
        for (path, err) in report.iter() {
            errors
                .entry(path.to_string())
                .or_default()
                .push(err.message().to_string());
        }
    }
    if errors.is_empty() {
        Ok(run)
    } else {
        Err(AppError::Validation(errors))
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
        let limit = num("limit", &self.limit, 10_000).map(|n| n as u32);
        let before = num("before", &self.before, i64::MAX as u64).map(|n| n as i64);
        let env_id = num("env_id", &self.env_id, u32::MAX as u64).map(|n| n as u32);
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
        let envs = EnvSet::parse("1-100").expect("envs");
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
        assert_eq!(run.env_id, 7);
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
}

//! The OpenAPI document (src/openapi.rs, committed as
//! web/src/lib/api/openapi.json, and the source of the web app's TypeScript
//! types) against what the real server answers: every field an answer carries
//! is declared with its type, and every required field is there. Several
//! answers are still written with `json!`, so this is what keeps their
//! schemas, and the web types made from them, true.

use crate::helpers::spawn_app;
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) fn document() -> Value {
    serde_json::from_str(&testscheduler::openapi::document_json()).expect("the document is JSON")
}

/// The schema of the JSON answer `status` of `method path` in the document.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "the document has no JSON answer {status} for {method} {path}"
    );
    schema
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Problems of `v` against `schema` (a small JSON Schema subset: `$ref`,
/// `oneOf`, `type`, `enum`, `properties`, `required`, `items`,
/// `additionalProperties`); objects may not carry undeclared fields.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(doc, &doc["components"]["schemas"][name], v, at, out);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let fits = options.iter().any(|o| {
            let mut errs = Vec::new();
            check(doc, o, v, at, &mut errs);
            errs.is_empty()
        });
        if !fits {
            out.push(format!("{at}: {v} fits no oneOf branch"));
        }
        return;
    }
    let actual = type_of(v);
    let allowed: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fits = allowed.is_empty() || allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
    if !fits {
        out.push(format!("{at}: {actual} where the schema says {allowed:?}"));
        return;
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            out.push(format!("{at}: {v} is not one of {values:?}"));
        }
    }
    match v {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            for key in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(key) {
                    out.push(format!("{at}: required field {key} is missing"));
                }
            }
            for (key, value) in map {
                let field = format!("{at}.{key}");
                match props.and_then(|p| p.get(key)) {
                    Some(s) => check(doc, s, value, &field, out),
                    None if schema["additionalProperties"].is_object() => {
                        check(doc, &schema["additionalProperties"], value, &field, out)
                    }
                    None => out.push(format!("{field}: not declared in the schema")),
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

pub(crate) fn assert_fits(doc: &Value, method: &str, path: &str, status: u16, got: (u16, Value)) {
    let (got_status, body) = got;
    assert_eq!(got_status, status, "{method} {path}: {body}");
    let mut problems = Vec::new();
    check(
        doc,
        response_schema(doc, method, path, status),
        &body,
        "$",
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "{method} {path} {status} does not fit the OpenAPI document (src/openapi.rs):\n{}\nbody: {body}",
        problems.join("\n")
    );
}

#[test]
fn the_servers_answers_fit_the_openapi_document() {
    let doc = document();
    let app = spawn_app();
    let run = app.queue(3, "./tests/test_quick.py");
    assert_fits(&doc, "post", "/api/testruns", 201, (201, run.clone()));
    let id = run["id"].as_i64().expect("id");
    let done = app.wait_finished(id, Duration::from_secs(60));
    assert_eq!(done["status"], "succeeded", "{done}");

    assert_fits(
        &doc,
        "get",
        "/api/testruns/{id}",
        200,
        app.get(&format!("/api/testruns/{id}")),
    );
    assert_fits(&doc, "get", "/api/testruns", 200, app.get("/api/testruns"));
    assert_fits(
        &doc,
        "get",
        "/api/testruns",
        200,
        app.get("/api/testruns?limit=5&status=succeeded"),
    );
    assert_fits(&doc, "get", "/api/tests", 200, app.get("/api/tests"));
    assert_fits(&doc, "get", "/api/envs", 200, app.get("/api/envs"));
    assert_fits(&doc, "get", "/api/workers", 200, app.get("/api/workers"));
    assert_fits(&doc, "get", "/healthz", 200, app.get("/healthz"));
    let lines = format!("/api/testruns/{id}/lines");
    assert_fits(
        &doc,
        "get",
        "/api/testruns/{id}/lines",
        200,
        app.get(&format!("{lines}?from=0&limit=3")),
    );
    assert_fits(
        &doc,
        "get",
        "/api/testruns/{id}/lines",
        200,
        app.get(&format!("{lines}?from=100000")),
    );
    let search = format!("/api/testruns/{id}/search?q=green");
    let found = app.get(&search);
    assert!(
        found.1["matches"].as_array().is_some_and(|m| !m.is_empty()),
        "{}",
        found.1
    );
    assert_fits(&doc, "get", "/api/testruns/{id}/search", 200, found);
    assert_fits(
        &doc,
        "get",
        "/api/testruns/{id}/logs",
        200,
        app.get(&format!("/api/testruns/{id}/logs")),
    );

    // Error bodies.
    assert_fits(&doc, "get", "/api/testruns/{id}", 404, app.get("/api/testruns/999999"));
    let bad = app.post(
        "/api/testruns",
        json!({"username": "x", "env_id": 0, "path": "nope", "extra": 1}),
    );
    assert_fits(&doc, "post", "/api/testruns", 400, bad);
    assert_fits(
        &doc,
        "post",
        "/api/testruns/{id}/cancel",
        409,
        app.post(&format!("/api/testruns/{id}/cancel"), json!({})),
    );
    assert_fits(
        &doc,
        "get",
        "/api/testruns/{id}/search",
        400,
        app.get(&format!("/api/testruns/{id}/search")),
    );
    let forged = app.post(
        &format!("/api/testruns/{id}"),
        json!({"token": "forged", "status": "running"}),
    );
    assert_fits(&doc, "post", "/api/testruns/{id}", 403, forged);

    // A run holding its environment: busy, then cancelled.
    let slow = app.queue(4, "./tests/test_slow.py");
    let slow_id = slow["id"].as_i64().expect("id");
    let busy = app.post(
        "/api/testruns",
        json!({"username": "tester", "env_id": 4, "path": "./tests/test_quick.py"}),
    );
    assert_fits(&doc, "post", "/api/testruns", 409, busy);
    assert_fits(&doc, "get", "/api/envs", 200, app.get("/api/envs"));
    let cancelled = app.post(&format!("/api/testruns/{slow_id}/cancel"), json!({}));
    assert_fits(&doc, "post", "/api/testruns/{id}/cancel", 200, cancelled);

    // An idle worker's heartbeat, then the list it joined.
    let beat = app.post(
        "/api/workers/heartbeat",
        json!({"id": "w-schema", "host": "h", "slots": 2, "running": []}),
    );
    assert_fits(&doc, "post", "/api/workers/heartbeat", 200, beat);
    assert_fits(&doc, "get", "/api/workers", 200, app.get("/api/workers"));
}

#[test]
fn the_checker_notices_drift() {
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/Health"});
    let mut problems = Vec::new();
    check(&doc, &schema, &json!({"status": "ok"}), "$", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    check(&doc, &schema, &json!({"holder": 2}), "$", &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}"); // status missing, holder undeclared
    problems.clear();
    check(&doc, &schema, &json!({"status": 1}), "$", &mut problems);
    assert_eq!(problems.len(), 1, "a wrong type: {problems:?}");
}

/// Every `/ws` frame the server sends fits `WsServerEvent` (the web app's
/// `ServerEvent`): run events, a follow's lines and end, and errors.
#[test]
fn the_ws_frames_fit_the_openapi_document() {
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/WsServerEvent"});
    let app = spawn_app();
    let mut ws = app.ws();
    let run = app.queue(5, "./tests/test_quick.py");
    let id = run["id"].as_i64().expect("id");
    ws.send(json!({"op": "follow", "id": id, "from": 0}));
    ws.send(json!({"op": "follow", "id": 999_999}));
    ws.send(json!({"op": "dance"}));
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut ended = false;
    let mut errors = 0;
    while !(ended && errors == 2) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(frame) = ws.next(left) else {
            panic!("no logEnd and two errors within 60 s; frames: {seen:?}");
        };
        let mut problems = Vec::new();
        check(&doc, &schema, &frame, "$", &mut problems);
        assert!(
            problems.is_empty(),
            "/ws frame {frame} does not fit WsServerEvent:\n{}",
            problems.join("\n")
        );
        ended |= frame["event"] == "logEnd" && frame["id"] == id;
        errors += usize::from(frame["event"] == "error");
        seen.push(frame["event"].as_str().unwrap_or_default().to_string());
    }
    assert!(seen.iter().any(|e| e == "logLines"), "{seen:?}");
}

#[test]
fn the_server_serves_its_openapi_document() {
    let app = spawn_app();
    let (status, served) = app.get("/api/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(served, document(), "the committed document is the one served");
    assert!(
        served["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        served["openapi"]
    );
}

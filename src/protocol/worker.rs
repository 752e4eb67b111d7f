//! The remote-worker protocol, as serde types both ends use: the job message
//! a worker takes from Redis ([`Job`], signed with the [`WorkerSecret`]), the
//! reports it POSTs back about a run ([`Report`]: claim, lines, end) and their
//! reply ([`ReportReply`]), its heartbeat ([`Heartbeat`], [`HeartbeatReply`]),
//! and the error body it reads when the server refuses ([`Refusal`]).
//! docs/remote-workers.md describes the exchange. No I/O here.

use crate::domain::RunId;
use crate::results::{Revision, TestResult};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The header that carries the worker secret on every worker request.
pub const SECRET_HEADER: &str = "X-Testscheduler-Worker-Secret";
/// The stream field that carries a job message's signature.
pub const SIG_FIELD: &str = "sig";
/// Longest worker id (and host name) a heartbeat or claim may give.
pub const MAX_NAME_CHARS: usize = 200;

/// The secret shared by the server and its workers: it proves a worker's
/// requests (header [`SECRET_HEADER`]) and signs job messages (HMAC-SHA256).
/// Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerSecret(String);

impl std::fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerSecret(…)")
    }
}

impl WorkerSecret {
    /// A secret from its text; `None` if it is empty (after trimming the
    /// surrounding whitespace, as a secret file's trailing newline).
    pub fn new(text: &str) -> Option<WorkerSecret> {
        let t = text.trim();
        (!t.is_empty()).then(|| WorkerSecret(t.to_string()))
    }

    /// The secret's text (for the header a worker sends).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` (a request's header) is this secret. Compares digests,
    /// so the time taken says nothing about the secret itself.
    pub fn matches(&self, given: &[u8]) -> bool {
        Sha256::digest(given) == Sha256::digest(self.0.as_bytes())
    }

    fn mac(&self, fields: &[(&str, &str)]) -> Hmac<Sha256> {
        // Any key length is valid for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes()).expect("HMAC takes any key length");
        let mut sorted: Vec<&(&str, &str)> = fields.iter().filter(|(k, _)| *k != SIG_FIELD).collect();
        sorted.sort();
        for (k, v) in sorted {
            // Length-prefixed, so no two different messages feed the same bytes.
            for part in [k.as_bytes(), v.as_bytes()] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part);
            }
        }
        mac
    }

    /// The signature (hex) over every field of a message but [`SIG_FIELD`].
    pub fn sign(&self, fields: &[(&str, &str)]) -> String {
        hex::encode(self.mac(fields).finalize().into_bytes())
    }

    /// Whether `sig` (hex) signs exactly these fields.
    pub fn verify(&self, fields: &[(&str, &str)], sig: &str) -> bool {
        match hex::decode(sig) {
            Ok(bytes) => self.mac(fields).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// One run as a message on the stream `{prefix}runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: RunId,
    pub path: String,
    pub env_id: u32,
    /// The command, already filled in (the field is a JSON array).
    pub command: Vec<String>,
    pub timeout_s: u64,
    /// The secret for every report about this run.
    pub token: String,
    /// The server's lease, in seconds.
    pub lease_s: u64,
    /// The environment's variables (its envs file entry), for the run's process.
    pub vars: Vec<(String, String)>,
}

/// Why a stream entry is not a job this worker may run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("the message is not signed, and this worker has a --worker-secret")]
    Unsigned,
    #[error("the message's signature does not verify with this worker's --worker-secret")]
    BadSignature,
}

impl Job {
    /// The stream entry's fields, with the signature `sig` when `secret` is given.
    pub fn to_fields(&self, secret: Option<&WorkerSecret>) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", self.id.to_string()),
            ("path", self.path.clone()),
            ("env_id", self.env_id.to_string()),
            ("command", serde_json::Value::from(self.command.clone()).to_string()),
            ("timeout_s", self.timeout_s.to_string()),
            ("token", self.token.clone()),
            ("lease_s", self.lease_s.to_string()),
        ];
        if !self.vars.is_empty() {
            let vars: serde_json::Map<String, serde_json::Value> =
                self.vars.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
            fields.push(("vars", serde_json::Value::Object(vars).to_string()));
        }
        if let Some(secret) = secret {
            let view: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sig = secret.sign(&view);
            fields.push((SIG_FIELD, sig));
        }
        fields
    }

    /// Reads a stream entry's fields. With `secret`, the entry must carry a
    /// signature over all its fields (extra ones included) that verifies;
    /// without, it is taken as it is (a loopback setup with no secret).
    pub fn from_fields(f: &HashMap<String, String>, secret: Option<&WorkerSecret>) -> Result<Job, JobError> {
        if let Some(secret) = secret {
            let sig = f.get(SIG_FIELD).ok_or(JobError::Unsigned)?;
            let view: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if !secret.verify(&view, sig) {
                return Err(JobError::BadSignature);
            }
        }
        fn get<'a>(f: &'a HashMap<String, String>, k: &str) -> Result<&'a str, JobError> {
            f.get(k)
                .map(String::as_str)
                .ok_or_else(|| JobError::Malformed(format!("no field {k}")))
        }
        fn num<T: std::str::FromStr>(f: &HashMap<String, String>, k: &str) -> Result<T, JobError> {
            get(f, k)?
                .parse()
                .map_err(|_| JobError::Malformed(format!("field {k} is not a number")))
        }
        let command: Vec<String> =
            serde_json::from_str(get(f, "command")?).map_err(|e| JobError::Malformed(format!("field command: {e}")))?;
        if command.is_empty() {
            return Err(JobError::Malformed("field command is empty".into()));
        }
        let vars: Vec<(String, String)> = match f.get("vars") {
            None => Vec::new(),
            Some(v) => serde_json::from_str::<std::collections::BTreeMap<String, String>>(v)
                .map_err(|e| JobError::Malformed(format!("field vars: {e}")))?
                .into_iter()
                .filter(|(k, _)| !k.starts_with("TESTSCHEDULER_"))
                .collect(),
        };
        Ok(Job {
            vars,
            id: num(f, "id")?,
            path: get(f, "path")?.to_string(),
            env_id: num(f, "env_id")?,
            command,
            timeout_s: num(f, "timeout_s")?,
            token: get(f, "token")?.to_string(),
            lease_s: num::<u64>(f, "lease_s")?.max(1),
        })
    }
}

/// The statuses a worker may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    Running,
    Succeeded,
    Failed,
}

/// The unfinished line so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub line: u64,
    pub text: String,
}

/// `POST /api/testruns/{id}`: a worker's report about its run. One report may
/// claim it (`status: running` with `worker`), add lines numbered from
/// `from`, show the unfinished line, and end it (`status` `succeeded` /
/// `failed` with `exit_code` and `total`). `logs` is the seed worker's form:
/// the whole log so far. Absent fields are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run's token; a report without the newest one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkerStatus>,
    /// The claiming worker's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The number of the first of `lines`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// Only with an end; `null` when the process was killed by a signal we did not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// With an end: how many lines the run printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The number (0-based) of the first of `results`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_from: Option<u64>,
    /// Per-test results the worker parsed, numbered from `results_from`, in run order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<TestResult>>,
    /// With an end: how many result rows were sent (all stored before the end is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_total: Option<u64>,
    /// With an end: why the counts are only the live ones, or absent when they are JUnit's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_note: Option<String>,
    /// With the claim: the worker's project directory's git revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
}

/// Longest node id or message a worker may send, in characters.
pub const MAX_RESULT_TEXT: usize = 2_000;

/// A field of a request that is not what the protocol says, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: &str) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

/// Deserializes `T` from a JSON object; an error names the top-level field at fault.
fn from_object<'de, T: Deserialize<'de>>(
    fields: &'de serde_json::Map<String, serde_json::Value>,
    message_for: fn(&str) -> Option<&'static str>,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let field = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
            _ => String::new(),
        };
        let message = message_for(&field).map_or_else(|| e.inner().to_string(), str::to_string);
        FieldError { field, message }
    })
}

impl Report {
    /// A claim: `created` → `running` for `worker`.
    pub fn claim(token: &str, worker: &str) -> Report {
        Report {
            token: Some(token.to_string()),
            status: Some(WorkerStatus::Running),
            worker: Some(worker.to_string()),
            ..Report::default()
        }
    }

    /// Lines numbered from `from` (may be empty: a keepalive).
    pub fn lines(token: &str, from: u64, lines: Vec<String>) -> Report {
        Report {
            token: Some(token.to_string()),
            from: Some(from),
            lines: Some(lines),
            ..Report::default()
        }
    }

    /// Reads and checks a report's JSON object; the error names the field.
    pub fn parse(fields: &serde_json::Map<String, serde_json::Value>) -> Result<Report, FieldError> {
        let r: Report = from_object(fields, |field| match field {
            "status" => Some("A worker may set only running, succeeded or failed."),
            "worker" => Some("A worker id of 1 to 200 characters."),
            "from" => Some("Not a valid line number."),
            "lines" => Some("Not a list of strings."),
            "logs" | "token" => Some("Not a valid string."),
            "exit_code" => Some("Not a valid integer."),
            "total" => Some("Not a valid line count."),
            "partial" => Some("Expected {\"line\": K, \"text\": \"...\"}."),
            "results_from" | "results_total" => Some("Not a valid count."),
            "results" => Some("Not a list of {nodeid, outcome, duration_s, message, line}."),
            "results_note" => Some("Not a valid string."),
            "revision" => Some("Expected {\"commit\": HEX, \"dirty\": bool}."),
            _ => None,
        })?;
        match (r.results_from, &r.results) {
            (None, Some(_)) => return Err(FieldError::new("results_from", "Missing data for required field.")),
            (Some(_), None) => return Err(FieldError::new("results", "Missing data for required field.")),
            _ => {}
        }
        for t in r.results.iter().flatten() {
            let bad_text = |s: &str| {
                s.is_empty() || s.chars().count() > MAX_RESULT_TEXT || crate::http::dto::plain_text(s).is_err()
            };
            if bad_text(&t.nodeid) || t.message.as_deref().is_some_and(bad_text) {
                return Err(FieldError::new(
                    "results",
                    "A node id or message is empty, longer than 2000 characters, or has control characters.",
                ));
            }
        }
        if let Some(n) = &r.results_note {
            if n.chars().count() > MAX_RESULT_TEXT || crate::http::dto::plain_text(n).is_err() {
                return Err(FieldError::new("results_note", "At most 2000 plain characters."));
            }
        }
        if let Some(rev) = &r.revision {
            if !(1..=64).contains(&rev.commit.len()) || !rev.commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(FieldError::new("revision", "The commit is not a hex id."));
            }
        }
        if let Some(w) = &r.worker {
            check_name("worker", w)?;
        }
        match (r.from, &r.lines) {
            (None, Some(_)) => return Err(FieldError::new("from", "Missing data for required field.")),
            (Some(_), None) => return Err(FieldError::new("lines", "Missing data for required field.")),
            _ => {}
        }
        if r.is_final() && r.total.is_none() && r.logs.is_none() {
            return Err(FieldError::new("total", "Missing data for required field."));
        }
        Ok(r)
    }

    /// Whether this report ends the run.
    pub fn is_final(&self) -> bool {
        matches!(self.status, Some(WorkerStatus::Succeeded | WorkerStatus::Failed))
    }
}

/// A worker id or host name: 1 to [`MAX_NAME_CHARS`] characters, none of
/// them a control or bidi-override character (they would reach logs and pages raw).
fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let n = name.chars().count();
    let bad = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !(1..=MAX_NAME_CHARS).contains(&n) {
        return Err(FieldError::new(field, "Between 1 and 200 characters."));
    }
    if name.chars().any(bad) {
        return Err(FieldError::new(
            field,
            "Control and bidi-override characters are not allowed.",
        ));
    }
    Ok(())
}

/// The answer to every accepted report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportReply {
    /// True once the run was cancelled, timed out or ended `unknown`: stop it.
    pub cancel: bool,
    /// The run's status now (`running`, `timeout`, …).
    pub status: String,
}

/// `POST /api/workers/heartbeat`: a worker says it is alive and which runs it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: String,
    #[serde(default)]
    pub host: String,
    #[serde(default = "one")]
    pub slots: u64,
    #[serde(default)]
    pub running: Vec<RunId>,
    /// Job messages the worker refused since its last heartbeat (their
    /// signature did not verify), so the server's log shows forgeries too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedJob>,
}

/// A job message a worker would not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedJob {
    /// The stream entry's id.
    pub msg_id: String,
    /// The entry's `id` field as it was written (anyone may have written it).
    #[serde(default)]
    pub run_id: String,
    /// Why, in words.
    pub reason: String,
}

fn one() -> u64 {
    1
}

impl Heartbeat {
    /// Reads and checks a heartbeat's JSON object; the error names the field.
    pub fn parse(fields: &serde_json::Map<String, serde_json::Value>) -> Result<Heartbeat, FieldError> {
        if !fields.contains_key("id") {
            return Err(FieldError::new("id", "Missing data for required field."));
        }
        let mut hb: Heartbeat = from_object(fields, |field| match field {
            "id" => Some("A worker id of 1 to 200 characters."),
            "host" => Some("Not a valid string."),
            "slots" => Some("Not a valid integer."),
            "running" => Some("Not a list of run ids."),
            _ => None,
        })?;
        check_name("id", &hb.id)?;
        hb.host = hb.host.chars().take(MAX_NAME_CHARS).collect();
        if !hb.host.is_empty() {
            check_name("host", &hb.host)?;
        }
        Ok(hb)
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The server's lease, in seconds (the worker heartbeats at least thrice per lease).
    pub lease_s: u64,
    /// Those of the listed runs the worker must stop.
    pub cancel: Vec<RunId>,
}

/// The body of a refused request, as far as a worker reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: String,
    /// With `line_gap`: the line the server wants next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Job {
        Job {
            id: 7,
            path: "./tests/my test.py".into(),
            env_id: 3,
            command: vec![
                "python3".into(),
                "-m".into(),
                "pytest".into(),
                "./tests/my test.py".into(),
            ],
            timeout_s: 60,
            token: "ab".repeat(32),
            lease_s: 30,
            vars: vec![("BASE_URL".into(), "https://staging-3.example".into())],
        }
    }

    fn fields(job: &Job, secret: Option<&WorkerSecret>) -> HashMap<String, String> {
        job.to_fields(secret)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn job_round_trips_through_fields() {
        let j = job();
        assert_eq!(Job::from_fields(&fields(&j, None), None), Ok(j.clone()));
        let s = WorkerSecret::new("s3cret").expect("secret");
        assert_eq!(Job::from_fields(&fields(&j, Some(&s)), Some(&s)), Ok(j));
    }

    #[test]
    fn a_signed_job_refuses_any_change_and_any_other_secret() {
        let s = WorkerSecret::new("s3cret").expect("secret");
        let good = fields(&job(), Some(&s));
        assert_eq!(
            Job::from_fields(&fields(&job(), None), Some(&s)),
            Err(JobError::Unsigned)
        );
        let other = WorkerSecret::new("other").expect("secret");
        assert_eq!(Job::from_fields(&good, Some(&other)), Err(JobError::BadSignature));
        for (k, v) in [
            ("command", r#"["sh","-c","id"]"#),
            ("path", "./tests/x.py"),
            ("extra", "1"),
            ("sig", "zz"),
        ] {
            let mut f = good.clone();
            f.insert(k.into(), v.into());
            assert_eq!(Job::from_fields(&f, Some(&s)), Err(JobError::BadSignature), "{k}");
        }
    }

    #[test]
    fn bad_message_names_its_field() {
        let mut f = fields(&job(), None);
        f.insert("env_id".into(), "x".into());
        assert!(Job::from_fields(&f, None)
            .expect_err("bad")
            .to_string()
            .contains("env_id"));
        f.remove("token");
        assert!(Job::from_fields(&f, None).is_err());
    }

    #[test]
    fn secrets_compare_whole_and_hide_in_debug() {
        let s = WorkerSecret::new(" abc\n").expect("secret");
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abcd") && !s.matches(b""));
        assert!(!format!("{s:?}").contains("abc"));
        assert_eq!(WorkerSecret::new(" \n"), None);
    }

    fn parse(v: serde_json::Value) -> Result<Report, FieldError> {
        match v {
            serde_json::Value::Object(m) => Report::parse(&m),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn reports_serialize_without_absent_fields_and_parse_back() {
        let claim = Report::claim("t", "w1");
        let v = serde_json::to_value(&claim).expect("json");
        assert_eq!(v, json!({"token": "t", "status": "running", "worker": "w1"}));
        assert_eq!(parse(v), Ok(claim));
        let mut end = Report::lines("t", 3, vec!["a".into()]);
        end.partial = Some(Partial {
            line: 4,
            text: "x".into(),
        });
        end.status = Some(WorkerStatus::Failed);
        end.exit_code = Some(1);
        end.total = Some(4);
        assert_eq!(parse(serde_json::to_value(&end).expect("json")), Ok(end));
    }

    #[test]
    fn report_errors_name_their_field() {
        for (body, field) in [
            (json!({"from": -1, "lines": []}), "from"),
            (json!({"from": 0, "lines": [1]}), "lines"),
            (json!({"lines": []}), "from"),
            (json!({"from": 0}), "lines"),
            (json!({"status": "cancelled"}), "status"),
            (json!({"status": "succeeded"}), "total"),
            (json!({"exit_code": 1u64 << 40}), "exit_code"),
            (json!({"partial": {"line": 1}}), "partial"),
            (json!({"worker": "a\u{202e}b"}), "worker"),
        ] {
            assert_eq!(
                parse(body.clone()).map_err(|e| e.field),
                Err(field.to_string()),
                "{body}"
            );
        }
        parse(json!({"status": "succeeded", "logs": "a\nb", "unknown": 1})).expect("seed end");
    }

    #[test]
    fn heartbeats_parse_with_defaults_and_named_errors() {
        let hb = Heartbeat::parse(json!({"id": "w"}).as_object().expect("object")).expect("valid");
        assert_eq!((hb.slots, hb.running.len(), hb.host.as_str()), (1, 0, ""));
        assert!(hb.refused.is_empty());
        assert!(!serde_json::to_string(&hb).expect("json").contains("refused"));
        for (body, field) in [
            (json!({}), "id"),
            (json!({"id": ""}), "id"),
            (json!({"id": "w\n"}), "id"),
            (json!({"id": "w", "running": ["x"]}), "running"),
            (json!({"id": "w", "slots": -1}), "slots"),
            (json!({"id": "w", "host": "\u{1b}[2J"}), "host"),
        ] {
            let err = Heartbeat::parse(body.as_object().expect("object")).expect_err("refused");
            assert_eq!(err.field, field, "{body}");
        }
    }
}

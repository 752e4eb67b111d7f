//! The OpenAPI 3.1 document of the REST API, built with utoipa from the types
//! the handlers serialise (`Run`, `RunStatus`, `WorkerInfo`, `Match`, the
//! request DTOs) plus schema-only mirrors of the bodies the handlers still
//! write with `json!` (pages, searches, errors, worker replies).
//!
//! The document is committed as `web/src/lib/api/openapi.json`; the web app's
//! TypeScript types are generated from it (`npm run gen:api`). The test below
//! fails when the committed file differs from a fresh generation; run it with
//! `TESTSCHEDULER_UPDATE_OPENAPI=1` to rewrite the file. docs/api.md is the
//! prose version of the same contract.

#![allow(dead_code)] // the operation functions below exist only for their `#[utoipa::path]`

use crate::domain::{Run, RunStatus};
use crate::error::FieldErrors;
use crate::http::dto::{CreateRunBody, LinesQuery, ListQuery, SearchQuery};
use crate::scheduler::worker_registry::WorkerInfo;
use crate::store::logs::Match;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "testscheduler",
        description = "Queue test runs on shared environments and watch their output live. See docs/api.md."
    ),
    paths(
        list_tests,
        list_envs,
        list_workers,
        worker_heartbeat,
        list_runs,
        create_run,
        get_run,
        report_run,
        cancel_run,
        run_logs,
        run_log_txt,
        run_lines,
        run_search,
        verdicts,
        results_history,
        run_results,
        rerun_run,
        healthz,
        crate::http::auth_doc::login,
        crate::http::auth_doc::logout,
        crate::http::auth_doc::me,
        crate::http::auth_doc::create_token,
        crate::http::auth_doc::list_tokens,
        crate::http::auth_doc::revoke_token,
        crate::http::auth_doc::audit
    ),
    components(schemas(
        Run,
        RunStatus,
        CreateRunBody,
        RerunBody,
        crate::http::results::RunResults,
        crate::results::Summary,
        crate::results::Revision,
        crate::results::TestResult,
        crate::results::TestOutcome,
        WorkerInfo,
        Match,
        crate::domain::EnvView,
        LinesPage,
        SearchResult,
        LogsBody,
        ErrorBody,
        Report,
        Partial,
        ReportAnswer,
        Heartbeat,
        HeartbeatAnswer,
        Health,
        WsServerEvent,
        WsClientOp,
        crate::domain::verdicts::Verdicts,
        crate::domain::verdicts::TestVerdict,
        crate::domain::verdicts::Verdict,
        crate::domain::verdicts::SuspectEnv,
        crate::domain::verdicts::EnvVerdict,
        crate::store::verdicts::HistoryEntry,
        crate::auth::Role,
        crate::http::auth::Me,
        crate::http::auth::TokenInfo,
        crate::http::auth::TokenCreated,
        crate::http::auth::AuditEntry,
        crate::http::auth_doc::LoginBody,
        crate::http::auth_doc::LogoutBody,
        crate::http::auth_doc::LoggedOut,
        crate::http::auth_doc::CreateTokenBody
    ))
)]
pub struct ApiDoc;

/// The document as pretty JSON with a final newline, as committed.
pub fn document_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

/// A slice of a run's output: `GET /api/testruns/{id}/lines`.
#[derive(Serialize, ToSchema)]
pub struct LinesPage {
    pub id: i64,
    /// The first line number of `lines` (0-based), as asked.
    pub from: u64,
    /// Lines stored so far.
    pub total: u64,
    /// Lines `from, from + 1, …`, each without its newline, ANSI kept.
    pub lines: Vec<String>,
    /// The line to ask for next, or null at the end (pages are capped in bytes too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// Lines containing a text: `GET /api/testruns/{id}/search`.
#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    pub id: i64,
    pub matches: Vec<Match>,
    /// More lines match than `limit`.
    pub more: bool,
    /// False when the search was cut short by its time budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
}

/// The whole output as one string: `GET /api/testruns/{id}/logs`.
#[derive(Serialize, ToSchema)]
pub struct LogsBody {
    pub id: i64,
    /// Every line followed by `\n`, ANSI kept.
    pub logs: String,
}

/// Every error answer: `{"message", "code", "errors"?, ...}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    /// Stable snake_case code, e.g. `validation_failed`, `env_busy`, `line_gap` (docs/api.md lists them).
    pub code: String,
    /// Field name → messages (`validation_failed`, `env_busy`); `_schema` for the body as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, Vec<String>>>)]
    pub errors: Option<FieldErrors>,
    /// `line_gap`: the line the server expects next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// `env_busy`: the run holding the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// With `rate_limited`: seconds to wait (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

/// A worker's report about its run: `POST /api/testruns/{id}`.
#[derive(Serialize, ToSchema)]
pub struct Report {
    /// The run's token, from its job message.
    pub token: String,
    /// `running` claims the run; `succeeded` / `failed` end it (with `total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The claiming worker's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The line number of `lines[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<String>>,
    /// The seed worker's whole log so far (taken from line 0 on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// With an end status: the number of lines the run printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    /// The number (0-based) of the first of `results`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_from: Option<u64>,
    /// Per-test rows the worker parsed from its JUnit file, in run order (docs/remote-workers.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<crate::results::TestResult>>,
    /// With an end status: how many result rows were sent; the end is refused (`results_gap`) until all are stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_total: Option<u64>,
    /// With an end status: why the counts are only the live ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_note: Option<String>,
    /// With the claim: the worker's project directory's git revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<crate::results::Revision>,
}

/// The unfinished last line of a remote run.
#[derive(Serialize, ToSchema)]
pub struct Partial {
    pub line: u64,
    pub text: String,
}

/// The answer to an accepted report.
#[derive(Serialize, ToSchema)]
pub struct ReportAnswer {
    /// True once the run was cancelled, timed out or ended `unknown`: the worker stops it.
    pub cancel: bool,
    pub status: RunStatus,
}

/// An idle worker's heartbeat: `POST /api/workers/heartbeat`.
#[derive(Serialize, ToSchema)]
pub struct Heartbeat {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<u64>,
    /// Ids of the runs it is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Vec<i64>>,
}

/// The answer to a heartbeat.
#[derive(Serialize, ToSchema)]
pub struct HeartbeatAnswer {
    /// The server's lease, in seconds.
    pub lease_s: u64,
    /// Which of the worker's runs to stop.
    pub cancel: Vec<i64>,
}

/// `GET /healthz` while the database answers.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// A frame the server sends on `/ws` (docs/ws.md). A schema-only mirror of
/// the frames `http/ws.rs` and the hub write; the web app's `ServerEvent`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "event")]
pub enum WsServerEvent {
    /// A run was created.
    #[serde(rename = "taskAdded")]
    TaskAdded { run: Run },
    /// A run's status or `logs` flag changed.
    #[serde(rename = "taskChanged")]
    TaskChanged { run: Run },
    /// An environment's state, holder or queue length changed.
    #[serde(rename = "envChanged")]
    EnvChanged { env: crate::domain::EnvView },
    /// The list of remote workers changed.
    #[serde(rename = "workersChanged")]
    WorkersChanged { workers: Vec<WorkerInfo> },
    /// Lines `from, from + 1, …` of a followed run.
    #[serde(rename = "logLines")]
    LogLines { id: i64, from: u64, lines: Vec<String> },
    /// The followed run finished; all `total` lines were sent.
    #[serde(rename = "logEnd")]
    LogEnd { id: i64, total: u64, status: RunStatus },
    /// Line `line` so far, not yet ended by a newline; not stored.
    #[serde(rename = "logPartial")]
    LogPartial { id: i64, line: u64, text: String },
    /// The client fell behind: follow again from `next`.
    #[serde(rename = "lagged")]
    Lagged { id: i64, next: u64 },
    /// A malformed message, or a follow of an unknown run.
    #[serde(rename = "error")]
    Error {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<i64>,
    },
}

/// A message a client sends on `/ws`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum WsClientOp {
    /// Send the run's lines from `from` (default 0), or from `tail` lines before the end.
    Follow {
        id: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tail: Option<u64>,
    },
    /// Stop sending the run's lines.
    Unfollow { id: i64 },
}

/// Discovered test paths (`./tests/...`; directories end in `/`), sorted.
#[utoipa::path(get, path = "/api/tests", tag = "tests",
    responses((status = 200, description = "Test files and directories", body = Vec<String>)))]
fn list_tests() {}

/// Every configured environment and the run holding it.
#[utoipa::path(get, path = "/api/envs", tag = "envs",
    responses((status = 200, description = "Environments by id", body = Vec<crate::domain::EnvView>)))]
fn list_envs() {}

/// Remote workers seen within their lease.
#[utoipa::path(get, path = "/api/workers", tag = "workers",
    responses((status = 200, description = "Connected workers", body = Vec<WorkerInfo>)))]
fn list_workers() {}

/// An idle worker says it is alive.
#[utoipa::path(post, path = "/api/workers/heartbeat", tag = "workers", request_body = Heartbeat,
    responses(
        (status = 200, body = HeartbeatAnswer),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 403, description = "invalid_worker_secret", body = ErrorBody)))]
fn worker_heartbeat() {}

/// Runs, newest first; with `limit` a page of ids below `before`.
#[utoipa::path(get, path = "/api/testruns", tag = "runs", params(ListQuery),
    responses(
        (status = 200, body = Vec<Run>),
        (status = 400, description = "validation_failed", body = ErrorBody)))]
fn list_runs() {}

/// Queue a run.
#[utoipa::path(post, path = "/api/testruns", tag = "runs", request_body = CreateRunBody,
    responses(
        (status = 201, description = "The new run", body = Run),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 403, description = "forbidden: the role may not queue", body = ErrorBody),
        (status = 409, description = "env_busy", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody)))]
fn create_run() {}

/// One run.
#[utoipa::path(get, path = "/api/testruns/{id}", tag = "runs", params(("id" = i64, Path)),
    responses((status = 200, body = Run), (status = 404, description = "not_found", body = ErrorBody)))]
fn get_run() {}

/// A worker's report about its run, proven by the run's token.
#[utoipa::path(post, path = "/api/testruns/{id}", tag = "workers", params(("id" = i64, Path)), request_body = Report,
    responses(
        (status = 200, body = ReportAnswer),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 403, description = "invalid_token, invalid_worker_secret", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "already_claimed, already_finished, line_gap, results_gap", body = ErrorBody)))]
fn report_run() {}

/// Stop a run that has not finished.
#[utoipa::path(post, path = "/api/testruns/{id}/cancel", tag = "runs", params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The run, now cancelled", body = Run),
        (status = 401, description = "unauthenticated", body = ErrorBody),
        (status = 403, description = "forbidden: not the run's owner nor an admin", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "already_finished", body = ErrorBody)))]
fn cancel_run() {}

/// A run's tests in the order pytest ran them (docs/results.md).
#[utoipa::path(get, path = "/api/testruns/{id}/results", tag = "results",
    params(("id" = i64, Path), crate::http::results::ResultsQuery),
    responses(
        (status = 200, body = crate::http::results::RunResults),
        (status = 400, description = "validation_failed (outcome)", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)))]
fn run_results() {}

/// The body of `POST /api/testruns/{id}/rerun`.
#[derive(Serialize, ToSchema)]
pub struct RerunBody {
    pub username: String,
    /// Run only the node ids that failed or errored (400 when there are none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_failed: Option<bool>,
    /// Another environment than the run's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_id: Option<u32>,
    /// Labels instead of the run's environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Queue behind a busy environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// Run a finished run again: same path, keyword, markers and environment unless given.
#[utoipa::path(post, path = "/api/testruns/{id}/rerun", tag = "results", params(("id" = i64, Path)), request_body = RerunBody,
    responses(
        (status = 201, description = "The new run, with rerun_of", body = Run),
        (status = 400, description = "validation_failed (only_failed: no failures; any field)", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "not_finished, env_busy, env_disabled", body = ErrorBody)))]
fn rerun_run() {}

/// The whole output as one JSON string.
#[utoipa::path(get, path = "/api/testruns/{id}/logs", tag = "logs", params(("id" = i64, Path)),
    responses((status = 200, body = LogsBody), (status = 404, description = "not_found", body = ErrorBody),
        (status = 410, description = "log_pruned: retention dropped the output", body = ErrorBody)))]
fn run_logs() {}

/// The raw output, streamed.
#[utoipa::path(get, path = "/api/testruns/{id}/log.txt", tag = "logs", params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The output, ANSI kept", body = String, content_type = "text/plain"),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 410, description = "log_pruned: retention dropped the output", body = ErrorBody)))]
fn run_log_txt() {}

/// A slice of the output.
#[utoipa::path(get, path = "/api/testruns/{id}/lines", tag = "logs", params(("id" = i64, Path), LinesQuery),
    responses(
        (status = 200, body = LinesPage),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 410, description = "log_pruned: retention dropped the output", body = ErrorBody)))]
fn run_lines() {}

/// The lines that contain a text, ANSI codes ignored.
#[utoipa::path(get, path = "/api/testruns/{id}/search", tag = "logs", params(("id" = i64, Path), SearchQuery),
    responses(
        (status = 200, body = SearchResult),
        (status = 400, description = "validation_failed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 410, description = "log_pruned: retention dropped the output", body = ErrorBody)))]
fn run_search() {}

/// Each test's verdict over its last `window` results, and the suspect environments (docs/verdicts.md).
#[utoipa::path(get, path = "/api/verdicts", tag = "results", params(crate::http::verdicts::VerdictsQuery),
    responses(
        (status = 200, body = crate::domain::verdicts::Verdicts),
        (status = 400, description = "validation_failed", body = ErrorBody)))]
fn verdicts() {}

/// One test's results across recent runs, newest first.
#[utoipa::path(get, path = "/api/results/history", tag = "results", params(crate::http::verdicts::HistoryQuery),
    responses(
        (status = 200, body = Vec<crate::store::verdicts::HistoryEntry>),
        (status = 400, description = "validation_failed", body = ErrorBody)))]
fn results_history() {}

/// 200 while the database answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "unavailable", body = ErrorBody)))]
fn healthz() {}

#[cfg(test)]
mod tests {
    use super::document_json;
    use std::path::Path;

    /// Every `$ref` names a schema the document defines (a type alias such as
    /// `RunId` would otherwise become a dangling reference).
    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).expect("valid JSON");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let text = document_json();
        for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
    }

    const COMMITTED: &str = "web/src/lib/api/openapi.json";

    /// The committed document (and so the web app's generated types) matches
    /// the Rust types. `TESTSCHEDULER_UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn committed_openapi_document_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        let fresh = document_json();
        if std::env::var_os("TESTSCHEDULER_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &fresh).expect("write the OpenAPI document");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{COMMITTED} differs from the Rust types: run \
             `TESTSCHEDULER_UPDATE_OPENAPI=1 cargo test committed_openapi_document_is_current` \
             then `cd web && npm run gen:api`, and commit both"
        );
    }
}

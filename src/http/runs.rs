//! Handlers of `/api/testruns…`: extract, validate, one scheduler or store
//! call in `web::block`, answer. No SQL and no status logic here.

use super::dto::{self, CreateContext, LinesQuery, ListQuery, SearchQuery};
use crate::auth::{audit, Action, Principal};
use crate::domain::{Run, RunId};
use crate::error::AppError;
use crate::scheduler::RunRequest;
use crate::state::AppState;
use crate::store::{logs, runs};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use serde_json::{Map, Value};

/// Parses the `{id}` segment; anything but a positive integer is simply not found.
pub fn run_id(raw: &str) -> Result<RunId, AppError> {
    raw.parse::<RunId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::NotFound(format!("Run {raw} not found")))
}

fn not_found(id: RunId) -> AppError {
    AppError::NotFound(format!("Run {id} not found"))
}

/// Loads one run or answers 404.
pub async fn load_run(state: &AppState, id: RunId) -> Result<Run, AppError> {
    let store = state.store.clone();
    web::block(move || -> Result<Option<Run>, AppError> { Ok(runs::get(&*store.conn()?, id)?) })
        .await??
        .ok_or_else(|| not_found(id))
}

/// `POST /api/testruns`
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::QueueRun)?;
    let mut fields = dto::json_body(&req, payload).await?;
    principal.sign_body(&mut fields);
    let state = state.into_inner();
    let run = web::block(move || queue_body(&state, &fields, None, None)).await??;
    Ok(HttpResponse::Created().json(run))
}

/// Validates a body shaped like `POST /api/testruns`'s and queues the run it
/// asks for: the one way the API creates a run (a re-run adds the node ids it
/// selects and the run it repeats).
pub(super) fn queue_body(
    state: &AppState,
    fields: &Map<String, Value>,
    select: Option<Vec<String>>,
    rerun_of: Option<RunId>,
) -> Result<Run, AppError> {
    let ctx = CreateContext {
        envs: state.scheduler.environments().catalog(),
        max_timeout: state.config.max_run_timeout,
        tests: state.tests.clone(),
    };
    let valid = dto::parse_create(fields, &ctx)?;
    state.scheduler.create(RunRequest {
        username: valid.username,
        target: valid.target,
        path: valid.path,
        timeout_s: valid.timeout_s.unwrap_or(state.config.run_timeout),
        wait: valid.wait,
        priority: valid.priority,
        queue_timeout_s: valid.queue_timeout_s,
        picks: crate::store::runs::Picks {
            select,
            keyword: valid.keyword,
            markers: valid.markers,
            rerun_of,
        },
    })
}

/// `GET /api/testruns`
pub async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let filter = query.into_inner().into_filter()?;
    let store = state.store.clone();
    let body = web::block(move || -> Result<Vec<u8>, AppError> {
        let runs = runs::list(&*store.conn()?, &filter)?;
        serde_json::to_vec(&runs).map_err(|e| AppError::Internal(e.to_string()))
    })
    .await??;
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// `GET /api/testruns/{id}`
pub async fn get(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let run = load_run(&state, run_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(run))
}

/// `POST /api/testruns/{id}/cancel`: the run's owner (a runner) or an admin.
pub async fn cancel(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let owner = load_run(&state, id).await?.username;
    principal.require(Action::CancelRun { owner: &owner })?;
    let state = state.into_inner();
    let run = web::block(move || {
        let run = state.scheduler.cancel(id)?;
        audit::after(
            &state.store,
            principal.actor(),
            "run.cancel",
            &format!("run {id}"),
            &format!("owner {owner}"),
        );
        Ok::<_, AppError>(run)
    })
    .await??;
    Ok(HttpResponse::Ok().json(run))
}

/// `GET /api/testruns/{id}/lines?from=K&limit=N`: a page of at most `limit`
/// (≤ 10,000) lines and 8 MiB of text, streamed as it is read, with `next`:
/// the line to ask for next, or null once the page reaches the stored end.
pub async fn lines(
    path: web::Path<String>,
    query: web::Query<LinesQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let from = query.from.unwrap_or(0);
    let limit = query.limit.unwrap_or(1000).min(logs::MAX_SLICE);
    let total = log_total(&state, id).await?;
    let head = format!("{{\"id\":{id},\"from\":{from},\"total\":{total},\"lines\":[");
    let cursor = Cursor::page(from, total, u64::from(limit), logs::MAX_PAGE_BYTES);
    let tail = move |c: &Cursor| match c.next {
        next if next < total => format!("],\"next\":{next}}}"),
        _ => "],\"next\":null}".to_string(),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream_log(
            state.store.clone(),
            id,
            cursor,
            Shape::JsonArray,
            head,
            tail,
        )))
}

/// `GET /api/testruns/{id}/search?q=TEXT&limit=N`: on the search connections
/// only, within the time budget (`"complete": false` when it ran out).
pub async fn search(
    path: web::Path<String>,
    query: web::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let q = match query.q.as_deref() {
        Some(q) if !q.is_empty() => q.to_string(),
        _ => return Err(AppError::field("q", "Missing data for required field.")),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, logs::MAX_SLICE);
    let deadline = std::time::Instant::now() + state.config.search_budget;
    let store = state.store.clone();
    let found = web::block(move || -> Result<_, AppError> {
        // All of it on a search connection: a search never waits for, nor holds, the API's.
        let Some(conn) = store.search_conn(deadline.saturating_duration_since(std::time::Instant::now())) else {
            return Ok(logs::Found {
                matches: Vec::new(),
                more: false,
                complete: false,
            });
        };
        runs::log_state(&conn, id)?.ok_or_else(|| not_found(id))?;
        if logs::pruned(&conn, id)? {
            return Err(AppError::LogPruned(id));
        }
        Ok(logs::search(&conn, id, &q, limit, deadline)?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "matches": found.matches,
        "more": found.more,
        "complete": found.complete,
    })))
}

/// `GET /api/testruns/{id}/logs`: the whole output as one string (the seed's
/// shape), written as it is read: memory does not grow with the log.
pub async fn logs_json(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    log_total(&state, id).await?;
    let head = format!("{{\"id\":{id},\"logs\":\"");
    let tail = |_: &Cursor| "\"}".to_string();
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream_log(
            state.store.clone(),
            id,
            Cursor::all(),
            Shape::JsonString,
            head,
            tail,
        )))
}

/// `GET /api/testruns/{id}/log.txt`: the raw output, streamed in bounded chunks.
pub async fn log_txt(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    log_total(&state, id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Content-Disposition", format!("inline; filename=\"run-{id}.log\"")))
        .streaming(stream_log(
            state.store.clone(),
            id,
            Cursor::all(),
            Shape::Text,
            String::new(),
            |_: &Cursor| String::new(),
        )))
}

/// The stored line count of run `id`, or 404, or 410 once retention dropped it.
async fn log_total(state: &AppState, id: RunId) -> Result<u64, AppError> {
    let store = state.store.clone();
    let (state, pruned) = web::block(move || -> Result<_, AppError> {
        let conn = store.conn()?;
        Ok((runs::log_state(&conn, id)?, logs::pruned(&conn, id)?))
    })
    .await??;
    let (_, total, _) = state.ok_or_else(|| not_found(id))?;
    if pruned {
        return Err(AppError::LogPruned(id));
    }
    Ok(total)
}

/// Bytes of one chunk of a streamed log read (plus at most one line).
const CHUNK_BYTES: usize = 256 * 1024;

/// How lines are written into a streamed body.
#[derive(Clone, Copy)]
enum Shape {
    /// Raw text, each line ended by `\n` (`log.txt`).
    Text,
    /// The contents of one JSON string, each line ended by `\n` (`/logs`).
    JsonString,
    /// JSON strings separated by commas (`/lines`).
    JsonArray,
}

/// Where a streamed read is, and what it may still take.
#[derive(Clone, Copy)]
struct Cursor {
    next: u64,
    until: u64,
    lines_left: u64,
    bytes_left: usize,
    taken: u64,
    done: bool,
}

impl Cursor {
    /// Every stored line.
    fn all() -> Cursor {
        Cursor::page(0, u64::MAX, u64::MAX, usize::MAX)
    }

    /// Lines `from ..` below `until`: at most `lines` of them and `bytes` of text (the first always).
    fn page(from: u64, until: u64, lines: u64, bytes: usize) -> Cursor {
        Cursor {
            next: from,
            until,
            lines_left: lines,
            bytes_left: bytes,
            taken: 0,
            done: from >= until || lines == 0,
        }
    }
}

/// Reads the next chunk (about [`CHUNK_BYTES`]) after `c`, on a pooled connection held only for it.
fn read_chunk(store: &crate::store::Store, id: RunId, c: &mut Cursor, shape: Shape) -> Result<Vec<u8>, AppError> {
    let conn = store.conn()?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 4096);
    let mut scratch = Vec::new();
    let mut capped = false;
    let visited = logs::visit(&conn, id, c.next, c.until, |_, text| {
        if c.lines_left == 0 || (c.taken > 0 && text.len() > c.bytes_left) {
            capped = true;
            return logs::Step::Refuse;
        }
        match shape {
            Shape::Text => {
                buf.extend_from_slice(text.as_bytes());
                buf.push(b'\n');
            }
            Shape::JsonString => {
                scratch.clear();
                // A &str always serialises; the quotes around it are dropped.
                let _ = serde_json::to_writer(&mut scratch, text);
                buf.extend_from_slice(scratch.get(1..scratch.len().saturating_sub(1)).unwrap_or_default());
                buf.extend_from_slice(b"\\n");
            }
            Shape::JsonArray => {
                if c.taken > 0 {
                    buf.push(b',');
                }
                let _ = serde_json::to_writer(&mut buf, text);
            }
        }
        c.taken += 1;
        c.lines_left -= 1;
        c.bytes_left = c.bytes_left.saturating_sub(text.len());
        if buf.len() >= CHUNK_BYTES {
            logs::Step::Last
        } else {
            logs::Step::More
        }
    })?;
    c.next = visited.next;
    c.done = visited.exhausted || capped || c.lines_left == 0 || c.next >= c.until;
    Ok(buf)
}

/// A body of `head`, the lines `cursor` selects written as `shape` chunk by
/// chunk (each read when the client has taken the one before), then `tail`.
fn stream_log(
    store: crate::store::Store,
    id: RunId,
    cursor: Cursor,
    shape: Shape,
    head: String,
    tail: impl FnOnce(&Cursor) -> String + 'static,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    enum Phase {
        Head(String),
        Body,
        Tail,
        Done,
    }
    futures_util::stream::unfold(
        (Phase::Head(head), cursor, Some(tail)),
        move |(phase, mut c, mut tail)| {
            let store = store.clone();
            async move {
                match phase {
                    Phase::Head(head) => {
                        let next = if c.done { Phase::Tail } else { Phase::Body };
                        Some((Ok(web::Bytes::from(head)), (next, c, tail)))
                    }
                    Phase::Body => {
                        let read = web::block(move || read_chunk(&store, id, &mut c, shape).map(|b| (b, c))).await;
                        match read {
                            Ok(Ok((bytes, c))) => {
                                let next = if c.done { Phase::Tail } else { Phase::Body };
                                Some((Ok(web::Bytes::from(bytes)), (next, c, tail)))
                            }
                            Ok(Err(e)) => {
                                tracing::error!(run_id = id, error = %e, "reading a log failed mid-stream");
                                Some((Err(e.into()), (Phase::Done, c, None)))
                            }
                            Err(e) => Some((Err(e.into()), (Phase::Done, c, None))),
                        }
                    }
                    Phase::Tail => {
                        let text = tail.take().map(|t| t(&c)).unwrap_or_default();
                        Some((Ok(web::Bytes::from(text)), (Phase::Done, c, None)))
                    }
                    Phase::Done => None,
                }
            }
        },
    )
}

//! Handlers of `/api/testruns…`: extract, validate, one scheduler or store
//! call in `web::block`, answer. No SQL and no status logic here.

use super::dto::{self, CreateContext, LinesQuery, ListQuery, SearchQuery};
use crate::domain::{Run, RunId};
use crate::error::AppError;
use crate::scheduler::RunRequest;
use crate::state::AppState;
use crate::store::{logs, runs};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

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
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let fields = dto::json_body(&req, payload).await?;
    let state = state.into_inner();
    let run = web::block(move || {
        let ctx = CreateContext {
            envs: state.scheduler.environments().catalog(),
            max_timeout: state.config.max_run_timeout,
            tests: state.tests.clone(),
        };
        let valid = dto::parse_create(&fields, &ctx)?;
        state.scheduler.create(RunRequest {
            username: valid.username,
            target: valid.target,
            path: valid.path,
            timeout_s: valid.timeout_s.unwrap_or(state.config.run_timeout),
            wait: valid.wait,
            priority: valid.priority,
            queue_timeout_s: valid.queue_timeout_s,
        })
    })
    .await??;
    Ok(HttpResponse::Created().json(run))
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

/// `POST /api/testruns/{id}/cancel`
pub async fn cancel(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let scheduler = state.scheduler.clone();
    let run = web::block(move || scheduler.cancel(id)).await??;
    Ok(HttpResponse::Ok().json(run))
}

/// `GET /api/testruns/{id}/lines?from=K&limit=N`
pub async fn lines(
    path: web::Path<String>,
    query: web::Query<LinesQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let from = query.from.unwrap_or(0);
    let limit = query.limit.unwrap_or(1000).min(logs::MAX_SLICE);
    let store = state.store.clone();
    let (total, lines) = web::block(move || -> Result<_, AppError> {
        let conn = store.conn()?;
        let (_, total, _) = runs::log_state(&conn, id)?.ok_or_else(|| not_found(id))?;
        // Lines are numbered as SQLite integers: a `from` past i64::MAX is past every line.
        if i64::try_from(from).is_err() {
            return Ok((total, Vec::new()));
        }
        Ok((total, logs::read(&conn, id, from, limit)?))
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "id": id, "from": from, "total": total, "lines": lines })))
}

/// `GET /api/testruns/{id}/search?q=TEXT&limit=N`
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
    let store = state.store.clone();
    let (matches, more) = web::block(move || -> Result<_, AppError> {
        let conn = store.conn()?;
        runs::log_state(&conn, id)?.ok_or_else(|| not_found(id))?;
        Ok(logs::search(&conn, id, &q, limit)?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "id": id, "matches": matches, "more": more })))
}

/// `GET /api/testruns/{id}/logs`: the whole output as one string (the seed's shape).
pub async fn logs_json(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let store = state.store.clone();
    let text = web::block(move || -> Result<String, AppError> {
        let conn = store.conn()?;
        runs::log_state(&conn, id)?.ok_or_else(|| not_found(id))?;
        let mut text = String::new();
        let mut from = 0;
        loop {
            let page = logs::read(&conn, id, from, logs::MAX_SLICE)?;
            if page.is_empty() {
                break;
            }
            from += page.len() as u64;
            for line in page {
                text.push_str(&line);
                text.push('\n');
            }
        }
        Ok(text)
    })
    .await??;
    Ok(HttpResponse::Ok().json(json!({ "id": id, "logs": text })))
}

/// `GET /api/testruns/{id}/log.txt`: the raw output, streamed page by page.
pub async fn log_txt(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    load_run(&state, id).await?;
    let store = state.store.clone();
    let pages = futures_util::stream::unfold(Some(0u64), move |from| {
        let store = store.clone();
        async move {
            let from = from?;
            let page = web::block(move || -> Result<Vec<String>, AppError> {
                Ok(logs::read(&*store.conn()?, id, from, 5_000)?)
            })
            .await;
            match page {
                Ok(Ok(lines)) if lines.is_empty() => None,
                Ok(Ok(lines)) => {
                    let next = from + lines.len() as u64;
                    let mut chunk = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
                    for line in lines {
                        chunk.push_str(&line);
                        chunk.push('\n');
                    }
                    Some((Ok::<_, actix_web::Error>(web::Bytes::from(chunk)), Some(next)))
                }
                Ok(Err(e)) => Some((Err(e.into()), None)),
                Err(e) => Some((Err(e.into()), None)),
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Content-Disposition", format!("inline; filename=\"run-{id}.log\"")))
        .streaming(pages))
}

//! `GET /api/workers` and the remote workers' reports about runs.

use super::dto;
use super::runs::run_id;
use crate::error::AppError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

/// `GET /api/workers`
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.workers.list())
}

/// `POST /api/testruns/{id}`: a worker's report about its run, proven by the
/// run's token. Only runs dispatched to remote workers have a token, so any
/// report about an embedded run is refused.
pub async fn report(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let fields = dto::json_body(&req, payload).await?;
    let token = fields.get("token").and_then(|t| t.as_str()).map(str::to_string);
    let scheduler = state.scheduler.clone();
    let answer = web::block(move || scheduler.report(id, token.as_deref(), &fields)).await??;
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /api/workers/heartbeat`: an idle worker says it is alive.
pub async fn heartbeat(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let fields = dto::json_body(&req, payload).await?;
    let scheduler = state.scheduler.clone();
    let answer = web::block(move || scheduler.worker_heartbeat(&fields)).await??;
    Ok(HttpResponse::Ok().json(answer))
}

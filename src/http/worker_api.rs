//! The remote workers themselves: `GET /api/workers` (who is connected, for
//! browsers) and `POST /api/workers/heartbeat` (a worker says it is alive;
//! with a worker secret set, only with the secret).

use super::dto;
use super::run_reports::check_worker_secret;
use crate::error::AppError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

/// `GET /api/workers`
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.workers.list())
}

/// `POST /api/workers/heartbeat`: an idle worker says it is alive.
pub async fn heartbeat(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    check_worker_secret(&req, &state)?;
    let fields = dto::json_body(&req, payload).await?;
    let scheduler = state.scheduler.clone();
    let answer = web::block(move || scheduler.worker_heartbeat(&fields)).await??;
    Ok(HttpResponse::Ok().json(answer))
}

//! `POST /api/testruns/{id}`: a remote worker's report about its run (claim,
//! lines, end), proven by the run's token and, when the server has one, the
//! worker secret (header `X-Testscheduler-Worker-Secret`).

use super::dto;
use super::runs::run_id;
use crate::error::AppError;
use crate::protocol::worker::SECRET_HEADER;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

/// `POST /api/testruns/{id}`: a worker's report about its run, proven by the
/// run's token. Only runs dispatched to remote workers have a token, so any
/// report about an embedded run is refused. With a worker secret, the seed's
/// token-only callback (no secret header) is refused too.
pub async fn report(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    check_worker_secret(&req, &state)?;
    let id = run_id(&path)?;
    let fields = dto::json_body(&req, payload).await?;
    let token = fields.get("token").and_then(|t| t.as_str()).map(str::to_string);
    let scheduler = state.scheduler.clone();
    let answer = web::block(move || scheduler.report(id, token.as_deref(), &fields)).await??;
    Ok(HttpResponse::Ok().json(answer))
}

/// With a worker secret set, a worker's request must carry it: else `403
/// invalid_worker_secret`, before anything is read or changed.
pub fn check_worker_secret(req: &HttpRequest, state: &AppState) -> Result<(), AppError> {
    let Some(secret) = &state.config.worker_secret else {
        return Ok(());
    };
    match req.headers().get(SECRET_HEADER) {
        Some(given) if secret.matches(given.as_bytes()) => Ok(()),
        _ => Err(AppError::InvalidWorkerSecret),
    }
}

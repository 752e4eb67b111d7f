//! `POST /api/testruns/{id}`: a remote worker's report about its run (claim,
//! lines, end), proven by the run's token.

use super::dto;
use super::runs::run_id;
use crate::error::AppError;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

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

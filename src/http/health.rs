//! `GET /healthz`: 200 when the database answers.

use crate::error::AppError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// `GET /healthz`
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let store = state.store.clone();
    web::block(move || -> Result<(), AppError> {
        store.conn()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    })
    .await?
    .map_err(|e| AppError::Unavailable(format!("Database unavailable: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

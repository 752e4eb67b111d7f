//! `GET /healthz`: 200 while the database answers and takes writes; 503
//! `unavailable` with the reason while it does not (e.g. the disk is full).

use crate::error::AppError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// `GET /healthz`
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if let Some(why) = state.store.unwritable() {
        return Err(AppError::Unavailable(format!("The database cannot be written: {why}")));
    }
    let store = state.store.clone();
    web::block(move || -> Result<(), AppError> {
        store.conn()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    })
    .await?
    .map_err(|e| AppError::Unavailable(format!("Database unavailable: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

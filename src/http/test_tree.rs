//! `GET /api/tests`: the discovered test files and directories.

use crate::error::AppError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};

/// `GET /api/tests`
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let tests = state.tests.clone();
    let paths = web::block(move || tests.list()).await?;
    Ok(HttpResponse::Ok().json(paths))
}

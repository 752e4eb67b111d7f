//! `GET /metrics`: Prometheus metrics (see `crate::metrics`); the gauges are
//! read from the store here, in `web::block`.

use crate::error::AppError;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::metrics::snapshot;
use actix_web::{web, HttpResponse};

/// The OpenMetrics content type (Prometheus reads it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> Result<HttpResponse, AppError> {
    let store = state.store.clone();
    let snap = web::block(move || -> Result<_, AppError> { Ok(snapshot(&*store.conn()?)?) }).await??;
    let workers = state.workers.list().len();
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.encode(&snap, workers)))
}

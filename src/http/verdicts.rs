//! Handlers of `GET /api/verdicts` and `GET /api/results/history`: validate
//! the query, one store read, the rules of `domain::verdicts`, answer. Thin:
//! no SQL and no rule lives here.

use crate::domain::verdicts::{judge_all, DEFAULT_WINDOW, MAX_WINDOW};
use crate::error::{AppError, FieldErrors};
use crate::state::AppState;
use crate::store::verdicts as rows;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// `?limit=` of the history when none is given.
pub const DEFAULT_HISTORY: u32 = 50;
/// The largest `?limit=` of the history.
pub const MAX_HISTORY: u32 = 1000;
/// The longest node id asked for.
const MAX_NODEID: usize = 4096;

/// Query of `GET /api/verdicts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerdictsQuery {
    /// Each test's last N results are judged: 1 to 1000, default 20.
    pub window: Option<String>,
}

/// Query of `GET /api/results/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The test, as pytest prints it: `tests/test_a.py::TestX::test_y[1]` (required).
    pub nodeid: Option<String>,
    /// At most this many results, newest first: 1 to 1000, default 50.
    pub limit: Option<String>,
}

/// `raw` as an integer from 1 to `max`, `default` when absent; else an error on `field`.
fn bounded(raw: Option<&str>, field: &str, default: u32, max: u32, errors: &mut FieldErrors) -> u32 {
    match raw {
        None => default,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors
                    .entry(field.into())
                    .or_default()
                    .push(format!("Must be an integer from 1 to {max}."));
                default
            }
        },
    }
}

/// `GET /api/verdicts?window=N`.
pub async fn verdicts(query: web::Query<VerdictsQuery>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let mut errors = FieldErrors::new();
    let window = bounded(
        query.window.as_deref(),
        "window",
        DEFAULT_WINDOW,
        MAX_WINDOW,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let store = state.store.clone();
    let threshold = state.config.suspect_threshold;
    let body = web::block(move || -> Result<Vec<u8>, AppError> {
        let windows = rows::windows(&*store.conn()?, window)?;
        serde_json::to_vec(&judge_all(&windows, threshold)).map_err(|e| AppError::Internal(e.to_string()))
    })
    .await??;
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// `GET /api/results/history?nodeid=N&limit=K`.
pub async fn history(query: web::Query<HistoryQuery>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let mut errors = FieldErrors::new();
    let limit = bounded(
        query.limit.as_deref(),
        "limit",
        DEFAULT_HISTORY,
        MAX_HISTORY,
        &mut errors,
    );
    let nodeid = match query.nodeid {
        Some(n) if n.is_empty() || n.len() > MAX_NODEID => {
            errors
                .entry("nodeid".into())
                .or_default()
                .push(format!("Must be a node id of 1 to {MAX_NODEID} bytes."));
            String::new()
        }
        Some(n) => n,
        None => {
            errors
                .entry("nodeid".into())
                .or_default()
                .push("Missing data for required field.".into());
            String::new()
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let store = state.store.clone();
    let entries = web::block(move || rows::history(&*store.conn()?, &nodeid, limit)).await??;
    Ok(HttpResponse::Ok().json(entries))
}

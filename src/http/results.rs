//! `GET /api/testruns/{id}/results` (a run's tests, in the order pytest ran
//! them) and `POST /api/testruns/{id}/rerun` (a new run through the one
//! create path, `rerun_of` set). No SQL here: store and scheduler calls in
//! `web::block`.

use super::dto;
use super::runs::run_id;
use crate::auth::{audit, Action, Principal};
use crate::domain::{Run, RunId};
use crate::error::{AppError, FieldErrors};
use crate::results::{Summary, TestOutcome, TestResult};
use crate::state::AppState;
use crate::store::{results, runs};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `?outcome=failed,error`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// Comma-separated outcomes to keep (`passed`, `failed`, `error`, `skipped`, `xfailed`, `xpassed`).
    pub outcome: Option<String>,
}

/// The answer of `GET /api/testruns/{id}/results`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunResults {
    pub id: i64,
    pub summary: Option<Summary>,
    /// In the order pytest ran them.
    pub tests: Vec<TestResult>,
}

/// Parses `?outcome=`; a bad word is a 400 naming `outcome`.
fn outcomes(raw: Option<&str>) -> Result<Option<Vec<TestOutcome>>, AppError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    raw.split(',')
        .map(|w| {
            TestOutcome::parse(w.trim()).ok_or_else(|| {
                AppError::field(
                    "outcome",
                    format!("{w:?} is not one of passed, failed, error, skipped, xfailed, xpassed."),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `GET /api/testruns/{id}/results`
pub async fn list(
    path: web::Path<String>,
    query: web::Query<ResultsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = run_id(&path)?;
    let only = outcomes(query.outcome.as_deref())?;
    let store = state.store.clone();
    let body = web::block(move || -> Result<Vec<u8>, AppError> {
        let conn = store.conn()?;
        let run = runs::get(&conn, id)?.ok_or_else(|| AppError::NotFound(format!("Run {id} not found")))?;
        let tests = results::list(&conn, id, only.as_deref())?;
        let body = RunResults {
            id,
            summary: run.summary,
            tests,
        };
        serde_json::to_vec(&body).map_err(|e| AppError::Internal(e.to_string()))
    })
    .await??;
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// The fields `POST /api/testruns/{id}/rerun` takes.
const RERUN_FIELDS: &[&str] = &["username", "only_failed", "env_id", "labels", "wait"];

/// `POST /api/testruns/{id}/rerun`
pub async fn rerun(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::QueueRun)?;
    let id = run_id(&path)?;
    let mut fields = dto::json_body(&req, payload).await?;
    principal.sign_body(&mut fields);
    let state = state.into_inner();
    let run = web::block(move || {
        let run = rerun_blocking(&state, &principal, id, &fields)?;
        audit::after(
            &state.store,
            principal.actor(),
            "run.rerun",
            &format!("run {id}"),
            &format!("run {}", run.id),
        );
        Ok::<_, AppError>(run)
    })
    .await??;
    Ok(HttpResponse::Created().json(run))
}

fn rerun_blocking(
    state: &AppState,
    principal: &Principal,
    id: RunId,
    fields: &Map<String, Value>,
) -> Result<Run, AppError> {
    let (old, failed) = {
        let conn = state.store.conn()?;
        let old = runs::get(&conn, id)?.ok_or_else(|| AppError::NotFound(format!("Run {id} not found")))?;
        let failed = results::failed_ids(&conn, id)?;
        (old, failed)
    };
    principal.require(Action::Rerun { owner: &old.username })?;
    let mut errors = FieldErrors::new();
    dto::unknown_fields(fields, RERUN_FIELDS, &mut errors);
    let only_failed = dto::bool_field(fields, "only_failed", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if !old.status.is_finished() {
        return Err(AppError::NotFinished(id));
    }
    if only_failed && failed.is_empty() {
        return Err(AppError::field(
            "only_failed",
            format!("Run {id} has no failed or errored tests."),
        ));
    }
    // The new run is asked for as a POST /api/testruns would be: the same checks.
    let mut body = Map::new();
    for key in ["username", "wait"] {
        if let Some(v) = fields.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    let given_target = ["env_id", "labels"]
        .iter()
        .any(|k| fields.get(*k).is_some_and(|v| !v.is_null()));
    if given_target {
        for key in ["env_id", "labels"] {
            if let Some(v) = fields.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
    } else {
        match (old.env_id, &old.labels) {
            (Some(env), _) => body.insert("env_id".into(), Value::from(env)),
            (None, Some(labels)) => body.insert("labels".into(), Value::from(labels.clone())),
            (None, None) => None,
        };
    }
    body.insert("path".into(), Value::from(old.path.clone()));
    body.insert(
        "timeout_s".into(),
        Value::from(old.timeout_s.min(state.config.max_run_timeout)),
    );
    body.insert("priority".into(), Value::from(old.priority));
    if let Some(k) = &old.keyword {
        body.insert("keyword".into(), Value::from(k.clone()));
    }
    if let Some(m) = &old.markers {
        body.insert("markers".into(), Value::from(m.clone()));
    }
    let select = if only_failed { Some(failed) } else { old.select.clone() };
    super::runs::queue_body(state, &body, select, Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_filters_are_checked() {
        assert_eq!(outcomes(None).expect("none"), None);
        assert_eq!(
            outcomes(Some("failed, error")).expect("two"),
            Some(vec![TestOutcome::Failed, TestOutcome::Error])
        );
        let e = outcomes(Some("failed,bogus")).expect_err("bad");
        assert!(matches!(e, AppError::Validation(f) if f.contains_key("outcome")));
    }
}

//! Handlers of `/api/envs…`: the environments, their queues, disable and
//! enable, and the state of the envs file. Thin: one scheduler call each.

use super::dto;
use crate::auth::{audit, Action, Principal};
use crate::error::AppError;
use crate::scheduler::ReservationRequest;
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

fn env_id(raw: &str) -> Result<u32, AppError> {
    raw.parse::<u32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::NotFound(format!("Environment {raw} not found")))
}

/// `GET /api/envs`: every environment with its state, holder and queue length.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let scheduler = state.scheduler.clone();
    let envs = web::block(move || scheduler.envs()).await??;
    Ok(HttpResponse::Ok().json(envs))
}

/// `GET /api/envs/{id}`: one environment and its queue in order.
pub async fn get(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = env_id(&path)?;
    let scheduler = state.scheduler.clone();
    let env = web::block(move || scheduler.env(id)).await??;
    env.map(|e| HttpResponse::Ok().json(e))
        .ok_or_else(|| AppError::NotFound(format!("Environment {id} not found")))
}

/// `GET /api/envs/config`: the envs file in use and why a newer text is not.
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.scheduler.environments().status())
}

/// `POST /api/envs/{id}/disable` `{"reason"}`.
pub async fn disable(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::ToggleEnv)?;
    let id = env_id(&path)?;
    let fields = dto::json_body(&req, payload).await?;
    let mut errors = crate::error::FieldErrors::new();
    dto::unknown_fields(&fields, &["reason"], &mut errors);
    let reason = match fields.get("reason") {
        Some(Value::String(r)) => {
            if let Some(e) = dto::name_error(r, 1, 200) {
                errors.entry("reason".into()).or_default().push(e);
            }
            r.clone()
        }
        None | Some(Value::Null) => {
            errors
                .entry("reason".into())
                .or_default()
                .push("Missing data for required field.".into());
            String::new()
        }
        Some(_) => {
            errors
                .entry("reason".into())
                .or_default()
                .push("Not a valid string.".into());
            String::new()
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let state = state.into_inner();
    let env = web::block(move || {
        let env = state.scheduler.set_disabled(id, Some(&reason))?;
        audit::after(
            &state.store,
            principal.actor(),
            "env.disable",
            &format!("env {id}"),
            &reason,
        );
        Ok::<_, AppError>(env)
    })
    .await??;
    Ok(HttpResponse::Ok().json(env))
}

/// `POST /api/envs/{id}/enable`.
pub async fn enable(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::ToggleEnv)?;
    let id = env_id(&path)?;
    let state = state.into_inner();
    let env = web::block(move || {
        let env = state.scheduler.set_disabled(id, None)?;
        audit::after(&state.store, principal.actor(), "env.enable", &format!("env {id}"), "");
        Ok::<_, AppError>(env)
    })
    .await??;
    Ok(HttpResponse::Ok().json(env))
}

/// Loads a reservation's owner and asks whether `principal` may change it.
async fn may_change_reservation(state: &AppState, principal: &Principal, id: i64) -> Result<String, AppError> {
    let store = state.store.clone();
    let owner = web::block(move || -> Result<_, AppError> {
        Ok(crate::store::reservations::get(&*store.conn()?, id)?.map(|r| r.username))
    })
    .await??
    .ok_or_else(|| AppError::NotFound(format!("Reservation {id} not found")))?;
    principal.require(Action::ChangeReservation { owner: &owner })?;
    Ok(owner)
}

fn reservation_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::NotFound(format!("Reservation {raw} not found")))
}

/// `POST /api/envs/{id}/reservations` `{"username", "duration_s", "note"?, "wait"?}`.
pub async fn reserve(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    principal.require(Action::Reserve)?;
    let env_id = env_id(&path)?;
    let mut fields = dto::json_body(&req, payload).await?;
    principal.sign_body(&mut fields);
    let valid = dto::parse_reservation(&fields, state.config.max_reservation)?;
    let state = state.into_inner();
    let r = web::block(move || {
        let r = state.scheduler.reserve(ReservationRequest {
            env_id,
            username: valid.username,
            duration_s: valid.duration_s,
            note: valid.note,
            wait: valid.wait,
        })?;
        let detail = format!("reservation {} for {} s", r.id, valid.duration_s);
        audit::after(
            &state.store,
            principal.actor(),
            "env.reserve",
            &format!("env {env_id}"),
            &detail,
        );
        Ok::<_, AppError>(r)
    })
    .await??;
    Ok(HttpResponse::Created().json(r))
}

/// `PATCH /api/reservations/{rid}` `{"until"}`.
pub async fn move_reservation(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = reservation_id(&path)?;
    let fields = dto::json_body(&req, payload).await?;
    let until = dto::parse_until(&fields)?;
    let owner = may_change_reservation(&state, &principal, id).await?;
    let state = state.into_inner();
    let r = web::block(move || {
        let r = state.scheduler.move_reservation(id, until)?;
        let detail = format!("owner {owner}, until {}", crate::domain::run::timestamp(until));
        audit::after(
            &state.store,
            principal.actor(),
            "reservation.move",
            &format!("reservation {id}"),
            &detail,
        );
        Ok::<_, AppError>(r)
    })
    .await??;
    Ok(HttpResponse::Ok().json(r))
}

/// `DELETE /api/reservations/{rid}`: ends it now.
pub async fn end_reservation(
    path: web::Path<String>,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = reservation_id(&path)?;
    let owner = may_change_reservation(&state, &principal, id).await?;
    let state = state.into_inner();
    let r = web::block(move || {
        let r = state.scheduler.end_reservation(id)?;
        audit::after(
            &state.store,
            principal.actor(),
            "reservation.end",
            &format!("reservation {id}"),
            &format!("owner {owner}"),
        );
        Ok::<_, AppError>(r)
    })
    .await??;
    Ok(HttpResponse::Ok().json(r))
}

/// Query of `GET /api/reservations`.
#[derive(Debug, serde::Deserialize)]
pub struct ReservationsQuery {
    pub active: Option<bool>,
}

/// `GET /api/reservations?active=true`.
pub async fn reservations(
    query: web::Query<ReservationsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let active = query.active.unwrap_or(false);
    let scheduler = state.scheduler.clone();
    let list = web::block(move || scheduler.reservations(active)).await??;
    Ok(HttpResponse::Ok().json(list))
}

//! The one API error type and its mapping to HTTP: a status, a stable snake_case
//! `code` and the seed's body `{"message", "errors"?}`. 5xx log their cause and
//! answer a generic message.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Field name → messages, as the seed's Marshmallow answered.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("Data validation failed")]
    Validation(FieldErrors),
    #[error("Invalid or missing run token")]
    InvalidToken,
    #[error("{0}")]
    NotFound(String),
    #[error("Environment {env_id} is busy with run {run_id}")]
    EnvBusy { env_id: u32, run_id: i64 },
    #[error("Environment {0} is disabled")]
    EnvDisabled(u32),
    #[error("Every environment with these labels is busy")]
    LabelsBusy,
    #[error("Reservation {0} has already ended")]
    ReservationOver(i64),
    #[error("Run {0} has already finished")]
    AlreadyFinished(i64),
    #[error("Run {0} has not finished yet")]
    NotFinished(i64),
    #[error("Run {0} was claimed by another worker")]
    AlreadyClaimed(i64),
    #[error("Lines must follow on from line {next}")]
    LineGap { next: u64 },
    #[error("Results must follow on from result {next}")]
    ResultsGap { next: u64 },
    #[error("Request body is larger than 1 MiB")]
    BodyTooLarge,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("Missing or wrong worker secret (header X-Testscheduler-Worker-Secret)")]
    InvalidWorkerSecret,
    /// A page of another site sent a state-changing request (or opened `/ws`).
    #[error("{0}")]
    ForbiddenOrigin(String),
    /// A `Host` this server does not answer to (DNS rebinding).
    #[error("{0}")]
    MisdirectedRequest(String),
    /// No, an expired or a revoked credential (accounts on).
    #[error("{0}")]
    Unauthenticated(String),
    /// A sign-in with a wrong name or password.
    #[error("Wrong user name or password")]
    InvalidCredentials,
    /// The role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed sign-ins; the seconds to wait.
    #[error("Too many failed sign-ins; try again in {0} s")]
    RateLimited(u64),
}

impl AppError {
    /// A validation error for one field.
    pub fn field(field: &str, message: impl Into<String>) -> AppError {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![message.into()]);
        AppError::Validation(errors)
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::InvalidToken => "invalid_token",
            AppError::NotFound(_) => "not_found",
            AppError::EnvBusy { .. } | AppError::LabelsBusy => "env_busy",
            AppError::EnvDisabled(_) => "env_disabled",
            AppError::AlreadyFinished(_) | AppError::ReservationOver(_) => "already_finished",
            AppError::NotFinished(_) => "not_finished",
            AppError::AlreadyClaimed(_) => "already_claimed",
            AppError::LineGap { .. } => "line_gap",
            AppError::ResultsGap { .. } => "results_gap",
            AppError::BodyTooLarge => "body_too_large",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
            AppError::InvalidWorkerSecret => "invalid_worker_secret",
            AppError::ForbiddenOrigin(_) => "forbidden_origin",
            AppError::MisdirectedRequest(_) => "misdirected_request",
            AppError::Unauthenticated(_) => "unauthenticated",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::RateLimited(_) => "rate_limited",
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) => StatusCode::BAD_REQUEST,
            AppError::InvalidToken => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::EnvBusy { .. }
            | AppError::EnvDisabled(_)
            | AppError::LabelsBusy
            | AppError::AlreadyFinished(_)
            | AppError::NotFinished(_)
            | AppError::ReservationOver(_)
            | AppError::AlreadyClaimed(_)
            | AppError::LineGap { .. }
            | AppError::ResultsGap { .. } => StatusCode::CONFLICT,
            AppError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::InvalidWorkerSecret => StatusCode::FORBIDDEN,
            AppError::ForbiddenOrigin(_) => StatusCode::FORBIDDEN,
            AppError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            AppError::Unauthenticated(_) | AppError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = Map::new();
        let message = match self {
            AppError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "Internal server error".to_string()
            }
            other => other.to_string(),
        };
        body.insert("message".into(), Value::String(message));
        body.insert("code".into(), Value::String(self.code().into()));
        match self {
            AppError::Validation(errors) => {
                body.insert("errors".into(), json!(errors));
            }
            AppError::EnvBusy { env_id, run_id } => {
                body.insert(
                    "errors".into(),
                    json!({ "env_id": [format!("Environment {env_id} is busy: run {run_id} holds it.")] }),
                );
                body.insert("run_id".into(), json!(run_id));
            }
            AppError::EnvDisabled(env_id) => {
                body.insert(
                    "errors".into(),
                    json!({ "env_id": [format!("Environment {env_id} is disabled: nothing new starts there.")] }),
                );
            }
            AppError::LabelsBusy => {
                body.insert(
                    "errors".into(),
                    json!({ "labels": ["Every environment with these labels is busy; send \"wait\": true to queue."] }),
                );
            }
            AppError::LineGap { next } | AppError::ResultsGap { next } => {
                body.insert("next".into(), json!(next));
            }
            AppError::RateLimited(wait) => {
                body.insert("retry_after_s".into(), json!(wait));
                return HttpResponse::build(self.status_code())
                    .insert_header((actix_web::http::header::RETRY_AFTER, wait.to_string()))
                    .json(Value::Object(body));
            }
            _ => {}
        }
        HttpResponse::build(self.status_code()).json(Value::Object(body))
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> AppError {
        AppError::Internal(format!("database: {e}"))
    }
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> AppError {
        AppError::Unavailable(format!("Database unavailable: {e}"))
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> AppError {
        AppError::Internal(format!("io: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> AppError {
        AppError::Internal(format!("blocking task: {e}"))
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> AppError {
        use crate::store::StoreError as S;
        match e {
            e if e.is_unwritable() => {
                AppError::Unavailable(format!("The database cannot be written now: {}", e.reason()))
            }
            S::Pool(e) => e.into(),
            S::Sql(e) => e.into(),
            S::EnvBusy { env_id, run_id } => AppError::EnvBusy { env_id, run_id },
            S::NotFound(id) => AppError::NotFound(format!("Run {id} not found")),
            S::LineGap { next } => AppError::LineGap { next },
            other => AppError::Internal(other.to_string()),
        }
    }
}

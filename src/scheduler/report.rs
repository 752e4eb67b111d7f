//! Reports from remote workers about their runs (`POST /api/testruns/{id}`).

use super::Scheduler;
use crate::domain::RunId;
use crate::error::AppError;
use serde_json::{Map, Value};

impl Scheduler {
    /// Checks a report's token, then applies it. Blocking.
    pub fn report(&self, id: RunId, token: Option<&str>, _fields: &Map<String, Value>) -> Result<Value, AppError> {
        let conn = self.store.conn()?;
        let hash = crate::store::runs::token_hash(&conn, id)?;
        match (token, hash) {
            (Some(t), Some(h)) if crate::store::runs::token_matches(t, &h) => Err(AppError::Unavailable(
                "remote reports are not accepted by this server yet".into(),
            )),
            _ => Err(AppError::InvalidToken),
        }
    }
}

impl Scheduler {
    /// An idle worker's heartbeat. Blocking.
    pub fn worker_heartbeat(&self, _fields: &Map<String, Value>) -> Result<Value, AppError> {
        Err(AppError::Unavailable(
            "this server does not take remote workers yet".into(),
        ))
    }
}

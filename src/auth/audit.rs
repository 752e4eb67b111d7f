//! Recording who did what (PRODUCT.md "Accounts", `GET /api/audit`). Actions
//! are dotted names: `login.failed`, `run.cancel`, `env.reserve`,
//! `env.disable`, `env.enable`, `reservation.end`, `reservation.move`,
//! `token.create`, `token.revoke`, `user.add`, `user.role`, `user.disable`,
//! `user.enable`, `user.password`.

use crate::error::AppError;
use crate::store::{audit, now_ms, Store};
use rusqlite::Connection;

/// Appends an entry on `conn`.
pub fn record(conn: &Connection, actor: &str, action: &str, target: &str, detail: &str) -> Result<(), AppError> {
    audit::record(
        conn,
        &audit::Entry {
            at_ms: now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
        },
    )?;
    Ok(())
}

/// Appends an entry after an action that already happened: a failure to
/// write it is logged, not answered (the action stands).
pub fn after(store: &Store, actor: &str, action: &str, target: &str, detail: &str) {
    let written = store
        .conn()
        .map_err(AppError::from)
        .and_then(|c| record(&c, actor, action, target, detail));
    if let Err(e) = written {
        tracing::error!(error = %e, action, target, "could not write an audit entry");
    }
}

//! Reservations: a person takes an environment for a while (only their runs
//! are admitted there), queued behind its holder and queue with `wait`,
//! moved, released early, or ended by the clock at `until`. Each end hands
//! the environment to the queue in the same transaction.

use super::queue::span;
use super::snapshot::Snapshot;
use super::Scheduler;
use crate::domain::run::{now, timestamp};
use crate::error::AppError;
use crate::store::reservations::{self, Reservation};
use crate::store::{now_ms, StoreError};
use rusqlite::TransactionBehavior;
use tracing::instrument;

/// A reservation as asked for, already validated.
#[derive(Debug, Clone)]
pub struct ReservationRequest {
    pub env_id: u32,
    pub username: String,
    pub duration_s: u64,
    pub note: String,
    pub wait: bool,
}

impl Scheduler {
    /// Reserves an environment: `active` at once when nothing holds it,
    /// `queued` with `wait`, else refused (`env_busy`, `env_disabled`). Blocking.
    #[instrument(skip(self, req), fields(env_id = req.env_id, user = %req.username))]
    pub fn reserve(&self, req: ReservationRequest) -> Result<Reservation, AppError> {
        let catalog = self.envs.catalog();
        if !catalog.contains(req.env_id) {
            return Err(AppError::NotFound(format!("Environment {} not found", req.env_id)));
        }
        let reservation = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let snap = Snapshot::read(&tx, catalog)?;
            let fits = snap.reservation_fits(req.env_id, &snap.held(), &snap.owners());
            if !fits && !req.wait {
                return Err(if snap.disabled.contains_key(&req.env_id) {
                    AppError::EnvDisabled(req.env_id)
                } else {
                    AppError::EnvBusy {
                        env_id: req.env_id,
                        run_id: snap
                            .holders
                            .iter()
                            .find(|h| h.env_id == req.env_id)
                            .map_or(0, |h| h.run_id),
                    }
                });
            }
            let span = fits.then(|| span(req.duration_s));
            let r = reservations::insert(
                &tx,
                req.env_id,
                &req.username,
                &req.note,
                req.duration_s,
                &now(),
                span.as_ref().map(|(a, b, ms)| (a.as_str(), b.as_str(), *ms)),
            )?;
            tx.commit()?;
            r
        };
        tracing::info!(reservation_id = reservation.id, status = %reservation.status, "environment reserved");
        self.queue_changed(None);
        Ok(reservation)
    }

    /// Ends a reservation now (a queued one leaves the queue); the
    /// environment goes to the queue. Blocking.
    #[instrument(skip(self))]
    pub fn end_reservation(&self, id: i64) -> Result<Reservation, AppError> {
        let admitted = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if reservations::get(&tx, id)?.is_none() {
                return Err(AppError::NotFound(format!("Reservation {id} not found")));
            }
            if !reservations::end(&tx, id, &now())? {
                return Err(AppError::ReservationOver(id));
            }
            let admitted = self.fill(&tx)?;
            tx.commit()?;
            admitted
        };
        tracing::info!(reservation_id = id, "reservation ended");
        self.admitted(admitted)?;
        reservations::get(&*self.store.conn()?, id)?
            .ok_or_else(|| AppError::NotFound(format!("Reservation {id} not found")))
    }

    /// Moves the end of an active reservation to `until` (a future moment,
    /// at most `since` + `--max-reservation`). Blocking.
    #[instrument(skip(self))]
    pub fn move_reservation(&self, id: i64, until: chrono::DateTime<chrono::Utc>) -> Result<Reservation, AppError> {
        let conn = self.store.conn()?;
        let r =
            reservations::get(&conn, id)?.ok_or_else(|| AppError::NotFound(format!("Reservation {id} not found")))?;
        match r.status.as_str() {
            "active" => {}
            "queued" => return Err(AppError::field("until", "The reservation has not started yet.")),
            _ => return Err(AppError::ReservationOver(id)),
        }
        let since = r
            .since
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        let max = since + chrono::Duration::seconds(self.config.max_reservation as i64);
        if until <= chrono::Utc::now() {
            return Err(AppError::field("until", "Must be in the future."));
        }
        if until > max {
            return Err(AppError::field(
                "until",
                format!("Must be at most {} (its start plus --max-reservation).", timestamp(max)),
            ));
        }
        if !reservations::move_until(&conn, id, &timestamp(until), until.timestamp_millis())? {
            return Err(AppError::ReservationOver(id));
        }
        drop(conn);
        tracing::info!(reservation_id = id, until = %timestamp(until), "reservation moved");
        self.queue_changed(None);
        reservations::get(&*self.store.conn()?, id)?
            .ok_or_else(|| AppError::NotFound(format!("Reservation {id} not found")))
    }

    /// Reservations: the active ones, or every one (newest first).
    pub fn reservations(&self, active_only: bool) -> Result<Vec<Reservation>, StoreError> {
        let conn = self.store.conn()?;
        if active_only {
            reservations::open(&conn, true)
        } else {
            reservations::list(&conn, 1000)
        }
    }

    /// Active reservations past their end end by themselves.
    pub(crate) fn expire_reservations(&self) -> Result<(), StoreError> {
        let late = reservations::expired(&*self.store.conn()?, now_ms())?;
        for id in late {
            let admitted = {
                let mut conn = self.store.conn()?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !reservations::end(&tx, id, &now())? {
                    continue;
                }
                let admitted = self.fill(&tx)?;
                tx.commit()?;
                admitted
            };
            tracing::info!(reservation_id = id, "reservation reached its end");
            self.admitted(admitted)?;
        }
        Ok(())
    }
}

//! The lease keeper: a background thread that ends remote runs whose worker
//! went silent past the lease (`unknown`, environment freed), stops remote runs
//! past their timeout (`timeout`; the worker hears `cancel: true` and the
//! environment is freed when it reports the end or its lease runs out), frees
//! the environments of stopped runs whose worker is gone, and drops silent
//! workers from the registry. Status moves go through the scheduler's store
//! calls here and in `mod.rs`; Redis is not touched (see `dispatch::redis`).

use super::Scheduler;
use crate::domain::{RunId, RunStatus, Transition};
use crate::store::{now_ms, remote, runs, StoreError};
use std::time::Duration;
use tracing::instrument;

/// How often the keeper looks.
pub const TICK: Duration = Duration::from_millis(250);

/// Starts the lease keeper thread.
pub fn start(scheduler: Scheduler) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("lease-keeper".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scheduler.keep_leases()));
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "lease keeper: store unavailable"),
                Err(_) => tracing::error!("lease keeper panicked; it goes on"),
            }
        })?;
    Ok(())
}

impl Scheduler {
    /// After a start: the clock of every held remote run starts again, so a
    /// worker that kept running while the server was down is not judged by
    /// the time the server was away.
    pub fn recover_remote(&self) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        let n = remote::restart_leases(&conn, now_ms() + self.config.lease.as_millis() as i64)?;
        if n > 0 {
            tracing::info!(runs = n, "remote runs keep going; their leases start again");
        }
        Ok(())
    }

    /// One pass of the keeper.
    pub(crate) fn keep_leases(&self) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        let now = now_ms();
        let expired = remote::expired_leases(&conn, now)?;
        let late = remote::running(&conn)?;
        drop(conn);
        for (id, status, worker) in expired {
            self.expire_remote(id, status, &worker)?;
        }
        for (id, started_at, timeout_s) in late {
            if super::report::past_timeout(started_at.as_deref(), timeout_s, now) {
                self.time_out_remote(id)?;
            }
        }
        self.expire_queue()?;
        self.expire_reservations()?;
        self.reload_envs()?;
        if self.workers.expire(self.config.lease) {
            self.announce_workers();
        }
        self.announce_held_back_workers();
        Ok(())
    }

    /// The lease of remote run `id` ran out: a running run ends `unknown`; a
    /// run the server had already stopped gets its environment back.
    #[instrument(skip(self))]
    fn expire_remote(&self, id: RunId, status: RunStatus, worker: &str) -> Result<(), StoreError> {
        if status != RunStatus::Running {
            if self.release(id, None)?.is_some() {
                tracing::info!(run_id = id, worker, status = %status, "stopped remote run's lease ran out; environment freed");
            }
            return Ok(());
        }
        let note = format!(
            "testscheduler: worker {worker} stopped reporting for {} s; the run ends unknown",
            self.config.lease.as_secs()
        );
        // The note comes first: once the run has ended, its log is complete.
        let still_running = runs::get(&*self.store.conn()?, id)?.is_some_and(|r| r.status == RunStatus::Running);
        if !still_running {
            return Ok(()); // ended meanwhile
        }
        self.note_in_log(id, note);
        // What its output said so far stays its results (counts not final).
        let results = self.live_results(id);
        let keep = |tx: &rusqlite::Connection| crate::store::results::store_final(tx, id, &results, None);
        if self
            .apply_with(id, &Transition::finish(RunStatus::Unknown, None), &keep)?
            .is_some()
        {
            tracing::warn!(
                run_id = id,
                worker,
                "remote worker silent past its lease; run ended unknown"
            );
        }
        Ok(())
    }

    /// Remote run `id` is past its timeout: it becomes `timeout` and keeps its
    /// environment until its worker reports it stopped (or the lease runs out).
    #[instrument(skip(self))]
    fn time_out_remote(&self, id: RunId) -> Result<(), StoreError> {
        if self
            .apply(id, &Transition::stop(RunStatus::Running, RunStatus::Timeout))?
            .is_some()
        {
            tracing::info!(
                run_id = id,
                "remote run past its timeout; its worker is told to stop it"
            );
        }
        Ok(())
    }
}

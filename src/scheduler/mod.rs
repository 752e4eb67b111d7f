//! The scheduler: admission (one run per environment, by the database), start,
//! completion, cancel and recovery. It is the only code that changes a run's
//! status, and it announces every change on the hub.

use crate::config::Config;
use crate::domain::{Run, RunId, RunStatus, Transition};
use crate::envs_file::Environments;
use crate::error::AppError;
use crate::hub::Hub;
use crate::results::LiveResults;
use crate::runner::{Finished, Outcome, Started};
use crate::store::{runs, writer::LogWriter, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tracing::instrument;

pub use crate::domain::EnvView;
pub use dispatcher::{Dispatcher, LocalOutput, LocalRun, LocalRuns};
pub use queue::{RunRequest, Target};
pub use reservations::ReservationRequest;
pub mod worker_registry;
use worker_registry::WorkerRegistry;

mod dispatcher;
pub mod lease;
mod moves;
mod queue;
mod report;
mod reservations;
mod results;
mod snapshot;

/// The scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    config: Arc<Config>,
    store: Store,
    hub: Hub,
    writer: LogWriter,
    dispatcher: Arc<dyn Dispatcher>,
    /// Remote workers that reported lately (`GET /api/workers`).
    workers: WorkerRegistry,
    /// The environments in use (`--envs` or `--envs-file`).
    envs: Environments,
    /// Set on SIGTERM: nothing new starts, queued runs stay queued.
    stopping: Arc<AtomicBool>,
    /// The environment views last sent as `envChanged` (all but plain free ones).
    env_views: Arc<Mutex<HashMap<u32, EnvView>>>,
    /// Live counts of the runs whose output is being stored (fed by the log writer).
    live: LiveResults,
}

impl Scheduler {
    /// Wires the scheduler to its store, hub, log writer and dispatcher.
    pub fn new(
        config: Arc<Config>,
        store: Store,
        hub: Hub,
        writer: LogWriter,
        dispatcher: Arc<dyn Dispatcher>,
        envs: Environments,
    ) -> Scheduler {
        Scheduler {
            config,
            store,
            hub,
            writer,
            dispatcher,
            workers: WorkerRegistry::default(),
            envs,
            stopping: Arc::new(AtomicBool::new(false)),
            env_views: Arc::default(),
            live: LiveResults::default(),
        }
    }

    /// Uses `live` (the table the log writer feeds) for live counts.
    pub fn with_live_results(mut self, live: LiveResults) -> Scheduler {
        self.live = live;
        self
    }

    /// The environments in use.
    pub fn environments(&self) -> &Environments {
        &self.envs
    }

    /// True once the server is stopping: nothing new starts.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The registry of remote workers this scheduler keeps up to date.
    pub fn workers(&self) -> &WorkerRegistry {
        &self.workers
    }

    /// The server's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops a `queued`, `created` or `running` run. Blocking.
    #[instrument(skip(self))]
    pub fn cancel(&self, id: RunId) -> Result<Run, AppError> {
        let status = {
            let conn = self.store.conn()?;
            runs::get(&conn, id)?.ok_or(StoreError::NotFound(id))?.status
        };
        if status.is_finished() {
            return Err(AppError::AlreadyFinished(id));
        }
        // A run that never started frees its environment at once; a running
        // one keeps it until its process is gone.
        let Some(run) = self.apply(id, &Transition::stop(status, RunStatus::Cancelled))? else {
            return Err(AppError::AlreadyFinished(id)); // it moved meanwhile
        };
        tracing::info!(run_id = id, from = %status, "run cancelled");
        self.dispatcher.cancel(id);
        Ok(run)
    }

    /// `created` → `running` for a run an embedded runner picked up; `None`
    /// when it is no longer waiting (cancelled meanwhile).
    #[instrument(skip(self))]
    pub fn start_local(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        self.apply(id, &Transition::start())
    }

    /// Stores the process group of an embedded run, for recovery after a crash.
    pub fn record_group(&self, id: RunId, started: Started) {
        let res = self
            .store
            .conn()
            .and_then(|c| runs::set_process_group(&c, id, started.pgid, started.start_time));
        if let Err(e) = res {
            tracing::warn!(run_id = id, error = %e, "could not store the process group");
        }
    }

    /// Ends an embedded run once its process group is gone and its output read.
    #[instrument(skip(self, finished), fields(outcome = ?finished.outcome))]
    pub fn finish_local(&self, id: RunId, finished: &Finished) -> Result<(), StoreError> {
        self.writer.flush()?;
        let status = match &finished.outcome {
            // Output the store gave up on: the run cannot say it passed.
            _ if self.writer.lost_from(id).is_some() => RunStatus::Unknown,
            Outcome::Exited(0) => RunStatus::Succeeded,
            Outcome::Exited(_) | Outcome::SpawnFailed(_) => RunStatus::Failed,
            Outcome::TimedOut => RunStatus::Timeout,
            Outcome::Cancelled => RunStatus::Cancelled,
            Outcome::Abandoned => RunStatus::Unknown,
        };
        let results = self.local_results(id, status);
        // A finished run's end is never lost: retried while the database refuses writes.
        self.store.retry_write("end of run", || {
            self.end_run_with(id, status, finished.exit_code, &results)
        })
    }

    /// Moves a `running` run to `status` and frees its environment; a run the
    /// scheduler already ended (cancelled, timed out) only gets its environment back.
    /// Its live counts become its results.
    pub(crate) fn end_run(&self, id: RunId, status: RunStatus, exit_code: Option<i32>) -> Result<(), StoreError> {
        let results = self.live_results(id);
        self.end_run_with(id, status, exit_code, &results)
    }

    /// [`Scheduler::end_run`] with the run's results, stored with its end.
    pub(crate) fn end_run_with(
        &self,
        id: RunId,
        status: RunStatus,
        exit_code: Option<i32>,
        results: &crate::results::FinalResults,
    ) -> Result<(), StoreError> {
        let outcome = crate::results::outcome_word(status, exit_code);
        let store = |tx: &rusqlite::Connection| crate::store::results::store_final(tx, id, results, outcome);
        let run = match self.apply_with(id, &Transition::finish(status, exit_code), &store)? {
            Some(run) => Some(run),
            None => {
                self.keep_stopped_results(id, results)?;
                self.release(id, exit_code)?
            }
        };
        if let Some(run) = run {
            tracing::info!(run_id = id, status = %run.status, exit_code, lines = run.lines, "run finished");
        }
        Ok(())
    }

    /// Appends the server's own last word to run `id`'s log (why it ended).
    pub(crate) fn note_in_log(&self, id: RunId, note: String) {
        if let Err(e) = self.writer.note(id, note) {
            tracing::warn!(run_id = id, error = %e, "could not add a note to the log");
        }
    }

    /// Before the server exits: runs executing here are stopped (their process
    /// groups with them) and end `unknown`, waiting at most `grace`.
    pub fn shutdown(&self, grace: std::time::Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.dispatcher.shutdown(grace);
        match self.writer.flush_within(grace) {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the log writer could not store everything before shutdown"),
            Err(e) => tracing::warn!(error = %e, "could not flush the log writer at shutdown"),
        }
    }

    /// After a restart: embedded runs that were running lost their reader, so
    /// what is left of their process groups is killed and they end `unknown`;
    /// `created` runs are handed to the dispatcher again, oldest first.
    #[instrument(skip(self))]
    pub fn recover(&self) -> Result<(), StoreError> {
        let (orphans, waiting) = {
            let conn = self.store.conn()?;
            (
                runs::orphaned_local_runs(&conn)?,
                runs::ids_with_status(&conn, RunStatus::Created)?,
            )
        };
        for (id, pgid, start) in orphans {
            if let (Some(pgid), Some(start)) = (pgid, start) {
                let killed = crate::runner::kill_leftover_group(pgid, start);
                if killed > 0 {
                    tracing::warn!(
                        run_id = id,
                        pgid,
                        killed,
                        "killed what was left of a lost run's process group"
                    );
                }
            }
            self.note_in_log(
                id,
                "testscheduler: the server restarted while this run was running; its output ends here".to_string(),
            );
            self.end_run(id, RunStatus::Unknown, None)?;
            tracing::warn!(run_id = id, "run lost by a previous server ended unknown");
        }
        for id in waiting {
            let run = runs::get(&*self.store.conn()?, id)?;
            if let Some(run) = run {
                if let Err(e) = self.dispatcher.submit(&run) {
                    tracing::error!(run_id = id, error = %e, "could not queue a waiting run again");
                }
            }
        }
        // Queued runs waited through the restart in their order.
        self.fill_now()?;
        Ok(())
    }
}

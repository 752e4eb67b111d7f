//! The scheduler: admission (one run per environment, by the database), start,
//! completion, cancel and recovery. It is the only code that changes a run's
//! status, and it announces every change on the hub.

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::domain::{run::now, Run, RunId, RunStatus};
use crate::error::AppError;
use crate::hub::{Hub, LogEvent, RunEvent};
use crate::runner::{Finished, Outcome, Started};
use crate::store::{logs, runs, writer::LogWriter, Store, StoreError};
use crate::workers::WorkerRegistry;
use std::sync::Arc;
use tracing::instrument;

pub mod lease;
mod report;

/// A run as asked for, already validated.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub username: String,
    pub env_id: u32,
    pub path: String,
    pub timeout_s: u64,
}

/// The scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) hub: Hub,
    pub(crate) writer: LogWriter,
    pub(crate) dispatcher: Arc<dyn Dispatcher>,
    /// Remote workers that reported lately (`GET /api/workers`).
    pub(crate) workers: WorkerRegistry,
}

impl Scheduler {
    /// Wires the scheduler to its store, hub, log writer and dispatcher.
    pub fn new(
        config: Arc<Config>,
        store: Store,
        hub: Hub,
        writer: LogWriter,
        dispatcher: Arc<dyn Dispatcher>,
    ) -> Scheduler {
        Scheduler {
            config,
            store,
            hub,
            writer,
            dispatcher,
            workers: WorkerRegistry::default(),
        }
    }

    /// The registry of remote workers this scheduler keeps up to date.
    pub fn workers(&self) -> &WorkerRegistry {
        &self.workers
    }

    /// The server's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Admits a run: stored as `created` unless its environment is held (then
    /// `EnvBusy`), announced, and handed to the dispatcher. Blocking.
    #[instrument(skip(self, req), fields(env_id = req.env_id, path = %req.path, user = %req.username))]
    pub fn create(&self, req: RunRequest) -> Result<Run, AppError> {
        let conn = self.store.conn()?;
        let run = runs::insert(
            &conn,
            &runs::NewRun {
                username: req.username,
                env_id: req.env_id,
                path: req.path,
                timeout_s: req.timeout_s,
                created_at: now(),
            },
        )?;
        drop(conn);
        tracing::info!(run_id = run.id, user = %run.username, "run queued");
        self.hub.publish_run(RunEvent::Added, &run);
        if let Err(e) = self.dispatcher.submit(&run) {
            tracing::error!(run_id = run.id, error = %e, "dispatch failed; the run waits for the next start");
        }
        Ok(run)
    }

    /// Stops a `created` or `running` run. Blocking.
    #[instrument(skip(self))]
    pub fn cancel(&self, id: RunId) -> Result<Run, AppError> {
        let conn = self.store.conn()?;
        let run = runs::get(&conn, id)?.ok_or(StoreError::NotFound(id))?;
        let moved = match run.status {
            // Nothing runs yet: the environment is free at once.
            RunStatus::Created => runs::move_status(
                &conn,
                id,
                RunStatus::Created,
                RunStatus::Cancelled,
                true,
                None,
                Some(&now()),
            )?,
            // The process still runs: the environment is freed once it is gone.
            RunStatus::Running => runs::move_status(
                &conn,
                id,
                RunStatus::Running,
                RunStatus::Cancelled,
                false,
                None,
                Some(&now()),
            )?,
            _ => false,
        };
        if !moved {
            return Err(AppError::AlreadyFinished(id));
        }
        let run = runs::get(&conn, id)?.ok_or(StoreError::NotFound(id))?;
        drop(conn);
        tracing::info!(run_id = id, from = %run.status, "run cancelled");
        self.dispatcher.cancel(id);
        self.hub.publish_run(RunEvent::Changed, &run);
        if run.started_at.is_none() {
            self.hub.publish_log(
                id,
                LogEvent::End {
                    total: run.lines,
                    status: run.status,
                },
            );
        }
        Ok(run)
    }

    /// `created` → `running` for a run an embedded runner picked up; `None`
    /// when it is no longer waiting (cancelled meanwhile).
    #[instrument(skip(self))]
    pub fn start_local(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let conn = self.store.conn()?;
        if !runs::mark_running(&conn, id, &now(), None)? {
            return Ok(None);
        }
        let run = runs::get(&conn, id)?;
        if let Some(run) = &run {
            self.hub.publish_run(RunEvent::Changed, run);
        }
        Ok(run)
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
            Outcome::Exited(0) => RunStatus::Succeeded,
            Outcome::Exited(_) | Outcome::SpawnFailed(_) => RunStatus::Failed,
            Outcome::TimedOut => RunStatus::Timeout,
            Outcome::Cancelled => RunStatus::Cancelled,
            Outcome::Abandoned => RunStatus::Unknown,
        };
        self.end_run(id, status, finished.exit_code)
    }

    /// Moves a `running` run to `status` and frees its environment; a run the
    /// scheduler already ended (cancelled) only gets its environment back.
    pub(crate) fn end_run(&self, id: RunId, status: RunStatus, exit_code: Option<i32>) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        let moved = runs::move_status(&conn, id, RunStatus::Running, status, true, exit_code, Some(&now()))?;
        if !moved {
            runs::release(&conn, id, exit_code)?;
        }
        let Some(run) = runs::get(&conn, id)? else {
            return Err(StoreError::NotFound(id));
        };
        drop(conn);
        tracing::info!(run_id = id, status = %run.status, exit_code, lines = run.lines, "run finished");
        self.announce_end(&run);
        Ok(())
    }

    /// Tells every client the run changed and its followers that its log is complete.
    pub(crate) fn announce_end(&self, run: &Run) {
        self.hub.publish_run(RunEvent::Changed, run);
        self.hub.publish_log(
            run.id,
            LogEvent::End {
                total: run.lines,
                status: run.status,
            },
        );
    }

    /// Appends the server's own last word to run `id`'s log (why it ended).
    /// Takes and returns its own connection: the log writer needs one too.
    pub(crate) fn note_in_log(&self, id: RunId, note: String) {
        let res = self
            .store
            .conn()
            .and_then(|conn| logs::count(&conn, id))
            .and_then(|next| self.writer.append_checked(id, next, vec![note]));
        if let Err(e) = res {
            tracing::warn!(run_id = id, error = %e, "could not add a note to the log");
        }
    }

    /// Before the server exits: runs executing here are stopped (their process
    /// groups with them) and end `unknown`, waiting at most `grace`.
    pub fn shutdown(&self, grace: std::time::Duration) {
        self.dispatcher.shutdown(grace);
        if let Err(e) = self.writer.flush() {
            tracing::warn!(error = %e, "could not flush the log writer at shutdown");
        }
    }

    /// After a restart: embedded runs that were running lost their reader, so
    /// what is left of their process groups is killed and they end `unknown`;
    /// `created` runs are handed to the dispatcher again, oldest first.
    #[instrument(skip(self))]
    pub fn recover(&self) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        for (id, pgid, start) in runs::orphaned_local_runs(&conn)? {
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
            let moved = runs::move_status(
                &conn,
                id,
                RunStatus::Running,
                RunStatus::Unknown,
                true,
                None,
                Some(&now()),
            )?;
            if !moved {
                runs::release(&conn, id, None)?;
            }
            tracing::warn!(run_id = id, "run lost by a previous server ended unknown");
        }
        for id in runs::ids_with_status(&conn, RunStatus::Created)? {
            if let Some(run) = runs::get(&conn, id)? {
                if let Err(e) = self.dispatcher.submit(&run) {
                    tracing::error!(run_id = id, error = %e, "could not queue a waiting run again");
                }
            }
        }
        Ok(())
    }
}

//! The one way a run's status moves: [`Scheduler::apply`] checks a
//! [`Transition`] against the table in `domain::transition`, carries it out as
//! one conditional update (`store::runs::apply`) and announces the result.
//! [`Scheduler::release`] is its only sibling: it frees the environment of a
//! run that already reached its end (a stopped process finally gone). Both
//! hand a freed environment to the queue in the same transaction. Every move
//! reaches the store through `apply_in`, the one checked update.

use super::Scheduler;
use crate::domain::{run::now, EnvHold, Run, RunId, Transition};
use crate::hub::{LogEvent, RunEvent};
use crate::store::{runs, StoreError};
use rusqlite::{Connection, TransactionBehavior};

impl Scheduler {
    /// Moves run `id` as `t` says. `Ok(None)` when the run was no longer in
    /// `t.from` (someone moved it first); an illegal move is refused before
    /// the store is touched. An environment the move frees goes to the queue
    /// in the same transaction. The new state is announced (`taskChanged`,
    /// and `logEnd` to followers once the run ended and freed its environment).
    pub fn apply(&self, id: RunId, t: &Transition) -> Result<Option<Run>, StoreError> {
        self.apply_with(id, t, &|_| Ok(()))
    }

    /// [`Scheduler::apply`], with `also` written in the same transaction once
    /// the move happened (a run's final results reach the store with its end).
    pub(super) fn apply_with(
        &self,
        id: RunId,
        t: &Transition,
        also: &dyn Fn(&Connection) -> Result<(), StoreError>,
    ) -> Result<Option<Run>, StoreError> {
        t.check(id)?;
        let (run, admitted) = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !self.apply_in(&tx, id, t)? {
                return Ok(None);
            }
            also(&tx)?;
            let admitted = if t.env == EnvHold::Release {
                self.fill(&tx)?
            } else {
                Vec::new()
            };
            tx.commit()?;
            let conn = &*conn;
            (runs::get(conn, id)?.ok_or(StoreError::NotFound(id))?, admitted)
        };
        tracing::info!(run_id = id, from = %t.from, to = %t.to, env = ?t.env, "run moved");
        self.announce(&run, t.ends_log());
        self.admitted(admitted)?;
        Ok(Some(run))
    }

    /// Frees the environment of a run that already ended (a run that can
    /// still move is left alone) and gives it to the queue in the same
    /// transaction. Records `exit_code` if it had none. `Ok(None)` when it
    /// held nothing.
    pub fn release(&self, id: RunId, exit_code: Option<i32>) -> Result<Option<Run>, StoreError> {
        let (run, admitted) = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !runs::release(&tx, id, exit_code)? {
                return Ok(None);
            }
            let admitted = self.fill(&tx)?;
            tx.commit()?;
            (runs::get(&conn, id)?.ok_or(StoreError::NotFound(id))?, admitted)
        };
        tracing::info!(run_id = id, status = %run.status, "environment freed");
        self.announce(&run, run.status.is_finished());
        self.admitted(admitted)?;
        Ok(Some(run))
    }

    /// The one place a move reaches the store: checked against the table,
    /// then one conditional update inside the caller's transaction. False
    /// when the run was not in `t.from`. The caller announces.
    pub(super) fn apply_in(&self, tx: &Connection, id: RunId, t: &Transition) -> Result<bool, StoreError> {
        t.check(id)?;
        runs::apply(tx, id, t, &now())
    }

    /// Runs the queue gave an environment (`queued` → `created`) are
    /// announced and handed to the dispatcher; the queue's places move.
    pub(super) fn admitted(&self, ids: Vec<RunId>) -> Result<(), StoreError> {
        for id in ids {
            let Some(run) = runs::get(&*self.store.conn()?, id)? else {
                continue;
            };
            tracing::info!(run_id = id, env_id = run.env_id, "queued run got its environment");
            self.announce(&run, false);
            if let Err(e) = self.dispatcher.submit(&run) {
                tracing::error!(run_id = id, error = %e, "dispatch failed; the run waits for the next start");
            }
        }
        self.queue_changed(None);
        Ok(())
    }

    /// Tells every client the run changed and, when `log_ended`, its
    /// followers that its log is complete.
    pub(super) fn announce(&self, run: &Run, log_ended: bool) {
        self.hub.publish_run(RunEvent::Changed, run);
        if log_ended {
            self.hub.publish_log(
                run.id,
                LogEvent::End {
                    total: run.lines,
                    status: run.status,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Config};
    use crate::domain::{EnvHold, RunStatus};
    use crate::envs_file::Environments;
    use crate::hub::Hub;
    use crate::scheduler::{Dispatcher, RunRequest, Target};
    use crate::store::{writer::LogWriter, Store};
    use clap::Parser;
    use std::sync::Arc;

    struct Nowhere;
    impl Dispatcher for Nowhere {
        fn submit(&self, _run: &Run) -> Result<(), String> {
            Ok(())
        }
        fn cancel(&self, _id: RunId) {}
    }

    fn scheduler(dir: &tempfile::TempDir) -> Scheduler {
        let db = dir.path().join("t.db");
        let db = db.to_str().expect("temp paths are UTF-8");
        let project = dir.path().to_str().expect("temp paths are UTF-8");
        let cli = Cli::try_parse_from(["testscheduler", "--database", db, "--project-dir", project]).expect("flags");
        let config = Arc::new(Config::from_args(cli.serve).expect("config"));
        let store = Store::open(&config.database).expect("store");
        let writer =
            LogWriter::start(store.clone(), Box::new(|_| {}), std::time::Duration::from_secs(60)).expect("writer");
        let envs = Environments::fixed(config.envs.clone());
        Scheduler::new(config, store, Hub::new(), writer, Arc::new(Nowhere), envs)
    }

    fn request() -> RunRequest {
        RunRequest {
            username: "alice".into(),
            target: Target::Env(1),
            path: "./tests/".into(),
            timeout_s: 60,
            wait: false,
            priority: 0,
            queue_timeout_s: None,
            picks: Default::default(),
        }
    }

    #[test]
    fn an_illegal_move_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = scheduler(&dir);
        let run = s.create(request()).expect("created");
        let skip = Transition::finish(RunStatus::Succeeded, Some(0));
        let jump = Transition {
            from: RunStatus::Created,
            ..skip
        };
        let err = s.apply(run.id, &jump).expect_err("created → succeeded is not a move");
        assert!(matches!(err, StoreError::IllegalMove(_)), "{err}");
        let back = Transition::new(RunStatus::Cancelled, RunStatus::Created, EnvHold::Keep);
        assert!(s.apply(run.id, &back).is_err(), "nothing leaves an end");
        let conn = s.store.conn().expect("conn");
        let stored = runs::get(&conn, run.id).expect("read").expect("run");
        assert_eq!(stored.status, RunStatus::Created);
        assert_eq!(runs::env_holder(&conn, 1).expect("holder"), Some(run.id));
    }

    #[test]
    fn a_move_from_a_status_the_run_left_does_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = scheduler(&dir);
        let run = s.create(request()).expect("created");
        assert!(s.apply(run.id, &Transition::start()).expect("start").is_some());
        assert!(s.apply(run.id, &Transition::start()).expect("again").is_none());
        let done = s
            .apply(run.id, &Transition::finish(RunStatus::Failed, Some(1)))
            .expect("finish")
            .expect("moved");
        assert_eq!(done.status, RunStatus::Failed);
        assert_eq!(done.exit_code, Some(1));
        assert!(done.finished_at.is_some());
        let conn = s.store.conn().expect("conn");
        assert_eq!(runs::env_holder(&conn, 1).expect("holder"), None, "the end frees it");
    }
}

//! The one way a run's status moves: [`Scheduler::apply`] checks a
//! [`Transition`] against the table in `domain::transition`, carries it out as
//! one conditional update (`store::runs::apply`) and announces the result.
//! [`Scheduler::release`] is its only sibling: it frees the environment of a
//! run that already reached its end (a stopped process finally gone). Every
//! other file of the scheduler goes through these two.

use super::Scheduler;
use crate::domain::{run::now, Run, RunId, Transition};
use crate::hub::LogEvent;
use crate::store::{runs, StoreError};

impl Scheduler {
    /// Moves run `id` as `t` says. `Ok(None)` when the run was no longer in
    /// `t.from` (someone moved it first); an illegal move is refused before
    /// the store is touched. The new state is announced (`taskChanged`, and
    /// `logEnd` to followers once the run ended and freed its environment).
    pub fn apply(&self, id: RunId, t: &Transition) -> Result<Option<Run>, StoreError> {
        t.check(id)?;
        let run = {
            let conn = self.store.conn()?;
            if !runs::apply(&conn, id, t, &now())? {
                return Ok(None);
            }
            runs::get(&conn, id)?.ok_or(StoreError::NotFound(id))?
        };
        tracing::info!(run_id = id, from = %t.from, to = %t.to, env = ?t.env, "run moved");
        self.announce(&run, t.ends_log());
        Ok(Some(run))
    }

    /// Frees the environment of a run that already ended (or ends it
    /// nowhere: a run still `running` is left alone). Records `exit_code` if
    /// it had none. `Ok(None)` when it held nothing.
    pub fn release(&self, id: RunId, exit_code: Option<i32>) -> Result<Option<Run>, StoreError> {
        let run = {
            let conn = self.store.conn()?;
            if !runs::release(&conn, id, exit_code)? {
                return Ok(None);
            }
            runs::get(&conn, id)?.ok_or(StoreError::NotFound(id))?
        };
        tracing::info!(run_id = id, status = %run.status, "environment freed");
        self.announce(&run, run.status.is_finished());
        Ok(Some(run))
    }

    /// Tells every client the run changed and, when `log_ended`, its
    /// followers that its log is complete.
    fn announce(&self, run: &Run, log_ended: bool) {
        self.hub.publish_run("taskChanged", run);
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
    use crate::hub::Hub;
    use crate::scheduler::{Dispatcher, RunRequest};
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
        let writer = LogWriter::start(store.clone(), Box::new(|_| {})).expect("writer");
        Scheduler::new(config, store, Hub::new(), writer, Arc::new(Nowhere))
    }

    fn request() -> RunRequest {
        RunRequest {
            username: "alice".into(),
            env_id: 1,
            path: "./tests/".into(),
            timeout_s: 60,
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

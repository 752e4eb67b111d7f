//! What the scheduler needs from whatever executes runs: the [`Dispatcher`]
//! trait it consumes (implemented in `dispatch/`: the embedded pool and the
//! Redis adapter), and [`LocalRun`], the narrow handle the embedded pool gets
//! for one run, so that the pool never reaches into the scheduler's parts.

use super::Scheduler;
use crate::config::fill_command;
use crate::domain::{Run, RunId, RunStatus};
use crate::hub::LogEvent;
use crate::runner::{Finished, Output, RunSpec, Started};
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Hands runs to executors and passes cancel requests on.
pub trait Dispatcher: Send + Sync {
    /// Queues a `created` run. It may be given again after a restart.
    fn submit(&self, run: &Run) -> Result<(), String>;
    /// The scheduler cancelled `id`: stop it if it runs here.
    fn cancel(&self, id: RunId);
    /// The server is exiting: stop what runs in this process, waiting at most `grace`.
    fn shutdown(&self, _grace: Duration) {}
}

/// Hands the embedded pool one [`LocalRun`] per run id; cheap to clone.
#[derive(Clone)]
pub struct LocalRuns(Scheduler);

/// What an embedded runner thread may do with the one run it executes.
pub struct LocalRun {
    id: RunId,
    scheduler: Scheduler,
}

impl Scheduler {
    /// The handle the embedded pool executes runs through.
    pub fn local_runs(&self) -> LocalRuns {
        LocalRuns(self.clone())
    }
}

impl LocalRuns {
    /// The handle for run `id`.
    pub fn run(&self, id: RunId) -> LocalRun {
        LocalRun {
            id,
            scheduler: self.0.clone(),
        }
    }
}

impl LocalRun {
    /// `created` → `running`; the command to execute, or `None` when the run
    /// is no longer waiting (cancelled meanwhile).
    pub fn start(&self) -> Result<Option<RunSpec>, StoreError> {
        // Recorded first, so that the `running` frame carries it.
        self.scheduler.record_revision(self.id);
        let Some(run) = self.scheduler.start_local(self.id)? else {
            return Ok(None);
        };
        // A created run always holds its environment.
        let env_id = run.env_id.unwrap_or_default();
        let config = self.scheduler.config();
        let sel = crate::results::args::Selection {
            path: run.path.clone(),
            select: run.select.clone(),
            keyword: run.keyword.clone(),
            markers: run.markers.clone(),
        };
        let mut argv = fill_command(&config.command, &sel, env_id, self.id);
        if let Some(file) = self.scheduler.junit_file(self.id) {
            prepare_junit(&file);
            argv = crate::results::args::fill_junit(&argv, &file);
        }
        Ok(Some(RunSpec {
            run_id: self.id,
            env_id,
            argv,
            cwd: config.project_dir.clone(),
            timeout: Duration::from_secs(run.timeout_s),
            vars: self.scheduler.environments().catalog().vars(env_id),
        }))
    }

    /// Where the run's output goes: lines to the log writer (announced once
    /// stored), the unfinished line straight to followers.
    pub fn output(&self) -> LocalOutput<'_> {
        LocalOutput { run: self }
    }

    /// Stores the process group, for recovery after a crash.
    pub fn record_group(&self, started: Started) {
        self.scheduler.record_group(self.id, started);
    }

    /// The process group is gone and its output read: the run ends.
    pub fn finish(&self, finished: &Finished) {
        if let Err(e) = self.scheduler.finish_local(self.id, finished) {
            tracing::error!(run_id = self.id, error = %e, "could not record the end of a run");
        }
    }

    /// The runner thread panicked: the run ends `unknown`.
    pub fn abandon(&self) {
        if let Err(e) = self.scheduler.end_run(self.id, RunStatus::Unknown, None) {
            tracing::error!(run_id = self.id, error = %e, "could not end a run whose runner panicked");
        }
    }
}

/// Makes the JUnit file's folder and removes a file left from before (a
/// run id is never reused, but a database may be).
fn prepare_junit(file: &std::path::Path) {
    if let Some(dir) = file.parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not make the JUnit folder");
        }
    }
    let _ = std::fs::remove_file(file);
}

/// Output of an embedded run (see [`LocalRun::output`]).
pub struct LocalOutput<'a> {
    run: &'a LocalRun,
}

impl Output for LocalOutput<'_> {
    fn lines(&mut self, from: u64, lines: Vec<String>) {
        let id = self.run.id;
        if let Err(e) = self.run.scheduler.writer.append(id, from, lines) {
            tracing::error!(run_id = id, error = %e, "lost output lines");
        }
    }

    fn partial(&mut self, line: u64, text: String) {
        self.run.scheduler.hub.publish_log(
            self.run.id,
            LogEvent::Partial {
                line,
                text: Arc::from(text),
            },
        );
    }
}

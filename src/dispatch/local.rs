//! The embedded pool: named threads fed over a crossbeam channel, each running
//! one run at a time with the shared runner, under `catch_unwind`.

use super::Dispatcher;
use crate::config::fill_command;
use crate::domain::{Run, RunId};
use crate::hub::{Hub, LogEvent};
use crate::runner::{self, Output, RunSpec, StopFlag, StopReason};
use crate::scheduler::Scheduler;
use crate::store::writer::LogWriter;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Stop flags of the runs executing here.
#[derive(Default)]
struct Running(Mutex<HashMap<RunId, StopFlag>>);

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, StopFlag>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pool's dispatcher half: queues run ids, raises stop flags.
pub struct LocalDispatcher {
    tx: Sender<RunId>,
    running: Arc<Running>,
}

/// The pool's executing half, started once the scheduler exists.
pub struct LocalPool {
    rx: Receiver<RunId>,
    running: Arc<Running>,
}

/// A dispatcher and the pool that serves it.
pub fn channel() -> (LocalDispatcher, LocalPool) {
    let (tx, rx) = unbounded();
    let running = Arc::new(Running::default());
    (
        LocalDispatcher {
            tx,
            running: running.clone(),
        },
        LocalPool { rx, running },
    )
}

impl Dispatcher for LocalDispatcher {
    fn submit(&self, run: &Run) -> Result<(), String> {
        self.tx
            .send(run.id)
            .map_err(|_| "the local pool has stopped".to_string())
    }

    fn shutdown(&self, grace: Duration) {
        let stopping: Vec<RunId> = {
            let running = self.running.lock();
            for flag in running.values() {
                flag.raise_because(StopReason::Shutdown);
            }
            running.keys().copied().collect()
        };
        if stopping.is_empty() {
            return;
        }
        tracing::info!(runs = ?stopping, "stopping the runs of the embedded pool");
        let deadline = std::time::Instant::now() + grace;
        while !self.running.lock().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cancel(&self, id: RunId) {
        if let Some(flag) = self.running.lock().get(&id) {
            flag.raise();
        }
    }
}

impl LocalPool {
    /// Starts `threads` named runner threads (none for `--workers 0`).
    pub fn start(self, threads: usize, scheduler: Scheduler) -> std::io::Result<()> {
        for i in 0..threads {
            let rx = self.rx.clone();
            let running = self.running.clone();
            let scheduler = scheduler.clone();
            std::thread::Builder::new().name(format!("runner-{i}")).spawn(move || {
                for id in rx {
                    let res =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(&scheduler, &running, id)));
                    if res.is_err() {
                        tracing::error!(run_id = id, "runner panicked; the run ends unknown");
                        let _ = scheduler.end_run(id, crate::domain::RunStatus::Unknown, None);
                    }
                    running.lock().remove(&id);
                }
            })?;
        }
        Ok(())
    }
}

fn run_one(scheduler: &Scheduler, running: &Running, id: RunId) {
    let stop = StopFlag::new();
    running.lock().insert(id, stop.clone());
    let run = match scheduler.start_local(id) {
        Ok(Some(run)) => run,
        Ok(None) => return, // cancelled before it started
        Err(e) => {
            tracing::error!(run_id = id, error = %e, "could not start run");
            return;
        }
    };
    let config = scheduler.config();
    let spec = RunSpec {
        run_id: id,
        env_id: run.env_id,
        argv: fill_command(&config.command, &run.path, run.env_id, id),
        cwd: config.project_dir.clone(),
        timeout: Duration::from_secs(run.timeout_s),
    };
    let mut out = LocalOutput {
        run_id: id,
        writer: scheduler.writer.clone(),
        hub: scheduler.hub.clone(),
    };
    let finished = runner::execute(&spec, &mut out, &stop, &mut |started| {
        scheduler.record_group(id, started)
    });
    if let Err(e) = scheduler.finish_local(id, &finished) {
        tracing::error!(run_id = id, error = %e, "could not record the end of a run");
    }
}

/// Output of an embedded run: lines to the log writer (which announces them
/// once stored), unfinished lines straight to the hub.
struct LocalOutput {
    run_id: RunId,
    writer: LogWriter,
    hub: Hub,
}

impl Output for LocalOutput {
    fn lines(&mut self, from: u64, lines: Vec<String>) {
        if let Err(e) = self.writer.append(self.run_id, from, lines) {
            tracing::error!(run_id = self.run_id, error = %e, "lost output lines");
        }
    }

    fn partial(&mut self, line: u64, text: String) {
        self.hub.publish_log(
            self.run_id,
            LogEvent::Partial {
                line,
                text: Arc::from(text),
            },
        );
    }
}

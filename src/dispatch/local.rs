//! The embedded pool: named threads fed over a crossbeam channel, each running
//! one run at a time with the shared runner, under `catch_unwind`.

use super::Dispatcher;
use crate::domain::{Run, RunId};
use crate::runner::{self, StopFlag, StopReason};
use crate::scheduler::{LocalRun, LocalRuns};
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
    pub fn start(self, threads: usize, runs: LocalRuns) -> std::io::Result<()> {
        for i in 0..threads {
            let rx = self.rx.clone();
            let running = self.running.clone();
            let runs = runs.clone();
            std::thread::Builder::new().name(format!("runner-{i}")).spawn(move || {
                for id in rx {
                    let run = runs.run(id);
                    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(&run, &running, id)));
                    if res.is_err() {
                        tracing::error!(run_id = id, "runner panicked; the run ends unknown");
                        run.abandon();
                    }
                    running.lock().remove(&id);
                }
            })?;
        }
        Ok(())
    }
}

fn run_one(run: &LocalRun, running: &Running, id: RunId) {
    let stop = StopFlag::new();
    running.lock().insert(id, stop.clone());
    let spec = match run.start() {
        Ok(Some(spec)) => spec,
        Ok(None) => return, // cancelled before it started
        Err(e) => {
            tracing::error!(run_id = id, error = %e, "could not start run");
            return;
        }
    };
    let finished = runner::execute(&spec, &mut run.output(), &stop, &mut |started| {
        run.record_group(started)
    });
    run.finish(&finished);
}

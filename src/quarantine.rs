//! `--quarantine`: an environment that becomes `suspect` (docs/verdicts.md)
//! is disabled through the scheduler's one disable path, with the reason
//! `suspect: N tests fail only here`; its queue then holds until someone
//! enables it. Only `env_suspect` fails newer than the environment's last
//! enable count, so enabling it again sticks until new evidence arrives. An
//! environment already disabled (by hand or by quarantine) is left alone.
//!
//! A watcher thread reads the hub's run events and re-evaluates after runs
//! end (events that arrive meanwhile are folded into one evaluation); the
//! scheduler never waits for it.

use crate::domain::verdicts::{fresh_suspects, judge_all, DEFAULT_WINDOW};
use crate::hub::Hub;
use crate::scheduler::Scheduler;
use crate::store::{verdicts as rows, Store, StoreError};
use std::collections::HashMap;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// The reason a quarantined environment is disabled with.
pub fn reason(tests: usize) -> String {
    format!("suspect: {tests} tests fail only here")
}

/// Starts the watcher when `--quarantine` is on. Call it before the scheduler
/// can end a run (recovery included).
pub fn start(enabled: bool, threshold: usize, store: Store, scheduler: Scheduler, hub: &Hub) -> std::io::Result<()> {
    if !enabled {
        return Ok(());
    }
    let mut events = hub.subscribe_runs();
    std::thread::Builder::new()
        .name("quarantine".into())
        .spawn(move || loop {
            match events.blocking_recv() {
                Ok(frame) if crate::notify::finished_run(&frame).is_some() => {}
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "quarantine lagged on run events"),
                Err(RecvError::Closed) => return,
            }
            if drain(&mut events) {
                return;
            }
            if let Err(e) = evaluate(threshold, &store, &scheduler) {
                tracing::warn!(error = %e, "quarantine could not evaluate the verdicts");
            }
        })?;
    Ok(())
}

/// Takes what is already waiting (one evaluation covers it); true once the hub is gone.
fn drain(events: &mut broadcast::Receiver<std::sync::Arc<str>>) -> bool {
    loop {
        match events.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Closed) => return true,
        }
    }
}

/// Judges the default window and disables each environment that is
/// `suspect` on fresh evidence and not disabled yet. Blocking.
pub fn evaluate(threshold: usize, store: &Store, scheduler: &Scheduler) -> Result<(), StoreError> {
    let (verdicts, windows, states) = {
        let conn = store.conn()?;
        let windows = rows::windows(&conn, DEFAULT_WINDOW)?;
        let verdicts = judge_all(&windows, threshold);
        let mut states = HashMap::new();
        for env in &verdicts.envs {
            states.insert(env.id, rows::env_state(&conn, env.id)?);
        }
        (verdicts, windows, states)
    };
    let fresh = fresh_suspects(&windows, &verdicts, threshold, |id| {
        states.get(&id).and_then(|s| s.enabled_at.as_deref())
    });
    for (env, tests) in fresh {
        if states.get(&env).is_some_and(|s| s.disabled_reason.is_some()) {
            continue;
        }
        match scheduler.set_disabled(env, Some(&reason(tests))) {
            Ok(_) => tracing::warn!(env_id = env, tests, "environment quarantined: suspect"),
            Err(e) => tracing::warn!(env_id = env, error = %e, "quarantine could not disable the environment"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reason_says_how_many_tests_fail_only_here() {
        assert_eq!(super::reason(3), "suspect: 3 tests fail only here");
    }
}

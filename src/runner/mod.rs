//! The one runner used by the embedded pool and by remote workers: it spawns a
//! run's command (an argv, never a shell) in its own process group with stdout
//! and stderr on one pipe, turns the output into numbered lines, and stops the
//! whole group on exit, cancel or timeout. It knows nothing of SQL, HTTP or Redis:
//! output goes to an [`Output`], and a [`StopFlag`] asks it to stop.
//!
//! `execute.rs` is the supervising loop; `process.rs` the `/proc` bookkeeping
//! that lets a restarted server kill a lost run's group safely.

mod execute;
mod process;

pub use execute::execute;
pub use process::{kill_leftover_group, process_start_time};

use crate::domain::RunId;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Prefix of the server's and worker's own settings in the environment; none
/// of them reaches a run's process except those the run is given.
pub const OWN_ENV_PREFIX: &str = "TESTSCHEDULER_";

/// How long an unfinished line waits before it is shown as partial.
pub const PARTIAL_AFTER: Duration = Duration::from_millis(200);
/// How long reading goes on after the main process exited (daemons left behind).
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Grace between SIGTERM and SIGKILL when stopping a group.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run_id: RunId,
    pub env_id: u32,
    /// The command, already filled in.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// The environment's variables (its envs file entry), set before ours.
    pub vars: Vec<(String, String)>,
}

/// Where the output goes.
pub trait Output {
    /// Complete lines numbered from `from`, in order, without gaps.
    fn lines(&mut self, from: u64, lines: Vec<String>);
    /// Line `line` so far, not yet ended by a newline.
    fn partial(&mut self, line: u64, text: String);
}

/// Why a run is asked to stop; it decides the run's last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled it.
    Cancelled = 1,
    /// Its timeout passed (decided elsewhere, e.g. by the server for a remote run).
    TimedOut = 2,
    /// A remote worker lost the server for (nearly) a whole lease.
    ServerLost = 3,
    /// The process executing it is shutting down.
    Shutdown = 4,
}

/// Set from elsewhere to stop a run; the first reason given wins. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicU8>);

impl StopFlag {
    /// A flag not yet raised.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }
    /// Asks the run to stop because it was cancelled.
    pub fn raise(&self) {
        self.raise_because(StopReason::Cancelled);
    }
    /// Asks the run to stop, saying why (unless a reason was given already).
    pub fn raise_because(&self, reason: StopReason) {
        let _ = self
            .0
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
    }
    /// Whether stop was asked.
    pub fn is_raised(&self) -> bool {
        self.reason().is_some()
    }
    /// Why stop was asked, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        match self.0.load(Ordering::SeqCst) {
            1 => Some(StopReason::Cancelled),
            2 => Some(StopReason::TimedOut),
            3 => Some(StopReason::ServerLost),
            4 => Some(StopReason::Shutdown),
            _ => None,
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The main process exited with this code (128 + signal if killed by one).
    Exited(i32),
    /// Stopped because the [`StopFlag`] was raised.
    Cancelled,
    /// Stopped at its timeout.
    TimedOut,
    /// Stopped because the process executing it shut down.
    Abandoned,
    /// The command could not start; the reason is the last line.
    SpawnFailed(String),
}

/// The end of a run: how it ended and how many lines it printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub outcome: Outcome,
    pub total: u64,
    pub exit_code: Option<i32>,
}

/// The process group of a started run, with its leader's start time.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub pgid: i32,
    pub start_time: u64,
}

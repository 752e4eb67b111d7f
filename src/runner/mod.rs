//! The one runner used by the embedded pool and by remote workers: it spawns a
//! run's command (an argv, never a shell) in its own process group with stdout
//! and stderr on one pipe, turns the output into numbered lines, and stops the
//! whole group on exit, cancel or timeout. It knows nothing of SQL, HTTP or Redis:
//! output goes to an [`Output`], and a [`StopFlag`] asks it to stop.

mod process;

pub use process::{kill_leftover_group, process_start_time};

use crate::domain::{LineSplitter, RunId};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

struct Counter<'a> {
    out: &'a mut dyn Output,
    next: u64,
}

impl Counter<'_> {
    fn emit(&mut self, lines: Vec<String>) {
        if !lines.is_empty() {
            let n = lines.len() as u64;
            self.out.lines(self.next, lines);
            self.next += n;
        }
    }
}

/// Runs `spec` to its end. Blocks the calling thread.
pub fn execute(spec: &RunSpec, out: &mut dyn Output, stop: &StopFlag, on_start: &mut dyn FnMut(Started)) -> Finished {
    let mut out = Counter { out, next: 0 };
    let (reader, writer) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return spawn_failed(&mut out, format!("cannot create a pipe: {e}")),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return spawn_failed(&mut out, format!("cannot duplicate a pipe: {e}")),
    };
    let Some((program, args)) = spec.argv.split_first() else {
        return spawn_failed(&mut out, "the command is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(spec.vars.iter().map(|(k, v)| (k, v)))
        .env("TESTSCHEDULER_RUN_ID", spec.run_id.to_string())
        .env("TESTSCHEDULER_ENV_ID", spec.env_id.to_string())
        .env("COLUMNS", "120")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0);
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the pipe's write end
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return spawn_failed(&mut out, format!("cannot start {program:?}: {e}")),
    };
    let pgid = child.id() as i32;
    let start_time = process_start_time(pgid).unwrap_or(0);
    on_start(Started { pgid, start_time });
    tracing::info!(run_id = spec.run_id, pgid, argv = ?spec.argv, "run started");

    let mut reader = std::fs::File::from(reader);
    let mut splitter = LineSplitter::new();
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let mut exit: Option<std::process::ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    let mut stopping: Option<(Outcome, Instant)> = None; // why, and when SIGKILL follows
    let mut killed = false;
    let mut partial_since: Option<Instant> = None;
    let mut partial_sent: Option<String> = None;

    loop {
        let now = Instant::now();
        // Stop requests and the timeout.
        if stopping.is_none() && exit.is_none() {
            let why = match stop.reason() {
                Some(StopReason::TimedOut) => Some(Outcome::TimedOut),
                Some(StopReason::Shutdown) => Some(Outcome::Abandoned),
                Some(_) => Some(Outcome::Cancelled),
                None if now >= deadline => Some(Outcome::TimedOut),
                None => None,
            };
            if let Some(why) = why {
                tracing::info!(run_id = spec.run_id, reason = ?why, "stopping run");
                signal_group(pgid, Signal::SIGTERM);
                stopping = Some((why, now + KILL_GRACE));
            }
        }
        if let Some((_, kill_at)) = &stopping {
            if !killed && now >= *kill_at {
                signal_group(pgid, Signal::SIGKILL);
                killed = true;
            }
        }
        if exit.is_none() {
            if let Ok(Some(status)) = child.try_wait() {
                exit = Some(status);
                // Whatever the main process left behind goes with it.
                signal_group(pgid, Signal::SIGKILL);
                drain_until = Some(now + DRAIN_AFTER_EXIT);
            }
        }
        if drain_until.is_some_and(|t| now >= t) {
            break;
        }
        // Wait for output, at most until the next thing to check.
        let mut wait = Duration::from_millis(100);
        if let Some(since) = partial_since {
            wait = wait.min(PARTIAL_AFTER.saturating_sub(now - since));
        }
        let timeout = PollTimeout::try_from(wait.as_millis().max(1) as u64).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => {}
            Ok(_) => match reader.read(&mut buf) {
                Ok(0) => {
                    if exit.is_some() {
                        break;
                    }
                    // Every writer closed but the leader lives on: wait for it.
                    match child.wait() {
                        Ok(status) => exit = Some(status),
                        Err(e) => tracing::warn!(run_id = spec.run_id, error = %e, "wait failed"),
                    }
                    signal_group(pgid, Signal::SIGKILL);
                    break;
                }
                Ok(n) => {
                    let mut lines = Vec::new();
                    splitter.push(&buf[..n], &mut lines);
                    if !lines.is_empty() {
                        partial_sent = None;
                        partial_since = None;
                    }
                    out.emit(lines);
                    if splitter.partial().is_some() && partial_since.is_none() {
                        partial_since = Some(Instant::now());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(run_id = spec.run_id, error = %e, "reading output failed");
                    break;
                }
            },
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(run_id = spec.run_id, error = %e, "poll failed");
                break;
            }
        }
        if partial_since.is_some_and(|t| t.elapsed() >= PARTIAL_AFTER) {
            if let Some(text) = splitter.partial() {
                if partial_sent.as_deref() != Some(text.as_str()) {
                    out.out.partial(out.next, text.clone());
                    partial_sent = Some(text);
                }
            }
            partial_since = Some(Instant::now());
        }
    }

    let mut rest = Vec::new();
    splitter.finish(&mut rest);
    out.emit(rest);
    let status = match exit {
        Some(s) => Some(s),
        None => {
            signal_group(pgid, Signal::SIGKILL);
            child.wait().ok()
        }
    };
    let exit_code = status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
    let outcome = match stopping {
        Some((Outcome::TimedOut, _)) => {
            let line = if stop.reason() == Some(StopReason::TimedOut) {
                // Decided by the server, whose timeout this runner does not know.
                "testscheduler: timed out (the server stopped the run at its timeout); the run's process group was stopped".to_string()
            } else {
                format!(
                    "testscheduler: timed out after {} s; the run's process group was stopped",
                    spec.timeout.as_secs()
                )
            };
            out.emit(vec![line]);
            Outcome::TimedOut
        }
        Some((why, _)) => {
            let line = match stop.reason() {
                Some(StopReason::ServerLost) => "testscheduler: the server could not be reached for a whole lease; this worker stopped the run's process group",
                Some(StopReason::Shutdown) => "testscheduler: the server shut down while this run was running; its process group was stopped",
                _ => "testscheduler: run cancelled; the run's process group was stopped",
            };
            out.emit(vec![line.to_string()]);
            why
        }
        None => Outcome::Exited(exit_code.unwrap_or(-1)),
    };
    tracing::info!(
        run_id = spec.run_id,
        ?outcome,
        lines = out.next,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "run ended"
    );
    Finished {
        outcome,
        total: out.next,
        exit_code,
    }
}

fn spawn_failed(out: &mut Counter<'_>, reason: String) -> Finished {
    tracing::warn!(reason = %reason, "run could not start");
    out.emit(vec![format!("testscheduler: {reason}")]);
    Finished {
        outcome: Outcome::SpawnFailed(reason),
        total: out.next,
        exit_code: None,
    }
}

fn signal_group(pgid: i32, sig: Signal) {
    // ESRCH (the group is gone already) is the common, harmless case.
    let _ = killpg(Pid::from_raw(pgid), sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        lines: Vec<String>,
        partials: Vec<(u64, String)>,
    }

    impl Output for Collect {
        fn lines(&mut self, from: u64, lines: Vec<String>) {
            assert_eq!(from as usize, self.lines.len(), "no gaps");
            self.lines.extend(lines);
        }
        fn partial(&mut self, line: u64, text: String) {
            self.partials.push((line, text));
        }
    }

    fn spec(script: &str, timeout: Duration) -> RunSpec {
        RunSpec {
            run_id: 1,
            env_id: 4,
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            timeout,
            vars: Vec::new(),
        }
    }

    fn run(script: &str, timeout: Duration, stop: &StopFlag) -> (Finished, Collect) {
        let mut c = Collect::default();
        let f = execute(&spec(script, timeout), &mut c, stop, &mut |_| {});
        (f, c)
    }

    #[test]
    fn stdout_and_stderr_share_one_numbered_stream() {
        let (f, c) = run(
            "echo a; echo b >&2; echo $TESTSCHEDULER_ENV_ID; printf tail",
            Duration::from_secs(10),
            &StopFlag::new(),
        );
        assert_eq!(c.lines, ["a", "b", "4", "tail"]);
        assert_eq!(f.outcome, Outcome::Exited(0));
        assert_eq!(f.total, 4);
    }

    #[test]
    fn exit_code_is_kept() {
        let (f, _) = run("exit 3", Duration::from_secs(10), &StopFlag::new());
        assert_eq!(f.outcome, Outcome::Exited(3));
    }

    #[test]
    fn missing_program_fails_with_reason_line() {
        let mut c = Collect::default();
        let mut s = spec("", Duration::from_secs(5));
        s.argv = vec!["/no/such/program".into()];
        let f = execute(&s, &mut c, &StopFlag::new(), &mut |_| {});
        assert!(matches!(f.outcome, Outcome::SpawnFailed(_)));
        assert!(c.lines[0].contains("/no/such/program"), "{:?}", c.lines);
    }

    #[test]
    fn timeout_stops_the_group() {
        let t = Instant::now();
        let (f, c) = run("echo start; sleep 30", Duration::from_secs(1), &StopFlag::new());
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(6));
        assert!(c.lines.last().is_some_and(|l| l.contains("timed out")));
    }

    #[test]
    fn daemon_left_behind_does_not_hold_the_run() {
        let t = Instant::now();
        let (f, _) = run("(sleep 60 &) ; echo bye", Duration::from_secs(30), &StopFlag::new());
        assert_eq!(f.outcome, Outcome::Exited(0));
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }

    #[test]
    fn stop_flag_cancels() {
        let stop = StopFlag::new();
        let s2 = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            s2.raise();
        });
        let (f, _) = run("sleep 30", Duration::from_secs(30), &stop);
        assert_eq!(f.outcome, Outcome::Cancelled);
    }

    #[test]
    fn unfinished_line_is_shown_as_partial() {
        let (_, c) = run(
            "printf 'test_slow '; sleep 0.6; echo PASSED",
            Duration::from_secs(10),
            &StopFlag::new(),
        );
        assert_eq!(c.lines, ["test_slow PASSED"]);
        assert_eq!(c.partials.first(), Some(&(0, "test_slow ".to_string())));
    }
}

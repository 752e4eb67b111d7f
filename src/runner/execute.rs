//! `execute`: spawn a run's command and supervise it to its end. One loop
//! watches four things at once — the stop flag, the timeout, the main process
//! and the pipe — and none of them waits on another: a test that closes its
//! end of the pipe is still stopped by cancel and timeout, and a main process
//! that exits still ends the run (the reader's end-of-file is not the end of
//! the run, and the child is only ever polled, never waited on while it may
//! live).

use super::{
    Finished, Outcome, Output, RunSpec, Started, StopFlag, StopReason, DRAIN_AFTER_EXIT, KILL_GRACE, OWN_ENV_PREFIX,
    PARTIAL_AFTER,
};
use crate::domain::LineSplitter;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The longest the loop sleeps between two looks at the stop flag, the
/// timeout and the main process.
const TICK: Duration = Duration::from_millis(100);

/// Numbers the lines handed to an [`Output`].
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
    let (child, reader) = match spawn(spec) {
        Ok(c) => c,
        Err(reason) => return spawn_failed(&mut out, reason),
    };
    let pgid = child.id() as i32;
    let start_time = super::process_start_time(pgid).unwrap_or(0);
    on_start(Started { pgid, start_time });
    tracing::info!(run_id = spec.run_id, pgid, argv = ?spec.argv, "run started");
    let started = Instant::now();
    let mut watch = Watch {
        spec,
        stop,
        child,
        pgid,
        reader: Some(reader),
        splitter: LineSplitter::new(),
        buf: vec![0u8; 64 * 1024],
        deadline: started + spec.timeout,
        exit: None,
        drain_until: None,
        stopping: None,
        killed: false,
        partial_since: None,
        partial_sent: None,
    };
    watch.supervise(&mut out);
    let finished = watch.finish(&mut out);
    tracing::info!(
        run_id = spec.run_id,
        outcome = ?finished.outcome,
        lines = finished.total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "run ended"
    );
    finished
}

/// Starts `spec`'s command in its own process group, stdout and stderr on one
/// pipe whose read end is returned. The process gets the run's variables and
/// none of our own `TESTSCHEDULER_*` settings (secrets among them).
fn spawn(spec: &RunSpec) -> Result<(Child, File), String> {
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot duplicate a pipe: {e}"))?;
    let Some((program, args)) = spec.argv.split_first() else {
        return Err("the command is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(&spec.cwd);
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(OWN_ENV_PREFIX.as_bytes()) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(spec.vars.iter().map(|(k, v)| (k, v)))
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
    let child = spawned.map_err(|e| format!("cannot start {program:?}: {e}"))?;
    Ok((child, File::from(reader)))
}

/// One run being supervised.
struct Watch<'a> {
    spec: &'a RunSpec,
    stop: &'a StopFlag,
    child: Child,
    pgid: i32,
    /// The pipe's read end, until every writer closed it (or reading failed).
    reader: Option<File>,
    splitter: LineSplitter,
    buf: Vec<u8>,
    deadline: Instant,
    /// The main process's exit, once it is known.
    exit: Option<ExitStatus>,
    /// After the main process exited: when reading stops (daemons left behind).
    drain_until: Option<Instant>,
    /// Why the run is being stopped, and when SIGKILL follows the SIGTERM.
    stopping: Option<(Outcome, Instant)>,
    killed: bool,
    partial_since: Option<Instant>,
    partial_sent: Option<String>,
}

impl Watch<'_> {
    /// Watches the run until its main process has exited and its output is read.
    fn supervise(&mut self, out: &mut Counter<'_>) {
        loop {
            let now = Instant::now();
            self.check_stop(now);
            self.check_exit(now);
            if self.exit.is_some() && (self.reader.is_none() || self.drain_until.is_some_and(|t| now >= t)) {
                return;
            }
            let wait = self.next_wait(now);
            if self.reader.is_some() {
                self.read(wait, out);
            } else {
                // Nothing to read any more: only the process and the clock are left to watch.
                std::thread::sleep(wait);
            }
            self.show_partial(out);
        }
    }

    /// Sends SIGTERM once a stop is asked or the timeout passes, SIGKILL a grace later.
    fn check_stop(&mut self, now: Instant) {
        if self.stopping.is_none() && self.exit.is_none() {
            let why = match self.stop.reason() {
                Some(StopReason::TimedOut) => Some(Outcome::TimedOut),
                Some(StopReason::Shutdown) => Some(Outcome::Abandoned),
                Some(_) => Some(Outcome::Cancelled),
                None if now >= self.deadline => Some(Outcome::TimedOut),
                None => None,
            };
            if let Some(why) = why {
                tracing::info!(run_id = self.spec.run_id, reason = ?why, "stopping run");
                signal_group(self.pgid, Signal::SIGTERM);
                self.stopping = Some((why, now + KILL_GRACE));
            }
        }
        if let Some((_, kill_at)) = &self.stopping {
            if !self.killed && now >= *kill_at {
                signal_group(self.pgid, Signal::SIGKILL);
                self.killed = true;
            }
        }
    }

    /// Notices the main process's exit without blocking; what it left behind in
    /// its group goes with it.
    fn check_exit(&mut self, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                signal_group(self.pgid, Signal::SIGKILL);
                self.drain_until = Some(now + DRAIN_AFTER_EXIT);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(run_id = self.spec.run_id, error = %e, "cannot check the run's process"),
        }
    }

    /// How long to wait for output before looking at everything again.
    fn next_wait(&self, now: Instant) -> Duration {
        let mut wait = TICK;
        if let Some(since) = self.partial_since {
            wait = wait.min(PARTIAL_AFTER.saturating_sub(now - since));
        }
        if let Some(t) = self.drain_until {
            wait = wait.min(t.saturating_duration_since(now));
        }
        wait.max(Duration::from_millis(1))
    }

    /// Reads what the pipe has within `wait`; at end-of-file (every writer
    /// closed it) reading stops, the watch goes on.
    fn read(&mut self, wait: Duration, out: &mut Counter<'_>) {
        let Some(reader) = &mut self.reader else { return };
        let timeout = PollTimeout::try_from(wait.as_millis() as u64).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => match reader.read(&mut self.buf) {
                Ok(0) => self.reader = None,
                Ok(n) => {
                    let mut lines = Vec::new();
                    self.splitter.push(&self.buf[..n], &mut lines);
                    if !lines.is_empty() {
                        self.partial_sent = None;
                        self.partial_since = None;
                    }
                    out.emit(lines);
                    if self.splitter.partial().is_some() && self.partial_since.is_none() {
                        self.partial_since = Some(Instant::now());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(run_id = self.spec.run_id, error = %e, "reading output failed; output ends here");
                    self.reader = None;
                }
            },
            Err(e) => {
                tracing::warn!(run_id = self.spec.run_id, error = %e, "poll failed; output ends here");
                self.reader = None;
            }
        }
    }

    /// Shows an unfinished line once it waited [`PARTIAL_AFTER`] (again when it grew).
    fn show_partial(&mut self, out: &mut Counter<'_>) {
        if self.partial_since.is_none_or(|t| t.elapsed() < PARTIAL_AFTER) {
            return;
        }
        if let Some(text) = self.splitter.partial() {
            if self.partial_sent.as_deref() != Some(text.as_str()) {
                out.out.partial(out.next, text.clone());
                self.partial_sent = Some(text);
            }
        }
        self.partial_since = Some(Instant::now());
    }

    /// The last lines (the unfinished one, and the runner's own word on a stop) and the outcome.
    fn finish(mut self, out: &mut Counter<'_>) -> Finished {
        let mut rest = Vec::new();
        self.splitter.finish(&mut rest);
        out.emit(rest);
        let status = match self.exit {
            Some(s) => Some(s),
            None => {
                signal_group(self.pgid, Signal::SIGKILL);
                self.child.wait().ok()
            }
        };
        let exit_code = status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
        let outcome = match self.stopping {
            Some((Outcome::TimedOut, _)) => {
                let line = if self.stop.reason() == Some(StopReason::TimedOut) {
                    // Decided by the server, whose timeout this runner does not know.
                    "testscheduler: timed out (the server stopped the run at its timeout); the run's process group was stopped".to_string()
                } else {
                    format!(
                        "testscheduler: timed out after {} s; the run's process group was stopped",
                        self.spec.timeout.as_secs()
                    )
                };
                out.emit(vec![line]);
                Outcome::TimedOut
            }
            Some((why, _)) => {
                let line = match self.stop.reason() {
                    Some(StopReason::ServerLost) => "testscheduler: the server could not be reached for a whole lease; this worker stopped the run's process group",
                    Some(StopReason::Shutdown) => "testscheduler: the server shut down while this run was running; its process group was stopped",
                    _ => "testscheduler: run cancelled; the run's process group was stopped",
                };
                out.emit(vec![line.to_string()]);
                why
            }
            None => Outcome::Exited(exit_code.unwrap_or(-1)),
        };
        Finished {
            outcome,
            total: out.next,
            exit_code,
        }
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

    /// Writes a line, closes every descriptor of its pipe, then runs `then`.
    const CLOSES_ITS_PIPE: &str = "echo started; exec 1>&- 2>&-; ";

    #[test]
    fn a_run_that_closed_its_pipe_is_still_cancelled() {
        let stop = StopFlag::new();
        let s2 = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            s2.raise();
        });
        let t = Instant::now();
        let (f, c) = run(&format!("{CLOSES_ITS_PIPE}sleep 60"), Duration::from_secs(60), &stop);
        assert_eq!(f.outcome, Outcome::Cancelled);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(c.lines.first().map(String::as_str), Some("started"));
    }

    #[test]
    fn a_run_that_closed_its_pipe_still_times_out() {
        let t = Instant::now();
        let (f, c) = run(
            &format!("{CLOSES_ITS_PIPE}sleep 60"),
            Duration::from_secs(1),
            &StopFlag::new(),
        );
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(c.lines.last().is_some_and(|l| l.contains("timed out")), "{:?}", c.lines);
    }

    #[test]
    fn a_run_that_closed_its_pipe_ends_when_its_main_process_exits() {
        let (f, c) = run(
            &format!("{CLOSES_ITS_PIPE}sleep 0.3; exit 4"),
            Duration::from_secs(60),
            &StopFlag::new(),
        );
        assert_eq!(f.outcome, Outcome::Exited(4));
        assert_eq!(c.lines, ["started"]);
    }

    #[test]
    fn our_own_settings_do_not_reach_the_run() {
        // Set for the whole test process: no other test here reads it.
        std::env::set_var("TESTSCHEDULER_UNIT_SECRET", "hush");
        let (_, c) = run("env", Duration::from_secs(10), &StopFlag::new());
        assert!(!c.lines.iter().any(|l| l.contains("hush")), "{:?}", c.lines);
        let mut given: Vec<&str> = c
            .lines
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with("TESTSCHEDULER_"))
            .collect();
        given.sort();
        assert_eq!(given, ["TESTSCHEDULER_ENV_ID=4", "TESTSCHEDULER_RUN_ID=1"]);
    }
}

//! One reporter thread per run that sends its numbered lines in batches (and
//! an empty report at least every second as a heartbeat), keeps what the
//! server has not stored yet in a [`LineBuffer`], sends the end once every
//! line is stored, and raises the run's stop flag when the server says
//! `cancel` or could not be reached for (nearly) a whole lease.

use super::http::{Backoff, Http, PostError};
use super::spool::{LineBuffer, DEFAULT_MEMORY_LIMIT};
use crate::protocol::worker::{Job, Partial, Report, ReportReply, WorkerStatus};
use crate::results::merge::{final_results, Junit};
use crate::results::{FinalResults, LiveCounter, TestResult};
use crate::runner::{Finished, Outcome, Output, StopFlag, StopReason};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An empty report goes out after this long without one (the contract asks
/// ≤ 5 s); shorter for a lease under 3 s.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// A reporter that lost the server gives up a finished run's remaining
/// output after this many leases (the server has long ended it `unknown`).
const GIVE_UP_LEASES: u32 = 10;

/// How long a worker that cannot reach the server lets a run go on: a little
/// less than the lease, so that the run's process group is gone (SIGTERM, then
/// SIGKILL after the runner's grace) by the time the server's lease frees the
/// environment for another run.
pub fn self_stop_after(lease: Duration) -> Duration {
    lease
        .saturating_sub(crate::runner::KILL_GRACE + Duration::from_secs(2))
        .max(lease / 2)
}

/// The keepalive for a lease: at least three reports per lease.
pub fn keepalive(lease: Duration) -> Duration {
    KEEPALIVE.min(lease / 3).max(Duration::from_millis(100))
}
/// Most lines in one report.
const MAX_LINES: usize = 5_000;
/// About the most bytes of lines in one report, before JSON escaping.
const MAX_BYTES: usize = 512 * 1024;
/// Largest report body sent, once JSON-escaped (the server takes up to 1 MiB).
const MAX_BODY: usize = 1_000_000;

/// How a run ended, as the worker reports it.
#[derive(Debug, Clone)]
struct End {
    status: WorkerStatus,
    exit_code: Option<i32>,
    total: u64,
    /// The run's per-test results, sent in batches before the end.
    results: Option<Arc<FinalResults>>,
}

/// Most result rows in one report (cut further to fit the body limit).
const MAX_RESULTS: usize = 2_000;

/// What the runner and the reporter share.
struct State {
    buf: LineBuffer,
    /// The unfinished line and whether it changed since it was last sent.
    partial: Option<(u64, String)>,
    partial_dirty: bool,
    /// Number of lines the runner has printed so far.
    produced: u64,
    end: Option<End>,
    /// pytest's result words in the output so far.
    live: LiveCounter,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The runner's [`Output`] for a remote run: lines into the reporter's buffer.
pub struct RunOutput {
    shared: Arc<Shared>,
}

impl Output for RunOutput {
    fn lines(&mut self, from: u64, lines: Vec<String>) {
        let mut st = self.shared.lock();
        debug_assert_eq!(from, st.produced, "the runner numbers lines without gaps");
        st.produced += lines.len() as u64;
        st.live.feed(from, &lines);
        st.buf.push(lines);
        st.partial = None;
        drop(st);
        self.shared.cv.notify_all();
    }

    fn partial(&mut self, line: u64, text: String) {
        let mut st = self.shared.lock();
        st.partial = Some((line, text));
        st.partial_dirty = true;
        drop(st);
        self.shared.cv.notify_all();
    }
}

/// The reporter of one run: its thread, and the way to hand it the end.
pub struct Reporter {
    shared: Arc<Shared>,
    thread: JoinHandle<Delivery>,
}

/// What became of a run's reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every line and the end were stored.
    Complete,
    /// The server was lost for (nearly) a lease: the run was stopped here and
    /// its end left to the server's lease (it ends `unknown`).
    Lost,
    /// The server refused the run's reports (not this worker's any more).
    Refused,
}

impl Reporter {
    /// Starts the reporter thread of `job`; the runner writes into the returned output.
    pub fn start(http: Http, job: &Job, stop: StopFlag) -> std::io::Result<(Reporter, RunOutput)> {
        let spool = std::env::temp_dir().join(format!(
            "testscheduler-{}-run{}-{}.spool",
            std::process::id(),
            job.id,
            &job.token[..8.min(job.token.len())]
        ));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: LineBuffer::new(DEFAULT_MEMORY_LIMIT, spool),
                partial: None,
                partial_dirty: false,
                produced: 0,
                end: None,
                live: LiveCounter::default(),
            }),
            cv: Condvar::new(),
        });
        let ctx = Ctx {
            http,
            path: format!("/api/testruns/{}", job.id),
            token: job.token.clone(),
            run_id: job.id,
            lease: Duration::from_secs(job.lease_s),
            stop,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("report-{}", job.id))
            .spawn(move || ctx.run())?;
        Ok((
            Reporter {
                shared: shared.clone(),
                thread,
            },
            RunOutput { shared },
        ))
    }

    /// Hands over the run's end and waits until it is delivered (or given
    /// up). `junit` is the run's JUnit file, if its command writes one: it is
    /// read, merged with the output's result words, and removed.
    pub fn finish(self, finished: &Finished, junit: Option<&Path>) -> Delivery {
        let status = match finished.outcome {
            Outcome::Exited(0) => WorkerStatus::Succeeded,
            _ => WorkerStatus::Failed,
        };
        let live = std::mem::take(&mut self.shared.lock().live);
        let source = match (junit, &finished.outcome) {
            (None, _) => Junit::NotAsked,
            (Some(file), Outcome::Exited(_)) => Junit::Read(crate::results::junit::read(file)),
            (Some(_), _) => Junit::Stopped,
        };
        if let Some(file) = junit {
            let _ = std::fs::remove_file(file);
        }
        let results = final_results(&live, source);
        let mut st = self.shared.lock();
        st.end = Some(End {
            status,
            exit_code: finished.exit_code,
            total: finished.total,
            results: Some(Arc::new(results)),
        });
        drop(st);
        self.shared.cv.notify_all();
        self.thread.join().unwrap_or(Delivery::Refused)
    }
}

/// A report of result rows `from…` (as many of `rows` as fit under
/// [`MAX_BODY`]) and how many it carries.
fn results_body(token: &str, from: usize, rows: &[TestResult]) -> (Report, usize) {
    let mut n = rows.len().saturating_sub(from).min(MAX_RESULTS);
    loop {
        let body = Report {
            token: Some(token.to_string()),
            results_from: Some(from as u64),
            results: Some(rows[from..from + n].to_vec()),
            ..Report::default()
        };
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |v| v.len());
        if size <= MAX_BODY || n <= 1 {
            return (body, n);
        }
        n /= 2;
    }
}

/// The report of `lines` numbered from `from`, with the partial line and the
/// end if they fit, cut so that its JSON stays under [`MAX_BODY`] (escaping
/// may multiply a line's size by six). Returns the body, how many lines it
/// carries and whether it carries the end (only with every line).
fn fit_body(
    token: &str,
    from: u64,
    mut lines: Vec<String>,
    mut partial: Option<Partial>,
    mut end: Option<&End>,
) -> (Report, usize, bool) {
    loop {
        let mut body = Report::lines(token, from, lines.clone());
        body.partial = partial.clone();
        if let Some(e) = end {
            body.status = Some(e.status);
            body.exit_code = e.exit_code;
            body.total = Some(e.total);
            if let Some(r) = &e.results {
                body.results_total = Some(r.tests.len() as u64);
                body.results_note = r.note.clone();
            }
        }
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |v| v.len());
        if size <= MAX_BODY || (lines.len() <= 1 && partial.is_none()) {
            return (body, lines.len(), end.is_some());
        }
        if partial.take().is_none() {
            end = None;
            lines.truncate(lines.len() / 2);
        }
    }
}

struct Ctx {
    http: Http,
    path: String,
    token: String,
    run_id: i64,
    lease: Duration,
    stop: StopFlag,
    shared: Arc<Shared>,
}

impl Ctx {
    fn run(self) -> Delivery {
        let mut backoff = Backoff::for_lease(self.lease);
        let keepalive = keepalive(self.lease);
        let mut last_ok = Instant::now();
        let mut last_sent: Option<Instant> = None;
        let mut lost = false;
        // Result rows the server has stored.
        let mut results_sent = 0usize;
        loop {
            // Wait for something to say: lines, the end, a partial line, or the keepalive.
            let mut st = self.shared.lock();
            loop {
                let due = last_sent.is_none_or(|t| t.elapsed() >= keepalive);
                if !st.buf.is_empty() || st.end.is_some() || st.partial_dirty || due {
                    break;
                }
                let wait = last_sent.map_or(keepalive, |t| keepalive.saturating_sub(t.elapsed()));
                st = self
                    .shared
                    .cv
                    .wait_timeout(st, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            let from = st.buf.base();
            let lines = st.buf.peek(MAX_LINES, MAX_BYTES);
            let all = from + lines.len() as u64 == st.produced;
            let partial = match (&st.partial, st.partial_dirty && all) {
                (Some((line, text)), true) if *line == st.produced => Some(Partial {
                    line: *line,
                    text: text.clone(),
                }),
                _ => None,
            };
            st.partial_dirty = false;
            let end = if all { st.end.clone() } else { None };
            drop(st);

            if lost && end.is_some() && lines.is_empty() {
                // Everything printed is stored; the run's end is the server's call.
                return Delivery::Lost;
            }
            let end = end.filter(|_| !lost);
            // Every line is stored: the result rows go next, the end after them.
            let unsent = end
                .as_ref()
                .and_then(|e| e.results.clone())
                .filter(|r| results_sent < r.tests.len());
            if let Some(results) = unsent.clone().filter(|_| lines.is_empty()) {
                let (body, n) = results_body(&self.token, results_sent, &results.tests);
                last_sent = Some(Instant::now());
                match self.http.post::<_, ReportReply>(&self.path, &body) {
                    Ok(_) => {
                        last_ok = Instant::now();
                        backoff.reset();
                        results_sent += n;
                    }
                    Err(PostError::Rejected {
                        code, next: Some(next), ..
                    }) if code == "results_gap" => results_sent = (next as usize).min(results_sent),
                    Err(e @ PostError::Rejected { .. }) => {
                        tracing::warn!(run_id = self.run_id, error = %e, "the server refused this run's results");
                        return Delivery::Refused;
                    }
                    Err(PostError::Transport(e)) => {
                        if last_ok.elapsed() >= self.lease * GIVE_UP_LEASES {
                            tracing::error!(run_id = self.run_id, error = %e, "server unreachable; giving up this run's results");
                            return Delivery::Lost;
                        }
                        std::thread::sleep(backoff.next_delay());
                    }
                }
                continue;
            }
            let end = if unsent.is_some() { None } else { end };
            let (body, used, sends_end) = fit_body(&self.token, from, lines, partial, end.as_ref());
            let sent_to = from + used as u64;
            last_sent = Some(Instant::now());
            match self.http.post::<_, ReportReply>(&self.path, &body) {
                Ok(reply) => {
                    last_ok = Instant::now();
                    backoff.reset();
                    self.shared.lock().buf.ack(sent_to);
                    if reply.cancel && !self.stop.is_raised() {
                        tracing::info!(run_id = self.run_id, status = %reply.status, "the server stopped this run");
                        if reply.status == "timeout" {
                            self.stop.raise_because(StopReason::TimedOut);
                        } else {
                            self.stop.raise();
                        }
                    }
                    if sends_end {
                        return Delivery::Complete;
                    }
                }
                Err(PostError::Rejected {
                    code, next: Some(next), ..
                }) if code == "line_gap" => {
                    last_ok = Instant::now();
                    let mut st = self.shared.lock();
                    if next < st.buf.base() {
                        tracing::error!(
                            run_id = self.run_id,
                            next,
                            held_from = st.buf.base(),
                            "the server lacks lines this worker no longer holds; stopping the run"
                        );
                        self.stop.raise();
                        return Delivery::Refused;
                    }
                    st.buf.ack(next);
                }
                Err(e @ PostError::Rejected { .. }) => {
                    tracing::warn!(run_id = self.run_id, error = %e, "the server refused this run's report; stopping the run");
                    self.stop.raise();
                    return Delivery::Refused;
                }
                Err(PostError::Transport(e)) => {
                    let silent = last_ok.elapsed();
                    if !lost && silent >= self_stop_after(self.lease) {
                        tracing::warn!(run_id = self.run_id, error = %e, silent_s = silent.as_secs(), "server unreachable for nearly a lease; stopping the run before the server frees its environment");
                        lost = true;
                        self.stop.raise_because(StopReason::ServerLost);
                    } else if silent >= self.lease * GIVE_UP_LEASES && end.is_some() {
                        tracing::error!(
                            run_id = self.run_id,
                            "server unreachable; giving up this run's remaining output"
                        );
                        return Delivery::Lost;
                    } else {
                        tracing::debug!(run_id = self.run_id, error = %e, "report failed; retrying");
                    }
                    std::thread::sleep(backoff.next_delay());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_fits_the_body_limit_however_its_lines_escape() {
        // Escape characters take six bytes each in JSON.
        let line = "\u{1b}".repeat(60 * 1024);
        let lines = vec![line; 8];
        let end = End {
            status: WorkerStatus::Failed,
            exit_code: Some(1),
            total: 8,
            results: None,
        };
        let partial = Some(Partial {
            line: 8,
            text: "x".into(),
        });
        let (body, used, with_end) = fit_body("t", 0, lines.clone(), partial, Some(&end));
        assert!(serde_json::to_vec(&body).expect("json").len() <= MAX_BODY);
        assert!((1..8).contains(&used), "{used}");
        assert!(!with_end, "the end only goes with every line");
        let (_, used, with_end) = fit_body("t", 0, lines[..1].to_vec(), None, Some(&end));
        assert_eq!((used, with_end), (1, true));
    }

    #[test]
    fn a_cut_off_run_stops_before_the_server_frees_its_environment() {
        let lease = Duration::from_secs(30);
        assert!(self_stop_after(lease) + crate::runner::KILL_GRACE < lease);
        assert_eq!(self_stop_after(Duration::from_secs(2)), Duration::from_secs(1));
    }

    #[test]
    fn keepalive_fits_the_lease() {
        assert_eq!(keepalive(Duration::from_secs(30)), KEEPALIVE);
        assert!(keepalive(Duration::from_secs(2)) < Duration::from_millis(700));
    }
}

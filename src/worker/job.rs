//! One run on a worker: claim it from the server (acknowledging the Redis
//! message once the server has answered), run its command with the shared
//! runner in the worker's project directory, and report it to its end.

use super::http::{Backoff, Http, PostError};
use super::report::{Delivery, Reporter};
use super::Worker;
use crate::protocol::worker::{Job, Report, ReportReply};
use crate::runner::{self, RunSpec, StopFlag};
use std::time::{Duration, Instant};

/// Extra time the worker's own timeout allows past the server's: the server
/// decides `timeout` and says `cancel`; this is only a backstop.
const TIMEOUT_GRACE: Duration = Duration::from_secs(10);

/// What the claim came to.
enum Claim {
    /// The run is ours: run it.
    Ours,
    /// Not ours (claimed elsewhere, cancelled, stale token): drop the message.
    Drop,
    /// The server could not be reached within a lease: leave the message
    /// pending, the server publishes the run again.
    GaveUp,
}

/// Runs `job` (taken as stream entry `msg_id`) to its end.
pub(super) fn run(worker: &Worker, msg_id: &str, job: Job, stop: StopFlag) {
    let http = worker.http();
    let revision = crate::results::revision::of(&worker.opts.project_dir);
    match claim(&http, &worker.opts.id, &job, &stop, revision) {
        Claim::Ours => worker.ack(msg_id),
        Claim::Drop => {
            worker.ack(msg_id);
            return;
        }
        Claim::GaveUp => return,
    }
    tracing::info!(run_id = job.id, path = %job.path, env_id = job.env_id, "run claimed");
    let (reporter, mut out) = match Reporter::start(http, &job, stop.clone()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(run_id = job.id, error = %e, "cannot start the reporter; the run's lease will run out");
            return;
        }
    };
    // The server leaves `{junit}` to the worker: a file in its own temp folder.
    let junit = crate::results::args::wants_junit(&job.command)
        .then(|| std::env::temp_dir().join(format!("ts-junit-{}-run-{}.xml", std::process::id(), job.id)));
    let argv = match &junit {
        Some(file) => {
            let _ = std::fs::remove_file(file);
            crate::results::args::fill_junit(&job.command, file)
        }
        None => job.command.clone(),
    };
    let spec = RunSpec {
        run_id: job.id,
        env_id: job.env_id,
        argv,
        cwd: worker.opts.project_dir.clone(),
        timeout: Duration::from_secs(job.timeout_s) + TIMEOUT_GRACE,
        vars: job.vars.clone(),
    };
    let finished = runner::execute(&spec, &mut out, &stop, &mut |_| {});
    match reporter.finish(&finished, junit.as_deref()) {
        Delivery::Complete => {
            tracing::info!(run_id = job.id, outcome = ?finished.outcome, lines = finished.total, "run reported")
        }
        Delivery::Lost => tracing::warn!(
            run_id = job.id,
            "run stopped: the server was unreachable; its end is the server's call"
        ),
        Delivery::Refused => tracing::warn!(run_id = job.id, "the server refused this run's reports"),
    }
}

fn claim(
    http: &Http,
    worker_id: &str,
    job: &Job,
    stop: &StopFlag,
    revision: Option<crate::results::Revision>,
) -> Claim {
    let body = Report {
        revision,
        ..Report::claim(&job.token, worker_id)
    };
    let path = format!("/api/testruns/{}", job.id);
    let lease = Duration::from_secs(job.lease_s);
    let started = Instant::now();
    let mut backoff = Backoff::for_lease(lease);
    loop {
        match http.post::<_, ReportReply>(&path, &body) {
            Ok(reply) if reply.cancel => return Claim::Drop,
            Ok(_) => return Claim::Ours,
            Err(e @ PostError::Rejected { .. }) => {
                tracing::info!(run_id = job.id, error = %e, "run not claimed; dropping its message");
                return Claim::Drop;
            }
            Err(PostError::Transport(e)) => {
                if started.elapsed() >= lease || stop.is_raised() {
                    tracing::warn!(run_id = job.id, error = %e, "could not claim the run; leaving it to be published again");
                    return Claim::GaveUp;
                }
                std::thread::sleep(backoff.next_delay());
            }
        }
    }
}

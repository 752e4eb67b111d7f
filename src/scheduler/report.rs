//! Reports from remote workers about their runs (`POST /api/testruns/{id}`)
//! and idle workers' heartbeats (`POST /api/workers/heartbeat`). A report is
//! proven by the run's newest token; it may claim the run (`running`), add
//! numbered lines (or the seed's whole `logs` text), and end it (`succeeded` /
//! `failed`). Every accepted report renews the run's lease. Lines go through
//! the one [`LogWriter`](crate::store::writer::LogWriter); status moves through
//! the scheduler's own functions, so hub events fire as for embedded runs.

use super::worker_registry::WorkerInfo;
use super::Scheduler;
use crate::domain::{lines::split_text, run::now, Claim, RunId, RunStatus, Transition};
use crate::error::AppError;
use crate::hub::LogEvent;
use crate::protocol::worker::{Heartbeat, HeartbeatReply, Report, ReportReply, WorkerStatus};
use crate::store::{logs, now_ms, remote, runs::token_matches, StoreError};
use serde_json::{Map, Value};
use std::sync::Arc;
use tracing::instrument;

/// Worker id recorded for a claim that names none (the seed's worker).
const UNNAMED_WORKER: &str = "unnamed";

/// A report's fields, checked: the protocol's [`Report`], its errors as the API's.
fn parse_report(fields: &Map<String, Value>) -> Result<Report, AppError> {
    Report::parse(fields).map_err(|e| AppError::field(&e.field, e.message))
}

/// Whether a run started at `started_at` (RFC 3339) is past `timeout_s` at `now_ms`.
pub(crate) fn past_timeout(started_at: Option<&str>, timeout_s: u64, now_ms: i64) -> bool {
    let Some(started) = started_at.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
        return false;
    };
    now_ms - started.timestamp_millis() >= (timeout_s as i64).saturating_mul(1000)
}

impl Scheduler {
    /// Checks a report's token, then applies it: claim, lines, end, in that
    /// order. Answers `{"cancel": bool}`. Blocking.
    #[instrument(skip(self, token, fields))]
    pub fn report(&self, id: RunId, token: Option<&str>, fields: &Map<String, Value>) -> Result<ReportReply, AppError> {
        let conn = self.store.conn()?;
        let found = remote::get(&conn, id)?;
        let (Some(run), Some(token)) = (found, token) else {
            return Err(AppError::InvalidToken);
        };
        let Some(hash) = run.token_hash.clone().filter(|h| token_matches(token, h)) else {
            return Err(AppError::InvalidToken);
        };
        let mut report = parse_report(fields)?;
        let lease_ms = self.config.lease.as_millis() as i64;
        let mut run = run;

        if report.status == Some(WorkerStatus::Running) {
            let worker = report.worker.clone().unwrap_or_else(|| UNNAMED_WORKER.to_string());
            if run.status == RunStatus::Created {
                // Before the claim, so that the `running` frame carries it.
                if let Some(rev) = &report.revision {
                    crate::store::results::set_revision(&conn, id, Some(rev))?;
                }
                let claim = Claim {
                    worker: worker.clone(),
                    token_hash: hash.clone(),
                    lease_until_ms: now_ms() + lease_ms,
                };
                if self.apply(id, &Transition::claim(claim))?.is_some() {
                    tracing::info!(run_id = id, worker = %worker, "run claimed by a remote worker");
                }
            }
            run = remote::get(&conn, id)?.ok_or(StoreError::NotFound(id))?;
            if run.worker.as_deref() != Some(worker.as_str()) {
                return Err(match run.worker {
                    Some(_) => AppError::AlreadyClaimed(id),
                    // Given a newer token meanwhile (published again).
                    None if run.status == RunStatus::Created => AppError::InvalidToken,
                    None => AppError::AlreadyFinished(id),
                });
            }
        }

        let held = run.holds_env && run.worker.is_some() && run.status != RunStatus::Created;
        if held {
            remote::renew_lease(&conn, id, now_ms() + lease_ms)?;
        }
        let wants_output = report.lines.is_some() || report.logs.is_some() || report.is_final();
        if wants_output && run.status == RunStatus::Created {
            return Err(AppError::field(
                "status",
                "Claim the run first: {\"status\": \"running\", \"worker\": ID}.",
            ));
        }
        // The log writer needs a pooled connection of its own: never wait on it holding one.
        drop(conn);

        let mut seed_total = None;
        if held {
            if let (Some(from), Some(lines)) = (report.from, report.lines.take()) {
                self.writer.append_checked(id, from, lines)?;
            }
            if let Some(text) = &report.logs {
                let (mut lines, rest) = split_text(text);
                if report.is_final() {
                    lines.extend(rest);
                }
                seed_total = Some(lines.len() as u64);
                self.writer.append_checked(id, 0, lines)?;
            }
            if let (Some(from), Some(rows)) = (report.results_from, report.results.take()) {
                self.store_result_rows(id, from, &rows)?;
            }
            if let Some(partial) = report.partial.take() {
                self.hub.publish_log(
                    id,
                    LogEvent::Partial {
                        line: partial.line,
                        text: Arc::from(partial.text),
                    },
                );
            }
        }

        if report.is_final() && held {
            let total = report.total.or(seed_total).unwrap_or(0);
            let stored = logs::count(&*self.store.conn()?, id)?;
            if stored < total {
                return Err(AppError::LineGap { next: stored });
            }
            let status = match report.status {
                _ if run.status == RunStatus::Running
                    && past_timeout(run.started_at.as_deref(), run.timeout_s, now_ms()) =>
                {
                    RunStatus::Timeout
                }
                Some(WorkerStatus::Succeeded) => RunStatus::Succeeded,
                _ => RunStatus::Failed,
            };
            let results = self.remote_results(id, report.results_total, report.results_note.take())?;
            self.end_run_with(id, status, report.exit_code, &results)?;
            run = remote::get(&*self.store.conn()?, id)?.ok_or(StoreError::NotFound(id))?;
        }

        let cancel = matches!(
            run.status,
            RunStatus::Cancelled | RunStatus::Timeout | RunStatus::Unknown
        );
        Ok(ReportReply {
            cancel,
            status: run.status.to_string(),
        })
    }

    /// A worker's heartbeat: it is listed in `GET /api/workers` (and
    /// `workersChanged` goes out when the list changes), and the leases of the
    /// runs it says it holds are renewed. Answers the lease and which of its
    /// runs to stop. Blocking.
    #[instrument(skip_all)]
    pub fn worker_heartbeat(&self, fields: &Map<String, Value>) -> Result<HeartbeatReply, AppError> {
        let Heartbeat {
            id,
            host,
            slots,
            running,
            refused,
        } = Heartbeat::parse(fields).map_err(|e| AppError::field(&e.field, e.message))?;
        for r in refused.iter().take(100) {
            tracing::error!(
                worker = %id,
                msg_id = %r.msg_id.escape_debug(),
                run_id = %r.run_id.escape_debug(),
                reason = %r.reason.escape_debug(),
                "a worker refused a job message that does not verify: something other than this server writes to the run queue"
            );
        }
        let conn = self.store.conn()?;
        let lease = self.config.lease;
        remote::renew_worker_leases(&conn, &id, &running, now_ms() + lease.as_millis() as i64)?;
        let stop = remote::stopped_among(&conn, &running)?;
        drop(conn);
        let info = WorkerInfo {
            id,
            host,
            slots,
            running,
            last_seen: now(),
        };
        if self.workers.seen(info) {
            self.announce_workers();
        }
        Ok(HeartbeatReply {
            lease_s: lease.as_secs(),
            cancel: stop,
        })
    }

    /// The worker list changed: it goes to every `/ws` client now, or, if one
    /// went out less than 500 ms ago, at the keeper's next look.
    pub(crate) fn announce_workers(&self) {
        if self.workers.note_change() {
            self.send_workers();
        }
    }

    /// Sends a change that was held back, once its time has come.
    pub(crate) fn announce_held_back_workers(&self) {
        if self.workers.take_due() {
            self.send_workers();
        }
    }

    /// Sends the worker list as it is now to every `/ws` client.
    fn send_workers(&self) {
        self.hub.publish_workers(&self.workers.list());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Report, AppError> {
        match v {
            Value::Object(m) => parse_report(&m),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn claim_lines_and_end_parse() {
        let r = parse(json!({"token": "t", "status": "running", "worker": "w1"})).expect("claim");
        assert_eq!(r.status, Some(WorkerStatus::Running));
        assert_eq!(r.worker.as_deref(), Some("w1"));
        let r = parse(json!({"token": "t", "from": 3, "lines": ["a", "b"]})).expect("lines");
        assert_eq!(
            (r.from, r.lines),
            (Some(3), Some(vec!["a".to_string(), "b".to_string()]))
        );
        let r = parse(json!({"token": "t", "status": "failed", "exit_code": 1, "total": 9})).expect("end");
        assert!(r.is_final());
        assert_eq!((r.exit_code, r.total), (Some(1), Some(9)));
    }

    #[test]
    fn worker_may_not_set_server_statuses() {
        for s in ["cancelled", "timeout", "unknown", "created"] {
            let err = parse(json!({"token": "t", "status": s})).expect_err("refused");
            assert_eq!(err.code(), "validation_failed");
        }
    }

    #[test]
    fn malformed_fields_are_named() {
        let e = parse(json!({"token": "t", "from": -1, "lines": []})).expect_err("bad from");
        assert!(matches!(e, AppError::Validation(f) if f.contains_key("from")));
        let e = parse(json!({"token": "t", "from": 0, "lines": [1]})).expect_err("bad lines");
        assert!(matches!(e, AppError::Validation(f) if f.contains_key("lines")));
        let e = parse(json!({"token": "t", "status": "succeeded"})).expect_err("no total");
        assert!(matches!(e, AppError::Validation(f) if f.contains_key("total")));
        // The seed's final report carries its whole log instead of a total.
        parse(json!({"token": "t", "status": "succeeded", "logs": "a\nb"})).expect("seed end");
    }

    #[test]
    fn timeout_counts_from_start() {
        let start = "2026-11-25T07:24:00.000000+00:00";
        let t0 = chrono::DateTime::parse_from_rfc3339(start)
            .expect("valid")
            .timestamp_millis();
        assert!(!past_timeout(Some(start), 10, t0 + 9_999));
        assert!(past_timeout(Some(start), 10, t0 + 10_000));
        assert!(!past_timeout(None, 10, t0 + 99_999));
    }
}

//! A test run as the API and the store see it, and the one table of status moves.

use serde::Serialize;
use std::fmt;

/// The id of a run: the SQLite rowid, positive.
pub type RunId = i64;

/// Where a run stands. Moves only along [`super::transition::MOVES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for its environment; holds none.
    Queued,
    Created,
    Running,
    Succeeded,
    Failed,
    Unknown,
    Cancelled,
    Timeout,
}

impl RunStatus {
    /// Every status, in the order the API documents them.
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Created,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Unknown,
        RunStatus::Cancelled,
        RunStatus::Timeout,
        RunStatus::Queued,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Created => "created",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Unknown => "unknown",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Timeout => "timeout",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once the run can no longer change: no move leaves it.
    pub fn is_finished(self) -> bool {
        !super::transition::MOVES.iter().any(|(from, _)| *from == self)
    }

    /// Whether the contract allows `self` → `next` (one row of
    /// [`super::transition::MOVES`]).
    pub fn can_move_to(self, next: RunStatus) -> bool {
        super::transition::MOVES.contains(&(self, next))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run, exactly as `GET /api/testruns/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Run {
    #[schema(value_type = i64)]
    pub id: RunId,
    pub username: String,
    /// RFC 3339, UTC, microseconds, `+00:00`.
    pub created_at: String,
    /// The environment it holds or asked for; null while a label run waits.
    pub env_id: Option<u32>,
    /// A discovered test path such as `./tests/test_a.py`.
    pub path: String,
    pub status: RunStatus,
    /// True once the run printed at least one line.
    pub logs: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub timeout_s: u64,
    /// Number of stored output lines.
    pub lines: u64,
    /// The remote worker holding the run, if any.
    pub worker: Option<String>,
    /// −10…10; higher goes first in the queue.
    pub priority: i32,
    /// The labels asked for instead of an environment id, or null.
    pub labels: Option<Vec<String>>,
    /// 1 = next, while `queued`; else null.
    pub queue_position: Option<u64>,
    /// Expected start (RFC 3339) while `queued`, null when nothing is known yet.
    pub eta: Option<String>,
    /// The first line not stored, when the store could not keep all of the
    /// run's output (null normally).
    pub lines_lost_from: Option<u64>,
    /// Counts of the run's tests: live while it runs (`final: false`), from
    /// JUnit once it ended (`final: true`); null before its first result.
    pub summary: Option<crate::results::Summary>,
    /// pytest's exit code in words (`passed`, `tests_failed`, `interrupted`,
    /// `internal_error`, `usage_error`, `no_tests`, `crashed`); null until the
    /// run ends, and for `cancelled`, `timeout`, `unknown`.
    pub outcome: Option<String>,
    /// The project directory's git state when the run started, or null.
    pub revision: Option<crate::results::Revision>,
    /// The run this one repeats, or null.
    #[schema(value_type = Option<i64>)]
    pub rerun_of: Option<RunId>,
    /// Node ids run in place of the path (a re-run of failures), or null.
    pub select: Option<Vec<String>>,
    /// pytest's `-k` expression, or null.
    pub keyword: Option<String>,
    /// pytest's `-m` expression, or null.
    pub markers: Option<String>,
    /// Why a finished run's counts are only the live ones (no usable JUnit
    /// file), or null.
    pub results_note: Option<String>,
}

/// Formats a moment the way the API and the store write it.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// The current moment, formatted by [`timestamp`].
pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for st in RunStatus::ALL {
            assert_eq!(RunStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn only_contract_moves_are_allowed() {
        use RunStatus::*;
        assert!(Created.can_move_to(Running));
        assert!(Created.can_move_to(Cancelled));
        assert!(!Created.can_move_to(Succeeded));
        assert!(!Created.can_move_to(Unknown));
        assert!(Running.can_move_to(Timeout));
        assert!(Running.can_move_to(Unknown));
        assert!(!Running.can_move_to(Created));
        assert!(Queued.can_move_to(Created));
        assert!(Queued.can_move_to(Cancelled));
        assert!(!Queued.can_move_to(Running));
        assert!(!Queued.is_finished());
        for done in [Succeeded, Failed, Unknown, Cancelled, Timeout] {
            assert!(done.is_finished());
            for next in RunStatus::ALL {
                assert!(!done.can_move_to(next));
            }
        }
    }

    #[test]
    fn timestamps_carry_utc_offset_and_micros() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T07:24:00.123456Z")
            .expect("valid literal")
            .with_timezone(&chrono::Utc);
        assert_eq!(timestamp(t), "2026-11-25T07:24:00.123456+00:00");
    }
}

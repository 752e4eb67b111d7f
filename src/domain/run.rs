//! A test run as the API and the store see it, and the one table of status moves.

use serde::Serialize;
use std::fmt;

/// The id of a run: the SQLite rowid, positive.
pub type RunId = i64;

/// Where a run stands. Moves only as [`RunStatus::can_move_to`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
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
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Created,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Unknown,
        RunStatus::Cancelled,
        RunStatus::Timeout,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
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

    /// True once the run can no longer change.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Created | RunStatus::Running)
    }

    /// The contract's transitions: `created` → `running` | `cancelled`;
    /// `running` → `succeeded` | `failed` | `cancelled` | `timeout` | `unknown`.
    pub fn can_move_to(self, next: RunStatus) -> bool {
        use RunStatus::*;
        match self {
            Created => matches!(next, Running | Cancelled),
            Running => matches!(next, Succeeded | Failed | Cancelled | Timeout | Unknown),
            _ => false,
        }
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
    pub env_id: u32,
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

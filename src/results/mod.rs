//! Per-test results (PRODUCT.md "Results and verdicts"): the live counter that
//! reads pytest's `-vv` result words from the output as it is stored
//! (`live.rs`), the JUnit XML reader (`junit.rs`), the merge of both into a
//! run's final results (`merge.rs`), pytest's exit code in words and the
//! command's arguments (`args.rs`), the project's git revision (`revision.rs`)
//! and the thread that publishes live counts at most once a second
//! (`ticker.rs`). See docs/results.md.

pub mod args;
pub mod junit;
pub mod live;
pub mod merge;
pub mod revision;
pub mod ticker;

use serde::{Deserialize, Serialize};

pub use live::{LiveCounter, LiveResults};
pub use merge::FinalResults;

/// One test's outcome, as `GET /api/testruns/{id}/results` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestOutcome {
    Passed,
    Failed,
    Error,
    Skipped,
    Xfailed,
    Xpassed,
}

impl TestOutcome {
    /// Every outcome, in the order a summary lists them.
    pub const ALL: [TestOutcome; 6] = [
        TestOutcome::Passed,
        TestOutcome::Failed,
        TestOutcome::Error,
        TestOutcome::Skipped,
        TestOutcome::Xfailed,
        TestOutcome::Xpassed,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            TestOutcome::Passed => "passed",
            TestOutcome::Failed => "failed",
            TestOutcome::Error => "error",
            TestOutcome::Skipped => "skipped",
            TestOutcome::Xfailed => "xfailed",
            TestOutcome::Xpassed => "xpassed",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<TestOutcome> {
        TestOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The `-vv` result word pytest prints for it (`PASSED`, `XFAIL`, ...).
    pub fn from_word(word: &str) -> Option<TestOutcome> {
        Some(match word {
            "PASSED" => TestOutcome::Passed,
            "FAILED" => TestOutcome::Failed,
            "ERROR" => TestOutcome::Error,
            "SKIPPED" => TestOutcome::Skipped,
            "XFAIL" => TestOutcome::Xfailed,
            "XPASS" => TestOutcome::Xpassed,
            _ => return None,
        })
    }

    /// `failed` or `error`: what a re-run of the failures repeats.
    pub fn is_failure(self) -> bool {
        matches!(self, TestOutcome::Failed | TestOutcome::Error)
    }
}

/// A run's counts: live (`final: false`) or from JUnit (`final: true`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub passed: u64,
    pub failed: u64,
    pub error: u64,
    pub skipped: u64,
    pub xfailed: u64,
    pub xpassed: u64,
    pub total: u64,
    /// True once the counts come from the JUnit file at the end of the run.
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl Summary {
    /// Counts one more test.
    pub fn add(&mut self, o: TestOutcome) {
        let slot = match o {
            TestOutcome::Passed => &mut self.passed,
            TestOutcome::Failed => &mut self.failed,
            TestOutcome::Error => &mut self.error,
            TestOutcome::Skipped => &mut self.skipped,
            TestOutcome::Xfailed => &mut self.xfailed,
            TestOutcome::Xpassed => &mut self.xpassed,
        };
        *slot += 1;
        self.total += 1;
    }

    /// The counts of `outcomes`, marked final or not.
    pub fn of(outcomes: impl IntoIterator<Item = TestOutcome>, is_final: bool) -> Summary {
        let mut s = Summary {
            is_final,
            ..Summary::default()
        };
        for o in outcomes {
            s.add(o);
        }
        s
    }
}

/// The project directory's git state when a run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revision {
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// `git status --porcelain --untracked-files=no` was not empty.
    pub dirty: bool,
}

/// One test of a run, as `GET /api/testruns/{id}/results` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestResult {
    /// As pytest prints it, relative to the project directory: `tests/test_a.py::TestX::test_y[1]`.
    pub nodeid: String,
    pub outcome: TestOutcome,
    pub duration_s: Option<f64>,
    /// The failure's (or skip's) first line, or null.
    pub message: Option<String>,
    /// The 0-based output line where pytest reported the test, or null.
    pub line: Option<u64>,
}

/// pytest's exit code in words (PRODUCT.md): only for runs that ended by
/// themselves (`succeeded`, `failed`); `None` for cancelled, timeout, unknown.
pub fn outcome_word(status: crate::domain::RunStatus, exit_code: Option<i32>) -> Option<&'static str> {
    use crate::domain::RunStatus;
    if !matches!(status, RunStatus::Succeeded | RunStatus::Failed) {
        return None;
    }
    Some(match exit_code {
        Some(0) => "passed",
        Some(1) => "tests_failed",
        Some(2) => "interrupted",
        Some(3) => "internal_error",
        Some(4) => "usage_error",
        Some(5) => "no_tests",
        _ => "crashed",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RunStatus;

    #[test]
    fn exit_codes_in_words() {
        let words: Vec<_> = (0..=6)
            .map(|c| outcome_word(RunStatus::Failed, Some(c)).unwrap_or("-"))
            .collect();
        assert_eq!(
            words,
            [
                "passed",
                "tests_failed",
                "interrupted",
                "internal_error",
                "usage_error",
                "no_tests",
                "crashed"
            ]
        );
        assert_eq!(outcome_word(RunStatus::Failed, None), Some("crashed"));
        assert_eq!(outcome_word(RunStatus::Failed, Some(137)), Some("crashed"));
        for st in [RunStatus::Cancelled, RunStatus::Timeout, RunStatus::Unknown] {
            assert_eq!(outcome_word(st, Some(1)), None);
        }
    }

    #[test]
    fn summary_serialises_final() {
        let s = Summary::of([TestOutcome::Passed, TestOutcome::Xfailed], true);
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["final"], true);
        assert_eq!(v["total"], 2);
        assert_eq!(v["xfailed"], 1);
    }
}

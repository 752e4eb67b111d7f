//! A run's final results: the JUnit cases, with `xfailed`/`xpassed` and each
//! test's output line taken from the live words; or, without a usable JUnit
//! file, the live words alone (counts stay `final: false`, and the note says why).

use super::junit::{Case, Verdict};
use super::live::LiveCounter;
use super::{Summary, TestOutcome, TestResult};
use std::collections::{HashMap, VecDeque};

/// What a run's end stores: counts, one row per test, and why the counts are
/// only the live ones (if they are).
#[derive(Debug, Clone, PartialEq)]
pub struct FinalResults {
    pub summary: Summary,
    pub tests: Vec<TestResult>,
    pub note: Option<String>,
    /// The rows are in the store already (a remote worker's batches): only
    /// the summary, note and outcome are written at the end.
    pub rows_stored: bool,
}

/// Where the JUnit file stands at a run's end.
#[derive(Debug)]
pub enum Junit {
    /// The command has no `{junit}`.
    NotAsked,
    /// The run was stopped (cancelled, timeout, lost): the file is not looked at.
    Stopped,
    Read(Result<Vec<Case>, String>),
}

/// Merges what is known at a run's end.
pub fn final_results(live: &LiveCounter, junit: Junit) -> FinalResults {
    let cases = match junit {
        Junit::Read(Ok(cases)) => cases,
        Junit::Read(Err(why)) => return from_live(live, Some(format!("{why}; the counts are the live ones"))),
        Junit::NotAsked => {
            return from_live(
                live,
                Some("the command has no {junit}: the counts are the live ones".to_string()),
            )
        }
        Junit::Stopped => return from_live(live, None),
    };
    // Each node id's live reports, in order: the k-th case of a node id takes
    // its k-th report (a test that failed and errored in teardown has two).
    let mut words: HashMap<&str, VecDeque<(TestOutcome, u64)>> = HashMap::new();
    for r in &live.reported {
        words
            .entry(r.nodeid.as_str())
            .or_default()
            .push_back((r.outcome, r.line));
    }
    // A case with no report left takes the last line that named it.
    let last_line: HashMap<&str, u64> = live.reported.iter().map(|r| (r.nodeid.as_str(), r.line)).collect();
    let tests: Vec<TestResult> = cases
        .into_iter()
        .map(|c| {
            let said = words.get_mut(c.nodeid.as_str()).and_then(VecDeque::pop_front);
            let line = said
                .map(|(_, l)| l)
                .or_else(|| last_line.get(c.nodeid.as_str()).copied());
            let outcome = match (c.verdict, said.map(|(o, _)| o)) {
                (Verdict::Passed, Some(TestOutcome::Xpassed)) => TestOutcome::Xpassed,
                (Verdict::Passed, _) => TestOutcome::Passed,
                (Verdict::Failed, _) => TestOutcome::Failed,
                (Verdict::Error, _) => TestOutcome::Error,
                (Verdict::Xfailed, _) | (Verdict::Skipped, Some(TestOutcome::Xfailed)) => TestOutcome::Xfailed,
                (Verdict::Skipped, _) => TestOutcome::Skipped,
            };
            TestResult {
                nodeid: c.nodeid,
                outcome,
                duration_s: c.duration_s,
                message: c.message,
                line,
            }
        })
        .collect();
    FinalResults {
        summary: Summary::of(tests.iter().map(|t| t.outcome), true),
        tests,
        note: None,
        rows_stored: false,
    }
}

fn from_live(live: &LiveCounter, note: Option<String>) -> FinalResults {
    FinalResults {
        summary: live.summary(),
        tests: live
            .reported
            .iter()
            .map(|r| TestResult {
                nodeid: r.nodeid.clone(),
                outcome: r.outcome,
                duration_s: None,
                message: None,
                line: Some(r.line),
            })
            .collect(),
        note,
        rows_stored: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(text: &str) -> LiveCounter {
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let mut c = LiveCounter::default();
        c.feed(0, &lines);
        c
    }

    fn case(nodeid: &str, verdict: Verdict) -> Case {
        Case {
            nodeid: nodeid.into(),
            verdict,
            duration_s: Some(0.1),
            message: None,
        }
    }

    #[test]
    fn junit_counts_with_xfail_and_xpass_from_the_words() {
        let l = live("t.py::a PASSED\nt.py::b XPASS\nt.py::c XFAIL\nt.py::d FAILED\nt.py::d ERROR\nt.py::e SKIPPED\n");
        let cases = vec![
            case("t.py::a", Verdict::Passed),
            case("t.py::b", Verdict::Passed),
            case("t.py::c", Verdict::Skipped),
            case("t.py::d", Verdict::Failed),
            case("t.py::d", Verdict::Error),
            case("t.py::e", Verdict::Skipped),
            case("t.py::f", Verdict::Passed),
        ];
        let f = final_results(&l, Junit::Read(Ok(cases)));
        let got: Vec<_> = f.tests.iter().map(|t| (t.outcome, t.line)).collect();
        assert_eq!(
            got,
            [
                (TestOutcome::Passed, Some(0)),
                (TestOutcome::Xpassed, Some(1)),
                (TestOutcome::Xfailed, Some(2)),
                (TestOutcome::Failed, Some(3)),
                (TestOutcome::Error, Some(4)),
                (TestOutcome::Skipped, Some(5)),
                (TestOutcome::Passed, None),
            ]
        );
        let s = f.summary;
        assert!(s.is_final);
        assert_eq!(
            (s.passed, s.failed, s.error, s.skipped, s.xfailed, s.xpassed, s.total),
            (2, 1, 1, 1, 1, 1, 7)
        );
        assert_eq!(f.note, None);
    }

    #[test]
    fn a_bad_file_keeps_the_live_counts_and_says_why() {
        let l = live("t.py::a PASSED\nt.py::b FAILED\n");
        let f = final_results(&l, Junit::Read(Err("the JUnit file is not valid XML: x".into())));
        assert!(!f.summary.is_final);
        assert_eq!((f.summary.passed, f.summary.failed), (1, 1));
        assert_eq!(f.tests.len(), 2);
        assert!(f.note.as_deref().is_some_and(|n| n.contains("not valid XML")));
        assert!(final_results(&l, Junit::NotAsked).note.is_some());
        assert_eq!(final_results(&l, Junit::Stopped).note, None);
    }
}

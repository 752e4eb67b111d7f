//! Live counts from pytest's `-vv` output. Each stored line (ANSI colour codes
//! removed) is looked at once, in order:
//! - `FILE.py::NAME… WORD …`: the test NAME got WORD (`PASSED`, `FAILED`,
//!   `ERROR`, `SKIPPED`, `XFAIL`, `XPASS`); the node id ends at the first
//!   space outside brackets (`test_p[a b]` keeps its space);
//! - `FILE.py::NAME` followed by something else (the test printed, `-s`):
//!   NAME is running; a later line that starts with WORD (and names no other
//!   node) is its result, reported at the line that named it.
//!
//! Lines that start with a word (`FAILED tests/…::x - …` in pytest's short
//! summary) never count: the node id must come first.

use super::{Summary, TestOutcome};
use crate::domain::RunId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One result word pytest printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub nodeid: String,
    pub outcome: TestOutcome,
    /// The 0-based output line that names the test.
    pub line: u64,
}

/// The live state of one run's output.
#[derive(Debug, Default, Clone)]
pub struct LiveCounter {
    /// Every result word, in output order.
    pub reported: Vec<Reported>,
    /// A test that started and printed before its word: node id and line.
    pending: Option<(String, u64)>,
    /// The next line number expected (lines are fed once, in order).
    next: u64,
    /// Counts changed since they were last published.
    pub dirty: bool,
}

const WORDS: [&str; 6] = ["PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"];

/// The result word at the start of `s` (followed by the end, a space or `(`/`[`).
fn word_at_start(s: &str) -> Option<TestOutcome> {
    WORDS.iter().find_map(|w| {
        let rest = s.strip_prefix(w)?;
        match rest.chars().next() {
            None | Some(' ' | '\t' | '(' | '[') => TestOutcome::from_word(w),
            _ => None,
        }
    })
}

/// Splits `FILE.py::NAME rest` into the node id and the rest, or `None` when
/// the line does not start with a node id.
pub fn split_nodeid(line: &str) -> Option<(&str, &str)> {
    let sep = line.find(".py::")? + ".py::".len();
    let file = &line[..sep - 2];
    if file.is_empty() || file.starts_with(char::is_whitespace) || WORDS.iter().any(|w| file.starts_with(w)) {
        return None;
    }
    let mut depth = 0i32;
    let mut end = line.len();
    for (i, c) in line[sep..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if c.is_whitespace() && depth <= 0 => {
                end = sep + i;
                break;
            }
            _ => {}
        }
    }
    if end == sep {
        return None;
    }
    Some((&line[..end], line[end..].trim_start()))
}

impl LiveCounter {
    /// Looks at lines `from, from+1, …`; lines already seen are skipped.
    pub fn feed(&mut self, from: u64, lines: &[String]) {
        for (i, raw) in lines.iter().enumerate() {
            let n = from + i as u64;
            if n < self.next {
                continue;
            }
            self.next = n + 1;
            self.line(n, raw);
        }
    }

    fn line(&mut self, n: u64, raw: &str) {
        let plain;
        let text = if raw.contains('\x1b') {
            plain = crate::domain::ansi::strip(raw);
            plain.as_str()
        } else {
            raw
        };
        if let Some((nodeid, rest)) = split_nodeid(text) {
            match word_at_start(rest) {
                Some(o) => self.report(nodeid.to_string(), o, n),
                None => self.pending = Some((nodeid.to_string(), n)),
            }
            return;
        }
        let trimmed = text.trim_start();
        if let Some(o) = word_at_start(trimmed) {
            if !trimmed.contains("::") {
                if let Some((nodeid, at)) = self.pending.take() {
                    self.report(nodeid, o, at);
                }
            }
        }
    }

    fn report(&mut self, nodeid: String, outcome: TestOutcome, line: u64) {
        self.pending = None;
        self.reported.push(Reported { nodeid, outcome, line });
        self.dirty = true;
    }

    /// The counts so far (`final: false`).
    pub fn summary(&self) -> Summary {
        Summary::of(self.reported.iter().map(|r| r.outcome), false)
    }
}

/// The live counters of the runs whose output is being stored; cheap to clone.
/// Fed by the log writer after each commit; drained by the ticker and at a run's end.
#[derive(Clone, Default)]
pub struct LiveResults {
    runs: Arc<Mutex<HashMap<RunId, LiveCounter>>>,
    /// Held while live counts are written and announced, and while a run's
    /// counter is taken at its end, so no live frame follows the final one.
    publishing: Arc<Mutex<()>>,
}

impl LiveResults {
    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, LiveCounter>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lines `from…` of run `id` were stored; `first` when they are its
    /// first lines. A run is counted from its first lines on, so a line added
    /// after its end (the server's note) opens no new counter.
    pub fn feed(&self, id: RunId, from: u64, lines: &[String], first: bool) {
        let mut runs = self.lock();
        match runs.get_mut(&id) {
            Some(c) => c.feed(from, lines),
            None if first => runs.entry(id).or_default().feed(from, lines),
            None => {}
        }
    }

    /// The runs whose counts changed since the last call, with their counts.
    pub fn take_dirty(&self) -> Vec<(RunId, Summary)> {
        let mut runs = self.lock();
        runs.iter_mut()
            .filter(|(_, c)| c.dirty)
            .map(|(id, c)| {
                c.dirty = false;
                (*id, c.summary())
            })
            .collect()
    }

    /// The runs counted now.
    pub fn ids(&self) -> Vec<RunId> {
        self.lock().keys().copied().collect()
    }

    /// Takes run `id`'s counter at its end (empty if it printed no result).
    pub fn take(&self, id: RunId) -> LiveCounter {
        let _publishing = self.publishing_guard();
        self.lock().remove(&id).unwrap_or_default()
    }

    /// The guard the ticker holds while it writes and announces.
    pub fn publishing_guard(&self) -> MutexGuard<'_, ()> {
        self.publishing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(text: &str) -> LiveCounter {
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let mut c = LiveCounter::default();
        c.feed(0, &lines);
        c
    }

    #[test]
    fn reads_coloured_words_and_parametrised_ids() {
        let c = feed(concat!(
            "collected 5 items\n",
            "\n",
            "tests/test_a.py::test_ok \x1b[32mPASSED\x1b[0m\x1b[32m      [ 20%]\x1b[0m\n",
            "tests/test_a.py::test_p[a b] \x1b[32mPASSED\x1b[0m\n",
            "tests/test_a.py::test_p[c[d]] \x1b[31mFAILED\x1b[0m\n",
            "tests/test_a.py::TestK::test_m \x1b[33mXFAIL\x1b[0m (known)\n",
            "tests/my dir/test_b.py::test_z \x1b[33mSKIPPED\x1b[0m (nope)\n",
            "\x1b[31mFAILED\x1b[0m tests/test_a.py::\x1b[1mtest_p[c[d]]\x1b[0m - assert 0\n",
        ));
        let ids: Vec<_> = c
            .reported
            .iter()
            .map(|r| (r.nodeid.as_str(), r.outcome, r.line))
            .collect();
        assert_eq!(
            ids,
            [
                ("tests/test_a.py::test_ok", TestOutcome::Passed, 2),
                ("tests/test_a.py::test_p[a b]", TestOutcome::Passed, 3),
                ("tests/test_a.py::test_p[c[d]]", TestOutcome::Failed, 4),
                ("tests/test_a.py::TestK::test_m", TestOutcome::Xfailed, 5),
                ("tests/my dir/test_b.py::test_z", TestOutcome::Skipped, 6),
            ]
        );
        let s = c.summary();
        assert_eq!((s.passed, s.failed, s.xfailed, s.skipped, s.total), (2, 1, 1, 1, 5));
        assert!(!s.is_final);
    }

    #[test]
    fn a_test_that_prints_gets_its_word_on_a_later_line() {
        let c = feed(
            "tests/t.py::test_x hello\nmore output\n\x1b[32mPASSED\x1b[0m\ntests/t.py::test_y \x1b[32mXPASS\x1b[0m\n",
        );
        assert_eq!(
            c.reported,
            [
                Reported {
                    nodeid: "tests/t.py::test_x".into(),
                    outcome: TestOutcome::Passed,
                    line: 0
                },
                Reported {
                    nodeid: "tests/t.py::test_y".into(),
                    outcome: TestOutcome::Xpassed,
                    line: 3
                },
            ]
        );
    }

    #[test]
    fn lines_seen_twice_count_once() {
        let mut c = LiveCounter::default();
        let lines = vec!["tests/t.py::test_x PASSED".to_string()];
        c.feed(0, &lines);
        c.feed(0, &lines);
        assert_eq!(c.summary().total, 1);
    }

    #[test]
    fn words_inside_other_text_do_not_count() {
        let c = feed("PASSED\nsome line with PASSED in it\nERRORS\ntests/t.py::test_x PASSEDX\n");
        assert!(c.reported.is_empty());
    }

    #[test]
    fn the_table_hands_out_changed_counts_once() {
        let live = LiveResults::default();
        live.feed(7, 0, &["tests/t.py::test_x FAILED".to_string()], true);
        let dirty = live.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].1.failed, 1);
        assert!(live.take_dirty().is_empty());
        assert_eq!(live.take(7).reported.len(), 1);
        assert!(live.take(7).reported.is_empty());
        live.feed(7, 1, &["testscheduler: the run was cancelled".to_string()], false);
        assert!(
            live.runs.lock().expect("lock").is_empty(),
            "a late note opens no counter"
        );
    }
}

//! Reads the JUnit XML file pytest writes with `-o junit_family=xunit1
//! --junitxml=FILE` (roxmltree: no DTD, so no entity expansion; a size cap; a
//! node cap; only `testsuites/testsuite/testcase` is looked at). Each
//! `<testcase>` is one result, in file order (the order pytest ran them).

use std::io::Read;
use std::path::Path;

/// Largest JUnit file read.
pub const MAX_BYTES: u64 = 64 << 20;
/// Most XML nodes in one file (a 20,000-test suite has well under a million).
const MAX_NODES: u32 = 4_000_000;
/// Deepest `<testsuite>` nesting looked into.
const MAX_SUITE_DEPTH: usize = 16;
/// Longest message kept, in characters.
const MAX_MESSAGE: usize = 1_000;

/// What JUnit says about one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    Error,
    Skipped,
    /// `<skipped type="pytest.xfail">`.
    Xfailed,
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub nodeid: String,
    pub verdict: Verdict,
    pub duration_s: Option<f64>,
    pub message: Option<String>,
}

/// Reads and parses `path`; the error says why in words.
pub fn read(path: &Path) -> Result<Vec<Case>, String> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "pytest wrote no JUnit file".to_string(),
        _ => format!("the JUnit file could not be read: {e}"),
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the JUnit file could not be read: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("the JUnit file is larger than {} MiB", MAX_BYTES >> 20));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "the JUnit file is not UTF-8".to_string())?;
    parse(text)
}

/// Parses a JUnit document (xunit1: each case has `file`).
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| format!("the JUnit file is not valid XML: {e}"))?;
    let root = doc.root_element();
    if !matches!(root.tag_name().name(), "testsuites" | "testsuite") {
        return Err(format!(
            "the JUnit file's root is <{}>, not <testsuites>",
            root.tag_name().name()
        ));
    }
    let mut cases = Vec::new();
    // Suites may nest; walk them with an explicit stack, never recursion.
    let mut stack = vec![(root, 0usize)];
    while let Some((suite, depth)) = stack.pop() {
        let mut inner = Vec::new();
        for child in suite.children().filter(|c| c.is_element()) {
            match child.tag_name().name() {
                "testsuite" if depth < MAX_SUITE_DEPTH => inner.push((child, depth + 1)),
                "testsuite" => return Err("the JUnit file nests test suites too deeply".into()),
                "testcase" => cases.push(case(child)?),
                _ => {}
            }
        }
        // Keep document order: the first inner suite is looked at next.
        stack.extend(inner.into_iter().rev());
    }
    Ok(cases)
}

fn case(node: roxmltree::Node<'_, '_>) -> Result<Case, String> {
    let name = node.attribute("name").ok_or("a <testcase> has no name")?;
    let classname = node.attribute("classname").unwrap_or("");
    let nodeid = nodeid(node.attribute("file"), classname, name);
    let mut verdict = Verdict::Passed;
    let mut message = None;
    for child in node.children().filter(|c| c.is_element()) {
        let v = match child.tag_name().name() {
            "failure" => Verdict::Failed,
            "error" => Verdict::Error,
            "skipped" if child.attribute("type") == Some("pytest.xfail") => Verdict::Xfailed,
            "skipped" => Verdict::Skipped,
            _ => continue,
        };
        verdict = v;
        message = child.attribute("message").or_else(|| child.text()).and_then(first_line);
        break;
    }
    Ok(Case {
        nodeid,
        verdict,
        duration_s: node
            .attribute("time")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t >= 0.0),
        message,
    })
}

/// A message's first non-empty line, without colour codes or control
/// characters, at most [`MAX_MESSAGE`] characters.
fn first_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let plain = crate::domain::ansi::strip(line);
    let clean: String = plain
        .chars()
        .filter(|c| !crate::http::dto::forbidden_char(*c))
        .take(MAX_MESSAGE)
        .collect();
    Some(clean).filter(|s| !s.is_empty())
}

/// The node id pytest prints, from xunit1's `file`, `classname` and `name`:
/// `tests/test_a.py` + `tests.test_a.TestX` + `test_y[1]` →
/// `tests/test_a.py::TestX::test_y[1]`.
pub fn nodeid(file: Option<&str>, classname: &str, name: &str) -> String {
    let Some(file) = file.map(|f| f.trim_start_matches("./")) else {
        // No file: the best guess is the dotted module path.
        return match classname {
            "" => name.to_string(),
            c => format!("{}.py::{name}", c.replace('.', "/")),
        };
    };
    let module = file.strip_suffix(".py").unwrap_or(file).replace(['/', '\\'], ".");
    let classes = classname
        .strip_prefix(module.as_str())
        .map(|rest| rest.trim_start_matches('.'))
        .unwrap_or("");
    let mut id = file.to_string();
    for class in classes.split('.').filter(|c| !c.is_empty()) {
        id.push_str("::");
        id.push_str(class);
    }
    id.push_str("::");
    id.push_str(name);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6">
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="1" time="0.012" />
<testcase classname="tests.test_a" name="test_fail" file="tests/test_a.py" line="2" time="0.001"><failure message="AssertionError: boom&#10;  second">long text</failure></testcase>
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" time="0"><skipped type="pytest.skip" message="nope">x</skipped></testcase>
<testcase classname="tests.test_a" name="test_xfail" file="tests/test_a.py"><skipped type="pytest.xfail" message="known" /></testcase>
<testcase classname="tests.test_a" name="test_err" file="tests/test_a.py"><error message="failed on setup with &quot;RuntimeError: fixture broke&quot;">e</error></testcase>
<testcase classname="tests.test_a.TestK.Inner" name="test_m[a b]" file="tests/test_a.py" time="0.5" />
</testsuite></testsuites>"#;

    #[test]
    fn reads_cases_in_order_with_node_ids() {
        let cases = parse(SAMPLE).expect("parses");
        let got: Vec<_> = cases.iter().map(|c| (c.nodeid.as_str(), c.verdict)).collect();
        assert_eq!(
            got,
            [
                ("tests/test_a.py::test_ok", Verdict::Passed),
                ("tests/test_a.py::test_fail", Verdict::Failed),
                ("tests/test_a.py::test_skip", Verdict::Skipped),
                ("tests/test_a.py::test_xfail", Verdict::Xfailed),
                ("tests/test_a.py::test_err", Verdict::Error),
                ("tests/test_a.py::TestK::Inner::test_m[a b]", Verdict::Passed),
            ]
        );
        assert_eq!(cases[1].message.as_deref(), Some("AssertionError: boom"));
        assert_eq!(cases[0].duration_s, Some(0.012));
        assert_eq!(cases[3].duration_s, None);
        assert_eq!(
            cases[4].message.as_deref(),
            Some("failed on setup with \"RuntimeError: fixture broke\"")
        );
    }

    #[test]
    fn hostile_files_are_refused_in_words() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><testsuites><testsuite><testcase name="&lol2;" /></testsuite></testsuites>"#;
        assert!(parse(bomb).expect_err("no DTD").contains("not valid XML"));
        let truncated = &SAMPLE[..SAMPLE.len() / 2];
        assert!(parse(truncated).expect_err("cut").contains("not valid XML"));
        assert!(parse("<html/>").expect_err("wrong root").contains("<html>"));
        let deep = format!(
            "<testsuites>{}{}</testsuites>",
            "<testsuite>".repeat(100_000),
            "</testsuite>".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
        let suites = format!(
            "<testsuites>{}<testcase name=\"x\"/>{}</testsuites>",
            "<testsuite>".repeat(20),
            "</testsuite>".repeat(20)
        );
        assert!(parse(&suites).expect_err("deep suites").contains("too deeply"));
    }

    #[test]
    fn a_missing_or_huge_file_says_so() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("none.xml");
        assert_eq!(read(&missing).expect_err("missing"), "pytest wrote no JUnit file");
        let huge = dir.path().join("huge.xml");
        let f = std::fs::File::create(&huge).expect("create");
        f.set_len(MAX_BYTES + 10).expect("sparse file");
        assert!(read(&huge).expect_err("huge").contains("larger than 64 MiB"));
    }

    #[test]
    fn node_ids_without_file_fall_back_to_the_module_path() {
        assert_eq!(nodeid(None, "tests.test_a", "test_x"), "tests/test_a.py::test_x");
        assert_eq!(nodeid(Some("./t.py"), "t.K", "test_x"), "t.py::K::test_x");
    }
}

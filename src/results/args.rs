//! What a run asks pytest for, turned into arguments of the command template
//! (never a shell): `-k KEYWORD`, `-m MARKERS`, then the path or the selected
//! node ids, each its own argument, in place of a `{path}` argument; and the
//! JUnit file in place of `{junit}`.

use std::path::{Path, PathBuf};

/// The placeholder of the JUnit file.
pub const JUNIT: &str = "{junit}";

/// What goes where `{path}` stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub path: String,
    /// Node ids run in place of the path (a re-run of failures).
    pub select: Option<Vec<String>>,
    pub keyword: Option<String>,
    pub markers: Option<String>,
}

/// Fills `{path}` (an argument that is exactly `{path}` becomes the
/// selection's arguments; elsewhere it is the path), `{env_id}` and
/// `{run_id}`. `{junit}` is left for whoever runs the command.
pub fn fill(argv: &[String], sel: &Selection, env_id: u32, run_id: i64) -> Vec<String> {
    let mut picks: Vec<String> = Vec::new();
    if let Some(k) = &sel.keyword {
        picks.extend(["-k".to_string(), k.clone()]);
    }
    if let Some(m) = &sel.markers {
        picks.extend(["-m".to_string(), m.clone()]);
    }
    let flags = picks.len();
    match &sel.select {
        Some(ids) if !ids.is_empty() => picks.extend(ids.iter().cloned()),
        _ => picks.push(sel.path.clone()),
    }
    let one = |a: &String| {
        a.replace("{path}", &sel.path)
            .replace("{env_id}", &env_id.to_string())
            .replace("{run_id}", &run_id.to_string())
    };
    let mut out = Vec::with_capacity(argv.len() + picks.len());
    let mut placed = false;
    for a in argv {
        if a == "{path}" {
            out.extend(picks.iter().cloned());
            placed = true;
        } else {
            if !placed && flags > 0 && a.contains("{path}") {
                out.extend(picks[..flags].iter().cloned());
                placed = true;
            }
            out.push(one(a));
        }
    }
    if !placed && flags > 0 {
        out.extend(picks[..flags].iter().cloned());
    }
    out
}

/// Whether the command writes a JUnit file.
pub fn wants_junit(argv: &[String]) -> bool {
    argv.iter().any(|a| a.contains(JUNIT))
}

/// The JUnit file of run `id` under `dir` (the data dir or a worker's spool).
pub fn junit_path(dir: &Path, id: i64) -> PathBuf {
    dir.join("junit").join(format!("run-{id}.xml"))
}

/// Puts `file` where `{junit}` stands.
pub fn fill_junit(argv: &[String], file: &Path) -> Vec<String> {
    let f = file.to_string_lossy();
    argv.iter().map(|a| a.replace(JUNIT, &f)).collect()
}

/// The check for `keyword` and `markers`: 1…200 printable characters, not
/// starting with `-`. The message is the field's.
pub fn valid_expression(v: &str) -> Result<(), String> {
    if !(1..=200).contains(&v.chars().count()) {
        return Err("Length must be between 1 and 200.".into());
    }
    if v.starts_with('-') {
        return Err("Must not start with '-'.".into());
    }
    crate::http::dto::plain_text(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        shell_words::split(s).expect("splits")
    }

    #[test]
    fn keyword_markers_and_path_are_their_own_arguments() {
        let sel = Selection {
            path: "./tests/my test.py".into(),
            select: None,
            keyword: Some("a and not b".into()),
            markers: Some("slow".into()),
        };
        let got = fill(&argv("python3 -m pytest --junitxml={junit} {path}"), &sel, 3, 9);
        assert_eq!(
            got,
            [
                "python3",
                "-m",
                "pytest",
                "--junitxml={junit}",
                "-k",
                "a and not b",
                "-m",
                "slow",
                "./tests/my test.py"
            ]
        );
    }

    #[test]
    fn selected_ids_replace_the_path() {
        let sel = Selection {
            path: "./tests/".into(),
            select: Some(vec!["tests/a.py::x".into(), "tests/a.py::y[1 2]".into()]),
            ..Selection::default()
        };
        let got = fill(&argv("pytest {path} --env={env_id}"), &sel, 3, 9);
        assert_eq!(got, ["pytest", "tests/a.py::x", "tests/a.py::y[1 2]", "--env=3"]);
        let junit = fill_junit(&got, Path::new("/d/j.xml"));
        assert_eq!(junit, got);
        assert!(!wants_junit(&got));
        let j = fill_junit(&argv("pytest --junitxml={junit}"), Path::new("/d/j.xml"));
        assert_eq!(j[1], "--junitxml=/d/j.xml");
    }

    #[test]
    fn a_path_inside_an_argument_gets_the_flags_before_it() {
        let sel = Selection {
            path: "./tests/".into(),
            keyword: Some("x".into()),
            ..Selection::default()
        };
        assert_eq!(
            fill(&argv("sh run.sh --path={path}"), &sel, 1, 2),
            ["sh", "run.sh", "-k", "x", "--path=./tests/"]
        );
        assert_eq!(fill(&argv("sh run.sh"), &sel, 1, 2), ["sh", "run.sh", "-k", "x"]);
    }

    #[test]
    fn expressions_are_checked() {
        assert!(valid_expression("slow and not net").is_ok());
        assert!(valid_expression("").is_err());
        assert!(valid_expression("-x").is_err());
        assert!(valid_expression(&"a".repeat(201)).is_err());
        assert!(valid_expression("a\u{202e}b").is_err());
        assert!(valid_expression("a\nb").is_err());
    }
}

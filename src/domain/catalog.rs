//! The environments a server knows: either bare ids (`--envs 1-100`, names
//! are the ids as text, no labels) or the definitions of an envs file
//! (`--envs-file`, TOML: id, name, labels, description, variables). Parsing
//! and validating that file's text lives here; reading and watching it does
//! not (see `envs_file`). No I/O here.

use super::{EnvSet, RunId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One environment as an envs file defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvDef {
    pub id: u32,
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Reach the run's process environment.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

/// The valid environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Catalog {
    /// `--envs`: ids only.
    Ids(EnvSet),
    /// `--envs-file`: exactly the file's environments, by ascending id.
    Defs(Vec<EnvDef>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvsFile {
    #[serde(default)]
    env: Vec<EnvDef>,
}

impl Catalog {
    /// Parses and validates the text of an envs file.
    pub fn from_toml(text: &str) -> Result<Catalog, String> {
        let file: EnvsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut defs = file.env;
        if defs.is_empty() {
            return Err("no [[env]] entry: at least one environment is needed".into());
        }
        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::new();
        for d in &defs {
            let at = format!("env {}", d.id);
            if !(1..=1_000_000).contains(&d.id) {
                return Err(format!("{at}: id must be 1 to 1000000"));
            }
            if !ids.insert(d.id) {
                return Err(format!("{at}: id given twice"));
            }
            let n = d.name.chars().count();
            if n == 0 || n > 64 || d.name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
                return Err(format!("{at}: name must be 1 to 64 printable characters"));
            }
            if !names.insert(d.name.as_str()) {
                return Err(format!("{at}: name {:?} given twice", d.name));
            }
            if let Some(bad) = d.labels.iter().find(|l| !valid_label(l)) {
                return Err(format!("{at}: label {bad:?} must match [a-z0-9][a-z0-9._-]{{0,31}}"));
            }
            if let Some(bad) = d.vars.keys().find(|k| !valid_var_name(k)) {
                return Err(format!(
                    "{at}: variable {bad:?} must match [A-Z_][A-Z0-9_]* and not start with TESTSCHEDULER_"
                ));
            }
            if d.description
                .chars()
                .any(|c| is_bidi_control(c) || (c.is_control() && c != '\n'))
            {
                return Err(format!("{at}: description must be printable"));
            }
        }
        defs.sort_by_key(|d| d.id);
        Ok(Catalog::Defs(defs))
    }

    /// Whether `id` is a valid environment.
    pub fn contains(&self, id: u32) -> bool {
        match self {
            Catalog::Ids(set) => set.contains(id),
            Catalog::Defs(defs) => defs.binary_search_by_key(&id, |d| d.id).is_ok(),
        }
    }

    /// Every valid id, ascending.
    pub fn ids(&self) -> Vec<u32> {
        match self {
            Catalog::Ids(set) => set.ids().collect(),
            Catalog::Defs(defs) => defs.iter().map(|d| d.id).collect(),
        }
    }

    /// The definition of `id` (for bare ids: its id as the name).
    pub fn get(&self, id: u32) -> Option<EnvDef> {
        match self {
            Catalog::Ids(set) => set.contains(id).then(|| EnvDef {
                id,
                name: id.to_string(),
                labels: Vec::new(),
                description: String::new(),
                vars: BTreeMap::new(),
            }),
            Catalog::Defs(defs) => defs.binary_search_by_key(&id, |d| d.id).ok().map(|i| defs[i].clone()),
        }
    }

    /// The environments that have every one of `labels`, ascending.
    pub fn fitting(&self, labels: &[String]) -> Vec<u32> {
        match self {
            Catalog::Ids(_) => Vec::new(),
            Catalog::Defs(defs) => defs
                .iter()
                .filter(|d| labels.iter().all(|l| d.labels.contains(l)))
                .map(|d| d.id)
                .collect(),
        }
    }

    /// Whether some environment has label `label`.
    pub fn has_label(&self, label: &str) -> bool {
        match self {
            Catalog::Ids(_) => false,
            Catalog::Defs(defs) => defs.iter().any(|d| d.labels.iter().any(|l| l == label)),
        }
    }

    /// The variables runs on `id` receive.
    pub fn vars(&self, id: u32) -> Vec<(String, String)> {
        match self {
            Catalog::Ids(_) => Vec::new(),
            Catalog::Defs(_) => self.get(id).map(|d| d.vars.into_iter().collect()).unwrap_or_default(),
        }
    }

    /// A short description of the valid ids, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Catalog::Ids(set) => set.to_string(),
            Catalog::Defs(defs) => defs.iter().map(|d| d.id.to_string()).collect::<Vec<_>>().join(","),
        }
    }
}

/// Who holds an environment: a run, or a reservation made by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Holder {
    Run {
        #[schema(value_type = i64)]
        run_id: RunId,
        username: String,
        /// When it started (or was admitted, while not yet running).
        since: String,
    },
    Reservation {
        reservation_id: i64,
        username: String,
        since: Option<String>,
        until: Option<String>,
        note: String,
    },
}

/// One environment as `GET /api/envs` and `envChanged` show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EnvView {
    pub id: u32,
    pub name: String,
    pub labels: Vec<String>,
    pub description: String,
    /// `free`, `busy`, `reserved` or `disabled`.
    #[schema(value_type = String)]
    pub state: &'static str,
    #[schema(value_type = Option<i64>, required = true)]
    pub run_id: Option<RunId>,
    #[schema(required = true)]
    pub holder: Option<Holder>,
    pub queue_length: u64,
    pub disabled_reason: Option<String>,
}

/// `[a-z0-9][a-z0-9._-]{0,31}`.
pub fn valid_label(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
}

fn valid_var_name(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && !k.starts_with("TESTSCHEDULER_")
}

/// Bidi embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[env]]
id = 3
name = "staging-3"
labels = ["staging", "eu"]
description = "EU staging stack"
[env.vars]
BASE_URL = "https://staging-3.example"

[[env]]
id = 1
name = "rig-1"
labels = ["rig"]
"#;

    #[test]
    fn an_envs_file_defines_exactly_its_environments() {
        let c = Catalog::from_toml(GOOD).expect("valid");
        assert_eq!(c.ids(), [1, 3]);
        assert!(c.contains(3) && !c.contains(2));
        assert_eq!(c.get(3).expect("env 3").name, "staging-3");
        assert_eq!(c.fitting(&["staging".into()]), [3]);
        assert_eq!(c.fitting(&["staging".into(), "rig".into()]), Vec::<u32>::new());
        assert!(c.has_label("eu") && !c.has_label("us"));
        assert_eq!(
            c.vars(3),
            [("BASE_URL".to_string(), "https://staging-3.example".to_string())]
        );
    }

    #[test]
    fn a_bad_envs_file_says_what_is_wrong() {
        for (bad, says) in [
            ("[[env]]\nid = 0\nname = \"a\"", "id must be"),
            ("[[env]]\nid = 1\nname = \"a\"\n[[env]]\nid = 1\nname = \"b\"", "twice"),
            ("[[env]]\nid = 1\nname = \"a\"\n[[env]]\nid = 2\nname = \"a\"", "twice"),
            ("[[env]]\nid = 1\nname = \"a\"\nlabels = [\"Big\"]", "label"),
            (
                "[[env]]\nid = 1\nname = \"a\"\n[env.vars]\nTESTSCHEDULER_X = \"1\"",
                "variable",
            ),
            ("[[env]]\nid = 1\nname = \"a\u{202E}b\"", "printable"),
            ("[[env]]\nid = 1\nname = \"a\"\ncolour = 1", "unknown field"),
            ("", "no [[env]]"),
            ("[[env]\n", "expected"),
        ] {
            let err = Catalog::from_toml(bad).expect_err(bad);
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}

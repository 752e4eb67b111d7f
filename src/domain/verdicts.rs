//! Verdicts over each test's recent results (PRODUCT.md "Results and
//! verdicts", docs/verdicts.md): `flaky`, `env_suspect`, `broken`, and the
//! environments that are `suspect`. Pure: the store reads the windows, the
//! HTTP layer and quarantine use what is decided here. No I/O.
//!
//! What counts: a **pass** is `passed` or `xpassed` (the test's body ran to
//! its end without failing); a **fail** is `failed` or `error`; `skipped`,
//! `xfailed` and anything else are neither and are set aside by every rule.
//! One **revision** is an equal `(commit, dirty)`; every result without a
//! revision (outside git) shares one.

pub use crate::results::Revision;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `?window=` when none is given: each test's last 20 results.
pub const DEFAULT_WINDOW: u32 = 20;
/// The largest `?window=`.
pub const MAX_WINDOW: u32 = 1000;
/// `broken` needs this many newest decisive results, all fails.
pub const BROKEN_STREAK: usize = 3;

/// One result of one test, with what its run says about where and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub run_id: i64,
    pub env_id: u32,
    /// `None` outside git; all of those count as one revision.
    pub revision: Option<Revision>,
    /// `passed`, `failed`, `error`, `skipped`, `xfailed`, `xpassed`.
    pub outcome: String,
    /// When the run ended (RFC 3339), if it did.
    pub finished_at: Option<String>,
}

/// A test's window: its last N results, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TestWindow {
    pub nodeid: String,
    pub samples: Vec<Sample>,
}

/// What one result says about a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pass,
    Fail,
    /// Skipped, xfailed, or an outcome we do not know: neither.
    Neither,
}

impl Kind {
    /// The kind of a result `outcome`.
    pub fn of(outcome: &str) -> Kind {
        match outcome {
            "passed" | "xpassed" => Kind::Pass,
            "failed" | "error" => Kind::Fail,
            _ => Kind::Neither,
        }
    }
}

/// A test's verdict, first rule that holds wins (flaky > env_suspect > broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It both passed and failed on one environment at one revision.
    Flaky,
    /// On some environment it failed at least twice and never passed, while
    /// at one of those revisions it passed on another environment.
    EnvSuspect,
    /// Its last 3 decisive results are fails, on at least 2 environments.
    Broken,
}

/// One test with a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TestVerdict {
    pub nodeid: String,
    pub verdict: Verdict,
    /// `flaky`: where it passed and failed at one revision; `env_suspect`: the
    /// environments it fails only on; `broken`: where its last fails ran. Ascending.
    pub envs: Vec<u32>,
    /// The run ids the verdict rests on, newest first.
    pub evidence: Vec<i64>,
}

/// An environment's verdict (only `suspect` exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvVerdict {
    Suspect,
}

/// An environment on which at least the threshold of tests are `env_suspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SuspectEnv {
    pub id: u32,
    pub verdict: EnvVerdict,
    /// The node ids `env_suspect` on it, sorted.
    pub tests: Vec<String>,
}

/// `GET /api/verdicts`: tests with a verdict and suspect environments; a
/// healthy history gives two empty lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Verdicts {
    /// Sorted by node id.
    pub tests: Vec<TestVerdict>,
    /// Sorted by id.
    pub envs: Vec<SuspectEnv>,
}

/// What makes two results "one revision": equal commit and dirty; `None`
/// (outside git) is one revision too.
type RevKey<'a> = Option<(&'a str, bool)>;

fn rev_key(s: &Sample) -> RevKey<'_> {
    s.revision.as_ref().map(|r| (r.commit.as_str(), r.dirty))
}

/// Run ids, newest first, once each.
fn newest_first(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable_by_key(|id| std::cmp::Reverse(*id));
    ids.dedup();
    ids
}

/// The verdict of one window (newest first), `None` when it is healthy.
pub fn judge(samples: &[Sample]) -> Option<(Verdict, Vec<u32>, Vec<i64>)> {
    flaky(samples)
        .map(|(e, r)| (Verdict::Flaky, e, r))
        .or_else(|| env_suspect(samples).map(|(e, r)| (Verdict::EnvSuspect, e, r)))
        .or_else(|| broken(samples).map(|(e, r)| (Verdict::Broken, e, r)))
}

fn flaky(samples: &[Sample]) -> Option<(Vec<u32>, Vec<i64>)> {
    /// Run ids of the passes and of the fails in one group.
    type PassesFails = (Vec<i64>, Vec<i64>);
    let mut groups: HashMap<(u32, RevKey<'_>), PassesFails> = HashMap::new();
    for s in samples {
        let g = groups.entry((s.env_id, rev_key(s))).or_default();
        match Kind::of(&s.outcome) {
            Kind::Pass => g.0.push(s.run_id),
            Kind::Fail => g.1.push(s.run_id),
            Kind::Neither => {}
        }
    }
    let mut envs = BTreeSet::new();
    let mut evidence = Vec::new();
    for ((env, _), (passes, fails)) in groups {
        if !passes.is_empty() && !fails.is_empty() {
            envs.insert(env);
            evidence.extend(passes);
            evidence.extend(fails);
        }
    }
    (!envs.is_empty()).then(|| (envs.into_iter().collect(), newest_first(evidence)))
}

fn env_suspect(samples: &[Sample]) -> Option<(Vec<u32>, Vec<i64>)> {
    #[derive(Default)]
    struct OnEnv<'a> {
        passes: usize,
        fails: Vec<&'a Sample>,
    }
    let mut by_env: BTreeMap<u32, OnEnv<'_>> = BTreeMap::new();
    for s in samples {
        let e = by_env.entry(s.env_id).or_default();
        match Kind::of(&s.outcome) {
            Kind::Pass => e.passes += 1,
            Kind::Fail => e.fails.push(s),
            Kind::Neither => {}
        }
    }
    let mut envs = Vec::new();
    let mut evidence = Vec::new();
    for (env, on) in &by_env {
        if on.passes > 0 || on.fails.len() < 2 {
            continue;
        }
        let revisions: BTreeSet<RevKey<'_>> = on.fails.iter().map(|s| rev_key(s)).collect();
        let elsewhere: Vec<i64> = samples
            .iter()
            .filter(|s| s.env_id != *env && Kind::of(&s.outcome) == Kind::Pass)
            .filter(|s| revisions.contains(&rev_key(s)))
            .map(|s| s.run_id)
            .collect();
        if elsewhere.is_empty() {
            continue;
        }
        envs.push(*env);
        evidence.extend(on.fails.iter().map(|s| s.run_id));
        evidence.extend(elsewhere);
    }
    (!envs.is_empty()).then(|| (envs, newest_first(evidence)))
}

fn broken(samples: &[Sample]) -> Option<(Vec<u32>, Vec<i64>)> {
    let last: Vec<&Sample> = samples
        .iter()
        .filter(|s| Kind::of(&s.outcome) != Kind::Neither)
        .take(BROKEN_STREAK)
        .collect();
    if last.len() < BROKEN_STREAK || last.iter().any(|s| Kind::of(&s.outcome) != Kind::Fail) {
        return None;
    }
    let envs: BTreeSet<u32> = last.iter().map(|s| s.env_id).collect();
    (envs.len() >= 2).then(|| {
        (
            envs.into_iter().collect(),
            newest_first(last.iter().map(|s| s.run_id).collect()),
        )
    })
}

/// Every test's verdict and the suspect environments: those with at least
/// `threshold` distinct node ids `env_suspect` on them.
pub fn judge_all(windows: &[TestWindow], threshold: usize) -> Verdicts {
    let mut tests: Vec<TestVerdict> = windows
        .iter()
        .filter_map(|w| {
            judge(&w.samples).map(|(verdict, envs, evidence)| TestVerdict {
                nodeid: w.nodeid.clone(),
                verdict,
                envs,
                evidence,
            })
        })
        .collect();
    tests.sort_by(|a, b| a.nodeid.cmp(&b.nodeid));
    tests.dedup_by(|a, b| a.nodeid == b.nodeid);
    let mut on_env: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for t in tests.iter().filter(|t| t.verdict == Verdict::EnvSuspect) {
        for env in &t.envs {
            on_env.entry(*env).or_default().push(t.nodeid.clone());
        }
    }
    let envs = on_env
        .into_iter()
        .filter(|(_, tests)| tests.len() >= threshold.max(1))
        .map(|(id, tests)| SuspectEnv {
            id,
            verdict: EnvVerdict::Suspect,
            tests,
        })
        .collect();
    Verdicts { tests, envs }
}

/// True when moment `a` is after moment `b` (RFC 3339; compared as text when
/// either does not parse, which is right for the store's own fixed format).
fn later(a: &str, b: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

/// The suspect environments quarantine acts on, each with its number of
/// `env_suspect` tests: those where at least `threshold` of those tests
/// failed there in a run that finished after `enabled_at(env)` (every fail
/// counts for an environment never enabled by hand).
pub fn fresh_suspects<'a>(
    windows: &[TestWindow],
    verdicts: &Verdicts,
    threshold: usize,
    enabled_at: impl Fn(u32) -> Option<&'a str>,
) -> Vec<(u32, usize)> {
    let by_id: HashMap<&str, &TestWindow> = windows.iter().map(|w| (w.nodeid.as_str(), w)).collect();
    verdicts
        .envs
        .iter()
        .filter_map(|env| {
            let since = enabled_at(env.id);
            let fresh = env
                .tests
                .iter()
                .filter(|nodeid| {
                    by_id.get(nodeid.as_str()).is_some_and(|w| {
                        w.samples.iter().any(|s| {
                            s.env_id == env.id
                                && Kind::of(&s.outcome) == Kind::Fail
                                && match (since, s.finished_at.as_deref()) {
                                    (None, _) => true,
                                    (Some(since), Some(end)) => later(end, since),
                                    (Some(_), None) => false,
                                }
                        })
                    })
                })
                .count();
            (fresh >= threshold.max(1)).then_some((env.id, env.tests.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(c: &str) -> Option<Revision> {
        Some(Revision {
            commit: c.into(),
            dirty: false,
        })
    }

    /// A sample of run `run_id` on `env` at revision `r` ("" = none).
    fn s(run_id: i64, env: u32, r: &str, outcome: &str) -> Sample {
        Sample {
            run_id,
            env_id: env,
            revision: if r.is_empty() { None } else { rev(r) },
            outcome: outcome.into(),
            finished_at: Some(format!("2026-12-01T10:00:{:02}.000000+00:00", run_id % 60)),
        }
    }

    /// Newest first, as the store gives them.
    fn window(mut v: Vec<Sample>) -> Vec<Sample> {
        v.sort_by_key(|s| std::cmp::Reverse(s.run_id));
        v
    }

    fn verdict(v: Vec<Sample>) -> Option<(Verdict, Vec<u32>, Vec<i64>)> {
        judge(&window(v))
    }

    #[test]
    fn outcomes_are_passes_fails_or_neither() {
        assert_eq!(Kind::of("passed"), Kind::Pass);
        assert_eq!(Kind::of("xpassed"), Kind::Pass);
        assert_eq!(Kind::of("failed"), Kind::Fail);
        assert_eq!(Kind::of("error"), Kind::Fail);
        for o in ["skipped", "xfailed", "weird", ""] {
            assert_eq!(Kind::of(o), Kind::Neither, "{o}");
        }
    }

    #[test]
    fn healthy_histories_have_no_verdict() {
        assert_eq!(verdict(vec![]), None);
        assert_eq!(verdict(vec![s(1, 1, "a", "passed"), s(2, 2, "a", "passed")]), None);
        // Skips and xfails are neither pass nor fail.
        assert_eq!(
            verdict(vec![
                s(1, 1, "a", "skipped"),
                s(2, 1, "a", "xfailed"),
                s(3, 2, "a", "skipped")
            ]),
            None
        );
        // One failure alone is no verdict.
        assert_eq!(verdict(vec![s(1, 1, "a", "passed"), s(2, 2, "a", "failed")]), None);
        let v = judge_all(
            &[TestWindow {
                nodeid: "tests/test_a.py::test_ok".into(),
                samples: window(vec![s(1, 1, "", "passed"), s(2, 2, "", "passed")]),
            }],
            3,
        );
        assert_eq!(v, Verdicts::default());
    }

    #[test]
    fn flaky_needs_a_pass_and_a_fail_on_one_env_at_one_revision() {
        let (v, envs, ev) = verdict(vec![s(1, 1, "a", "passed"), s(2, 1, "a", "failed")]).expect("flaky");
        assert_eq!((v, envs, ev), (Verdict::Flaky, vec![1], vec![2, 1]));
        // error counts as a fail, xpassed as a pass.
        assert_eq!(
            verdict(vec![s(1, 4, "a", "xpassed"), s(2, 4, "a", "error")]).map(|v| v.0),
            Some(Verdict::Flaky)
        );
        // Different revisions on one env: a fix or a regression, not flaky.
        assert_eq!(verdict(vec![s(1, 1, "a", "passed"), s(2, 1, "b", "failed")]), None);
        // Same revision on different envs: not flaky (one fail elsewhere is no verdict).
        assert_eq!(verdict(vec![s(1, 1, "a", "passed"), s(2, 2, "a", "failed")]), None);
        // All results without a revision count as one revision.
        assert_eq!(
            verdict(vec![s(1, 1, "", "passed"), s(2, 1, "", "failed")]).map(|v| v.0),
            Some(Verdict::Flaky)
        );
        // A dirty tree is another revision than the clean one of the same commit.
        let mut dirty = s(2, 1, "a", "failed");
        dirty.revision = Some(Revision {
            commit: "a".into(),
            dirty: true,
        });
        assert_eq!(verdict(vec![s(1, 1, "a", "passed"), dirty]), None);
        // A commit is not "no revision".
        assert_eq!(verdict(vec![s(1, 1, "", "passed"), s(2, 1, "a", "failed")]), None);
    }

    #[test]
    fn flaky_evidence_is_only_the_flaky_groups() {
        let (v, envs, ev) = verdict(vec![
            s(1, 1, "a", "passed"),
            s(2, 1, "a", "failed"),
            s(3, 2, "a", "passed"),
            s(4, 3, "b", "failed"),
            s(5, 3, "b", "passed"),
        ])
        .expect("flaky");
        assert_eq!((v, envs, ev), (Verdict::Flaky, vec![1, 3], vec![5, 4, 2, 1]));
    }

    #[test]
    fn env_suspect_fails_twice_on_one_env_and_passes_elsewhere_at_that_revision() {
        let (v, envs, ev) = verdict(vec![
            s(1, 7, "a", "failed"),
            s(2, 2, "a", "passed"),
            s(3, 7, "a", "error"),
            s(4, 3, "a", "passed"),
        ])
        .expect("env_suspect");
        assert_eq!((v, envs, ev), (Verdict::EnvSuspect, vec![7], vec![4, 3, 2, 1]));
    }

    #[test]
    fn env_suspect_boundaries() {
        // One fail on the env is not enough.
        assert_eq!(verdict(vec![s(1, 7, "a", "failed"), s(2, 2, "a", "passed")]), None);
        // A pass on the env itself (at another revision: not flaky) clears it.
        assert_eq!(
            verdict(vec![
                s(1, 7, "a", "failed"),
                s(2, 7, "a", "failed"),
                s(3, 7, "b", "passed"),
                s(4, 2, "a", "passed"),
            ]),
            None
        );
        // The passes elsewhere must share a revision with the fails on the env.
        assert_eq!(
            verdict(vec![
                s(1, 7, "a", "failed"),
                s(2, 7, "a", "failed"),
                s(3, 2, "b", "passed")
            ]),
            None
        );
        // One shared revision is enough (the other fail is at another one).
        assert_eq!(
            verdict(vec![
                s(1, 7, "a", "failed"),
                s(2, 7, "b", "failed"),
                s(3, 2, "b", "passed")
            ])
            .map(|v| v.0),
            Some(Verdict::EnvSuspect)
        );
        // Skips on the env are no passes.
        assert_eq!(
            verdict(vec![
                s(1, 7, "a", "failed"),
                s(2, 7, "a", "skipped"),
                s(3, 7, "a", "failed"),
                s(4, 2, "a", "passed"),
            ])
            .map(|v| v.0),
            Some(Verdict::EnvSuspect)
        );
        // Without revisions (all one revision) it works the same.
        assert_eq!(
            verdict(vec![
                s(1, 7, "", "failed"),
                s(2, 7, "", "failed"),
                s(3, 2, "", "passed")
            ])
            .map(|v| v.1),
            Some(vec![7])
        );
    }

    #[test]
    fn env_suspect_may_name_several_envs() {
        let (v, envs, ev) = verdict(vec![
            s(1, 7, "a", "failed"),
            s(2, 7, "a", "failed"),
            s(3, 8, "a", "failed"),
            s(4, 8, "a", "failed"),
            s(5, 2, "a", "passed"),
        ])
        .expect("env_suspect");
        assert_eq!((v, envs, ev), (Verdict::EnvSuspect, vec![7, 8], vec![5, 4, 3, 2, 1]));
    }

    #[test]
    fn flaky_wins_over_env_suspect_and_broken() {
        let (v, envs, _) = verdict(vec![
            s(1, 1, "a", "passed"),
            s(2, 1, "a", "failed"),
            s(3, 7, "a", "failed"),
            s(4, 7, "a", "failed"),
            s(5, 8, "a", "failed"),
        ])
        .expect("verdict");
        assert_eq!((v, envs), (Verdict::Flaky, vec![1]));
    }

    #[test]
    fn env_suspect_wins_over_broken() {
        // The last 3 are fails on 2 envs, but env 7 never passed while env 2 did at "a".
        let (v, envs, _) = verdict(vec![
            s(1, 2, "a", "passed"),
            s(2, 7, "a", "failed"),
            s(3, 7, "a", "failed"),
            s(4, 8, "b", "failed"),
        ])
        .expect("verdict");
        assert_eq!((v, envs), (Verdict::EnvSuspect, vec![7]));
    }

    #[test]
    fn broken_is_three_last_fails_on_two_envs() {
        let (v, envs, ev) = verdict(vec![
            s(1, 1, "a", "passed"),
            s(2, 1, "b", "failed"),
            s(3, 2, "b", "failed"),
            s(4, 1, "c", "error"),
        ])
        .expect("broken");
        assert_eq!((v, envs, ev), (Verdict::Broken, vec![1, 2], vec![4, 3, 2]));
    }

    #[test]
    fn broken_boundaries() {
        // Two fails are not enough.
        assert_eq!(verdict(vec![s(1, 1, "a", "failed"), s(2, 2, "b", "failed")]), None);
        // Three fails on one env only: not broken.
        assert_eq!(
            verdict(vec![
                s(1, 1, "a", "failed"),
                s(2, 1, "b", "failed"),
                s(3, 1, "c", "failed")
            ]),
            None
        );
        // A pass after the fails clears it.
        assert_eq!(
            verdict(vec![
                s(1, 1, "a", "failed"),
                s(2, 2, "b", "failed"),
                s(3, 1, "c", "failed"),
                s(4, 2, "d", "passed"),
            ]),
            None
        );
        // A pass among the last 3 clears it.
        assert_eq!(
            verdict(vec![
                s(1, 1, "a", "failed"),
                s(2, 2, "b", "passed"),
                s(3, 1, "c", "failed"),
                s(4, 2, "d", "failed")
            ]),
            None
        );
        // Skips after the fails are set aside.
        let (v, _, ev) = verdict(vec![
            s(1, 1, "a", "failed"),
            s(2, 2, "b", "failed"),
            s(3, 1, "c", "failed"),
            s(4, 2, "d", "skipped"),
        ])
        .expect("broken");
        assert_eq!((v, ev), (Verdict::Broken, vec![3, 2, 1]));
    }

    fn win(nodeid: &str, v: Vec<Sample>) -> TestWindow {
        TestWindow {
            nodeid: nodeid.into(),
            samples: window(v),
        }
    }

    /// A test that fails only on `env` (runs base, base+1 there, base+2 on env 1).
    fn suspect_on(nodeid: &str, env: u32, base: i64) -> TestWindow {
        win(
            nodeid,
            vec![
                s(base, env, "a", "failed"),
                s(base + 1, env, "a", "failed"),
                s(base + 2, 1, "a", "passed"),
            ],
        )
    }

    #[test]
    fn an_env_is_suspect_at_the_threshold() {
        let windows = vec![
            suspect_on("t::c", 5, 20),
            suspect_on("t::a", 5, 1),
            suspect_on("t::b", 5, 10),
            suspect_on("t::d", 6, 30),
            win("t::ok", vec![s(40, 5, "a", "passed")]),
        ];
        let v = judge_all(&windows, 3);
        let names: Vec<&str> = v.tests.iter().map(|t| t.nodeid.as_str()).collect();
        assert_eq!(names, ["t::a", "t::b", "t::c", "t::d"]);
        assert_eq!(
            v.envs,
            vec![SuspectEnv {
                id: 5,
                verdict: EnvVerdict::Suspect,
                tests: vec!["t::a".into(), "t::b".into(), "t::c".into()]
            }]
        );
        // Below the threshold: the tests keep their verdicts, no env is suspect.
        assert!(judge_all(&windows, 4).envs.is_empty());
        assert_eq!(judge_all(&windows, 1).envs.len(), 2);
    }

    #[test]
    fn other_verdicts_do_not_make_an_env_suspect() {
        let windows = vec![
            win("t::f1", vec![s(1, 5, "a", "passed"), s(2, 5, "a", "failed")]),
            win("t::f2", vec![s(3, 5, "a", "passed"), s(4, 5, "a", "failed")]),
            win("t::f3", vec![s(5, 5, "a", "passed"), s(6, 5, "a", "failed")]),
        ];
        let v = judge_all(&windows, 3);
        assert_eq!(v.tests.len(), 3);
        assert!(v.envs.is_empty());
    }

    #[test]
    fn serialises_with_the_fixed_names() {
        let v = judge_all(&[suspect_on("t::a", 5, 1)], 1);
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "tests": [{"nodeid": "t::a", "verdict": "env_suspect", "envs": [5], "evidence": [3, 2, 1]}],
                "envs": [{"id": 5, "verdict": "suspect", "tests": ["t::a"]}]
            })
        );
        assert_eq!(serde_json::to_value(Verdict::Flaky).expect("json"), "flaky");
        assert_eq!(serde_json::to_value(Verdict::Broken).expect("json"), "broken");
    }

    #[test]
    fn fresh_suspects_count_only_fails_after_the_last_enable() {
        let windows = vec![
            suspect_on("t::a", 5, 1),
            suspect_on("t::b", 5, 10),
            suspect_on("t::c", 5, 20),
        ];
        let v = judge_all(&windows, 3);
        // Never enabled: every fail counts.
        assert_eq!(fresh_suspects(&windows, &v, 3, |_| None), vec![(5, 3)]);
        // Enabled after every fail: nothing new.
        assert!(fresh_suspects(&windows, &v, 3, |_| Some("2026-12-01T11:00:00.000000+00:00")).is_empty());
        // Enabled at :15: only t::c's fails (runs 20, 21) are newer: 1 < 3.
        assert!(fresh_suspects(&windows, &v, 3, |_| Some("2026-12-01T10:00:15.000000+00:00")).is_empty());
        // ... which is enough at threshold 1; the reason still counts all 3 tests.
        let v1 = judge_all(&windows, 1);
        assert_eq!(
            fresh_suspects(&windows, &v1, 1, |_| Some("2026-12-01T10:00:15.000000+00:00")),
            vec![(5, 3)]
        );
        // Another offset, same moment: compared as moments.
        assert!(fresh_suspects(&windows, &v, 3, |_| Some("2026-12-01T12:00:00+01:00")).is_empty());
    }

    /// The worked example of docs/verdicts.md, run by run.
    #[test]
    fn the_worked_example_of_the_docs() {
        let table = [
            (1, 1, ["passed", "passed", "failed", "passed"]),
            (2, 2, ["passed", "failed", "failed", "passed"]),
            (3, 1, ["failed", "passed", "skipped", "skipped"]),
            (4, 2, ["passed", "failed", "error", "passed"]),
            (5, 3, ["passed", "passed", "failed", "passed"]),
        ];
        let names = ["test_login", "test_upload", "test_report", "test_search"];
        let windows = |n: usize| -> Vec<TestWindow> {
            names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let all = window(table.iter().map(|(run, env, o)| s(*run, *env, "a1", o[i])).collect());
                    win(&format!("tests/test_app.py::{name}"), all.into_iter().take(n).collect())
                })
                .collect()
        };
        let v = judge_all(&windows(20), 1);
        let got: Vec<(&str, Verdict, Vec<u32>, Vec<i64>)> = v
            .tests
            .iter()
            .map(|t| (t.nodeid.as_str(), t.verdict, t.envs.clone(), t.evidence.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("tests/test_app.py::test_login", Verdict::Flaky, vec![1], vec![3, 1]),
                (
                    "tests/test_app.py::test_report",
                    Verdict::Broken,
                    vec![2, 3],
                    vec![5, 4, 2]
                ),
                (
                    "tests/test_app.py::test_upload",
                    Verdict::EnvSuspect,
                    vec![2],
                    vec![5, 4, 3, 2, 1]
                ),
            ]
        );
        assert_eq!(
            v.envs,
            vec![SuspectEnv {
                id: 2,
                verdict: EnvVerdict::Suspect,
                tests: vec!["tests/test_app.py::test_upload".into()]
            }]
        );
        assert!(judge_all(&windows(20), 3).envs.is_empty());
        assert_eq!(judge_all(&windows(2), 1), Verdicts::default());
    }

    #[test]
    fn later_compares_moments() {
        assert!(later("2026-12-01T10:00:01+00:00", "2026-12-01T10:00:00.999999+00:00"));
        assert!(!later("2026-12-01T10:00:00+00:00", "2026-12-01T11:00:00+01:00"));
        assert!(later("b", "a"));
    }
}

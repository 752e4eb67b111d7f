//! The queue's arithmetic, without I/O: which environment a waiting item may
//! take, its place ("position N") and its expected start (ETA). The scheduler
//! feeds it a snapshot read in one go from the store.
//!
//! Order: highest `priority` first, then the lowest id (first come, first
//! served). Position: the number of waiting items ahead that want any
//! environment this one could take, plus one. ETA: a greedy walk of the queue
//! in order; each environment is free at its holder's expected end (start +
//! median duration, a holder not yet running counting from now), and each
//! item takes the environment, among those it wants, that frees first, and
//! holds it for its own median duration. Unknown durations make the ETA of
//! that environment unknown (`None`) from there on.

use super::RunId;
use std::collections::HashMap;

/// A queued item, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: RunId,
    /// The environments it could take (one for an env id, the fitting ones for labels).
    pub wants: Vec<u32>,
    pub path: String,
    /// How long it will hold the environment when known up front (a
    /// reservation's duration); else the median of `path` is used.
    pub hold_ms: Option<i64>,
}

/// What holds an environment now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub env: u32,
    pub path: String,
    /// When its run started (ms since the epoch); `None` while not yet running.
    pub started_ms: Option<i64>,
}

/// Positions, 1-based, of `waiting` (which is in queue order).
pub fn positions(waiting: &[Waiting]) -> Vec<u64> {
    waiting
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let ahead = waiting[..i]
                .iter()
                .filter(|o| o.wants.iter().any(|e| w.wants.contains(e)))
                .count();
            ahead as u64 + 1
        })
        .collect()
}

/// Expected starts (ms since the epoch) of `waiting`, in the same order.
/// `median(path, env)` is the typical duration in ms of `path` on `env`;
/// `unusable` environments (disabled) never free; `reserved` ones not before
/// their reservation's end.
pub fn etas(
    waiting: &[Waiting],
    holders: &[Holder],
    unusable: &[u32],
    reserved: &[(u32, i64)],
    now_ms: i64,
    median: &mut dyn FnMut(&str, u32) -> Option<i64>,
) -> Vec<Option<i64>> {
    // When each environment is expected to be free; None = unknown.
    let mut free_at: HashMap<u32, Option<i64>> = HashMap::new();
    for h in holders {
        let start = h.started_ms.unwrap_or(now_ms);
        let end = median(&h.path, h.env).map(|d| (start + d).max(now_ms));
        free_at.insert(h.env, end);
    }
    for (e, until) in reserved {
        let at = free_at.get(e).copied().unwrap_or(Some(now_ms));
        free_at.insert(*e, at.map(|t| t.max(*until)));
    }
    for e in unusable {
        free_at.insert(*e, None);
    }
    waiting
        .iter()
        .map(|w| {
            let best = w
                .wants
                .iter()
                .filter_map(|e| free_at.get(e).copied().unwrap_or(Some(now_ms)).map(|t| (t, *e)))
                .min();
            let (start, env) = best?;
            let end = w.hold_ms.or_else(|| median(&w.path, env)).map(|d| start + d);
            free_at.insert(env, end);
            Some(start)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: RunId, wants: &[u32]) -> Waiting {
        Waiting {
            id,
            wants: wants.to_vec(),
            path: "./tests/a.py".into(),
            hold_ms: None,
        }
    }

    #[test]
    fn positions_count_only_items_that_compete() {
        let q = [w(1, &[1]), w(2, &[2]), w(3, &[1, 2]), w(4, &[1])];
        assert_eq!(positions(&q), [1, 1, 3, 3]);
    }

    #[test]
    fn etas_walk_the_queue_behind_the_holder() {
        let holders = [Holder {
            env: 1,
            path: "./tests/a.py".into(),
            started_ms: Some(1_000),
        }];
        let q = [w(1, &[1]), w(2, &[1])];
        let mut median = |_: &str, _: u32| Some(10_000);
        let e = etas(&q, &holders, &[], &[], 5_000, &mut median);
        assert_eq!(e, [Some(11_000), Some(21_000)]);
    }

    #[test]
    fn a_label_run_takes_the_environment_that_frees_first() {
        let holders = [
            Holder {
                env: 1,
                path: "p".into(),
                started_ms: Some(0),
            },
            Holder {
                env: 2,
                path: "q".into(),
                started_ms: None,
            },
        ];
        let q = [w(1, &[1, 2]), w(2, &[1, 2])];
        let mut median = |p: &str, _: u32| if p == "q" { Some(50) } else { Some(20) };
        let e = etas(&q, &holders, &[], &[], 10, &mut median);
        // env 1 frees at 20, env 2 at 60; the first takes env 1 until 40, the second env 1 too.
        assert_eq!(e, [Some(20), Some(40)]);
    }

    #[test]
    fn a_reservation_holds_its_environment_until_its_end() {
        let mut median = |_: &str, _: u32| Some(10);
        let mut res = w(1, &[1]);
        res.hold_ms = Some(1_000);
        let q = [res, w(2, &[1])];
        assert_eq!(etas(&q, &[], &[], &[], 0, &mut median), [Some(0), Some(1_000)]);
        assert_eq!(etas(&[w(3, &[1])], &[], &[], &[(1, 500)], 0, &mut median), [Some(500)]);
    }

    #[test]
    fn nothing_known_means_no_eta() {
        let holders = [Holder {
            env: 1,
            path: "p".into(),
            started_ms: Some(0),
        }];
        let mut median = |_: &str, _: u32| None;
        assert_eq!(etas(&[w(1, &[1])], &holders, &[], &[], 0, &mut median), [None]);
        assert_eq!(etas(&[w(1, &[1])], &[], &[1], &[], 0, &mut median), [None], "disabled");
    }
}

//! Login rate limiting, in memory: failed sign-ins counted per name and per
//! client address over a sliding window. While either is over its limit,
//! every try (even a right password) answers `429 rate_limited`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed tries of one name within [`WINDOW`] before it is refused.
pub const PER_NAME: usize = 5;
/// Failed tries from one address within [`WINDOW`] before it is refused.
pub const PER_ADDRESS: usize = 20;
/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Keys kept at most (each holds at most a limit's worth of instants).
const MAX_KEYS: usize = 100_000;

/// Failures per key (`name:…`, `addr:…`).
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn keys(name: &str, addr: Option<IpAddr>) -> [(String, usize); 2] {
        let addr = addr.map(|a| a.to_string()).unwrap_or_else(|| "unknown".into());
        [
            (format!("name:{name}"), PER_NAME),
            (format!("addr:{addr}"), PER_ADDRESS),
        ]
    }

    /// `Err(seconds to wait)` while `name` or `addr` has too many recent failures.
    pub fn check(&self, name: &str, addr: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, limit) in Self::keys(name, addr) {
            if let Some(times) = map.get_mut(&key) {
                while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = times.front().copied().unwrap_or(now);
                    let left = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
                    wait = Some(wait.map_or(left, |w: u64| w.max(left)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed try.
    pub fn failed(&self, name: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for (key, limit) in Self::keys(name, addr) {
            let times = map.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A right password clears the name's count (not the address's).
    pub fn succeeded(&self, name: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("name:{name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_refused_after_its_failures_and_others_are_not() {
        let l = LoginLimiter::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..PER_NAME {
            assert!(l.check("alice", ip).is_ok());
            l.failed("alice", ip);
        }
        assert!(l.check("alice", ip).is_err());
        assert!(l.check("bob", ip).is_ok(), "the address is under its own limit");
        l.succeeded("alice");
        assert!(l.check("alice", ip).is_ok());
        for i in 0..PER_ADDRESS {
            l.failed(&format!("n{i}"), ip);
        }
        assert!(l.check("carol", ip).is_err(), "the address is over its limit");
        assert!(l.check("carol", Some(IpAddr::from([10, 0, 0, 2]))).is_ok());
    }
}

//! The registry of connected remote workers (`GET /api/workers`, `workersChanged`).
//! It only remembers what workers said about themselves and when, and paces
//! the announcements of its changes: at most one per [`ANNOUNCE_EVERY`],
//! carrying the latest list, however many heartbeats change it.

use crate::domain::RunId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest time between two `workersChanged` announcements.
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(500);

/// One remote worker as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub slots: u64,
    pub running: Vec<RunId>,
    /// RFC 3339, UTC.
    pub last_seen: String,
}

/// Connected workers by id; cheap to clone.
#[derive(Clone, Default)]
pub struct WorkerRegistry {
    inner: Arc<Mutex<BTreeMap<String, (WorkerInfo, std::time::Instant)>>>,
    announce: Arc<Mutex<Pace>>,
}

/// When the list was last announced, and whether a change waits.
#[derive(Default)]
struct Pace {
    last: Option<Instant>,
    pending: bool,
}

impl Pace {
    fn due(&mut self, now: Instant) -> bool {
        if self.last.is_none_or(|t| now.duration_since(t) >= ANNOUNCE_EVERY) {
            self.last = Some(now);
            self.pending = false;
            true
        } else {
            false
        }
    }
}

impl WorkerRegistry {
    /// Every worker seen within its lease, by id.
    pub fn list(&self) -> Vec<WorkerInfo> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(|(w, _)| w.clone()).collect()
    }

    /// Records a heartbeat; true when the list as shown changed (not just `last_seen`).
    pub fn seen(&self, info: WorkerInfo) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match map.get(&info.id) {
            Some((old, _)) => old.host != info.host || old.slots != info.slots || old.running != info.running,
            None => true,
        };
        map.insert(info.id.clone(), (info, std::time::Instant::now()));
        changed
    }

    /// Forgets workers silent for longer than `lease`; true if any went.
    pub fn expire(&self, lease: std::time::Duration) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|_, (_, at)| at.elapsed() <= lease);
        map.len() != before
    }

    /// Notes that the list changed; true if it is to be announced now, else
    /// [`WorkerRegistry::take_due`] says when.
    pub fn note_change(&self) -> bool {
        let mut pace = self.announce.lock().unwrap_or_else(|p| p.into_inner());
        pace.pending = true;
        pace.due(Instant::now())
    }

    /// Whether a change noted earlier is to be announced now (asked every few hundred ms).
    pub fn take_due(&self) -> bool {
        let mut pace = self.announce.lock().unwrap_or_else(|p| p.into_inner());
        pace.pending && pace.due(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_paced_and_none_is_lost() {
        let reg = WorkerRegistry::default();
        assert!(reg.note_change(), "the first change goes out at once");
        assert!(!reg.take_due(), "nothing pending");
        for _ in 0..1000 {
            assert!(!reg.note_change(), "a burst is held back");
        }
        assert!(!reg.take_due());
        std::thread::sleep(ANNOUNCE_EVERY);
        assert!(reg.take_due(), "the held-back change goes out once");
        assert!(!reg.take_due());
    }
}

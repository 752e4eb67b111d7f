//! The registry of connected remote workers (`GET /api/workers`, `workersChanged`).
//! It only remembers what workers said about themselves and when.

use crate::domain::RunId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One remote worker as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub slots: u64,
    #[schema(value_type = Vec<i64>)]
    pub running: Vec<RunId>,
    /// RFC 3339, UTC.
    pub last_seen: String,
}

/// Connected workers by id; cheap to clone.
#[derive(Clone, Default)]
pub struct WorkerRegistry {
    inner: Arc<Mutex<BTreeMap<String, (WorkerInfo, std::time::Instant)>>>,
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
}

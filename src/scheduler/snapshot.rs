//! One read of the queue: waiting runs and reservations in their shared
//! order, holders, disabled environments, and what each queued item could
//! take. The rules "who may take this environment now" and each
//! environment's view live here, so admission, `fill` and the views agree.

use crate::domain::catalog::Holder as EnvHolder;
use crate::domain::{Catalog, EnvView};
use crate::store::queue::{self as rows, HolderRow, QueuedRow};
use crate::store::reservations::{self, Reservation};
use crate::store::StoreError;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

/// What the queue looks like at one moment, read in one go.
pub(super) struct Snapshot {
    pub(super) catalog: std::sync::Arc<Catalog>,
    pub(super) queued: Vec<QueuedRow>,
    pub(super) holders: Vec<HolderRow>,
    pub(super) disabled: HashMap<u32, String>,
    /// Active reservations by environment.
    pub(super) active: HashMap<u32, Reservation>,
    /// Queued reservations, in arrival order.
    waiting: Vec<Reservation>,
}

/// One item of the queue: runs and reservations share one order.
#[derive(Clone, Copy)]
pub(super) enum Item<'a> {
    Run(&'a QueuedRow),
    Reservation(&'a Reservation),
}

impl Item<'_> {
    /// Highest priority first (a reservation queues at 0), then first come.
    pub(super) fn key(&self) -> (i32, &str, i64) {
        match self {
            Item::Run(q) => (-q.priority, q.created_at.as_str(), q.id),
            Item::Reservation(r) => (0, r.created_at.as_str(), r.id),
        }
    }
}

impl Snapshot {
    pub(super) fn read(conn: &Connection, catalog: std::sync::Arc<Catalog>) -> Result<Snapshot, StoreError> {
        let mut active = HashMap::new();
        let mut waiting = Vec::new();
        for r in reservations::open(conn, false)? {
            if r.status == "active" {
                active.insert(r.env_id, r);
            } else {
                waiting.push(r);
            }
        }
        Ok(Snapshot {
            catalog,
            queued: rows::queued(conn)?,
            holders: rows::holders(conn)?,
            disabled: rows::disabled(conn)?,
            active,
            waiting,
        })
    }

    /// The whole queue in order.
    pub(super) fn items(&self) -> Vec<Item<'_>> {
        let mut items: Vec<Item<'_>> = self.queued.iter().map(Item::Run).collect();
        items.extend(self.waiting.iter().map(Item::Reservation));
        items.sort_by(|a, b| a.key().cmp(&b.key()));
        items
    }

    /// The environments a queued item could take, ascending.
    pub(super) fn wants(&self, item: Item<'_>) -> Vec<u32> {
        match item {
            Item::Run(q) => match (&q.labels, q.env_id) {
                (Some(labels), _) => self.catalog.fitting(labels),
                (None, Some(env)) if self.catalog.contains(env) => vec![env],
                _ => Vec::new(),
            },
            Item::Reservation(r) if self.catalog.contains(r.env_id) => vec![r.env_id],
            Item::Reservation(_) => Vec::new(),
        }
    }

    /// Whether `user`'s run may take `env` now (no run on it, enabled, not
    /// reserved by someone else).
    pub(super) fn run_fits(&self, env: u32, user: &str, held: &HashSet<u32>, owners: &HashMap<u32, String>) -> bool {
        !held.contains(&env) && !self.disabled.contains_key(&env) && owners.get(&env).is_none_or(|o| o == user)
    }

    /// Whether a reservation may become active on `env` now.
    pub(super) fn reservation_fits(&self, env: u32, held: &HashSet<u32>, owners: &HashMap<u32, String>) -> bool {
        !held.contains(&env) && !self.disabled.contains_key(&env) && !owners.contains_key(&env)
    }

    pub(super) fn held(&self) -> HashSet<u32> {
        self.holders.iter().map(|h| h.env_id).collect()
    }

    pub(super) fn owners(&self) -> HashMap<u32, String> {
        self.active.iter().map(|(e, r)| (*e, r.username.clone())).collect()
    }

    pub(super) fn view(&self, id: u32) -> Option<EnvView> {
        let def = self.catalog.get(id)?;
        let run = self.holders.iter().find(|h| h.env_id == id);
        let reservation = self.active.get(&id);
        let disabled = self.disabled.get(&id).cloned();
        let state = match (&disabled, reservation, run) {
            (Some(_), _, _) => "disabled",
            (None, Some(_), _) => "reserved",
            (None, None, Some(_)) => "busy",
            (None, None, None) => "free",
        };
        let holder = match (reservation, run) {
            (Some(r), _) => Some(EnvHolder::Reservation {
                reservation_id: r.id,
                username: r.username.clone(),
                since: r.since.clone(),
                until: r.until.clone(),
                note: r.note.clone(),
            }),
            (None, Some(h)) => Some(EnvHolder::Run {
                run_id: h.run_id,
                username: h.username.clone(),
                since: h.started_at.clone().unwrap_or_else(|| h.created_at.clone()),
            }),
            (None, None) => None,
        };
        let queue_length = self
            .items()
            .into_iter()
            .filter(|i| self.wants(*i).contains(&id))
            .count() as u64;
        Some(EnvView {
            id,
            name: def.name,
            labels: def.labels,
            description: def.description,
            state,
            run_id: run.map(|h| h.run_id),
            holder,
            queue_length,
            disabled_reason: disabled,
        })
    }

    /// Environments whose view is not the plain "free, nobody waits" one.
    pub(super) fn notable(&self) -> HashSet<u32> {
        let mut ids = self.held();
        ids.extend(self.disabled.keys().copied());
        ids.extend(self.active.keys().copied());
        for item in self.items() {
            ids.extend(self.wants(item));
        }
        ids
    }
}

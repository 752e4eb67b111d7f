//! The queue and the environments: admission (a free environment now, or a
//! place in the queue with `wait`), handing freed environments to the next
//! waiting run (`fill`, always inside the transaction that freed them),
//! positions and ETAs (recomputed on queue events, never with the clock),
//! the environments' views (`GET /api/envs`, `envChanged`), disable/enable,
//! queue timeouts and a changed envs file. Statuses move only through
//! `moves.rs`.

use super::Scheduler;

use super::snapshot::{Item, Snapshot};
use crate::domain::queue::{etas, positions, Holder, Waiting};
use crate::domain::{run::now, run::timestamp, EnvView, Run, RunId, RunStatus, Transition};
use crate::error::AppError;
use crate::hub::RunEvent;
use crate::store::queue::{self as rows, parse_ms};
use crate::store::reservations;
use crate::store::{now_ms, runs, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use serde_json::json;
use std::collections::HashMap;
use tracing::instrument;

/// Where a run asks to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This environment.
    Env(u32),
    /// Any environment that has all these labels.
    Labels(Vec<String>),
}

/// A run as asked for, already validated.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub username: String,
    pub target: Target,
    pub path: String,
    pub timeout_s: u64,
    /// Queue behind a busy environment instead of being refused.
    pub wait: bool,
    pub priority: i32,
    pub queue_timeout_s: Option<u64>,
    /// `-k`, `-m`, selected node ids, and the run it repeats.
    pub picks: runs::Picks,
}

impl Scheduler {
    /// Admits a run: `created` on a free environment (the lowest id that fits
    /// a label run), else `queued` with `wait`, else refused (`env_busy`,
    /// `env_disabled`). Announced and, once `created`, dispatched. Blocking.
    #[instrument(skip(self, req), fields(target = ?req.target, path = %req.path, user = %req.username))]
    pub fn create(&self, req: RunRequest) -> Result<Run, AppError> {
        let catalog = self.envs.catalog();
        let wants = match &req.target {
            Target::Env(id) => vec![*id],
            Target::Labels(labels) => {
                if let Some(unknown) = labels.iter().find(|l| !catalog.has_label(l)) {
                    return Err(AppError::field(
                        "labels",
                        format!("No environment has the label {unknown:?}."),
                    ));
                }
                let fit = catalog.fitting(labels);
                if fit.is_empty() {
                    return Err(AppError::field(
                        "labels",
                        "No single environment has all of these labels.",
                    ));
                }
                fit
            }
        };
        let run = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let snap = Snapshot::read(&tx, catalog.clone())?;
            let (held, owners) = (snap.held(), snap.owners());
            let free = wants
                .iter()
                .copied()
                .find(|e| snap.run_fits(*e, &req.username, &held, &owners) && !self.is_stopping());
            if free.is_none() && !req.wait {
                return Err(match &req.target {
                    Target::Env(id) if snap.disabled.contains_key(id) => AppError::EnvDisabled(*id),
                    Target::Env(id) => AppError::EnvBusy {
                        env_id: *id,
                        run_id: snap.holders.iter().find(|h| h.env_id == *id).map_or(0, |h| h.run_id),
                    },
                    Target::Labels(_) => AppError::LabelsBusy,
                });
            }
            let new = runs::NewRun {
                username: req.username,
                env_id: free.or(match req.target {
                    Target::Env(id) => Some(id),
                    Target::Labels(_) => None,
                }),
                status: if free.is_some() {
                    RunStatus::Created
                } else {
                    RunStatus::Queued
                },
                path: req.path,
                timeout_s: req.timeout_s,
                created_at: now(),
                priority: req.priority,
                labels: match req.target {
                    Target::Labels(l) => Some(l),
                    Target::Env(_) => None,
                },
                queue_deadline_ms: req
                    .queue_timeout_s
                    .map(|s| now_ms().saturating_add((s as i64).saturating_mul(1000))),
                picks: req.picks,
            };
            let run = runs::insert(&tx, &new)?;
            tx.commit()?;
            run
        };
        tracing::info!(run_id = run.id, user = %run.username, status = %run.status, "run admitted");
        self.queue_changed(Some(run.id));
        let run = runs::get(&*self.store.conn()?, run.id)?.ok_or(StoreError::NotFound(run.id))?;
        self.hub.publish_run(RunEvent::Added, &run);
        if run.status == RunStatus::Created {
            if let Err(e) = self.dispatcher.submit(&run) {
                tracing::error!(run_id = run.id, error = %e, "dispatch failed; the run waits for the next start");
            }
        }
        Ok(run)
    }

    /// Gives free environments to waiting runs, in queue order, inside the
    /// caller's transaction. Nothing starts while the server is stopping.
    /// Returns the runs admitted (now `created`).
    pub(super) fn fill(&self, tx: &Connection) -> Result<Vec<RunId>, StoreError> {
        if self.is_stopping() {
            return Ok(Vec::new());
        }
        let snap = Snapshot::read(tx, self.envs.catalog())?;
        let (mut held, mut owners) = (snap.held(), snap.owners());
        let mut admitted = Vec::new();
        for item in snap.items() {
            match item {
                Item::Run(q) => {
                    let free = snap
                        .wants(item)
                        .into_iter()
                        .find(|e| snap.run_fits(*e, &q.username, &held, &owners));
                    if let Some(env) = free {
                        if self.apply_in(tx, q.id, &Transition::admit(env))? {
                            held.insert(env);
                            admitted.push(q.id);
                        }
                    }
                }
                Item::Reservation(r) => {
                    if snap.wants(item).contains(&r.env_id) && snap.reservation_fits(r.env_id, &held, &owners) {
                        let (since, until, until_ms) = span(r.duration_s);
                        if reservations::activate(tx, r.id, &since, &until, until_ms)? {
                            tracing::info!(reservation_id = r.id, env_id = r.env_id, user = %r.username, "queued reservation active");
                            owners.insert(r.env_id, r.username.clone());
                        }
                    }
                }
            }
        }
        Ok(admitted)
    }

    /// After a queue event: stores every queued run's position and ETA,
    /// sends `taskChanged` for those that changed (but `skip`, announced by
    /// its caller) and `envChanged` for environments whose view changed.
    pub(crate) fn queue_changed(&self, skip: Option<RunId>) {
        if let Err(e) = self.refresh_queue(skip) {
            tracing::warn!(error = %e, "could not recompute the queue's positions");
        }
    }

    fn refresh_queue(&self, skip: Option<RunId>) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let snap = Snapshot::read(&tx, self.envs.catalog())?;
        let items = snap.items();
        let waiting: Vec<Waiting> = items
            .iter()
            .map(|item| match item {
                Item::Run(q) => Waiting {
                    id: q.id,
                    wants: snap.wants(*item),
                    path: q.path.clone(),
                    hold_ms: None,
                },
                Item::Reservation(r) => Waiting {
                    id: -r.id,
                    wants: snap.wants(*item),
                    path: String::new(),
                    hold_ms: Some((r.duration_s as i64).saturating_mul(1000)),
                },
            })
            .collect();
        let holders: Vec<Holder> = snap
            .holders
            .iter()
            .map(|h| Holder {
                env: h.env_id,
                path: h.path.clone(),
                started_ms: h.started_at.as_deref().and_then(parse_ms),
            })
            .collect();
        let unusable: Vec<u32> = snap.disabled.keys().copied().collect();
        let reserved: Vec<(u32, i64)> = snap
            .active
            .values()
            .filter_map(|r| Some((r.env_id, parse_ms(r.until.as_deref()?)?)))
            .collect();
        let mut medians: HashMap<(String, u32), Option<i64>> = HashMap::new();
        let mut failure = None;
        let mut median = |path: &str, env: u32| -> Option<i64> {
            let key = (path.to_string(), env);
            if let Some(m) = medians.get(&key) {
                return *m;
            }
            let m = rows::median_ms(&tx, path, env).unwrap_or_else(|e| {
                failure = Some(e);
                None
            });
            medians.insert(key, m);
            m
        };
        let places = positions(&waiting);
        let starts = etas(&waiting, &holders, &unusable, &reserved, now_ms(), &mut median);
        if let Some(e) = failure {
            return Err(e);
        }
        let mut changed = Vec::new();
        for ((w, pos), eta) in waiting.iter().zip(places).zip(starts) {
            if w.id < 0 {
                continue; // a reservation: its place shows on its environment's queue
            }
            let eta = eta.and_then(chrono::DateTime::from_timestamp_millis).map(timestamp);
            if rows::set_place(&tx, w.id, pos, eta.as_deref())? && Some(w.id) != skip {
                changed.push(w.id);
            }
        }
        tx.commit()?;
        for id in changed {
            if let Some(run) = runs::get(&conn, id)? {
                self.hub.publish_run(RunEvent::Changed, &run);
            }
        }
        self.announce_envs(&snap);
        Ok(())
    }

    /// Sends `envChanged` for each environment whose view differs from the
    /// one last sent.
    fn announce_envs(&self, snap: &Snapshot) {
        let mut last = self.env_views.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids = snap.notable();
        ids.extend(last.keys().copied());
        for id in ids {
            let view = snap.view(id);
            let plain = view.as_ref().is_some_and(|v| v.state == "free" && v.queue_length == 0);
            if last.get(&id) == view.as_ref() {
                continue;
            }
            if let Some(v) = &view {
                self.hub.publish_env(v);
            }
            match view {
                Some(v) if !plain => {
                    last.insert(id, v);
                }
                _ => {
                    last.remove(&id);
                }
            }
        }
    }

    /// Every environment, by ascending id.
    pub fn envs(&self) -> Result<Vec<EnvView>, StoreError> {
        let snap = Snapshot::read(&*self.store.conn()?, self.envs.catalog())?;
        Ok(snap.catalog.ids().into_iter().filter_map(|id| snap.view(id)).collect())
    }

    /// One environment and its queue (`GET /api/envs/{id}`).
    pub fn env(&self, id: u32) -> Result<Option<serde_json::Value>, StoreError> {
        let conn = self.store.conn()?;
        let snap = Snapshot::read(&conn, self.envs.catalog())?;
        let Some(view) = snap.view(id) else {
            return Ok(None);
        };
        let mut queue = Vec::new();
        for item in snap.items().into_iter().filter(|i| snap.wants(*i).contains(&id)) {
            let q = match item {
                Item::Run(q) => q,
                Item::Reservation(r) => {
                    queue.push(json!({
                        "kind": "reservation",
                        "reservation_id": r.id,
                        "username": r.username,
                        "note": r.note,
                        "duration_s": r.duration_s,
                        "created_at": r.created_at,
                    }));
                    continue;
                }
            };
            if let Some(run) = runs::get(&conn, q.id)? {
                queue.push(json!({
                    "kind": "run",
                    "run_id": run.id,
                    "username": run.username,
                    "path": run.path,
                    "priority": run.priority,
                    "labels": run.labels,
                    "queue_position": run.queue_position,
                    "eta": run.eta,
                    "created_at": run.created_at,
                }));
            }
        }
        let mut v = serde_json::to_value(view).map_err(|e| StoreError::Migration(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("queue".into(), queue.into());
        }
        Ok(Some(v))
    }

    /// Takes environment `id` out of service (`Some(reason)`) or back in
    /// (`None`): a run on it goes on, nothing new starts there; once enabled
    /// it goes to its queue. Blocking.
    #[instrument(skip(self))]
    pub fn set_disabled(&self, id: u32, reason: Option<&str>) -> Result<EnvView, AppError> {
        let catalog = self.envs.catalog();
        if !catalog.contains(id) {
            return Err(AppError::NotFound(format!("Environment {id} not found")));
        }
        let admitted = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = rows::set_disabled(&tx, id, reason, &now())?;
            let admitted = if changed && reason.is_none() {
                self.fill(&tx)?
            } else {
                Vec::new()
            };
            tx.commit()?;
            admitted
        };
        tracing::info!(env_id = id, disabled = reason.is_some(), "environment state set");
        self.admitted(admitted)?;
        let snap = Snapshot::read(&*self.store.conn()?, catalog)?;
        snap.view(id)
            .ok_or_else(|| AppError::NotFound(format!("Environment {id} not found")))
    }

    /// Queued runs whose `queue_timeout_s` ran out end `cancelled`.
    pub(crate) fn expire_queue(&self) -> Result<(), StoreError> {
        let late = rows::past_deadline(&*self.store.conn()?, now_ms())?;
        for id in late {
            let t = Transition::stop(RunStatus::Queued, RunStatus::Cancelled);
            if self.apply(id, &t)?.is_some() {
                tracing::info!(run_id = id, "queued run waited past its queue timeout; cancelled");
            }
        }
        Ok(())
    }

    /// The envs file changed: runs queued for an environment that is gone
    /// end `cancelled`; new environments go to the queue.
    pub(crate) fn reload_envs(&self) -> Result<(), StoreError> {
        if self.envs.reload_if_changed().is_none() {
            return Ok(());
        }
        let snap = Snapshot::read(&*self.store.conn()?, self.envs.catalog())?;
        for q in snap.queued.iter().filter(|q| snap.wants(Item::Run(q)).is_empty()) {
            let t = Transition::stop(RunStatus::Queued, RunStatus::Cancelled);
            if self.apply(q.id, &t)?.is_some() {
                tracing::info!(
                    run_id = q.id,
                    "its environment left the envs file; queued run cancelled"
                );
            }
        }
        let admitted = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let admitted = self.fill(&tx)?;
            tx.commit()?;
            admitted
        };
        self.admitted(admitted)
    }

    /// Gives free environments to the queue (at start, after a restart).
    pub(crate) fn fill_now(&self) -> Result<(), StoreError> {
        self.reload_envs_quietly();
        let admitted = {
            let mut conn = self.store.conn()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let admitted = self.fill(&tx)?;
            tx.commit()?;
            admitted
        };
        self.admitted(admitted)
    }

    fn reload_envs_quietly(&self) {
        if let Err(e) = self.reload_envs() {
            tracing::warn!(error = %e, "could not apply the envs file");
        }
    }
}

/// Now, now + `duration_s` (RFC 3339 both) and the end in ms since the epoch.
pub(super) fn span(duration_s: u64) -> (String, String, i64) {
    let start = chrono::Utc::now();
    let end = start + chrono::Duration::seconds(duration_s.min(i64::MAX as u64 / 1000) as i64);
    (timestamp(start), timestamp(end), end.timestamp_millis())
}

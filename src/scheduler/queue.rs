//! The queue and the environments: admission (a free environment now, or a
//! place in the queue with `wait`), handing freed environments to the next
//! waiting run (`fill`, always inside the transaction that freed them),
//! positions and ETAs (recomputed on queue events, never with the clock),
//! the environments' views (`GET /api/envs`, `envChanged`), disable/enable,
//! queue timeouts and a changed envs file. Statuses move only through
//! `moves.rs`.

use super::Scheduler;
use crate::domain::queue::{etas, positions, Holder, Waiting};
use crate::domain::{run::now, run::timestamp, Catalog, Run, RunId, RunStatus, Transition};
use crate::error::AppError;
use crate::store::queue::{self as rows, parse_ms, HolderRow, QueuedRow};
use crate::store::{now_ms, runs, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
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
}

/// One environment as `GET /api/envs` and `envChanged` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvView {
    pub id: u32,
    pub name: String,
    pub labels: Vec<String>,
    pub description: String,
    /// `free`, `busy`, `reserved` or `disabled`.
    pub state: &'static str,
    pub run_id: Option<RunId>,
    pub holder: Option<serde_json::Value>,
    pub queue_length: u64,
    pub disabled_reason: Option<String>,
}

/// What the queue looks like at one moment, read in one go.
struct Snapshot {
    catalog: std::sync::Arc<Catalog>,
    queued: Vec<QueuedRow>,
    holders: Vec<HolderRow>,
    disabled: HashMap<u32, String>,
}

impl Snapshot {
    fn read(conn: &Connection, catalog: std::sync::Arc<Catalog>) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            catalog,
            queued: rows::queued(conn)?,
            holders: rows::holders(conn)?,
            disabled: rows::disabled(conn)?,
        })
    }

    /// The environments a queued run could take, ascending.
    fn wants(&self, q: &QueuedRow) -> Vec<u32> {
        match (&q.labels, q.env_id) {
            (Some(labels), _) => self.catalog.fitting(labels),
            (None, Some(env)) if self.catalog.contains(env) => vec![env],
            _ => Vec::new(),
        }
    }

    fn view(&self, id: u32) -> Option<EnvView> {
        let def = self.catalog.get(id)?;
        let holder = self.holders.iter().find(|h| h.env_id == id);
        let disabled = self.disabled.get(&id).cloned();
        let state = match (&disabled, holder) {
            (Some(_), _) => "disabled",
            (None, Some(_)) => "busy",
            (None, None) => "free",
        };
        let queue_length = self.queued.iter().filter(|q| self.wants(q).contains(&id)).count() as u64;
        Some(EnvView {
            id,
            name: def.name,
            labels: def.labels,
            description: def.description,
            state,
            run_id: holder.map(|h| h.run_id),
            holder: holder.map(|h| {
                json!({
                    "kind": "run",
                    "run_id": h.run_id,
                    "username": h.username,
                    "since": h.started_at.as_deref().unwrap_or(&h.created_at),
                })
            }),
            queue_length,
            disabled_reason: disabled,
        })
    }

    /// Environments whose view is not the plain "free, nobody waits" one.
    fn notable(&self) -> HashSet<u32> {
        let mut ids: HashSet<u32> = self.holders.iter().map(|h| h.env_id).collect();
        ids.extend(self.disabled.keys().copied());
        for q in &self.queued {
            ids.extend(self.wants(q));
        }
        ids
    }
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
            let held: HashSet<u32> = snap.holders.iter().map(|h| h.env_id).collect();
            let free = wants
                .iter()
                .copied()
                .find(|e| !held.contains(e) && !snap.disabled.contains_key(e) && !self.is_stopping());
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
            };
            let run = runs::insert(&tx, &new)?;
            tx.commit()?;
            run
        };
        tracing::info!(run_id = run.id, user = %run.username, status = %run.status, "run admitted");
        self.queue_changed(Some(run.id));
        let run = runs::get(&*self.store.conn()?, run.id)?.ok_or(StoreError::NotFound(run.id))?;
        self.hub.publish_run("taskAdded", &run);
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
        let mut held: HashSet<u32> = snap.holders.iter().map(|h| h.env_id).collect();
        let mut admitted = Vec::new();
        for q in &snap.queued {
            let free = snap
                .wants(q)
                .into_iter()
                .find(|e| !held.contains(e) && !snap.disabled.contains_key(e));
            if let Some(env) = free {
                if self.apply_in(tx, q.id, &Transition::admit(env))? {
                    held.insert(env);
                    admitted.push(q.id);
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
        let waiting: Vec<Waiting> = snap
            .queued
            .iter()
            .map(|q| Waiting {
                id: q.id,
                wants: snap.wants(q),
                path: q.path.clone(),
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
        let starts = etas(&waiting, &holders, &unusable, now_ms(), &mut median);
        if let Some(e) = failure {
            return Err(e);
        }
        let mut changed = Vec::new();
        for ((w, pos), eta) in waiting.iter().zip(places).zip(starts) {
            let eta = eta.and_then(chrono::DateTime::from_timestamp_millis).map(timestamp);
            if rows::set_place(&tx, w.id, pos, eta.as_deref())? && Some(w.id) != skip {
                changed.push(w.id);
            }
        }
        tx.commit()?;
        for id in changed {
            if let Some(run) = runs::get(&conn, id)? {
                self.hub.publish_run("taskChanged", &run);
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
                self.hub
                    .publish_frame(json!({ "event": "envChanged", "env": v }).to_string());
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
        for q in snap.queued.iter().filter(|q| snap.wants(q).contains(&id)) {
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
        for q in snap.queued.iter().filter(|q| snap.wants(q).is_empty()) {
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

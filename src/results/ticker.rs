//! Publishes live counts: once a second, each run whose counts changed gets
//! them stored (only while it is `running`) and a `taskChanged` with them.
//! At most one such frame a second per run, by construction.

use super::LiveResults;
use crate::hub::{Hub, RunEvent};
use crate::store::{results, runs, Store};
use std::time::Duration;

/// How often live counts go out.
pub const EVERY: Duration = Duration::from_secs(1);
/// Every this many ticks, counters of runs that ended without their end
/// taking them (a note after the end opened one) are dropped.
const SWEEP_EVERY: u32 = 60;

/// Starts the `live-results` thread.
pub fn start(live: LiveResults, store: Store, hub: Hub) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("live-results".into())
        .spawn(move || {
            for n in 1u32.. {
                std::thread::sleep(EVERY);
                tick(&live, &store, &hub);
                if n % SWEEP_EVERY == 0 {
                    sweep(&live, &store);
                }
            }
        })
        .map(|_| ())
}

/// One look: stores and announces the counts that changed.
pub fn tick(live: &LiveResults, store: &Store, hub: &Hub) {
    // Held throughout, so a run's end (which takes its counter under the same
    // guard) is announced after any live frame of it.
    let _publishing = live.publishing_guard();
    for (id, summary) in live.take_dirty() {
        let res = store.conn().and_then(|conn| {
            if !results::set_live_summary(&conn, id, &summary)? {
                return Ok(None);
            }
            runs::get(&conn, id)
        });
        match res {
            Ok(Some(run)) => hub.publish_run(RunEvent::Changed, &run),
            // Not running (any more): its end stores its own counts.
            Ok(None) => {}
            Err(e) => tracing::warn!(run_id = id, error = %e, "could not store live counts"),
        }
    }
}

/// Drops the counters of runs that have ended and hold nothing.
fn sweep(live: &LiveResults, store: &Store) {
    let Ok(conn) = store.conn() else { return };
    for id in live.ids() {
        if let Ok(state) = runs::log_state(&conn, id) {
            if state.is_none_or(|(status, _, holds)| status.is_finished() && !holds) {
                live.take(id);
            }
        }
    }
}

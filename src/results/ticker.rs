//! Publishes live counts: once a second, each run whose counts changed gets
//! them stored (only while it is `running`) and a `taskChanged` with them.
//! At most one such frame a second per run, by construction.

use super::LiveResults;
use crate::hub::{Hub, RunEvent};
use crate::store::{results, runs, Store};
use std::time::Duration;

/// How often live counts go out.
pub const EVERY: Duration = Duration::from_secs(1);

/// Starts the `live-results` thread.
pub fn start(live: LiveResults, store: Store, hub: Hub) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("live-results".into())
        .spawn(move || loop {
            std::thread::sleep(EVERY);
            tick(&live, &store, &hub);
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

//! AppState: what every handler can reach. Cheap to clone; no global statics.

use crate::config::Config;
use crate::discovery::TestTree;
use crate::hub::Hub;
use crate::scheduler::worker_registry::WorkerRegistry;
use crate::scheduler::Scheduler;
use crate::store::Store;
use std::sync::Arc;

/// Shared handles of the running server.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub hub: Hub,
    pub scheduler: Scheduler,
    pub tests: TestTree,
    pub workers: WorkerRegistry,
    /// Accounts: settings, login limiter, revocation signal.
    pub auth: Arc<crate::auth::Auth>,
}

//! How runs reach something that executes them. [`Dispatcher`] is the one
//! interface; `local` is the embedded thread pool, `redis` the
//! Redis Streams adapter for remote workers. The rest of the server does
//! not know which one it talks to.

pub mod local;
pub mod redis;
pub mod stream;

use crate::domain::{Run, RunId};

/// Hands runs to executors and passes cancel requests on.
pub trait Dispatcher: Send + Sync {
    /// Queues a `created` run. It may be given again after a restart.
    fn submit(&self, run: &Run) -> Result<(), String>;
    /// The scheduler cancelled `id`: stop it if it runs here.
    fn cancel(&self, id: RunId);
    /// The server is exiting: stop what runs in this process, waiting at most `grace`.
    fn shutdown(&self, _grace: std::time::Duration) {}
}

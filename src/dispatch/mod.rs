//! How runs reach something that executes them: implementations of the
//! scheduler's [`Dispatcher`] trait; `local` is the embedded thread pool, `redis` the
//! Redis Streams adapter for remote workers. The rest of the server does
//! not know which one it talks to.

pub mod local;
pub mod redis;
pub mod stream;

pub use crate::scheduler::Dispatcher;

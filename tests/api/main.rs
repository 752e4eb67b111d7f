//! Black-box tests: each starts the real binary on a free loopback port with a
//! temporary project of real pytest files and its own SQLite file, and talks
//! HTTP and WebSocket to it.

mod backup;
mod cli;
mod client;
mod helpers;
mod metrics;
mod notify;
mod recovery;
mod runs;
mod spa;
mod workers;
mod ws;

//! Black-box tests: each starts the real binary on a free loopback port with a
//! temporary project of real pytest files and its own SQLite file, and talks
//! HTTP and WebSocket to it.

mod cli;
mod helpers;
mod queue;
mod recovery;
mod reservations;
mod run_process;
mod runs;
mod spa;
mod symlinks;
mod workers;
mod ws;

//! Black-box tests: each starts the real binary on a free loopback port with a
//! temporary project of real pytest files and its own SQLite file, and talks
//! HTTP and WebSocket to it.

mod accounts;
mod backup;
mod cli;
mod client;
mod edge;
mod helpers;
mod log_reads;
mod metrics;
mod notify;
mod openapi;
mod queue;
mod recovery;
mod reservations;
mod results;
mod run_process;
mod runs;
mod shutdown;
mod spa;
mod storage;
mod symlinks;
mod verdicts;
mod workers;
mod ws;

//! testscheduler: queue test runs on shared environments and watch them live.
//! See ARCHITECTURE.md for the map.

pub mod accounts_cli;
pub mod auth;
pub mod backup;
pub mod client;
pub mod config;
pub mod discovery;
pub mod dispatch;
pub mod domain;
pub mod envs_file;
pub mod error;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod protocol;
pub mod quarantine;
pub mod results;
pub mod runner;
pub mod scheduler;
pub mod startup;
pub mod state;
pub mod store;
pub mod worker;

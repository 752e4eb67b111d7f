//! The wire formats that cross a process boundary, as serde types used by
//! both ends: `worker` (Redis job messages, worker reports, heartbeats) and
//! `ws` (the `/ws` frames and their event names). No I/O here.

pub mod worker;
pub mod ws;

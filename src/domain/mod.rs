//! Domain types: runs, their statuses and allowed transitions, environments,
//! and how raw output bytes become numbered lines. No I/O lives here.

pub mod ansi;
pub mod catalog;
pub mod envs;
pub mod lines;
pub mod queue;
pub mod run;
pub mod transition;
pub mod verdicts;

pub use catalog::{Catalog, EnvDef, EnvView};
pub use envs::EnvSet;
pub use lines::LineSplitter;
pub use run::{Run, RunId, RunStatus};
pub use transition::{Claim, EnvHold, IllegalMove, Transition};

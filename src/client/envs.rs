//! `testscheduler envs`: every environment and the run holding it.

use super::{exit, Client, ClientError};
use crate::config::EnvsArgs;
use std::io::Write;

/// Runs `envs`; returns the exit code.
pub fn run(args: EnvsArgs) -> Result<u8, ClientError> {
    let client = Client::new(&args.client)?;
    let list = client.get_json("/api/envs")?;
    let Some(envs) = list.as_array() else {
        return Err(ClientError::Unreachable {
            url: format!("{}/api/envs", client.base()),
            reason: "the answer is not a list of environments".into(),
        });
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:>4}  STATE", "ENV")?;
    for e in envs {
        match e["run_id"].as_i64() {
            Some(run) => writeln!(out, "{:>4}  busy (run {run})", e["id"].to_string())?,
            None if e["disabled"].as_bool() == Some(true) => writeln!(out, "{:>4}  disabled", e["id"].to_string())?,
            None => writeln!(out, "{:>4}  free", e["id"].to_string())?,
        }
    }
    Ok(exit::SUCCEEDED)
}

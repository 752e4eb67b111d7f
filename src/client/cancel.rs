//! `testscheduler cancel ID`.

use super::{exit, Client, ClientError};
use crate::config::CancelArgs;
use serde_json::json;

/// Runs `cancel`: 0 once cancelled, 1 if the run is unknown or already finished.
pub fn run(args: CancelArgs) -> Result<u8, ClientError> {
    let client = Client::new(&args.client)?;
    let run = client.post_json(&format!("/api/testruns/{}/cancel", args.id), &json!({}))?;
    println!("run {}: {}", args.id, run["status"].as_str().unwrap_or("?"));
    Ok(exit::SUCCEEDED)
}

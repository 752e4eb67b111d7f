//! `testscheduler runs`: a table of the server's runs, newest first.

use super::{exit, Client, ClientError};
use crate::config::RunsArgs;
use std::io::Write;

/// Runs `runs`; returns the exit code.
pub fn run(args: RunsArgs) -> Result<u8, ClientError> {
    let client = Client::new(&args.client)?;
    let mut query = format!("/api/testruns?limit={}", args.limit);
    if let Some(s) = &args.status {
        query.push_str(&format!("&status={}", encode(s)));
    }
    if let Some(u) = &args.user {
        query.push_str(&format!("&user={}", encode(u)));
    }
    let list = client.get_json(&query)?;
    let Some(runs) = list.as_array() else {
        return Err(ClientError::Unreachable {
            url: format!("{}{query}", client.base()),
            reason: "the answer is not a list of runs".into(),
        });
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>6}  {:<10} {:>4}  {:<16} {:<25}  PATH",
        "ID", "STATUS", "ENV", "USER", "CREATED"
    )?;
    for r in runs {
        writeln!(
            out,
            "{:>6}  {:<10} {:>4}  {:<16} {:<25}  {}",
            r["id"].to_string(),
            r["status"].as_str().unwrap_or("?"),
            r["env_id"].to_string(),
            r["username"].as_str().unwrap_or(""),
            r["created_at"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or("")
        )?;
    }
    Ok(exit::SUCCEEDED)
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

//! `testscheduler submit`: queue a run; print its id, or with `--follow` its
//! log, and exit with the run's result.

use super::{exit, follow, Client, ClientError};
use crate::config::SubmitArgs;
use serde_json::{json, Map, Value};

/// The `POST /api/testruns` body for `args`; optional fields only when given,
/// so a server that does not know them still takes a plain submit.
pub fn body(args: &SubmitArgs, username: String) -> Value {
    let mut b = Map::new();
    b.insert("username".into(), json!(username));
    if let Some(env) = args.env {
        b.insert("env_id".into(), json!(env));
    }
    if !args.label.is_empty() {
        b.insert("labels".into(), json!(args.label));
    }
    b.insert("path".into(), json!(args.path));
    if let Some(t) = args.timeout {
        b.insert("timeout_s".into(), json!(t));
    }
    if args.wait {
        b.insert("wait".into(), json!(true));
    }
    if let Some(t) = args.queue_timeout {
        b.insert("queue_timeout_s".into(), json!(t));
    }
    if let Some(p) = args.priority {
        b.insert("priority".into(), json!(p));
    }
    Value::Object(b)
}

/// Runs `submit`; returns the exit code.
pub fn run(args: SubmitArgs) -> Result<u8, ClientError> {
    let client = Client::new(&args.client)?;
    let user = match args.user.clone().or_else(super::login_name) {
        Some(u) => u,
        None => {
            return Err(ClientError::Usage(
                "--user: no login name found; pass --user NAME".into(),
            ))
        }
    };
    // Catch Ctrl-C from before the run exists, so that it cannot slip between
    // the submit and the follow.
    let interrupted = if args.follow {
        follow::Interrupt::install()?
    } else {
        follow::Interrupt::none()
    };
    let run = client
        .post_json("/api/testruns", &body(&args, user))
        .map_err(|e| match e {
            // A refused submit is a usage error (exit 2), whatever the status.
            ClientError::Refused { status, body } => ClientError::Usage(super::refused_text(&status, &body)),
            other => other,
        })?;
    let Some(id) = run["id"].as_i64() else {
        return Err(ClientError::Unreachable {
            url: client.base().to_string(),
            reason: format!("the answer carries no run id: {run}"),
        });
    };
    if !args.follow {
        println!("{id}");
        return Ok(exit::SUCCEEDED);
    }
    eprintln!(
        "run {id}: {} on env {} by {}: {}",
        run["path"].as_str().unwrap_or(&args.path),
        run["env_id"],
        run["username"].as_str().unwrap_or("?"),
        follow::describe(&run)
    );
    follow::follow(
        &client,
        id,
        follow::Options {
            cancel_on_interrupt: args.cancel_on_interrupt,
            colour: super::colour_stdout(),
        },
        &interrupted,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> SubmitArgs {
        let mut v = vec!["testscheduler", "submit", "--path", "./tests/a.py"];
        v.extend_from_slice(extra);
        match Cli::try_parse_from(v).expect("valid flags").command {
            Some(Command::Submit(a)) => a,
            other => panic!("not a submit: {other:?}"),
        }
    }

    #[test]
    fn a_plain_submit_sends_only_the_seed_fields() {
        let b = body(&args(&["--env", "3"]), "alice".into());
        assert_eq!(b, json!({"username": "alice", "env_id": 3, "path": "./tests/a.py"}));
    }

    #[test]
    fn given_options_map_to_their_body_fields() {
        let a = args(&[
            "--label",
            "gpu",
            "--label",
            "linux",
            "--timeout",
            "60",
            "--wait",
            "--queue-timeout",
            "30",
            "--priority",
            "-2",
        ]);
        let b = body(&a, "bob".into());
        assert_eq!(
            b,
            json!({"username": "bob", "labels": ["gpu", "linux"], "path": "./tests/a.py", "timeout_s": 60,
                   "wait": true, "queue_timeout_s": 30, "priority": -2})
        );
    }
}

//! Roles and what each may do: the one table every permission check reads.

use serde::Serialize;

/// An account's role, weakest first (the order is the permission order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also queues runs, cancels and re-runs their own, reserves environments.
    Runner,
    /// Everything: others' runs and reservations, environments, users, the audit.
    Admin,
}

impl Role {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Runner => "runner",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or given name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "runner" => Some(Role::Runner),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a request asks to do. Actions on a thing someone owns carry the
/// owner's name (a run's or a reservation's `username`).
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Any read: runs, logs, environments, tests, workers.
    Read,
    /// `POST /api/testruns`.
    QueueRun,
    /// Cancel the run `owner` queued.
    CancelRun { owner: &'a str },
    /// Queue again the run `owner` queued.
    Rerun { owner: &'a str },
    /// `POST /api/envs/{id}/reservations`.
    Reserve,
    /// Move or end the reservation `owner` made.
    ChangeReservation { owner: &'a str },
    /// Disable or enable an environment.
    ToggleEnv,
    /// `GET /api/audit`.
    ReadAudit,
    /// Create, list and revoke one's own API tokens (needs an account).
    OwnTokens,
}

impl Action<'_> {
    /// The weakest role that may do this to anyone's thing, and the weakest
    /// that may do it to its own (`None`: ownership gives nothing more).
    fn needs(&self) -> (Role, Option<Role>) {
        match self {
            Action::Read | Action::OwnTokens => (Role::Viewer, None),
            Action::QueueRun | Action::Reserve => (Role::Runner, None),
            Action::CancelRun { .. } | Action::Rerun { .. } | Action::ChangeReservation { .. } => {
                (Role::Admin, Some(Role::Runner))
            }
            Action::ToggleEnv | Action::ReadAudit => (Role::Admin, None),
        }
    }

    fn owner(&self) -> Option<&str> {
        match self {
            Action::CancelRun { owner } | Action::Rerun { owner } | Action::ChangeReservation { owner } => Some(owner),
            _ => None,
        }
    }

    /// Words for a refusal: "cancel runs of others".
    fn describe(&self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::QueueRun => "queue runs",
            Action::CancelRun { .. } => "cancel this run",
            Action::Rerun { .. } => "re-run this run",
            Action::Reserve => "reserve environments",
            Action::ChangeReservation { .. } => "change this reservation",
            Action::ToggleEnv => "disable or enable environments",
            Action::ReadAudit => "read the audit log",
            Action::OwnTokens => "manage API tokens",
        }
    }
}

/// Whether `role`, acting as `name` (None: no account), may do `action`;
/// else why not.
pub fn allowed(role: Role, name: Option<&str>, action: &Action<'_>) -> Result<(), String> {
    let (anyone, own) = action.needs();
    if matches!(action, Action::OwnTokens) && name.is_none() {
        return Err("API tokens belong to accounts; this server runs with --auth none".into());
    }
    if role >= anyone {
        return Ok(());
    }
    let is_owner = name.is_some() && action.owner() == name;
    match own {
        Some(own) if is_owner && role >= own => Ok(()),
        Some(own) if role >= own => Err(format!(
            "Only its owner ({}) or an admin may {}",
            action.owner().unwrap_or(""),
            action.describe()
        )),
        _ => Err(format!(
            "The role {role} may not {}; it needs {}",
            action.describe(),
            own.unwrap_or(anyone)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_what_the_table_says() {
        use Role::*;
        let me = Some("alice");
        let cases: &[(Action, [bool; 3])] = &[
            (Action::Read, [true, true, true]),
            (Action::QueueRun, [false, true, true]),
            (Action::Reserve, [false, true, true]),
            (Action::CancelRun { owner: "alice" }, [false, true, true]),
            (Action::CancelRun { owner: "bob" }, [false, false, true]),
            (Action::Rerun { owner: "alice" }, [false, true, true]),
            (Action::Rerun { owner: "bob" }, [false, false, true]),
            (Action::ChangeReservation { owner: "bob" }, [false, false, true]),
            (Action::ToggleEnv, [false, false, true]),
            (Action::ReadAudit, [false, false, true]),
            (Action::OwnTokens, [true, true, true]),
        ];
        for (action, expect) in cases {
            for (role, ok) in [Viewer, Runner, Admin].into_iter().zip(expect) {
                assert_eq!(allowed(role, me, action).is_ok(), *ok, "{role} {action:?}");
            }
        }
        assert!(
            allowed(Admin, None, &Action::OwnTokens).is_err(),
            "no account, no tokens"
        );
        assert!(allowed(Admin, None, &Action::CancelRun { owner: "x" }).is_ok());
    }

    #[test]
    fn refusals_say_why() {
        let e = allowed(Role::Runner, Some("alice"), &Action::CancelRun { owner: "bob" }).expect_err("refused");
        assert!(e.contains("bob") && e.contains("admin"), "{e}");
        let e = allowed(Role::Viewer, Some("v"), &Action::QueueRun).expect_err("refused");
        assert!(e.contains("viewer") && e.contains("runner"), "{e}");
    }
}

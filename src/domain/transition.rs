//! The one table of status moves and the [`Transition`] value the scheduler
//! applies to a run. A transition says where the run goes and what the move
//! does besides (frees the environment, stamps a start, records a worker);
//! `store::runs::apply` carries it out as one conditional update, and only
//! after [`Transition::check`] allowed it. No I/O here.

use super::{RunId, RunStatus};

/// Every allowed move, `(from, to)`. A new status or holder is a row here,
/// never an `UPDATE` somewhere else.
pub const MOVES: &[(RunStatus, RunStatus)] = {
    use RunStatus::*;
    &[
        (Queued, Created),
        (Queued, Cancelled),
        (Created, Running),
        (Created, Cancelled),
        (Running, Succeeded),
        (Running, Failed),
        (Running, Cancelled),
        (Running, Timeout),
        (Running, Unknown),
    ]
};

/// What a move does to the environment the run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvHold {
    /// The run keeps holding it (its process may still be going).
    Keep,
    /// The run frees it: nothing of it runs any more.
    Release,
    /// A queued run takes this environment (it held none).
    Take(u32),
}

/// The remote worker that takes a run, and the proof it holds the newest token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub worker: String,
    /// SHA-256 of the run's newest token; the move happens only if it still is.
    pub token_hash: String,
    /// The first lease, in milliseconds since the Unix epoch.
    pub lease_until_ms: i64,
}

/// One move of one run: from the status it is expected to be in, to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: RunStatus,
    pub to: RunStatus,
    pub env: EnvHold,
    /// Recorded when given; an exit code already stored is kept.
    pub exit_code: Option<i32>,
    /// Set when a remote worker claims the run.
    pub claim: Option<Claim>,
}

/// A move the table does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("run {id} cannot move from {from} to {to}")]
pub struct IllegalMove {
    pub id: RunId,
    pub from: RunStatus,
    pub to: RunStatus,
}

impl Transition {
    /// `from` → `to`, nothing else recorded.
    pub fn new(from: RunStatus, to: RunStatus, env: EnvHold) -> Transition {
        Transition {
            from,
            to,
            env,
            exit_code: None,
            claim: None,
        }
    }

    /// A queued run gets environment `env` and waits for an executor.
    pub fn admit(env: u32) -> Transition {
        Transition::new(RunStatus::Queued, RunStatus::Created, EnvHold::Take(env))
    }

    /// An embedded runner starts a `created` run.
    pub fn start() -> Transition {
        Transition::new(RunStatus::Created, RunStatus::Running, EnvHold::Keep)
    }

    /// A remote worker claims a `created` run.
    pub fn claim(claim: Claim) -> Transition {
        Transition {
            claim: Some(claim),
            ..Transition::start()
        }
    }

    /// A running run ended as `to` and nothing of it runs any more.
    pub fn finish(to: RunStatus, exit_code: Option<i32>) -> Transition {
        Transition {
            exit_code,
            ..Transition::new(RunStatus::Running, to, EnvHold::Release)
        }
    }

    /// The server stops a run in `from`: a run that never started frees its
    /// environment at once (a queued one held none); a running one keeps it
    /// until its process is gone.
    pub fn stop(from: RunStatus, to: RunStatus) -> Transition {
        let env = if from == RunStatus::Running {
            EnvHold::Keep
        } else {
            EnvHold::Release
        };
        Transition::new(from, to, env)
    }

    /// Whether the table allows this move for run `id`.
    pub fn check(&self, id: RunId) -> Result<(), IllegalMove> {
        if self.from.can_move_to(self.to) {
            Ok(())
        } else {
            Err(IllegalMove {
                id,
                from: self.from,
                to: self.to,
            })
        }
    }

    /// True when the run reaches an end and frees its environment: no line
    /// can follow, so its followers are told the log is complete.
    pub fn ends_log(&self) -> bool {
        self.to.is_finished() && self.env == EnvHold::Release
    }

    /// True when the move stamps `started_at`.
    pub fn starts(&self) -> bool {
        self.to == RunStatus::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus::*;

    #[test]
    fn the_table_is_the_contract() {
        for (from, to) in MOVES {
            assert!(Transition::new(*from, *to, EnvHold::Keep).check(1).is_ok());
        }
        let illegal = Transition::finish(Succeeded, None);
        assert!(illegal.check(1).is_ok(), "running → succeeded is allowed");
        let back = Transition::new(Succeeded, Running, EnvHold::Keep);
        assert_eq!(
            back.check(7),
            Err(IllegalMove {
                id: 7,
                from: Succeeded,
                to: Running
            })
        );
        assert!(Transition::new(Queued, Running, EnvHold::Keep).check(1).is_err());
        assert!(Transition::new(Created, Succeeded, EnvHold::Release).check(1).is_err());
    }

    #[test]
    fn stopping_frees_the_environment_only_when_nothing_runs() {
        assert_eq!(Transition::stop(Created, Cancelled).env, EnvHold::Release);
        assert_eq!(Transition::stop(Queued, Cancelled).env, EnvHold::Release);
        assert_eq!(Transition::stop(Running, Cancelled).env, EnvHold::Keep);
        assert!(Transition::stop(Created, Cancelled).ends_log());
        assert!(!Transition::stop(Running, Timeout).ends_log());
        assert!(Transition::finish(Failed, Some(1)).ends_log());
    }
}

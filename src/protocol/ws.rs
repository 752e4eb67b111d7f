//! The `/ws` protocol: server frames, client operations and event names.
//!
//! The serde tags of [`ServerFrame`] and [`ClientOp`] are the one place the
//! event and op names (`taskAdded`, `logLines`, `follow`, …) are spelled; the
//! server never writes a frame by hand.

use crate::domain::{EnvView, Run, RunId, RunStatus};
use crate::scheduler::worker_registry::WorkerInfo;
use serde::{Deserialize, Serialize};

/// One server → client text frame: a JSON object whose `event` names it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum ServerFrame<'a> {
    /// A run was created (to every client).
    TaskAdded { run: &'a Run },
    /// A run changed status or its `logs` flag (to every client).
    TaskChanged { run: &'a Run },
    /// An environment's state, holder or queue length changed (to every client).
    EnvChanged { env: &'a EnvView },
    /// The list of connected remote workers changed (to every client).
    WorkersChanged { workers: &'a [WorkerInfo] },
    /// Lines `from, from + 1, …` of a followed run.
    LogLines { id: RunId, from: u64, lines: &'a [String] },
    /// The run finished and all `total` lines were sent.
    LogEnd { id: RunId, total: u64, status: RunStatus },
    /// Line `line` so far, not yet ended by a newline; not stored.
    LogPartial { id: RunId, line: u64, text: &'a str },
    /// This client fell behind: run `id` is no longer sent; follow again from `next`.
    Lagged { id: RunId, next: u64 },
    /// A malformed message, or a follow that cannot be served; the socket stays open.
    Error {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RunId>,
        /// The REST error code when there is one (`log_pruned`).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'static str>,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail (no maps, no foreign Serialize
        // impls that error); fall back to an error frame rather than panic.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"message\":\"cannot encode a frame: {e}\"}}"))
    }
}

/// One client → server message: a JSON object whose `op` names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientOp {
    /// Send run `id`'s lines from `from` (default 0), or the last `tail`, then live, then `logEnd`.
    Follow {
        id: RunId,
        from: Option<u64>,
        tail: Option<u64>,
    },
    /// Stop sending run `id`.
    Unfollow { id: RunId },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn event(frame: ServerFrame<'_>) -> Value {
        serde_json::from_str(&frame.to_json()).expect("json")
    }

    #[test]
    fn event_names_are_the_contract() {
        let lines = vec!["a".to_string()];
        let cases = [
            (
                ServerFrame::LogLines {
                    id: 1,
                    from: 2,
                    lines: &lines,
                },
                json!({"event": "logLines", "id": 1, "from": 2, "lines": ["a"]}),
            ),
            (
                ServerFrame::LogEnd {
                    id: 1,
                    total: 3,
                    status: RunStatus::Failed,
                },
                json!({"event": "logEnd", "id": 1, "total": 3, "status": "failed"}),
            ),
            (
                ServerFrame::LogPartial {
                    id: 1,
                    line: 4,
                    text: "x",
                },
                json!({"event": "logPartial", "id": 1, "line": 4, "text": "x"}),
            ),
            (
                ServerFrame::Lagged { id: 1, next: 5 },
                json!({"event": "lagged", "id": 1, "next": 5}),
            ),
            (
                ServerFrame::WorkersChanged { workers: &[] },
                json!({"event": "workersChanged", "workers": []}),
            ),
            (
                ServerFrame::Error {
                    message: "m".into(),
                    id: None,
                    code: None,
                },
                json!({"event": "error", "message": "m"}),
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(event(frame), want);
        }
    }

    #[test]
    fn client_ops_parse_and_refuse_unknown_fields() {
        let op: ClientOp = serde_json::from_str(r#"{"op":"follow","id":3,"tail":5}"#).expect("op");
        assert_eq!(
            op,
            ClientOp::Follow {
                id: 3,
                from: None,
                tail: Some(5)
            }
        );
        let op: ClientOp = serde_json::from_str(r#"{"op":"unfollow","id":3}"#).expect("op");
        assert_eq!(op, ClientOp::Unfollow { id: 3 });
        assert!(serde_json::from_str::<ClientOp>(r#"{"op":"follow","id":3,"frm":1}"#).is_err());
        assert!(serde_json::from_str::<ClientOp>(r#"{"op":"dance"}"#).is_err());
    }
}

//! `/ws`: one plain WebSocket per client, JSON text frames. Every client gets
//! run events; `follow` streams one run's lines (stored backlog first, then
//! live, with no gap and no repeat) until `logEnd`. A follower that cannot keep
//! up gets `lagged` and follows again; it never slows a run or other clients.

use crate::domain::{RunId, RunStatus};
use crate::error::AppError;
use crate::hub::LogEvent;
use crate::state::AppState;
use crate::store::{logs, runs};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Session;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// Ping interval; a client silent for three of them is dropped.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Lines per `logLines` frame when sending a backlog.
const BACKLOG_FRAME: u32 = 1_000;

/// The handshake: refuses pages of other sites, then serves the socket.
pub async fn handshake(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    if let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) {
        if !origin_allowed(origin, &req, &state.config.allowed_origins) {
            tracing::warn!(origin, "refused a /ws handshake from another site");
            return Ok(HttpResponse::Forbidden().json(json!({
                "message": format!("Origin {origin} may not open /ws"),
                "code": "forbidden_origin"
            })));
        }
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(64 * 1024).aggregate_continuations();
    let open = req
        .app_data::<web::Data<crate::metrics::Metrics>>()
        .map(|m| m.ws_connected());
    actix_web::rt::spawn(async move {
        connection(state.into_inner(), session, stream).await;
        drop(open)
    });
    Ok(response)
}

fn origin_allowed(origin: &str, req: &HttpRequest, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    let host = req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum ClientOp {
    Follow {
        id: RunId,
        from: Option<u64>,
        tail: Option<u64>,
    },
    Unfollow {
        id: RunId,
    },
}

async fn connection(
    state: std::sync::Arc<AppState>,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) {
    let runs_task = actix_web::rt::spawn(forward_run_events(state.clone(), session.clone()));
    let mut follows: HashMap<RunId, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                last_heard = Instant::now();
                match msg {
                    actix_ws::AggregatedMessage::Text(text) => {
                        follows.retain(|_, task| !task.is_finished());
                        match serde_json::from_str::<ClientOp>(&text) {
                            Ok(ClientOp::Follow { id, from, tail }) => {
                                if let Some(old) = follows.remove(&id) {
                                    old.abort();
                                }
                                let start = match tail { Some(n) => Start::Tail(n), None => Start::From(from.unwrap_or(0)) };
                                let task = actix_web::rt::spawn(follow(state.clone(), session.clone(), id, start));
                                follows.insert(id, task);
                            }
                            Ok(ClientOp::Unfollow { id }) => {
                                if let Some(old) = follows.remove(&id) {
                                    old.abort();
                                    state.hub.release_log(id);
                                }
                            }
                            Err(e) => {
                                let frame = json!({ "event": "error", "message": format!("Malformed message: {e}") });
                                if session.text(frame.to_string()).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    actix_ws::AggregatedMessage::Ping(bytes) => {
                        if session.pong(&bytes).await.is_err() {
                            break;
                        }
                    }
                    actix_ws::AggregatedMessage::Close(_) => break,
                    actix_ws::AggregatedMessage::Binary(_) => {
                        let frame = json!({ "event": "error", "message": "Send JSON text frames" });
                        if session.text(frame.to_string()).await.is_err() {
                            break;
                        }
                    }
                    actix_ws::AggregatedMessage::Pong(_) => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > PING_EVERY * 3 || session.ping(b"").await.is_err() {
                    break;
                }
            }
        }
    }
    runs_task.abort();
    for (id, task) in follows {
        task.abort();
        state.hub.release_log(id);
    }
    let _ = session.close(None).await;
}

async fn forward_run_events(state: std::sync::Arc<AppState>, mut session: Session) {
    let mut rx = state.hub.subscribe_runs();
    loop {
        match rx.recv().await {
            Ok(frame) => {
                if session.text(frame.to_string()).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(n)) => {
                // The client missed run events: make it reconnect and reload.
                tracing::warn!(missed = n, "a /ws client lagged on run events; closing it");
                let _ = session
                    .close(Some(actix_ws::CloseReason {
                        code: actix_ws::CloseCode::Again,
                        description: Some("lagged".into()),
                    }))
                    .await;
                return;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

enum Start {
    From(u64),
    Tail(u64),
}

/// Why a follow stopped early.
struct Gone;

async fn follow(state: std::sync::Arc<AppState>, mut session: Session, id: RunId, start: Start) {
    // Subscribe first, then read the backlog: no line can fall between them.
    let mut rx = state.hub.subscribe_log(id);
    let res = follow_inner(&state, &mut session, id, start, &mut rx).await;
    drop(rx);
    state.hub.release_log(id);
    if let Err(Gone) = res {
        tracing::debug!(run_id = id, "follower went away");
    }
}

async fn follow_inner(
    state: &AppState,
    session: &mut Session,
    id: RunId,
    start: Start,
    rx: &mut tokio::sync::broadcast::Receiver<LogEvent>,
) -> Result<(), Gone> {
    let store = state.store.clone();
    let info = web::block(move || -> Result<_, AppError> { Ok(runs::log_state(&*store.conn()?, id)?) }).await;
    let Ok(Ok(Some((status, total, holds_env)))) = info else {
        let frame = json!({ "event": "error", "id": id, "message": format!("Run {id} not found") });
        return send(session, frame.to_string()).await;
    };
    let mut cursor = match start {
        Start::From(k) => k,
        Start::Tail(n) => total.saturating_sub(n),
    };
    cursor = send_stored(state, session, id, cursor, total).await?;
    if status.is_finished() && !holds_env {
        cursor = send_stored(state, session, id, cursor, u64::MAX).await?;
        return send_end(session, id, cursor.max(total), status).await;
    }
    // A follower arriving while a test prints nothing sees which one is running.
    if let Some((line, text)) = state.hub.partial(id) {
        if line == cursor {
            let frame = json!({ "event": "logPartial", "id": id, "line": line, "text": &*text });
            send(session, frame.to_string()).await?;
        }
    }
    loop {
        match rx.recv().await {
            Ok(LogEvent::Lines { from, lines }) => {
                let end = from + lines.len() as u64;
                if end <= cursor {
                    continue;
                }
                if from > cursor {
                    cursor = send_stored(state, session, id, cursor, from).await?;
                }
                let skip = (cursor - from) as usize;
                let frame = json!({ "event": "logLines", "id": id, "from": cursor, "lines": &lines[skip..] });
                send(session, frame.to_string()).await?;
                cursor = end;
            }
            Ok(LogEvent::Partial { line, text }) => {
                if line == cursor {
                    let frame = json!({ "event": "logPartial", "id": id, "line": line, "text": &*text });
                    send(session, frame.to_string()).await?;
                }
            }
            Ok(LogEvent::End { total, status }) => {
                cursor = send_stored(state, session, id, cursor, total).await?;
                return send_end(session, id, cursor, status).await;
            }
            Err(RecvError::Lagged(_)) => {
                let frame = json!({ "event": "lagged", "id": id, "next": cursor });
                return send(session, frame.to_string()).await;
            }
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

async fn send(session: &mut Session, frame: String) -> Result<(), Gone> {
    session.text(frame).await.map_err(|_| Gone)
}

async fn send_end(session: &mut Session, id: RunId, total: u64, status: RunStatus) -> Result<(), Gone> {
    send(
        session,
        json!({ "event": "logEnd", "id": id, "total": total, "status": status }).to_string(),
    )
    .await
}

/// Sends stored lines `cursor .. until` (or to the stored end); returns the new cursor.
async fn send_stored(
    state: &AppState,
    session: &mut Session,
    id: RunId,
    mut cursor: u64,
    until: u64,
) -> Result<u64, Gone> {
    while cursor < until {
        let store = state.store.clone();
        let want = (until - cursor).min(BACKLOG_FRAME as u64) as u32;
        let page =
            web::block(move || -> Result<Vec<String>, AppError> { Ok(logs::read(&*store.conn()?, id, cursor, want)?) })
                .await;
        let lines = match page {
            Ok(Ok(lines)) => lines,
            _ => return Err(Gone),
        };
        if lines.is_empty() {
            break;
        }
        let n = lines.len() as u64;
        let frame = json!({ "event": "logLines", "id": id, "from": cursor, "lines": lines });
        send(session, frame.to_string()).await?;
        cursor += n;
    }
    Ok(cursor)
}

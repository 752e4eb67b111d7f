//! `/ws`: one plain WebSocket per client, JSON text frames. Every client gets
//! run events; `follow` streams one run's lines (stored backlog first, then
//! live, with no gap and no repeat) until `logEnd`. A follower that cannot keep
//! up gets `lagged` and follows again; it never slows a run or other clients:
//! what waits for one connection is bounded in bytes (its hub queues share a
//! `Budget`, its outgoing frames an `Outbox`), never in messages.

use super::conn::Stopping;
use super::guard::{foreign_origin, EdgeRules};
use crate::auth::{Credential, Principal};
use crate::domain::{RunId, RunStatus};
use crate::error::AppError;
use crate::hub::{Budget, LogEvent, LogSubscription};
use crate::protocol::ws::{ClientOp, ServerFrame};
use crate::state::AppState;
use crate::store::{logs, runs};
use actix_codec::Encoder;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};

/// Ping interval; a client silent for three of them is dropped.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Most lines in one `logLines` frame.
const FRAME_LINES: usize = 1_000;
/// Text bytes in one `logLines` frame (a longer single line goes alone).
const FRAME_BYTES: usize = 64 * 1024;
/// Runs one connection may follow at once.
const MAX_FOLLOWS: usize = 64;
/// Encoded bytes handed to the HTTP layer at a time.
const WRITE_CHUNK: usize = 64 * 1024;

/// The handshake: refuses pages of other sites (the edge's rule), then serves the socket.
pub async fn handshake(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    rules: web::Data<EdgeRules>,
    stopping: web::Data<Stopping>,
) -> Result<HttpResponse, actix_web::Error> {
    if let Some(origin) = foreign_origin(req.headers(), &rules) {
        tracing::warn!(origin = ?origin, "refused a /ws handshake from another site");
        return Err(AppError::ForbiddenOrigin(format!("Origin {origin} may not open /ws")).into());
    }
    // Subscribe to run events before the handshake answers: an event published
    // once the client sees the socket open must reach it.
    let run_events = state.hub.subscribe_runs();
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    // Frames go out through our own byte-bounded queue, not the session's.
    drop(session);
    let (outbox, body) = outbox(state.config.ws_queue_bytes);
    let response = response
        .set_body(actix_web::body::BodyStream::new(body))
        .map_into_boxed_body();
    let stream = stream.max_frame_size(64 * 1024).aggregate_continuations();
    let stopping = stopping.get_ref().clone();
    let principal = req.extensions().get::<Principal>().cloned();
    let open = req
        .app_data::<web::Data<crate::metrics::Metrics>>()
        .map(|m| m.ws_connected());
    actix_web::rt::spawn(async move {
        connection(state.into_inner(), outbox, stream, run_events, stopping, principal).await;
        drop(open)
    });
    Ok(response)
}

/// The sending half of one connection's outgoing queue. Its size is bounded
/// in bytes: [`Outbox::send`] waits while the queue holds `limit` bytes (a
/// frame larger than that waits for an empty queue), and the bytes are given
/// back only when the HTTP layer takes them for the socket. Control frames
/// ([`Outbox::send_now`]) never wait.
#[derive(Clone)]
struct Outbox {
    inner: Arc<OutboxInner>,
}

struct OutboxInner {
    state: Mutex<OutboxState>,
    space: Arc<Semaphore>,
    limit: usize,
}

#[derive(Default)]
struct OutboxState {
    frames: VecDeque<(Message, Option<OwnedSemaphorePermit>)>,
    waker: Option<Waker>,
    closed: bool,
}

/// The connection is gone (or closing); stop sending.
#[derive(Debug)]
struct Gone;

fn outbox(limit: usize) -> (Outbox, OutboxBody) {
    let limit = limit.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let inner = Arc::new(OutboxInner {
        state: Mutex::new(OutboxState::default()),
        space: Arc::new(Semaphore::new(limit)),
        limit,
    });
    (
        Outbox { inner: inner.clone() },
        OutboxBody {
            inner,
            codec: actix_http::ws::Codec::new(),
        },
    )
}

impl OutboxInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Outbox {
    /// Queues a text frame once there is room for it.
    async fn send(&self, text: String) -> Result<(), Gone> {
        let n = text.len().clamp(1, self.inner.limit) as u32;
        let permit = self.inner.space.clone().acquire_many_owned(n).await.map_err(|_| Gone)?;
        self.push(Message::Text(text.into()), Some(permit))
    }

    /// Queues a small control frame (ping, pong, close) at once.
    fn send_now(&self, msg: Message) -> Result<(), Gone> {
        self.push(msg, None)
    }

    fn push(&self, msg: Message, permit: Option<OwnedSemaphorePermit>) -> Result<(), Gone> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(Gone);
        }
        st.frames.push_back((msg, permit));
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Sends a close frame after what is queued; nothing more is taken.
    fn close(&self, reason: Option<actix_ws::CloseReason>) {
        let _ = self.send_now(Message::Close(reason));
        self.inner.lock().closed = true;
        self.inner.space.close();
    }

    /// Bytes of text frames waiting now.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.inner.limit - self.inner.space.available_permits()
    }
}

/// The response body of one connection: encodes queued frames as the HTTP
/// layer asks for bytes (it asks only while its own write buffer is small).
struct OutboxBody {
    inner: Arc<OutboxInner>,
    codec: actix_http::ws::Codec,
}

impl futures_util::Stream for OutboxBody {
    type Item = Result<web::Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut st = this.inner.lock();
        let mut buf = web::BytesMut::new();
        let mut done = false;
        while buf.len() < WRITE_CHUNK {
            let Some((msg, permit)) = st.frames.pop_front() else {
                break;
            };
            let close = matches!(msg, Message::Close(_));
            if let Err(e) = this.codec.encode(msg, &mut buf) {
                return Poll::Ready(Some(Err(actix_web::error::ErrorInternalServerError(e))));
            }
            drop(permit);
            if close {
                st.frames.clear();
                st.closed = true;
                done = true;
                break;
            }
        }
        if !buf.is_empty() {
            return Poll::Ready(Some(Ok(buf.freeze())));
        }
        if done || st.closed {
            return Poll::Ready(None);
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for OutboxBody {
    /// The client is gone: senders stop at once instead of waiting for room.
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.closed = true;
        st.frames.clear();
        drop(st);
        self.inner.space.close();
    }
}

async fn connection(
    state: Arc<AppState>,
    out: Outbox,
    mut stream: actix_ws::AggregatedMessageStream,
    run_events: broadcast::Receiver<Arc<str>>,
    stopping: Stopping,
    principal: Option<Principal>,
) {
    let runs_task = actix_web::rt::spawn(forward_run_events(out.clone(), run_events));
    let credential = actix_web::rt::spawn(credential_ends(state.clone(), principal));
    tokio::pin!(credential);
    let budget = Budget::new(state.config.ws_queue_bytes);
    let mut follows: HashMap<RunId, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    let mut close = None;
    loop {
        tokio::select! {
            _ = stopping.wait() => {
                close = Some(actix_ws::CloseReason {
                    code: actix_ws::CloseCode::Away,
                    description: Some("the server is stopping".into()),
                });
                break;
            }
            _ = &mut credential => {
                close = Some(actix_ws::CloseReason {
                    code: actix_ws::CloseCode::Policy,
                    description: Some("unauthenticated: the credential was revoked or expired".into()),
                });
                break;
            }
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                last_heard = Instant::now();
                match msg {
                    actix_ws::AggregatedMessage::Text(text) => {
                        follows.retain(|_, task| !task.is_finished());
                        let reply = match serde_json::from_str::<ClientOp>(&text) {
                            Ok(ClientOp::Follow { id, from, tail }) => {
                                if let Some(old) = follows.remove(&id) {
                                    old.abort();
                                }
                                if follows.len() >= MAX_FOLLOWS {
                                    Some(ServerFrame::Error {
                                        message: format!("Follow at most {MAX_FOLLOWS} runs at once on one connection"),
                                        id: Some(id),
                                    })
                                } else {
                                    let start = match tail { Some(n) => Start::Tail(n), None => Start::From(from.unwrap_or(0)) };
                                    let sub = state.hub.subscribe_log(id, budget.clone());
                                    let task = actix_web::rt::spawn(follow(state.clone(), out.clone(), sub, id, start));
                                    follows.insert(id, task);
                                    None
                                }
                            }
                            Ok(ClientOp::Unfollow { id }) => {
                                if let Some(old) = follows.remove(&id) {
                                    old.abort();
                                }
                                None
                            }
                            Err(e) => Some(ServerFrame::Error { message: format!("Malformed message: {e}"), id: None }),
                        };
                        if let Some(frame) = reply {
                            if out.send(frame.to_json()).await.is_err() {
                                break;
                            }
                        }
                    }
                    actix_ws::AggregatedMessage::Ping(bytes) => {
                        if out.send_now(Message::Pong(bytes)).is_err() {
                            break;
                        }
                    }
                    actix_ws::AggregatedMessage::Close(_) => break,
                    actix_ws::AggregatedMessage::Binary(_) => {
                        let frame = ServerFrame::Error { message: "Send JSON text frames".into(), id: None };
                        if out.send(frame.to_json()).await.is_err() {
                            break;
                        }
                    }
                    actix_ws::AggregatedMessage::Pong(_) => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > PING_EVERY * 3 || out.send_now(Message::Ping(web::Bytes::new())).is_err() {
                    break;
                }
            }
        }
    }
    runs_task.abort();
    credential.abort();
    for (_, task) in follows {
        task.abort();
    }
    out.close(close);
}

/// Returns once the credential the socket was opened with stops working
/// (checked on every revocation through the API and every
/// [`crate::auth::RECHECK_EVERY`]); never for `--auth none`.
async fn credential_ends(state: Arc<AppState>, principal: Option<Principal>) {
    let Some(principal) = principal.filter(|p| p.credential != Credential::Open) else {
        return std::future::pending().await;
    };
    let mut revoked = state.auth.watch_revocations();
    let mut tick = tokio::time::interval(crate::auth::RECHECK_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            changed = revoked.changed() => if changed.is_err() { return std::future::pending().await },
            _ = tick.tick() => {}
        }
        let (store, auth, p) = (state.store.clone(), state.auth.clone(), principal.clone());
        // A database that does not answer keeps the socket: only a clear "no" closes it.
        if let Ok(Ok(false)) = web::block(move || crate::auth::resolve::still_valid(&store, &auth.config, &p)).await {
            tracing::info!(user = ?principal.name, "closing a /ws socket: its credential stopped working");
            return;
        }
    }
}

async fn forward_run_events(out: Outbox, mut rx: broadcast::Receiver<Arc<str>>) {
    loop {
        match rx.recv().await {
            Ok(frame) => {
                if out.send(frame.to_string()).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(n)) => {
                // The client missed run events: make it reconnect and reload.
                tracing::warn!(missed = n, "a /ws client lagged on run events; closing it");
                out.close(Some(actix_ws::CloseReason {
                    code: actix_ws::CloseCode::Again,
                    description: Some("lagged".into()),
                }));
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

/// One follow: `sub` was made before this reads the backlog, so no line can
/// fall between backlog and live stream.
async fn follow(state: Arc<AppState>, out: Outbox, mut sub: LogSubscription, id: RunId, start: Start) {
    if let Err(Gone) = follow_inner(&state, &out, id, start, &mut sub).await {
        tracing::debug!(run_id = id, "follower went away");
    }
}

async fn follow_inner(
    state: &AppState,
    out: &Outbox,
    id: RunId,
    start: Start,
    sub: &mut LogSubscription,
) -> Result<(), Gone> {
    let store = state.store.clone();
    let info = web::block(move || -> Result<_, AppError> { Ok(runs::log_state(&*store.conn()?, id)?) }).await;
    let Ok(Ok(Some((status, total, holds_env)))) = info else {
        let frame = ServerFrame::Error {
            message: format!("Run {id} not found"),
            id: Some(id),
        };
        return out.send(frame.to_json()).await;
    };
    let mut cursor = match start {
        Start::From(k) => k,
        Start::Tail(n) => total.saturating_sub(n),
    };
    cursor = send_stored(state, out, id, cursor, total).await?;
    if status.is_finished() && !holds_env {
        let before = cursor;
        cursor = send_stored(state, out, id, cursor, u64::MAX).await?;
        // A `from` past the end sends nothing: the total is the run's, not the cursor.
        let total = if cursor > before { cursor.max(total) } else { total };
        return send_end(out, id, total, status).await;
    }
    // A follower arriving while a test prints nothing sees which one is running.
    if let Some((line, text)) = state.hub.partial(id) {
        if line == cursor {
            out.send(ServerFrame::LogPartial { id, line, text: &text }.to_json())
                .await?;
        }
    }
    loop {
        match sub.recv().await {
            Ok(LogEvent::Lines { from, lines }) => {
                let end = from.saturating_add(lines.len() as u64);
                if end <= cursor {
                    continue;
                }
                if from > cursor {
                    cursor = send_stored(state, out, id, cursor, from).await?;
                }
                if cursor < from {
                    // The hole could not be filled from the store; never send past a gap.
                    cursor = send_stored(state, out, id, cursor, end).await?;
                    continue;
                }
                let skip = usize::try_from(cursor - from).unwrap_or(usize::MAX).min(lines.len());
                cursor = send_lines(out, id, cursor, &lines[skip..]).await?;
            }
            Ok(LogEvent::Stored { to, .. }) => {
                if to > cursor {
                    cursor = send_stored(state, out, id, cursor, to).await?;
                }
            }
            Ok(LogEvent::Partial { line, text }) => {
                if line == cursor {
                    out.send(ServerFrame::LogPartial { id, line, text: &text }.to_json())
                        .await?;
                }
            }
            Ok(LogEvent::End { total, status }) => {
                send_stored(state, out, id, cursor, total).await?;
                return send_end(out, id, total, status).await;
            }
            Err(crate::hub::Lagged) => {
                tracing::debug!(run_id = id, next = cursor, "a follower lagged");
                return out.send(ServerFrame::Lagged { id, next: cursor }.to_json()).await;
            }
        }
    }
}

async fn send_end(out: &Outbox, id: RunId, total: u64, status: RunStatus) -> Result<(), Gone> {
    out.send(ServerFrame::LogEnd { id, total, status }.to_json()).await
}

/// Sends `lines` (numbered from `from`) in frames of at most [`FRAME_LINES`]
/// lines and [`FRAME_BYTES`] bytes; returns the line after them.
async fn send_lines(out: &Outbox, id: RunId, mut from: u64, mut lines: &[String]) -> Result<u64, Gone> {
    while !lines.is_empty() {
        let mut n = 0;
        let mut bytes = 0;
        while n < lines.len() && n < FRAME_LINES && (n == 0 || bytes + lines[n].len() <= FRAME_BYTES) {
            bytes += lines[n].len();
            n += 1;
        }
        let (frame, rest) = lines.split_at(n);
        out.send(ServerFrame::LogLines { id, from, lines: frame }.to_json())
            .await?;
        from = from.saturating_add(n as u64);
        lines = rest;
    }
    Ok(from)
}

/// Sends stored lines `cursor .. until` (or to the stored end) a frame at a
/// time, each read when the one before has found room; returns the new cursor.
async fn send_stored(state: &AppState, out: &Outbox, id: RunId, mut cursor: u64, until: u64) -> Result<u64, Gone> {
    while cursor < until {
        let store = state.store.clone();
        let want = (until - cursor).min(FRAME_LINES as u64) as u32;
        let page = web::block(move || -> Result<Vec<String>, AppError> {
            Ok(logs::read_bounded(&*store.conn()?, id, cursor, want, FRAME_BYTES)?)
        })
        .await;
        let lines = match page {
            Ok(Ok(lines)) => lines,
            _ => return Err(Gone),
        };
        if lines.is_empty() {
            break;
        }
        let n = lines.len() as u64;
        out.send(
            ServerFrame::LogLines {
                id,
                from: cursor,
                lines: &lines,
            }
            .to_json(),
        )
        .await?;
        cursor = cursor.saturating_add(n);
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_waits_for_room_in_bytes_and_gives_it_back_as_frames_leave() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (out, mut body) = outbox(1000);
            out.send("x".repeat(600)).await.expect("room");
            assert_eq!(out.queued(), 600);
            let blocked = tokio::time::timeout(Duration::from_millis(50), out.send("y".repeat(600))).await;
            assert!(blocked.is_err(), "no room for a second frame");
            let chunk = body.next().await.expect("a chunk").expect("bytes");
            assert!(chunk.len() > 600);
            assert_eq!(out.queued(), 0);
            out.send("y".repeat(5000)).await.expect("a big frame goes alone");
            drop(body);
            assert!(out.send("z".into()).await.is_err(), "the client is gone");
        });
    }
}

//! The server's connections, below HTTP: each accepted socket is counted
//! against its client address (`--max-connections-per-client`; one over the
//! cap is closed at once, before a byte of HTTP is read) and wrapped in a
//! [`ClientConn`] whose reads can be given a deadline. The edge middleware
//! ([`super::guard`]) arms that deadline when a request carries a body, so a
//! body that never arrives ends the connection's read side: the request fails
//! and the connection closes, whatever the handler was doing with the body.
//! A connection's first request head is timed out by actix
//! (`client_request_timeout`); the heads after it by the same deadline, armed
//! when an answer has been sent ([`ArmOnEnd`]).

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::rt::net::TcpStream;
use actix_web::web::Bytes;
use futures_util::Stream;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep_until, Instant, Sleep};

/// How long a request's body may take to arrive, from its head on.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after an answer the next request's head may take on a kept-alive
/// connection (idle ones are closed sooner, by keep-alive's 5 s).
pub const NEXT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts open connections per client address.
#[derive(Clone)]
pub struct ConnLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    last_warning: Arc<AtomicU64>,
}

/// One counted connection; dropping it frees its place.
pub struct Permit {
    limiter: ConnLimiter,
    ip: IpAddr,
}

impl ConnLimiter {
    /// A limiter allowing `max` connections per client address.
    pub fn new(max: usize) -> ConnLimiter {
        ConnLimiter {
            max,
            open: Arc::default(),
            last_warning: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    pub fn acquire(&self, ip: IpAddr) -> Option<Permit> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Permit {
            limiter: self.clone(),
            ip,
        })
    }

    /// Logs a refusal, at most once every ten seconds (a flood must not flood the log).
    fn warn_refused(&self, ip: IpAddr) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                client = %ip,
                max = self.max,
                "refused a connection: the client holds --max-connections-per-client connections"
            );
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The read deadline of one connection, shared between the socket and the
/// requests on it (a request finds it in its connection data).
#[derive(Default)]
pub struct ReadDeadline(Cell<Option<Instant>>);

impl ReadDeadline {
    /// A body must have arrived within `BODY_TIMEOUT` from now (the returned
    /// instant); the connection's reads end a second later, so that a handler
    /// reading the body answers first, and one that does not (or a body being
    /// drained after the answer) cannot hold the connection.
    pub fn arm(&self) -> Instant {
        let at = Instant::now() + BODY_TIMEOUT;
        self.0.set(Some(at + Duration::from_secs(1)));
        at
    }

    /// After an answer: the next head must come within [`NEXT_HEAD_TIMEOUT`],
    /// unless a body's deadline is still running (then that one stays).
    pub fn arm_next_head(&self) {
        if self.0.get().is_none() {
            self.0.set(Some(Instant::now() + NEXT_HEAD_TIMEOUT));
        }
    }

    /// No deadline.
    pub fn disarm(&self) {
        self.0.set(None);
    }
}

/// An accepted socket: its client's permit, and reads that end (as end of
/// file) once an armed [`ReadDeadline`] has passed.
pub struct ClientConn {
    io: TcpStream,
    deadline: Rc<ReadDeadline>,
    timer: Option<Pin<Box<Sleep>>>,
    cut: bool,
    _permit: Permit,
}

impl ClientConn {
    /// The deadline handle that requests on this connection arm.
    pub fn deadline(&self) -> Rc<ReadDeadline> {
        self.deadline.clone()
    }
}

/// Takes an accepted socket, or closes it at once when its client is at the cap.
pub fn accept(io: TcpStream, limiter: &ConnLimiter) -> io::Result<(ClientConn, Option<SocketAddr>)> {
    let peer = io.peer_addr().ok();
    let ip = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let Some(permit) = limiter.acquire(ip) else {
        limiter.warn_refused(ip);
        return Err(io::Error::other("too many connections from this client"));
    };
    // Small /ws frames must not wait for a delayed ACK (Nagle).
    let _ = io.set_nodelay(true);
    Ok((
        ClientConn {
            io,
            deadline: Rc::default(),
            timer: None,
            cut: false,
            _permit: permit,
        },
        peer,
    ))
}

impl AsyncRead for ClientConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Ok(()));
        }
        if let Some(at) = this.deadline.0.get() {
            let timer = this.timer.get_or_insert_with(|| Box::pin(sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_ready() {
                tracing::debug!("a request did not arrive in time; closing its connection");
                this.cut = true;
                this.deadline.disarm();
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request body that fails once its connection's deadline has passed (so
/// the handler reading it answers at once), and disarms the deadline when it
/// has all arrived.
pub struct TimedBody {
    inner: Payload,
    deadline: Rc<ReadDeadline>,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl TimedBody {
    /// Arms `deadline` and wraps `inner`.
    pub fn new(inner: Payload, deadline: Rc<ReadDeadline>) -> TimedBody {
        let at = deadline.arm();
        TimedBody {
            inner,
            deadline,
            timer: Box::pin(sleep_until(at)),
            done: false,
        }
    }
}

impl Stream for TimedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(None) => {
                this.done = true;
                this.deadline.disarm();
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the body did not arrive within {} s", BODY_TIMEOUT.as_secs()),
                    )))));
                }
                Poll::Pending
            }
        }
    }
}

/// A response body that, once all sent, gives the connection's next request
/// head its deadline.
pub struct ArmOnEnd<B> {
    body: Pin<Box<B>>,
    deadline: Option<Rc<ReadDeadline>>,
}

impl<B> ArmOnEnd<B> {
    /// Wraps `body`; `deadline` is armed when it ends (`None`: nothing to do).
    pub fn new(body: B, deadline: Option<Rc<ReadDeadline>>) -> ArmOnEnd<B> {
        ArmOnEnd {
            body: Box::pin(body),
            deadline,
        }
    }
}

impl<B: MessageBody> MessageBody for ArmOnEnd<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let next = this.body.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            if let Some(deadline) = this.deadline.take() {
                deadline.arm_next_head();
            }
        }
        next
    }
}

/// Tells long-lived connections (`/ws`) that the server is stopping, so that
/// they close at once instead of holding the shutdown.
#[derive(Clone)]
pub struct Stopping(tokio::sync::watch::Receiver<bool>);

impl Stopping {
    /// The sender to raise at shutdown (`send(true)`), and its receiving side.
    pub fn channel() -> (tokio::sync::watch::Sender<bool>, Stopping) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Stopping(rx))
    }

    /// Resolves once the server is stopping (never, if the sender is gone).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_per_address_and_frees_on_drop() {
        let limiter = ConnLimiter::new(2);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let p1 = limiter.acquire(a).expect("first");
        let _p2 = limiter.acquire(a).expect("second");
        assert!(limiter.acquire(a).is_none(), "third is over the cap");
        assert!(limiter.acquire(b).is_some(), "another client has its own count");
        drop(p1);
        assert!(limiter.acquire(a).is_some(), "a closed connection frees its place");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let _p3 = limiter.acquire(a).expect("freed again after the last drop");
        assert!(limiter.acquire(mapped).is_none(), "v4-mapped counts as the same client");
    }
}

//! Following one run's log over `/ws` until `logEnd`: lines to stdout as
//! printed (ANSI kept on a terminal, stripped otherwise), status to stderr.
//! A lost connection is re-opened with a bounded backoff and the follow
//! resumes from the next line number this client lacks, so no line is lost or
//! printed twice; Ctrl-C stops (and with `--cancel-on-interrupt` cancels first).

use super::{exit, Client, ClientError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::io::{BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A `/ws` connection, over TLS or not.
type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// How often a blocked read wakes up to look at Ctrl-C.
const POLL: Duration = Duration::from_millis(200);
/// A connection silent this long is taken as lost (the server pings every 10 s).
const SILENCE: Duration = Duration::from_secs(35);
/// Reconnect attempts after a lost connection before giving up.
const MAX_ATTEMPTS: u32 = 20;
/// The longest pause between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a cancelled run may take to send its last lines.
const CANCEL_GRACE: Duration = Duration::from_secs(15);

/// What `follow` is asked to do beyond printing.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Ctrl-C cancels the run before following stops.
    pub cancel_on_interrupt: bool,
    /// Keep ANSI colour codes.
    pub colour: bool,
}

/// Ctrl-C, caught: the first one sets a flag the follow loop reads; a second
/// one exits at once (code 130).
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Catches SIGINT from now on.
    pub fn install() -> Result<Interrupt, ClientError> {
        let flag = Arc::new(AtomicBool::new(false));
        let sig = signal_hook::consts::SIGINT;
        signal_hook::flag::register_conditional_shutdown(sig, exit::INTERRUPTED.into(), flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
        Ok(Interrupt(flag))
    }

    /// A flag that no signal sets (nothing to catch).
    pub fn none() -> Interrupt {
        Interrupt(Arc::new(AtomicBool::new(false)))
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One `/ws` frame, as far as a follower cares.
#[derive(Debug, Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    id: Option<i64>,
    from: Option<u64>,
    #[serde(borrow, default)]
    lines: Vec<Cow<'a, str>>,
    total: Option<u64>,
    status: Option<String>,
    next: Option<u64>,
    message: Option<String>,
    run: Option<Value>,
}

/// Where lines go: stdout, buffered, ANSI stripped unless `colour`.
struct Out {
    w: BufWriter<std::io::Stdout>,
    colour: bool,
}

impl Out {
    /// Writes complete lines, each ended by `\n`.
    fn block(&mut self, text: &[u8]) -> std::io::Result<()> {
        write_block(&mut self.w, text, self.colour)
    }

    fn line(&mut self, line: &str) -> std::io::Result<()> {
        if !self.colour && line.contains('\x1b') {
            write_plain(&mut self.w, line.as_bytes())?;
        } else {
            self.w.write_all(line.as_bytes())?;
        }
        self.w.write_all(b"\n")
    }
}

/// Writes lines ended by `\n` as one block where it can: as is with `colour`
/// or without any escape, else each line through [`write_plain`] (so that a
/// broken sequence never swallows the next line).
fn write_block(w: &mut impl Write, text: &[u8], colour: bool) -> std::io::Result<()> {
    if colour || memchr::memchr(0x1b, text).is_none() {
        return w.write_all(text);
    }
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', text) {
        // From the previous `\n` (written as is) to this one.
        write_plain(w, &text[start..nl])?;
        start = nl;
    }
    w.write_all(&text[start..])
}

/// Writes `line` without its ANSI escape sequences (the one rule,
/// [`crate::domain::ansi`]), piece by piece: no copy of the line.
fn write_plain(w: &mut impl Write, line: &[u8]) -> std::io::Result<()> {
    crate::domain::ansi::strip_to(line, |piece| w.write_all(piece))
}

/// What happened on one connection.
enum Ended {
    /// The run ended; exit with this code.
    Exit(u8),
    /// The connection broke: open another and go on.
    Lost(String),
}

/// Follows run `id` from line 0 to its end; returns the exit code for its status.
pub fn follow(client: &Client, id: i64, opts: Options, intr: &Interrupt) -> Result<u8, ClientError> {
    let mut out = Out {
        w: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        colour: opts.colour,
    };
    let mut state = State {
        id,
        next: 0,
        last_status: String::new(),
        cancelled_at: None,
        opts,
    };
    state.next = catch_up(client, id, &mut out, intr)?;
    let mut connected_once = false;
    let mut attempt = 0u32;
    loop {
        match connect(client) {
            Ok(mut ws) => {
                if attempt > 0 {
                    eprintln!("run {id}: reconnected; resuming at line {}", state.next);
                }
                connected_once = true;
                attempt = 0;
                match state.session(client, &mut ws, &mut out, intr)? {
                    Ended::Exit(code) => {
                        out.w.flush()?;
                        let _ = ws.close(None);
                        return Ok(code);
                    }
                    Ended::Lost(why) => {
                        out.w.flush()?;
                        eprintln!("run {id}: connection lost ({why}); reconnecting");
                    }
                }
            }
            Err(e) if !connected_once => return Err(e),
            Err(e) => {
                attempt += 1;
                if attempt > MAX_ATTEMPTS {
                    return Err(e);
                }
            }
        }
        // Exponential backoff, still answering Ctrl-C.
        let pause = (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(10))).min(MAX_BACKOFF);
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if intr.is_set() && !state.opts.cancel_on_interrupt {
                eprintln!("run {id}: stopped following; the run goes on");
                return Ok(exit::INTERRUPTED);
            }
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

/// Bytes read from `log.txt` at a time.
const CATCH_UP_BUFFER: usize = 256 * 1024;

/// Prints the lines stored so far from `log.txt`: raw text streamed, far
/// cheaper per line than JSON frames (a finished run's whole log comes this
/// way). Returns how many complete lines were printed; the follow over `/ws`
/// goes on from there. A broken stream just ends the catch-up early (its last
/// piece, not ended by `\n`, is not printed: the follow sends that line again).
/// Every stored line is one `\n`-ended line of `log.txt` (no line holds `\n`,
/// see `domain/lines.rs`), so the count is the next line number.
fn catch_up(client: &Client, id: i64, out: &mut Out, intr: &Interrupt) -> Result<u64, ClientError> {
    let mut reader = client.get_reader(&format!("/api/testruns/{id}/log.txt"))?;
    let mut buf = vec![0u8; CATCH_UP_BUFFER];
    let mut filled = 0;
    let mut lines = 0u64;
    while !intr.is_set() {
        if filled == buf.len() {
            // One line longer than the buffer (lines are at most 64 KiB).
            buf.resize(buf.len() * 2, 0);
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        filled += n;
        let Some(last) = memchr::memrchr(b'\n', &buf[filled - n..filled]).map(|i| filled - n + i) else {
            continue;
        };
        let complete = &buf[..=last];
        lines += memchr::memchr_iter(b'\n', complete).count() as u64;
        out.block(complete)?;
        buf.copy_within(last + 1..filled, 0);
        filled -= last + 1;
    }
    out.w.flush()?;
    Ok(lines)
}

struct State {
    id: i64,
    /// The next line number this client lacks.
    next: u64,
    last_status: String,
    cancelled_at: Option<Instant>,
    opts: Options,
}

impl State {
    /// Follows on one connection until the run ends or the connection breaks.
    fn session(
        &mut self,
        client: &Client,
        ws: &mut Socket,
        out: &mut Out,
        intr: &Interrupt,
    ) -> Result<Ended, ClientError> {
        let id = self.id;
        if let Err(e) = send_follow(ws, id, self.next) {
            return Ok(Ended::Lost(e));
        }
        let mut heard = Instant::now();
        loop {
            if intr.is_set() {
                if !self.opts.cancel_on_interrupt {
                    out.w.flush()?;
                    eprintln!("run {id}: stopped following; the run goes on");
                    return Ok(Ended::Exit(exit::INTERRUPTED));
                }
                if self.cancelled_at.is_none() {
                    self.cancelled_at = Some(Instant::now());
                    out.w.flush()?;
                    match client.post_json(&format!("/api/testruns/{id}/cancel"), &json!({})) {
                        Ok(_) => eprintln!("run {id}: cancel requested"),
                        Err(e) => eprintln!("run {id}: could not cancel: {e}"),
                    }
                }
            }
            if self.cancelled_at.is_some_and(|t| t.elapsed() > CANCEL_GRACE) {
                return Ok(Ended::Exit(exit::CANCELLED));
            }
            if heard.elapsed() > SILENCE {
                return Ok(Ended::Lost(format!("nothing heard for {}s", SILENCE.as_secs())));
            }
            let text = match ws.read() {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(_)) => return Ok(Ended::Lost("closed by the server".into())),
                Ok(_) => {
                    heard = Instant::now();
                    continue;
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Ok(Ended::Lost(e.to_string())),
            };
            heard = Instant::now();
            let Ok(frame) = serde_json::from_str::<Frame<'_>>(text.as_str()) else {
                continue;
            };
            match (frame.event.as_ref(), frame.id) {
                ("logLines", Some(fid)) if fid == id => {
                    let from = frame.from.unwrap_or(0);
                    if from > self.next {
                        // Never expected (the server sends no gaps): ask again.
                        if let Err(e) = send_follow(ws, id, self.next) {
                            return Ok(Ended::Lost(e));
                        }
                        continue;
                    }
                    let skip = (self.next - from) as usize;
                    for line in frame.lines.iter().skip(skip) {
                        out.line(line)?;
                    }
                    self.next = self.next.max(from + frame.lines.len() as u64);
                    // As printed: one write per frame, not per buffer-full.
                    out.w.flush()?;
                }
                ("logEnd", Some(fid)) if fid == id => {
                    if frame.total.is_some_and(|t| t > self.next) {
                        // Lines we lack although the run ended: fetch them again.
                        if let Err(e) = send_follow(ws, id, self.next) {
                            return Ok(Ended::Lost(e));
                        }
                        continue;
                    }
                    let status = frame.status.unwrap_or_default();
                    out.w.flush()?;
                    if status != self.last_status {
                        eprintln!("run {id}: {status}");
                    }
                    return Ok(Ended::Exit(exit::for_status(&status)));
                }
                ("lagged", Some(fid)) if fid == id => {
                    let next = frame.next.unwrap_or(self.next).min(self.next);
                    if let Err(e) = send_follow(ws, id, next) {
                        return Ok(Ended::Lost(e));
                    }
                }
                ("error", Some(fid)) if fid == id => {
                    return Err(ClientError::Usage(
                        frame.message.unwrap_or_else(|| format!("run {id}: error")),
                    ));
                }
                ("taskChanged", _) | ("taskAdded", _) => {
                    if let Some(run) = frame.run.filter(|r| r["id"].as_i64() == Some(id)) {
                        self.status_line(&run, out)?;
                    }
                }
                _ => {}
            }
        }
    }

    /// Tells stderr about a status change (and the queue position/ETA while queued).
    fn status_line(&mut self, run: &Value, out: &mut Out) -> Result<(), ClientError> {
        let line = describe(run);
        if line != self.last_status {
            out.w.flush()?;
            eprintln!("run {}: {line}", self.id);
            self.last_status = line;
        }
        Ok(())
    }
}

/// `queued (position 2, eta 40s)`, `running`, …
pub fn describe(run: &Value) -> String {
    let status = run["status"].as_str().unwrap_or("?");
    let mut extra = Vec::new();
    if status == "queued" {
        if let Some(p) = run.get("queue_position").filter(|v| !v.is_null()) {
            extra.push(format!("position {p}"));
        }
        match run.get("eta") {
            Some(Value::Number(n)) => extra.push(format!("eta {n}s")),
            Some(Value::String(s)) => extra.push(format!("eta {s}")),
            _ => {}
        }
    }
    if extra.is_empty() {
        status.to_string()
    } else {
        format!("{status} ({})", extra.join(", "))
    }
}

fn send_follow(ws: &mut Socket, id: i64, from: u64) -> Result<(), String> {
    let op = json!({"op": "follow", "id": id, "from": from}).to_string();
    ws.send(Message::Text(op.into())).map_err(|e| e.to_string())
}

/// Where `/ws` is for a server URL: `http://H[:P]/prefix` → `ws://H:P/prefix/ws`,
/// `https://…` → `wss://…` (ports 80 and 443 unless given).
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    /// `host:port` to connect to (brackets kept for IPv6).
    host_port: String,
    url: String,
}

fn target(base: &str) -> Result<Target, String> {
    let (tls, rest) = match (base.strip_prefix("http://"), base.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(format!("{base:?} is not an http:// or https:// URL")),
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{base:?} has no host"));
    }
    let has_port = !authority.ends_with(']') && authority.rsplit(':').next().is_some_and(|p| p.parse::<u16>().is_ok());
    let host_port = match has_port {
        true => authority.to_string(),
        false => format!("{authority}:{}", if tls { 443 } else { 80 }),
    };
    let scheme = if tls { "wss" } else { "ws" };
    Ok(Target {
        tls,
        host_port,
        url: format!("{scheme}://{authority}{prefix}/ws"),
    })
}

/// The socket under a `/ws` connection.
fn tcp(ws: &Socket) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Rustls(tls) => tls.get_ref(),
        MaybeTlsStream::Plain(tcp) => tcp,
        // No other kind is built here (only rustls is enabled).
        #[allow(unreachable_patterns)]
        _ => unreachable!("a /ws stream is plain or rustls"),
    }
}

/// Opens `/ws` on the client's server: `ws://`, or `wss://` for an https://
/// server (with the client's TLS configuration); the token goes along.
fn connect(client: &Client) -> Result<Socket, ClientError> {
    let base = client.base();
    let unreachable = |reason: String| ClientError::Unreachable {
        url: format!("{base}/ws"),
        reason,
    };
    let target = target(base).map_err(unreachable)?;
    let addr = target
        .host_port
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the host resolves to no address".into()))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| unreachable(e.to_string()))?;
    // A generous timeout for the handshake; reads poll for Ctrl-C after it.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(target.url.as_str())
        .map_err(|e| unreachable(e.to_string()))?;
    if let Some(token) = client.token() {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Usage("--token: not a valid header value".into()))?;
        req.headers_mut().insert("Authorization", value);
    }
    let connector = match (target.tls, client.tls()) {
        (true, Some(config)) => Some(tungstenite::Connector::Rustls(config)),
        (true, None) => return Err(unreachable("no TLS configuration for a wss:// URL".into())),
        (false, _) => Some(tungstenite::Connector::Plain),
    };
    match tungstenite::client_tls_with_config(req, stream, None, connector) {
        Ok((ws, _)) => {
            tcp(&ws)
                .set_read_timeout(Some(POLL))
                .map_err(|e| unreachable(e.to_string()))?;
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(e)) => Err(unreachable(e.to_string())),
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(unreachable("the handshake timed out".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::{describe, target, write_block, write_plain, Target};
    use serde_json::json;

    #[test]
    fn the_socket_url_follows_the_server_url() {
        let t = |tls, host_port: &str, url: &str| Target {
            tls,
            host_port: host_port.into(),
            url: url.into(),
        };
        let cases = [
            (
                "http://127.0.0.1:8000",
                t(false, "127.0.0.1:8000", "ws://127.0.0.1:8000/ws"),
            ),
            (
                "http://ts.example.com",
                t(false, "ts.example.com:80", "ws://ts.example.com/ws"),
            ),
            (
                "https://ts.example.com",
                t(true, "ts.example.com:443", "wss://ts.example.com/ws"),
            ),
            (
                "https://ts.example.com:8443/sub/",
                t(true, "ts.example.com:8443", "wss://ts.example.com:8443/sub/ws"),
            ),
            ("https://[::1]", t(true, "[::1]:443", "wss://[::1]/ws")),
            ("http://[::1]:9000/a", t(false, "[::1]:9000", "ws://[::1]:9000/a/ws")),
        ];
        for (base, want) in cases {
            assert_eq!(target(base).as_ref(), Ok(&want), "{base}");
        }
        assert!(target("ftp://x").is_err());
        assert!(target("https://").is_err());
    }

    #[test]
    fn queued_runs_show_their_position_and_eta() {
        assert_eq!(describe(&json!({"status": "running"})), "running");
        assert_eq!(describe(&json!({"status": "queued"})), "queued");
        assert_eq!(
            describe(&json!({"status": "queued", "queue_position": 2, "eta": 40})),
            "queued (position 2, eta 40s)"
        );
        assert_eq!(
            describe(&json!({"status": "queued", "queue_position": 1, "eta": "2026-12-01T22:00:00+00:00"})),
            "queued (position 1, eta 2026-12-01T22:00:00+00:00)"
        );
    }

    fn plain(s: &str) -> String {
        let mut out = Vec::new();
        write_plain(&mut out, s.as_bytes()).expect("write to a Vec");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_block_of_lines_is_stripped_line_by_line() {
        let text = "a \x1b[32mok\x1b[0m\nends with ESC \x1b\n\x1b[1mb\x1b[m\nplain\n";
        let mut out = Vec::new();
        write_block(&mut out, text.as_bytes(), false).expect("write");
        let want: String = text.lines().map(|l| plain(l) + "\n").collect();
        assert_eq!(String::from_utf8(out).expect("utf-8"), want);
        let mut out = Vec::new();
        write_block(&mut out, text.as_bytes(), true).expect("write");
        assert_eq!(out, text.as_bytes(), "colour keeps every byte");
    }

    #[test]
    fn escapes_go_text_stays() {
        for s in [
            "\x1b[32mPASSED\x1b[0m [ 50%]",
            "\x1b[1m\x1b[31mE   assert 1 == 2\x1b[0m",
            "\x1b]0;title\x07after",
            "\x1b(Bplain",
            "no escapes",
            "ends with ESC \x1b",
            "\x1b[38;5;208mwide\x1b[m",
        ] {
            let expected = String::from_utf8(strip_ansi_escapes::strip(s.as_bytes())).expect("utf-8");
            assert_eq!(plain(s), expected, "{s:?}");
        }
    }
}

//! The load generator: speaks Engine.IO v4 + Socket.IO v5 (or Phoenix Channels, or plain
//! WebSocket JSON) over WebSocket itself, with a WebSocket client written for the job: one
//! task per connection, all on one thread, one read buffer per connection for its life, and
//! every whole frame of a read handled where it lies (no allocation or copy per message; a
//! general-purpose client allocated per message and cost this thread three times the CPU per
//! delivery). It subscribes every connection, answers pings, and timestamps every event it
//! receives. Emits go through `POST /emit` on keep-alive HTTP/1.1 connections from a thread of
//! their own (same core) and carry their send time, taken from the same clock as the receive
//! time, so latency is receive time minus send time.
//!
//! Scenarios (`--scenario`):
//! - `fanout`: `--conns` subscribers of `chats/0`, `--emits` emits to it, from `--emitters`
//!   (default 4) HTTP connections at once, each sending its next emit when the previous one is
//!   answered, so the server is saturated and its queues can build up;
//! - `sequential`: the same subscribers, the emits from one HTTP connection, each sent when
//!   the previous one is answered and fewer than `--window` (default 8; 0: no such wait) emits
//!   have not yet reached every subscriber;
//! - `paced`: the same subscribers, the emits from one HTTP connection at `--rate` emits per
//!   second (for latency well under capacity);
//! - `channels`: `--conns` connections, each alone in `chats/<i>`, `--rounds` targeted emits
//!   to each, from `--emitters` (default 8) HTTP connections at once;
//! - `connect`: `--conns` connections subscribing to `chats/<i mod 100>` (the rate of
//!   connect + subscribe), then the server's RSS once they idle (needs `--pid`);
//! - `history`: no subscribers, `--events` emits to each of `--channels` channels and as many
//!   again, for the memory of connection state recovery's history per event kept, in the
//!   server and in Redis, and Redis's commands per emit (`bench/src/bin/loadgen/history.rs`);
//! - `presence`: members of a presence channel over three nodes through Redis
//!   (`bench/src/bin/loadgen/presence.rs`).
//!
//! `--protocol` picks the wire: `socketio` (default: Engine.IO v4 + Socket.IO v5 at
//! `/socket.io/`, `subscribe` events), `phoenix` (Phoenix Channels V2 arrays at
//! `/socket/websocket?vsn=2.0.0`, `phx_join`, a heartbeat every 25 s) or `phoenix-v1` (the
//! same with V1 objects, for servers that answer only those) or `plain` (plain WebSocket JSON
//! at `/ws`, `{"type":"subscribe",...}`).
//!
//! Other flags: `--port` (default 3000, on 127.0.0.1), `--pid` (the server's, for its CPU time
//! and RSS), `--port2` (a second server, of the same cluster through Redis: the connections
//! alternate between the two, emits still go to `--port` only, and deliveries, latency and loss
//! are also reported per node, "local" for `--port` and "remote" for `--port2`), `--pid2` and
//! `--redis-pid` (the second server's and Redis's PIDs: their CPU time counts as the server's), `--concurrency` (connections being set up at once, default 256), `--straggler-ms`
//! (how long to wait for missing deliveries once nothing arrives, default 3000).
//! `--hold-ms N` pauses between the connects and the emits, and again before closing the
//! connections (time to switch a profiler on and off).
//!
//! `--settle-ms N` pauses between the connects and the emits only, and `--warmup N` sends N
//! emits (paced like the rest) before the `--emits` measured ones: their deliveries count
//! towards loss, their latency is reported apart (`warmup_p99_us`). The pair makes every
//! server's connections start the measured emits in the same TCP state. After a pause longer
//! than the retransmission timeout the receiving kernel acknowledges the next 16 segments of
//! each connection at once (its quick-ACK phase) and then goes back to delaying ACKs; on
//! loopback those immediate ACKs are processed on the server's core. Without the pause,
//! whether a connection is still in that phase when the emits begin depends on how its setup
//! went, so it differs between servers and runs.
//!
//! `--awake` keeps this program from sleeping while deliveries are due (every emit sent reaches
//! every subscriber; until all of them have arrived it polls its sockets without blocking, then
//! sleeps until the next delivery). On loopback a server pays for waking a sleeping reader, and
//! an idle load generator falls asleep between an emit's deliveries as often as a server is
//! slow to send them: up to a hundred wake-ups per emit, each an interrupt to this core.
//!
//! Besides rates and latency, each run reports the TCP data segments the server sent per
//! delivery (`ss`, see [`tidings_bench::data_segments_out`]) and how busy this program's core
//! was (its CPU time over the measured phase's wall time: above 85 % the rates are lower
//! bounds).
//!
//! Prints one JSON line ([`tidings_bench::RunResult`]) on stdout.

/// The `history` scenario (the memory of recovery's channel history).
#[path = "loadgen/history.rs"]
mod history;
/// The `presence` scenario (three nodes through Redis).
#[path = "loadgen/presence.rs"]
mod presence;
/// A small Redis client (`INFO`, `HLEN`, `XLEN`) for those two.
#[path = "loadgen/resp.rs"]
mod resp;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use memchr::memmem::Finder;
use tidings_bench::{
    Flags, RunResult, cpu_secs, data_segments_out, fail, percentile, raise_fd_limit, rss_kib, ws,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How long one connection may take to connect, handshake and get its subscribe ack.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What every connection task reports into (one thread, so plain cells).
struct Shared {
    t0: Instant,
    /// Per node (0: `--port`, 1: `--port2`).
    latencies_ns: [RefCell<Vec<u64>>; 2],
    /// Emits numbered below this are the warm-up (`--warmup`): their latencies go to
    /// `warmup_latencies_ns`, not `latencies_ns`.
    warmup: u64,
    warmup_latencies_ns: RefCell<Vec<u64>>,
    received: Cell<u64>,
    last_receive_ns: Cell<u64>,
    /// Per node: deliveries received and the time of the last one.
    node_received: [Cell<u64>; 2],
    node_last_receive_ns: [Cell<u64>; 2],
    subscribed: Cell<u64>,
    failed: Cell<u64>,
    closed: Cell<u64>,
    first_error: RefCell<Option<String>>,
    last_ack_ns: Cell<u64>,
    /// Deliveries received per emit (by the `"s":` sequence number in its data), and how many
    /// emits every subscriber has received: what a window of emits in flight waits on.
    per_emit: RefCell<Vec<u32>>,
    subscribers: Cell<u32>,
    progress: Arc<Progress>,
    /// With `--awake`, the task keeping this thread awake, parked while no delivery is due.
    idle_waker: Cell<Option<Waker>>,
    /// With `--awake`, the time spent polling with nothing arriving: time this thread would
    /// otherwise have slept, left out of how busy its core was.
    idle_polling: Cell<Duration>,
}

impl Shared {
    fn new(settings: &Settings) -> Shared {
        // Room for every latency up front: growing the vector during the measured phase copied it
        // (tens of megabytes) on the load generator's core.
        let room = usize::try_from(settings.emits.saturating_mul(settings.conns))
            .unwrap_or(0)
            .min(1 << 26);
        Shared {
            t0: Instant::now(),
            latencies_ns: [
                RefCell::new(Vec::with_capacity(room)),
                RefCell::new(Vec::with_capacity(if settings.addr2.is_some() {
                    room
                } else {
                    0
                })),
            ],
            warmup: settings.warmup,
            warmup_latencies_ns: RefCell::new(Vec::with_capacity(
                usize::try_from(settings.warmup.saturating_mul(settings.conns))
                    .unwrap_or(0)
                    .min(1 << 24),
            )),
            received: Cell::new(0),
            last_receive_ns: Cell::new(0),
            node_received: Default::default(),
            node_last_receive_ns: Default::default(),
            subscribed: Cell::new(0),
            failed: Cell::new(0),
            closed: Cell::new(0),
            first_error: RefCell::new(None),
            last_ack_ns: Cell::new(0),
            per_emit: RefCell::new(Vec::new()),
            subscribers: Cell::new(0),
            progress: Arc::default(),
            idle_waker: Cell::new(None),
            idle_polling: Cell::new(Duration::ZERO),
        }
    }

    fn now_ns(&self) -> u64 {
        ns_since(self.t0)
    }

    /// Wakes the `--awake` task if it is parked (see [`stay_awake`]).
    fn wake_awake(&self) {
        if let Some(waker) = self.idle_waker.take() {
            waker.wake();
        }
    }

    fn error(&self, error: String) {
        self.failed.set(self.failed.get() + 1);
        self.first_error.borrow_mut().get_or_insert(error);
    }

    /// One `42[...]` event: its latency from the `"t":` send time in its data.
    /// `now` is when the read that brought it returned (one clock reading for every frame of a
    /// read: they arrived together).
    fn record(&self, node: usize, text: &[u8], now: u64) {
        self.received.set(self.received.get() + 1);
        self.wake_awake();
        self.last_receive_ns.set(now);
        self.node_received[node].set(self.node_received[node].get() + 1);
        self.node_last_receive_ns[node].set(now);
        let seq = number_after(text, &SEQUENCE);
        if let Some(sent) = number_after(text, &SEND_TIME) {
            let latencies = match seq {
                Some(seq) if seq < self.warmup => &self.warmup_latencies_ns,
                _ => &self.latencies_ns[node],
            };
            latencies.borrow_mut().push(now.saturating_sub(sent));
        }
        if let Some(seq) = seq {
            let mut per_emit = self.per_emit.borrow_mut();
            if let Some(count) = usize::try_from(seq).ok().and_then(|i| per_emit.get_mut(i)) {
                *count += 1;
                if *count == self.subscribers.get() {
                    self.progress
                        .fully_delivered
                        .fetch_add(1, Ordering::Release);
                    self.progress.changed.notify_waiters();
                }
            }
        }
    }
}

/// Where an event's data carries its send time, and its sequence number.
static SEND_TIME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"t\":"));
static SEQUENCE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"s\":"));

/// The number carried as `<key><digits>` in an event's data (`"t":` the send time in
/// nanoseconds, `"s":` the emit's sequence number).
///
/// Runs for every delivery, so the search is `memchr`'s, its searchers built once: a byte-by-byte window compare (one
/// `memcmp` call per position) took two thirds of the load generator's core at 1M
/// deliveries/s.
fn number_after(text: &[u8], key: &Finder<'static>) -> Option<u64> {
    let at = key.find(text)? + key.needle().len();
    let digits = &text[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    Some(
        digits[..len]
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// How many bytes one read may take from a connection (grown for a larger frame).
const READ_BUFFER: usize = 16 * 1024;

/// The mask of every client frame (RFC 6455 asks for an unpredictable key; a server cannot
/// tell, and a fixed one costs nothing per frame).
const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x88];

/// A WebSocket client connection written for the load generator: the handshake and the
/// frames by hand, one read buffer for the connection's life, every whole frame in a read
/// handled in place (no allocation, no copy per message).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

/// One frame from the server: its opcode and where its payload sits in the read buffer.
type FrameAt = (u8, std::ops::Range<usize>);

impl Conn {
    /// Connects and upgrades to a WebSocket at `path`.
    async fn open(addr: SocketAddr, path: &str) -> Result<Conn, String> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("websocket handshake: {e}"))?;
        let mut conn = Conn {
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
        };
        let head_end = loop {
            if let Some(at) = conn.buf[..conn.end]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                break at + 4;
            }
            if conn.end == conn.buf.len() {
                return Err("websocket handshake: response head too long".to_owned());
            }
            conn.fill()
                .await
                .map_err(|e| format!("websocket handshake: {e}"))?;
        };
        if !conn.buf.starts_with(b"HTTP/1.1 101") {
            let line = conn.buf[..head_end]
                .split(|&b| b == b'\r')
                .next()
                .unwrap_or(b"");
            return Err(format!(
                "websocket handshake: {}",
                String::from_utf8_lossy(line)
            ));
        }
        conn.start = head_end;
        Ok(conn)
    }

    /// Reads what the socket has into the buffer (cancel-safe: nothing is read unless it is
    /// kept).
    async fn fill(&mut self) -> Result<(), String> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            // A partial frame at the end: move it to the front, or make room for it.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        match self.stream.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err("eof".to_owned()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The next whole frame already read, if any. Server frames are unmasked; fragmented
    /// messages are refused (no server under test sends them).
    fn next_frame(&mut self) -> Result<Option<FrameAt>, String> {
        let Some(header) = ws::Header::read(&self.buf[self.start..self.end]) else {
            return Ok(None);
        };
        if !header.fin || header.opcode == 0 {
            return Err("a fragmented message".to_owned());
        }
        if header.mask.is_some() {
            return Err("a masked frame from the server".to_owned());
        }
        if header.len > 64 << 20 {
            return Err(format!("a frame of {} bytes", header.len));
        }
        if self.end - self.start < header.frame_len() {
            return Ok(None);
        }
        let payload = self.start + header.at..self.start + header.frame_len();
        self.start += header.frame_len();
        Ok(Some((header.opcode, payload)))
    }

    /// Sends one masked frame.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(&ws::encode(opcode, payload, Some(MASK)))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(0x1, text.as_bytes()).await
    }

    /// Reads text frames until one satisfies `done` (returned), answering the server's
    /// pings (WebSocket and Engine.IO) on the way.
    async fn read_until(
        &mut self,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        loop {
            while let Some((opcode, at)) = self.next_frame()? {
                match opcode {
                    0x1 => {
                        let text = std::str::from_utf8(&self.buf[at])
                            .map_err(|_| format!("invalid UTF-8 awaiting {what}"))?;
                        if text == "2" {
                            self.send_text("3").await?;
                        } else if done(text) {
                            return Ok(text.to_owned());
                        }
                    }
                    0x8 => {
                        let reason = String::from_utf8_lossy(&self.buf[at]).into_owned();
                        return Err(format!("closed awaiting {what}: {reason:?}"));
                    }
                    0x9 => {
                        let ping = self.buf[at].to_vec();
                        self.send(0xA, &ping).await?;
                    }
                    _ => {}
                }
            }
            self.fill()
                .await
                .map_err(|e| format!("awaiting {what}: {e}"))?;
        }
    }
}

/// The wire the load generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    SocketIo,
    /// Phoenix Channels, V2 arrays.
    Phoenix,
    /// Phoenix Channels, V1 objects.
    PhoenixV1,
    /// Plain WebSocket JSON at `/ws`.
    Plain,
}

impl Protocol {
    fn parse(name: &str) -> Protocol {
        match name {
            "socketio" => Protocol::SocketIo,
            "phoenix" => Protocol::Phoenix,
            "phoenix-v1" => Protocol::PhoenixV1,
            "plain" => Protocol::Plain,
            other => fail(&format!(
                "unknown --protocol {other:?}: socketio, phoenix, phoenix-v1 or plain"
            )),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Protocol::SocketIo => "/socket.io/?EIO=4&transport=websocket",
            Protocol::Phoenix => "/socket/websocket?vsn=2.0.0",
            Protocol::PhoenixV1 => "/socket/websocket?vsn=1.0.0",
            Protocol::Plain => "/ws",
        }
    }

    /// Whether a text frame is one of the benchmark's `tick` events.
    fn is_tick(self, text: &[u8]) -> bool {
        match self {
            Protocol::SocketIo => text.starts_with(b"42["),
            Protocol::Phoenix => PHOENIX_TICK.find(text).is_some(),
            Protocol::PhoenixV1 | Protocol::Plain => OBJECT_TICK.find(text).is_some(),
        }
    }

    /// A Phoenix frame of this serializer, with an empty payload.
    fn frame(self, join_ref: Option<&str>, msg_ref: &str, topic: &str, event: &str) -> String {
        let (join_ref, topic) = (serde_json::json!(join_ref), serde_json::json!(topic));
        if self == Protocol::PhoenixV1 {
            format!(
                r#"{{"topic":{topic},"event":"{event}","payload":{{}},"ref":"{msg_ref}","join_ref":{join_ref}}}"#
            )
        } else {
            format!(r#"[{join_ref},"{msg_ref}",{topic},"{event}",{{}}]"#)
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A tick event in a Phoenix V2 array, and in the JSON objects of Phoenix V1 and plain
/// WebSocket.
static PHOENIX_TICK: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b",\"tick\","));
static OBJECT_TICK: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"event\":\"tick\""));

/// How often a Phoenix connection sends its heartbeat (phoenix.js: 30 s).
const HEARTBEAT: Duration = Duration::from_secs(25);

/// Connects and joins `channel` over `protocol`.
async fn setup(addr: SocketAddr, channel: &str, protocol: Protocol) -> Result<Conn, String> {
    let mut ws = Conn::open(addr, protocol.path()).await?;
    if protocol == Protocol::Plain {
        let subscribe = format!(
            r#"{{"type":"subscribe","channel":{},"ref":"1"}}"#,
            serde_json::json!(channel)
        );
        ws.send_text(&subscribe).await?;
        let reply = ws
            .read_until("subscribe reply", |t| t.contains("\"reply\""))
            .await?;
        if !reply.contains("\"ok\"") {
            return Err(format!("subscribe refused: {reply}"));
        }
        return Ok(ws);
    }
    if protocol != Protocol::SocketIo {
        ws.send_text(&protocol.frame(Some("1"), "1", channel, "phx_join"))
            .await?;
        let reply = ws
            .read_until("join reply", |t| t.contains("phx_reply"))
            .await?;
        if !reply.contains("\"ok\"") {
            return Err(format!("join refused: {reply}"));
        }
        return Ok(ws);
    }
    ws.read_until("open", |t| t.starts_with('0')).await?;
    ws.send_text("40").await?;
    let connect = ws
        .read_until("connect", |t| t.starts_with("40") || t.starts_with("44"))
        .await?;
    if connect.starts_with("44") {
        return Err(format!("connect refused: {connect}"));
    }
    ws.send_text(&format!(
        "420[\"subscribe\",{}]",
        serde_json::json!(channel)
    ))
    .await?;
    let ack = ws
        .read_until("subscribe ack", |t| t.starts_with("430"))
        .await?;
    if !ack.contains("\"ok\"") {
        return Err(format!("subscribe refused: {ack}"));
    }
    Ok(ws)
}

async fn client(
    shared: Rc<Shared>,
    node: usize,
    addr: SocketAddr,
    channel: String,
    limit: Rc<Semaphore>,
    protocol: Protocol,
) {
    let permit = limit.acquire().await;
    let setup = tokio::time::timeout(SETUP_TIMEOUT, setup(addr, &channel, protocol)).await;
    drop(permit);
    let mut ws = match setup {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => return shared.error(error),
        Err(_) => return shared.error("setup timed out".to_owned()),
    };
    shared.subscribed.set(shared.subscribed.get() + 1);
    shared.last_ack_ns.set(shared.now_ns());
    let phoenix = matches!(protocol, Protocol::Phoenix | Protocol::PhoenixV1);
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    // Every whole frame of a read is handled where it lies; one read takes what the socket has.
    let ended = 'conn: loop {
        let mut pong = false;
        let now = shared.now_ns();
        loop {
            match ws.next_frame() {
                Ok(Some((0x1, at))) => {
                    let text = &ws.buf[at];
                    if protocol.is_tick(text) {
                        shared.record(node, text, now);
                    } else if text == b"2" {
                        pong = true;
                    }
                }
                Ok(Some((0x8, _))) => break 'conn None,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => break 'conn Some(error),
            }
        }
        if pong && ws.send_text("3").await.is_err() {
            break None;
        }
        tokio::select! {
            read = ws.fill() => {
                if read.is_err() {
                    break None;
                }
            }
            _ = heartbeat.tick(), if phoenix => {
                let beat = protocol.frame(None, "hb", "phoenix", "heartbeat");
                if ws.send_text(&beat).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(error) = ended {
        shared.error(error);
    }
    shared.closed.set(shared.closed.get() + 1);
}

/// The JSON body of `POST /emit`: a `tick` to `channel` whose data carries the send time
/// (`t`, ns) and the emit's sequence number (`s`).
fn emit_body(channel: &str, t_ns: u64, seq: u64) -> String {
    format!(r#"{{"channel":"{channel}","event":"tick","data":{{"t":{t_ns},"s":{seq}}}}}"#)
}

/// A keep-alive HTTP/1.1 connection for `POST /emit`.
struct Emitter {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Emitter {
    async fn connect(addr: SocketAddr) -> std::io::Result<Emitter> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Emitter {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Posts one emit whose data carries the send time; returns the status code.
    async fn emit(&mut self, t0: Instant, channel: &str, seq: u64) -> std::io::Result<u16> {
        let body = emit_body(channel, ns_since(t0), seq);
        let request = format!(
            "POST /emit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.response().await
    }

    async fn response(&mut self) -> std::io::Result<u16> {
        let (status, _, total) = self.read_response().await?;
        self.buf.drain(..total);
        Ok(status)
    }

    /// `GET path`: the status and the body.
    async fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await?;
        let (status, body, total) = self.read_response().await?;
        let body = self.buf[body..total].to_vec();
        self.buf.drain(..total);
        Ok((status, body))
    }

    /// Reads one whole response into the buffer: its status, where its body starts and where
    /// it ends.
    async fn read_response(&mut self) -> std::io::Result<(u16, usize, usize)> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head too long"));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("head not utf-8"))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let mut length = None;
        for line in head.split("\r\n") {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad("chunked responses are not supported"));
                }
            }
        }
        let total = end + length.unwrap_or(0);
        while self.buf.len() < total {
            self.fill().await?;
        }
        Ok((status, end, total))
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

struct Settings {
    addr: SocketAddr,
    protocol: Protocol,
    /// A second node of the same cluster: odd connections go there.
    addr2: Option<SocketAddr>,
    scenario: String,
    conns: u64,
    emits: u64,
    rounds: u64,
    emitters: u64,
    concurrency: usize,
    straggler: Duration,
    pid: Option<u32>,
    /// The second node's PID and Redis's: their CPU time counts as the server's.
    pid2: Option<u32>,
    redis_pid: Option<u32>,
    /// A pause between the connects and the emits (to start a profiler's measurement).
    hold: Duration,
    /// A pause between the connects and the emits, not repeated at the end.
    settle: Duration,
    /// Emits sent before the measured ones, their latency reported apart.
    warmup: u64,
    /// Stay awake while deliveries are due (`--awake`, see [`stay_awake`]).
    awake: bool,
    /// How the emits are sent (from the scenario, `--window` and `--rate`).
    pace: Pace,
}

/// The node connection `i` goes to: 0 (`--port`), or with `--port2` 1 for every odd one.
fn node_of(settings: &Settings, i: u64) -> usize {
    usize::from(settings.addr2.is_some() && i % 2 == 1)
}

/// Connections per node: (on `--port`, on `--port2`).
fn conns_per_node(settings: &Settings) -> [u64; 2] {
    if settings.addr2.is_some() {
        [settings.conns.div_ceil(2), settings.conns / 2]
    } else {
        [settings.conns, 0]
    }
}

/// Opens `settings.conns` connections; `channel(i)` names the channel of the i-th. Returns
/// when every one has subscribed or failed (or after a bounded wait).
async fn connect_all(
    shared: &Rc<Shared>,
    settings: &Settings,
    channel: impl Fn(u64) -> String,
) -> f64 {
    let limit = Rc::new(Semaphore::new(settings.concurrency));
    let start = shared.now_ns();
    for i in 0..settings.conns {
        let node = node_of(settings, i);
        let addr = match (node, settings.addr2) {
            (1, Some(addr2)) => addr2,
            _ => settings.addr,
        };
        tokio::task::spawn_local(client(
            shared.clone(),
            node,
            addr,
            channel(i),
            limit.clone(),
            settings.protocol,
        ));
    }
    let deadline = Instant::now() + SETUP_TIMEOUT * 3;
    while shared.subscribed.get() + shared.failed.get() < settings.conns
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (shared.last_ack_ns.get().saturating_sub(start)) as f64 / 1e9
}

/// Sends `(channel, seq)` emits as `settings.pace` says, from a thread of its own (on the
/// same core): the emits come from another program than the subscribers in real use, and
/// here the next one leaves as soon as the previous is answered, not once this thread has read
/// the deliveries ahead of the answer. Returns (emits sent, errors, time of the first send).
async fn emit_all(shared: &Rc<Shared>, settings: &Settings, emits: Vec<String>) -> (u64, u64, u64) {
    let job = EmitJob {
        t0: shared.t0,
        progress: shared.progress.clone(),
        addr: settings.addr,
        emitters: settings.emitters.max(1),
        straggler: settings.straggler,
        pace: settings.pace,
    };
    let count = emits.len() as u64;
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("emitter".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = done.send(runtime.block_on(job.run(emits)));
            }
        });
    let failed = (0, count, shared.now_ns());
    if spawned.is_err() {
        return failed;
    }
    result.await.unwrap_or(failed)
}

/// What the emitting thread needs.
struct EmitJob {
    t0: Instant,
    progress: Arc<Progress>,
    addr: SocketAddr,
    emitters: u64,
    straggler: Duration,
    pace: Pace,
}

/// How many emits every subscriber has received, shared with the emitting thread.
#[derive(Default)]
struct Progress {
    /// Emits whose request has been (or is about to be) written.
    emitted: AtomicU64,
    fully_delivered: AtomicU64,
    changed: tokio::sync::Notify,
}

fn ns_since(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// How the emits are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pace {
    /// From `--emitters` connections at once, each sending its next emit when the previous
    /// one is answered.
    Concurrent,
    /// From one connection, each emit when the previous one is answered and fewer than
    /// `window` emits are still on their way to a subscriber (`0`: no such wait).
    Sequential { window: u64 },
    /// From one connection, emit `k` at `k * interval` from the first (or when the previous
    /// one is answered, if that is later).
    Paced { interval: Duration },
}

impl EmitJob {
    async fn run(self, emits: Vec<String>) -> (u64, u64, u64) {
        let first_ns = ns_since(self.t0);
        let (sent, errors) = match self.pace {
            Pace::Concurrent => {
                let step = self.emitters as usize;
                let lanes = (0..step).map(|k| {
                    self.send(
                        emits.iter().enumerate().skip(k).step_by(step),
                        Pace::Concurrent,
                    )
                });
                futures_util::future::join_all(lanes)
                    .await
                    .into_iter()
                    .fold((0, 0), |(s, e), (s2, e2)| (s + s2, e + e2))
            }
            pace => self.send(emits.iter().enumerate(), pace).await,
        };
        (sent, errors, first_ns)
    }

    /// Sends these emits in order on one keep-alive connection, each once the previous one is
    /// answered and `pace` allows. Returns (sent, errors).
    async fn send<'a>(
        &self,
        emits: impl ExactSizeIterator<Item = (usize, &'a String)>,
        pace: Pace,
    ) -> (u64, u64) {
        let total = emits.len() as u64;
        let Ok(mut emitter) = Emitter::connect(self.addr).await else {
            return (0, total);
        };
        let start = tokio::time::Instant::now();
        let (mut sent, mut errors) = (0u64, 0u64);
        for (seq, channel) in emits {
            match pace {
                Pace::Sequential { window } if window > 0 => {
                    // Bounded: a delivery that never comes ends the run (it shows as loss).
                    let in_flight = || {
                        seq as u64
                            - (self.progress.fully_delivered.load(Ordering::Acquire))
                                .min(seq as u64)
                    };
                    let mut stalled = false;
                    while in_flight() >= window {
                        let changed = self.progress.changed.notified();
                        tokio::pin!(changed);
                        changed.as_mut().enable();
                        if in_flight() < window {
                            break;
                        }
                        if tokio::time::timeout(self.straggler, changed).await.is_err() {
                            stalled = true;
                            break;
                        }
                    }
                    if stalled {
                        eprintln!("loadgen: emit {seq} never left the window; stopping");
                        errors += total - sent - errors;
                        break;
                    }
                }
                Pace::Paced { interval } => {
                    tokio::time::sleep_until(start + interval * seq as u32).await;
                }
                _ => {}
            }
            self.progress.emitted.fetch_add(1, Ordering::Release);
            match emitter.emit(self.t0, channel, seq as u64).await {
                Ok(200) => sent += 1,
                Ok(_) => {
                    sent += 1;
                    errors += 1;
                }
                Err(_) => {
                    errors += 1;
                    match Emitter::connect(self.addr).await {
                        Ok(fresh) => emitter = fresh,
                        Err(_) => break,
                    }
                }
            }
        }
        (sent, errors)
    }
}

/// Waits until `expected` deliveries arrived, or nothing arrived for the straggler window.
async fn await_deliveries(shared: &Shared, expected: u64, straggler: Duration) {
    let mut last_count = shared.received.get();
    let mut quiet_since = Instant::now();
    let hard_deadline = Instant::now() + Duration::from_secs(300);
    while shared.received.get() < expected && Instant::now() < hard_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let count = shared.received.get();
        if count != last_count {
            last_count = count;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= straggler {
            break;
        }
    }
}

/// `--awake`: keeps this thread from sleeping while deliveries are due (emitted to every
/// subscriber and not all received), by yielding in a loop, which makes the runtime poll its
/// sockets without blocking. Once every delivery due has arrived it parks until the next one.
///
/// On loopback, a delivery to a process asleep in `epoll_wait` makes the sending server wake it
/// (on this machine, an inter-processor interrupt to the load generator's idle core). How many
/// such wake-ups an emit costs depends on whether the load generator keeps ahead of the server,
/// so it varies from run to run and grows as a server is slower. A client on another machine
/// costs its server none of them; a load generator awake while deliveries are due costs it the
/// one for the first delivery of each emit.
///
/// A turn of the loop that brought no delivery counts as idle polling (`Shared::idle_polling`).
async fn stay_awake(shared: Rc<Shared>, on: Rc<Cell<bool>>) {
    // The last turn while deliveries were due: when, and the deliveries received by then.
    let mut last: Option<(Instant, u64)> = None;
    while on.get() {
        let due = shared
            .progress
            .emitted
            .load(Ordering::Acquire)
            .saturating_mul(u64::from(shared.subscribers.get()));
        let received = shared.received.get();
        if received < due {
            let now = Instant::now();
            if let Some((at, before)) = last
                && before == received
            {
                shared
                    .idle_polling
                    .set(shared.idle_polling.get() + now.duration_since(at));
            }
            last = Some((now, received));
            tokio::task::yield_now().await;
        } else {
            last = None;
            let mut parked = false;
            std::future::poll_fn(|cx| {
                if parked {
                    return Poll::Ready(());
                }
                parked = true;
                shared.idle_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            })
            .await;
        }
    }
}

async fn deliveries(
    shared: &Rc<Shared>,
    settings: &Settings,
    emits: Vec<String>,
    expected: u64,
    result: &mut RunResult,
) {
    shared.per_emit.replace(vec![0; emits.len()]);
    shared
        .subscribers
        .set(u32::try_from(shared.subscribed.get()).unwrap_or(u32::MAX));
    let cpu = CpuMark::now(settings);
    let awake = Rc::new(Cell::new(settings.awake));
    if settings.awake {
        tokio::task::spawn_local(stay_awake(shared.clone(), awake.clone()));
    }
    let (sent, errors, first_ns) = emit_all(shared, settings, emits).await;
    await_deliveries(shared, expected, settings.straggler).await;
    awake.set(false);
    shared.wake_awake();
    let (servers, loadgen) = cpu.elapsed(settings);
    (result.server_segments, result.loadgen_busy) =
        cpu.segments_and_busy(settings, shared.idle_polling.get());
    result.server_cpu_secs = servers.iter().sum();
    result.loadgen_cpu_secs = loadgen;
    let received = shared.received.get();
    let secs = shared.last_receive_ns.get().saturating_sub(first_ns) as f64 / 1e9;
    let per_node = shared.latencies_ns.each_ref().map(|l| {
        let mut l = l.take();
        l.sort_unstable();
        l
    });
    if settings.addr2.is_some() {
        let conns = conns_per_node(settings);
        let per_emit = expected / settings.conns.max(1);
        let rate = |node: usize| {
            let secs = shared.node_last_receive_ns[node]
                .get()
                .saturating_sub(first_ns) as f64
                / 1e9;
            if secs > 0.0 {
                shared.node_received[node].get() as f64 / secs
            } else {
                0.0
            }
        };
        let us = |node: usize, q: f64| micros(&per_node[node], q);
        result.nodes = 2;
        result.local_conns = conns[0];
        result.remote_conns = conns[1];
        result.local_received = shared.node_received[0].get();
        result.remote_received = shared.node_received[1].get();
        result.local_loss = (per_emit * conns[0]) as i64 - result.local_received as i64;
        result.remote_loss = (per_emit * conns[1]) as i64 - result.remote_received as i64;
        result.local_deliveries_per_sec = rate(0);
        result.remote_deliveries_per_sec = rate(1);
        (
            result.local_p50_us,
            result.local_p99_us,
            result.local_max_us,
        ) = (us(0, 0.50), us(0, 0.99), us(0, 1.0));
        (
            result.remote_p50_us,
            result.remote_p99_us,
            result.remote_max_us,
        ) = (us(1, 0.50), us(1, 0.99), us(1, 1.0));
        result.remote_server_cpu_secs = servers[1];
        result.redis_cpu_secs = servers[2];
    } else {
        result.nodes = 1;
    }
    let mut latencies: Vec<u64> = per_node.concat();
    latencies.sort_unstable();
    result.emits = sent;
    result.emit_errors = errors;
    result.expected = expected;
    result.received = received;
    result.loss = expected as i64 - received as i64;
    result.deliver_secs = secs;
    result.deliveries_per_sec = if secs > 0.0 {
        received as f64 / secs
    } else {
        0.0
    };
    result.p50_us = micros(&latencies, 0.50);
    result.p99_us = micros(&latencies, 0.99);
    result.max_us = micros(&latencies, 1.0);
    let mut warmup = shared.warmup_latencies_ns.take();
    warmup.sort_unstable();
    result.warmup_emits = settings.warmup;
    result.warmup_p50_us = micros(&warmup, 0.50);
    result.warmup_p99_us = micros(&warmup, 0.99);
    if result.server_cpu_secs > 0.0 {
        result.deliveries_per_cpu_sec = received as f64 / result.server_cpu_secs;
    }
    if received > 0 {
        result.segments_per_delivery = result.server_segments as f64 / received as f64;
    }
}

/// The `q` quantile of sorted latencies in nanoseconds, in microseconds (0 when there are none).
fn micros(sorted_ns: &[u64], q: f64) -> f64 {
    percentile(sorted_ns, q).map_or(0.0, |ns| ns as f64 / 1e3)
}

/// CPU times at the start of a measured phase: the servers' (the first node, the second node
/// and Redis, when their PIDs are known) and ours.
struct CpuMark {
    servers: [Option<f64>; 3],
    loadgen: Option<f64>,
    /// TCP data segments the servers have sent.
    segments: Option<u64>,
    at: Instant,
}

impl CpuMark {
    fn server_pids(settings: &Settings) -> [Option<u32>; 3] {
        [settings.pid, settings.pid2, settings.redis_pid]
    }

    fn now(settings: &Settings) -> CpuMark {
        CpuMark {
            servers: CpuMark::server_pids(settings).map(|pid| pid.and_then(cpu_secs)),
            loadgen: cpu_secs(std::process::id()),
            segments: server_segments(settings),
            at: Instant::now(),
        }
    }

    /// The TCP data segments the servers sent since the mark, and the load generator's CPU
    /// time, less `idle` (time it spent polling with nothing to do, see [`stay_awake`]), over
    /// the wall time since the mark.
    fn segments_and_busy(&self, settings: &Settings, idle: Duration) -> (u64, f64) {
        let segments = match (self.segments, server_segments(settings)) {
            (Some(before), Some(now)) => now.saturating_sub(before),
            _ => 0,
        };
        let wall = self.at.elapsed().as_secs_f64();
        let cpu = match (self.loadgen, cpu_secs(std::process::id())) {
            (Some(start), Some(now)) => (now - start - idle.as_secs_f64()).max(0.0),
            _ => 0.0,
        };
        (segments, if wall > 0.0 { cpu / wall } else { 0.0 })
    }

    /// (per server, load generator) CPU seconds since the mark; 0 where unknown.
    fn elapsed(&self, settings: &Settings) -> ([f64; 3], f64) {
        let since = |start: Option<f64>, now: Option<f64>| match (start, now) {
            (Some(start), Some(now)) => now - start,
            _ => 0.0,
        };
        let pids = CpuMark::server_pids(settings);
        let mut servers = [0.0; 3];
        for (i, server) in servers.iter_mut().enumerate() {
            *server = since(self.servers[i], pids[i].and_then(cpu_secs));
        }
        (servers, since(self.loadgen, cpu_secs(std::process::id())))
    }
}

/// TCP data segments sent by the servers' connections (both nodes' with `--port2`).
fn server_segments(settings: &Settings) -> Option<u64> {
    let first = data_segments_out(settings.addr.port())?;
    match settings.addr2 {
        Some(addr2) => Some(first + data_segments_out(addr2.port())?),
        None => Some(first),
    }
}

/// The server's RSS once it stops moving (within 0.5 % between samples 500 ms apart).
async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut last = rss_kib(pid).unwrap_or(0);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid).unwrap_or(0);
        if now.abs_diff(last) * 200 <= last {
            return now;
        }
        last = now;
    }
    last
}

async fn run(settings: Settings) -> RunResult {
    let shared = Rc::new(Shared::new(&settings));
    let mut result = RunResult {
        scenario: settings.scenario.clone(),
        conns: settings.conns,
        ..RunResult::default()
    };
    let rss_before = match (settings.scenario.as_str(), settings.pid) {
        ("connect", Some(pid)) => settled_rss(pid).await,
        _ => 0,
    };
    let cpu = CpuMark::now(&settings);
    let connect_secs = match settings.scenario.as_str() {
        "fanout" | "sequential" | "paced" => {
            connect_all(&shared, &settings, |_| "chats/0".to_owned()).await
        }
        "channels" => connect_all(&shared, &settings, |i| format!("chats/{i}")).await,
        "connect" => connect_all(&shared, &settings, |i| format!("chats/{}", i % 100)).await,
        other => fail(&format!("unknown scenario {other:?}")),
    };
    result.subscribed = shared.subscribed.get();
    if settings.scenario == "connect" {
        let (servers, loadgen) = cpu.elapsed(&settings);
        (result.server_segments, result.loadgen_busy) =
            cpu.segments_and_busy(&settings, Duration::ZERO);
        result.server_cpu_secs = servers.iter().sum();
        result.loadgen_cpu_secs = loadgen;
        if result.server_cpu_secs > 0.0 {
            result.connects_per_cpu_sec = result.subscribed as f64 / result.server_cpu_secs;
        }
    }
    result.connect_secs = connect_secs;
    result.connect_per_sec = if connect_secs > 0.0 {
        result.subscribed as f64 / connect_secs
    } else {
        0.0
    };
    if !settings.hold.is_zero() {
        eprintln!(
            "loadgen: {} subscribed; emitting in {} ms",
            result.subscribed,
            settings.hold.as_millis()
        );
        tokio::time::sleep(settings.hold).await;
    }
    if !settings.settle.is_zero() {
        tokio::time::sleep(settings.settle).await;
    }
    if settings.addr2.is_some() {
        // The remote node subscribes to the channel in Redis in the background after the
        // subscribe ack (normally within a millisecond): leave it time before the first emit.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    match settings.scenario.as_str() {
        "fanout" | "sequential" | "paced" => {
            let all = settings.warmup + settings.emits;
            let emits = vec!["chats/0".to_owned(); all as usize];
            let expected = all * settings.conns;
            deliveries(&shared, &settings, emits, expected, &mut result).await;
        }
        "channels" => {
            let emits: Vec<String> = (0..settings.rounds)
                .flat_map(|_| (0..settings.conns).map(|i| format!("chats/{i}")))
                .collect();
            let expected = settings.rounds * settings.conns;
            deliveries(&shared, &settings, emits, expected, &mut result).await;
        }
        _ => {
            if let Some(pid) = settings.pid {
                let after = settled_rss(pid).await;
                result.rss_before_kib = rss_before;
                result.rss_after_kib = after;
                if result.subscribed > 0 {
                    result.kib_per_conn =
                        after.saturating_sub(rss_before) as f64 / result.subscribed as f64;
                }
            }
        }
    }
    result.conn_errors = shared.failed.get() + shared.closed.get();
    if let Some(error) = shared.first_error.borrow().as_ref() {
        eprintln!(
            "loadgen: {} connection(s) failed; first: {error}",
            shared.failed.get()
        );
    }
    if shared.closed.get() > 0 {
        eprintln!(
            "loadgen: {} connection(s) closed by the server",
            shared.closed.get()
        );
    }
    result
}

fn main() {
    let limit = raise_fd_limit();
    let flags = Flags::from_env();
    let scenario = flags.get("scenario").unwrap_or("fanout").to_owned();
    if scenario == "history" {
        let config = history::Config::from_flags(&flags);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
        let result = tokio::task::LocalSet::new().block_on(&runtime, history::run(config));
        println!(
            "{}",
            serde_json::to_string(&result).unwrap_or_else(|e| fail(&format!("result: {e}")))
        );
        std::process::exit(0);
    }
    if scenario == "presence" {
        let config = presence::Config::from_flags(&flags);
        if config.members() + 64 > limit {
            fail(&format!(
                "{} connections need more file descriptors than the limit of {limit}",
                config.members()
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
        let result = tokio::task::LocalSet::new().block_on(&runtime, presence::run(config));
        println!(
            "{}",
            serde_json::to_string(&result).unwrap_or_else(|e| fail(&format!("result: {e}")))
        );
        std::process::exit(0);
    }
    let port: u16 = flags.num("port", 3000);
    let pid = |name: &str| {
        flags.get(name).map(|p| {
            p.parse()
                .unwrap_or_else(|_| fail(&format!("--{name} expects a number")))
        })
    };
    let settings = Settings {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        protocol: Protocol::parse(flags.get("protocol").unwrap_or("socketio")),
        addr2: flags
            .get("port2")
            .map(|_| SocketAddr::from(([127, 0, 0, 1], flags.num("port2", 0u16)))),
        conns: flags.num("conns", 1000),
        emits: flags.num("emits", 100),
        rounds: flags.num("rounds", 3),
        emitters: flags.num("emitters", if scenario == "channels" { 8 } else { 4 }),
        concurrency: flags.num("concurrency", 256),
        straggler: Duration::from_millis(flags.num("straggler-ms", 3000)),
        hold: Duration::from_millis(flags.num("hold-ms", 0)),
        settle: Duration::from_millis(flags.num("settle-ms", 0)),
        warmup: flags.num("warmup", 0),
        awake: flags.has("awake"),
        pid: pid("pid"),
        pid2: pid("pid2"),
        redis_pid: pid("redis-pid"),
        pace: match scenario.as_str() {
            "sequential" => Pace::Sequential {
                window: flags.num("window", 8),
            },
            "paced" => {
                let rate: f64 = flags.num("rate", 100.0);
                if !(rate > 0.0 && rate <= 1e6) {
                    fail("--rate expects emits per second, above 0");
                }
                Pace::Paced {
                    interval: Duration::from_secs_f64(1.0 / rate),
                }
            }
            _ => Pace::Concurrent,
        },
        scenario,
    };
    let every_subscriber = matches!(
        settings.scenario.as_str(),
        "fanout" | "sequential" | "paced"
    );
    if settings.warmup > 0 && !every_subscriber {
        fail("--warmup applies to the fanout, sequential and paced scenarios");
    }
    if settings.awake && !every_subscriber {
        fail("--awake applies to the fanout, sequential and paced scenarios");
    }
    if settings.conns + 64 > limit {
        fail(&format!(
            "{} connections need more file descriptors than the limit of {limit}",
            settings.conns
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let hold = settings.hold;
    let result = tokio::task::LocalSet::new().block_on(&runtime, run(settings));
    if !hold.is_zero() {
        eprintln!("loadgen: done; closing in {} ms", hold.as_millis());
        std::thread::sleep(hold);
    }
    println!(
        "{}",
        serde_json::to_string(&result).unwrap_or_else(|e| fail(&format!("result: {e}")))
    );
    // Leave at once: the connections close with the process.
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::{
        Protocol, SEND_TIME, SEQUENCE, Settings, Shared, conns_per_node, node_of, number_after,
        stay_awake,
    };
    use std::cell::Cell;
    use std::net::SocketAddr;
    use std::rc::Rc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    fn settings(conns: u64, two_nodes: bool) -> Settings {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            protocol: Protocol::SocketIo,
            addr2: two_nodes.then(|| SocketAddr::from(([127, 0, 0, 1], 2))),
            scenario: "fanout".to_owned(),
            conns,
            emits: 1,
            rounds: 1,
            emitters: 1,
            concurrency: 1,
            straggler: Duration::ZERO,
            pid: None,
            pid2: None,
            redis_pid: None,
            hold: Duration::ZERO,
            settle: Duration::ZERO,
            warmup: 0,
            awake: false,
            pace: super::Pace::Concurrent,
        }
    }

    /// Whether the `--awake` task is parked (its waker stored for the next delivery).
    fn parked(shared: &Shared) -> bool {
        let waker = shared.idle_waker.take();
        let parked = waker.is_some();
        shared.idle_waker.set(waker);
        parked
    }

    /// Lets the other tasks run until `shared`'s awake task is parked; whether it did within
    /// 20 turns.
    async fn parks(shared: &Shared) -> bool {
        for _ in 0..20 {
            tokio::task::yield_now().await;
            if parked(shared) {
                return true;
            }
        }
        false
    }

    #[test]
    fn awake_polls_on_only_while_deliveries_are_due() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        tokio::task::LocalSet::new().block_on(&runtime, async {
            let shared = Rc::new(Shared::new(&settings(2, false)));
            shared.subscribers.set(2);
            let on = Rc::new(Cell::new(true));
            let task = tokio::task::spawn_local(stay_awake(shared.clone(), on.clone()));
            assert!(parks(&shared).await, "nothing is due: it sleeps");

            // One emit to two subscribers: the first delivery wakes it, and it stays awake
            // until the second has come.
            shared.progress.emitted.fetch_add(1, Ordering::Release);
            shared.record(0, br#"42["chats/0/message",{"s":0,"t":1}]"#, 2);
            for _ in 0..20 {
                tokio::task::yield_now().await;
                assert!(!parked(&shared), "asleep with a delivery due");
            }
            assert!(
                shared.idle_polling.get() > Duration::ZERO,
                "turns with nothing arriving count as idle"
            );
            shared.record(0, br#"42["chats/0/message",{"s":0,"t":1}]"#, 3);
            assert!(parks(&shared).await, "everything came: it sleeps again");

            // Switched off, it ends at its next wake.
            on.set(false);
            shared.wake_awake();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the awake task ends")
                .expect("the awake task does not panic");
        });
    }

    #[test]
    fn connections_split_between_two_nodes() {
        let two = settings(1001, true);
        assert_eq!(conns_per_node(&two), [501, 500]);
        let on_b = (0..two.conns).filter(|&i| node_of(&two, i) == 1).count();
        assert_eq!(on_b, 500);
        let one = settings(1001, false);
        assert_eq!(conns_per_node(&one), [1001, 0]);
        assert!((0..one.conns).all(|i| node_of(&one, i) == 0));
    }

    #[test]
    fn ticks_are_recognized_on_every_wire() {
        assert!(Protocol::SocketIo.is_tick(br#"42["chats/0/tick",{"t":1}]"#));
        assert!(Protocol::Phoenix.is_tick(br#"[null,null,"chats/0","tick",{"t":1}]"#));
        assert!(!Protocol::Phoenix.is_tick(br#"[null,"hb","phoenix","phx_reply",{}]"#));
        assert!(
            Protocol::PhoenixV1
                .is_tick(br#"{"topic":"chats/0","event":"tick","payload":{"t":1},"ref":null}"#)
        );
        assert!(
            Protocol::Plain
                .is_tick(br#"{"type":"event","channel":"chats/0","event":"tick","data":{"t":1}}"#)
        );
        assert_eq!(
            Protocol::Phoenix.frame(Some("1"), "2", "chats/0", "phx_join"),
            r#"["1","2","chats/0","phx_join",{}]"#
        );
        assert_eq!(
            Protocol::PhoenixV1.frame(None, "hb", "phoenix", "heartbeat"),
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb","join_ref":null}"#
        );
    }

    #[test]
    fn send_time_from_event_data() {
        let tick = br#"42["chats/0/tick",{"t":123456,"s":3}]"#;
        assert_eq!(number_after(tick, &SEND_TIME), Some(123_456));
        assert_eq!(number_after(tick, &SEQUENCE), Some(3));
        assert_eq!(
            number_after(br#"42["chats/0/tick",{"s":3}]"#, &SEND_TIME),
            None
        );
        assert_eq!(number_after(br#"{"t":"x"}"#, &SEND_TIME), None);
        assert_eq!(
            number_after(br#"{"t":99999999999999999999}"#, &SEND_TIME),
            None,
            "more digits than a u64 holds"
        );
    }
}

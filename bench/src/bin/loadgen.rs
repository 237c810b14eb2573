//! The load generator: speaks Engine.IO v4 + Socket.IO v5 over WebSocket itself (one small
//! tokio-tungstenite client per connection, all on one thread), subscribes every connection,
//! answers pings, and timestamps every event it receives. Emits go through `POST /emit` on
//! keep-alive HTTP/1.1 connections and carry their send time, taken from the same clock as the
//! receive time, so latency is receive time minus send time.
//!
//! Scenarios (`--scenario`):
//! - `fanout`: `--conns` subscribers of `chats/0`, `--emits` emits to it, from `--emitters`
//!   (default 4) HTTP connections at once, each sending its next emit when the previous one is
//!   answered, so the server is saturated and its queues can build up;
//! - `channels`: `--conns` connections, each alone in `chats/<i>`, `--rounds` targeted emits
//!   to each, from `--emitters` (default 8) HTTP connections at once;
//! - `connect`: `--conns` connections subscribing to `chats/<i mod 100>` (the rate of
//!   connect + subscribe), then the server's RSS once they idle (needs `--pid`).
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
//! Prints one JSON line ([`tidings_bench::RunResult`]) on stdout.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tidings_bench::{Flags, RunResult, cpu_secs, fail, percentile, raise_fd_limit, rss_kib};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long one connection may take to connect, handshake and get its subscribe ack.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What every connection task reports into (one thread, so plain cells).
struct Shared {
    t0: Instant,
    /// Per node (0: `--port`, 1: `--port2`).
    latencies_ns: [RefCell<Vec<u64>>; 2],
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
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn error(&self, error: String) {
        self.failed.set(self.failed.get() + 1);
        self.first_error.borrow_mut().get_or_insert(error);
    }

    /// One `42[...]` event: its latency from the `"t":` send time in its data.
    fn record(&self, node: usize, text: &[u8]) {
        let now = self.now_ns();
        self.received.set(self.received.get() + 1);
        self.last_receive_ns.set(now);
        self.node_received[node].set(self.node_received[node].get() + 1);
        self.node_last_receive_ns[node].set(now);
        if let Some(sent) = sent_ns(text) {
            self.latencies_ns[node]
                .borrow_mut()
                .push(now.saturating_sub(sent));
        }
    }
}

/// The send time carried as `"t":<ns>` in an event's data.
fn sent_ns(text: &[u8]) -> Option<u64> {
    let at = text.windows(4).position(|w| w == b"\"t\":")? + 4;
    let digits = &text[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

type Ws = WebSocketStream<TcpStream>;

/// Reads text frames until one satisfies `done`, answering pings on the way.
async fn read_until(
    ws: &mut Ws,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if text.as_str() == "2" {
                    ws.send(Message::text("3"))
                        .await
                        .map_err(|e| format!("pong: {e}"))?;
                } else if done(text.as_str()) {
                    return Ok(text.as_str().to_owned());
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed awaiting {what}: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("awaiting {what}: {e}")),
            None => return Err(format!("eof awaiting {what}")),
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
            Protocol::Phoenix => contains(text, b",\"tick\","),
            Protocol::PhoenixV1 | Protocol::Plain => contains(text, b"\"event\":\"tick\""),
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
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How often a Phoenix connection sends its heartbeat (phoenix.js: 30 s).
const HEARTBEAT: Duration = Duration::from_secs(25);

/// Connects and joins `channel` over `protocol`.
async fn setup(addr: SocketAddr, channel: &str, protocol: Protocol) -> Result<Ws, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let url = format!("ws://{addr}{}", protocol.path());
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    if protocol == Protocol::Plain {
        let subscribe = format!(
            r#"{{"type":"subscribe","channel":{},"ref":"1"}}"#,
            serde_json::json!(channel)
        );
        ws.send(Message::text(subscribe))
            .await
            .map_err(|e| format!("send subscribe: {e}"))?;
        let reply = read_until(&mut ws, "subscribe reply", |t| t.contains("\"reply\"")).await?;
        if !reply.contains("\"ok\"") {
            return Err(format!("subscribe refused: {reply}"));
        }
        return Ok(ws);
    }
    if protocol != Protocol::SocketIo {
        ws.send(Message::text(protocol.frame(
            Some("1"),
            "1",
            channel,
            "phx_join",
        )))
        .await
        .map_err(|e| format!("send phx_join: {e}"))?;
        let reply = read_until(&mut ws, "join reply", |t| t.contains("phx_reply")).await?;
        if !reply.contains("\"ok\"") {
            return Err(format!("join refused: {reply}"));
        }
        return Ok(ws);
    }
    read_until(&mut ws, "open", |t| t.starts_with('0')).await?;
    ws.send(Message::text("40"))
        .await
        .map_err(|e| format!("send 40: {e}"))?;
    let connect = read_until(&mut ws, "connect", |t| {
        t.starts_with("40") || t.starts_with("44")
    })
    .await?;
    if connect.starts_with("44") {
        return Err(format!("connect refused: {connect}"));
    }
    let subscribe = format!("420[\"subscribe\",{}]", serde_json::json!(channel));
    ws.send(Message::text(subscribe))
        .await
        .map_err(|e| format!("send subscribe: {e}"))?;
    let ack = read_until(&mut ws, "subscribe ack", |t| t.starts_with("430")).await?;
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
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = heartbeat.tick(), if matches!(protocol, Protocol::Phoenix | Protocol::PhoenixV1) => {
                let beat = protocol.frame(None, "hb", "phoenix", "heartbeat");
                if ws.send(Message::text(beat)).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        match message {
            Ok(Message::Text(text)) => {
                let bytes = text.as_bytes();
                if protocol.is_tick(bytes) {
                    shared.record(node, bytes);
                } else if bytes == b"2" && ws.send(Message::text("3")).await.is_err() {
                    break;
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.closed.set(shared.closed.get() + 1);
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
    async fn emit(&mut self, shared: &Shared, channel: &str, seq: u64) -> std::io::Result<u16> {
        let body = format!(
            r#"{{"channel":"{channel}","event":"tick","data":{{"t":{},"s":{seq}}}}}"#,
            shared.now_ns()
        );
        let request = format!(
            "POST /emit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.response().await
    }

    async fn response(&mut self) -> std::io::Result<u16> {
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
        self.buf.drain(..total);
        Ok(status)
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

/// Sends `(channel, seq)` emits from `settings.emitters` connections in parallel, each taking
/// every k-th emit in order. Returns (emits sent, errors, time of the first send).
async fn emit_all(shared: &Rc<Shared>, settings: &Settings, emits: Vec<String>) -> (u64, u64, u64) {
    let emits = Rc::new(emits);
    let first_ns = shared.now_ns();
    let mut tasks = Vec::new();
    for k in 0..settings.emitters.max(1) {
        let emits = emits.clone();
        let shared = shared.clone();
        let addr = settings.addr;
        let step = settings.emitters.max(1) as usize;
        tasks.push(tokio::task::spawn_local(async move {
            let (mut sent, mut errors) = (0u64, 0u64);
            let mut emitter = match Emitter::connect(addr).await {
                Ok(emitter) => emitter,
                Err(_) => return (0, emits.len().div_ceil(step) as u64),
            };
            for (seq, channel) in emits.iter().enumerate().skip(k as usize).step_by(step) {
                match emitter.emit(&shared, channel, seq as u64).await {
                    Ok(200) => sent += 1,
                    Ok(_) => {
                        sent += 1;
                        errors += 1;
                    }
                    Err(_) => {
                        errors += 1;
                        match Emitter::connect(addr).await {
                            Ok(fresh) => emitter = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (sent, errors)
        }));
    }
    let (mut sent, mut errors) = (0, 0);
    for task in tasks {
        if let Ok((s, e)) = task.await {
            sent += s;
            errors += e;
        }
    }
    (sent, errors, first_ns)
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

async fn deliveries(
    shared: &Rc<Shared>,
    settings: &Settings,
    emits: Vec<String>,
    expected: u64,
    result: &mut RunResult,
) {
    let cpu = CpuMark::now(settings);
    let (sent, errors, first_ns) = emit_all(shared, settings, emits).await;
    await_deliveries(shared, expected, settings.straggler).await;
    let (servers, loadgen) = cpu.elapsed(settings);
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
        let us =
            |node: usize, q: f64| percentile(&per_node[node], q).map_or(0.0, |ns| ns as f64 / 1e3);
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
    let us = |q: f64| percentile(&latencies, q).map_or(0.0, |ns| ns as f64 / 1e3);
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
    result.p50_us = us(0.50);
    result.p99_us = us(0.99);
    result.max_us = us(1.0);
    if result.server_cpu_secs > 0.0 {
        result.deliveries_per_cpu_sec = received as f64 / result.server_cpu_secs;
    }
}

/// CPU times at the start of a measured phase: the servers' (the first node, the second node
/// and Redis, when their PIDs are known) and ours.
struct CpuMark {
    servers: [Option<f64>; 3],
    loadgen: Option<f64>,
}

impl CpuMark {
    fn server_pids(settings: &Settings) -> [Option<u32>; 3] {
        [settings.pid, settings.pid2, settings.redis_pid]
    }

    fn now(settings: &Settings) -> CpuMark {
        CpuMark {
            servers: CpuMark::server_pids(settings).map(|pid| pid.and_then(cpu_secs)),
            loadgen: cpu_secs(std::process::id()),
        }
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
    let shared = Rc::new(Shared {
        t0: Instant::now(),
        latencies_ns: Default::default(),
        received: Cell::new(0),
        last_receive_ns: Cell::new(0),
        node_received: Default::default(),
        node_last_receive_ns: Default::default(),
        subscribed: Cell::new(0),
        failed: Cell::new(0),
        closed: Cell::new(0),
        first_error: RefCell::new(None),
        last_ack_ns: Cell::new(0),
    });
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
        "fanout" => connect_all(&shared, &settings, |_| "chats/0".to_owned()).await,
        "channels" => connect_all(&shared, &settings, |i| format!("chats/{i}")).await,
        "connect" => connect_all(&shared, &settings, |i| format!("chats/{}", i % 100)).await,
        other => fail(&format!("unknown scenario {other:?}")),
    };
    result.subscribed = shared.subscribed.get();
    if settings.scenario == "connect" {
        let (servers, loadgen) = cpu.elapsed(&settings);
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
    if settings.addr2.is_some() {
        // The remote node subscribes to the channel in Redis in the background after the
        // subscribe ack (normally within a millisecond): leave it time before the first emit.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    match settings.scenario.as_str() {
        "fanout" => {
            let emits = vec!["chats/0".to_owned(); settings.emits as usize];
            let expected = settings.emits * settings.conns;
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
        pid: pid("pid"),
        pid2: pid("pid2"),
        redis_pid: pid("redis-pid"),
        scenario,
    };
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
    use super::{Protocol, Settings, conns_per_node, node_of, sent_ns};
    use std::net::SocketAddr;
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
        }
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
        assert_eq!(
            sent_ns(br#"42["chats/0/tick",{"t":123456,"s":3}]"#),
            Some(123_456)
        );
        assert_eq!(sent_ns(br#"42["chats/0/tick",{"s":3}]"#), None);
    }
}

//! The baseline: a minimal hand-written WebSocket broadcaster speaking just enough of the
//! benchmark contract (Engine.IO v4 open, Socket.IO v5 connect, `subscribe` with its ack,
//! `POST /emit`, pings; or at `/ws` the plain WebSocket JSON protocol's `subscribe` and
//! `event`), on one thread. Each emit is encoded once into a complete WebSocket
//! frame whose bytes every subscriber's queue shares. Writing is what a careful broadcaster
//! does: a connection given a frame goes on one flush list (once, however many frames follow),
//! and one flusher task writes the listed connections 64 at a time, everything queued for a
//! connection in one vectored `write`, yielding between groups so that the next emit (or a
//! client's frame) is read meanwhile and joins the queues not yet written. A connection whose
//! socket is full waits for it in its own task. Each connection's task reads its client's
//! frames. It marks what this machine can do, not a server anyone should run.
//!
//! Run: `peer-baseline --port 3000`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_bench::{Flags, raise_fd_limit, ws};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A complete server-to-client WebSocket frame, shared by every queue it is in.
type Frame = Rc<[u8]>;

/// How many frames may wait for one client (as tidings' `max_queued_frames`).
const QUEUE: usize = 4096;
/// How many queued frames one `write` takes at most.
const WRITE_BATCH: usize = 64;
const PING_INTERVAL: Duration = Duration::from_millis(25_000);
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1_000_000;

struct Hub {
    flusher: Rc<Flusher>,
    next_id: Cell<u64>,
    /// Every WebSocket connection, for the pings.
    conns: RefCell<HashMap<u64, Tx>>,
    /// The members of each channel.
    rooms: RefCell<HashMap<String, HashMap<u64, Member>>>,
}

/// A member's queue, and whether it speaks the plain protocol (else Socket.IO).
type Member = (Tx, bool);

/// A connection's outbound side, shared by its task, the hub and the flusher.
type Tx = Rc<Conn>;

/// A WebSocket connection: its socket and what waits to be written to it.
struct Conn {
    stream: TcpStream,
    flusher: Rc<Flusher>,
    queue: RefCell<std::collections::VecDeque<Frame>>,
    /// Bytes of the front frame already written.
    written: Cell<usize>,
    /// On the flush list, or waiting for the socket to take more.
    scheduled: Cell<bool>,
    /// The socket took less than offered: the connection's task waits for it.
    blocked: Notify,
    failed: Cell<bool>,
}

impl Conn {
    /// Queues a frame (refused when the queue is full or the connection failed).
    fn try_send(self: &Rc<Self>, frame: Frame) -> Result<(), ()> {
        let mut queue = self.queue.borrow_mut();
        if self.failed.get() || queue.len() >= QUEUE {
            return Err(());
        }
        queue.push_back(frame);
        drop(queue);
        if !self.scheduled.replace(true) {
            self.flusher.schedule(self.clone());
        }
        Ok(())
    }

    /// Writes what is queued, up to [`WRITE_BATCH`] frames per vectored write, until the queue
    /// is empty or the socket is full (then the connection's task takes over).
    fn flush(&self) {
        let mut queue = self.queue.borrow_mut();
        while !queue.is_empty() {
            let skip = self.written.get();
            let wrote = if let (1, Some(frame)) = (queue.len(), queue.front()) {
                // One frame: a plain `send` (a vectored write costs the kernel more per call).
                self.stream.try_write(&frame[skip..])
            } else {
                let slices: Vec<std::io::IoSlice<'_>> = queue
                    .iter()
                    .take(WRITE_BATCH)
                    .enumerate()
                    .map(|(i, frame)| {
                        std::io::IoSlice::new(if i == 0 { &frame[skip..] } else { frame })
                    })
                    .collect();
                self.stream.try_write_vectored(&slices)
            };
            match wrote {
                Ok(mut n) => {
                    n += skip;
                    while let Some(front) = queue.front() {
                        if n < front.len() {
                            break;
                        }
                        n -= front.len();
                        queue.pop_front();
                    }
                    self.written.set(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.blocked.notify_one();
                    return;
                }
                Err(_) => {
                    self.failed.set(true);
                    queue.clear();
                    break;
                }
            }
        }
        self.scheduled.set(false);
    }
}

/// The one list of connections with frames to write, and the task that writes them.
#[derive(Default)]
struct Flusher {
    list: RefCell<std::collections::VecDeque<Tx>>,
    work: Notify,
}

impl Flusher {
    fn schedule(&self, conn: Tx) {
        self.list.borrow_mut().push_back(conn);
        self.work.notify_one();
    }

    async fn run(self: Rc<Self>) {
        loop {
            let group: Vec<Tx> = {
                let mut list = self.list.borrow_mut();
                let take = list.len().min(WRITE_BATCH);
                list.drain(..take).collect()
            };
            if group.is_empty() {
                self.work.notified().await;
                continue;
            }
            for conn in group {
                conn.flush();
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Hub {
    /// Queues `socketio` for Socket.IO members and `plain` for plain WebSocket ones.
    fn broadcast(&self, channel: &str, socketio: &Frame, plain: &Frame) -> usize {
        self.rooms.borrow().get(channel).map_or(0, |members| {
            members
                .values()
                .filter(|(tx, is_plain)| {
                    let frame = if *is_plain { plain } else { socketio };
                    tx.try_send(frame.clone()).is_ok()
                })
                .count()
        })
    }
}

/// A server-to-client (unmasked) WebSocket frame.
fn ws_frame(opcode: u8, payload: &[u8]) -> Frame {
    ws::encode(opcode, payload, None).into()
}

fn text(payload: &str) -> Frame {
    ws_frame(0x1, payload.as_bytes())
}

/// One client-to-server frame: (bytes used, opcode, unmasked payload), or `None` when `buf`
/// does not hold a whole frame yet. Fragmented messages are not supported (not needed here).
fn parse_frame(buf: &[u8]) -> Option<(usize, u8, Vec<u8>)> {
    let header = ws::Header::read(buf)?;
    let mut payload = buf
        .get(header.at..header.at.checked_add(header.len)?)?
        .to_vec();
    if let Some(mask) = header.mask {
        ws::unmask(&mut payload, mask);
    }
    Some((header.frame_len(), header.opcode, payload))
}

struct Head {
    method: String,
    path: String,
    content_length: usize,
    websocket_key: Option<String>,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let method = request.next()?.to_owned();
    let path = request.next()?.to_owned();
    let mut parsed = Head {
        method,
        path,
        content_length: 0,
        websocket_key: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            parsed.websocket_key = Some(value.to_owned());
        }
    }
    Some(parsed)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; false at end of stream or on an error.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    buf.reserve(1024);
    matches!(stream.read_buf(buf).await, Ok(n) if n > 0)
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await
}

#[derive(Deserialize)]
struct Emit<'a> {
    channel: String,
    event: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// One TCP connection: HTTP requests until it upgrades to a WebSocket.
async fn connection(hub: Rc<Hub>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    loop {
        let end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > MAX_HEAD || !fill(&mut stream, &mut buf).await {
                return;
            }
        };
        let Some(head) = parse_head(&buf[..end]) else {
            return;
        };
        buf.drain(..end);
        if let Some(key) = head.websocket_key.filter(|_| head.method == "GET") {
            let plain = head.path == "/ws";
            if !head.path.starts_with("/socket.io/") && !plain {
                let _ = respond(&mut stream, "404 Not Found", "").await;
                return;
            }
            let accept = derive_accept_key(key.as_bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if stream.write_all(response.as_bytes()).await.is_ok() {
                websocket(hub, stream, buf, plain).await;
            }
            return;
        }
        if head.content_length > MAX_BODY {
            return;
        }
        while buf.len() < head.content_length {
            if !fill(&mut stream, &mut buf).await {
                return;
            }
        }
        let body: Vec<u8> = buf.drain(..head.content_length).collect();
        let answer = if head.method == "POST" && head.path == "/emit" {
            match serde_json::from_slice::<Emit>(&body) {
                Ok(emit) => {
                    let name = serde_json::to_string(&format!("{}/{}", emit.channel, emit.event))
                        .unwrap_or_default();
                    let frame = text(&format!("42[{name},{}]", emit.data.get()));
                    let plain = text(&format!(
                        r#"{{"type":"event","channel":{},"event":{},"data":{}}}"#,
                        serde_json::json!(emit.channel),
                        serde_json::json!(emit.event),
                        emit.data.get()
                    ));
                    let delivered = hub.broadcast(&emit.channel, &frame, &plain);
                    respond(
                        &mut stream,
                        "200 OK",
                        &format!("{{\"delivered\":{delivered}}}"),
                    )
                    .await
                }
                Err(_) => respond(&mut stream, "400 Bad Request", "").await,
            }
        } else {
            respond(&mut stream, "404 Not Found", "").await
        };
        if answer.is_err() {
            return;
        }
    }
}

/// A WebSocket connection: the Engine.IO open packet (not for `plain`), then client frames
/// and the queue.
async fn websocket(hub: Rc<Hub>, stream: TcpStream, mut buf: Vec<u8>, plain: bool) {
    let id = hub.next_id.get();
    hub.next_id.set(id + 1);
    let sid = format!("b{id:019}");
    let tx: Tx = Rc::new(Conn {
        stream,
        flusher: hub.flusher.clone(),
        queue: RefCell::default(),
        written: Cell::new(0),
        scheduled: Cell::new(false),
        blocked: Notify::new(),
        failed: Cell::new(false),
    });
    hub.conns.borrow_mut().insert(id, tx.clone());
    let open = format!(
        r#"0{{"sid":"{sid}","upgrades":[],"pingInterval":{},"pingTimeout":20000,"maxPayload":{MAX_BODY}}}"#,
        PING_INTERVAL.as_millis()
    );
    if !plain {
        let _ = tx.try_send(text(&open));
    }
    let mut channels: Vec<String> = Vec::new();
    'conn: loop {
        while let Some((used, opcode, payload)) = parse_frame(&buf) {
            buf.drain(..used);
            match opcode {
                0x1 if plain => on_plain(&hub, id, &tx, &payload, &mut channels),
                0x1 if !on_text(&hub, id, &sid, &tx, &payload, &mut channels) => break 'conn,
                0x8 => break 'conn,
                0x9 => {
                    let _ = tx.try_send(ws_frame(0xA, &payload));
                }
                _ => {}
            }
        }
        if tx.failed.get() {
            break;
        }
        tokio::select! {
            ready = tx.stream.readable() => {
                if ready.is_err() {
                    break;
                }
                if buf.capacity() - buf.len() < 256 {
                    buf.reserve(1024);
                }
                match tx.stream.try_read_buf(&mut buf) {
                    Ok(0) => break,
                    Ok(_) if buf.len() > MAX_BODY + 16 => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            () = tx.blocked.notified() => {
                // The socket was full: write the rest once it takes more.
                if tx.stream.writable().await.is_err() {
                    break;
                }
                tx.flush();
                if tx.failed.get() {
                    break;
                }
            }
        }
    }
    tx.failed.set(true);
    tx.queue.borrow_mut().clear();
    hub.conns.borrow_mut().remove(&id);
    let mut rooms = hub.rooms.borrow_mut();
    for channel in channels {
        if let Some(members) = rooms.get_mut(&channel) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(&channel);
            }
        }
    }
}

/// One Engine.IO text packet from the client; false to close.
fn on_text(
    hub: &Hub,
    id: u64,
    sid: &str,
    tx: &Tx,
    payload: &[u8],
    channels: &mut Vec<String>,
) -> bool {
    match payload {
        [b'3', ..] => true,
        [b'4', b'0', ..] => {
            let _ = tx.try_send(text(&format!(r#"40{{"sid":"{sid}"}}"#)));
            true
        }
        [b'4', b'1', ..] | [b'1', ..] => false,
        [b'4', b'2', rest @ ..] => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let (ack, args) = rest.split_at(digits);
            let Ok(args) = serde_json::from_slice::<Vec<serde_json::Value>>(args) else {
                return false;
            };
            if let [event, channel, ..] = args.as_slice()
                && event == "subscribe"
                && let Some(channel) = channel.as_str()
            {
                if !channels.iter().any(|c| c == channel) {
                    channels.push(channel.to_owned());
                    hub.rooms
                        .borrow_mut()
                        .entry(channel.to_owned())
                        .or_default()
                        .insert(id, (tx.clone(), false));
                }
                if !ack.is_empty() {
                    let ack = std::str::from_utf8(ack).unwrap_or("0");
                    let _ = tx.try_send(text(&format!(r#"43{ack}[{{"status":"ok"}}]"#)));
                }
            }
            true
        }
        _ => true,
    }
}

/// One plain WebSocket message: `subscribe` joins and is answered; anything else is ignored.
fn on_plain(hub: &Hub, id: u64, tx: &Tx, payload: &[u8], channels: &mut Vec<String>) {
    #[derive(Deserialize)]
    struct Subscribe<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        channel: Option<String>,
        #[serde(rename = "ref", borrow)]
        msg_ref: Option<&'a RawValue>,
    }
    let Ok(message) = serde_json::from_slice::<Subscribe<'_>>(payload) else {
        return;
    };
    let (true, Some(channel)) = (message.kind == "subscribe", message.channel) else {
        return;
    };
    if !channels.contains(&channel) {
        hub.rooms
            .borrow_mut()
            .entry(channel.clone())
            .or_default()
            .insert(id, (tx.clone(), true));
        channels.push(channel);
    }
    let reply = match message.msg_ref {
        Some(r) => format!(r#"{{"type":"reply","ref":{},"status":"ok"}}"#, r.get()),
        None => r#"{"type":"reply","status":"ok"}"#.to_owned(),
    };
    let _ = tx.try_send(text(&reply));
}

fn main() -> std::io::Result<()> {
    raise_fd_limit();
    let flags = Flags::from_env();
    let port: u16 = flags.num("port", 3000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(([127, 0, 0, 1], port).into())?;
    let listener = socket.listen(4096)?;
    println!("listening on http://127.0.0.1:{port}");
    let flusher = Rc::new(Flusher::default());
    tokio::task::spawn_local(flusher.clone().run());
    let hub = Rc::new(Hub {
        flusher,
        next_id: Cell::default(),
        conns: RefCell::default(),
        rooms: RefCell::default(),
    });
    let pinger = hub.clone();
    tokio::task::spawn_local(async move {
        let ping = text("2");
        loop {
            tokio::time::sleep(PING_INTERVAL).await;
            for tx in pinger.conns.borrow().values() {
                let _ = tx.try_send(ping.clone());
            }
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::task::spawn_local(connection(hub.clone(), stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_parser() {
        let frame = ws_frame(0x1, b"42[\"x\"]");
        let (used, opcode, payload) = parse_frame(&frame).expect("a whole frame");
        assert_eq!(
            (used, opcode, payload.as_slice()),
            (frame.len(), 1, &b"42[\"x\"]"[..])
        );
        assert!(parse_frame(&frame[..frame.len() - 1]).is_none());
        let long = vec![b'a'; 300];
        let frame = ws_frame(0x1, &long);
        assert_eq!(&frame[..4], &[0x81, 126, 1, 44]);
    }

    #[test]
    fn masked_client_frames_are_unmasked() {
        let mask = [1, 2, 3, 4];
        let payload: Vec<u8> = b"40"
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        let mut frame = vec![0x81, 0x80 | 2];
        frame.extend_from_slice(&mask);
        frame.extend_from_slice(&payload);
        let (used, opcode, text) = parse_frame(&frame).expect("a whole frame");
        assert_eq!((used, opcode, text.as_slice()), (8, 1, &b"40"[..]));
    }

    #[test]
    fn request_heads() {
        let head = parse_head(b"POST /emit HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
            .expect("a head");
        assert_eq!(
            (head.method.as_str(), head.path.as_str()),
            ("POST", "/emit")
        );
        assert_eq!(head.content_length, 12);
        assert!(head.websocket_key.is_none());
    }
}

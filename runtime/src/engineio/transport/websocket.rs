//! WebSocket: a direct session, or the upgrade of a polling one (`2probe` / `3probe` / `5`).
//!
//! A connection has no task of its own: its response body, [`Connection`], is polled by
//! actix-http's dispatcher for bytes to write, and in that same poll it reads the client's
//! frames from the request payload and drains the session queue. A frame queued by a broadcast
//! wakes the dispatcher directly, and is encoded straight into the bytes the dispatcher writes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::ws::{self, CloseCode, Codec, Item, Message, ProtocolError};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream as _;
use tokio_util::codec::Decoder as _;

use crate::engineio::error::{CloseReason, RequestError};
use crate::engineio::packet::{Frame, Packet, SharedText, encode_websocket};
use crate::engineio::server::{Engine, EngineHandler, Entry};
use crate::engineio::session::{Reader, TransportKind};
use crate::engineio::tcp;

/// How many queued frames one poll encodes before handing them to the dispatcher.
const WRITE_BATCH: usize = 64;

/// Stop adding frames to one chunk once it is this big (the dispatcher buffers 32 KiB).
const WRITE_CHUNK: usize = 16 * 1024;

/// Accepts a WebSocket: a new session when `entry` is `None`, else an upgrade of `entry`.
pub(crate) fn open<H: EngineHandler>(
    engine: &Engine<H>,
    req: &HttpRequest,
    payload: web::Payload,
    entry: Option<Entry<H::State>>,
) -> Result<HttpResponse, RequestError> {
    let mut response = ws::handshake(req.head()).map_err(|_| RequestError::BadRequest)?;
    let max = engine.config().max_payload;
    let mut tcp = tcp::socket_of(req);
    let (entry, phase, out) = match entry {
        None => {
            let (entry, open) = engine.create_session(req, TransportKind::WebSocket)?;
            if let Some(socket) = tcp.take() {
                entry.session.set_tcp(socket);
            }
            let mut out = BytesMut::new();
            encode_websocket(&mut out, Message::Text(open));
            let phase = match entry.session.try_reader() {
                Some(queue) => Phase::Open(queue),
                // Nobody else knows the session yet; this cannot happen.
                None => Phase::Acquiring(Box::pin(entry.session.clone().reader())),
            };
            (entry, phase, out)
        }
        Some(entry) => {
            let deadline = Box::pin(tokio::time::sleep(engine.config().upgrade_timeout));
            let phase = Phase::Probing {
                probed: false,
                deadline,
            };
            (entry, phase, BytesMut::new())
        }
    };
    let connection = Connection {
        engine: engine.clone(),
        entry,
        payload,
        codec: Codec::new().max_size(max),
        input: BytesMut::new(),
        partial: None,
        out,
        ready: None,
        phase,
        tcp,
    };
    Ok(response.message_body(BoxBody::new(connection)).map_or_else(
        |_| HttpResponse::InternalServerError().finish(),
        HttpResponse::from,
    ))
}

/// Accepts the WebSocket handshake of a second WebSocket on an upgraded session, then closes it.
pub(crate) fn refuse(
    req: &HttpRequest,
    _payload: web::Payload,
) -> Result<HttpResponse, RequestError> {
    let mut response = ws::handshake(req.head()).map_err(|_| RequestError::BadRequest)?;
    let mut out = BytesMut::new();
    encode_websocket(
        &mut out,
        Message::Close(Some(ws::CloseReason {
            code: CloseCode::Policy,
            description: Some("session already upgraded".to_owned()),
        })),
    );
    let body = futures_util::stream::iter([Ok::<_, Infallible>(out.freeze())]);
    Ok(HttpResponse::from(
        response
            .message_body(BoxBody::new(actix_web::body::BodyStream::new(body)))
            .map_err(|_| RequestError::BadRequest)?,
    ))
}

/// The session queue, held by the WebSocket once the connection owns the session.
type Queue = Reader;

/// Where a connection stands.
enum Phase {
    /// An upgrade: waiting for `2probe` (answered `3probe`) then `5`, until the deadline. A
    /// pending poll still owns the session meanwhile.
    Probing {
        probed: bool,
        deadline: Pin<Box<tokio::time::Sleep>>,
    },
    /// Upgraded: waiting for the last poll to hand the session queue over.
    Acquiring(Pin<Box<dyn Future<Output = Queue>>>),
    /// Carrying the session both ways.
    Open(Queue),
    /// The close frame is written; the body ends.
    Done,
}

/// One WebSocket connection, as the body of its `101 Switching Protocols` response.
struct Connection<H: EngineHandler> {
    engine: Engine<H>,
    entry: Entry<H::State>,
    payload: web::Payload,
    codec: Codec,
    /// Bytes from the client not yet decoded.
    input: BytesMut,
    /// A message arriving in continuation frames: whether it is text, and its bytes so far.
    /// Boxed: rare, and the connection lives long.
    partial: Option<Box<(bool, BytesMut)>>,
    /// Encoded frames for the dispatcher to write.
    out: BytesMut,
    /// A broadcast's shared WebSocket frame, handed to the dispatcher as it is when it is all
    /// there is to write (only while `out` is empty).
    ready: Option<Arc<SharedText>>,
    phase: Phase,
    /// During an upgrade, the TCP connection, when the server kept a handle on it
    /// ([`tcp::on_connect`]); the session gets it once it is on this WebSocket (a new session
    /// gets it at once).
    tcp: Option<std::sync::Weak<socket2::Socket>>,
}

/// What a frame from the client asks of the connection.
enum Incoming {
    Message(Packet),
    /// The client is going away (a close frame).
    Closed,
}

impl<H: EngineHandler> Connection<H> {
    /// Reads what the client sent; every complete message is handled in order.
    fn read(&mut self, cx: &mut Context<'_>) {
        while !matches!(self.phase, Phase::Done) && !self.entry.session.is_closed() {
            match self.decode() {
                Ok(Some(message)) => self.on_message(message),
                Ok(None) => match Pin::new(&mut self.payload).poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) => self.input.extend_from_slice(&chunk),
                    Poll::Ready(Some(Err(err))) => {
                        tracing::debug!(sid = %self.entry.session.sid(), %err, "websocket read failed");
                        self.lost(CloseReason::TransportError);
                    }
                    Poll::Ready(None) => self.lost(CloseReason::TransportClose),
                    Poll::Pending => {
                        // Keep no read buffer while the client is quiet.
                        if self.input.is_empty() {
                            self.input = BytesMut::new();
                        }
                        return;
                    }
                },
                Err(reason) => self.lost(reason),
            }
        }
    }

    /// The client's side ended: during an upgrade the polling session goes on.
    fn lost(&mut self, reason: CloseReason) {
        match self.phase {
            Phase::Probing { .. } => self.abandon_upgrade(),
            _ => self.entry.session.close(reason),
        }
    }

    /// The next complete frame from the client, continuations put together.
    fn decode(&mut self) -> Result<Option<Incoming>, CloseReason> {
        loop {
            let frame = match self.codec.decode(&mut self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(err) => return Err(protocol_reason(err)),
            };
            let (text, bytes) = match frame {
                ws::Frame::Text(bytes) => (true, bytes),
                ws::Frame::Binary(bytes) => (false, bytes),
                ws::Frame::Ping(bytes) => {
                    encode_websocket(&mut self.out, Message::Pong(bytes));
                    continue;
                }
                ws::Frame::Pong(_) => continue,
                ws::Frame::Close(_) => return Ok(Some(Incoming::Closed)),
                ws::Frame::Continuation(item) => {
                    let max = self.engine.config().max_payload;
                    match (item, self.partial.as_deref_mut()) {
                        (Item::FirstText(bytes), None) => {
                            self.partial = Some(Box::new((true, BytesMut::from(&bytes[..]))));
                            continue;
                        }
                        (Item::FirstBinary(bytes), None) => {
                            self.partial = Some(Box::new((false, BytesMut::from(&bytes[..]))));
                            continue;
                        }
                        (Item::Continue(bytes), Some((_, so_far))) => {
                            if so_far.len() + bytes.len() > max {
                                return Err(CloseReason::PayloadTooLarge);
                            }
                            so_far.extend_from_slice(&bytes);
                            continue;
                        }
                        (Item::Last(bytes), Some((_, so_far))) => {
                            if so_far.len() + bytes.len() > max {
                                return Err(CloseReason::PayloadTooLarge);
                            }
                            so_far.extend_from_slice(&bytes);
                            let Some((text, so_far)) = self.partial.take().map(|p| *p) else {
                                continue;
                            };
                            (text, so_far.freeze())
                        }
                        _ => {
                            return Err(CloseReason::ProtocolViolation(
                                "continuation frame out of order",
                            ));
                        }
                    }
                }
            };
            return if text {
                let text = ByteString::try_from(bytes).map_err(|_| CloseReason::InvalidUtf8)?;
                match Packet::decode_text(text, false) {
                    Ok(packet) => Ok(Some(Incoming::Message(packet))),
                    Err(err) => Err(CloseReason::ParseError(err.to_string())),
                }
            } else {
                Ok(Some(Incoming::Message(Packet::Binary(bytes))))
            };
        }
    }

    fn on_message(&mut self, message: Incoming) {
        let packet = match message {
            Incoming::Message(packet) => packet,
            Incoming::Closed => return self.lost(CloseReason::TransportClose),
        };
        let session = &self.entry.session;
        match &mut self.phase {
            Phase::Probing { probed, .. } => match packet {
                Packet::Ping(data) if &*data == "probe" && !*probed => {
                    if session.start_upgrade() {
                        encode_websocket(
                            &mut self.out,
                            Message::Text(ByteString::from_static("3probe")),
                        );
                        *probed = true;
                    } else {
                        self.abandon_upgrade();
                    }
                }
                Packet::Upgrade if *probed => {
                    if let Some(socket) = self.tcp.take() {
                        session.set_tcp(socket);
                    }
                    session.set_websocket();
                    tracing::debug!(sid = %session.sid(), "upgraded to websocket");
                    self.phase = Phase::Acquiring(Box::pin(session.clone().reader()));
                }
                _ => self.abandon_upgrade(),
            },
            _ => self.engine.on_packet(&self.entry, packet),
        }
    }

    /// Gives up an upgrade: the WebSocket closes, the polling session goes on.
    fn abandon_upgrade(&mut self) {
        tracing::debug!(sid = %self.entry.session.sid(), "upgrade abandoned");
        encode_websocket(&mut self.out, Message::Close(None));
        self.phase = Phase::Done;
    }

    /// Encodes queued frames into `out`; at the session's end, what is left and the close frame.
    fn write(&mut self, cx: &mut Context<'_>) {
        let session = &self.entry.session;
        match &mut self.phase {
            Phase::Probing { deadline, .. } => {
                if session.is_closed() || deadline.as_mut().poll(cx).is_ready() {
                    self.abandon_upgrade();
                }
            }
            Phase::Acquiring(queue) => {
                if let Poll::Ready(queue) = queue.as_mut().poll(cx) {
                    self.phase = Phase::Open(queue);
                    self.write(cx);
                }
            }
            Phase::Open(queue) => {
                if session.is_closed() {
                    self.finish();
                    return;
                }
                let (out, ready) = (&mut self.out, &mut self.ready);
                let mut taken = 0;
                let drained = queue.poll_drain(cx, |frame, queued| {
                    match frame {
                        Frame::Shared(shared) if out.is_empty() && ready.is_none() => {
                            *ready = Some(shared);
                        }
                        frame => {
                            if out.is_empty() {
                                // Room for this batch at once, not a growth step per frame.
                                let each = ready
                                    .as_ref()
                                    .map_or(0, |first| first.websocket().len())
                                    .max(frame.len() + 14);
                                out.reserve((each * (queued + 1)).min(WRITE_CHUNK));
                            }
                            if let Some(first) = ready.take() {
                                out.extend_from_slice(first.websocket());
                            }
                            encode_frame(out, frame);
                        }
                    }
                    taken += 1;
                    taken < WRITE_BATCH && out.len() < WRITE_CHUNK
                });
                if drained == Poll::Ready(true) {
                    // More is queued: come back once this chunk is taken.
                    cx.waker().wake_by_ref();
                }
            }
            Phase::Done => {}
        }
    }

    /// The session has closed: deliver what was queued before (unless the client is gone or
    /// not reading), then a close frame saying why.
    fn finish(&mut self) {
        let reason = self
            .entry
            .session
            .close_reason()
            .cloned()
            .unwrap_or(CloseReason::TransportClose);
        let writable = reason.delivers_queued();
        if let Some(first) = self.ready.take() {
            self.out.extend_from_slice(first.websocket());
        }
        if let Phase::Open(queue) = &mut self.phase
            && writable
        {
            while let Some(frame) = queue.try_recv() {
                encode_frame(&mut self.out, frame);
            }
        }
        let code = match &reason {
            CloseReason::PayloadTooLarge => CloseCode::Size,
            CloseReason::InvalidUtf8 => CloseCode::Invalid,
            CloseReason::ParseError(_) | CloseReason::ProtocolViolation(_) => CloseCode::Protocol,
            CloseReason::QueueFull => CloseCode::Policy,
            CloseReason::ServerShutdown => CloseCode::Away,
            _ => CloseCode::Normal,
        };
        if !matches!(reason, CloseReason::TransportError) {
            encode_websocket(
                &mut self.out,
                Message::Close(Some(ws::CloseReason {
                    code,
                    description: Some(reason.to_string()),
                })),
            );
        }
        self.phase = Phase::Done;
    }
}

impl<H: EngineHandler> Connection<H> {
    /// What is ready for the dispatcher: the encoded frames, or a shared frame as it is.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            self.ready.take().map(|shared| shared.websocket().clone())
        } else {
            Some(self.out.split().freeze())
        }
    }
}

impl<H: EngineHandler> MessageBody for Connection<H> {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if matches!(this.phase, Phase::Done) {
            return Poll::Ready(None);
        }
        // Registered before the reads below, so a close in between wakes this poll again.
        this.entry.session.close_waker.register(cx.waker());
        this.read(cx);
        this.write(cx);
        match this.next_chunk() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None if matches!(this.phase, Phase::Done) => Poll::Ready(None),
            None => {
                // Keep no write buffer while there is nothing to write.
                this.out = BytesMut::new();
                Poll::Pending
            }
        }
    }
}

impl<H: EngineHandler> Drop for Connection<H> {
    /// The dispatcher drops the body when the connection is gone: the session ends with it.
    fn drop(&mut self) {
        if matches!(self.phase, Phase::Open(_) | Phase::Acquiring(_)) {
            self.entry.session.close(CloseReason::TransportError);
        }
    }
}

/// The close reason for a frame the codec refused.
fn protocol_reason(err: ProtocolError) -> CloseReason {
    match err {
        ProtocolError::Overflow => CloseReason::PayloadTooLarge,
        ProtocolError::Io(_) => CloseReason::TransportError,
        other => CloseReason::ParseError(other.to_string()),
    }
}

fn encode_frame(out: &mut BytesMut, frame: Frame) {
    match frame {
        Frame::Text(text) => encode_websocket(out, Message::Text(text)),
        Frame::Binary(bytes) => encode_websocket(out, Message::Binary(bytes)),
        Frame::Shared(shared) => out.extend_from_slice(shared.websocket()),
    }
}

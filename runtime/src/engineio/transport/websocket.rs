//! WebSocket: a direct session, or the upgrade of a polling one (`2probe` / `3probe` / `5`).
//!
//! A connection has no task of its own: its response body, [`Connection`], is polled by
//! actix-http's dispatcher for bytes to write, and in that same poll it reads the client's
//! frames from the request payload and drains the session queue. A frame queued by a broadcast
//! wakes the dispatcher through its thread's pacer (`engineio::pacer`: a few writers per turn,
//! so that frames of the next emit join the ones not yet written), and is encoded straight into
//! the bytes the dispatcher writes, everything queued in one write.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::{self, CloseCode, Message};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::engineio::error::{CloseReason, RequestError};
use crate::engineio::packet::{Packet, encode_websocket};
use crate::engineio::server::{Engine, EngineHandler, Entry};
use crate::engineio::session::{CloseWatch, Reader, TransportKind};
use crate::engineio::tcp;
use crate::engineio::wsio::{self, Incoming, MessageReader, Output};

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
    let mut output = Output::default();
    let (entry, phase) = match entry {
        None => {
            let (entry, open) = engine.create_session(req, TransportKind::WebSocket)?;
            if let Some(socket) = tcp.take() {
                entry.session.set_tcp(socket);
            }
            encode_websocket(output.buffer(), Message::Text(open));
            let phase = match entry.session.try_reader() {
                Some(queue) => Phase::Open(queue),
                // Nobody else knows the session yet; this cannot happen.
                None => Phase::Acquiring(Box::pin(entry.session.clone().reader())),
            };
            (entry, phase)
        }
        Some(entry) => {
            let deadline = Box::pin(tokio::time::sleep(engine.config().upgrade_timeout));
            let phase = Phase::Probing {
                probed: false,
                deadline,
            };
            (entry, phase)
        }
    };
    let connection = Connection {
        engine: engine.clone(),
        entry,
        payload,
        reader: MessageReader::new(max),
        output,
        phase,
        tcp,
        close_watch: CloseWatch::default(),
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
    reader: MessageReader,
    /// What is ready for the dispatcher to write.
    output: Output,
    phase: Phase,
    /// During an upgrade, the TCP connection, when the server kept a handle on it
    /// ([`tcp::on_connect`]); the session gets it once it is on this WebSocket (a new session
    /// gets it at once).
    tcp: Option<std::sync::Weak<tcp::Ending>>,
    /// What this body registered with the session's close.
    close_watch: CloseWatch,
}

impl<H: EngineHandler> Connection<H> {
    /// Reads what the client sent; every complete message is handled in order.
    fn read(&mut self, cx: &mut Context<'_>) {
        while !matches!(self.phase, Phase::Done) && !self.entry.session.is_closed() {
            match self
                .reader
                .poll_next(&mut self.payload, cx, &mut self.output)
            {
                Poll::Ready(Ok(Incoming::Text(text))) => match Packet::decode_text(text, false) {
                    Ok(packet) => self.on_message(packet),
                    Err(err) => self.lost(CloseReason::ParseError(err.to_string())),
                },
                Poll::Ready(Ok(Incoming::Binary(bytes))) => self.on_message(Packet::Binary(bytes)),
                Poll::Ready(Ok(Incoming::Pong)) => {}
                Poll::Ready(Err(reason)) => self.lost(reason),
                Poll::Pending => return,
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

    fn on_message(&mut self, packet: Packet) {
        let session = &self.entry.session;
        match &mut self.phase {
            Phase::Probing { probed, .. } => match packet {
                Packet::Ping(data) if &*data == "probe" && !*probed => {
                    if session.start_upgrade() {
                        encode_websocket(
                            self.output.buffer(),
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
        encode_websocket(self.output.buffer(), Message::Close(None));
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
                self.output.drain(queue, cx);
            }
            Phase::Done => {}
        }
    }

    /// The session has closed: deliver what was queued before (unless the client is gone or
    /// not reading), then a close frame saying why.
    fn finish(&mut self) {
        let queue = match &mut self.phase {
            Phase::Open(queue) => Some(queue),
            _ => None,
        };
        self.output
            .close(&self.entry.session, queue, wsio::close_code);
        self.phase = Phase::Done;
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
        // The session's first line (its queue), read now: a wake to write reaches it only after
        // the client's input, and at thousands of connections both are misses that can overlap.
        std::hint::black_box(this.entry.session.touch());
        if let Some(chunk) = this.output.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if matches!(this.phase, Phase::Done) {
            return Poll::Ready(None);
        }
        this.read(cx);
        this.write(cx);
        if this.output.is_empty() && !matches!(this.phase, Phase::Done) {
            // About to wait (a poll that finds frames is followed by another at once).
            if this.close_watch.watch(&this.entry.session, cx.waker()) {
                this.write(cx);
            }
        }
        match this.output.next_chunk() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None if matches!(this.phase, Phase::Done) => Poll::Ready(None),
            None => {
                // Keep no write buffer while there is nothing to write.
                this.output.release();
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

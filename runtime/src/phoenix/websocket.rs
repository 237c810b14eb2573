//! `<path>/websocket`: a phoenix.js socket over one WebSocket.
//!
//! As with Engine.IO, a connection has no task of its own: its response body is polled by
//! actix-http's dispatcher for bytes to write, and in that same poll it reads the client's
//! frames and drains the socket's queue.

use std::convert::Infallible;
use std::pin::Pin;

use std::task::{Context, Poll};

use actix_http::ws::{self, CloseCode};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::message::{Message, Vsn};
use super::server::{Entry, OpenError, PhoenixHandler, PhoenixServer, Subprotocols, subprotocols};
use super::socket::Transport;
use crate::engineio::wsio::{self, Incoming, MessageReader, Output};
use crate::engineio::{CloseReason, Reader, tcp};

/// Accepts a WebSocket: the handshake checked, the socket opened (the connect hook says
/// yes), then `101 Switching Protocols` with the connection as its body.
pub(crate) async fn open<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match accept(server, req, payload).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(%err, "phoenix websocket refused");
            err.response()
        }
    }
}

async fn accept<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OpenError> {
    if req.method() != actix_web::http::Method::GET {
        return Err(OpenError::BadRequest);
    }
    let Subprotocols {
        offered,
        phoenix,
        token,
    } = subprotocols(req);
    if offered && !phoenix {
        return Err(OpenError::UnsupportedSubprotocol);
    }
    let token = token?;
    let mut response = ws::handshake(req.head()).map_err(|_| OpenError::BadRequest)?;
    let entry = server.open(req, Transport::WebSocket, token).await?;
    let session = entry.socket.session();
    if let Some(socket) = tcp::socket_of(req) {
        session.set_tcp(socket);
    }
    let queue = session.try_reader();
    if phoenix {
        response.insert_header((SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix")));
    }
    let connection = Connection {
        server: server.clone(),
        reader: MessageReader::new(server.config().max_payload),
        output: Output::default(),
        entry,
        payload,
        queue,
        done: false,
    };
    response
        .message_body(BoxBody::new(connection))
        .map(HttpResponse::from)
        .map_err(|_| OpenError::ServerError)
}

/// One WebSocket connection, as the body of its `101` response.
struct Connection<H: PhoenixHandler> {
    server: PhoenixServer<H>,
    entry: Entry<H::State>,
    payload: web::Payload,
    reader: MessageReader,
    output: Output,
    /// The socket's queue (nobody else ever reads it).
    queue: Option<Reader>,
    /// The close frame is written; the body ends.
    done: bool,
}

impl<H: PhoenixHandler> Connection<H> {
    /// Reads what the client sent; every complete message is handled in order.
    fn read(&mut self, cx: &mut Context<'_>) {
        let socket = self.entry.socket.clone();
        while !self.done && !socket.is_closed() {
            let message = match self
                .reader
                .poll_next(&mut self.payload, cx, &mut self.output)
            {
                Poll::Ready(Ok(incoming)) => {
                    socket.touch();
                    decode(socket.vsn(), incoming)
                }
                Poll::Ready(Err(reason)) => Err(reason),
                Poll::Pending => return,
            };
            match message {
                Ok(message) => self.server.on_message(&self.entry, message),
                Err(reason) => {
                    tracing::debug!(id = %socket.id(), %reason, "phoenix socket closing");
                    socket.close(reason);
                }
            }
        }
    }

    /// Encodes queued frames; once the socket has closed, what is left and the close frame.
    fn write(&mut self, cx: &mut Context<'_>) {
        if self.done {
            return;
        }
        let Some(queue) = self.queue.as_mut() else {
            return;
        };
        if self.entry.socket.is_closed() {
            let reason = self
                .entry
                .socket
                .close_reason()
                .cloned()
                .unwrap_or(CloseReason::TransportClose);
            let out = self.output.buffer();
            if reason.delivers_queued() {
                while let Some(frame) = queue.try_recv() {
                    wsio::write_frame(out, frame);
                }
            }
            wsio::write_close(out, &reason, close_code(&reason));
            self.done = true;
        } else {
            self.output.drain(queue, cx);
        }
    }
}

/// A client frame as a Phoenix message.
fn decode(vsn: Vsn, incoming: Incoming) -> Result<Message, CloseReason> {
    let decoded = match incoming {
        Incoming::Text(text) => Message::decode_text(vsn, &text),
        Incoming::Binary(_) if vsn == Vsn::V1 => {
            return Err(CloseReason::ProtocolViolation(
                "binary frame from a vsn 1.0.0 client",
            ));
        }
        Incoming::Binary(bytes) => Message::decode_binary(&bytes),
    };
    decoded.map_err(|err| CloseReason::ParseError(err.to_string()))
}

/// The close code for `reason`, as a Phoenix server closes: never 1000 when the client should
/// come back (phoenix.js up to 1.8.12 does not reconnect after 1000), so a closure by the
/// server or the application and an idle timeout are 1001.
fn close_code(reason: &CloseReason) -> CloseCode {
    match reason {
        CloseReason::ForcedClose | CloseReason::PingTimeout => CloseCode::Away,
        other => wsio::close_code(other),
    }
}

impl<H: PhoenixHandler> MessageBody for Connection<H> {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.output.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        // Registered before the reads below, so a close in between wakes this poll again.
        this.entry.socket.session().close_waker.register(cx.waker());
        this.read(cx);
        this.write(cx);
        match this.output.next_chunk() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None if this.done => Poll::Ready(None),
            None => {
                this.output.release();
                Poll::Pending
            }
        }
    }
}

impl<H: PhoenixHandler> Drop for Connection<H> {
    /// The dispatcher drops the body when the connection is gone: the socket ends with it.
    fn drop(&mut self) {
        self.entry.socket.close(CloseReason::TransportError);
    }
}

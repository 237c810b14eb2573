//! One WebSocket connection of an endpoint, as the body of its `101 Switching Protocols`
//! response. As with Engine.IO, a connection has no task of its own: actix-http's dispatcher
//! polls the body for bytes to write, and in that same poll it reads the client's frames and
//! drains the socket's queue. What the frames mean is the protocol's business ([`Protocol`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::ws::{CloseCode, Message};
use actix_web::body::{BodySize, MessageBody};
use actix_web::web;
use bytes::Bytes;

use crate::engineio::wsio::{self, Incoming, MessageReader, Output};
use crate::engineio::{CloseReason, CloseWatch, Reader, Session};

/// What one protocol does with a connection's frames.
pub(crate) trait Protocol: Unpin + 'static {
    /// The socket's session: its queue and its close.
    fn session(&self) -> &Arc<Session>;

    /// A whole text or binary message from the client, in order. Bad input closes the
    /// session with a reason.
    fn on_message(&mut self, message: Incoming);

    /// The client was heard from (any frame, a pong included).
    fn heard(&self);

    /// Whether a WebSocket ping should go out now (asking clears the request).
    fn take_ping(&self) -> bool {
        false
    }

    /// Whether [`Protocol::take_ping`] would say yes, without clearing anything.
    fn ping_due(&self) -> bool {
        false
    }

    /// The close code that says `reason`.
    fn close_code(&self, reason: &CloseReason) -> CloseCode {
        wsio::close_code(reason)
    }
}

/// A connection carrying `protocol` over the request's `payload`, messages of at most `max`
/// bytes.
pub(crate) fn connection<P: Protocol>(
    protocol: P,
    payload: web::Payload,
    max: usize,
) -> Connection<P> {
    let queue = protocol.session().try_reader();
    Connection {
        protocol,
        payload,
        reader: MessageReader::new(max),
        output: Output::default(),
        queue,
        done: false,
        close_watch: CloseWatch::default(),
    }
}

/// One WebSocket connection.
pub(crate) struct Connection<P: Protocol> {
    protocol: P,
    payload: web::Payload,
    reader: MessageReader,
    output: Output,
    /// The socket's queue (nobody else ever reads it).
    queue: Option<Reader>,
    /// The close frame is written; the body ends.
    done: bool,
    /// What this body registered with the session's close (a ping request takes it too).
    close_watch: CloseWatch,
}

impl<P: Protocol> Connection<P> {
    /// Reads what the client sent; every complete message is handled in order.
    fn read(&mut self, cx: &mut Context<'_>) {
        while !self.done && !self.protocol.session().is_closed() {
            match self
                .reader
                .poll_next(&mut self.payload, cx, &mut self.output)
            {
                Poll::Ready(Ok(Incoming::Pong)) => self.protocol.heard(),
                Poll::Ready(Ok(message)) => {
                    self.protocol.heard();
                    self.protocol.on_message(message);
                }
                Poll::Ready(Err(reason)) => {
                    tracing::debug!(id = %self.protocol.session().sid(), %reason, "connection closing");
                    self.protocol.session().close(reason);
                }
                Poll::Pending => return,
            }
        }
    }

    /// Encodes queued frames (and a ping when one is due); once the socket has closed, what
    /// is left and the close frame.
    fn write(&mut self, cx: &mut Context<'_>) {
        if self.done {
            return;
        }
        let Some(queue) = self.queue.as_mut() else {
            return;
        };
        let session = self.protocol.session();
        if session.is_closed() {
            let protocol = &self.protocol;
            self.output
                .close(session, Some(queue), |reason| protocol.close_code(reason));
            self.done = true;
        } else {
            if self.protocol.take_ping() {
                // The request woke this body through the close's registration.
                self.close_watch.taken();
                crate::engineio::encode_websocket(
                    self.output.buffer(),
                    Message::Ping(Bytes::new()),
                );
            }
            self.output.drain(queue, cx);
        }
    }
}

impl<P: Protocol> MessageBody for Connection<P> {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        // As Engine.IO's: the session's queue line, read ahead of the client's input.
        std::hint::black_box(this.protocol.session().touch());
        if let Some(chunk) = this.output.next_chunk() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        this.read(cx);
        this.write(cx);
        if this.output.is_empty() && !this.done {
            // About to wait (a poll that finds frames is followed by another at once).
            if this.close_watch.watch(this.protocol.session(), cx.waker())
                || this.protocol.ping_due()
            {
                this.write(cx);
            }
        }
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

impl<P: Protocol> Drop for Connection<P> {
    /// The dispatcher drops the body when the connection is gone: the socket ends with it.
    fn drop(&mut self) {
        self.protocol.session().close(CloseReason::TransportError);
    }
}

//! One plain WebSocket connection: its queue, its liveness, the channel it is bound to.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::message::ServerMessage;
use crate::endpoint::sockets::{Clock, Liveness, Watched};
use crate::engineio::{CloseReason, Frame, SendError, Session, Sid};
use crate::request::RequestInfo;

/// One connection of a plain WebSocket client.
#[derive(Debug)]
pub struct PlainSocket {
    session: Arc<Session>,
    /// The channel of `<path>/<channel>`, joined as the socket opens.
    bound: Option<Box<str>>,
    clock: Clock,
    /// The watcher asks for a ping; the connection sends it.
    ping: AtomicBool,
    interval_ms: u64,
    timeout_ms: u64,
}

impl PlainSocket {
    pub(crate) fn new(
        session: Arc<Session>,
        bound: Option<String>,
        interval_ms: u64,
        timeout_ms: u64,
    ) -> Self {
        PlainSocket {
            session,
            bound: bound.map(String::into_boxed_str),
            clock: Clock::default(),
            ping: AtomicBool::new(false),
            interval_ms,
            timeout_ms,
        }
    }

    /// Its id: 20 random URL-safe characters.
    pub fn id(&self) -> Sid {
        self.session.sid()
    }

    /// The channel of its path (`/ws/rooms/42` is bound to `rooms/42`), if any.
    pub fn bound(&self) -> Option<&str> {
        self.bound.as_deref()
    }

    /// The opening request: headers, query string, address.
    pub fn request(&self) -> &Arc<RequestInfo> {
        self.session.handshake()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Queues `message`.
    ///
    /// # Errors
    /// [`SendError`] when the socket is closed or its queue is full (it is then closing).
    pub fn send(&self, message: &ServerMessage<'_>) -> Result<(), SendError> {
        self.session.send(Frame::Text(message.encode().into()))
    }

    /// Queues an encoded frame.
    ///
    /// # Errors
    /// [`SendError`] when the socket is closed or its queue is full (it is then closing).
    pub fn send_frame(&self, frame: Frame) -> Result<(), SendError> {
        self.session.send(frame)
    }

    /// Closes it; what was queued before still goes out (unless the client is gone or too
    /// slow), then the close frame.
    pub fn close(&self, reason: CloseReason) {
        self.session.close(reason);
    }

    /// Whether it is closed.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    pub(crate) fn heard(&self) {
        self.clock.heard();
    }

    pub(crate) fn take_ping(&self) -> bool {
        // Looked at on every poll: a plain load first, the swap only when there is one.
        self.ping_due() && self.ping.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn ping_due(&self) -> bool {
        self.ping.load(Ordering::Acquire)
    }
}

/// Silent for the ping interval: pinged; silent a ping timeout more: closed.
impl Watched for PlainSocket {
    fn session(&self) -> &Arc<Session> {
        &self.session
    }

    fn liveness(&self, now: u64) -> Liveness {
        let silent = self.clock.silent(now);
        if silent > self.interval_ms.saturating_add(self.timeout_ms) {
            Liveness::Dead
        } else if silent > self.interval_ms && !self.clock.pinged_since_heard() {
            Liveness::Ping
        } else {
            Liveness::Alive
        }
    }

    fn request_ping(&self) {
        self.clock.pinged();
        self.ping.store(true, Ordering::Release);
        self.session.close_waker.wake();
    }
}

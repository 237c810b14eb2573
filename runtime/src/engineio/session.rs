//! One Engine.IO session: its outbound queue, its current transport, its heartbeat state and
//! how it ends. Transports and the layer above share it through an `Arc`.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use futures_util::task::AtomicWaker;
use tokio::sync::{Mutex, Notify};

use super::error::CloseReason;
use super::outbox::{self, Outbox};
use super::packet::Frame;
use super::sid::Sid;
use crate::flag::Flag;

/// The transport a session currently uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }
}

/// What the client sent when it opened the session: headers, query string and address.
pub type Handshake = crate::request::RequestInfo;

/// Refused sends: the session is gone, or its queue is full (and it is now closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session has closed.
    #[error("session closed")]
    Closed,
    /// The client did not keep up; the session is being closed.
    #[error("outbound queue full")]
    QueueFull,
}

/// The sessions that have closed and are not yet cleaned up, for the engine's heartbeat task
/// (which removes them from the table and tells the handler).
#[derive(Debug, Default)]
pub(crate) struct Closing {
    sids: std::sync::Mutex<Vec<Sid>>,
    /// Wakes the heartbeat task.
    pub(crate) wake: Notify,
}

impl Closing {
    fn push(&self, sid: Sid) {
        self.sids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(sid);
        self.wake.notify_one();
    }

    /// Every session closed since the last call.
    pub(crate) fn take(&self) -> Vec<Sid> {
        std::mem::take(
            &mut *self
                .sids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }
}

/// An Engine.IO session.
#[derive(Debug)]
pub struct Session {
    sid: Sid,
    handshake: Arc<Handshake>,
    outbox: Arc<Outbox>,
    /// The receiving end of the outbound queue, held by whichever transport is writing: a
    /// pending poll, or the WebSocket connection. `try_lock` failing on a poll means
    /// overlapping polls.
    pub(crate) rx: Arc<Mutex<outbox::Receiver>>,
    transport: AtomicU8,
    upgrading: AtomicBool,
    /// Wakes a pending poll when an upgrade starts, so it answers with a noop.
    pub(crate) poll_wake: Notify,
    /// Set while a POST is being read; a second one at once is a protocol violation.
    pub(crate) posting: AtomicBool,
    /// Set when a pong arrives; the heartbeat clears it before each ping.
    ponged: AtomicBool,
    /// Set once, by the first `close`; a plain flag so the hot path (`send`) reads one atomic.
    closed: Flag,
    /// Wakes the WebSocket connection (polled by actix's dispatcher, not a task) on close.
    pub(crate) close_waker: AtomicWaker,
    reason: OnceLock<CloseReason>,
    /// Set when a poll has carried the close packet to the client.
    close_delivered: Flag,
    /// Where the session reports its close to the engine.
    closing: Arc<Closing>,
}

impl Session {
    pub(crate) fn new(
        handshake: Arc<Handshake>,
        transport: TransportKind,
        queue: usize,
        closing: Arc<Closing>,
    ) -> Self {
        let (outbox, rx) = Outbox::new(queue);
        Session {
            sid: Sid::random(),
            handshake,
            outbox,
            rx: Arc::new(Mutex::new(rx)),
            transport: AtomicU8::new(transport as u8),
            upgrading: AtomicBool::new(false),
            poll_wake: Notify::new(),
            posting: AtomicBool::new(false),
            ponged: AtomicBool::new(false),
            closed: Flag::default(),
            close_waker: AtomicWaker::new(),
            reason: OnceLock::new(),
            close_delivered: Flag::default(),
            closing,
        }
    }

    /// The session id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// What the client sent when it opened the session.
    pub fn handshake(&self) -> &Arc<Handshake> {
        &self.handshake
    }

    /// The transport in use now.
    pub fn transport(&self) -> TransportKind {
        if self.transport.load(Ordering::Acquire) == TransportKind::WebSocket as u8 {
            TransportKind::WebSocket
        } else {
            TransportKind::Polling
        }
    }

    pub(crate) fn set_websocket(&self) {
        self.transport
            .store(TransportKind::WebSocket as u8, Ordering::Release);
        self.upgrading.store(false, Ordering::Release);
    }

    /// Marks the start of an upgrade; returns false when one is already under way.
    pub(crate) fn start_upgrade(&self) -> bool {
        let started = !self.upgrading.swap(true, Ordering::AcqRel);
        self.poll_wake.notify_waiters();
        started
    }

    pub(crate) fn is_upgrading(&self) -> bool {
        self.upgrading.load(Ordering::Acquire)
    }

    /// Queues one encoded frame for the client.
    ///
    /// Never waits: when the client lets `max_queued_frames` frames pile up, the session is
    /// closed with [`CloseReason::QueueFull`] and the frame is refused.
    ///
    /// # Errors
    /// [`SendError`] when the session is closed or its queue is full.
    pub fn send(&self, frame: Frame) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        self.outbox
            .push(frame)
            .map_err(|outbox::Full| self.refuse())
    }

    /// Queues several frames that belong together (a binary packet and its attachments): all of
    /// them, or none when there is no room for all.
    ///
    /// # Errors
    /// [`SendError`] when the session is closed or its queue has no room for all of them.
    pub fn send_all(&self, frames: impl ExactSizeIterator<Item = Frame>) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        self.outbox
            .push_all(frames)
            .map_err(|outbox::Full| self.refuse())
    }

    /// The queue is full: the client is not keeping up, and the session closes.
    fn refuse(&self) -> SendError {
        self.close(CloseReason::QueueFull);
        SendError::QueueFull
    }

    pub(crate) fn pong(&self) {
        self.ponged.store(true, Ordering::Release);
    }

    /// Forgets earlier pongs (before a ping is sent).
    pub(crate) fn clear_pong(&self) {
        self.ponged.store(false, Ordering::Release);
    }

    /// Whether a pong has arrived since the last [`Session::clear_pong`].
    pub(crate) fn has_ponged(&self) -> bool {
        self.ponged.load(Ordering::Acquire)
    }

    /// Closes the session. The first reason given wins; later calls do nothing.
    ///
    /// What was queued before is still written (WebSocket) or returned by the pending poll,
    /// followed by a close packet.
    pub fn close(&self, reason: CloseReason) {
        if self.reason.set(reason).is_ok() {
            // Queued for clean-up before anyone can see the session closed: the heartbeat
            // task stops watching a session once it sees it closed, and must find it there.
            self.closing.push(self.sid);
            self.closed.set();
            self.close_waker.wake();
        }
    }

    /// Whether the session has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_set()
    }

    pub(crate) fn mark_close_delivered(&self) {
        self.close_delivered.set();
    }

    /// Resolves once a poll has carried the close packet to the client.
    pub(crate) async fn close_delivered(&self) {
        self.close_delivered.wait().await;
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.reason.get()
    }

    /// Resolves when the session closes.
    pub async fn closed(&self) {
        self.closed.wait().await;
    }
}

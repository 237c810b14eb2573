//! One Engine.IO session: its outbound queue, its current transport, its heartbeat state and
//! how it ends. Transports and the layer above share it through an `Arc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use super::error::CloseReason;
use super::outbox::{self, Limits, Outbox};
use super::packet::Frame;
use super::sid::{NoRandomness, Sid};
use crate::sync::lock;

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
        lock(&self.sids).push(sid);
        self.wake.notify_one();
    }

    /// Every session closed since the last call.
    pub(crate) fn take(&self) -> Vec<Sid> {
        std::mem::take(&mut *lock(&self.sids))
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.sids).is_empty()
    }
}

/// An Engine.IO session.
///
/// A long-lived connection keeps one, so it is one allocation: the queue is inside, and the
/// session's yes/no states share one atomic byte and one [`Notify`] for whoever waits on them.
///
/// Laid out by hand (`repr(C)`), for the broadcast and the writer: the queue and the state
/// byte (which a push reads, to refuse a closed session) share the first cache line, so a
/// delivery reads one line of the session; the close waker, which the writer registers before
/// each wait, starts the second, with the id and the handshake. Everything else, which
/// neither touches, comes after.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Session {
    outbox: Outbox,
    /// The bits below.
    state: AtomicU8,
    /// Wakes the WebSocket connection (polled by actix's dispatcher, not a task) on close.
    pub(crate) close_waker: AtomicWaker,
    sid: Sid,
    handshake: Arc<Handshake>,
    /// Wakes tasks waiting on `state`: the close, the close delivered, an upgrade starting,
    /// the queue's reader letting go.
    changed: Notify,
    reason: OnceLock<CloseReason>,
    /// The TCP connection of its WebSocket, when the server keeps handles on connections
    /// (`engineio::on_connect`): shut down shortly after the close if it is still open.
    tcp: OnceLock<Weak<super::tcp::Ending>>,
    /// Where the session reports its close to the engine.
    closing: Arc<Closing>,
}

/// The session is on WebSocket (else polling).
const WEBSOCKET: u8 = 1;
/// An upgrade to WebSocket is under way.
const UPGRADING: u8 = 1 << 1;
/// A POST is being read; a second one at once is a protocol violation.
const POSTING: u8 = 1 << 2;
/// A pong arrived; the heartbeat clears it before each ping.
const PONGED: u8 = 1 << 3;
/// Set once, by the first `close`.
const CLOSED: u8 = 1 << 4;
/// A poll has carried the close packet to the client.
const CLOSE_DELIVERED: u8 = 1 << 5;
/// A transport holds the queue's reading end ([`Reader`]): a pending poll, or the WebSocket.
/// Failing to take it on a poll means overlapping polls.
const READING: u8 = 1 << 6;

/// The right to take frames out of a session's queue, held by one transport at a time; let go
/// when dropped.
#[derive(Debug)]
pub(crate) struct Reader(Arc<Session>);

impl Reader {
    /// The next frame, if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Frame> {
        self.0.outbox.try_recv()
    }

    /// Waits for the next frame.
    pub(crate) async fn recv(&mut self) -> Frame {
        self.0.outbox.recv().await
    }

    /// Hands queued frames to `each`, as [`Outbox::poll_drain`].
    pub(crate) fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        each: impl FnMut(outbox::Taken<'_>, usize) -> bool,
    ) -> Poll<bool> {
        self.0.outbox.poll_drain(cx, each)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.clear(READING);
        self.0.changed.notify_waiters();
    }
}

impl Session {
    pub(crate) fn new(
        handshake: Arc<Handshake>,
        transport: TransportKind,
        queue: Limits,
        closing: Arc<Closing>,
    ) -> Result<Self, NoRandomness> {
        let state = match transport {
            TransportKind::WebSocket => WEBSOCKET,
            TransportKind::Polling => 0,
        };
        Ok(Session {
            outbox: Outbox::new(queue),
            state: AtomicU8::new(state),
            close_waker: AtomicWaker::new(),
            sid: Sid::random()?,
            handshake,
            changed: Notify::new(),
            reason: OnceLock::new(),
            tcp: OnceLock::new(),
            closing,
        })
    }

    fn is(&self, bit: u8) -> bool {
        self.state.load(Ordering::Acquire) & bit != 0
    }

    /// Sets `bit`; true when it was clear.
    fn set(&self, bit: u8) -> bool {
        self.state.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    fn clear(&self, bit: u8) {
        self.state.fetch_and(!bit, Ordering::AcqRel);
    }

    /// Sets `bit` and wakes whoever waits on the state; true when it was clear.
    fn announce(&self, bit: u8) -> bool {
        let was_clear = self.set(bit);
        self.changed.notify_waiters();
        was_clear
    }

    /// What `ready` gives, once it gives something: it looks again on every change of state.
    async fn wait_for<T>(&self, mut ready: impl FnMut() -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Register before looking, so a change in between is not missed.
            notified.as_mut().enable();
            if let Some(value) = ready() {
                return value;
            }
            notified.await;
        }
    }

    /// Resolves once one of `bits` is set.
    async fn until(&self, bits: u8) {
        self.wait_for(|| self.is(bits).then_some(())).await;
    }

    /// The queue's reading end, unless a transport holds it.
    pub(crate) fn try_reader(self: &Arc<Self>) -> Option<Reader> {
        self.set(READING).then(|| Reader(self.clone()))
    }

    /// The queue's reading end, once the transport holding it lets go.
    pub(crate) async fn reader(self: Arc<Self>) -> Reader {
        self.wait_for(|| self.try_reader()).await
    }

    /// A WebSocket session on its own, for the tests of the layers above.
    #[cfg(test)]
    pub(crate) fn detached(queue: usize) -> Arc<Session> {
        let session = Session::new(
            Arc::default(),
            TransportKind::WebSocket,
            Limits {
                frames: queue,
                bytes: usize::MAX,
            },
            Arc::default(),
        );
        Arc::new(session.unwrap_or_else(|err| panic!("{err}")))
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
        if self.is(WEBSOCKET) {
            TransportKind::WebSocket
        } else {
            TransportKind::Polling
        }
    }

    pub(crate) fn set_websocket(&self) {
        self.set(WEBSOCKET);
        self.clear(UPGRADING);
    }

    /// Marks the start of an upgrade (which wakes a pending poll, to answer with a noop);
    /// returns false when one is already under way.
    pub(crate) fn start_upgrade(&self) -> bool {
        self.announce(UPGRADING)
    }

    pub(crate) fn is_upgrading(&self) -> bool {
        self.is(UPGRADING)
    }

    /// Resolves once an upgrade has started.
    pub(crate) async fn upgrade_started(&self) {
        self.until(UPGRADING).await;
    }

    /// Marks a POST as being read; false when one already is.
    pub(crate) fn start_posting(&self) -> bool {
        self.set(POSTING)
    }

    pub(crate) fn end_posting(&self) {
        self.clear(POSTING);
    }

    /// Queues one encoded frame for the client.
    ///
    /// Never waits: when the client lets `max_queued_frames` frames or `max_queued_bytes` bytes
    /// pile up, the session is closed with [`CloseReason::QueueFull`] and the frame is refused.
    ///
    /// # Errors
    /// [`SendError`] when the session is closed or its queue is full.
    pub fn send(&self, frame: Frame) -> Result<(), SendError> {
        self.enqueue(|outbox| outbox.push(frame))
    }

    /// Queues a channel event's frame: as [`Session::send`], but a broadcast's frame (see
    /// `chunk`) that follows the channel's previous one in the queue is taken in place.
    pub(crate) fn send_placed(&self, placed: &super::Placed) -> Result<(), SendError> {
        self.enqueue(|outbox| match placed {
            super::Placed::Broadcast(broadcast) => outbox.push_broadcast(broadcast),
            super::Placed::Frame(frame) => outbox.push(frame.clone()),
        })
    }

    /// Queues several frames that belong together (a binary packet and its attachments): all of
    /// them, or none when there is no room for all.
    ///
    /// # Errors
    /// [`SendError`] when the session is closed or its queue has no room for all of them.
    pub fn send_all(&self, frames: impl ExactSizeIterator<Item = Frame>) -> Result<(), SendError> {
        self.enqueue(|outbox| outbox.push_all(frames))
    }

    /// Runs `push` on the queue of an open session; a full queue closes the session.
    fn enqueue(
        &self,
        push: impl FnOnce(&Outbox) -> Result<(), outbox::Full>,
    ) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        push(&self.outbox).map_err(|outbox::Full| self.refuse())
    }

    /// The queue is full: the client is not keeping up, and the session closes.
    fn refuse(&self) -> SendError {
        self.close(CloseReason::QueueFull);
        SendError::QueueFull
    }

    pub(crate) fn pong(&self) {
        self.set(PONGED);
    }

    /// Forgets earlier pongs (before a ping is sent).
    pub(crate) fn clear_pong(&self) {
        self.clear(PONGED);
    }

    /// Whether a pong has arrived since the last [`Session::clear_pong`].
    pub(crate) fn has_ponged(&self) -> bool {
        self.is(PONGED)
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
            self.announce(CLOSED);
            self.close_waker.wake();
        }
    }

    /// Whether the session has been closed.
    pub fn is_closed(&self) -> bool {
        self.is(CLOSED)
    }

    /// Reads what [`Session::send`] reads and writes, and nothing else: a broadcast calls it a
    /// few members ahead, so that their lines are fetched side by side instead of one after
    /// another behind each queue's lock (an atomic instruction waits for every load before
    /// it). Returns whether the session is closed.
    pub(crate) fn touch(&self) -> bool {
        std::hint::black_box(self.outbox.touch());
        self.is(CLOSED)
    }

    /// Registers `waker` to be woken by the close (or by a plain socket's ping request), then
    /// says whether the session is closed: a close that came before the registration wakes
    /// nobody, so the connection's body registers this way just before it waits.
    pub(crate) fn watch_close(&self, waker: &Waker) -> bool {
        self.close_waker.register(waker);
        self.is_closed()
    }

    pub(crate) fn mark_close_delivered(&self) {
        self.announce(CLOSE_DELIVERED);
    }

    /// Resolves once a poll has carried the close packet to the client.
    pub(crate) async fn close_delivered(&self) {
        self.until(CLOSE_DELIVERED).await;
    }

    /// Whether requests for this session are answered "unknown sid": it has closed, and it is
    /// not a polling session closed by the server whose close packet no poll has carried yet.
    pub(crate) fn is_gone(&self) -> bool {
        self.is_closed()
            && !(self.transport() == TransportKind::Polling
                && self
                    .close_reason()
                    .is_some_and(CloseReason::awaits_delivery)
                && !self.is(CLOSE_DELIVERED))
    }

    /// Binds the session to the TCP connection of its WebSocket.
    pub(crate) fn set_tcp(&self, socket: Weak<super::tcp::Ending>) {
        let _ = self.tcp.set(socket);
    }

    /// The TCP connection of the session's WebSocket, when it has a handle on it.
    pub(crate) fn tcp(&self) -> Option<&Weak<super::tcp::Ending>> {
        self.tcp.get()
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.reason.get()
    }

    /// Resolves when the session closes.
    pub async fn closed(&self) {
        self.until(CLOSED).await;
    }
}

/// What a WebSocket's body last registered with its session's close ([`Session::watch_close`]),
/// so that it registers again only when that registration may be gone.
///
/// Only two things take the registration, and each says so first: the close (the session is
/// then closed) and a plain socket's ping request (its ping flag is then set, and the body
/// that takes the flag calls [`CloseWatch::taken`]). Until then, registering the same task's
/// waker again would change nothing, and it costs two atomic instructions on the session's
/// second cache line, once per write.
#[derive(Debug, Default)]
pub(crate) struct CloseWatch(Option<Waker>);

impl CloseWatch {
    /// As [`Session::watch_close`], skipping the registration while the last one stands.
    pub(crate) fn watch(&mut self, session: &Session, waker: &Waker) -> bool {
        if self
            .0
            .as_ref()
            .is_some_and(|registered| registered.will_wake(waker))
        {
            return session.is_closed();
        }
        self.0 = Some(waker.clone());
        session.watch_close(waker)
    }

    /// The registration was taken by a ping request.
    pub(crate) fn taken(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod layout {
    use super::*;

    #[test]
    fn a_delivery_reads_one_line_and_a_writer_two() {
        assert_eq!(std::mem::offset_of!(Session, outbox), 0);
        assert!(std::mem::size_of::<Outbox>() < 64);
        assert!(std::mem::offset_of!(Session, state) < 64);
        let waker = std::mem::offset_of!(Session, close_waker);
        assert!(waker >= 64 && waker + std::mem::size_of::<AtomicWaker>() <= 128);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_reader_at_a_time_and_the_next_one_gets_the_queue_when_it_is_let_go() {
        let session = Session::detached(8);
        let first = session.try_reader();
        assert!(first.is_some());
        assert!(session.try_reader().is_none(), "a second reader at once");
        let waiting = tokio::spawn(session.clone().reader());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the queue is still held");
        assert!(session.send(Frame::message("hi")).is_ok());
        drop(first);
        let mut second = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap_or_else(|_| panic!("the waiting reader never got the queue"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.try_recv(), Some(Frame::message("hi")));
    }

    #[tokio::test]
    async fn states_are_independent_and_the_close_wakes_its_waiters() {
        let session = Session::detached(8);
        assert_eq!(session.transport(), TransportKind::WebSocket);
        assert!(session.start_posting());
        assert!(!session.start_posting());
        session.pong();
        assert!(session.has_ponged() && !session.is_closed() && !session.is_upgrading());
        session.end_posting();
        session.clear_pong();
        assert!(session.start_posting() && !session.has_ponged());
        let closed = tokio::spawn({
            let session = session.clone();
            async move { session.closed().await }
        });
        tokio::task::yield_now().await;
        session.close(CloseReason::ServerShutdown);
        session.close(CloseReason::PingTimeout);
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .unwrap_or_else(|_| panic!("closed() never resolved"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(session.is_closed());
        assert_eq!(session.close_reason(), Some(&CloseReason::ServerShutdown));
        assert_eq!(session.send(Frame::message("late")), Err(SendError::Closed));
    }
}

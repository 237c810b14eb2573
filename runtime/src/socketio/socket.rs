//! A client's connection to one namespace: its event handlers, acks both ways, rooms and
//! disconnect.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::error::{AckError, EmitError};
use super::namespace::Namespace;
use super::packet::Packet;
use crate::compact;
use crate::engineio::{CloseReason, Handshake, Session, Sid, TransportKind};
use crate::payload::Payload;
use crate::sync::lock;

/// A shared handle to a [`Socket`]; what every handler receives.
pub type SocketRef = Arc<Socket>;

type EventHandler = Arc<dyn Fn(SocketRef, Payload, Option<AckSender>) + Send + Sync>;
type DisconnectHandler = Box<dyn FnOnce(SocketRef, &DisconnectReason) + Send>;

/// Hears every event a socket has no named handler for, and its disconnect: what
/// [`Socket::on_fallback`] registers, and how a protocol built on sockets (the channel
/// protocol) listens with one object it already has, not two closures allocated per socket.
pub(crate) trait Listener: Send + Sync + 'static {
    /// An event without a handler of its own.
    fn on_event(
        self: Arc<Self>,
        socket: SocketRef,
        event: &str,
        payload: Payload,
        ack: Option<AckSender>,
    );

    /// The socket left its namespace (after the handlers of [`Socket::on_disconnect`]).
    fn on_disconnect(self: Arc<Self>, _socket: SocketRef, _reason: &DisconnectReason) {}
}

/// A fallback closure as a [`Listener`].
struct FallbackFn<F>(F);

impl<F> Listener for FallbackFn<F>
where
    F: Fn(SocketRef, &str, Payload, Option<AckSender>) + Send + Sync + 'static,
{
    fn on_event(
        self: Arc<Self>,
        socket: SocketRef,
        event: &str,
        payload: Payload,
        ack: Option<AckSender>,
    ) {
        (self.0)(socket, event, payload, ack);
    }
}

use super::packet::RESERVED_EVENTS;

/// Why a socket left its namespace; the texts are the official server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client left the namespace (`socket.disconnect()` on the client).
    #[error("client namespace disconnect")]
    ClientNamespaceDisconnect,
    /// The server disconnected the socket ([`Socket::disconnect`]).
    #[error("server namespace disconnect")]
    ServerNamespaceDisconnect,
    /// The client closed the connection.
    #[error("transport close")]
    TransportClose,
    /// The connection failed.
    #[error("transport error")]
    TransportError,
    /// The client stopped answering pings.
    #[error("ping timeout")]
    PingTimeout,
    /// The client sent something invalid.
    #[error("parse error")]
    ParseError,
    /// The client did not keep up with what was sent to it.
    #[error("slow consumer")]
    SlowConsumer,
    /// The server is shutting down.
    #[error("server shutting down")]
    ServerShutdown,
    /// The connection was closed by the server.
    #[error("forced close")]
    ForcedClose,
}

impl DisconnectReason {
    /// Whether a client that went for this reason may come back to its state (connection
    /// state recovery): the connection was lost or closed under it, not left on purpose,
    /// kicked, or cut for misbehaving.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportClose
                | DisconnectReason::TransportError
                | DisconnectReason::PingTimeout
                | DisconnectReason::ServerShutdown
                | DisconnectReason::ForcedClose
        )
    }
}

impl From<&CloseReason> for DisconnectReason {
    fn from(reason: &CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError(_)
            | CloseReason::InvalidUtf8
            | CloseReason::ProtocolViolation(_)
            | CloseReason::PayloadTooLarge => DisconnectReason::ParseError,
            CloseReason::QueueFull => DisconnectReason::SlowConsumer,
            CloseReason::ServerShutdown => DisconnectReason::ServerShutdown,
            CloseReason::ForcedClose => DisconnectReason::ForcedClose,
            _ => DisconnectReason::TransportError,
        }
    }
}

/// Answers an event that asked for an ack; dropping it unanswered sends nothing.
#[derive(Debug)]
pub struct AckSender {
    socket: SocketRef,
    id: u64,
}

impl AckSender {
    /// Sends the ack with these arguments.
    ///
    /// # Errors
    /// [`EmitError`] when the socket is gone or its queue is full.
    pub fn send(self, payload: Payload) -> Result<(), EmitError> {
        self.socket.send_packet(&Packet::Ack {
            nsp: self.socket.ns.name().to_owned(),
            id: self.id,
            payload,
        })
    }

    /// Sends the ack with one JSON argument.
    ///
    /// # Errors
    /// [`EmitError`] when the value does not serialize or the socket is gone.
    pub fn send_value<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EmitError> {
        let payload = Payload::from_value(value)?;
        self.send(payload)
    }
}

/// One client's connection to one namespace.
pub struct Socket {
    id: Sid,
    ns: Arc<Namespace>,
    session: Arc<Session>,
    auth: Option<Box<RawValue>>,
    /// Connection state recovery: the private session id, and the offset the client came
    /// back from when it did.
    recovery: Option<Box<SocketRecovery>>,
    state: AtomicU8,
    inner: Mutex<Inner>,
}

/// A socket's part in connection state recovery.
#[derive(Debug)]
pub(crate) struct SocketRecovery {
    pub(crate) pid: Sid,
    /// The offset the client sent when this socket took back an earlier one's state.
    pub(crate) resumed_from: Option<String>,
}

/// A socket's changing parts, under one lock.
#[derive(Default)]
struct Inner {
    fallback: Option<Arc<dyn Listener>>,
    /// Made on first use: a socket of the channel protocol never needs it, and a long-lived
    /// connection should not pay for it.
    extra: Option<Box<Extra>>,
}

/// What many sockets never use: handlers by event name and for the disconnect, extensions,
/// acks, rooms.
#[derive(Default)]
struct Extra {
    /// Handlers by event name; a socket has a handful, so a list searched in order.
    events: Vec<(Box<str>, EventHandler)>,
    on_disconnect: Vec<DisconnectHandler>,
    /// Values the application attached, one per type (few, so a list).
    extensions: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
    /// Emits waiting for the client's ack, by id (ids only grow, so an ordered map).
    acks: BTreeMap<u64, oneshot::Sender<Payload>>,
    next_ack: u64,
    rooms: BTreeSet<String>,
}

impl Inner {
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_default()
    }
}

const PENDING: u8 = 0;
const CONNECTED: u8 = 1;
const LEFT: u8 = 2;

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("ns", &self.ns.name())
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(
        id: Sid,
        ns: Arc<Namespace>,
        session: Arc<Session>,
        auth: Option<Box<RawValue>>,
        recovery: Option<SocketRecovery>,
    ) -> Self {
        Socket {
            id,
            ns,
            session,
            auth,
            recovery: recovery.map(Box::new),
            state: AtomicU8::new(PENDING),
            inner: Mutex::default(),
        }
    }

    /// The socket id (distinct from the Engine.IO session id).
    pub fn id(&self) -> Sid {
        self.id
    }

    /// The private session id, sent to the client when connection state recovery is on.
    pub fn pid(&self) -> Option<Sid> {
        self.recovery.as_ref().map(|r| r.pid)
    }

    /// Whether this socket took back the state of an earlier one (connection state
    /// recovery; socket.io's `socket.recovered`).
    pub fn recovered(&self) -> bool {
        self.resumed_from().is_some()
    }

    /// The offset the client came back from, when [`Socket::recovered`].
    pub fn resumed_from(&self) -> Option<&str> {
        self.recovery.as_ref()?.resumed_from.as_deref()
    }

    /// The namespace this socket belongs to.
    pub fn ns(&self) -> &Arc<Namespace> {
        &self.ns
    }

    /// The Engine.IO session carrying this socket.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The handshake of the underlying connection (headers, query).
    pub fn handshake(&self) -> &Arc<Handshake> {
        self.session.handshake()
    }

    /// The transport in use now.
    pub fn transport(&self) -> TransportKind {
        self.session.transport()
    }

    /// The auth payload the client sent with CONNECT, as raw JSON (always an object).
    pub fn auth(&self) -> Option<&RawValue> {
        self.auth.as_deref()
    }

    /// Whether the socket is still connected.
    pub fn connected(&self) -> bool {
        self.state.load(Ordering::Acquire) == CONNECTED
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    /// Registers the handler of `event`, replacing any earlier one.
    ///
    /// Handlers run in the order events arrive; spawn a task for slow work. The ack sender is
    /// `Some` when the client asked for an ack.
    pub fn on<F>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(SocketRef, Payload, Option<AckSender>) + Send + Sync + 'static,
    {
        let event: Box<str> = event.into().into();
        let handler: EventHandler = Arc::new(handler);
        let mut inner = self.inner();
        let events = &mut inner.extra().events;
        match events.iter_mut().find(|(name, _)| *name == event) {
            Some((_, slot)) => *slot = handler,
            None => compact::push(events, (event, handler)),
        }
    }

    /// Registers the handler of every event that has no handler of its own; it gets the
    /// event name too.
    pub fn on_fallback<F>(&self, handler: F)
    where
        F: Fn(SocketRef, &str, Payload, Option<AckSender>) + Send + Sync + 'static,
    {
        self.listen(Arc::new(FallbackFn(handler)));
    }

    /// Makes `listener` the fallback: it hears every event without a named handler, and the
    /// disconnect.
    pub(crate) fn listen(&self, listener: Arc<dyn Listener>) {
        self.inner().fallback = Some(listener);
    }

    /// Attaches a value of type `T` to this socket (replacing any earlier `T`).
    ///
    /// ```
    /// # fn demo(socket: tidings_runtime::socketio::SocketRef) {
    /// socket.insert_extension(42u32);
    /// assert_eq!(socket.extension::<u32>().as_deref(), Some(&42));
    /// # }
    /// ```
    pub fn insert_extension<T: Any + Send + Sync>(&self, value: T) {
        let mut inner = self.inner();
        let extensions = &mut inner.extra().extensions;
        extensions.retain(|(id, _)| *id != TypeId::of::<T>());
        compact::push(extensions, (TypeId::of::<T>(), Arc::new(value)));
    }

    /// The value of type `T` attached to this socket.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let value = self
            .inner()
            .extra
            .as_ref()?
            .extensions
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())?
            .1
            .clone();
        value.downcast().ok()
    }

    /// Registers a handler called once when the socket leaves the namespace.
    pub fn on_disconnect<F>(&self, handler: F)
    where
        F: FnOnce(SocketRef, &DisconnectReason) + Send + 'static,
    {
        compact::push(&mut self.inner().extra().on_disconnect, Box::new(handler));
    }

    /// Emits `event` to this client with one JSON argument (`&()` sends none).
    ///
    /// # Errors
    /// [`EmitError`] when the name is reserved, the value does not serialize, or the socket is
    /// gone or too slow.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, value: &T) -> Result<(), EmitError> {
        let payload = Payload::from_value(value)?;
        let payload = if payload.arg(0).is_some_and(|raw| raw.get() == "null") {
            Payload::new()
        } else {
            payload
        };
        self.emit_payload(event, payload)
    }

    /// Emits `event` to this client with these arguments.
    ///
    /// # Errors
    /// [`EmitError`] when the name is reserved or the socket is gone or too slow.
    pub fn emit_payload(&self, event: &str, payload: Payload) -> Result<(), EmitError> {
        check_event(event)?;
        self.send_packet(&Packet::Event {
            nsp: self.ns.name().to_owned(),
            event: event.to_owned(),
            payload,
            id: None,
        })
    }

    /// Emits `event` and waits at most `timeout` for the client's ack.
    ///
    /// # Errors
    /// [`AckError::Timeout`] without an answer in time, [`AckError::Disconnected`] when the
    /// socket leaves first, [`AckError::Emit`] when the emit itself fails.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Payload, AckError> {
        check_event(event)?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut inner = self.inner();
            let extra = inner.extra();
            let id = extra.next_ack;
            extra.next_ack += 1;
            extra.acks.insert(id, tx);
            id
        };
        let sent = self.send_packet(&Packet::Event {
            nsp: self.ns.name().to_owned(),
            event: event.to_owned(),
            payload,
            id: Some(id),
        });
        if let Err(err) = sent {
            self.forget_ack(id);
            return Err(err.into());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                self.forget_ack(id);
                Err(AckError::Timeout)
            }
        }
    }

    fn forget_ack(&self, id: u64) {
        if let Some(extra) = self.inner().extra.as_mut() {
            extra.acks.remove(&id);
        }
    }

    /// Joins `room` in this namespace.
    pub fn join(self: &Arc<Self>, room: impl Into<String>) {
        let room = room.into();
        self.inner().extra().rooms.insert(room.clone());
        self.ns.add_to_room(room, self.clone());
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        if let Some(extra) = self.inner().extra.as_mut() {
            extra.rooms.remove(room);
        }
        self.ns.remove_from_room(room, self.id);
    }

    /// The rooms this socket is in.
    pub fn rooms(&self) -> Vec<String> {
        self.inner()
            .extra
            .as_ref()
            .map(|extra| extra.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Disconnects the socket from its namespace; the client sees `io server disconnect`.
    /// The underlying connection stays open for its other namespaces.
    pub fn disconnect(self: &Arc<Self>) {
        if !self.connected() {
            return;
        }
        let _ = self.send_packet(&Packet::Disconnect {
            nsp: self.ns.name().to_owned(),
        });
        self.leave_namespace(&DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Closes the whole underlying connection (every namespace of this client).
    pub fn close_connection(&self) {
        self.session.close(CloseReason::ForcedClose);
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(crate) fn send_packet(&self, packet: &Packet) -> Result<(), EmitError> {
        let frames = packet.encode();
        if frames.len() == 1 {
            let frame = frames
                .into_iter()
                .next()
                .ok_or(crate::engineio::SendError::Closed)?;
            self.session.send(frame)?;
        } else {
            self.session.send_all(frames.into_iter())?;
        }
        Ok(())
    }

    /// Pending -> connected; false when the socket already left.
    pub(crate) fn set_connected(&self) -> bool {
        self.state
            .compare_exchange(PENDING, CONNECTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks a socket that never connected (refused by its guard) as gone.
    pub(crate) fn set_refused(&self) {
        self.state.store(LEFT, Ordering::Release);
    }

    pub(crate) fn handle_event(self: &Arc<Self>, event: &str, payload: Payload, id: Option<u64>) {
        enum Found {
            Event(EventHandler),
            Fallback(Arc<dyn Listener>),
            Nothing,
        }
        let found = {
            let inner = self.inner();
            let named = inner
                .extra
                .as_ref()
                .and_then(|extra| extra.events.iter().find(|(name, _)| **name == *event));
            match (named, &inner.fallback) {
                (Some((_, handler)), _) => Found::Event(handler.clone()),
                (None, Some(fallback)) => Found::Fallback(fallback.clone()),
                (None, None) => Found::Nothing,
            }
        };
        let ack = id.map(|id| AckSender {
            socket: self.clone(),
            id,
        });
        match found {
            Found::Event(handler) => handler(self.clone(), payload, ack),
            Found::Fallback(fallback) => fallback.on_event(self.clone(), event, payload, ack),
            Found::Nothing => tracing::trace!(socket = %self.id, event, "no handler for event"),
        }
    }

    pub(crate) fn handle_ack(&self, id: u64, payload: Payload) {
        let sender = self
            .inner()
            .extra
            .as_mut()
            .and_then(|extra| extra.acks.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send(payload);
        }
    }

    /// Leaves every room and the namespace, fails pending acks, and runs the disconnect
    /// handlers. Runs once.
    pub(crate) fn leave_namespace(self: &Arc<Self>, reason: &DisconnectReason) {
        if self.state.swap(LEFT, Ordering::AcqRel) != CONNECTED {
            return;
        }
        // Everything goes at once: pending acks fail (their senders drop), and the handlers
        // are dropped once they have run, which ends what they hold (a channel link holds
        // this socket).
        let Inner { extra, fallback } = std::mem::take(&mut *self.inner());
        let Extra {
            rooms,
            on_disconnect,
            ..
        } = extra.map(|extra| *extra).unwrap_or_default();
        for room in &rooms {
            self.ns.remove_from_room(room, self.id);
        }
        self.ns.remove_socket(self.id);
        tracing::debug!(socket = %self.id, ns = self.ns.name(), %reason, "socket disconnected");
        for handler in on_disconnect {
            handler(self.clone(), reason);
        }
        if let Some(fallback) = fallback {
            fallback.on_disconnect(self.clone(), reason);
        }
    }
}

fn check_event(event: &str) -> Result<(), EmitError> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(EmitError::ReservedEvent(event.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn connected_socket() -> SocketRef {
        let ns = Arc::new(Namespace::new("/".to_owned(), Box::new(|_| {})));
        let id = Sid::random().unwrap_or_else(|err| panic!("{err}"));
        let socket = Arc::new(Socket::new(id, ns, Session::detached(16), None, None));
        assert!(socket.set_connected());
        socket.ns().connected(&socket);
        socket
    }

    struct Counting(Arc<AtomicUsize>);

    impl Listener for Counting {
        fn on_event(self: Arc<Self>, _: SocketRef, _: &str, _: Payload, _: Option<AckSender>) {}

        fn on_disconnect(self: Arc<Self>, _: SocketRef, reason: &DisconnectReason) {
            assert_eq!(*reason, DisconnectReason::TransportClose);
            self.0.fetch_add(10, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn leaving_runs_every_disconnect_handler_once_and_lets_go_of_everything() {
        let socket = connected_socket();
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let runs = runs.clone();
            socket.on_disconnect(move |_, _| {
                runs.fetch_add(1, Ordering::SeqCst);
            });
        }
        let listener = Arc::new(Counting(runs.clone()));
        socket.listen(listener.clone());
        socket.on("event", |_, _, _| {});
        socket.insert_extension(7u32);
        socket.insert_extension(8u32);
        assert_eq!(socket.extension::<u32>().as_deref(), Some(&8));
        socket.join("a");
        socket.join("b");
        socket.join("a");
        assert_eq!(socket.rooms(), ["a", "b"]);
        assert_eq!(socket.ns().room_count(), 2);
        let asking = tokio::spawn({
            let socket = socket.clone();
            async move {
                socket
                    .emit_with_ack("question", Payload::new(), Duration::from_secs(30))
                    .await
            }
        });
        while socket
            .inner()
            .extra
            .as_ref()
            .is_none_or(|e| e.acks.is_empty())
        {
            tokio::task::yield_now().await;
        }

        socket.leave_namespace(&DisconnectReason::TransportClose);
        socket.leave_namespace(&DisconnectReason::TransportClose);

        assert_eq!(
            runs.load(Ordering::SeqCst),
            13,
            "three handlers and the listener, once"
        );
        assert!(matches!(
            asking.await.unwrap_or_else(|e| panic!("{e}")),
            Err(AckError::Disconnected)
        ));
        assert!(socket.rooms().is_empty());
        assert_eq!(socket.ns().room_count(), 0);
        assert_eq!(socket.ns().socket_count(), 0);
        assert_eq!(
            Arc::strong_count(&listener),
            1,
            "the socket let go of its listener"
        );
        assert!(!socket.connected());
    }

    #[test]
    fn events_go_to_their_handler_else_to_the_fallback() {
        let socket = connected_socket();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let named = seen.clone();
        socket.on("ping", move |_, _, _| lock(&named).push("ping".to_owned()));
        let other = seen.clone();
        socket.on_fallback(move |_, event, _, _| {
            lock(&other).push(format!("fallback {event}"));
        });
        socket.handle_event("ping", Payload::new(), None);
        socket.handle_event("pong", Payload::new(), None);
        assert_eq!(*lock(&seen), ["ping", "fallback pong"]);
    }
}

//! Namespaces: the sockets connected to each, their rooms, the connect guard and handler, and
//! broadcasting (encoded once, the same frames queued for every recipient).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::error::EmitError;
use super::packet::Packet;
use super::socket::SocketRef;
use crate::engineio::{Frame, Sid};
use crate::payload::Payload;
use crate::sync::{read, write};

type ConnectHandler = Box<dyn Fn(SocketRef) + Send + Sync>;
type GuardFuture = Pin<Box<dyn Future<Output = Result<(), ConnectRefusal>> + Send>>;
type Guard = Arc<dyn Fn(SocketRef) -> GuardFuture + Send + Sync>;
/// What a recovery hook answers, later: the socket a client comes back to, if any.
pub type RecoverFuture = Pin<Box<dyn Future<Output = Option<Resumed>> + Send>>;
type RecoverHook = Arc<dyn Fn(&str, &str) -> RecoverFuture + Send + Sync>;

/// A client that comes back gets its socket again ([`Namespace::recovery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// The socket id it takes back.
    pub sid: Sid,
    /// Whether its CONNECT skips the guard (it passed it when it first connected here).
    pub skip_guard: bool,
}
type ConfirmHook = Arc<dyn Fn(Sid, &str) -> bool + Send + Sync>;

/// Connection state recovery in a namespace: who decides whether a client comes back.
#[derive(Clone)]
pub(crate) struct Recovery {
    /// Given the client's private session id and offset, the socket to take back.
    pub(crate) hook: RecoverHook,
    /// After a guard that ran for a socket coming back: whether its state is still whole
    /// (socket id, offset).
    pub(crate) confirm: ConfirmHook,
}

pub use crate::refusal::ConnectRefusal;

/// A namespace (`/`, `/admin` ...): its connected sockets and rooms.
pub struct Namespace {
    name: String,
    on_connect: ConnectHandler,
    guard: RwLock<Option<Guard>>,
    recovery: RwLock<Option<Recovery>>,
    sockets: RwLock<HashMap<Sid, SocketRef>>,
    rooms: RwLock<HashMap<String, HashMap<Sid, SocketRef>>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    pub(crate) fn new(name: String, on_connect: ConnectHandler) -> Self {
        Namespace {
            name,
            on_connect,
            guard: RwLock::new(None),
            recovery: RwLock::new(None),
            sockets: RwLock::new(HashMap::new()),
            rooms: RwLock::new(HashMap::new()),
        }
    }

    /// The namespace's name, starting with `/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the guard that runs before a socket connects; an `Err` refuses it and the client
    /// gets a `connect_error` with the refusal's message.
    pub fn guard<F, Fut>(&self, guard: F) -> &Self
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectRefusal>> + Send + 'static,
    {
        *write(&self.guard) = Some(Arc::new(move |socket| Box::pin(guard(socket))));
        self
    }

    /// Turns on connection state recovery (socket.io's `connectionStateRecovery`): every
    /// socket gets a private session id (`pid`, sent in the CONNECT answer), and a client that
    /// comes back with its `pid` and the `offset` of the last event it got is asked about:
    /// `hook(pid, offset)` answers (it may take its time: the CONNECT waits) the socket it
    /// takes back, or `None` for a fresh socket. A socket that comes back skips the guard when
    /// the answer says so; when the guard runs, `confirm(socket id, offset)` says afterwards
    /// whether the state is still there to take back (else the connection closes before any
    /// answer, and the client starts afresh on its next attempt).
    ///
    /// ```
    /// use tidings_runtime::engineio::Sid;
    /// use tidings_runtime::socketio::{Resumed, SocketIo};
    ///
    /// let io = SocketIo::builder().build();
    /// let ns = io.ns("/", |_socket| {});
    /// // Nobody ever comes back here: every client gets a fresh socket.
    /// ns.recovery(|_pid, _offset| Box::pin(async { None::<Resumed> }), |_sid: Sid, _offset| false);
    /// ```
    pub fn recovery<F, C>(&self, hook: F, confirm: C) -> &Self
    where
        F: Fn(&str, &str) -> RecoverFuture + Send + Sync + 'static,
        C: Fn(Sid, &str) -> bool + Send + Sync + 'static,
    {
        *write(&self.recovery) = Some(Recovery {
            hook: Arc::new(hook),
            confirm: Arc::new(confirm),
        });
        self
    }

    pub(crate) fn recovery_config(&self) -> Option<Recovery> {
        read(&self.recovery).clone()
    }

    /// How many sockets are connected.
    pub fn socket_count(&self) -> usize {
        read(&self.sockets).len()
    }

    /// How many rooms have at least one socket.
    pub fn room_count(&self) -> usize {
        read(&self.rooms).len()
    }

    /// The socket with this id, if connected here.
    pub fn socket(&self, id: Sid) -> Option<SocketRef> {
        read(&self.sockets).get(&id).cloned()
    }

    /// Emits `event` with one JSON argument to every socket in `room`.
    ///
    /// # Errors
    /// [`EmitError`] when the name is reserved or the value does not serialize. Recipients that
    /// are gone or too slow are skipped (and closed, for the slow).
    pub fn emit_to<T: Serialize + ?Sized>(
        &self,
        room: &str,
        event: &str,
        value: &T,
    ) -> Result<usize, EmitError> {
        self.emit_payload_to(room, event, Payload::from_value(value)?)
    }

    /// Emits `event` with these arguments to every socket in `room`; returns how many
    /// sockets it was queued for.
    ///
    /// # Errors
    /// [`EmitError::ReservedEvent`] for a reserved name.
    pub fn emit_payload_to(
        &self,
        room: &str,
        event: &str,
        payload: Payload,
    ) -> Result<usize, EmitError> {
        let frames = self.encode_event(event, payload)?;
        let recipients: Vec<SocketRef> = read(&self.rooms)
            .get(room)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        Ok(deliver(&recipients, &frames))
    }

    /// Emits `event` with these arguments to every socket of the namespace.
    ///
    /// # Errors
    /// [`EmitError::ReservedEvent`] for a reserved name.
    pub fn emit_payload_all(&self, event: &str, payload: Payload) -> Result<usize, EmitError> {
        let frames = self.encode_event(event, payload)?;
        let recipients: Vec<SocketRef> = read(&self.sockets).values().cloned().collect();
        Ok(deliver(&recipients, &frames))
    }

    fn encode_event(&self, event: &str, payload: Payload) -> Result<Vec<Frame>, EmitError> {
        if super::packet::RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::ReservedEvent(event.to_owned()));
        }
        Ok(Packet::Event {
            nsp: self.name.clone(),
            event: event.to_owned(),
            payload,
            id: None,
        }
        .encode())
    }

    pub(crate) fn guard_fn(&self) -> Option<Guard> {
        read(&self.guard).clone()
    }

    pub(crate) fn connected(&self, socket: &SocketRef) {
        write(&self.sockets).insert(socket.id(), socket.clone());
        (self.on_connect)(socket.clone());
    }

    pub(crate) fn remove_socket(&self, id: Sid) {
        write(&self.sockets).remove(&id);
    }

    pub(crate) fn add_to_room(&self, room: String, socket: SocketRef) {
        write(&self.rooms)
            .entry(room)
            .or_default()
            .insert(socket.id(), socket);
    }

    pub(crate) fn remove_from_room(&self, room: &str, id: Sid) {
        let mut rooms = write(&self.rooms);
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }
}

/// Queues the same frames for every recipient; returns how many took them.
fn deliver(recipients: &[SocketRef], frames: &[Frame]) -> usize {
    let shared: Vec<Frame>;
    let frames = if recipients.len() > 1 {
        shared = frames.iter().cloned().map(Frame::shared).collect();
        &shared[..]
    } else {
        frames
    };
    recipients
        .iter()
        .filter(|socket| {
            let session = socket.session();
            match frames {
                [frame] => session.send(frame.clone()).is_ok(),
                _ => session.send_all(frames.iter().cloned()).is_ok(),
            }
        })
        .count()
}

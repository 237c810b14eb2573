//! The Socket.IO server: the namespaces, and the per-connection client that turns Engine.IO
//! messages into packets (reassembling binary ones) and packets into socket calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::web;
use serde_json::value::RawValue;
use smallvec::SmallVec;
use tokio::task::AbortHandle;

use super::error::PacketError;
use super::namespace::{Namespace, Recovery, Resumed};
use super::packet::{Packet, Partial};
use super::socket::{DisconnectReason, Socket, SocketRecovery, SocketRef};
use crate::engineio::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Session, Sid};
use crate::origin::OriginPolicy;
use crate::sync::{lock, read, write};

/// Settings of a Socket.IO server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IoConfig {
    /// The Engine.IO settings (path `/socket.io/` by default).
    pub engine: EngineConfig,
    /// How long a connection may stay without joining any namespace before it is closed.
    pub connect_timeout: Duration,
    /// The most binary attachments one packet may announce.
    pub max_attachments: usize,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            engine: EngineConfig {
                path: "/socket.io/".to_owned(),
                ..EngineConfig::default()
            },
            connect_timeout: Duration::from_secs(45),
            max_attachments: 64,
        }
    }
}

/// Builds a [`SocketIo`] server.
///
/// ```
/// use std::time::Duration;
/// use tidings_runtime::socketio::SocketIo;
/// let io = SocketIo::builder()
///     .ping_interval(Duration::from_secs(10))
///     .max_payload(100_000)
///     .build();
/// assert_eq!(io.config().engine.max_payload, 100_000);
/// ```
#[derive(Debug, Default)]
pub struct SocketIoBuilder {
    config: IoConfig,
}

impl SocketIoBuilder {
    /// Where the server answers (default `/socket.io/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.engine.path = path.into();
        self
    }

    /// Time between pings (default 25 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.engine.ping_interval = interval;
        self
    }

    /// How late a pong may be (default 20 s).
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.config.engine.ping_timeout = timeout;
        self
    }

    /// The largest HTTP body or WebSocket message accepted, in bytes (default 1 MB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.config.engine.max_payload = bytes;
        self
    }

    /// How long a connection may stay without joining a namespace (default 45 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How many frames may wait for a slow client before it is disconnected (default 4096).
    pub fn max_queued_frames(mut self, frames: usize) -> Self {
        self.config.engine.max_queued_frames = frames;
        self
    }

    /// How many bytes may wait for a slow client before it is disconnected (default 1 MiB).
    ///
    /// A broadcast counts in full for every connection it waits for; one frame is always
    /// taken, whatever its size.
    ///
    /// ```
    /// let io = tidings_runtime::socketio::SocketIo::builder()
    ///     .max_queued_bytes(4 * 1024 * 1024)
    ///     .build();
    /// assert_eq!(io.config().engine.max_queued_bytes, 4 * 1024 * 1024);
    /// ```
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.config.engine.max_queued_bytes = bytes;
        self
    }

    /// Which web pages may connect, and the CORS answers of long-polling (default: only the
    /// server's own origin; see [`OriginPolicy`]).
    ///
    /// ```
    /// use tidings_runtime::origin::OriginPolicy;
    /// let io = tidings_runtime::socketio::SocketIo::builder()
    ///     .origins(OriginPolicy::allow(["https://app.example.com"]).unwrap())
    ///     .build();
    /// assert!(io.config().engine.origins.allows(Some("https://app.example.com"), Some("rt.example.com")));
    /// ```
    pub fn origins(mut self, policy: OriginPolicy) -> Self {
        self.config.engine.origins = policy;
        self
    }

    /// The whole configuration at once.
    pub fn config(mut self, config: IoConfig) -> Self {
        self.config = config;
        self
    }

    /// The server.
    pub fn build(self) -> SocketIo {
        let inner = Arc::new(IoInner {
            config: self.config.clone(),
            namespaces: RwLock::new(HashMap::new()),
        });
        let engine = Engine::new(
            self.config.engine,
            IoHandler {
                inner: inner.clone(),
            },
        );
        SocketIo { inner, engine }
    }
}

/// A Socket.IO v5 server; cheap to clone. Declare namespaces with [`SocketIo::ns`], mount with
/// [`SocketIo::configure`].
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use tidings_runtime::socketio::SocketIo;
///
/// # async fn run() -> std::io::Result<()> {
/// let io = SocketIo::builder().build();
/// io.ns("/", |socket| {
///     socket.on("ping", |socket, payload, ack| {
///         if let Some(ack) = ack {
///             let _ = ack.send(payload);
///         }
///     });
/// });
/// HttpServer::new(move || App::new().configure(io.configure()))
///     .bind(("127.0.0.1", 3000))?
///     .run()
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIo {
    inner: Arc<IoInner>,
    engine: Engine<IoHandler>,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct IoInner {
    config: IoConfig,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
}

impl SocketIo {
    /// A builder with the official defaults.
    pub fn builder() -> SocketIoBuilder {
        SocketIoBuilder::default()
    }

    /// The configuration in use.
    pub fn config(&self) -> &IoConfig {
        &self.inner.config
    }

    /// Declares namespace `name` (`/` is the default one); `on_connect` runs for every socket
    /// that joins it, after the CONNECT was accepted. Returns the namespace, on which a
    /// [`Namespace::guard`] can refuse connects.
    pub fn ns<F>(&self, name: impl Into<String>, on_connect: F) -> Arc<Namespace>
    where
        F: Fn(SocketRef) + Send + Sync + 'static,
    {
        let name = name.into();
        let ns = Arc::new(Namespace::new(name.clone(), Box::new(on_connect)));
        write(&self.inner.namespaces).insert(name, ns.clone());
        ns
    }

    /// The namespace called `name`, if declared.
    pub fn of(&self, name: &str) -> Option<Arc<Namespace>> {
        read(&self.inner.namespaces).get(name).cloned()
    }

    /// How many Engine.IO connections are open.
    pub fn connection_count(&self) -> usize {
        self.engine.session_count()
    }

    /// Closes every connection (at shutdown).
    pub fn close_all(&self) {
        self.engine.close_all(CloseReason::ServerShutdown);
    }

    /// Mounts the server on an actix app.
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        self.engine.configure()
    }
}

/// The Engine.IO handler of a Socket.IO server.
pub struct IoHandler {
    inner: Arc<IoInner>,
}

/// What the Socket.IO layer keeps per connection.
pub struct Client {
    /// One socket per namespace joined (most clients join one: that one is kept inline).
    /// (Shared with a CONNECT waiting for its recovery hook.)
    sockets: Arc<Mutex<SmallVec<[SocketRef; 1]>>>,
    /// A binary packet waiting for its attachments.
    pending: Mutex<Pending>,
    /// The timer that closes a connection which joins no namespace in time; the first join
    /// stops it, so a connected client holds no timer.
    connect_watch: Mutex<Option<AbortHandle>>,
}

/// A binary packet whose attachments are still coming, and the timer that closes the
/// connection when they are late (stopped when the last one arrives).
#[derive(Default)]
struct Pending {
    /// Boxed: only a connection in the middle of a binary packet has one.
    partial: Option<Box<Partial>>,
    watch: Option<AbortHandle>,
}

impl Pending {
    /// Ends the wait for attachments (the packet completed, or the connection closed).
    fn clear(&mut self) {
        self.partial = None;
        if let Some(watch) = self.watch.take() {
            watch.abort();
        }
    }
}

impl EngineHandler for IoHandler {
    type State = Client;

    fn on_open(&self, session: &Arc<Session>) -> Client {
        let timeout = self.inner.config.connect_timeout;
        let watched = session.clone();
        let watch = tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => {
                    tracing::debug!(sid = %watched.sid(), "no namespace joined in time");
                    watched.close(CloseReason::ProtocolViolation("connect timeout"));
                }
                () = watched.closed() => {}
            }
        });
        Client {
            sockets: Arc::default(),
            pending: Mutex::default(),
            connect_watch: Mutex::new(Some(watch.abort_handle())),
        }
    }

    fn on_message(&self, session: &Arc<Session>, client: &Client, message: Message) {
        if let Err(err) = self.receive(session, client, message) {
            tracing::debug!(sid = %session.sid(), %err, "invalid packet, closing the connection");
            session.close(CloseReason::ParseError(err.to_string()));
        }
    }

    fn on_close(&self, _session: &Arc<Session>, client: &Client, reason: &CloseReason) {
        let sockets = std::mem::take(&mut *lock(&client.sockets));
        let reason = DisconnectReason::from(reason);
        for socket in sockets {
            socket.leave_namespace(&reason);
        }
        lock(&client.pending).clear();
        if let Some(watch) = lock(&client.connect_watch).take() {
            watch.abort();
        }
    }
}

impl IoHandler {
    fn receive(
        &self,
        session: &Arc<Session>,
        client: &Client,
        message: Message,
    ) -> Result<(), PacketError> {
        let max_attachments = self.inner.config.max_attachments;
        let mut pending = lock(&client.pending);
        let packet = match message {
            Message::Text(text) => {
                if pending.partial.is_some() {
                    return Err(PacketError::AttachmentsPending);
                }
                let partial = Packet::decode(&text, max_attachments)?;
                if partial.is_complete() {
                    partial.finish()?
                } else {
                    pending.partial = Some(Box::new(partial));
                    pending.watch = Some(self.watch_attachments(session));
                    return Ok(());
                }
            }
            Message::Binary(bytes) => {
                let mut partial = pending
                    .partial
                    .take()
                    .ok_or(PacketError::UnexpectedBinary)?;
                if partial.attachment_bytes() + bytes.len() > self.inner.config.engine.max_payload {
                    return Err(PacketError::AttachmentsTooLarge);
                }
                partial.push(bytes);
                if partial.is_complete() {
                    pending.clear();
                    partial.finish()?
                } else {
                    pending.partial = Some(partial);
                    return Ok(());
                }
            }
        };
        drop(pending);
        self.dispatch(session, client, packet);
        Ok(())
    }

    /// Closes the connection when the attachments of the binary packet just started do not
    /// all arrive within the ping timeout.
    fn watch_attachments(&self, session: &Arc<Session>) -> AbortHandle {
        let session = session.clone();
        let timeout = self.inner.config.engine.ping_timeout;
        let watch = tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => {
                    tracing::debug!(sid = %session.sid(), "binary attachments never arrived");
                    session.close(CloseReason::ParseError(
                        "binary attachments never arrived".to_owned(),
                    ));
                }
                () = session.closed() => {}
            }
        });
        watch.abort_handle()
    }

    fn dispatch(&self, session: &Arc<Session>, client: &Client, packet: Packet) {
        match packet {
            Packet::Connect { nsp, data } => self.connect(session, client, nsp, data),
            Packet::Disconnect { nsp } => {
                if let Some(socket) = client.take_socket(&nsp) {
                    socket.leave_namespace(&DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            Packet::Event {
                nsp,
                event,
                payload,
                id,
            } => {
                if let Some(socket) = client.socket(&nsp) {
                    socket.handle_event(&event, payload, id);
                }
            }
            Packet::Ack { nsp, id, payload } => {
                if let Some(socket) = client.socket(&nsp) {
                    socket.handle_ack(id, payload);
                }
            }
            // `Packet::decode` never yields these from a client.
            Packet::ConnectError { .. } => {}
        }
    }

    fn connect(
        &self,
        session: &Arc<Session>,
        client: &Client,
        nsp: String,
        auth: Option<Box<RawValue>>,
    ) {
        let ns = read(&self.inner.namespaces).get(&nsp).cloned();
        let Some(ns) = ns else {
            let _ = session.send_all(
                Packet::ConnectError {
                    nsp,
                    message: "Invalid namespace".to_owned(),
                }
                .encode()
                .into_iter(),
            );
            return;
        };
        if client.socket(&nsp).is_some() {
            tracing::debug!(sid = %session.sid(), nsp, "already connected to namespace");
            return;
        }
        let recovery = ns.recovery_config();
        // A client coming back: its private session id and the offset of the last event it
        // got, both strings in its CONNECT payload, as the official client sends them.
        let resume = recovery.as_ref().and_then(|_| {
            let resume: Resume = serde_json::from_str(auth.as_deref()?.get()).ok()?;
            Some(resume)
        });
        let opening = Opening {
            session: session.clone(),
            sockets: client.sockets.clone(),
            ns,
            nsp,
            auth,
            recovery,
        };
        match (resume, opening.recovery.clone()) {
            (Some(resume), Some(recovery)) => {
                // The hook may ask the cluster: the CONNECT waits for it, the timer that closes
                // a connection which joins no namespace does not.
                if let Some(watch) = lock(&client.connect_watch).take() {
                    watch.abort();
                }
                let claim = (recovery.hook)(&resume.pid, &resume.offset);
                tokio::spawn(async move {
                    let resumed = claim.await;
                    if !opening.session.is_closed() {
                        opening.open(resumed.map(|r| (r, resume)));
                    }
                });
            }
            _ => {
                if let Some(watch) = lock(&client.connect_watch).take() {
                    watch.abort();
                }
                opening.open(None);
            }
        }
    }
}

/// The private session id and offset of a client coming back, from its CONNECT payload.
#[derive(serde::Deserialize)]
struct Resume {
    pid: String,
    offset: String,
}

/// A CONNECT to a namespace, once it is known whether the client comes back.
struct Opening {
    session: Arc<Session>,
    sockets: Arc<Mutex<SmallVec<[SocketRef; 1]>>>,
    ns: Arc<Namespace>,
    nsp: String,
    auth: Option<Box<RawValue>>,
    recovery: Option<Recovery>,
}

impl Opening {
    /// Opens the socket: the one taken back when `resumed`, else a fresh one.
    fn open(self, resumed: Option<(Resumed, Resume)>) {
        let Opening {
            session,
            sockets,
            ns,
            nsp,
            auth,
            recovery,
        } = self;
        let resumed = resumed
            .and_then(|(resumed, resume)| Some((resumed, Sid::parse(&resume.pid)?, resume.offset)));
        let fresh = if resumed.is_some() {
            None
        } else {
            match (Sid::random(), recovery.is_some()) {
                (Ok(id), false) => Some((id, None)),
                (Ok(id), true) => Sid::random().ok().map(|pid| (id, Some(pid))),
                (Err(_), _) => None,
            }
        };
        let mut skip_guard = false;
        let (id, recovered) = match (resumed, fresh) {
            (Some((resumed, pid, offset)), _) => {
                skip_guard = resumed.skip_guard;
                (
                    resumed.sid,
                    Some(SocketRecovery {
                        pid,
                        resumed_from: Some(offset),
                    }),
                )
            }
            (None, Some((id, pid))) => (
                id,
                pid.map(|pid| SocketRecovery {
                    pid,
                    resumed_from: None,
                }),
            ),
            (None, None) => {
                // No unguessable id can be made (logged where it failed): refuse the namespace.
                let _ = session.send_all(
                    Packet::ConnectError {
                        nsp,
                        message: "Server error".to_owned(),
                    }
                    .encode()
                    .into_iter(),
                );
                return;
            }
        };
        let socket = Arc::new(Socket::new(
            id,
            ns.clone(),
            session.clone(),
            auth,
            recovered,
        ));
        // Reserve the namespace slot at once so events that race the guard find the socket
        // (they are ignored until it is connected).
        {
            let mut sockets = lock(&sockets);
            sockets.retain(|s| s.ns().name() != nsp);
            sockets.push(socket.clone());
        }
        match ns.guard_fn().filter(|_| !skip_guard) {
            None => accept(&socket),
            Some(guard) => {
                tokio::spawn(async move {
                    match guard(socket.clone()).await {
                        Ok(()) => {
                            // A socket coming back whose state went while the guard ran is
                            // not told it recovered: its connection closes before the
                            // answer, and the client's next attempt starts afresh.
                            let still = match (&recovery, socket.resumed_from()) {
                                (Some(recovery), Some(offset)) => {
                                    (recovery.confirm)(socket.id(), offset)
                                }
                                _ => true,
                            };
                            if !still {
                                socket.close_connection();
                            } else if !socket.session().is_closed() {
                                accept(&socket);
                            }
                        }
                        Err(refusal) => {
                            socket.set_refused();
                            let _ = socket.send_packet(&Packet::ConnectError {
                                nsp: ns.name().to_owned(),
                                message: refusal.message,
                            });
                        }
                    }
                });
            }
        }
    }
}

/// Accepts a socket: CONNECT reply, then the namespace's connect handler.
fn accept(socket: &SocketRef) {
    let data = RawValue::from_string(match socket.pid() {
        Some(pid) => format!(r#"{{"sid":"{}","pid":"{pid}"}}"#, socket.id()),
        None => format!(r#"{{"sid":"{}"}}"#, socket.id()),
    })
    .ok();
    if !socket.set_connected() {
        return;
    }
    let sent = socket.send_packet(&Packet::Connect {
        nsp: socket.ns().name().to_owned(),
        data,
    });
    if sent.is_ok() {
        socket.ns().connected(socket);
    }
}

impl Client {
    /// The connected socket on `nsp`; a slot whose socket has left is dropped.
    fn socket(&self, nsp: &str) -> Option<SocketRef> {
        let mut sockets = lock(&self.sockets);
        let at = sockets.iter().position(|s| s.ns().name() == nsp)?;
        let socket = &sockets[at];
        if socket.connected() {
            Some(socket.clone())
        } else if socket.is_pending() {
            None
        } else {
            sockets.swap_remove(at);
            None
        }
    }

    fn take_socket(&self, nsp: &str) -> Option<SocketRef> {
        let mut sockets = lock(&self.sockets);
        let at = sockets.iter().position(|s| s.ns().name() == nsp)?;
        Some(sockets.swap_remove(at))
    }
}

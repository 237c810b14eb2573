//! The Phoenix Channels endpoint: `<path>/websocket` and `<path>/longpoll`, the socket table,
//! the heartbeat reply, idle timeouts and the clean-up of closed sockets.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;

use super::config::PhoenixConfig;
use super::message::{Message, Vsn};
use super::socket::{Socket, Transport, empty_object, now_ms};
use super::{longpoll, websocket};
use crate::engineio::{CloseReason, Session, Sid};
use crate::engineio::{Closing, Limits, TransportKind, tcp};
use crate::origin::Verdict;
use crate::refusal::ConnectRefusal;
use crate::request::RequestInfo;
use crate::sync::{lock, read, write};

/// The seam between the Phoenix wire and the layer above it (the channel gateway, or an
/// application): the engine calls these from its transports; they must not block.
pub trait PhoenixHandler: Send + Sync + 'static {
    /// What the layer above keeps per socket.
    type State: Send + Sync + 'static;

    /// Decides whether a new socket may connect (before the WebSocket's `101`, or the
    /// LongPoll's `410`): `Err` answers HTTP 403 (LongPoll: status 403), as Phoenix does.
    fn connect(
        &self,
        socket: &Arc<Socket>,
    ) -> impl Future<Output = Result<Self::State, ConnectRefusal>> + Send;

    /// A message from the client, in order (heartbeats are answered before they get here).
    fn on_message(&self, socket: &Arc<Socket>, state: &Self::State, message: Message);

    /// The socket closed; called once, after it left the table.
    fn on_close(&self, socket: &Arc<Socket>, state: &Self::State, reason: &CloseReason);
}

/// A Phoenix Channels server over a handler; mount it with [`PhoenixServer::configure`].
pub struct PhoenixServer<H: PhoenixHandler> {
    inner: Arc<Inner<H>>,
}

impl<H: PhoenixHandler> Clone for PhoenixServer<H> {
    fn clone(&self) -> Self {
        PhoenixServer {
            inner: self.inner.clone(),
        }
    }
}

impl<H: PhoenixHandler> std::fmt::Debug for PhoenixServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoenixServer")
            .field("path", &self.inner.config.path)
            .field("sockets", &self.socket_count())
            .finish_non_exhaustive()
    }
}

/// A socket and what the layer above keeps for it.
pub(crate) struct Entry<S> {
    pub(crate) socket: Arc<Socket>,
    pub(crate) state: Arc<S>,
}

impl<S> Clone for Entry<S> {
    fn clone(&self) -> Self {
        Entry {
            socket: self.socket.clone(),
            state: self.state.clone(),
        }
    }
}

struct Inner<H: PhoenixHandler> {
    config: PhoenixConfig,
    handler: H,
    sockets: RwLock<HashMap<Sid, Entry<H::State>>>,
    /// Sockets closed and waiting for the watcher to clean them up.
    closing: Arc<Closing>,
    /// Whether the watcher task runs.
    watching: Mutex<bool>,
}

/// Why a request is refused before any socket exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The `vsn` is none Phoenix serves (`1.0.x`, `2.0.x`): HTTP 403, as Phoenix answers.
    #[error("unsupported vsn")]
    UnsupportedVsn,
    /// The client offered WebSocket subprotocols, none of them `phoenix`: HTTP 403.
    #[error("unsupported subprotocol")]
    UnsupportedSubprotocol,
    /// The `authToken` subprotocol is not base64 of UTF-8 text: HTTP 403 (Phoenix fails to
    /// decode it too), never a socket without the token it was given.
    #[error("invalid auth token")]
    InvalidAuthToken,
    /// The connect hook refused the socket: HTTP 403.
    #[error("connection refused: {0}")]
    Refused(ConnectRefusal),
    /// Not a WebSocket handshake, or a method the endpoint does not take: HTTP 400.
    #[error("bad request")]
    BadRequest,
    /// The OS random source failed: HTTP 500.
    #[error("server error")]
    ServerError,
}

impl OpenError {
    fn status(&self) -> StatusCode {
        match self {
            OpenError::BadRequest => StatusCode::BAD_REQUEST,
            OpenError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// The subprotocol phoenix.js 1.8 carries its `authToken` in.
const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";

/// How long a closed WebSocket's TCP connection may stay open with nothing left to write;
/// then it is shut down (with queued frames still to go, a second).
const CLOSE_LINGER: Duration = Duration::from_millis(500);

impl<H: PhoenixHandler> PhoenixServer<H> {
    /// A server with these settings over this handler.
    pub fn new(config: PhoenixConfig, handler: H) -> Self {
        PhoenixServer {
            inner: Arc::new(Inner {
                config,
                handler,
                sockets: RwLock::new(HashMap::new()),
                closing: Arc::default(),
                watching: Mutex::new(false),
            }),
        }
    }

    /// The handler this server calls.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The settings in use.
    pub fn config(&self) -> &PhoenixConfig {
        &self.inner.config
    }

    /// How many sockets are open now.
    pub fn socket_count(&self) -> usize {
        read(&self.inner.sockets).len()
    }

    /// Closes every open socket with `reason` (at shutdown: WebSocket close 1001).
    pub fn close_all(&self, reason: CloseReason) {
        let sockets: Vec<_> = read(&self.inner.sockets)
            .values()
            .map(|e| e.socket.clone())
            .collect();
        for socket in sockets {
            socket.close(reason.clone());
        }
    }

    /// Mounts `<path>/websocket` and `<path>/longpoll` (those that are on) on an actix app.
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let server = self.clone();
        move |cfg: &mut web::ServiceConfig| {
            let base = server.inner.config.path.trim_end_matches('/').to_owned();
            let mut routes = Vec::new();
            if server.inner.config.websocket {
                routes.push((format!("{base}/websocket"), Transport::WebSocket));
            }
            if server.inner.config.longpoll {
                routes.push((format!("{base}/longpoll"), Transport::LongPoll));
            }
            for (path, transport) in routes {
                let server = server.clone();
                cfg.service(web::resource(path).route(web::route().to(
                    move |req: HttpRequest, body: web::Payload| {
                        let server = server.clone();
                        async move { server.answer(req, body, transport).await }
                    },
                )));
            }
        }
    }

    /// The origin policy first, before anything is created; then the request.
    async fn answer(
        &self,
        req: HttpRequest,
        body: web::Payload,
        transport: Transport,
    ) -> HttpResponse {
        let origins = &self.inner.config.origins;
        let verdict = origins.check(req.headers());
        if let Verdict::Refused(origin) = &verdict {
            tracing::info!(%origin, path = req.path(), "phoenix request refused: origin not allowed");
            return HttpResponse::Forbidden().finish();
        }
        if req.method() == Method::OPTIONS {
            return match (&verdict, transport) {
                (Verdict::CrossOrigin(origin), Transport::LongPoll) => {
                    origins.preflight(origin, req.headers())
                }
                _ => HttpResponse::BadRequest().finish(),
            };
        }
        let mut response = match transport {
            Transport::WebSocket => websocket::open(self, &req, body).await,
            Transport::LongPoll => longpoll::answer(self, &req, body).await,
        };
        if let Verdict::CrossOrigin(origin) = &verdict
            && transport == Transport::LongPoll
        {
            origins.cors_headers(origin, &mut response);
        }
        response
    }

    /// Opens a socket for `req`: the serializer from `vsn`, the auth token, the connect hook;
    /// on success it is in the table and watched.
    pub(crate) async fn open(
        &self,
        req: &HttpRequest,
        transport: Transport,
        auth_token: Option<String>,
    ) -> Result<Entry<H::State>, OpenError> {
        let vsn = Vsn::negotiate(last_param(req.query_string(), "vsn").as_deref())
            .ok_or(OpenError::UnsupportedVsn)?;
        let config = &self.inner.config;
        let session = Session::new(
            Arc::new(RequestInfo::from_request(req)),
            match transport {
                Transport::WebSocket => TransportKind::WebSocket,
                Transport::LongPoll => TransportKind::Polling,
            },
            Limits {
                frames: config.max_queued_frames,
                bytes: config.max_queued_bytes,
            },
            self.inner.closing.clone(),
        )
        .map_err(|_| OpenError::ServerError)?;
        let socket = Arc::new(Socket::new(Arc::new(session), vsn, transport, auth_token));
        let state = self
            .inner
            .handler
            .connect(&socket)
            .await
            .map_err(|refusal| {
                tracing::debug!(%refusal, "phoenix socket refused");
                OpenError::Refused(refusal)
            })?;
        let entry = Entry {
            socket,
            state: Arc::new(state),
        };
        write(&self.inner.sockets).insert(entry.socket.id(), entry.clone());
        tracing::debug!(id = %entry.socket.id(), ?transport, ?vsn, "phoenix socket opened");
        self.watch();
        Ok(entry)
    }

    /// The socket with this id, open or closed but not yet cleaned up (a LongPoll session
    /// closed by the server waits a moment for a poll to take what was queued).
    pub(crate) fn lookup_any(&self, id: &str) -> Option<Entry<H::State>> {
        let id = Sid::parse(id)?;
        read(&self.inner.sockets).get(&id).cloned()
    }

    /// The open socket with this id.
    pub(crate) fn lookup(&self, id: &str) -> Option<Entry<H::State>> {
        let id = Sid::parse(id)?;
        read(&self.inner.sockets)
            .get(&id)
            .filter(|entry| !entry.socket.is_closed())
            .cloned()
    }

    /// A message from the client: the heartbeat is answered here, anything else goes to the
    /// handler.
    pub(crate) fn on_message(&self, entry: &Entry<H::State>, message: Message) {
        let socket = &entry.socket;
        if message.topic == "phoenix" && message.event == "heartbeat" {
            let _ = socket.reply(
                None,
                message.msg_ref.as_deref(),
                "phoenix",
                "ok",
                &empty_object(),
            );
            return;
        }
        self.inner.handler.on_message(socket, &entry.state, message);
    }

    /// Starts the watcher task unless it runs.
    fn watch(&self) {
        let mut watching = lock(&self.inner.watching);
        if !*watching {
            *watching = true;
            tokio::spawn(watcher(self.inner.clone()));
        }
    }
}

impl OpenError {
    /// The HTTP answer: Phoenix sends an empty body.
    pub(crate) fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status()).finish()
    }
}

/// The last value of query parameter `name`, percent-decoded (phoenix.js's LongPoll puts the
/// app's `token` param first and its session token last).
pub(crate) fn last_param(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// What a WebSocket handshake offered in `Sec-WebSocket-Protocol`.
pub(crate) struct Subprotocols {
    /// Any subprotocol at all.
    pub(crate) offered: bool,
    /// `phoenix`, which the `101` then selects.
    pub(crate) phoenix: bool,
    /// The `authToken` (`base64url.bearer.phx.<base64 without padding>`), decoded; `Err` when
    /// it is not base64 of UTF-8 text.
    pub(crate) token: Result<Option<String>, OpenError>,
}

/// Reads the subprotocols of a WebSocket handshake.
pub(crate) fn subprotocols(req: &HttpRequest) -> Subprotocols {
    let mut offered = false;
    let mut phoenix = false;
    let mut token = Ok(None);
    for value in req
        .headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
    {
        let Ok(value) = value.to_str() else {
            offered = true;
            continue;
        };
        for protocol in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            offered = true;
            if protocol == "phoenix" {
                phoenix = true;
            } else if let Some(encoded) = protocol.strip_prefix(AUTH_TOKEN_PREFIX) {
                token = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .map(Some)
                    .ok_or(OpenError::InvalidAuthToken);
            }
        }
    }
    Subprotocols {
        offered,
        phoenix,
        token,
    }
}

/// How often the watcher looks for idle sockets: a tenth of the shorter timeout, between
/// 10 ms and a second.
fn tick(config: &PhoenixConfig) -> Duration {
    (config.idle_timeout.min(config.longpoll_timeout) / 10)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// One task for every socket of a server: closes idle ones (a WebSocket silent for the idle
/// timeout, a LongPoll session not polled for its timeout) and cleans up closed ones (out of
/// the table, a stalled WebSocket's TCP connection shut down, the handler told). It ends when
/// no socket is left; the next one starts it again.
async fn watcher<H: PhoenixHandler>(inner: Arc<Inner<H>>) {
    let tick = tick(&inner.config);
    let idle = u64::try_from(inner.config.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let unpolled = u64::try_from(inner.config.longpoll_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut next_scan = tokio::time::Instant::now() + tick;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_scan) => {}
            () = inner.closing.wake.notified() => {}
        }
        if tokio::time::Instant::now() >= next_scan {
            next_scan = tokio::time::Instant::now() + tick;
            let now = now_ms();
            let stale: Vec<Arc<Socket>> = read(&inner.sockets)
                .values()
                .map(|entry| &entry.socket)
                .filter(|socket| {
                    let silent = now.saturating_sub(socket.last_seen());
                    match socket.transport() {
                        Transport::WebSocket => silent > idle,
                        Transport::LongPoll => !socket.is_polling() && silent > unpolled,
                    }
                })
                .cloned()
                .collect();
            for socket in stale {
                tracing::debug!(id = %socket.id(), "phoenix socket idle: closing");
                socket.close(CloseReason::PingTimeout);
            }
        }
        for id in inner.closing.take() {
            reap(&inner, id);
        }
        let mut watching = lock(&inner.watching);
        if read(&inner.sockets).is_empty() && inner.closing.is_empty() {
            *watching = false;
            return;
        }
    }
}

/// How long a LongPoll session closed by the server waits for the poll that takes what was
/// queued for it (at most the LongPoll window).
const POLL_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Cleans up a closed socket: out of the table, its TCP connection given a moment to take
/// what is left, then the handler hears of it. A LongPoll session closed by the server (a
/// shutdown, the application) stays reachable a moment, so that the client's next poll gets
/// what was queued before the close.
fn reap<H: PhoenixHandler>(inner: &Arc<Inner<H>>, id: Sid) {
    let Some(entry) = read(&inner.sockets).get(&id).cloned() else {
        return;
    };
    let socket = &entry.socket;
    if socket.transport() == Transport::LongPoll
        && socket
            .close_reason()
            .is_some_and(CloseReason::awaits_delivery)
    {
        let inner = inner.clone();
        let grace = inner.config.longpoll_window.min(POLL_CLOSE_GRACE);
        tokio::spawn(async move {
            let session = entry.socket.session();
            let _ = tokio::time::timeout(grace, session.close_delivered()).await;
            forget(&inner, id);
        });
    } else {
        forget(inner, id);
    }
}

fn forget<H: PhoenixHandler>(inner: &Inner<H>, id: Sid) {
    let Some(entry) = write(&inner.sockets).remove(&id) else {
        return;
    };
    let socket = &entry.socket;
    let reason = socket
        .close_reason()
        .cloned()
        .unwrap_or(CloseReason::TransportError);
    if let Some(tcp) = socket.session().tcp() {
        let linger = if reason.delivers_queued() {
            Duration::from_secs(1)
        } else {
            CLOSE_LINGER
        };
        tcp::end_after(tcp.clone(), linger);
    }
    tracing::debug!(id = %id, %reason, "phoenix socket closed");
    inner.handler.on_close(socket, &entry.state, &reason);
}

//! The Phoenix Channels endpoint: `<path>/websocket` and `<path>/longpoll`, the socket table,
//! the heartbeat reply, idle timeouts and the clean-up of closed sockets.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;

use super::config::PhoenixConfig;
use super::message::{Message, Vsn};
use super::socket::{Socket, Transport, empty_object};
use super::{longpoll, websocket};
use crate::endpoint::sockets::{self, Owner, Sockets};
use crate::engineio::{CloseReason, Limits, TransportKind};
use crate::origin::Verdict;
use crate::refusal::ConnectRefusal;

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
pub(crate) type Entry<S> = sockets::Entry<Socket, S>;

struct Inner<H: PhoenixHandler> {
    config: PhoenixConfig,
    handler: H,
    sockets: Sockets<Socket, H::State>,
}

impl<H: PhoenixHandler> Owner for Inner<H> {
    type Socket = Socket;
    type State = H::State;

    fn sockets(&self) -> &Sockets<Socket, H::State> {
        &self.sockets
    }

    /// A tenth of the shorter timeout, between 10 ms and a second.
    fn tick(&self) -> Duration {
        (self.config.idle_timeout.min(self.config.longpoll_timeout) / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    fn closed(&self, socket: &Arc<Socket>, state: &H::State, reason: &CloseReason) {
        self.handler.on_close(socket, state, reason);
    }
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

impl<H: PhoenixHandler> PhoenixServer<H> {
    /// A server with these settings over this handler.
    pub fn new(config: PhoenixConfig, handler: H) -> Self {
        PhoenixServer {
            inner: Arc::new(Inner {
                config,
                handler,
                sockets: Sockets::default(),
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
        self.inner.sockets.len()
    }

    /// Closes every open socket with `reason` (at shutdown: WebSocket close 1001).
    pub fn close_all(&self, reason: CloseReason) {
        for socket in self.inner.sockets.all() {
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
        let kind = match transport {
            Transport::WebSocket => TransportKind::WebSocket,
            Transport::LongPoll => TransportKind::Polling,
        };
        let limits = Limits {
            frames: config.max_queued_frames,
            bytes: config.max_queued_bytes,
        };
        let session = self
            .inner
            .sockets
            .session(req, kind, limits)
            .map_err(|_| OpenError::ServerError)?;
        let timeout = match transport {
            Transport::WebSocket => config.idle_timeout,
            Transport::LongPoll => config.longpoll_timeout,
        };
        let socket = Arc::new(Socket::new(session, vsn, transport, auth_token, timeout));
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
        sockets::admit(&self.inner, entry.clone());
        tracing::debug!(id = %entry.socket.id(), ?transport, ?vsn, "phoenix socket opened");
        Ok(entry)
    }

    /// The socket with this id, open or closed but not yet cleaned up (a LongPoll session
    /// closed by the server waits a moment for a poll to take what was queued).
    pub(crate) fn lookup_any(&self, id: &str) -> Option<Entry<H::State>> {
        self.inner.sockets.any(id)
    }

    /// The open socket with this id.
    pub(crate) fn lookup(&self, id: &str) -> Option<Entry<H::State>> {
        self.inner.sockets.open(id)
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

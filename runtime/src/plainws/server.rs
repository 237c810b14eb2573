//! The plain WebSocket endpoint: `<path>` (multiplexed) and `<path>/<channel>` (bound to one
//! channel), the socket table, pings, and what text and binary frames mean.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_http::ws;
use actix_web::body::BoxBody;
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};

use super::config::PlainConfig;
use super::message::{ClientMessage, ServerMessage};
use super::socket::PlainSocket;
use crate::endpoint::connection::{Protocol, connection};
use crate::endpoint::sockets::{self, Owner, Sockets};
use crate::engineio::wsio::Incoming;
use crate::engineio::{CloseReason, Limits, Session, TransportKind, tcp};
use crate::origin::Verdict;
use crate::refusal::ConnectRefusal;

/// The seam between the plain WebSocket wire and the layer above it (the channel gateway).
/// Called from the connections; must not block.
pub trait PlainHandler: Send + Sync + 'static {
    /// What the layer above keeps per socket.
    type State: Send + Sync + 'static;

    /// Whether a socket may be bound to `channel` (`<path>/<channel>`): when not, the upgrade
    /// is answered HTTP 404.
    fn knows(&self, channel: &str) -> bool;

    /// Decides whether a new socket may connect (before the `101`): `Err` answers HTTP 403.
    fn connect(
        &self,
        socket: &Arc<PlainSocket>,
    ) -> impl Future<Output = Result<Self::State, ConnectRefusal>> + Send;

    /// A message from the client, in order (`ping` is answered before it gets here).
    fn on_message(&self, socket: &Arc<PlainSocket>, state: &Self::State, message: ClientMessage);

    /// The socket closed; called once, after it left the table.
    fn on_close(&self, socket: &Arc<PlainSocket>, state: &Self::State, reason: &CloseReason);
}

/// A plain WebSocket server over a handler; mount it with [`PlainServer::configure`].
pub struct PlainServer<H: PlainHandler> {
    inner: Arc<Inner<H>>,
}

impl<H: PlainHandler> Clone for PlainServer<H> {
    fn clone(&self) -> Self {
        PlainServer {
            inner: self.inner.clone(),
        }
    }
}

impl<H: PlainHandler> std::fmt::Debug for PlainServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainServer")
            .field("path", &self.inner.config.path)
            .field("sockets", &self.socket_count())
            .finish_non_exhaustive()
    }
}

type Entry<S> = sockets::Entry<PlainSocket, S>;

struct Inner<H: PlainHandler> {
    config: PlainConfig,
    handler: H,
    sockets: Sockets<PlainSocket, H::State>,
}

impl<H: PlainHandler> Owner for Inner<H> {
    type Socket = PlainSocket;
    type State = H::State;

    fn sockets(&self) -> &Sockets<PlainSocket, H::State> {
        &self.sockets
    }

    /// A tenth of the shorter of the ping interval and timeout, between 10 ms and a second.
    fn tick(&self) -> Duration {
        (self.config.ping_interval.min(self.config.ping_timeout) / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    fn closed(&self, socket: &Arc<PlainSocket>, state: &H::State, reason: &CloseReason) {
        self.handler.on_close(socket, state, reason);
    }
}

/// Milliseconds, saturated.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl<H: PlainHandler> PlainServer<H> {
    /// A server with these settings over this handler.
    pub fn new(config: PlainConfig, handler: H) -> Self {
        PlainServer {
            inner: Arc::new(Inner {
                config,
                handler,
                sockets: Sockets::default(),
            }),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &PlainConfig {
        &self.inner.config
    }

    /// How many sockets are open now.
    pub fn socket_count(&self) -> usize {
        self.inner.sockets.len()
    }

    /// Closes every socket with `reason` (at shutdown: close 1001).
    pub fn close_all(&self, reason: CloseReason) {
        for socket in self.inner.sockets.all() {
            socket.close(reason.clone());
        }
    }

    /// Mounts `<path>` and `<path>/<channel>` on an actix app.
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let server = self.clone();
        move |cfg: &mut web::ServiceConfig| {
            let base = server.inner.config.path.trim_end_matches('/').to_owned();
            for path in [base.clone(), format!("{base}/{{channel:.+}}")] {
                let server = server.clone();
                cfg.service(web::resource(path).route(web::route().to(
                    move |req: HttpRequest, body: web::Payload| {
                        let server = server.clone();
                        async move { server.answer(req, body).await }
                    },
                )));
            }
        }
    }

    /// The origin policy first, then the path, the connect hook, the upgrade.
    async fn answer(&self, req: HttpRequest, payload: web::Payload) -> HttpResponse {
        if let Verdict::Refused(origin) = self.inner.config.origins.check(req.headers()) {
            tracing::info!(%origin, path = req.path(), "websocket refused: origin not allowed");
            return HttpResponse::Forbidden().finish();
        }
        if req.method() != Method::GET {
            return HttpResponse::BadRequest().finish();
        }
        let bound = req.match_info().get("channel").map(ToOwned::to_owned);
        if let Some(channel) = &bound
            && !self.inner.handler.knows(channel)
        {
            return HttpResponse::NotFound().finish();
        }
        let Ok(mut response) = ws::handshake(req.head()) else {
            return HttpResponse::BadRequest().finish();
        };
        let config = &self.inner.config;
        let limits = Limits {
            frames: config.max_queued_frames,
            bytes: config.max_queued_bytes,
        };
        let Ok(session) = self
            .inner
            .sockets
            .session(&req, TransportKind::WebSocket, limits)
        else {
            return HttpResponse::InternalServerError().finish();
        };
        let socket = Arc::new(PlainSocket::new(
            session,
            bound,
            millis(config.ping_interval),
            millis(config.ping_timeout),
        ));
        let state = match self.inner.handler.connect(&socket).await {
            Ok(state) => state,
            Err(refusal) => {
                tracing::debug!(%refusal, "websocket refused");
                return HttpResponse::Forbidden().finish();
            }
        };
        if let Some(tcp) = tcp::socket_of(&req) {
            socket.session().set_tcp(tcp);
        }
        let entry = Entry {
            socket,
            state: Arc::new(state),
        };
        sockets::admit(&self.inner, entry.clone());
        tracing::debug!(id = %entry.socket.id(), bound = entry.socket.bound(), "websocket opened");
        let body = connection(
            PlainFrames {
                inner: self.inner.clone(),
                entry,
            },
            payload,
            config.max_payload,
        );
        response.message_body(BoxBody::new(body)).map_or_else(
            |_| HttpResponse::InternalServerError().finish(),
            HttpResponse::from,
        )
    }
}

/// What a plain WebSocket's frames mean.
struct PlainFrames<H: PlainHandler> {
    inner: Arc<Inner<H>>,
    entry: Entry<H::State>,
}

impl<H: PlainHandler> Protocol for PlainFrames<H> {
    fn session(&self) -> &Arc<Session> {
        self.entry.socket.session()
    }

    fn on_message(&mut self, message: Incoming) {
        let socket = &self.entry.socket;
        match message {
            Incoming::Text(text) => match ClientMessage::decode(&text) {
                Ok(ClientMessage::Ping) => {
                    let _ = socket.send(&ServerMessage::Pong);
                }
                Ok(message) => self
                    .inner
                    .handler
                    .on_message(socket, &self.entry.state, message),
                Err(err) => {
                    // Errors are data: the client hears why, and the connection goes on.
                    tracing::debug!(id = %socket.id(), %err, "bad websocket message");
                    let _ = socket.send(&ServerMessage::Error {
                        reason: err.reason(),
                        message: &err.to_string(),
                    });
                }
            },
            Incoming::Binary(_) => {
                socket.close(CloseReason::UnsupportedData(
                    "binary frames are not part of the protocol",
                ));
            }
            Incoming::Pong => {}
        }
    }

    fn heard(&self) {
        self.entry.socket.heard();
    }

    fn take_ping(&self) -> bool {
        self.entry.socket.take_ping()
    }

    fn ping_due(&self) -> bool {
        self.entry.socket.ping_due()
    }
}

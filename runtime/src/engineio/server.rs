//! The Engine.IO server: the session table, request routing and validation, and the
//! handshake (the heartbeat that supervises every session is in `heartbeat`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use bytes::Bytes;
use bytestring::ByteString;
use serde::Deserialize;

use super::config::EngineConfig;
use super::error::{CloseReason, RequestError};
use super::heartbeat::{self, Heartbeat};
use super::outbox::Limits;
use super::packet::Packet;
use super::session::{Closing, Handshake, Session, TransportKind};
use super::sid::Sid;
use super::transport;
use crate::origin::Verdict;
use crate::sync::{read, write};

/// A message for the layer above Engine.IO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
}

/// The seam between Engine.IO and the layer above it (Socket.IO, or an application).
///
/// The engine calls these from its transports; they must not block. `State` is what the layer
/// keeps per session; the engine stores it beside the session and drops it after `on_close`.
pub trait EngineHandler: Send + Sync + 'static {
    /// Per-session state of the layer above.
    type State: Send + Sync + 'static;

    /// A session opened (after the handshake was accepted, before any message).
    fn on_open(&self, session: &Arc<Session>) -> Self::State;

    /// A message arrived, in order.
    fn on_message(&self, session: &Arc<Session>, state: &Self::State, message: Message);

    /// The session closed; called once, after which the session is gone from the table.
    fn on_close(&self, session: &Arc<Session>, state: &Self::State, reason: &CloseReason);
}

/// An Engine.IO server over a handler; mount it with [`Engine::configure`].
///
/// ```no_run
/// use std::sync::Arc;
/// use actix_web::{App, HttpServer};
/// use tidings_runtime::engineio::{CloseReason, Engine, EngineConfig, EngineHandler, Message, Session};
///
/// struct Echo;
/// impl EngineHandler for Echo {
///     type State = ();
///     fn on_open(&self, _: &Arc<Session>) {}
///     fn on_message(&self, session: &Arc<Session>, _: &(), message: Message) {
///         let _ = session.send(match message {
///             Message::Text(text) => tidings_runtime::engineio::Frame::message(&text),
///             Message::Binary(bytes) => tidings_runtime::engineio::Frame::Binary(bytes),
///         });
///     }
///     fn on_close(&self, _: &Arc<Session>, _: &(), _: &CloseReason) {}
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let engine = Engine::new(EngineConfig::default(), Echo);
/// HttpServer::new(move || App::new().configure(engine.configure()))
///     .bind(("127.0.0.1", 3000))?
///     .run()
///     .await
/// # }
/// ```
pub struct Engine<H: EngineHandler> {
    inner: Arc<EngineInner<H>>,
}

impl<H: EngineHandler> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Engine {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Entry<S> {
    pub(crate) session: Arc<Session>,
    pub(crate) state: Arc<S>,
}

impl<S> Clone for Entry<S> {
    fn clone(&self) -> Self {
        Entry {
            session: self.session.clone(),
            state: self.state.clone(),
        }
    }
}

pub(crate) struct EngineInner<H: EngineHandler> {
    pub(crate) config: EngineConfig,
    pub(crate) handler: H,
    pub(super) sessions: RwLock<HashMap<Sid, Entry<H::State>>>,
    /// The sessions the heartbeat task watches, and whether that task runs.
    pub(super) heartbeat: Mutex<Heartbeat>,
    /// Sessions closed and waiting for the heartbeat task to clean them up.
    pub(super) closing: Arc<Closing>,
}

#[derive(Deserialize)]
struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl<H: EngineHandler> EngineInner<H> {
    /// The open session with this id.
    pub(super) fn lookup(&self, sid: Sid) -> Option<Entry<H::State>> {
        read(&self.sessions).get(&sid).cloned()
    }
}

impl<H: EngineHandler> Engine<H> {
    /// A server with these settings over this handler.
    pub fn new(config: EngineConfig, handler: H) -> Self {
        Engine {
            inner: Arc::new(EngineInner {
                config,
                handler,
                sessions: RwLock::new(HashMap::new()),
                heartbeat: Mutex::new(Heartbeat::new()),
                closing: Arc::default(),
            }),
        }
    }

    /// The handler this engine calls.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The settings in use.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// How many sessions are open now.
    pub fn session_count(&self) -> usize {
        read(&self.inner.sessions).len()
    }

    /// Closes every open session with `reason` (used at shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        let sessions: Vec<_> = read(&self.inner.sessions)
            .values()
            .map(|e| e.session.clone())
            .collect();
        for session in sessions {
            session.close(reason.clone());
        }
    }

    /// Mounts the server at its path (with and without the trailing slash) on an actix app.
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let engine = self.clone();
        move |cfg: &mut web::ServiceConfig| {
            let path = engine.inner.config.path.clone();
            let trimmed = path.trim_end_matches('/').to_owned();
            let paths = if trimmed.is_empty() || trimmed == path {
                vec![path]
            } else {
                vec![trimmed, path]
            };
            // One resource per path: a static path matches by comparison, while a resource
            // with several paths is matched by a regex set on every request.
            for path in paths {
                let engine = engine.clone();
                cfg.service(web::resource(path).route(web::route().to(
                    move |req: HttpRequest, body: web::Payload| {
                        let engine = engine.clone();
                        async move { engine.answer(req, body).await }
                    },
                )));
            }
        }
    }

    /// Answers a request: the origin policy first, before anything is created; then the
    /// request itself, with the CORS headers of an allowed page of another origin.
    async fn answer(&self, req: HttpRequest, body: web::Payload) -> HttpResponse {
        let origins = &self.inner.config.origins;
        let verdict = origins.check(req.headers());
        if let Verdict::Refused(origin) = &verdict {
            tracing::info!(%origin, path = req.path(), "request refused: origin not allowed");
            return RequestError::OriginNotAllowed.error_response();
        }
        if req.method() == Method::OPTIONS {
            return match &verdict {
                Verdict::CrossOrigin(origin) => origins.preflight(origin, req.headers()),
                _ => RequestError::BadRequest.error_response(),
            };
        }
        let mut response = self
            .handle(req, body)
            .await
            .unwrap_or_else(|err| err.error_response());
        if let Verdict::CrossOrigin(origin) = &verdict
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            origins.cors_headers(origin, &mut response);
        }
        response
    }

    async fn handle(
        &self,
        req: HttpRequest,
        body: web::Payload,
    ) -> Result<HttpResponse, RequestError> {
        let query = web::Query::<EngineQuery>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or(EngineQuery {
                eio: None,
                transport: None,
                sid: None,
            });
        let config = &self.inner.config;
        let transport = match query.transport.as_deref() {
            Some("polling") if config.allow_polling => TransportKind::Polling,
            Some("websocket") if config.allow_websocket => TransportKind::WebSocket,
            _ => return Err(RequestError::UnknownTransport),
        };
        if query.eio.as_deref() != Some("4") {
            return Err(RequestError::UnsupportedProtocolVersion);
        }
        let Some(sid) = query.sid else {
            if req.method() != Method::GET {
                return Err(RequestError::BadHandshakeMethod);
            }
            return match transport {
                TransportKind::Polling => self.open_polling(&req),
                TransportKind::WebSocket => transport::websocket::open(self, &req, body, None),
            };
        };
        // A closed session is unknown at once (the reference server forgets it at its close),
        // except a polling one closed by the server whose close no poll has carried yet.
        let entry = Sid::parse(&sid)
            .and_then(|sid| self.inner.lookup(sid))
            .filter(|entry| !entry.session.is_gone())
            .ok_or(RequestError::UnknownSid)?;
        match (transport, entry.session.transport()) {
            (TransportKind::Polling, TransportKind::Polling) => match *req.method() {
                Method::GET => transport::polling::poll(self, entry).await,
                Method::POST => transport::polling::receive(self, entry, &req, body).await,
                _ => Err(RequestError::BadRequest),
            },
            (TransportKind::WebSocket, TransportKind::Polling) => {
                transport::websocket::open(self, &req, body, Some(entry))
            }
            (TransportKind::WebSocket, TransportKind::WebSocket) => {
                transport::websocket::refuse(&req, body)
            }
            (TransportKind::Polling, TransportKind::WebSocket) => Err(RequestError::BadRequest),
        }
    }

    /// The open packet for a new session.
    fn open_packet(&self, sid: Sid, transport: TransportKind) -> ByteString {
        let config = &self.inner.config;
        let upgrades = if transport == TransportKind::Polling && config.allow_websocket {
            r#"["websocket"]"#
        } else {
            "[]"
        };
        format!(
            r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            config.ping_interval.as_millis(),
            config.ping_timeout.as_millis(),
            config.max_payload
        )
        .into()
    }

    /// Creates a session, registers it, hands it to the heartbeat, and returns its open packet.
    pub(crate) fn create_session(
        &self,
        req: &HttpRequest,
        transport: TransportKind,
    ) -> Result<(Entry<H::State>, ByteString), RequestError> {
        let handshake = Arc::new(Handshake::from_request(req));
        let session = Session::new(
            handshake,
            transport,
            Limits {
                frames: self.inner.config.max_queued_frames,
                bytes: self.inner.config.max_queued_bytes,
            },
            self.inner.closing.clone(),
        )
        .map_err(|_| RequestError::ServerError)?;
        let session = Arc::new(session);
        let open = self.open_packet(session.sid(), transport);
        let state = Arc::new(self.inner.handler.on_open(&session));
        let entry = Entry { session, state };
        write(&self.inner.sessions).insert(entry.session.sid(), entry.clone());
        tracing::debug!(sid = %entry.session.sid(), transport = transport.as_str(), "session opened");
        heartbeat::watch(&self.inner, entry.session.clone());
        Ok((entry, open))
    }

    fn open_polling(&self, req: &HttpRequest) -> Result<HttpResponse, RequestError> {
        let (_, open) = self.create_session(req, TransportKind::Polling)?;
        Ok(transport::polling::text_response(open.to_string()))
    }

    /// Handles one decoded packet from a client, whatever transport brought it.
    pub(crate) fn on_packet(&self, entry: &Entry<H::State>, packet: Packet) {
        let Entry { session, state } = entry;
        match packet {
            Packet::Message(text) => {
                self.inner
                    .handler
                    .on_message(session, state, Message::Text(text))
            }
            Packet::Binary(bytes) => {
                self.inner
                    .handler
                    .on_message(session, state, Message::Binary(bytes))
            }
            Packet::Pong(_) => session.pong(),
            Packet::Close => session.close(CloseReason::TransportClose),
            Packet::Noop | Packet::Ping(_) | Packet::Upgrade => {}
            Packet::Open(_) => session.close(CloseReason::ProtocolViolation(
                "open packet from the client",
            )),
        }
    }
}

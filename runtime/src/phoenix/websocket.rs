//! `<path>/websocket`: a phoenix.js socket over one WebSocket (the connection itself is the
//! endpoints' shared one; this is what its frames mean).

use std::sync::Arc;

use actix_http::ws::{self, CloseCode};
use actix_web::body::BoxBody;
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{HttpRequest, HttpResponse, web};

use super::message::{Message, Vsn};
use super::server::{Entry, OpenError, PhoenixHandler, PhoenixServer, Subprotocols, subprotocols};
use super::socket::Transport;
use crate::endpoint::connection::{Protocol, connection};
use crate::engineio::wsio::{self, Incoming};
use crate::engineio::{CloseReason, Session, tcp};

/// Accepts a WebSocket: the handshake checked, the socket opened (the connect hook says
/// yes), then `101 Switching Protocols` with the connection as its body.
pub(crate) async fn open<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match accept(server, req, payload).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(%err, "phoenix websocket refused");
            err.response()
        }
    }
}

async fn accept<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OpenError> {
    if req.method() != actix_web::http::Method::GET {
        return Err(OpenError::BadRequest);
    }
    let Subprotocols {
        offered,
        phoenix,
        token,
    } = subprotocols(req);
    if offered && !phoenix {
        return Err(OpenError::UnsupportedSubprotocol);
    }
    let token = token?;
    let mut response = ws::handshake(req.head()).map_err(|_| OpenError::BadRequest)?;
    let entry = server.open(req, Transport::WebSocket, token).await?;
    if let Some(socket) = tcp::socket_of(req) {
        entry.socket.session().set_tcp(socket);
    }
    if phoenix {
        response.insert_header((SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix")));
    }
    let max = server.config().max_payload;
    let body = connection(
        PhoenixFrames {
            server: server.clone(),
            entry,
        },
        payload,
        max,
    );
    response
        .message_body(BoxBody::new(body))
        .map(HttpResponse::from)
        .map_err(|_| OpenError::ServerError)
}

/// What a phoenix.js WebSocket's frames mean.
struct PhoenixFrames<H: PhoenixHandler> {
    server: PhoenixServer<H>,
    entry: Entry<H::State>,
}

impl<H: PhoenixHandler> Protocol for PhoenixFrames<H> {
    fn session(&self) -> &Arc<Session> {
        self.entry.socket.session()
    }

    fn on_message(&mut self, message: Incoming) {
        let socket = &self.entry.socket;
        match decode(socket.vsn(), message) {
            Ok(Some(message)) => self.server.on_message(&self.entry, message),
            Ok(None) => {}
            Err(reason) => {
                tracing::debug!(id = %socket.id(), %reason, "phoenix socket closing");
                socket.close(reason);
            }
        }
    }

    fn heard(&self) {
        self.entry.socket.touch();
    }

    /// As a Phoenix server closes: never 1000 when the client should come back (phoenix.js up
    /// to 1.8.12 does not reconnect after 1000), so a closure by the server or the
    /// application and an idle timeout are 1001.
    fn close_code(&self, reason: &CloseReason) -> CloseCode {
        match reason {
            CloseReason::ForcedClose | CloseReason::PingTimeout => CloseCode::Away,
            other => wsio::close_code(other),
        }
    }
}

/// A client frame as a Phoenix message.
fn decode(vsn: Vsn, incoming: Incoming) -> Result<Option<Message>, CloseReason> {
    let decoded = match incoming {
        Incoming::Text(text) => Message::decode_text(vsn, &text),
        Incoming::Binary(_) if vsn == Vsn::V1 => {
            return Err(CloseReason::ProtocolViolation(
                "binary frame from a vsn 1.0.0 client",
            ));
        }
        Incoming::Binary(bytes) => Message::decode_binary(&bytes),
        Incoming::Pong => return Ok(None),
    };
    decoded
        .map(Some)
        .map_err(|err| CloseReason::ParseError(err.to_string()))
}

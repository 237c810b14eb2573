//! Errors of the Engine.IO layer, and their consequences on the wire.

use actix_web::{HttpResponse, http::StatusCode};

/// A packet or payload from a peer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet had no type character.
    #[error("empty packet")]
    Empty,
    /// The type character is not one of the spec's.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A `b` packet of a polling payload was not valid base64.
    #[error("invalid base64 in binary packet")]
    Base64,
    /// A polling body was not valid UTF-8.
    #[error("payload is not valid UTF-8")]
    InvalidUtf8,
}

/// A request the Engine.IO server refuses, mapped to the official server's HTTP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The `transport` query parameter is missing or not `polling` / `websocket`.
    #[error("Transport unknown")]
    UnknownTransport,
    /// The `sid` names no open session.
    #[error("Session ID unknown")]
    UnknownSid,
    /// A handshake used another method than GET.
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// A request that does not fit the session's state (overlapping polls, polling after the
    /// upgrade, an unsupported method).
    #[error("Bad request")]
    BadRequest,
    /// The `EIO` query parameter is not `4`.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
    /// A browser page of an origin that the server's origin policy does not allow
    /// (HTTP 403; see [`OriginPolicy`](crate::origin::OriginPolicy)).
    #[error("Origin not allowed")]
    OriginNotAllowed,
    /// The server could not open a session (its OS random source failed; HTTP 500).
    #[error("Server error")]
    ServerError,
}

impl RequestError {
    /// The error code the official server sends in its JSON body.
    pub fn code(self) -> u8 {
        match self {
            RequestError::UnknownTransport => 0,
            RequestError::UnknownSid => 1,
            RequestError::BadHandshakeMethod => 2,
            RequestError::BadRequest | RequestError::ServerError => 3,
            RequestError::OriginNotAllowed => 4,
            RequestError::UnsupportedProtocolVersion => 5,
        }
    }
}

impl actix_web::ResponseError for RequestError {
    fn status_code(&self) -> StatusCode {
        match self {
            RequestError::OriginNotAllowed => StatusCode::FORBIDDEN,
            RequestError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .content_type("application/json")
            .body(format!(
                r#"{{"code":{},"message":"{}"}}"#,
                self.code(),
                self
            ))
    }
}

/// Why an Engine.IO session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent a close packet or closed its WebSocket cleanly.
    #[error("transport close")]
    TransportClose,
    /// The transport failed (WebSocket error, connection dropped).
    #[error("transport error")]
    TransportError,
    /// No pong arrived within pingTimeout of a ping.
    #[error("ping timeout")]
    PingTimeout,
    /// The peer sent something that could not be decoded.
    #[error("parse error: {0}")]
    ParseError(String),
    /// A WebSocket text frame that is not UTF-8 (WebSocket close 1007).
    #[error("parse error: invalid UTF-8 in a text frame")]
    InvalidUtf8,
    /// The peer broke the protocol (overlapping polls, a packet out of place).
    #[error("protocol violation: {0}")]
    ProtocolViolation(&'static str),
    /// The peer sent more than maxPayload in one request or frame.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The peer did not drain its outbound queue fast enough.
    #[error("outbound queue full")]
    QueueFull,
    /// The application closed the session.
    #[error("forced close")]
    ForcedClose,
    /// The server is shutting down.
    #[error("server shutting down")]
    ServerShutdown,
    /// The application refused what the connection is for (a plain WebSocket bound to a
    /// channel it may not join; WebSocket close 1008).
    #[error("refused: {0}")]
    Refused(String),
    /// The peer sent a kind of message the protocol does not take (WebSocket close 1003).
    #[error("unsupported data: {0}")]
    UnsupportedData(&'static str),
}

impl CloseReason {
    /// Whether a polling client must still be told of this close by its next poll: the
    /// server's own decisions (the application's, a shutdown). After any other close the
    /// session is forgotten at once, as the reference server does, and the next request
    /// with its sid is answered "unknown sid".
    pub(crate) fn awaits_delivery(&self) -> bool {
        matches!(self, CloseReason::ForcedClose | CloseReason::ServerShutdown)
    }

    /// Whether what was queued before this close is still written to the client: not when
    /// the client is gone or did not read (it left, the transport failed, its queue filled).
    pub(crate) fn delivers_queued(&self) -> bool {
        !matches!(
            self,
            CloseReason::TransportClose | CloseReason::TransportError | CloseReason::QueueFull
        )
    }
}

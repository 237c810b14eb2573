//! `<path>/longpoll`: phoenix.js's LongPoll transport. The HTTP status is always 200; the
//! protocol's own status is the `status` field of a JSON body:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET` without a token | a new socket: `{"status":410,"token":T,"messages":[]}`; refused: `{"status":403}` |
//! | `GET ?token=T` | held up to the window: `{"status":200,"token":T,"messages":[...]}` or `{"status":204,"token":T,"messages":[]}` |
//! | `POST ?token=T`, ndjson | each line a frame (`[`/`{`: text, else base64 binary): `{"status":200}` |
//! | an unknown or closed token | `{"status":410}` (phoenix.js reconnects and rejoins) |
//!
//! The token is the socket's id: 20 characters from the OS random source, so it cannot be
//! guessed, and it is all that names a session.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Serialize;

use super::message::{DecodeError, Message, Vsn};
use super::server::{Entry, OpenError, PhoenixHandler, PhoenixServer, last_param};
use super::socket::Transport;
use crate::engineio::{CloseReason, Frame};
use crate::request::{BodyError, read_body};

/// A LongPoll answer's body.
#[derive(Serialize)]
struct Status<'a> {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<&'a str>>,
}

fn respond(status: u16, token: Option<&str>, messages: Option<Vec<&str>>) -> HttpResponse {
    let body = serde_json::to_string(&Status {
        status,
        token,
        messages,
    })
    .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// Answers one LongPoll request.
pub(crate) async fn answer<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    req: &HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let token = req
        .headers()
        .get("x-phoenix-longpoll-token")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned)
        .or_else(|| last_param(req.query_string(), "token"))
        .filter(|token| !token.is_empty());
    match (req.method(), token) {
        (&Method::GET, None) => open(server, req).await,
        // A token that names no session (the app's own `token` param, or a session that
        // ended) opens a new one, as Phoenix does; a client holding a session token reads the
        // 410 as "session gone" and reconnects.
        (&Method::GET, Some(token)) => match server.lookup_any(&token) {
            Some(entry) => poll(server, &entry).await,
            None => open(server, req).await,
        },
        (&Method::POST, Some(token)) => match server.lookup(&token) {
            Some(entry) => publish(server, &entry, req, body).await,
            None => respond(410, None, None),
        },
        (&Method::POST, None) => respond(410, None, None),
        _ => HttpResponse::BadRequest().finish(),
    }
}

/// A new socket, its token in a `410` (which phoenix.js reads as "open").
async fn open<H: PhoenixHandler>(server: &PhoenixServer<H>, req: &HttpRequest) -> HttpResponse {
    let auth_token = req
        .headers()
        .get("x-phoenix-authtoken")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    match server.open(req, Transport::LongPoll, auth_token).await {
        Ok(entry) => {
            let token = entry.socket.id();
            respond(410, Some(token.as_str()), Some(Vec::new()))
        }
        Err(OpenError::ServerError) => respond(500, None, None),
        Err(err) => {
            tracing::debug!(%err, "phoenix longpoll refused");
            respond(403, None, None)
        }
    }
}

/// Waits up to the window for messages, then hands over everything queued.
async fn poll<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    entry: &Entry<H::State>,
) -> HttpResponse {
    let socket = &entry.socket;
    let session = socket.session();
    let token = socket.id();
    let window = server.config().longpoll_window;
    socket.set_polling(true);
    /// Marks the poll over however it ends (the client may go away while it waits).
    struct Polling<'a>(&'a super::Socket);
    impl Drop for Polling<'_> {
        fn drop(&mut self) {
            self.0.set_polling(false);
        }
    }
    let _polling = Polling(socket);
    let deadline = tokio::time::Instant::now() + window;
    // One poll at a time reads the queue; a second one waits for the first.
    let Ok(mut queue) = tokio::time::timeout_at(deadline, session.clone().reader()).await else {
        return respond(204, Some(token.as_str()), Some(Vec::new()));
    };
    let mut frames = Vec::new();
    if !session.is_closed() {
        tokio::select! {
            biased;
            frame = queue.recv() => frames.push(frame),
            () = session.closed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    if !session.is_closed()
        || session
            .close_reason()
            .is_some_and(CloseReason::delivers_queued)
    {
        let limit = server.config().max_payload;
        let mut size: usize = frames.iter().map(Frame::len).sum();
        while size < limit {
            let Some(frame) = queue.try_recv() else { break };
            size += frame.len();
            frames.push(frame);
        }
    }
    if session.is_closed() {
        // This answer carries the close: the session can go.
        session.mark_close_delivered();
    }
    if frames.is_empty() {
        return if session.is_closed() {
            respond(410, None, None)
        } else {
            respond(204, Some(token.as_str()), Some(Vec::new()))
        };
    }
    let messages: Vec<&str> = frames
        .iter()
        .filter_map(|frame| {
            let text = frame.text().map(|text| &**text);
            if text.is_none() {
                tracing::warn!(id = %token, "binary frame queued for a LongPoll client: left out");
            }
            text
        })
        .collect();
    respond(200, Some(token.as_str()), Some(messages))
}

/// Reads an upload: one frame per line, handed to the server in order.
async fn publish<H: PhoenixHandler>(
    server: &PhoenixServer<H>,
    entry: &Entry<H::State>,
    req: &HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let socket = &entry.socket;
    let config = server.config();
    let body = match read_body(req, body, config.max_payload).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            socket.close(CloseReason::PayloadTooLarge);
            return respond(413, None, None);
        }
        Err(BodyError::Failed) => return respond(400, None, None),
    };
    socket.touch();
    match decode_upload(socket.vsn(), &body, config.max_longpoll_lines) {
        Ok(messages) => {
            for message in messages {
                server.on_message(entry, message);
            }
        }
        Err(err) => {
            tracing::debug!(id = %socket.id(), %err, "bad LongPoll upload");
            socket.close(match err {
                UploadError::InvalidUtf8 => CloseReason::InvalidUtf8,
                UploadError::TooManyLines(_) => {
                    CloseReason::ProtocolViolation("too many lines in one LongPoll upload")
                }
                other => CloseReason::ParseError(other.to_string()),
            });
            return respond(400, None, None);
        }
    }
    respond(200, None, None)
}

/// Why a LongPoll upload was refused (the whole upload: none of its lines is handled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The body is not UTF-8.
    #[error("upload is not valid UTF-8")]
    InvalidUtf8,
    /// More lines than allowed (phoenix.js sends at most 100).
    #[error("{0} lines in one upload")]
    TooManyLines(usize),
    /// A line that starts like JSON but is no frame.
    #[error("line {line}: {error}")]
    Text {
        /// Which line (from 1).
        line: usize,
        /// What is wrong with it.
        error: DecodeError,
    },
    /// A line that is not valid base64.
    #[error("line {0}: not base64")]
    Base64(usize),
    /// A base64 line whose bytes are no binary frame.
    #[error("line {line}: {error}")]
    Binary {
        /// Which line (from 1).
        line: usize,
        /// What is wrong with it.
        error: DecodeError,
    },
}

/// The frames of a LongPoll upload (`application/x-ndjson`): one per non-empty line; a line
/// that starts with `[` or `{` is a text frame of serializer `vsn`, any other is a base64
/// binary frame. All of them, or an error and none.
///
/// ```
/// use tidings_runtime::phoenix::{decode_upload, UploadError, Vsn};
/// let body = b"[\"1\",\"1\",\"room:1\",\"phx_join\",{}]\nAAEBAwIxMnQ6MXVw3q0=";
/// let messages = decode_upload(Vsn::V2, body, 100).unwrap();
/// assert_eq!(messages[0].event, "phx_join");
/// assert_eq!(messages[1].topic, "t:1");
/// assert_eq!(decode_upload(Vsn::V2, b"a\nb\nc", 2), Err(UploadError::TooManyLines(3)));
/// ```
///
/// # Errors
/// [`UploadError`] for the first thing wrong.
pub fn decode_upload(vsn: Vsn, body: &[u8], max_lines: usize) -> Result<Vec<Message>, UploadError> {
    let text = std::str::from_utf8(body).map_err(|_| UploadError::InvalidUtf8)?;
    let lines: Vec<&str> = text.split('\n').filter(|line| !line.is_empty()).collect();
    if lines.len() > max_lines {
        return Err(UploadError::TooManyLines(lines.len()));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(at, line)| {
            let line_no = at + 1;
            if line.starts_with('[') || line.starts_with('{') {
                Message::decode_text(vsn, line).map_err(|error| UploadError::Text {
                    line: line_no,
                    error,
                })
            } else {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(line.trim_end_matches('\r'))
                    .map_err(|_| UploadError::Base64(line_no))?;
                Message::decode_binary(&bytes).map_err(|error| UploadError::Binary {
                    line: line_no,
                    error,
                })
            }
        })
        .collect()
}

//! One phoenix.js connection, whatever its transport: its serializer, its outbound queue and
//! how it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;

use super::message::{Body, Message, Vsn};
use crate::endpoint::sockets::{Clock, Liveness, Watched};
use crate::engineio::{CloseReason, Frame, SendError, Session, Sid};
use crate::request::RequestInfo;

/// How a socket reaches its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `<path>/websocket`.
    WebSocket,
    /// `<path>/longpoll`: no binary frames toward the client.
    LongPoll,
}

/// One connection of a phoenix.js client.
#[derive(Debug)]
pub struct Socket {
    /// The queue toward the client, the close and its reason (an Engine.IO session serves
    /// as the plumbing; nothing of Engine.IO's protocol is used).
    session: Arc<Session>,
    vsn: Vsn,
    transport: Transport,
    auth_token: Option<Box<str>>,
    /// When the client was last heard from (WebSocket) or last polled (LongPoll).
    clock: Clock,
    /// How long it may stay silent (WebSocket) or unpolled (LongPoll), in milliseconds.
    timeout_ms: u64,
    /// A LongPoll request is waiting for messages right now.
    polling: AtomicBool,
}

/// How long a LongPoll session closed by the server waits for the poll that takes what was
/// queued for it.
const POLL_CLOSE_GRACE: Duration = Duration::from_secs(2);

impl Socket {
    pub(crate) fn new(
        session: Arc<Session>,
        vsn: Vsn,
        transport: Transport,
        auth_token: Option<String>,
        timeout: Duration,
    ) -> Self {
        Socket {
            session,
            vsn,
            transport,
            auth_token: auth_token.map(String::into_boxed_str),
            clock: Clock::default(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            polling: AtomicBool::new(false),
        }
    }

    /// The socket's id (also its LongPoll token): 20 random URL-safe characters.
    pub fn id(&self) -> Sid {
        self.session.sid()
    }

    /// The serializer the client asked for.
    pub fn vsn(&self) -> Vsn {
        self.vsn
    }

    /// Its transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The opening request: headers, query string (the socket params, `vsn` among them) and
    /// address.
    pub fn request(&self) -> &Arc<RequestInfo> {
        self.session.handshake()
    }

    /// The `authToken` the client gave (phoenix.js 1.8: a WebSocket subprotocol, or the
    /// `X-Phoenix-AuthToken` header over LongPoll).
    pub fn auth_token(&self) -> Option<&str> {
        self.auth_token.as_deref()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Queues `message` for the client, in its serializer.
    ///
    /// # Errors
    /// [`SendError`] when the socket is closed or its queue is full (it is then closing).
    pub fn send(&self, message: &Message) -> Result<(), SendError> {
        self.send_frame(frame(message, self.vsn, self.binary_frames()))
    }

    /// Queues an already encoded frame (see [`frame`]).
    ///
    /// # Errors
    /// [`SendError`] when the socket is closed or its queue is full (it is then closing).
    pub fn send_frame(&self, frame: Frame) -> Result<(), SendError> {
        self.session.send(frame)
    }

    /// Queues a `phx_reply`: `{"status": status, "response": response}` for the push `msg_ref`.
    ///
    /// # Errors
    /// [`SendError`] when the socket is closed or its queue is full (it is then closing).
    pub fn reply(
        &self,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        status: &str,
        response: &RawValue,
    ) -> Result<(), SendError> {
        #[derive(serde::Serialize)]
        struct Reply<'a> {
            status: &'a str,
            response: &'a RawValue,
        }
        let payload = serde_json::value::to_raw_value(&Reply { status, response })
            .map_err(|_| SendError::Closed)?;
        self.send(&Message {
            join_ref: join_ref.map(ToOwned::to_owned),
            msg_ref: msg_ref.map(ToOwned::to_owned),
            topic: topic.to_owned(),
            event: "phx_reply".to_owned(),
            payload: Body::Json(payload),
        })
    }

    /// Whether binary payloads reach this client as binary frames (V2 over WebSocket).
    pub fn binary_frames(&self) -> bool {
        self.vsn == Vsn::V2 && self.transport == Transport::WebSocket
    }

    /// Closes the socket; the first reason wins. What was queued before still goes out (but
    /// when the client is gone or too slow), then the WebSocket's close frame.
    pub fn close(&self, reason: CloseReason) {
        self.session.close(reason);
    }

    /// Whether it is closed.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Why it closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.session.close_reason()
    }

    /// The client was heard from (or polled) now.
    pub(crate) fn touch(&self) {
        self.clock.heard();
    }

    pub(crate) fn set_polling(&self, polling: bool) {
        self.polling.store(polling, Ordering::Relaxed);
        self.touch();
    }
}

/// Phoenix has no server pings: a WebSocket silent for the idle timeout (phoenix.js sends a
/// heartbeat every 30 s) and a LongPoll session with no request for its timeout are closed.
impl Watched for Socket {
    fn session(&self) -> &Arc<Session> {
        &self.session
    }

    fn liveness(&self, now: u64) -> Liveness {
        let waiting = self.transport == Transport::LongPoll && self.polling.load(Ordering::Relaxed);
        if !waiting && self.clock.silent(now) > self.timeout_ms {
            Liveness::Dead
        } else {
            Liveness::Alive
        }
    }

    fn close_grace(&self) -> Option<Duration> {
        (self.transport == Transport::LongPoll).then_some(POLL_CLOSE_GRACE)
    }
}

/// The frame that carries `message` to a client of serializer `vsn`: a V2 binary frame for
/// a binary payload when the client takes them (`binary`), else a text frame. A binary
/// payload that has to go as text (V1, LongPoll, a field over 255 bytes) becomes the JSON
/// object `{"binary": "<base64>"}`.
///
/// ```
/// use tidings_runtime::engineio::Frame;
/// use tidings_runtime::phoenix::{frame, Body, Message, Vsn};
/// let message = Message { join_ref: None, msg_ref: None, topic: "t".into(), event: "e".into(), payload: Body::Binary(vec![1u8, 2].into()) };
/// assert_eq!(frame(&message, Vsn::V2, true), Frame::Binary(vec![2u8, 1, 1, b't', b'e', 1, 2].into()));
/// assert_eq!(frame(&message, Vsn::V2, false).text().map(|t| &**t), Some(r#"[null,null,"t","e",{"binary":"AQI="}]"#));
/// ```
pub fn frame(message: &Message, vsn: Vsn, binary: bool) -> Frame {
    if let Body::Binary(bytes) = &message.payload {
        if binary && let Some(encoded) = message.encode_binary() {
            return Frame::Binary(encoded);
        }
        let message = Message {
            payload: Body::Json(crate::payload::binary_as_json(bytes)),
            ..message.clone()
        };
        return text_frame(&message, vsn);
    }
    text_frame(message, vsn)
}

fn text_frame(message: &Message, vsn: Vsn) -> Frame {
    Frame::Text(message.encode_text(vsn).unwrap_or_default().into())
}

/// `{}`.
pub(crate) fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("{{}} is JSON"))
}

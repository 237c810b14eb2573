//! Engine.IO v4 packets: one variant per packet type of the spec, and their text and binary
//! encodings.

use std::sync::Arc;

use actix_http::ws::{Codec, Message};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use tokio_util::codec::Encoder as _;

use super::error::DecodeError;

/// An Engine.IO packet, as it travels in a WebSocket frame or in a polling payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, carrying the JSON session parameters.
    Open(ByteString),
    /// `1`: the session is closing.
    Close,
    /// `2`: a heartbeat ping; `2probe` during the upgrade.
    Ping(ByteString),
    /// `3`: the answer to a ping; `3probe` during the upgrade.
    Pong(ByteString),
    /// `4`: a text message for the layer above.
    Message(ByteString),
    /// A binary message for the layer above (a binary WebSocket frame, or `b<base64>` in polling).
    Binary(Bytes),
    /// `5`: the client switches to the WebSocket transport.
    Upgrade,
    /// `6`: nothing; answers a pending poll during an upgrade.
    Noop,
}

impl Packet {
    /// Decodes a text packet (a WebSocket text frame, or one packet of a polling payload).
    ///
    /// A polling payload carries binary messages as `b` followed by base64; pass
    /// `allow_base64 = true` there. Over WebSocket binary travels in binary frames instead.
    ///
    /// # Errors
    /// [`DecodeError`] when the text is empty, the type is unknown, or the base64 is invalid.
    ///
    /// ```
    /// use tidings_runtime::engineio::Packet;
    /// assert_eq!(Packet::decode_text("4hello".into(), false).unwrap(), Packet::Message("hello".into()));
    /// assert!(Packet::decode_text("9".into(), false).is_err());
    /// ```
    pub fn decode_text(text: ByteString, allow_base64: bool) -> Result<Self, DecodeError> {
        let Some(&kind) = text.as_bytes().first() else {
            return Err(DecodeError::Empty);
        };
        let rest = || text.slice_ref(&text[1..]);
        Ok(match kind {
            b'0' => Packet::Open(rest()),
            b'1' => Packet::Close,
            b'2' => Packet::Ping(rest()),
            b'3' => Packet::Pong(rest()),
            b'4' => Packet::Message(rest()),
            b'5' => Packet::Upgrade,
            b'6' => Packet::Noop,
            b'b' if allow_base64 => Packet::Binary(
                base64::engine::general_purpose::STANDARD
                    .decode(&text.as_bytes()[1..])
                    .map_err(|_| DecodeError::Base64)?
                    .into(),
            ),
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// The type character of a text packet (`None` for binary messages).
    pub fn type_char(&self) -> Option<char> {
        Some(match self {
            Packet::Open(_) => '0',
            Packet::Close => '1',
            Packet::Ping(_) => '2',
            Packet::Pong(_) => '3',
            Packet::Message(_) => '4',
            Packet::Upgrade => '5',
            Packet::Noop => '6',
            Packet::Binary(_) => return None,
        })
    }

    /// Encodes this packet as one frame ready for any transport.
    ///
    /// ```
    /// use tidings_runtime::engineio::{Frame, Packet};
    /// assert_eq!(Packet::Ping("probe".into()).encode(), Frame::Text("2probe".into()));
    /// ```
    pub fn encode(&self) -> Frame {
        let data: &str = match self {
            Packet::Open(data)
            | Packet::Ping(data)
            | Packet::Pong(data)
            | Packet::Message(data) => data,
            Packet::Binary(bytes) => return Frame::Binary(bytes.clone()),
            Packet::Close | Packet::Upgrade | Packet::Noop => "",
        };
        let mut text = String::with_capacity(1 + data.len());
        text.push(self.type_char().unwrap_or('4'));
        text.push_str(data);
        Frame::Text(text.into())
    }
}

/// An encoded packet, ready to be written by a transport; cheap to clone, so a broadcast encodes
/// once and hands the same frame to every recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole text packet, type character included (`4hello`, `2`).
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
    /// A text packet bound for many connections, its WebSocket frame encoded once for all of
    /// them ([`Frame::shared`]).
    Shared(Arc<SharedText>),
}

/// A text packet together with the WebSocket frame that carries it, so that a broadcast's
/// WebSocket connections copy the same bytes instead of each encoding a frame.
#[derive(Debug, PartialEq, Eq)]
pub struct SharedText {
    text: ByteString,
    websocket: Bytes,
}

impl SharedText {
    /// The packet's text, type character included.
    pub fn text(&self) -> &ByteString {
        &self.text
    }

    /// The whole WebSocket text frame (header and payload, unmasked, as a server sends it).
    pub fn websocket(&self) -> &Bytes {
        &self.websocket
    }
}

/// Appends one server WebSocket frame (never masked) to `out`.
pub(crate) fn encode_websocket(out: &mut BytesMut, message: Message) {
    // Encoding into a `BytesMut` cannot fail.
    let _ = Codec::new().encode(message, out);
}

impl Frame {
    /// A text message frame (`4` + `text`).
    ///
    /// ```
    /// use tidings_runtime::engineio::Frame;
    /// assert_eq!(Frame::message("hi"), Frame::Text("4hi".into()));
    /// ```
    pub fn message(text: &str) -> Self {
        let mut out = String::with_capacity(1 + text.len());
        out.push('4');
        out.push_str(text);
        Frame::Text(out.into())
    }

    /// The same packet, made ready for many connections: a text frame gets its WebSocket
    /// encoding now, once; a binary frame stays as it is.
    ///
    /// ```
    /// use tidings_runtime::engineio::Frame;
    /// let frame = Frame::message("hi").shared();
    /// assert_eq!(frame.text().map(|t| &**t), Some("4hi"));
    /// let Frame::Shared(shared) = &frame else { unreachable!() };
    /// assert_eq!(&shared.websocket()[..], b"\x81\x034hi");
    /// ```
    #[must_use]
    pub fn shared(self) -> Self {
        match self {
            Frame::Text(text) => {
                let mut websocket = BytesMut::with_capacity(text.len() + 10);
                encode_websocket(&mut websocket, Message::Text(text.clone()));
                Frame::Shared(Arc::new(SharedText {
                    text,
                    websocket: websocket.freeze(),
                }))
            }
            other => other,
        }
    }

    /// The packet's text, when it is a text packet.
    pub fn text(&self) -> Option<&ByteString> {
        match self {
            Frame::Text(text) => Some(text),
            Frame::Shared(shared) => Some(&shared.text),
            Frame::Binary(_) => None,
        }
    }

    /// The number of bytes this frame takes on the wire (before any polling base64).
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Shared(shared) => shared.text.len(),
            Frame::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the frame is empty (never true for a valid packet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

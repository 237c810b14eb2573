//! Socket.IO v5 packets and their codec:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::error::PacketError;
use crate::engineio::Frame;
use crate::payload::Payload;

/// The type of a Socket.IO packet, with its wire digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: connect to a namespace (client), or its acceptance (server).
    Connect = 0,
    /// `1`: leave a namespace.
    Disconnect = 1,
    /// `2`: an event.
    Event = 2,
    /// `3`: the answer to an event that asked for one.
    Ack = 3,
    /// `4`: a refused connect.
    ConnectError = 4,
    /// `5`: an event with binary attachments.
    BinaryEvent = 5,
    /// `6`: an ack with binary attachments.
    BinaryAck = 6,
}

impl PacketType {
    fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }
}

/// A Socket.IO packet. Binary events and acks are [`Packet::Event`] and [`Packet::Ack`] whose
/// payload has attachments; the codec picks the binary type from that.
#[derive(Debug, Clone)]
pub enum Packet {
    /// Connect to `nsp`. From a client: the auth payload (a JSON object), if any. From the
    /// server: the socket id it was given.
    Connect {
        /// The namespace.
        nsp: String,
        /// Client: the raw auth object; server: `{"sid":"..."}`.
        data: Option<Box<RawValue>>,
    },
    /// Leave `nsp`.
    Disconnect {
        /// The namespace.
        nsp: String,
    },
    /// An event, asking for an ack when `id` is set.
    Event {
        /// The namespace.
        nsp: String,
        /// The event name.
        event: String,
        /// The arguments after the name.
        payload: Payload,
        /// The ack id, when the sender waits for an answer.
        id: Option<u64>,
    },
    /// The answer to event `id`.
    Ack {
        /// The namespace.
        nsp: String,
        /// The id of the event answered.
        id: u64,
        /// The answer's arguments.
        payload: Payload,
    },
    /// A refused connect, with the reason in `message`.
    ConnectError {
        /// The namespace.
        nsp: String,
        /// The reason shown to the client (`err.message`).
        message: String,
    },
}

/// A decoded packet that still waits for `attachments` binary messages.
#[derive(Debug)]
pub struct Partial {
    /// The packet, with the attachments received so far.
    pub packet: Packet,
    /// How many attachments it announced.
    pub expected: usize,
}

impl Packet {
    /// The namespace of this packet.
    pub fn nsp(&self) -> &str {
        match self {
            Packet::Connect { nsp, .. }
            | Packet::Disconnect { nsp }
            | Packet::Event { nsp, .. }
            | Packet::Ack { nsp, .. }
            | Packet::ConnectError { nsp, .. } => nsp,
        }
    }

    /// Decodes a packet sent by a client. Binary packets come back as a [`Partial`] whose
    /// attachments follow as binary messages; `max_attachments` bounds how many one may announce.
    ///
    /// # Errors
    /// [`PacketError`] naming what is wrong; a client never sends `CONNECT_ERROR`.
    ///
    /// ```
    /// use tidings_runtime::socketio::Packet;
    /// let partial = Packet::decode(r#"2/chat,12["hi",1]"#, 10).unwrap();
    /// let Packet::Event { nsp, event, payload, id } = partial.packet else { panic!() };
    /// assert_eq!((nsp.as_str(), event.as_str(), id, payload.len()), ("/chat", "hi", Some(12), 1));
    /// assert!(Packet::decode("2[broken", 10).is_err());
    /// ```
    pub fn decode(text: &str, max_attachments: usize) -> Result<Partial, PacketError> {
        let bytes = text.as_bytes();
        let kind = bytes
            .first()
            .and_then(|d| PacketType::from_digit(*d))
            .ok_or_else(|| PacketError::UnknownType(text.chars().next()))?;
        let mut pos = 1;

        let mut expected = 0;
        if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
            let digits = count_digits(&bytes[pos..]);
            if digits == 0 || bytes.get(pos + digits) != Some(&b'-') {
                return Err(PacketError::BadAttachmentCount);
            }
            expected = text[pos..pos + digits]
                .parse::<usize>()
                .map_err(|_| PacketError::BadAttachmentCount)?;
            if expected > max_attachments {
                return Err(PacketError::TooManyAttachments(expected));
            }
            pos += digits + 1;
        }

        let nsp = if bytes.get(pos) == Some(&b'/') {
            let end = text[pos..].find(',').map_or(text.len(), |i| pos + i);
            let nsp = &text[pos..end];
            pos = (end + 1).min(text.len());
            nsp.to_owned()
        } else {
            "/".to_owned()
        };

        let digits = count_digits(&bytes[pos..]);
        let id = if digits > 0 {
            let id = text[pos..pos + digits]
                .parse::<u64>()
                .map_err(|_| PacketError::BadAckId)?;
            pos += digits;
            Some(id)
        } else {
            None
        };

        let data = &text[pos..];
        let packet = match kind {
            PacketType::Connect => {
                let data = if data.is_empty() {
                    None
                } else {
                    let raw: Box<RawValue> =
                        serde_json::from_str(data).map_err(|_| PacketError::InvalidJson)?;
                    if !raw.get().starts_with('{') {
                        return Err(PacketError::InvalidPayload("CONNECT"));
                    }
                    Some(raw)
                };
                Packet::Connect { nsp, data }
            }
            PacketType::Disconnect => {
                if !data.is_empty() {
                    return Err(PacketError::InvalidPayload("DISCONNECT"));
                }
                Packet::Disconnect { nsp }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let mut args = parse_args(data)?;
                if args.is_empty() {
                    return Err(PacketError::InvalidPayload("EVENT"));
                }
                let name = args.remove(0);
                let event: String = serde_json::from_str(name.get())
                    .map_err(|_| PacketError::InvalidPayload("EVENT"))?;
                if RESERVED_EVENTS.contains(&event.as_str()) {
                    return Err(PacketError::InvalidPayload("reserved event name"));
                }
                Packet::Event {
                    nsp,
                    event,
                    payload: Payload::from_parts(args, Vec::new()),
                    id,
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let id = id.ok_or(PacketError::MissingAckId)?;
                Packet::Ack {
                    nsp,
                    id,
                    payload: Payload::from_parts(parse_args(data)?, Vec::new()),
                }
            }
            PacketType::ConnectError => return Err(PacketError::InvalidPayload("CONNECT_ERROR")),
        };
        Ok(Partial { packet, expected })
    }

    /// Encodes this packet into the Engine.IO frames that carry it: one text message, then one
    /// binary message per attachment.
    ///
    /// ```
    /// use tidings_runtime::engineio::Frame;
    /// use tidings_runtime::socketio::{Packet, Payload};
    /// let packet = Packet::Event {
    ///     nsp: "/".into(),
    ///     event: "hi".into(),
    ///     payload: Payload::from_value(&1).unwrap(),
    ///     id: Some(3),
    /// };
    /// assert_eq!(packet.encode(), vec![Frame::Text(r#"423["hi",1]"#.into())]);
    /// ```
    pub fn encode(&self) -> Vec<Frame> {
        let mut out = String::with_capacity(64);
        out.push('4');
        let mut attachments: &[Bytes] = &[];
        match self {
            Packet::Connect { nsp, data } => {
                out.push('0');
                push_nsp(&mut out, nsp);
                if let Some(data) = data {
                    out.push_str(data.get());
                }
            }
            Packet::Disconnect { nsp } => {
                out.push('1');
                push_nsp(&mut out, nsp);
            }
            Packet::Event {
                nsp,
                event,
                payload,
                id,
            } => {
                attachments = payload.attachments();
                push_type(
                    &mut out,
                    PacketType::Event,
                    PacketType::BinaryEvent,
                    attachments.len(),
                );
                push_nsp(&mut out, nsp);
                if let Some(id) = id {
                    out.push_str(&id.to_string());
                }
                out.push('[');
                // A `String` always serializes.
                out.push_str(&serde_json::to_string(event).unwrap_or_default());
                for arg in payload.args() {
                    out.push(',');
                    out.push_str(arg.get());
                }
                out.push(']');
            }
            Packet::Ack { nsp, id, payload } => {
                attachments = payload.attachments();
                push_type(
                    &mut out,
                    PacketType::Ack,
                    PacketType::BinaryAck,
                    attachments.len(),
                );
                push_nsp(&mut out, nsp);
                out.push_str(&id.to_string());
                out.push('[');
                for (i, arg) in payload.args().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(arg.get());
                }
                out.push(']');
            }
            Packet::ConnectError { nsp, message } => {
                out.push('4');
                push_nsp(&mut out, nsp);
                out.push_str(r#"{"message":"#);
                out.push_str(&serde_json::to_string(message).unwrap_or_default());
                out.push('}');
            }
        }
        let mut frames = Vec::with_capacity(1 + attachments.len());
        frames.push(Frame::Text(out.into()));
        frames.extend(attachments.iter().cloned().map(Frame::Binary));
        frames
    }
}

impl Partial {
    /// Whether every announced attachment has arrived.
    pub fn is_complete(&self) -> bool {
        self.received() >= self.expected
    }

    fn received(&self) -> usize {
        match &self.packet {
            Packet::Event { payload, .. } | Packet::Ack { payload, .. } => {
                payload.attachments().len()
            }
            _ => 0,
        }
    }

    /// Adds the next attachment.
    pub fn push(&mut self, bytes: Bytes) {
        if let Packet::Event { payload, .. } | Packet::Ack { payload, .. } = &mut self.packet {
            payload.push_attachment(bytes);
        }
    }

    /// The bytes of the attachments received so far.
    pub fn attachment_bytes(&self) -> usize {
        match &self.packet {
            Packet::Event { payload, .. } | Packet::Ack { payload, .. } => {
                payload.attachments().iter().map(Bytes::len).sum()
            }
            _ => 0,
        }
    }

    /// The finished packet, once its placeholders are checked against its attachments.
    ///
    /// # Errors
    /// [`PacketError::Payload`] when a placeholder points nowhere or an attachment is unused.
    pub fn finish(self) -> Result<Packet, PacketError> {
        if let Packet::Event { payload, .. } | Packet::Ack { payload, .. } = &self.packet
            && (!payload.attachments().is_empty() || self.expected > 0)
        {
            payload
                .validate_placeholders()
                .map_err(PacketError::Payload)?;
        }
        Ok(self.packet)
    }
}

/// Event names only Socket.IO itself may use; a client sending one is closed, as by the
/// official parser.
pub(crate) const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

fn parse_args(data: &str) -> Result<Vec<Box<RawValue>>, PacketError> {
    if !data.starts_with('[') {
        return Err(PacketError::InvalidPayload("arguments must be an array"));
    }
    serde_json::from_str(data).map_err(|_| PacketError::InvalidJson)
}

fn push_type(out: &mut String, plain: PacketType, binary: PacketType, attachments: usize) {
    if attachments == 0 {
        out.push(char::from(b'0' + plain as u8));
    } else {
        out.push(char::from(b'0' + binary as u8));
        out.push_str(&attachments.to_string());
        out.push('-');
    }
}

fn push_nsp(out: &mut String, nsp: &str) {
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
}

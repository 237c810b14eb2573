//! Phoenix Channels messages and their serializers, as phoenix.js 1.7 / 1.8 speaks them:
//! `vsn=2.0.0` text frames (`[join_ref, ref, topic, event, payload]`), `vsn=1.0.0` objects, and
//! V2 binary frames (pushes from the client; pushes, replies and broadcasts from the server).

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The serializer a client asked for with `vsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// `1.0.x` (or no `vsn`): JSON objects `{topic, event, payload, ref[, join_ref]}`.
    V1,
    /// `2.0.x`: JSON arrays, and binary frames.
    V2,
}

impl Vsn {
    /// The serializer for a `vsn` query value, as Phoenix negotiates it (`~> 1.0.0` and
    /// `~> 2.0.0`): none means V1; anything else is `None` (Phoenix answers HTTP 403).
    ///
    /// ```
    /// use tidings_runtime::phoenix::Vsn;
    /// assert_eq!(Vsn::negotiate(Some("2.0.0")), Some(Vsn::V2));
    /// assert_eq!(Vsn::negotiate(None), Some(Vsn::V1));
    /// assert_eq!(Vsn::negotiate(Some("2.1.0")), None);
    /// ```
    pub fn negotiate(vsn: Option<&str>) -> Option<Vsn> {
        let Some(vsn) = vsn else {
            return Some(Vsn::V1);
        };
        let mut parts = vsn.split('.');
        let mut number = || parts.next()?.parse::<u64>().ok();
        let version = (number()?, number()?, number()?);
        if parts.next().is_some() {
            return None;
        }
        match version {
            (1, 0, _) => Some(Vsn::V1),
            (2, 0, _) => Some(Vsn::V2),
            _ => None,
        }
    }
}

/// A message's payload: JSON (an object, as Phoenix requires of clients) or, in V2 binary
/// frames, raw bytes.
#[derive(Debug, Clone)]
pub enum Body {
    /// A JSON value, kept as the text received.
    Json(Box<RawValue>),
    /// Bytes (a binary push).
    Binary(Bytes),
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Body::Json(a), Body::Json(b)) => a.get() == b.get(),
            (Body::Binary(a), Body::Binary(b)) => a == b,
            _ => false,
        }
    }
}

/// One Phoenix message, either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `ref` of the `phx_join` of the channel it belongs to; `None` for broadcasts and
    /// heartbeats.
    pub join_ref: Option<String>,
    /// The message's own ref (replies echo it); `None` for pushes and broadcasts.
    pub msg_ref: Option<String>,
    /// The topic (`room:lobby`).
    pub topic: String,
    /// The event (`phx_join`, `new_msg` ...).
    pub event: String,
    /// The payload.
    pub payload: Body,
}

/// A frame from a client that is not a Phoenix message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The text is not the serializer's JSON shape (V2: a 5-element array of two refs or nulls,
    /// two strings and a payload; V1: an object with `topic`, `event`, `payload` and `ref`).
    #[error("not a Phoenix message: {0}")]
    Shape(String),
    /// A binary frame whose kind is not a push (clients send only pushes, kind 0).
    #[error("binary frame of kind {0}: clients send pushes (kind 0) only")]
    BinaryKind(u8),
    /// A binary frame shorter than its header says.
    #[error("binary frame truncated")]
    Truncated,
    /// A binary frame's header fields are not UTF-8.
    #[error("binary frame field is not UTF-8")]
    InvalidUtf8,
    /// V1 carries no binary frames.
    #[error("binary frames need vsn=2.0.0")]
    BinaryInV1,
}

/// A V2 text frame, as read: refs may be null; any elements after the payload are ignored,
/// as Phoenix reads `[join_ref, ref, topic, event, payload | _]`.
struct V2In(
    Option<String>,
    Option<String>,
    String,
    String,
    Box<RawValue>,
);

impl<'de> Deserialize<'de> for V2In {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = V2In;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array [join_ref, ref, topic, event, payload]")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<V2In, A::Error> {
                let missing = |at: usize| serde::de::Error::invalid_length(at, &self);
                let join_ref = seq.next_element()?.ok_or_else(|| missing(0))?;
                let msg_ref = seq.next_element()?.ok_or_else(|| missing(1))?;
                let topic = seq.next_element()?.ok_or_else(|| missing(2))?;
                let event = seq.next_element()?.ok_or_else(|| missing(3))?;
                let payload = seq.next_element()?.ok_or_else(|| missing(4))?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(V2In(join_ref, msg_ref, topic, event, payload))
            }
        }

        deserializer.deserialize_seq(Visitor)
    }
}

/// A V1 object, as read.
#[derive(Deserialize)]
struct V1In {
    topic: String,
    event: String,
    payload: Box<RawValue>,
    #[serde(rename = "ref")]
    msg_ref: Option<String>,
    #[serde(default)]
    join_ref: Option<String>,
}

#[derive(Serialize)]
struct V1Out<'a> {
    topic: &'a str,
    event: &'a str,
    payload: &'a RawValue,
    #[serde(rename = "ref")]
    msg_ref: Option<&'a str>,
}

impl Message {
    /// Reads a text frame from a client.
    ///
    /// # Errors
    /// [`DecodeError::Shape`] for anything but the serializer's shape.
    ///
    /// ```
    /// use tidings_runtime::phoenix::{Message, Vsn};
    /// let join = Message::decode_text(Vsn::V2, r#"["3","3","room:lobby","phx_join",{"user":"a"}]"#).unwrap();
    /// assert_eq!((join.join_ref.as_deref(), join.topic.as_str()), (Some("3"), "room:lobby"));
    /// ```
    pub fn decode_text(vsn: Vsn, text: &str) -> Result<Message, DecodeError> {
        let shape = |err: serde_json::Error| DecodeError::Shape(err.to_string());
        match vsn {
            Vsn::V2 => {
                let V2In(join_ref, msg_ref, topic, event, payload) =
                    serde_json::from_str(text).map_err(shape)?;
                Ok(Message {
                    join_ref,
                    msg_ref,
                    topic,
                    event,
                    payload: Body::Json(payload),
                })
            }
            Vsn::V1 => {
                let message: V1In = serde_json::from_str(text).map_err(shape)?;
                Ok(Message {
                    join_ref: message.join_ref,
                    msg_ref: message.msg_ref,
                    topic: message.topic,
                    event: message.event,
                    payload: Body::Json(message.payload),
                })
            }
        }
    }

    /// Reads a V2 binary frame from a client: kind 0 (push), four one-byte lengths, then
    /// join_ref, ref, topic, event and the payload bytes. Empty refs are `None`.
    ///
    /// # Errors
    /// [`DecodeError`] for another kind, a short frame or non-UTF-8 fields.
    ///
    /// ```
    /// use tidings_runtime::phoenix::{Body, Message};
    /// let push = Message::decode_binary(&[0, 1, 1, 3, 2, b'1', b'2', b't', b':', b'1', b'u', b'p', 0xde, 0xad]).unwrap();
    /// assert_eq!((push.topic.as_str(), push.event.as_str()), ("t:1", "up"));
    /// assert_eq!(push.payload, Body::Binary(vec![0xde, 0xad].into()));
    /// ```
    pub fn decode_binary(frame: &[u8]) -> Result<Message, DecodeError> {
        let (&kind, rest) = frame.split_first().ok_or(DecodeError::Truncated)?;
        if kind != 0 {
            return Err(DecodeError::BinaryKind(kind));
        }
        let (lengths, mut rest) = rest.split_at_checked(4).ok_or(DecodeError::Truncated)?;
        let mut field = |len: u8| -> Result<String, DecodeError> {
            let (bytes, after) = rest
                .split_at_checked(usize::from(len))
                .ok_or(DecodeError::Truncated)?;
            rest = after;
            String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
        };
        let join_ref = field(lengths[0])?;
        let msg_ref = field(lengths[1])?;
        let topic = field(lengths[2])?;
        let event = field(lengths[3])?;
        let optional = |text: String| (!text.is_empty()).then_some(text);
        Ok(Message {
            join_ref: optional(join_ref),
            msg_ref: optional(msg_ref),
            topic,
            event,
            payload: Body::Binary(Bytes::copy_from_slice(rest)),
        })
    }

    /// The frame a server sends for this message: V2 text (`[join_ref, ref, topic, event,
    /// payload]`) or V1 text (an object without `join_ref`, as Phoenix's V1 serializer);
    /// `None` when the payload is binary (see [`Message::encode_binary`]).
    ///
    /// ```
    /// use tidings_runtime::phoenix::{Body, Message, Vsn};
    /// let broadcast = Message {
    ///     join_ref: None,
    ///     msg_ref: None,
    ///     topic: "room:lobby".into(),
    ///     event: "new_msg".into(),
    ///     payload: Body::Json(serde_json::value::to_raw_value(&serde_json::json!({"body": "hi"})).unwrap()),
    /// };
    /// assert_eq!(broadcast.encode_text(Vsn::V2).as_deref(), Some(r#"[null,null,"room:lobby","new_msg",{"body":"hi"}]"#));
    /// assert_eq!(broadcast.encode_text(Vsn::V1).as_deref(), Some(r#"{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}"#));
    /// ```
    pub fn encode_text(&self, vsn: Vsn) -> Option<String> {
        let Body::Json(payload) = &self.payload else {
            return None;
        };
        // Strings and raw JSON serialize without failing.
        match vsn {
            Vsn::V2 => serde_json::to_string(&(
                &self.join_ref,
                &self.msg_ref,
                &self.topic,
                &self.event,
                payload,
            ))
            .ok(),
            Vsn::V1 => serde_json::to_string(&V1Out {
                topic: &self.topic,
                event: &self.event,
                payload,
                msg_ref: self.msg_ref.as_deref(),
            })
            .ok(),
        }
    }

    /// The V2 binary frame a server sends for a binary payload: a broadcast (kind 2) when
    /// there is no join_ref, else a push (kind 0, no ref). `None` for a JSON payload, or a
    /// field longer than the 255 bytes its one-byte length allows.
    ///
    /// ```
    /// use tidings_runtime::phoenix::{Body, Message};
    /// let push = Message { join_ref: Some("1".into()), msg_ref: None, topic: "t".into(), event: "e".into(), payload: Body::Binary(vec![9u8].into()) };
    /// assert_eq!(push.encode_binary().unwrap().as_ref(), &[0, 1, 1, 1, b'1', b't', b'e', 9]);
    /// ```
    pub fn encode_binary(&self) -> Option<Bytes> {
        let Body::Binary(payload) = &self.payload else {
            return None;
        };
        let len = |text: &str| u8::try_from(text.len()).ok();
        let topic = len(&self.topic)?;
        let event = len(&self.event)?;
        let mut out =
            BytesMut::with_capacity(4 + self.topic.len() + self.event.len() + payload.len() + 32);
        match &self.join_ref {
            None => {
                out.put_slice(&[2, topic, event]);
            }
            Some(join_ref) => {
                out.put_slice(&[0, len(join_ref)?, topic, event]);
                out.put_slice(join_ref.as_bytes());
            }
        }
        out.put_slice(self.topic.as_bytes());
        out.put_slice(self.event.as_bytes());
        out.put_slice(payload);
        Some(out.freeze())
    }

    /// The V2 binary frame of a reply whose response is bytes (kind 1): join_ref, ref, topic,
    /// status, then the bytes. `None` when a field is longer than 255 bytes.
    pub fn encode_binary_reply(
        join_ref: &str,
        msg_ref: &str,
        topic: &str,
        status: &str,
        response: &[u8],
    ) -> Option<Bytes> {
        let len = |text: &str| u8::try_from(text.len()).ok();
        let mut out = BytesMut::with_capacity(
            5 + join_ref.len() + msg_ref.len() + topic.len() + status.len() + response.len(),
        );
        out.put_slice(&[1, len(join_ref)?, len(msg_ref)?, len(topic)?, len(status)?]);
        for field in [join_ref, msg_ref, topic, status] {
            out.put_slice(field.as_bytes());
        }
        out.put_slice(response);
        Some(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Body {
        Body::Json(RawValue::from_string(text.to_owned()).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn vsn_negotiation_follows_phoenix() {
        for (vsn, expected) in [
            (Some("2.0.0"), Some(Vsn::V2)),
            (Some("2.0.7"), Some(Vsn::V2)),
            (Some("1.0.0"), Some(Vsn::V1)),
            (None, Some(Vsn::V1)),
            (Some("2.1.0"), None),
            (Some("3.0.0"), None),
            (Some("2.0"), None),
            (Some("2.0.0.0"), None),
            (Some("two"), None),
            (Some(""), None),
        ] {
            assert_eq!(Vsn::negotiate(vsn), expected, "{vsn:?}");
        }
    }

    #[test]
    fn v2_text_both_ways() {
        let heartbeat = Message::decode_text(Vsn::V2, r#"[null,"7","phoenix","heartbeat",{}]"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(heartbeat.join_ref, None);
        assert_eq!(heartbeat.msg_ref.as_deref(), Some("7"));
        assert_eq!(heartbeat.payload, json("{}"));
        // Extra trailing elements are ignored, as Phoenix's decoder does.
        assert!(Message::decode_text(Vsn::V2, r#"["1","2","t","e",{},"extra"]"#).is_ok());
        let many = Message::decode_text(Vsn::V2, r#"["1","2","t","e",{"k":1},{"a":[1]},null,3]"#);
        assert_eq!(many.map(|m| m.topic), Ok("t".to_owned()));
        assert!(Message::decode_text(Vsn::V2, r#"["1","2","t","e"]"#).is_err());
        assert!(Message::decode_text(Vsn::V2, "[]").is_err());
        for bad in [
            "",
            "[]",
            r#"["1","2","t","e"]"#,
            r#"[1,"2","t","e",{}]"#,
            r#"["1","2",null,"e",{}]"#,
            r#"{"topic":"t"}"#,
            "not json",
        ] {
            assert!(
                matches!(
                    Message::decode_text(Vsn::V2, bad),
                    Err(DecodeError::Shape(_))
                ),
                "{bad}"
            );
        }
        let reply = Message {
            join_ref: Some("3".into()),
            msg_ref: Some("3".into()),
            topic: "room:1".into(),
            event: "phx_reply".into(),
            payload: json(r#"{"status":"ok","response":{}}"#),
        };
        assert_eq!(
            reply.encode_text(Vsn::V2).as_deref(),
            Some(r#"["3","3","room:1","phx_reply",{"status":"ok","response":{}}]"#)
        );
    }

    #[test]
    fn v1_objects_both_ways() {
        let message = Message::decode_text(
            Vsn::V1,
            r#"{"topic":"room:1","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.join_ref.as_deref(), Some("1"));
        let without_join_ref = Message::decode_text(
            Vsn::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":null}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(without_join_ref.join_ref, None);
        assert!(Message::decode_text(Vsn::V1, r#"{"topic":"t","event":"e","ref":"1"}"#).is_err());
        // The server's V1 frames carry no join_ref, as Phoenix's V1 serializer.
        let reply = Message {
            join_ref: Some("1".into()),
            msg_ref: Some("1".into()),
            topic: "room:1".into(),
            event: "phx_reply".into(),
            payload: json(r#"{"status":"ok","response":{}}"#),
        };
        assert_eq!(
            reply.encode_text(Vsn::V1).as_deref(),
            Some(
                r#"{"topic":"room:1","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}"#
            )
        );
    }

    /// The bytes phoenix.js's own serializer produces for a push (PHOENIX.md §1.5).
    #[test]
    fn binary_frames_match_the_official_serializer() {
        let frame = [
            0x00, 0x01, 0x01, 0x03, 0x02, 0x31, 0x32, 0x74, 0x3a, 0x31, 0x75, 0x70, 0xde, 0xad,
        ];
        let push = Message::decode_binary(&frame).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(push.join_ref.as_deref(), Some("1"));
        assert_eq!(push.msg_ref.as_deref(), Some("2"));
        assert_eq!(
            push.payload,
            Body::Binary(Bytes::from_static(&[0xde, 0xad]))
        );
        for len in 0..frame.len() - 2 {
            assert!(Message::decode_binary(&frame[..len]).is_err(), "{len}");
        }
        assert_eq!(
            Message::decode_binary(&[2, 0, 0]),
            Err(DecodeError::BinaryKind(2))
        );
        assert_eq!(
            Message::decode_binary(&[0, 1, 0, 0, 0, 0xff]),
            Err(DecodeError::InvalidUtf8)
        );
        let broadcast = Message {
            join_ref: None,
            msg_ref: None,
            topic: "t:1".into(),
            event: "up".into(),
            payload: Body::Binary(Bytes::from_static(&[1, 2])),
        };
        assert_eq!(
            broadcast.encode_binary().as_deref(),
            Some(&[2, 3, 2, b't', b':', b'1', b'u', b'p', 1, 2][..])
        );
        assert_eq!(
            Message::encode_binary_reply("1", "2", "t", "ok", &[7]).as_deref(),
            Some(&[1, 1, 1, 1, 2, b'1', b'2', b't', b'o', b'k', 7][..])
        );
        let long = Message {
            topic: "t".repeat(256),
            ..broadcast
        };
        assert_eq!(
            long.encode_binary(),
            None,
            "a length byte holds 255 at most"
        );
    }
}

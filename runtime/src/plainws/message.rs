//! The plain WebSocket protocol's messages: one JSON object per text frame, each with a `type`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// What a client sends.
#[derive(Debug, Clone)]
pub enum ClientMessage {
    /// `{"type":"subscribe","channel":C[,"payload":P][,"ref":R]}`: join `channel`.
    Subscribe {
        /// The channel.
        channel: String,
        /// The join payload.
        payload: Option<Box<RawValue>>,
        /// Echoed in the reply (any JSON value), when given.
        msg_ref: Option<Box<RawValue>>,
    },
    /// `{"type":"unsubscribe","channel":C[,"ref":R]}`: leave `channel`.
    Unsubscribe {
        /// The channel.
        channel: String,
        /// Echoed in the reply, when given.
        msg_ref: Option<Box<RawValue>>,
    },
    /// `{"type":"event","channel":C,"event":E[,"data":D][,"ref":R]}`: into the channel's
    /// `handle_in`.
    Event {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The data (`null` when absent).
        data: Option<Box<RawValue>>,
        /// Echoed in the reply, when given.
        msg_ref: Option<Box<RawValue>>,
    },
    /// `{"type":"ping"}`: answered `{"type":"pong"}`.
    Ping,
}

/// A frame that is not a message, answered with an `error` frame (the connection stays open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or not a JSON object.
    #[error("not a JSON object: {0}")]
    InvalidJson(String),
    /// A `type` this protocol does not have (or none).
    #[error("unknown type {0:?}")]
    UnknownType(String),
    /// A field missing or of the wrong kind.
    #[error("{0}")]
    Invalid(String),
}

impl DecodeError {
    /// The `reason` of the error frame: `invalid_json`, `unknown_type` or `invalid`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::Invalid(_) => "invalid",
        }
    }
}

/// The fields any message may have, read once; which ones a type needs is checked after.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    channel: Option<&'a RawValue>,
    event: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    #[serde(rename = "ref")]
    msg_ref: Option<&'a RawValue>,
}

/// A JSON string field, or why not.
fn string(value: Option<&RawValue>, name: &str) -> Result<String, DecodeError> {
    let value = value.ok_or_else(|| DecodeError::Invalid(format!("missing field `{name}`")))?;
    serde_json::from_str::<String>(value.get())
        .map_err(|_| DecodeError::Invalid(format!("field `{name}` is not a string")))
}

fn owned(value: Option<&RawValue>) -> Option<Box<RawValue>> {
    value.map(ToOwned::to_owned)
}

impl ClientMessage {
    /// Reads one text frame.
    ///
    /// ```
    /// use tidings_runtime::plainws::{ClientMessage, DecodeError};
    /// let message = ClientMessage::decode(r#"{"type":"subscribe","channel":"chats/1","ref":"1"}"#).unwrap();
    /// assert!(matches!(message, ClientMessage::Subscribe { channel, .. } if channel == "chats/1"));
    /// assert_eq!(ClientMessage::decode("nope").unwrap_err().reason(), "invalid_json");
    /// assert_eq!(ClientMessage::decode(r#"{"type":"dance"}"#).unwrap_err().reason(), "unknown_type");
    /// assert_eq!(ClientMessage::decode(r#"{"type":"event","channel":"c"}"#).unwrap_err().reason(), "invalid");
    /// ```
    ///
    /// # Errors
    /// [`DecodeError`] for anything but one of the four messages.
    pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
        // A derived reader would also take an array of the fields in order.
        if !text.trim_start().starts_with('{') {
            return Err(DecodeError::InvalidJson(
                "a message is a JSON object".to_owned(),
            ));
        }
        let fields: Fields<'_> =
            serde_json::from_str(text).map_err(|err| DecodeError::InvalidJson(err.to_string()))?;
        let kind = match fields.kind {
            None => return Err(DecodeError::UnknownType(String::new())),
            Some(kind) => serde_json::from_str::<String>(kind.get())
                .map_err(|_| DecodeError::UnknownType(kind.get().to_owned()))?,
        };
        Ok(match kind.as_str() {
            "subscribe" => ClientMessage::Subscribe {
                channel: string(fields.channel, "channel")?,
                payload: owned(fields.payload),
                msg_ref: owned(fields.msg_ref),
            },
            "unsubscribe" => ClientMessage::Unsubscribe {
                channel: string(fields.channel, "channel")?,
                msg_ref: owned(fields.msg_ref),
            },
            "event" => ClientMessage::Event {
                channel: string(fields.channel, "channel")?,
                event: string(fields.event, "event")?,
                data: owned(fields.data),
                msg_ref: owned(fields.msg_ref),
            },
            "ping" => ClientMessage::Ping,
            _ => return Err(DecodeError::UnknownType(kind)),
        })
    }
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    /// The answer to a request: `{"type":"reply"[,"ref":R][,"channel":C],"status":S[,"response":V][,"reason":R]}`.
    Reply {
        /// The request's `ref`, when it had one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        msg_ref: Option<&'a RawValue>,
        /// The channel a path-bound socket joined as it opened.
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<&'a str>,
        /// `ok` or `error`.
        status: &'a str,
        /// What an `ok` carries, when anything.
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<&'a RawValue>,
        /// Why an `error`.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// A channel event: `{"type":"event","channel":C,"event":E,"data":D}`, with
    /// `"offset":N` when the server keeps channel history (connection state recovery).
    Event {
        /// The channel.
        channel: &'a str,
        /// The event name.
        event: &'a str,
        /// The payload.
        data: &'a RawValue,
        /// Its place in the channel history, for a later join with `since`.
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// A frame that was not a message: `{"type":"error","reason":R,"message":M}`.
    Error {
        /// `invalid_json`, `unknown_type`, `invalid`, or a refusal's reason.
        reason: &'a str,
        /// For humans.
        message: &'a str,
    },
    /// The answer to `{"type":"ping"}`.
    Pong,
}

impl ServerMessage<'_> {
    /// The frame's text.
    ///
    /// ```
    /// use tidings_runtime::plainws::ServerMessage;
    /// assert_eq!(ServerMessage::Pong.encode(), r#"{"type":"pong"}"#);
    /// let ok = ServerMessage::Reply { msg_ref: None, channel: None, status: "ok", response: None, reason: None };
    /// assert_eq!(ok.encode(), r#"{"type":"reply","status":"ok"}"#);
    /// ```
    pub fn encode(&self) -> String {
        // Strings and raw JSON always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_and_every_error() {
        let event = ClientMessage::decode(
            r#"{"type":"event","channel":"chats/1","event":"typing","data":{"a":1},"ref":3}"#,
        );
        match event {
            Ok(ClientMessage::Event {
                channel,
                event,
                data,
                msg_ref,
            }) => {
                assert_eq!((channel.as_str(), event.as_str()), ("chats/1", "typing"));
                assert_eq!(
                    data.map(|d| d.get().to_owned()).as_deref(),
                    Some(r#"{"a":1}"#)
                );
                assert_eq!(msg_ref.map(|r| r.get().to_owned()).as_deref(), Some("3"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientMessage::decode(r#"{"type":"unsubscribe","channel":"c"}"#),
            Ok(ClientMessage::Unsubscribe { msg_ref: None, .. })
        ));
        assert!(matches!(
            ClientMessage::decode(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        ));
        for (text, reason) in [
            ("", "invalid_json"),
            ("[1,2]", "invalid_json"),
            (r#"["ping",null,null,null,null,null]"#, "invalid_json"),
            (
                r#"["subscribe","rooms/1",null,null,null,"r1"]"#,
                "invalid_json",
            ),
            ("\"subscribe\"", "invalid_json"),
            ("{}", "unknown_type"),
            (r#"{"type":7}"#, "unknown_type"),
            (r#"{"type":"SUBSCRIBE","channel":"c"}"#, "unknown_type"),
            (r#"{"type":"subscribe"}"#, "invalid"),
            (r#"{"type":"subscribe","channel":1}"#, "invalid"),
            (r#"{"type":"event","channel":"c","event":null}"#, "invalid"),
        ] {
            match ClientMessage::decode(text) {
                Ok(message) => panic!("{text} decoded as {message:?}"),
                Err(err) => assert_eq!(err.reason(), reason, "{text}"),
            }
        }
    }

    #[test]
    fn replies_and_events_as_the_protocol_writes_them() {
        let raw = |text: &str| {
            RawValue::from_string(text.to_owned()).unwrap_or_else(|err| panic!("{text}: {err}"))
        };
        let one = raw("\"1\"");
        let response = raw("{\"n\":1}");
        let reply = ServerMessage::Reply {
            msg_ref: Some(&one),
            channel: None,
            status: "ok",
            response: Some(&response),
            reason: None,
        };
        assert_eq!(
            reply.encode(),
            r#"{"type":"reply","ref":"1","status":"ok","response":{"n":1}}"#
        );
        let refused = ServerMessage::Reply {
            msg_ref: Some(&one),
            channel: None,
            status: "error",
            response: None,
            reason: Some("unauthorized"),
        };
        assert_eq!(
            refused.encode(),
            r#"{"type":"reply","ref":"1","status":"error","reason":"unauthorized"}"#
        );
        let event = ServerMessage::Event {
            channel: "chats/1",
            event: "message",
            data: &response,
            offset: None,
        };
        assert_eq!(
            event.encode(),
            r#"{"type":"event","channel":"chats/1","event":"message","data":{"n":1}}"#
        );
        let error = ServerMessage::Error {
            reason: "invalid_json",
            message: "expected value",
        };
        assert_eq!(
            error.encode(),
            r#"{"type":"error","reason":"invalid_json","message":"expected value"}"#
        );
    }
}

//! Property tests: the decoders never panic, whatever a peer sends, and what they accept
//! survives a trip through the encoder.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use tidings_runtime::engineio::{self, Frame, decode_payload, encode_packet};
use tidings_runtime::socketio::{Packet, PacketError, Payload, PayloadError};

type EPacket = engineio::Packet;

const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Text an Engine.IO peer might send: a type character (valid or not), then anything.
fn engine_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-6b]\\PC{0,24}",
        "b[A-Za-z0-9+/=]{0,16}",
        "[0-9a-z\\x1e]{0,4}",
    ]
}

/// `s` cut after a random number of characters.
fn truncated(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (s, any::<Index>()).prop_map(|(s, cut)| {
        let chars = s.chars().count();
        s.chars().take(cut.index(chars + 1)).collect()
    })
}

/// Any JSON value, small; `placeholders` mixes in binary placeholders (valid or not).
fn json_value(placeholders: bool) -> BoxedStrategy<Value> {
    let mut leaves: Vec<BoxedStrategy<Value>> = vec![
        Just(Value::Null).boxed(),
        any::<bool>().prop_map(Value::Bool).boxed(),
        any::<i64>().prop_map(Value::from).boxed(),
        any::<u64>().prop_map(Value::from).boxed(),
        (-1.0e12f64..1.0e12).prop_map(Value::from).boxed(),
        "[a-z\"\\\\/é€\\x00-\\x1f]{0,6}"
            .prop_map(Value::String)
            .boxed(),
    ];
    if placeholders {
        leaves.push(
            (0u64..4)
                .prop_map(|n| serde_json::json!({"_placeholder": true, "num": n}))
                .boxed(),
        );
        leaves.push(Just(serde_json::json!({"_placeholder": true, "num": -1})).boxed());
        leaves.push(Just(serde_json::json!({"_placeholder": true})).boxed());
    }
    proptest::strategy::Union::new(leaves)
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{0,5}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
        .boxed()
}

/// The text of an argument list `["name", ...]` as a client would send it.
fn args_text() -> impl Strategy<Value = String> {
    (
        prop_oneof!["[a-z]{0,6}".prop_map(Value::String), json_value(true)],
        proptest::collection::vec(json_value(true), 0..4),
    )
        .prop_map(|(name, rest)| {
            let mut all = vec![name];
            all.extend(rest);
            Value::Array(all).to_string()
        })
}

/// The data part of a Socket.IO packet: valid JSON, broken JSON, or junk.
fn data_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        args_text(),
        truncated(args_text()),
        json_value(true).prop_map(|v| v.to_string()),
        truncated(json_value(true).prop_map(|v| v.to_string())),
        "[\\[\\]{}\",:0-9a-z -]{0,12}",
        any::<String>(),
    ]
}

/// Strings shaped like Socket.IO packets, so that every branch of the decoder is reached:
/// `<type>[<n>-][<nsp>,][<id>][<data>]`, each part plausible or slightly off.
fn socketio_parts() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        8 => "[0-6]",
        1 => "[7-9a-z /\\-\\[{]?",
        1 => "é",
    ];
    let count = prop_oneof![
        3 => Just(String::new()),
        3 => "[0-9]{1,2}-",
        1 => Just("-".to_owned()),
        1 => "[0-9]{1,3}",
        1 => "[0-9]{19,24}-",
        1 => "[0-9]x-",
    ];
    let nsp = prop_oneof![
        3 => Just(String::new()),
        3 => "/[a-z]{0,8},",
        1 => "/[a-z0-9é\\[\"]{0,6}",
        1 => Just("/,".to_owned()),
        1 => Just(",".to_owned()),
    ];
    let id = prop_oneof![
        3 => Just(String::new()),
        3 => "[0-9]{1,6}",
        1 => "[0-9]{19,25}",
    ];
    (kind, count, nsp, id, data_text())
        .prop_map(|(kind, count, nsp, id, data)| format!("{kind}{count}{nsp}{id}{data}"))
}

/// Packets that are valid or nearly so: the parts agree with the type, binary packets carry
/// placeholders for their attachments.
fn socketio_coherent() -> impl Strategy<Value = String> {
    (
        0u8..7,
        0usize..3,
        prop_oneof![Just(String::new()), "/[a-z]{1,8},"],
        proptest::option::of(0u64..1000),
        "[a-z]{0,6}",
        proptest::collection::vec(json_value(false), 0..3),
        proptest::option::of(proptest::collection::btree_map(
            "[a-z]{0,4}",
            json_value(false),
            0..3,
        )),
    )
        .prop_map(|(kind, attachments, nsp, id, name, rest, auth)| {
            let id = id.map(|id| id.to_string()).unwrap_or_default();
            let mut args: Vec<Value> = rest;
            let count = if kind == 5 || kind == 6 {
                for num in 0..attachments {
                    args.push(serde_json::json!({"_placeholder": true, "num": num}));
                }
                format!("{attachments}-")
            } else {
                String::new()
            };
            let data = match kind {
                0 => auth
                    .map(|map| Value::Object(map.into_iter().collect()).to_string())
                    .unwrap_or_default(),
                1 | 4 => String::new(),
                2 | 5 => {
                    args.insert(0, Value::String(name));
                    Value::Array(args).to_string()
                }
                _ => Value::Array(args).to_string(),
            };
            format!("{kind}{count}{nsp}{id}{data}")
        })
}

/// Packet-shaped strings: coherent, random parts, or coherent with one byte changed or cut.
fn socketio_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => socketio_coherent(),
        3 => socketio_parts(),
        1 => truncated(socketio_coherent()),
        1 => (socketio_coherent(), any::<Index>(), "[0-9a-z,/\\-\\[\\]{}\":]").prop_map(|(text, at, with)| {
            let chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len().max(1));
            let mut out: String = chars.iter().take(at).collect();
            out.push_str(&with);
            out.extend(chars.iter().skip(at + 1));
            out
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The parts of a packet that must survive encoding, comparable.
#[derive(Debug, PartialEq)]
enum Shape {
    Connect(String, Option<String>),
    Disconnect(String),
    Event(String, String, Option<u64>, Vec<String>, Vec<Bytes>),
    Ack(String, u64, Vec<String>, Vec<Bytes>),
    ConnectError(String, String),
}

fn args_of(payload: &Payload) -> Vec<String> {
    payload.args().iter().map(|a| a.get().to_owned()).collect()
}

fn shape(packet: &Packet) -> Shape {
    match packet {
        Packet::Connect { nsp, data } => {
            Shape::Connect(nsp.clone(), data.as_ref().map(|d| d.get().to_owned()))
        }
        Packet::Disconnect { nsp } => Shape::Disconnect(nsp.clone()),
        Packet::Event {
            nsp,
            event,
            payload,
            id,
        } => Shape::Event(
            nsp.clone(),
            event.clone(),
            *id,
            args_of(payload),
            payload.attachments().to_vec(),
        ),
        Packet::Ack { nsp, id, payload } => Shape::Ack(
            nsp.clone(),
            *id,
            args_of(payload),
            payload.attachments().to_vec(),
        ),
        Packet::ConnectError { nsp, message } => Shape::ConnectError(nsp.clone(), message.clone()),
    }
}

/// Feeds `frames` (as `Packet::encode` wrote them) back to the decoder, as the server would.
fn decode_frames(frames: &[Frame], max_attachments: usize) -> Result<Packet, String> {
    let Some((Frame::Text(first), rest)) = frames.split_first() else {
        return Err(format!("first frame is not text: {frames:?}"));
    };
    let text = first
        .strip_prefix('4')
        .ok_or_else(|| format!("not an Engine.IO message: {first:?}"))?;
    let mut partial = Packet::decode(text, max_attachments).map_err(|e| e.to_string())?;
    if partial.expected != rest.len() {
        return Err(format!(
            "{text:?} announces {} attachments, {} frames follow",
            partial.expected,
            rest.len()
        ));
    }
    for frame in rest {
        if partial.is_complete() {
            return Err("complete before its last attachment".to_owned());
        }
        let Frame::Binary(bytes) = frame else {
            return Err(format!("attachment is not binary: {frame:?}"));
        };
        partial.push(bytes.clone());
    }
    if !partial.is_complete() {
        return Err("incomplete after all attachments".to_owned());
    }
    partial.finish().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Engine.IO
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// `decode_text` never panics; what it accepts re-encodes to the same text (or, for
    /// binary, to base64 of the same bytes).
    #[test]
    fn engineio_decode_text_never_panics(text in engine_text(), allow_base64 in any::<bool>()) {
        let result = EPacket::decode_text(text.as_str().into(), allow_base64);
        let first = text.as_bytes().first().copied();
        match (&result, first) {
            (Err(_), _) => prop_assert!(
                !matches!(first, Some(b'0'..=b'6')),
                "{text:?} rejected: {result:?}"
            ),
            (Ok(EPacket::Binary(bytes)), Some(b'b')) => {
                prop_assert!(allow_base64, "base64 accepted over WebSocket: {text:?}");
                let body = encode_packet(&EPacket::Binary(bytes.clone()));
                prop_assert_eq!(
                    decode_payload(Bytes::from(body)),
                    Ok(vec![EPacket::Binary(bytes.clone())])
                );
            }
            (Ok(packet @ (EPacket::Open(_) | EPacket::Ping(_) | EPacket::Pong(_) | EPacket::Message(_))), _) => {
                prop_assert_eq!(packet.encode(), Frame::Text(text.as_str().into()));
            }
            (Ok(packet @ (EPacket::Close | EPacket::Upgrade | EPacket::Noop)), Some(c)) => {
                prop_assert_eq!(packet.type_char(), Some(char::from(c)));
            }
            (Ok(packet), _) => prop_assert!(false, "{text:?} decoded to {packet:?}"),
        }
    }

    /// `decode_payload` never panics on any body.
    #[test]
    fn engineio_decode_payload_never_panics_on_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        let result = decode_payload(Bytes::from(body.clone()));
        if let Ok(packets) = result {
            let separators = body.iter().filter(|b| **b == 0x1e).count();
            prop_assert_eq!(packets.len(), separators + 1);
        }
    }

    /// `decode_payload` never panics on bodies made of packet-like parts; a body accepted
    /// has one packet per part.
    #[test]
    fn engineio_decode_payload_never_panics_on_packets(
        parts in proptest::collection::vec(engine_text(), 0..6)
    ) {
        let body = parts.join("\x1e");
        let result = decode_payload(Bytes::from(body.clone()));
        let expected: Result<Vec<EPacket>, _> = body
            .split('\x1e')
            .map(|part| EPacket::decode_text(part.into(), true))
            .collect();
        prop_assert_eq!(result, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Socket.IO
// ---------------------------------------------------------------------------------------------

/// Checks what `Packet::decode` promises for any input, and that a finished packet encodes
/// to text that decodes to the same packet.
fn check_socketio_decode(text: &str, max_attachments: usize) -> Result<(), TestCaseError> {
    let Ok(mut partial) = Packet::decode(text, max_attachments) else {
        return Ok(());
    };
    let kind = text.as_bytes()[0];
    prop_assert!(
        b"012356".contains(&kind),
        "{text:?} accepted with type {kind}"
    );
    prop_assert!(partial.expected <= max_attachments, "{text:?}");
    prop_assert!(
        partial.expected == 0 || kind == b'5' || kind == b'6',
        "{text:?}"
    );
    prop_assert_eq!(partial.is_complete(), partial.expected == 0);
    prop_assert!(partial.packet.nsp().starts_with('/'), "{text:?}");
    for i in 0..partial.expected {
        partial.push(Bytes::from(vec![u8::try_from(i % 256).unwrap_or(0); i]));
    }
    prop_assert!(partial.is_complete());
    let Ok(packet) = partial.finish() else {
        return Ok(());
    };
    let again = decode_frames(&packet.encode(), max_attachments);
    prop_assert!(
        again.is_ok(),
        "{text:?} decoded to {packet:?}, whose encoding does not decode: {again:?}"
    );
    if let Ok(again) = again {
        prop_assert_eq!(shape(&again), shape(&packet), "{:?}", text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// `Packet::decode` never panics on arbitrary strings.
    #[test]
    fn socketio_decode_never_panics_on_any_string(text in any::<String>(), max in 0usize..16) {
        check_socketio_decode(&text, max)?;
    }

    /// `Packet::decode` never panics on strings shaped like packets (so every branch runs).
    #[test]
    fn socketio_decode_never_panics_on_plausible_packets(text in socketio_text(), max in 0usize..16) {
        check_socketio_decode(&text, max)?;
    }

    /// Attachment handling matches a simple model: a placeholder must point at one of the
    /// attachments received, and every attachment must be pointed at.
    #[test]
    fn socketio_partial_push_finish_follows_the_rules(
        announced in 0usize..5,
        pushed in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4), 0..6),
        // Placeholders: `Some(num)` with num in -2..6, `None` for a placeholder without num.
        placeholders in proptest::collection::vec(proptest::option::weighted(0.9, -2i64..6), 0..5),
        nest in proptest::collection::vec(0u8..3, 5),
        ack in any::<bool>(),
        max in 0usize..6,
    ) {
        let mut args: Vec<Value> = vec![Value::from("e")];
        for (i, num) in placeholders.iter().enumerate() {
            let mut placeholder = serde_json::Map::new();
            placeholder.insert("_placeholder".into(), Value::Bool(true));
            if let Some(num) = num {
                placeholder.insert("num".into(), Value::from(*num));
            }
            let placeholder = Value::Object(placeholder);
            args.push(match nest[i] {
                0 => placeholder,
                1 => Value::Array(vec![Value::Null, placeholder]),
                _ => serde_json::json!({"f": placeholder, "g": {"_placeholder": false, "num": 99}}),
            });
        }
        let (kind, id) = if ack { ('6', "7") } else { ('5', "") };
        let text = format!("{kind}{announced}-/n,{id}{}", Value::Array(args));

        let decoded = Packet::decode(&text, max);
        if announced > max {
            prop_assert!(
                matches!(decoded, Err(PacketError::TooManyAttachments(n)) if n == announced),
                "{text:?} with max {max}: {decoded:?}"
            );
            return Ok(());
        }
        let mut partial = match decoded {
            Ok(partial) => partial,
            Err(error) => return Err(TestCaseError::fail(format!("{text:?}: {error}"))),
        };
        prop_assert_eq!(partial.expected, announced);
        for (i, bytes) in pushed.iter().enumerate() {
            prop_assert_eq!(partial.is_complete(), i >= announced);
            partial.push(Bytes::from(bytes.clone()));
        }
        prop_assert_eq!(
            partial.attachment_bytes(),
            pushed.iter().map(Vec::len).sum::<usize>()
        );
        prop_assert_eq!(partial.is_complete(), pushed.len() >= announced);

        let received = pushed.len();
        let checked = received > 0 || announced > 0;
        let bad = placeholders
            .iter()
            .any(|num| !matches!(num, Some(n) if (0..i64::try_from(received).unwrap_or(i64::MAX)).contains(n)));
        let unused = (0..received).any(|k| {
            !placeholders
                .iter()
                .any(|num| *num == i64::try_from(k).ok())
        });
        let expected = match (checked, bad, unused) {
            (false, _, _) => "ok",
            (true, true, _) => "bad placeholder",
            (true, false, true) => "unused attachment",
            (true, false, false) => "ok",
        };
        let actual = match partial.finish() {
            Ok(packet) => {
                let attachments = match &packet {
                    Packet::Event { payload, .. } | Packet::Ack { payload, .. } => {
                        payload.attachments().to_vec()
                    }
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                let pushed: Vec<Bytes> = pushed.iter().cloned().map(Bytes::from).collect();
                prop_assert_eq!(attachments, pushed);
                "ok"
            }
            Err(PacketError::Payload(PayloadError::BadPlaceholder)) => "bad placeholder",
            Err(PacketError::Payload(PayloadError::UnusedAttachment)) => "unused attachment",
            Err(other) => return Err(TestCaseError::fail(format!("{text:?}: {other}"))),
        };
        prop_assert_eq!(actual, expected, "{:?} with {} attachments", text, received);
    }

    /// Any decoded packet takes any number of attachments and finishes without panicking.
    #[test]
    fn socketio_partial_never_panics(
        text in socketio_text(),
        pushed in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4), 0..4),
    ) {
        if let Ok(mut partial) = Packet::decode(&text, 8) {
            let mut total = 0;
            for bytes in pushed {
                total += bytes.len();
                partial.push(Bytes::from(bytes));
                let _ = partial.is_complete();
            }
            if matches!(partial.packet, Packet::Event { .. } | Packet::Ack { .. }) {
                prop_assert_eq!(partial.attachment_bytes(), total);
            }
            let _ = partial.finish();
        }
    }

    /// Any event or ack the server builds decodes back to itself: namespace, name, id,
    /// argument text and attachments.
    #[test]
    fn socketio_encode_then_decode_round_trips(
        nsp in prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"],
        event in prop_oneof!["[a-z]{1,10}", any::<String>()],
        id in proptest::option::of(any::<u64>()),
        args in proptest::collection::vec(json_value(false), 0..4),
        binaries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..3),
        as_ack in any::<bool>(),
    ) {
        let mut payload = Payload::new();
        for arg in &args {
            payload.push(arg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        for bytes in &binaries {
            payload.push_binary(bytes.clone());
        }
        let packet = if as_ack {
            Packet::Ack { nsp: nsp.clone(), id: id.unwrap_or_default(), payload }
        } else {
            Packet::Event { nsp: nsp.clone(), event: event.clone(), payload, id }
        };
        let frames = packet.encode();
        prop_assert_eq!(frames.len(), 1 + binaries.len());
        let decoded = decode_frames(&frames, binaries.len())
            .map_err(|e| TestCaseError::fail(format!("{frames:?}: {e}")))?;

        // The expectation, built independently of the encoder.
        let mut arg_texts: Vec<String> = args.iter().map(Value::to_string).collect();
        for num in 0..binaries.len() {
            arg_texts.push(format!(r#"{{"_placeholder":true,"num":{num}}}"#));
        }
        let attachments: Vec<Bytes> = binaries.iter().cloned().map(Bytes::from).collect();
        let expected = if as_ack {
            Shape::Ack(nsp, id.unwrap_or_default(), arg_texts, attachments)
        } else {
            Shape::Event(nsp, event, id, arg_texts, attachments)
        };
        prop_assert_eq!(shape(&decoded), expected);
    }

    /// Connects and disconnects round-trip too (the server never decodes CONNECT_ERROR).
    #[test]
    fn socketio_connect_disconnect_round_trip(
        nsp in prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"],
        auth in proptest::option::of(
            proptest::collection::btree_map("[a-z]{0,4}", json_value(false), 0..4)
        ),
        disconnect in any::<bool>(),
    ) {
        let (packet, expected) = if disconnect {
            (Packet::Disconnect { nsp: nsp.clone() }, Shape::Disconnect(nsp))
        } else {
            let text = auth.map(|map: BTreeMap<String, Value>| {
                Value::Object(map.into_iter().collect()).to_string()
            });
            let data = match &text {
                Some(text) => Some(
                    serde_json::value::RawValue::from_string(text.clone())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?,
                ),
                None => None,
            };
            (Packet::Connect { nsp: nsp.clone(), data }, Shape::Connect(nsp, text))
        };
        let decoded = decode_frames(&packet.encode(), 0)
            .map_err(|e| TestCaseError::fail(format!("{packet:?}: {e}")))?;
        prop_assert_eq!(shape(&decoded), expected);
    }
}

/// A V2 text frame, well formed or nearly so.
fn phoenix_text() -> impl Strategy<Value = String> {
    let reference = prop_oneof![
        Just("null".to_owned()),
        "[0-9]{1,3}".prop_map(|r| format!("\"{r}\""))
    ];
    (
        reference.clone(),
        reference,
        "[a-z:*/]{0,12}",
        "[a-z_]{1,10}",
        json_value(false),
    )
        .prop_map(|(join_ref, msg_ref, topic, event, payload)| {
            format!("[{join_ref},{msg_ref},\"{topic}\",\"{event}\",{payload}]")
        })
}

proptest! {
    #![proptest_config(config())]

    /// The Phoenix decoders never panic; a V2 frame they accept encodes back to a frame that
    /// decodes to the same message.
    #[test]
    fn phoenix_decode_never_panics_and_round_trips(
        text in prop_oneof![phoenix_text(), truncated(phoenix_text()), any::<String>()],
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        use tidings_runtime::phoenix::{Message, Vsn};
        let _ = Message::decode_binary(&bytes);
        let _ = Message::decode_text(Vsn::V1, &text);
        if let Ok(message) = Message::decode_text(Vsn::V2, &text) {
            let again = message.encode_text(Vsn::V2);
            prop_assert!(again.is_some());
            let decoded = Message::decode_text(Vsn::V2, &again.unwrap_or_default());
            prop_assert_eq!(decoded.ok(), Some(message));
        }
        if let Ok(push) = Message::decode_binary(&bytes) {
            // A client push re-encoded by the server is a push (kind 0) or, without join_ref,
            // a broadcast (kind 2): both carry the same topic, event and payload.
            let frame = push.encode_binary();
            prop_assert!(frame.is_some());
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// LongPoll uploads never panic the decoder: well-formed lines, truncated ones, base64 of
    /// any bytes and any text, mixed; an accepted upload has one message per non-empty line.
    #[test]
    fn phoenix_upload_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                phoenix_text(),
                truncated(phoenix_text()),
                proptest::collection::vec(any::<u8>(), 0..48).prop_map(|bytes| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                }),
                any::<String>(),
            ],
            0..8,
        ),
        max in 0usize..10,
    ) {
        use tidings_runtime::phoenix::{Vsn, decode_upload};
        let body = lines.join("\n");
        for vsn in [Vsn::V1, Vsn::V2] {
            if let Ok(messages) = decode_upload(vsn, body.as_bytes(), max) {
                let expected = body.split('\n').filter(|line| !line.is_empty()).count();
                prop_assert_eq!(messages.len(), expected);
                prop_assert!(messages.len() <= max);
            }
        }
    }
}

/// A plain WebSocket message, well formed or nearly so.
fn plainws_text() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("\"subscribe\"".to_owned()),
        Just("\"unsubscribe\"".to_owned()),
        Just("\"event\"".to_owned()),
        Just("\"ping\"".to_owned()),
        Just("\"other\"".to_owned()),
        Just("7".to_owned()),
    ];
    let field = |name: &'static str| {
        prop_oneof![
            Just(String::new()),
            "[a-z/:0-9]{0,10}".prop_map(move |v| format!(",\"{name}\":\"{v}\"")),
            json_value(false).prop_map(move |v| format!(",\"{name}\":{v}")),
        ]
    };
    (
        kind,
        field("channel"),
        field("event"),
        field("data"),
        field("ref"),
    )
        .prop_map(|(kind, channel, event, data, r)| {
            format!("{{\"type\":{kind}{channel}{event}{data}{r}}}")
        })
}

proptest! {
    #![proptest_config(config())]

    /// The plain WebSocket decoder never panics; what it refuses has one of the three reasons.
    #[test]
    fn plainws_decode_never_panics(
        text in prop_oneof![plainws_text(), truncated(plainws_text()), any::<String>()],
    ) {
        use tidings_runtime::plainws::ClientMessage;
        if let Err(err) = ClientMessage::decode(&text) {
            prop_assert!(["invalid_json", "unknown_type", "invalid"].contains(&err.reason()));
        }
    }
}

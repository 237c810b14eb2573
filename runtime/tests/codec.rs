//! Table-driven codec tests: one row per example of the official protocol specs.
//!
//! - Engine.IO v4: <https://github.com/socketio/engine.io-protocol> ("Packet encoding",
//!   "HTTP long-polling" payloads with the `\x1e` separator and `b` + base64 binary).
//! - Socket.IO v5: <https://github.com/socketio/socket.io-protocol> ("Packet encoding" tables
//!   and the "Sample session").
//!
//! Expected results are written out as data; nothing is compared against the encoder's own
//! output.

use bytes::Bytes;
use bytestring::ByteString;
use serde_json::value::RawValue;
use tidings_runtime::engineio::{
    self, DecodeError, Frame, SEPARATOR, Sid, decode_payload, encode_packet, encode_payload,
};
use tidings_runtime::socketio::{Packet, PacketError, Partial, Payload, PayloadError};

type EPacket = engineio::Packet;

// ---------------------------------------------------------------------------------------------
// Engine.IO: single packets
// ---------------------------------------------------------------------------------------------

const HANDSHAKE: &str = r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
const OPEN: &str = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

fn bin(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// `(input, allow_base64, expected)`.
fn engine_decode_rows() -> Vec<(&'static str, bool, Result<EPacket, DecodeError>)> {
    vec![
        // 0 open: the handshake.
        (OPEN, false, Ok(EPacket::Open(HANDSHAKE.into()))),
        (OPEN, true, Ok(EPacket::Open(HANDSHAKE.into()))),
        ("0", false, Ok(EPacket::Open("".into()))),
        // 1 close.
        ("1", false, Ok(EPacket::Close)),
        ("1", true, Ok(EPacket::Close)),
        // 2 ping: heartbeat and upgrade probe.
        ("2", false, Ok(EPacket::Ping("".into()))),
        ("2probe", false, Ok(EPacket::Ping("probe".into()))),
        ("2probe", true, Ok(EPacket::Ping("probe".into()))),
        // 3 pong.
        ("3", false, Ok(EPacket::Pong("".into()))),
        ("3probe", false, Ok(EPacket::Pong("probe".into()))),
        // 4 message.
        ("4hello", false, Ok(EPacket::Message("hello".into()))),
        ("4hello", true, Ok(EPacket::Message("hello".into()))),
        (
            "4HelloWorld",
            false,
            Ok(EPacket::Message("HelloWorld".into())),
        ),
        ("4world", true, Ok(EPacket::Message("world".into()))),
        ("4€€€", false, Ok(EPacket::Message("€€€".into()))),
        ("4", false, Ok(EPacket::Message("".into()))),
        (
            r#"42["hello"]"#,
            false,
            Ok(EPacket::Message(r#"2["hello"]"#.into())),
        ),
        // 5 upgrade, 6 noop.
        ("5", false, Ok(EPacket::Upgrade)),
        ("5", true, Ok(EPacket::Upgrade)),
        ("6", false, Ok(EPacket::Noop)),
        ("6", true, Ok(EPacket::Noop)),
        // Binary in a polling payload: `b` + base64.
        ("bAQIDBA==", true, Ok(EPacket::Binary(bin(&[1, 2, 3, 4])))),
        ("bAQID", true, Ok(EPacket::Binary(bin(&[1, 2, 3])))),
        ("bAQI=", true, Ok(EPacket::Binary(bin(&[1, 2])))),
        ("b", true, Ok(EPacket::Binary(bin(&[])))),
        // ... but not over WebSocket, where binary travels in binary frames.
        ("bAQIDBA==", false, Err(DecodeError::UnknownType(b'b'))),
        ("b", false, Err(DecodeError::UnknownType(b'b'))),
        // Invalid.
        ("", false, Err(DecodeError::Empty)),
        ("", true, Err(DecodeError::Empty)),
        ("7", false, Err(DecodeError::UnknownType(b'7'))),
        ("9", true, Err(DecodeError::UnknownType(b'9'))),
        ("x", false, Err(DecodeError::UnknownType(b'x'))),
        (" 4hello", false, Err(DecodeError::UnknownType(b' '))),
        ("\x1e", true, Err(DecodeError::UnknownType(0x1e))),
        ("é", false, Err(DecodeError::UnknownType(0xc3))),
        ("b!!!!", true, Err(DecodeError::Base64)),
        ("bAQIDBA=", true, Err(DecodeError::Base64)),
        ("bA", true, Err(DecodeError::Base64)),
        ("bAQ=D", true, Err(DecodeError::Base64)),
        ("b€", true, Err(DecodeError::Base64)),
    ]
}

#[test]
fn engineio_decode_text_table() {
    for (input, allow_base64, expected) in engine_decode_rows() {
        let actual = EPacket::decode_text(input.into(), allow_base64);
        assert_eq!(
            actual, expected,
            "decode_text({input:?}, allow_base64 = {allow_base64})"
        );
    }
}

#[test]
fn engineio_packet_encode_table() {
    let rows: Vec<(EPacket, Frame)> = vec![
        (EPacket::Open(HANDSHAKE.into()), Frame::Text(OPEN.into())),
        (EPacket::Close, Frame::Text("1".into())),
        (EPacket::Ping("".into()), Frame::Text("2".into())),
        (EPacket::Ping("probe".into()), Frame::Text("2probe".into())),
        (EPacket::Pong("".into()), Frame::Text("3".into())),
        (EPacket::Pong("probe".into()), Frame::Text("3probe".into())),
        (
            EPacket::Message("hello".into()),
            Frame::Text("4hello".into()),
        ),
        (EPacket::Message("€€€".into()), Frame::Text("4€€€".into())),
        (EPacket::Message("".into()), Frame::Text("4".into())),
        (EPacket::Upgrade, Frame::Text("5".into())),
        (EPacket::Noop, Frame::Text("6".into())),
        (
            EPacket::Binary(bin(&[1, 2, 3, 4])),
            Frame::Binary(bin(&[1, 2, 3, 4])),
        ),
    ];
    for (packet, expected) in rows {
        assert_eq!(packet.encode(), expected, "{packet:?}.encode()");
    }
}

#[test]
fn engineio_type_char_table() {
    let rows: Vec<(EPacket, Option<char>)> = vec![
        (EPacket::Open("{}".into()), Some('0')),
        (EPacket::Close, Some('1')),
        (EPacket::Ping("".into()), Some('2')),
        (EPacket::Pong("".into()), Some('3')),
        (EPacket::Message("x".into()), Some('4')),
        (EPacket::Upgrade, Some('5')),
        (EPacket::Noop, Some('6')),
        (EPacket::Binary(bin(&[1])), None),
    ];
    for (packet, expected) in rows {
        assert_eq!(packet.type_char(), expected, "{packet:?}.type_char()");
    }
}

#[test]
fn engineio_frame_message_and_len() {
    let rows: Vec<(&str, &str, usize)> = vec![
        ("hello", "4hello", 6),
        ("HelloWorld", "4HelloWorld", 11),
        ("", "4", 1),
        ("€", "4€", 4),
        (r#"2["foo"]"#, r#"42["foo"]"#, 9),
    ];
    for (text, wire, len) in rows {
        let frame = Frame::message(text);
        assert_eq!(frame, Frame::Text(wire.into()), "Frame::message({text:?})");
        assert_eq!(frame.len(), len, "len of {wire:?}");
        assert!(!frame.is_empty(), "{wire:?} is not empty");
    }
    let binary: Vec<(Frame, usize, bool)> = vec![
        (Frame::Binary(bin(&[1, 2, 3, 4])), 4, false),
        (Frame::Binary(bin(&[])), 0, true),
        (Frame::Text(ByteString::from("")), 0, true),
    ];
    for (frame, len, empty) in binary {
        assert_eq!(frame.len(), len, "{frame:?}.len()");
        assert_eq!(frame.is_empty(), empty, "{frame:?}.is_empty()");
    }
}

// ---------------------------------------------------------------------------------------------
// Engine.IO: polling payloads
// ---------------------------------------------------------------------------------------------

/// `(body, expected)`.
type PayloadRow = (&'static [u8], Result<Vec<EPacket>, DecodeError>);

fn payload_decode_rows() -> Vec<PayloadRow> {
    vec![
        // The spec's two payload examples.
        (
            b"4hello\x1e2\x1e4world",
            Ok(vec![
                EPacket::Message("hello".into()),
                EPacket::Ping("".into()),
                EPacket::Message("world".into()),
            ]),
        ),
        (
            b"4hello\x1ebAQIDBA==",
            Ok(vec![
                EPacket::Message("hello".into()),
                EPacket::Binary(bin(&[1, 2, 3, 4])),
            ]),
        ),
        // engine.io-parser 4.0.0 changelog examples.
        (
            "4hello\x1e4€€€".as_bytes(),
            Ok(vec![
                EPacket::Message("hello".into()),
                EPacket::Message("€€€".into()),
            ]),
        ),
        (
            b"4hello\x1ebAQID",
            Ok(vec![
                EPacket::Message("hello".into()),
                EPacket::Binary(bin(&[1, 2, 3])),
            ]),
        ),
        // Socket.IO sample session, request n°5.
        (
            b"42[\"hello\"]\x1e42[\"world\"]",
            Ok(vec![
                EPacket::Message(r#"2["hello"]"#.into()),
                EPacket::Message(r#"2["world"]"#.into()),
            ]),
        ),
        // Single packets.
        (b"2probe", Ok(vec![EPacket::Ping("probe".into())])),
        (b"6", Ok(vec![EPacket::Noop])),
        (b"1", Ok(vec![EPacket::Close])),
        (b"b", Ok(vec![EPacket::Binary(bin(&[]))])),
        (
            b"5\x1e6\x1e3probe",
            Ok(vec![
                EPacket::Upgrade,
                EPacket::Noop,
                EPacket::Pong("probe".into()),
            ]),
        ),
        // Invalid.
        (b"", Err(DecodeError::Empty)),
        (b"4a\x1e", Err(DecodeError::Empty)),
        (b"\x1e4a", Err(DecodeError::Empty)),
        (b"4a\x1e\x1e4b", Err(DecodeError::Empty)),
        (b"4a\x1e9", Err(DecodeError::UnknownType(b'9'))),
        (b"4a\x1eb!!", Err(DecodeError::Base64)),
        (b"bAQIDBA=\x1e4a", Err(DecodeError::Base64)),
        (b"4\xff", Err(DecodeError::InvalidUtf8)),
        (b"4hello\x1e4\xc3", Err(DecodeError::InvalidUtf8)),
        (b"\xc3\x28", Err(DecodeError::InvalidUtf8)),
    ]
}

#[test]
fn engineio_decode_payload_table() {
    for (body, expected) in payload_decode_rows() {
        let actual = decode_payload(Bytes::from_static(body));
        assert_eq!(
            actual,
            expected,
            "decode_payload({:?})",
            String::from_utf8_lossy(body)
        );
    }
}

/// `(frames, body, packets decoded back from body)`.
fn payload_encode_rows() -> Vec<(Vec<Frame>, &'static str, Vec<EPacket>)> {
    vec![
        (
            vec![
                Frame::message("hello"),
                Frame::Text("2".into()),
                Frame::message("world"),
            ],
            "4hello\x1e2\x1e4world",
            vec![
                EPacket::Message("hello".into()),
                EPacket::Ping("".into()),
                EPacket::Message("world".into()),
            ],
        ),
        (
            vec![Frame::message("hello"), Frame::Binary(bin(&[1, 2, 3, 4]))],
            "4hello\x1ebAQIDBA==",
            vec![
                EPacket::Message("hello".into()),
                EPacket::Binary(bin(&[1, 2, 3, 4])),
            ],
        ),
        (
            vec![Frame::message("hello"), Frame::message("€€€")],
            "4hello\x1e4€€€",
            vec![
                EPacket::Message("hello".into()),
                EPacket::Message("€€€".into()),
            ],
        ),
        (
            vec![Frame::message("hello"), Frame::Binary(bin(&[1, 2, 3]))],
            "4hello\x1ebAQID",
            vec![
                EPacket::Message("hello".into()),
                EPacket::Binary(bin(&[1, 2, 3])),
            ],
        ),
        (
            vec![
                Frame::message(r#"51-["baz",{"_placeholder":true,"num":0}]"#),
                Frame::Binary(bin(&[1, 2, 3, 4])),
            ],
            "451-[\"baz\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA==",
            vec![
                EPacket::Message(r#"51-["baz",{"_placeholder":true,"num":0}]"#.into()),
                EPacket::Binary(bin(&[1, 2, 3, 4])),
            ],
        ),
        (
            vec![Frame::Binary(bin(&[0xff, 0xfe, 0x1e, 0x00]))],
            "b//4eAA==",
            vec![EPacket::Binary(bin(&[0xff, 0xfe, 0x1e, 0x00]))],
        ),
        (
            vec![Frame::Binary(bin(&[]))],
            "b",
            vec![EPacket::Binary(bin(&[]))],
        ),
        (vec![Frame::Text("6".into())], "6", vec![EPacket::Noop]),
    ]
}

#[test]
fn engineio_encode_payload_table_and_round_trip() {
    for (frames, body, packets) in payload_encode_rows() {
        let encoded = encode_payload(&frames);
        assert_eq!(encoded, body, "encode_payload({frames:?})");
        let decoded = decode_payload(Bytes::from(encoded));
        assert_eq!(decoded, Ok(packets), "decode_payload({body:?})");
    }
}

#[test]
fn engineio_encode_payload_of_nothing_is_empty() {
    assert_eq!(encode_payload(&[]), "");
    assert_eq!(SEPARATOR, '\x1e');
}

#[test]
fn engineio_encode_packet_table() {
    let rows: Vec<(EPacket, &str)> = vec![
        (EPacket::Ping("probe".into()), "2probe"),
        (EPacket::Pong("probe".into()), "3probe"),
        (EPacket::Message("hello".into()), "4hello"),
        (EPacket::Close, "1"),
        (EPacket::Noop, "6"),
        (EPacket::Binary(bin(&[1, 2, 3, 4])), "bAQIDBA=="),
        (EPacket::Binary(bin(&[1, 2, 3])), "bAQID"),
    ];
    for (packet, body) in rows {
        assert_eq!(encode_packet(&packet), body, "encode_packet({packet:?})");
        assert_eq!(
            decode_payload(Bytes::from_static(body.as_bytes())),
            Ok(vec![packet.clone()]),
            "decode_payload({body:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Engine.IO: session ids
// ---------------------------------------------------------------------------------------------

#[test]
fn sid_parse_table() {
    let rows: Vec<(&str, bool)> = vec![
        // Ids from the specs.
        ("lv_VI97HAXpY6yYWAAAC", true),
        ("wZX3oN0bSVIhsaknAAAI", true),
        ("oSO0OpakMV_3jnilAAAA", true),
        ("iLnRaVGHY4B75TeVAAAB", true),
        ("-G5j-67EZFp-q59rADQM", true),
        ("CjdVH4TQvovi1VvgAC5Z", true),
        ("____________________", true),
        ("--------------------", true),
        // Not ids.
        ("", false),
        ("short", false),
        ("lv_VI97HAXpY6yYWAAA", false),
        ("lv_VI97HAXpY6yYWAAACx", false),
        ("lv_VI97HAXpY6yYWAA+C", false),
        ("lv_VI97HAXpY6yYWAA/C", false),
        ("lv_VI97HAXpY6yYWAAA=", false),
        ("lv_VI97HAXpY6yYWAA C", false),
        ("lv_VI97HAXpY6yYWAAA\0", false),
        ("lv_VI97HAXpY6yYWAA.C", false),
        // 20 bytes, but not ASCII.
        ("éééééééééé", false),
        ("lv_VI97HAXpY6yYWAAé", false),
    ];
    for (text, valid) in rows {
        let parsed = Sid::parse(text);
        assert_eq!(parsed.is_some(), valid, "Sid::parse({text:?})");
        if let Some(sid) = parsed {
            assert_eq!(sid.as_str(), text);
            assert_eq!(sid.to_string(), text);
            assert_eq!(format!("{sid:?}"), format!("Sid({text})"));
        }
    }
}

#[test]
fn sid_random_is_twenty_url_safe_chars_and_parses_back() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let sid = Sid::random().unwrap_or_else(|e| panic!("{e}"));
        let text = sid.as_str();
        assert_eq!(text.len(), Sid::LEN);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text:?} is URL-safe base64"
        );
        assert_eq!(Sid::parse(text), Some(sid));
        assert!(seen.insert(sid), "{text} was generated twice");
    }
    assert_eq!(Sid::LEN, 20);
}

// ---------------------------------------------------------------------------------------------
// Socket.IO: a comparable view of packets
// ---------------------------------------------------------------------------------------------

/// A packet with everything owned and comparable (`Packet` holds `RawValue`s).
#[derive(Debug, PartialEq)]
enum Shape {
    Connect {
        nsp: String,
        data: Option<String>,
    },
    Disconnect {
        nsp: String,
    },
    Event {
        nsp: String,
        event: String,
        id: Option<u64>,
        args: Vec<String>,
        attachments: Vec<Vec<u8>>,
    },
    Ack {
        nsp: String,
        id: u64,
        args: Vec<String>,
        attachments: Vec<Vec<u8>>,
    },
    ConnectError {
        nsp: String,
        message: String,
    },
}

fn args_of(payload: &Payload) -> Vec<String> {
    payload.args().iter().map(|a| a.get().to_owned()).collect()
}

fn attachments_of(payload: &Payload) -> Vec<Vec<u8>> {
    payload.attachments().iter().map(|b| b.to_vec()).collect()
}

fn shape(packet: &Packet) -> Shape {
    match packet {
        Packet::Connect { nsp, data } => Shape::Connect {
            nsp: nsp.clone(),
            data: data.as_ref().map(|d| d.get().to_owned()),
        },
        Packet::Disconnect { nsp } => Shape::Disconnect { nsp: nsp.clone() },
        Packet::Event {
            nsp,
            event,
            payload,
            id,
        } => Shape::Event {
            nsp: nsp.clone(),
            event: event.clone(),
            id: *id,
            args: args_of(payload),
            attachments: attachments_of(payload),
        },
        Packet::Ack { nsp, id, payload } => Shape::Ack {
            nsp: nsp.clone(),
            id: *id,
            args: args_of(payload),
            attachments: attachments_of(payload),
        },
        Packet::ConnectError { nsp, message } => Shape::ConnectError {
            nsp: nsp.clone(),
            message: message.clone(),
        },
    }
}

fn connect(nsp: &str, data: Option<&str>) -> Shape {
    Shape::Connect {
        nsp: nsp.to_owned(),
        data: data.map(str::to_owned),
    }
}

fn disconnect(nsp: &str) -> Shape {
    Shape::Disconnect {
        nsp: nsp.to_owned(),
    }
}

fn event(nsp: &str, name: &str, id: Option<u64>, args: &[&str], attachments: &[&[u8]]) -> Shape {
    Shape::Event {
        nsp: nsp.to_owned(),
        event: name.to_owned(),
        id,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        attachments: attachments.iter().map(|a| a.to_vec()).collect(),
    }
}

fn ack(nsp: &str, id: u64, args: &[&str], attachments: &[&[u8]]) -> Shape {
    Shape::Ack {
        nsp: nsp.to_owned(),
        id,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        attachments: attachments.iter().map(|a| a.to_vec()).collect(),
    }
}

const P0: &str = r#"{"_placeholder":true,"num":0}"#;
const P1: &str = r#"{"_placeholder":true,"num":1}"#;

/// What went wrong, comparable (`PacketError` holds `serde_json::Error`s).
#[derive(Debug, PartialEq)]
enum Fail {
    UnknownType(Option<char>),
    BadAttachmentCount,
    TooManyAttachments(usize),
    BadAckId,
    MissingAckId,
    InvalidJson,
    InvalidPayload(&'static str),
    BadPlaceholder,
    UnusedAttachment,
    Other(String),
}

fn fail(error: &PacketError) -> Fail {
    match error {
        PacketError::UnknownType(c) => Fail::UnknownType(*c),
        PacketError::BadAttachmentCount => Fail::BadAttachmentCount,
        PacketError::TooManyAttachments(n) => Fail::TooManyAttachments(*n),
        PacketError::BadAckId => Fail::BadAckId,
        PacketError::MissingAckId => Fail::MissingAckId,
        PacketError::InvalidJson => Fail::InvalidJson,
        PacketError::InvalidPayload(what) => Fail::InvalidPayload(what),
        PacketError::Payload(PayloadError::BadPlaceholder) => Fail::BadPlaceholder,
        PacketError::Payload(PayloadError::UnusedAttachment) => Fail::UnusedAttachment,
        other => Fail::Other(other.to_string()),
    }
}

const ARRAY: Fail = Fail::InvalidPayload("arguments must be an array");

// ---------------------------------------------------------------------------------------------
// Socket.IO: decoding what clients send
// ---------------------------------------------------------------------------------------------

/// `(input, announced attachments, packet)`: every packet of the spec a client may send.
fn socketio_decode_rows() -> Vec<(&'static str, usize, Shape)> {
    vec![
        // Connection to a namespace.
        ("0", 0, connect("/", None)),
        ("0/admin,", 0, connect("/admin", None)),
        (
            r#"0{"token":"123"}"#,
            0,
            connect("/", Some(r#"{"token":"123"}"#)),
        ),
        (
            r#"0/admin,{"token":"123"}"#,
            0,
            connect("/admin", Some(r#"{"token":"123"}"#)),
        ),
        ("0/custom,{}", 0, connect("/custom", Some("{}"))),
        // Disconnection from a namespace.
        ("1", 0, disconnect("/")),
        ("1/admin,", 0, disconnect("/admin")),
        // Sending and receiving data.
        (r#"2["foo"]"#, 0, event("/", "foo", None, &[], &[])),
        (
            r#"2/admin,["bar"]"#,
            0,
            event("/admin", "bar", None, &[], &[]),
        ),
        (
            r#"2["hey","Jude"]"#,
            0,
            event("/", "hey", None, &[r#""Jude""#], &[]),
        ),
        (r#"2["hello"]"#, 0, event("/", "hello", None, &[], &[])),
        (r#"2["world"]"#, 0, event("/", "world", None, &[], &[])),
        (
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            1,
            event("/", "baz", None, &[P0], &[]),
        ),
        (
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            2,
            event("/admin", "baz", None, &[P0, P1], &[]),
        ),
        // Acknowledgement.
        (r#"212["foo"]"#, 0, event("/", "foo", Some(12), &[], &[])),
        ("312[]", 0, ack("/", 12, &[], &[])),
        (
            r#"2/admin,13["foo"]"#,
            0,
            event("/admin", "foo", Some(13), &[], &[]),
        ),
        (
            r#"3/admin,13["bar"]"#,
            0,
            ack("/admin", 13, &[r#""bar""#], &[]),
        ),
        (
            r#"3/admin,12["bar"]"#,
            0,
            ack("/admin", 12, &[r#""bar""#], &[]),
        ),
        (
            r#"51-14["foo",{"_placeholder":true,"num":0}]"#,
            1,
            event("/", "foo", Some(14), &[P0], &[]),
        ),
        (r#"314["bar"]"#, 0, ack("/", 14, &[r#""bar""#], &[])),
        (r#"215["foo"]"#, 0, event("/", "foo", Some(15), &[], &[])),
        (
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
            1,
            ack("/", 15, &[r#""bar""#, P0], &[]),
        ),
        (
            r#"61-/admin,15[{"_placeholder":true,"num":0}]"#,
            1,
            ack("/admin", 15, &[P0], &[]),
        ),
        // Sample session.
        (
            r#"2/admin,1["tellme"]"#,
            0,
            event("/admin", "tellme", Some(1), &[], &[]),
        ),
        (
            r#"61-/admin,1[{"_placeholder":true,"num":0}]"#,
            1,
            ack("/admin", 1, &[P0], &[]),
        ),
        // Arguments kept byte for byte, key order included.
        (
            r#"2["message",{"b":1,"a":[1,2,{"z":null,"y":"é"}]},3.5,true,null]"#,
            0,
            event(
                "/",
                "message",
                None,
                &[
                    r#"{"b":1,"a":[1,2,{"z":null,"y":"é"}]}"#,
                    "3.5",
                    "true",
                    "null",
                ],
                &[],
            ),
        ),
        (
            r#"2["n",1.50,1e3,-0,"\u00e9"]"#,
            0,
            event("/", "n", None, &["1.50", "1e3", "-0", r#""\u00e9""#], &[]),
        ),
        // Edges: escaped event name, empty event name, the largest ack id, leading zeros.
        (r#"2["\u0066oo"]"#, 0, event("/", "foo", None, &[], &[])),
        (r#"2[""]"#, 0, event("/", "", None, &[], &[])),
        (
            r#"218446744073709551615["a"]"#,
            0,
            event("/", "a", Some(u64::MAX), &[], &[]),
        ),
        ("30[]", 0, ack("/", 0, &[], &[])),
        ("3007[1]", 0, ack("/", 7, &["1"], &[])),
        (r#"2/é,["a"]"#, 0, event("/é", "a", None, &[], &[])),
    ]
}

#[test]
fn socketio_decode_client_examples_table() {
    for (input, expected_attachments, expected) in socketio_decode_rows() {
        let partial = Packet::decode(input, 10)
            .unwrap_or_else(|e| panic!("Packet::decode({input:?}) failed: {e}"));
        assert_eq!(
            partial.expected, expected_attachments,
            "attachments announced by {input:?}"
        );
        assert_eq!(
            partial.is_complete(),
            expected_attachments == 0,
            "is_complete of {input:?}"
        );
        assert_eq!(
            partial.attachment_bytes(),
            0,
            "no attachment yet in {input:?}"
        );
        assert_eq!(
            shape(&partial.packet),
            expected,
            "Packet::decode({input:?})"
        );
        let nsp = match &expected {
            Shape::Connect { nsp, .. }
            | Shape::Disconnect { nsp }
            | Shape::Event { nsp, .. }
            | Shape::Ack { nsp, .. }
            | Shape::ConnectError { nsp, .. } => nsp.clone(),
        };
        assert_eq!(partial.packet.nsp(), nsp, "nsp() of {input:?}");
    }
}

/// `(input, max_attachments, error)`.
fn socketio_invalid_rows() -> Vec<(&'static str, usize, Fail)> {
    vec![
        // Unknown or missing type.
        ("", 10, Fail::UnknownType(None)),
        ("9", 10, Fail::UnknownType(Some('9'))),
        (r#"7["a"]"#, 10, Fail::UnknownType(Some('7'))),
        ("a", 10, Fail::UnknownType(Some('a'))),
        ("é", 10, Fail::UnknownType(Some('é'))),
        (r#" 2["a"]"#, 10, Fail::UnknownType(Some(' '))),
        // EVENT: the payload must be a non-empty array starting with a string.
        ("2", 10, ARRAY),
        ("2/admin,", 10, ARRAY),
        ("2/admin", 10, ARRAY),
        ("212", 10, ARRAY),
        (r#"2{"a":1}"#, 10, ARRAY),
        (r#"2"a""#, 10, ARRAY),
        (r#"2 ["a"]"#, 10, ARRAY),
        ("2[]", 10, Fail::InvalidPayload("EVENT")),
        ("2/admin,[]", 10, Fail::InvalidPayload("EVENT")),
        ("2[1]", 10, Fail::InvalidPayload("EVENT")),
        ("2[null]", 10, Fail::InvalidPayload("EVENT")),
        ("2[{}]", 10, Fail::InvalidPayload("EVENT")),
        (r#"2[["a"]]"#, 10, Fail::InvalidPayload("EVENT")),
        (r#"2["a""#, 10, Fail::InvalidJson),
        (r#"2["a",]"#, 10, Fail::InvalidJson),
        (r#"2["a"]x"#, 10, Fail::InvalidJson),
        (r#"2["a"]]"#, 10, Fail::InvalidJson),
        ("2[", 10, Fail::InvalidJson),
        (r#"2['a']"#, 10, Fail::InvalidJson),
        // ACK: needs an id and an array.
        (r#"3["x"]"#, 10, Fail::MissingAckId),
        ("3", 10, Fail::MissingAckId),
        ("3[]", 10, Fail::MissingAckId),
        (r#"3/admin,["x"]"#, 10, Fail::MissingAckId),
        ("312", 10, ARRAY),
        ("312{}", 10, ARRAY),
        ("312[", 10, Fail::InvalidJson),
        // Ack ids that do not fit in 64 bits.
        (r#"299999999999999999999999["a"]"#, 10, Fail::BadAckId),
        (r#"218446744073709551616["a"]"#, 10, Fail::BadAckId),
        ("318446744073709551616[]", 10, Fail::BadAckId),
        // BINARY_EVENT / BINARY_ACK: `<n>-` is mandatory.
        (r#"5-["a"]"#, 10, Fail::BadAttachmentCount),
        (r#"5x-["a"]"#, 10, Fail::BadAttachmentCount),
        (r#"5["a"]"#, 10, Fail::BadAttachmentCount),
        (r#"51["a"]"#, 10, Fail::BadAttachmentCount),
        (r#"5/admin,1-["a"]"#, 10, Fail::BadAttachmentCount),
        ("5", 10, Fail::BadAttachmentCount),
        ("51", 10, Fail::BadAttachmentCount),
        ("6-[]", 10, Fail::BadAttachmentCount),
        ("6", 10, Fail::BadAttachmentCount),
        (
            r#"599999999999999999999-["a",{"_placeholder":true,"num":0}]"#,
            10,
            Fail::BadAttachmentCount,
        ),
        (
            r#"599999999999999999999-["a",{"_placeholder":true,"num":0}]"#,
            usize::MAX,
            Fail::BadAttachmentCount,
        ),
        (r#"51-["a""#, 10, Fail::InvalidJson),
        ("51-[]", 10, Fail::InvalidPayload("EVENT")),
        (r#"61-["a"]"#, 10, Fail::MissingAckId),
        ("61-1", 10, ARRAY),
        // DISCONNECT carries no data.
        (r#"1{"a":1}"#, 10, Fail::InvalidPayload("DISCONNECT")),
        ("1/admin,{}", 10, Fail::InvalidPayload("DISCONNECT")),
        ("1[]", 10, Fail::InvalidPayload("DISCONNECT")),
        (r#"1"bye""#, 10, Fail::InvalidPayload("DISCONNECT")),
        // CONNECT data must be an object.
        ("0[1]", 10, Fail::InvalidPayload("CONNECT")),
        (r#"0"tok""#, 10, Fail::InvalidPayload("CONNECT")),
        ("0null", 10, Fail::InvalidPayload("CONNECT")),
        ("0true", 10, Fail::InvalidPayload("CONNECT")),
        ("0/admin,[]", 10, Fail::InvalidPayload("CONNECT")),
        ("0{", 10, Fail::InvalidJson),
        ("0{}x", 10, Fail::InvalidJson),
        (r#"0{"token":}"#, 10, Fail::InvalidJson),
        ("0/admin,x", 10, Fail::InvalidJson),
        // A client never sends CONNECT_ERROR.
        (
            r#"4{"message":"Not authorized"}"#,
            10,
            Fail::InvalidPayload("CONNECT_ERROR"),
        ),
        (
            r#"4{"message":"x"}"#,
            10,
            Fail::InvalidPayload("CONNECT_ERROR"),
        ),
        (
            r#"4/admin,{"message":"x"}"#,
            10,
            Fail::InvalidPayload("CONNECT_ERROR"),
        ),
        ("4", 10, Fail::InvalidPayload("CONNECT_ERROR")),
        // An Engine.IO message left with its `4` reads as CONNECT_ERROR.
        (r#"42["a"]"#, 10, Fail::InvalidPayload("CONNECT_ERROR")),
        // max_attachments.
        (
            r#"511-["a",{"_placeholder":true,"num":0}]"#,
            10,
            Fail::TooManyAttachments(11),
        ),
        (
            r#"52-["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            1,
            Fail::TooManyAttachments(2),
        ),
        (
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            0,
            Fail::TooManyAttachments(1),
        ),
        (
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
            0,
            Fail::TooManyAttachments(1),
        ),
        (
            r#"5100000-["a"]"#,
            99_999,
            Fail::TooManyAttachments(100_000),
        ),
    ]
}

#[test]
fn socketio_decode_invalid_table() {
    for (input, max_attachments, expected) in socketio_invalid_rows() {
        match Packet::decode(input, max_attachments) {
            Ok(partial) => panic!(
                "Packet::decode({input:?}, {max_attachments}) accepted {:?}, expected {expected:?}",
                shape(&partial.packet)
            ),
            Err(error) => assert_eq!(
                fail(&error),
                expected,
                "Packet::decode({input:?}, {max_attachments})"
            ),
        }
    }
}

#[test]
fn socketio_max_attachments_boundary_is_accepted() {
    // `(input, max_attachments, announced)`: exactly at the limit is fine.
    let rows: Vec<(&str, usize, usize)> = vec![
        (
            r#"52-["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            2,
            2,
        ),
        (r#"51-["baz",{"_placeholder":true,"num":0}]"#, 1, 1),
        (r#"50-["baz"]"#, 0, 0),
        (r#"510-["baz"]"#, 10, 10),
        (r#"61-15["bar",{"_placeholder":true,"num":0}]"#, 1, 1),
    ];
    for (input, max, announced) in rows {
        let partial = Packet::decode(input, max)
            .unwrap_or_else(|e| panic!("Packet::decode({input:?}, {max}) failed: {e}"));
        assert_eq!(partial.expected, announced, "{input:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Socket.IO: attachments
// ---------------------------------------------------------------------------------------------

/// Decodes `input`, pushes `attachments` one by one (checking `is_complete` along the way),
/// then finishes.
fn assemble(input: &str, attachments: &[&[u8]]) -> Result<Packet, PacketError> {
    let mut partial: Partial = Packet::decode(input, 10)?;
    let mut bytes = 0;
    for (i, attachment) in attachments.iter().enumerate() {
        assert_eq!(
            partial.is_complete(),
            i >= partial.expected,
            "is_complete of {input:?} after {i} attachments"
        );
        partial.push(Bytes::copy_from_slice(attachment));
        bytes += attachment.len();
        assert_eq!(
            partial.attachment_bytes(),
            bytes,
            "attachment_bytes of {input:?}"
        );
    }
    partial.finish()
}

/// `(input, attachments, packet)`.
fn assemble_ok_rows() -> Vec<(&'static str, Vec<&'static [u8]>, Shape)> {
    vec![
        (
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            vec![&[1, 2, 3, 4]],
            event("/", "baz", None, &[P0], &[&[1, 2, 3, 4]]),
        ),
        (
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            vec![&[1, 2], &[3, 4]],
            event("/admin", "baz", None, &[P0, P1], &[&[1, 2], &[3, 4]]),
        ),
        (
            r#"51-14["foo",{"_placeholder":true,"num":0}]"#,
            vec![&[1, 2, 3, 4]],
            event("/", "foo", Some(14), &[P0], &[&[1, 2, 3, 4]]),
        ),
        (
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
            vec![&[1, 2, 3, 4]],
            ack("/", 15, &[r#""bar""#, P0], &[&[1, 2, 3, 4]]),
        ),
        (
            r#"61-/admin,15[{"_placeholder":true,"num":0}]"#,
            vec![&[9]],
            ack("/admin", 15, &[P0], &[&[9]]),
        ),
        // Placeholders nested anywhere, in any key order, in any order of num.
        (
            r#"52-["up",{"file":{"_placeholder":true,"num":1},"more":[{"num":0,"_placeholder":true}]}]"#,
            vec![&[0], &[1]],
            event(
                "/",
                "up",
                None,
                &[
                    r#"{"file":{"_placeholder":true,"num":1},"more":[{"num":0,"_placeholder":true}]}"#,
                ],
                &[&[0], &[1]],
            ),
        ),
        // One attachment referenced twice.
        (
            r#"51-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#,
            vec![&[7]],
            event("/", "a", None, &[P0, P0], &[&[7]]),
        ),
        // An empty attachment.
        (
            r#"51-["a",{"_placeholder":true,"num":0}]"#,
            vec![&[]],
            event("/", "a", None, &[P0], &[&[]]),
        ),
        // No attachments announced.
        (r#"50-["a"]"#, vec![], event("/", "a", None, &[], &[])),
        (r#"2["a"]"#, vec![], event("/", "a", None, &[], &[])),
        ("312[]", vec![], ack("/", 12, &[], &[])),
    ]
}

#[test]
fn socketio_partial_push_finish_ok_table() {
    for (input, attachments, expected) in assemble_ok_rows() {
        let packet = assemble(input, &attachments)
            .unwrap_or_else(|e| panic!("assembling {input:?} failed: {e}"));
        assert_eq!(shape(&packet), expected, "assembled {input:?}");
    }
}

/// `(input, attachments, error)`.
fn assemble_err_rows() -> Vec<(&'static str, Vec<&'static [u8]>, Fail)> {
    vec![
        // A placeholder past the attachments.
        (
            r#"51-["a",{"_placeholder":true,"num":1}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        (
            r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":2}]"#,
            vec![&[1], &[2]],
            Fail::BadPlaceholder,
        ),
        (
            r#"61-3[{"_placeholder":true,"num":99}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        // Placeholders with a num that is not an index.
        (
            r#"51-["a",{"_placeholder":true,"num":-1}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        (
            r#"51-["a",{"_placeholder":true,"num":0.5}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        (
            r#"51-["a",{"_placeholder":true,"num":"0"}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        (
            r#"51-["a",{"_placeholder":true}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        (
            r#"51-["a",{"_placeholder":true,"num":18446744073709551616}]"#,
            vec![&[1]],
            Fail::BadPlaceholder,
        ),
        // Finished before its attachment arrived.
        (
            r#"51-["a",{"_placeholder":true,"num":0}]"#,
            vec![],
            Fail::BadPlaceholder,
        ),
        // Attachments nobody points at.
        (r#"51-["a"]"#, vec![&[1]], Fail::UnusedAttachment),
        (
            r#"52-["a",{"_placeholder":true,"num":0}]"#,
            vec![&[1], &[2]],
            Fail::UnusedAttachment,
        ),
        (
            r#"52-["a",{"_placeholder":true,"num":1}]"#,
            vec![&[1], &[2]],
            Fail::UnusedAttachment,
        ),
        (
            r#"51-["a",{"_placeholder":false,"num":0}]"#,
            vec![&[1]],
            Fail::UnusedAttachment,
        ),
        (r#"61-4["x"]"#, vec![&[1]], Fail::UnusedAttachment),
    ]
}

#[test]
fn socketio_partial_push_finish_err_table() {
    for (input, attachments, expected) in assemble_err_rows() {
        match assemble(input, &attachments) {
            Ok(packet) => panic!(
                "assembling {input:?} gave {:?}, expected {expected:?}",
                shape(&packet)
            ),
            Err(error) => assert_eq!(fail(&error), expected, "assembling {input:?}"),
        }
    }
}

#[test]
fn socketio_partial_is_complete_counts_attachments() {
    let mut partial = Packet::decode(
        r#"53-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]"#,
        3,
    )
    .expect("valid binary event");
    let mut progress = vec![(partial.is_complete(), partial.attachment_bytes())];
    for size in [3usize, 0, 5] {
        partial.push(Bytes::from(vec![0xaa; size]));
        progress.push((partial.is_complete(), partial.attachment_bytes()));
    }
    assert_eq!(
        progress,
        vec![(false, 0), (false, 3), (false, 3), (true, 8)]
    );
    let packet = partial
        .finish()
        .expect("every placeholder has its attachment");
    let Packet::Event { payload, .. } = packet else {
        panic!("expected an event, got {packet:?}");
    };
    let sizes: Vec<Option<usize>> = (0..4).map(|i| payload.binary(i).map(Bytes::len)).collect();
    assert_eq!(sizes, vec![Some(3), Some(0), Some(5), None]);
}

// ---------------------------------------------------------------------------------------------
// Socket.IO: encoding what the server sends
// ---------------------------------------------------------------------------------------------

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON in the test table")
}

/// A payload from raw JSON texts and binaries: `Ok(json)` is an argument kept byte for byte,
/// `Err(bytes)` a binary argument.
fn payload(args: &[Result<&str, &[u8]>]) -> Payload {
    let mut payload = Payload::new();
    for arg in args {
        match arg {
            Ok(json) => {
                payload.push(&*raw(json)).expect("raw JSON serializes");
            }
            Err(bytes) => {
                payload.push_binary(bin(bytes));
            }
        }
    }
    payload
}

fn ev(nsp: &str, name: &str, id: Option<u64>, args: &[Result<&str, &[u8]>]) -> Packet {
    Packet::Event {
        nsp: nsp.to_owned(),
        event: name.to_owned(),
        payload: payload(args),
        id,
    }
}

fn ak(nsp: &str, id: u64, args: &[Result<&str, &[u8]>]) -> Packet {
    Packet::Ack {
        nsp: nsp.to_owned(),
        id,
        payload: payload(args),
    }
}

fn text(wire: &str) -> Frame {
    Frame::Text(wire.into())
}

/// `(packet, frames)`: every packet of the spec, as the server writes it (Engine.IO `4` prefix
/// included).
fn socketio_encode_rows() -> Vec<(Packet, Vec<Frame>)> {
    let bytes: &[u8] = &[1, 2, 3, 4];
    vec![
        // Connection to a namespace.
        (
            Packet::Connect {
                nsp: "/".into(),
                data: None,
            },
            vec![text("40")],
        ),
        (
            Packet::Connect {
                nsp: "/".into(),
                data: Some(raw(r#"{"sid":"wZX3oN0bSVIhsaknAAAI"}"#)),
            },
            vec![text(r#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#)],
        ),
        (
            Packet::Connect {
                nsp: "/admin".into(),
                data: None,
            },
            vec![text("40/admin,")],
        ),
        (
            Packet::Connect {
                nsp: "/admin".into(),
                data: Some(raw(r#"{"sid":"oSO0OpakMV_3jnilAAAA"}"#)),
            },
            vec![text(r#"40/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#)],
        ),
        (
            Packet::Connect {
                nsp: "/admin".into(),
                data: Some(raw(r#"{"sid":"-G5j-67EZFp-q59rADQM"}"#)),
            },
            vec![text(r#"40/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#)],
        ),
        (
            Packet::ConnectError {
                nsp: "/".into(),
                message: "Not authorized".into(),
            },
            vec![text(r#"44{"message":"Not authorized"}"#)],
        ),
        (
            Packet::ConnectError {
                nsp: "/admin".into(),
                message: "say \"no\"\n".into(),
            },
            vec![text(r#"44/admin,{"message":"say \"no\"\n"}"#)],
        ),
        // Disconnection.
        (Packet::Disconnect { nsp: "/".into() }, vec![text("41")]),
        (
            Packet::Disconnect {
                nsp: "/admin".into(),
            },
            vec![text("41/admin,")],
        ),
        // Events.
        (ev("/", "foo", None, &[]), vec![text(r#"42["foo"]"#)]),
        (
            ev("/admin", "bar", None, &[]),
            vec![text(r#"42/admin,["bar"]"#)],
        ),
        (
            ev("/", "hey", None, &[Ok(r#""Jude""#)]),
            vec![text(r#"42["hey","Jude"]"#)],
        ),
        (ev("/", "a\"b", None, &[]), vec![text(r#"42["a\"b"]"#)]),
        (ev("/", "é", None, &[]), vec![text(r#"42["é"]"#)]),
        (
            ev("/", "baz", None, &[Err(bytes)]),
            vec![
                text(r#"451-["baz",{"_placeholder":true,"num":0}]"#),
                Frame::Binary(bin(bytes)),
            ],
        ),
        (
            ev("/admin", "baz", None, &[Err(&[1, 2]), Err(&[3, 4])]),
            vec![
                text(
                    r#"452-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                ),
                Frame::Binary(bin(&[1, 2])),
                Frame::Binary(bin(&[3, 4])),
            ],
        ),
        // Events asking for an ack.
        (ev("/", "foo", Some(12), &[]), vec![text(r#"4212["foo"]"#)]),
        (
            ev("/admin", "foo", Some(13), &[]),
            vec![text(r#"42/admin,13["foo"]"#)],
        ),
        (ev("/", "foo", Some(15), &[]), vec![text(r#"4215["foo"]"#)]),
        (ev("/", "foo", Some(0), &[]), vec![text(r#"420["foo"]"#)]),
        (
            ev("/", "a", Some(u64::MAX), &[]),
            vec![text(r#"4218446744073709551615["a"]"#)],
        ),
        (
            ev("/", "foo", Some(14), &[Err(bytes)]),
            vec![
                text(r#"451-14["foo",{"_placeholder":true,"num":0}]"#),
                Frame::Binary(bin(bytes)),
            ],
        ),
        (
            ev("/admin", "tellme", Some(1), &[]),
            vec![text(r#"42/admin,1["tellme"]"#)],
        ),
        // Acks.
        (ak("/", 12, &[]), vec![text("4312[]")]),
        (
            ak("/admin", 13, &[Ok(r#""bar""#)]),
            vec![text(r#"43/admin,13["bar"]"#)],
        ),
        (ak("/", 14, &[Ok(r#""bar""#)]), vec![text(r#"4314["bar"]"#)]),
        (
            ak("/", 3, &[Ok("1"), Ok(r#"{"b":2,"a":1}"#)]),
            vec![text(r#"433[1,{"b":2,"a":1}]"#)],
        ),
        (
            ak("/", 15, &[Ok(r#""bar""#), Err(bytes)]),
            vec![
                text(r#"461-15["bar",{"_placeholder":true,"num":0}]"#),
                Frame::Binary(bin(bytes)),
            ],
        ),
        (
            ak("/admin", 1, &[Err(&[0xff])]),
            vec![
                text(r#"461-/admin,1[{"_placeholder":true,"num":0}]"#),
                Frame::Binary(bin(&[0xff])),
            ],
        ),
    ]
}

#[test]
fn socketio_encode_table() {
    for (packet, expected) in socketio_encode_rows() {
        assert_eq!(packet.encode(), expected, "{packet:?}.encode()");
    }
}

#[test]
fn socketio_encode_connect_with_random_sid() {
    let sid = Sid::random().unwrap_or_else(|e| panic!("{e}"));
    let packet = Packet::Connect {
        nsp: "/admin".into(),
        data: Some(raw(&format!(r#"{{"sid":"{sid}"}}"#))),
    };
    let frames = packet.encode();
    let [Frame::Text(wire)] = frames.as_slice() else {
        panic!("one text frame expected, got {frames:?}");
    };
    let sid_text = wire
        .strip_prefix(r#"40/admin,{"sid":""#)
        .and_then(|rest| rest.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("unexpected frame {wire:?}"));
    assert_eq!(Sid::parse(sid_text), Some(sid));
}

/// `(what a client sent, attachments, the frames the server would write back)`: decoding then
/// encoding keeps every byte of the JSON, key order and number spelling included.
type PassThroughRow = (&'static str, Vec<&'static [u8]>, Vec<Frame>);

fn pass_through_rows() -> Vec<PassThroughRow> {
    vec![
        (
            r#"2["message",{"b":1,"a":[1,2,{"z":null,"y":"é"}]},3.5,true,null]"#,
            vec![],
            vec![text(
                r#"42["message",{"b":1,"a":[1,2,{"z":null,"y":"é"}]},3.5,true,null]"#,
            )],
        ),
        (
            r#"2/admin,7["n",1.50,1e3,-0,"\u00e9",{"":{}}]"#,
            vec![],
            vec![text(r#"42/admin,7["n",1.50,1e3,-0,"\u00e9",{"":{}}]"#)],
        ),
        (
            r#"3/admin,13[{"z":1,"a":2},"x"]"#,
            vec![],
            vec![text(r#"43/admin,13[{"z":1,"a":2},"x"]"#)],
        ),
        (
            r#"0/admin,{"z":1,"a":{"y":2,"b":3}}"#,
            vec![],
            vec![text(r#"40/admin,{"z":1,"a":{"y":2,"b":3}}"#)],
        ),
        ("1/admin,", vec![], vec![text("41/admin,")]),
        ("312[]", vec![], vec![text("4312[]")]),
        (
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            vec![&[1, 2, 3, 4]],
            vec![
                text(r#"451-["baz",{"_placeholder":true,"num":0}]"#),
                Frame::Binary(bin(&[1, 2, 3, 4])),
            ],
        ),
        (
            r#"61-/admin,15[{"num":0,"_placeholder":true}]"#,
            vec![&[5, 6]],
            vec![
                text(r#"461-/admin,15[{"num":0,"_placeholder":true}]"#),
                Frame::Binary(bin(&[5, 6])),
            ],
        ),
    ]
}

#[test]
fn socketio_decode_then_encode_keeps_bytes() {
    for (input, attachments, expected) in pass_through_rows() {
        let packet = assemble(input, &attachments)
            .unwrap_or_else(|e| panic!("assembling {input:?} failed: {e}"));
        assert_eq!(packet.encode(), expected, "re-encoding {input:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Socket.IO: payload helpers
// ---------------------------------------------------------------------------------------------

#[derive(serde::Serialize)]
struct Ordered {
    b: u8,
    a: &'static str,
}

#[test]
fn payload_push_serializes_each_argument() {
    let mut payload = Payload::new();
    assert!(payload.is_empty());
    assert_eq!(payload.len(), 0);
    payload
        .push(&Ordered { b: 1, a: "x" })
        .expect("serializes")
        .push("é\"")
        .expect("serializes")
        .push(&1.5)
        .expect("serializes")
        .push(&None::<u8>)
        .expect("serializes")
        .push(&[1u8, 2])
        .expect("serializes")
        .push(&*raw(r#"{"z" : 1, "a":[ ]}"#))
        .expect("serializes");
    assert!(!payload.is_empty());
    assert_eq!(payload.len(), 6);
    assert_eq!(
        args_of(&payload),
        vec![
            r#"{"b":1,"a":"x"}"#,
            r#""é\"""#,
            "1.5",
            "null",
            "[1,2]",
            r#"{"z" : 1, "a":[ ]}"#,
        ]
    );
    assert!(payload.attachments().is_empty());
    assert_eq!(payload.arg(1).map(RawValue::get), Some(r#""é\"""#));
    assert_eq!(payload.arg(6).map(RawValue::get), None);
}

#[test]
fn payload_push_reports_unserializable_values() {
    let mut map = std::collections::BTreeMap::new();
    map.insert(vec![1u8], 1u8);
    let mut payload = Payload::new();
    let error = payload.push(&map).err();
    assert!(
        matches!(error, Some(PayloadError::Serialize(_))),
        "{error:?}"
    );
    assert_eq!(payload.len(), 0, "nothing was added");
    let error = Payload::from_value(&map).err();
    assert!(
        matches!(error, Some(PayloadError::Serialize(_))),
        "{error:?}"
    );
}

#[test]
fn payload_from_value_is_one_argument() {
    let rows: Vec<(Payload, &str)> = vec![
        (Payload::from_value(&[1, 2]).expect("serializes"), "[1,2]"),
        (Payload::from_value("hi").expect("serializes"), r#""hi""#),
        (Payload::from_value(&42u32).expect("serializes"), "42"),
        (
            Payload::from_value(&Ordered { b: 2, a: "" }).expect("serializes"),
            r#"{"b":2,"a":""}"#,
        ),
    ];
    for (payload, json) in rows {
        assert_eq!(args_of(&payload), vec![json]);
    }
}

#[test]
fn payload_get_table() {
    let payload = payload(&[
        Ok(r#""bar""#),
        Ok("42"),
        Ok(r#"{"b":1,"a":[true]}"#),
        Ok("null"),
        Err(&[1, 2]),
    ]);
    assert_eq!(payload.get::<String>(0).ok(), Some("bar".to_owned()));
    assert_eq!(payload.get::<u32>(1).ok(), Some(42));
    assert_eq!(payload.get::<i64>(1).ok(), Some(42));
    assert_eq!(payload.get::<f64>(1).ok(), Some(42.0));
    assert_eq!(
        payload.get::<serde_json::Value>(2).ok(),
        Some(serde_json::json!({"a": [true], "b": 1}))
    );
    assert_eq!(payload.get::<Option<u8>>(3).ok(), Some(None));
    assert_eq!(
        payload.get::<serde_json::Value>(4).ok(),
        Some(serde_json::json!({"_placeholder": true, "num": 0}))
    );
    let wrong_type = [
        payload.get::<u32>(0).err(),
        payload.get::<String>(1).err(),
        payload.get::<u8>(2).err(),
        payload.get::<u8>(3).err(),
    ];
    for (i, error) in wrong_type.into_iter().enumerate() {
        assert!(
            matches!(error, Some(PayloadError::Deserialize(_))),
            "argument {i}: {error:?}"
        );
    }
    for index in [5, 6, usize::MAX] {
        let error = payload.get::<serde_json::Value>(index).err();
        assert!(
            matches!(error, Some(PayloadError::MissingArgument(i)) if i == index),
            "get({index}): {error:?}"
        );
    }
}

#[test]
fn payload_push_binary_and_binary() {
    let mut payload = Payload::new();
    payload
        .push("name")
        .expect("serializes")
        .push_binary(vec![1u8, 2, 3])
        .push_binary(Bytes::from_static(&[]))
        .push_binary(&b"xyz"[..]);
    payload.push(&7).expect("serializes");
    assert_eq!(payload.len(), 5);
    assert_eq!(
        args_of(&payload),
        vec![
            r#""name""#,
            r#"{"_placeholder":true,"num":0}"#,
            r#"{"_placeholder":true,"num":1}"#,
            r#"{"_placeholder":true,"num":2}"#,
            "7",
        ]
    );
    assert_eq!(
        attachments_of(&payload),
        vec![vec![1, 2, 3], vec![], b"xyz".to_vec()]
    );
    let binaries: Vec<Option<&[u8]>> = (0..6)
        .map(|i| payload.binary(i).map(|b| b.as_ref()))
        .collect();
    assert_eq!(
        binaries,
        vec![
            None,
            Some(&[1u8, 2, 3][..]),
            Some(&[][..]),
            Some(&b"xyz"[..]),
            None,
            None
        ]
    );
}

#[test]
fn payload_binary_recognizes_only_exact_placeholders() {
    // `(arguments after the event name, attachments, binary(i) for each argument)`.
    type Row = (&'static str, Vec<&'static [u8]>, Vec<Option<&'static [u8]>>);
    let rows: Vec<Row> = vec![
        (
            r#"{"_placeholder":true,"num":0}"#,
            vec![&[1]],
            vec![Some(&[1])],
        ),
        (
            r#"{"num":0,"_placeholder":true}"#,
            vec![&[1]],
            vec![Some(&[1])],
        ),
        (
            r#"{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}"#,
            vec![&[1], &[2]],
            vec![Some(&[2]), Some(&[1])],
        ),
        // Nested placeholders are valid, but the argument itself is not binary.
        (
            r#"[{"_placeholder":true,"num":0}],{"f":{"_placeholder":true,"num":0}}"#,
            vec![&[1]],
            vec![None, None],
        ),
        (
            r#""x",{"_placeholder":true,"num":0}"#,
            vec![&[3]],
            vec![None, Some(&[3])],
        ),
    ];
    for (args, attachments, expected) in rows {
        let input = format!("5{}-[\"e\",{args}]", attachments.len());
        let packet = assemble(&input, &attachments)
            .unwrap_or_else(|e| panic!("assembling {input:?} failed: {e}"));
        let Packet::Event { payload, .. } = packet else {
            panic!("{input:?} is an event");
        };
        let actual: Vec<Option<&[u8]>> = (0..expected.len())
            .map(|i| payload.binary(i).map(|b| b.as_ref()))
            .collect();
        assert_eq!(actual, expected, "binary(i) of {input:?}");
    }
}

#[test]
fn payload_skip_keeps_attachments() {
    let mut payload = Payload::new();
    payload
        .push("a")
        .expect("serializes")
        .push_binary(vec![1u8])
        .push(&2)
        .expect("serializes")
        .push_binary(vec![3u8]);
    // `(start, remaining args, binary(i) for each remaining argument)`.
    type Row = (usize, Vec<&'static str>, Vec<Option<Vec<u8>>>);
    let rows: Vec<Row> = vec![
        (
            0,
            vec![r#""a""#, P0, "2", P1],
            vec![None, Some(vec![1]), None, Some(vec![3])],
        ),
        (
            1,
            vec![P0, "2", P1],
            vec![Some(vec![1]), None, Some(vec![3])],
        ),
        (2, vec!["2", P1], vec![None, Some(vec![3])]),
        (3, vec![P1], vec![Some(vec![3])]),
        (4, vec![], vec![]),
        (100, vec![], vec![]),
    ];
    for (start, args, binaries) in rows {
        let skipped = payload.skip(start);
        assert_eq!(args_of(&skipped), args, "skip({start}) args");
        assert_eq!(skipped.len(), args.len());
        assert_eq!(skipped.is_empty(), args.is_empty());
        assert_eq!(
            attachments_of(&skipped),
            vec![vec![1], vec![3]],
            "skip({start}) keeps the attachments"
        );
        let actual: Vec<Option<Vec<u8>>> = (0..args.len())
            .map(|i| skipped.binary(i).map(|b| b.to_vec()))
            .collect();
        assert_eq!(actual, binaries, "skip({start}) binaries");
    }
    assert_eq!(payload.len(), 4, "skip leaves the original alone");
}

// The reference parser (socket.io-parser `isPayloadValid`) refuses EVENT packets named after a
// reserved event and closes the connection; so do we.
#[test]
fn socketio_decode_rejects_reserved_event_names() {
    let rows = [
        r#"2["connect"]"#,
        r#"2["connect_error"]"#,
        r#"2["disconnect"]"#,
        r#"2/admin,3["disconnecting"]"#,
        r#"2["newListener"]"#,
        r#"51-["removeListener",{"_placeholder":true,"num":0}]"#,
    ];
    for input in rows {
        assert!(
            Packet::decode(input, 10).is_err(),
            "{input:?} names a reserved event"
        );
    }
}

/// Found by the `channel_names` fuzz target: the router panics on a route with more than 25
/// parameters; the registry refuses it with an error instead.
#[test]
fn registry_refuses_routes_with_too_many_parameters() {
    use tidings_runtime::channels::{
        Authorizer, ChannelConfigError, ChannelRegistration, JoinContext, Registry,
    };

    #[derive(Default)]
    struct Open;
    impl Authorizer for Open {
        async fn pass(&self, _join: &JoinContext<'_>) -> bool {
            true
        }
    }

    let route: &'static str = Box::leak(
        (0..26)
            .map(|i| format!(":p{i}"))
            .collect::<Vec<_>>()
            .join("/")
            .into_boxed_str(),
    );
    let many: &'static ChannelRegistration =
        Box::leak(Box::new(ChannelRegistration::new::<Open>(route, "Many")));
    let err = Registry::from_registrations([many]).expect_err("26 parameters must be refused");
    assert!(
        matches!(
            err,
            ChannelConfigError::InvalidPattern {
                channel: "Many",
                ..
            }
        ),
        "{err:?}"
    );

    let route: &'static str = Box::leak(
        (0..25)
            .map(|i| format!(":p{i}"))
            .collect::<Vec<_>>()
            .join("/")
            .into_boxed_str(),
    );
    let fits: &'static ChannelRegistration =
        Box::leak(Box::new(ChannelRegistration::new::<Open>(route, "Fits")));
    let registry = Registry::from_registrations([fits]).expect("25 parameters fit");
    let name = (0..25).map(|i| i.to_string()).collect::<Vec<_>>().join("/");
    assert!(registry.matches(&name));
}

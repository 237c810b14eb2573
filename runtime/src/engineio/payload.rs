//! Polling payloads: several packets in one HTTP body, separated by the record separator
//! `\x1e`; binary messages as `b` + base64.

use base64::Engine as _;
use bytestring::ByteString;

use super::error::DecodeError;
use super::packet::{Frame, Packet};

/// The separator between packets of a polling payload.
pub const SEPARATOR: char = '\x1e';

/// Decodes a polling request body into its packets.
///
/// # Errors
/// [`DecodeError`] when the body is not UTF-8 or any packet in it is invalid.
///
/// ```
/// use tidings_runtime::engineio::{decode_payload, Packet};
/// let packets = decode_payload(b"4hello\x1e2\x1ebAQI=".as_slice().into()).unwrap();
/// assert_eq!(packets, vec![
///     Packet::Message("hello".into()),
///     Packet::Ping("".into()),
///     Packet::Binary(vec![1u8, 2].into()),
/// ]);
/// ```
pub fn decode_payload(body: bytes::Bytes) -> Result<Vec<Packet>, DecodeError> {
    let text = ByteString::try_from(body).map_err(|_| DecodeError::InvalidUtf8)?;
    text.split(SEPARATOR)
        .map(|part| Packet::decode_text(text.slice_ref(part), true))
        .collect()
}

/// Encodes frames into one polling response body.
///
/// ```
/// use tidings_runtime::engineio::{encode_payload, Frame};
/// let body = encode_payload(&[Frame::message("a"), Frame::Binary(vec![1u8].into())]);
/// assert_eq!(body, "4a\x1ebAQ==");
/// ```
pub fn encode_payload(frames: &[Frame]) -> String {
    let mut out = String::with_capacity(frames.iter().map(|f| f.len() + 1).sum());
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            Frame::Text(text) => out.push_str(text),
            Frame::Shared(shared) => out.push_str(shared.text()),
            Frame::Binary(bytes) => {
                out.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut out);
            }
        }
    }
    out
}

/// Encodes a single packet as it would appear in a polling payload (used by tests and tools).
pub fn encode_packet(packet: &Packet) -> String {
    encode_payload(&[packet.encode()])
}

//! Polling bodies: packets separated by `\x1e`, binary as `b` + base64, arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::engineio::{Packet, decode_payload, encode_payload};

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = decode_payload(bytes::Bytes::copy_from_slice(data)) {
        let frames: Vec<_> = packets.iter().map(Packet::encode).collect();
        let _ = encode_payload(&frames);
    }
});

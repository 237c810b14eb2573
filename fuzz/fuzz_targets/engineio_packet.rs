//! Engine.IO packets as they arrive in WebSocket text frames and polling payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::engineio::Packet;

fuzz_target!(|data: &str| {
    for allow_base64 in [false, true] {
        if let Ok(packet) = Packet::decode_text(data.into(), allow_base64) {
            // Whatever decodes must encode again.
            let _ = packet.encode();
        }
    }
});

//! Phoenix Channels frames from clients: V2 and V1 text, and V2 binary pushes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::phoenix::{Message, Vsn};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode_binary(data) {
        // Whatever decodes must encode again.
        let _ = message.encode_binary();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for vsn in [Vsn::V1, Vsn::V2] {
            if let Ok(message) = Message::decode_text(vsn, text) {
                let _ = message.encode_text(vsn);
            }
        }
    }
});

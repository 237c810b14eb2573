//! Plain WebSocket text frames from clients: any text is a message or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::plainws::ClientMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match ClientMessage::decode(text) {
            Ok(_) => {}
            Err(err) => assert!(!err.reason().is_empty()),
        }
    }
});

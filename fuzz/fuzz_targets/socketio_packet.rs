//! Socket.IO packets, binary placeholders and attachments: the first line of the input is the
//! text packet, every further line one attachment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::socketio::Packet;

fuzz_target!(|data: &str| {
    let mut lines = data.split('\n');
    let Some(text) = lines.next() else { return };
    let Ok(mut partial) = Packet::decode(text, 16) else {
        return;
    };
    for attachment in lines {
        if partial.is_complete() {
            break;
        }
        partial.push(bytes::Bytes::copy_from_slice(attachment.as_bytes()));
    }
    if let Ok(packet) = partial.finish() {
        let _ = packet.encode();
    }
});

//! Phoenix LongPoll uploads: ndjson lines of V1 / V2 text frames and base64 binary frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_runtime::phoenix::{Vsn, decode_upload};

fuzz_target!(|data: &[u8]| {
    for vsn in [Vsn::V1, Vsn::V2] {
        if let Ok(messages) = decode_upload(vsn, data, 100) {
            assert!(messages.len() <= 100);
        }
    }
});

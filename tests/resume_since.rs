//! Resuming a channel from an offset (`{"since": N}` in the join payload) over Phoenix
//! Channels (the official `phoenix` client) and plain WebSocket, against the chat example,
//! which keeps channel history (connection state recovery on). Scenarios in
//! `tests/js/resume_since.mjs`.

mod support;

use std::time::Duration;

use support::{Server, run_node};

fn scenario(name: &str) {
    let server = Server::start("chat", &[]);
    run_node(
        "resume_since.mjs",
        name,
        &server.url(),
        &[],
        Duration::from_secs(40),
    );
}

/// phoenix.js: offsets as the message ref; a rejoin with `since` gets the missed events, then
/// `recovery`.
#[test]
fn phoenix_js_resumes_a_channel_with_since() {
    scenario("phoenix");
}

/// A plain WebSocket: an `offset` field on events; a new socket joining with `since` gets the
/// missed events after the join reply, then `recovery`.
#[test]
fn plain_websocket_resumes_a_channel_with_since() {
    scenario("plain");
}

//! The `ws_chat` example (the Azu seed, ported) with plain WebSockets: `chat` (welcome, the
//! user count on every join and leave, messages, typing to the others, ping, unknown
//! events), `secure` (a token, refused with an error frame and close 1008) and
//! `rooms/:room_id` (others in the room only). The two-node run through Redis is in
//! `redis_fanout.rs`.

mod support;

use std::time::Duration;

use support::{Server, run_node};

fn scenario(name: &str) {
    let server = Server::start("ws_chat", &[]);
    run_node(
        "ws_chat.mjs",
        name,
        &server.url(),
        &[],
        Duration::from_secs(40),
    );
}

#[test]
fn chat_welcome_counts_messages_typing_ping() {
    scenario("chat");
}

#[test]
fn secure_needs_its_token() {
    scenario("secure");
}

#[test]
fn rooms_keep_to_themselves() {
    scenario("rooms");
}

/// The `chat` example's channels are reachable over `/ws` too.
#[test]
fn the_northle_chat_channels_over_plain_websocket() {
    let server = Server::start("chat", &[]);
    run_node(
        "ws_chat.mjs",
        "northle-chat",
        &server.url(),
        &[],
        Duration::from_secs(40),
    );
}

//! The `phoenix_chat` example (the Phoenix and trillium seeds, ported) against the official
//! `phoenix` npm client: both seeds over WebSocket and LongPoll, the connect hook's refusal,
//! the `chat` example's channels reached by phoenix.js, and the page in headless Chromium over the browser's own WebSocket and over LongPoll. The
//! two-node run through Redis is in `redis_fanout.rs`.

mod support;

use std::time::Duration;

use support::{Server, run_node};

fn scenario(name: &str, limit: Duration) {
    let server = Server::start("phoenix_chat", &[]);
    run_node("phoenix_chat.mjs", name, &server.url(), &[], limit);
}

#[test]
fn phoenix_room_channel_seed_over_websocket() {
    scenario("room-lobby-ws", Duration::from_secs(40));
}

#[test]
fn phoenix_room_channel_seed_over_longpoll() {
    scenario("room-lobby-longpoll", Duration::from_secs(40));
}

#[test]
fn trillium_lobby_seed_over_websocket() {
    scenario("trillium-lobby-ws", Duration::from_secs(40));
}

#[test]
fn trillium_lobby_seed_over_longpoll() {
    scenario("trillium-lobby-longpoll", Duration::from_secs(40));
}

#[test]
fn a_socket_without_a_user_is_refused_over_websocket() {
    scenario("refused-ws", Duration::from_secs(40));
}

#[test]
fn a_socket_without_a_user_is_refused_over_longpoll() {
    scenario("refused-longpoll", Duration::from_secs(40));
}

/// The `chat` example's channels are reachable by phoenix.js too (its VIP token as
/// phoenix.js's `authToken`).
#[test]
fn the_northle_chat_channels_over_phoenix() {
    let server = Server::start("chat", &[]);
    run_node(
        "phoenix_chat.mjs",
        "northle-chat",
        &server.url(),
        &[],
        Duration::from_secs(40),
    );
}

fn chromium() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/test installs Debian's `chromium` package"
    );
}

#[test]
fn the_page_in_chromium_over_its_own_websocket() {
    chromium();
    scenario("browser-ws", Duration::from_secs(90));
}

#[test]
fn the_page_in_chromium_over_longpoll() {
    chromium();
    scenario("browser-longpoll", Duration::from_secs(90));
}

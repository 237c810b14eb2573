//! Presence with the official clients: phoenix.js's `Presence` against the `phoenix_chat`
//! example's `room:lobby` (join, leave, status update with the raw diff, two tabs of one
//! user, a fresh `presence_state` after every rejoin), one state read over Phoenix,
//! Socket.IO and plain WebSocket, channels without presence that never send it, and the
//! `ws_chat` example's user count. The scenarios are in `tests/js/presence_client.mjs`.

mod support;

use std::time::Duration;

use support::{Server, run_node};

fn scenario(example: &str, name: &str) {
    let mut server = Server::start(example, &[]);
    run_node(
        "presence_client.mjs",
        name,
        &server.url(),
        &[],
        Duration::from_secs(30),
    );
    assert!(server.is_running(), "{example} exited during {name}");
}

/// phoenix.js's `Presence`: onSync shows the joiner; another user's join fires onJoin; a
/// `set_status` update is one meta with the new status, its raw diff the new meta (with
/// `phx_ref_prev`) in joins and the old in leaves; a leave fires onLeave and drops the key;
/// every `phx_ref` is 16 URL-safe characters and distinct.
#[test]
fn phoenix_js_presence_syncs_joins_updates_and_leaves() {
    scenario("phoenix_chat", "phoenix-presence");
}

/// One user in two tabs is one key with two metas; closing one tab leaves the other's meta
/// (onLeave with the remaining metas), closing the second removes the key.
#[test]
fn two_tabs_of_one_user_are_one_key_with_two_metas() {
    scenario("phoenix_chat", "two-tabs");
}

/// After a dropped transport, a disconnect and reconnect (with changes while away), and a
/// leave and new join, the client gets a fresh `presence_state` and phoenix.js syncs again.
#[test]
fn every_rejoin_gets_a_fresh_presence_state() {
    scenario("phoenix_chat", "rejoin");
}

/// A phoenix.js, a socket.io-client and a plain WebSocket member of `room:lobby` end with the
/// same keys, metas and refs after joins, updates and leaves over all three protocols.
#[test]
fn phoenix_socketio_and_plain_websocket_see_one_state() {
    scenario("phoenix_chat", "three-protocols");
}

/// `rooms:lobby` and `challenges:*` have no presence: none of the three clients gets
/// `presence_state` or `presence_diff` there (and each does in `room:lobby`).
#[test]
fn channels_without_presence_never_send_it() {
    scenario("phoenix_chat", "no-presence");
}

/// `ws_chat`'s `chat`: the `users` count follows three plain WebSocket members joining and
/// one closing (1, 2, 3, then 2), and members get every join and leave as `presence_diff`.
#[test]
fn ws_chat_user_count_follows_presence() {
    scenario("ws_chat", "ws-chat-count");
}

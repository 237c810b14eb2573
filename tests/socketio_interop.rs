//! The echo example against the official `socket.io-client` (npm, pinned by package-lock.json):
//! every transport, auth, refused connects, events and acks both ways, binary, namespaces,
//! rooms and server-side disconnects.

mod support;

use std::time::Duration;

use support::{Server, run_node};

fn echo_scenario(scenario: &str) {
    let server = Server::start("echo", &[]);
    run_node(
        "echo_client.mjs",
        scenario,
        &server.url(),
        &[],
        Duration::from_secs(30),
    );
}

#[test]
fn default_options_poll_then_upgrade() {
    echo_scenario("default");
}

#[test]
fn websocket_only() {
    echo_scenario("websocket");
}

#[test]
fn polling_only() {
    echo_scenario("polling");
}

#[test]
fn auth_payload_reaches_the_server() {
    echo_scenario("auth");
}

#[test]
fn binary_both_ways_over_websocket() {
    echo_scenario("binary-ws");
}

#[test]
fn binary_both_ways_over_polling() {
    echo_scenario("binary-polling");
}

#[test]
fn namespaces_multiplexed_and_unknown_refused() {
    echo_scenario("namespaces");
}

#[test]
fn connect_guard_refuses_with_reason() {
    echo_scenario("refused");
}

#[test]
fn server_side_ack_with_timeout() {
    echo_scenario("server-ack");
}

#[test]
fn server_disconnects_a_socket() {
    echo_scenario("disconnect");
}

#[test]
fn rooms_reach_only_their_members() {
    echo_scenario("rooms");
}

//! Engine.IO at the wire: raw HTTP and WebSocket requests against the echo example (official
//! error answers, handshake, heartbeat, upgrade, max payload, garbage), and the official
//! `engine.io-client` against the bare `engine_echo` example.

mod support;

use std::time::Duration;

use support::{Server, run_node};

const PING_INTERVAL: &str = "300";
const PING_TIMEOUT: &str = "200";
const MAX_PAYLOAD: &str = "1000";

fn raw_scenario(scenario: &str) {
    let mut server = Server::start(
        "echo",
        &[
            "--ping-interval",
            PING_INTERVAL,
            "--ping-timeout",
            PING_TIMEOUT,
            "--max-payload",
            MAX_PAYLOAD,
        ],
    );
    run_node(
        "raw_engine.mjs",
        scenario,
        &server.url(),
        &[
            ("TIDINGS_PING_INTERVAL", PING_INTERVAL),
            ("TIDINGS_PING_TIMEOUT", PING_TIMEOUT),
            ("TIDINGS_MAX_PAYLOAD", MAX_PAYLOAD),
        ],
        Duration::from_secs(30),
    );
    assert!(server.is_running(), "the server must survive {scenario}");
}

#[test]
fn handshake_carries_exactly_the_session_parameters() {
    raw_scenario("handshake");
}

#[test]
fn bad_requests_get_the_official_answers() {
    raw_scenario("errors");
}

#[test]
fn heartbeat_drops_a_silent_client_and_frees_its_session() {
    raw_scenario("heartbeat");
}

#[test]
fn polling_upgrades_to_websocket() {
    raw_scenario("upgrade");
}

#[test]
fn max_payload_is_enforced() {
    raw_scenario("max-payload");
}

#[test]
fn garbage_closes_only_the_sender() {
    raw_scenario("bad-packets");
}

fn engine_echo(scenario: &str) {
    let server = Server::start("engine_echo", &[]);
    run_node(
        "engine_echo.mjs",
        scenario,
        &server.url(),
        &[],
        Duration::from_secs(30),
    );
}

#[test]
fn bare_engine_echo_over_polling() {
    engine_echo("polling");
}

#[test]
fn bare_engine_echo_over_websocket() {
    engine_echo("websocket");
}

#[test]
fn bare_engine_echo_with_upgrade() {
    engine_echo("default");
}

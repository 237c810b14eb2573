//! The socket.io maintainers' protocol test suites (`test-suite/` of socketio/engine.io-protocol
//! and socketio/socket.io-protocol), every case written anew in `tests/js/protocol_suites.mjs`,
//! against the `engine_echo` and `echo` examples configured as those suites expect.

mod support;

use std::time::Duration;

use support::{Server, run_node};

/// The settings both suites expect of the server.
const SUITE_ARGS: [&str; 6] = [
    "--ping-interval",
    "300",
    "--ping-timeout",
    "200",
    "--max-payload",
    "1000000",
];

fn suite(example: &str, extra: &[&str], scenario: &str) {
    let args: Vec<&str> = SUITE_ARGS.iter().chain(extra).copied().collect();
    let mut server = Server::start(example, &args);
    run_node(
        "protocol_suites.mjs",
        scenario,
        &server.url(),
        &[],
        Duration::from_secs(90),
    );
    assert!(
        server.is_running(),
        "{example} must survive the {scenario} suite"
    );
}

#[test]
fn engine_io_protocol_suite_against_a_bare_engine() {
    suite("engine_echo", &[], "engine.io");
}

#[test]
fn engine_io_part_of_the_socket_io_protocol_suite() {
    suite(
        "echo",
        &["--connect-timeout", "1000"],
        "engine.io-under-socket.io",
    );
}

#[test]
fn socket_io_protocol_suite() {
    suite("echo", &["--connect-timeout", "1000"], "socket.io");
}

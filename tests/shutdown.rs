//! Graceful shutdown of the chat example: on SIGTERM every client gets what was already queued
//! and a proper close, and the process exits within a bounded time.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Server, root};

#[test]
fn sigterm_delivers_queued_messages_then_closes_every_connection() {
    let mut server = Server::start("chat", &[]);
    let mut node = Command::new("node")
        .arg(root().join("tests/js/shutdown_client.mjs"))
        .arg("queued")
        .current_dir(root())
        .env("TIDINGS_URL", server.url())
        .env("TIDINGS_MESSAGES", "200")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let stdout = node.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let signal = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line == "SIGNAL");
    assert!(signal.is_some(), "the client script never got ready");

    let stopped_at = Instant::now();
    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server must exit within 10 s of SIGTERM");
    let took = stopped_at.elapsed();
    assert!(status.success(), "server exit status {status}");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");

    let started = Instant::now();
    let node_status = loop {
        if let Some(status) = node.try_wait().expect("wait for node") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "client script hung"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = node.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    assert!(node_status.success(), "client script failed: {err}");
}

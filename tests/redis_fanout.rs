//! Scale-out through Redis, for real: several example servers (`bench_server`, `chat`) run as
//! separate processes with `--redis`, sharing one `redis-server` that each test starts on a
//! free loopback port (no persistence) and kills by PID at the end. Clients are the official
//! `socket.io-client`, driven by `tests/js/redis_client.mjs`; when a scenario needs Redis
//! killed or restarted, or a node killed, it asks this side over stdin / stdout.
//!
//! Checked: every subscriber on every node gets each emit exactly once and other channels get
//! nothing; `except` across nodes; a node subscribes in Redis only to channels it has members
//! in; a Redis outage (local delivery goes on, `/emit` reports the fan-out error, delivery
//! across nodes resumes once Redis is back); a node crash; the chat example on two nodes.
//!
//! `redis-server` must be installed (`scripts/test` installs it). The tests run one at a time:
//! they measure recovery times on a small machine.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Server;
use support::redis::{Redis, Script, assert_knows_redis, stop_running};
use support::serial;
use tidings::{Authorizer, EmitError, JoinContext, Tidings, channel};
use tidings_runtime::adapter::RedisFanout;

/// The script, and the longest one scenario may run.
const SCRIPT: Script = Script {
    file: "redis_client.mjs",
    packages: &["socket.io-client"],
    limit: Duration::from_secs(150),
};

/// Starts `count` nodes of `example` on Redis, with `args` after `--redis <url>`.
fn nodes(example: &str, count: usize, redis: &Redis, args: &[&str]) -> Vec<Option<Server>> {
    assert_knows_redis(example);
    (0..count)
        .map(|_| Some(redis.start_node(example, args)))
        .collect()
}

fn urls(nodes: &[Option<Server>]) -> String {
    nodes
        .iter()
        .flatten()
        .map(Server::url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Asserts that every node still in `nodes` is running, and returns their logs.
fn stop_all(nodes: Vec<Option<Server>>) -> Vec<String> {
    nodes
        .into_iter()
        .enumerate()
        .filter_map(|(i, node)| node.map(|node| (i, node)))
        .map(|(i, node)| {
            let log = stop_running(node, i);
            assert!(!log.contains("panicked"), "node {i} panicked:\n{log}");
            log
        })
        .collect()
}

/// Runs `node tests/js/redis_client.mjs <name>` against `nodes` (comma list) and Redis on
/// `redis_port`, answering its `@@ action` requests with `act`; fails the test with the
/// script's output unless it exits 0 within [`SCRIPT`]'s limit.
fn scenario(
    name: &str,
    nodes: &str,
    redis_port: u16,
    mut act: impl FnMut(&str) -> Result<(), String>,
) {
    let env = [
        ("TIDINGS_NODES", nodes.to_owned()),
        ("REDIS_PORT", redis_port.to_string()),
    ];
    SCRIPT.run(name, &env, |action| act(action).map(|()| String::new()));
}

/// A scenario that needs nothing from this side.
fn no_action(action: &str) -> Result<(), String> {
    Err(format!("unexpected action {action:?}"))
}

#[test]
fn every_subscriber_on_every_node_gets_each_emit_exactly_once() {
    let _serial = serial();
    let redis = Redis::start();
    let nodes = nodes("bench_server", 3, &redis, &["--workers", "1"]);
    scenario("fanout", &urls(&nodes), redis.port, no_action);
    stop_all(nodes);
}

#[test]
fn except_leaves_out_a_socket_on_another_node() {
    let _serial = serial();
    let redis = Redis::start();
    let nodes = nodes("bench_server", 3, &redis, &["--workers", "1"]);
    scenario("except", &urls(&nodes), redis.port, no_action);
    stop_all(nodes);
}

#[test]
fn a_node_subscribes_only_to_channels_it_has_members_in() {
    let _serial = serial();
    let redis = Redis::start();
    let nodes = nodes("bench_server", 2, &redis, &["--workers", "1"]);
    scenario("subscriptions", &urls(&nodes), redis.port, no_action);
    stop_all(nodes);
}

#[test]
fn a_redis_outage_keeps_local_delivery_reports_the_error_and_recovers() {
    let _serial = serial();
    let mut redis = Redis::start();
    let port = redis.port;
    let nodes = nodes("bench_server", 2, &redis, &["--workers", "1"]);
    scenario("outage", &urls(&nodes), port, |action| match action {
        "kill-redis" => {
            redis.kill();
            Ok(())
        }
        "start-redis" => {
            redis.restart();
            Ok(())
        }
        other => no_action(other),
    });
    let logs = stop_all(nodes);
    for (i, log) in logs.iter().enumerate() {
        for expected in [
            "Redis connected",
            "Redis connection lost",
            "Redis reconnected",
            "Redis publisher reconnected",
        ] {
            assert!(
                log.contains(expected),
                "node {i} did not log {expected:?}:\n{log}"
            );
        }
    }
}

#[test]
fn a_node_crash_leaves_the_others_serving() {
    let _serial = serial();
    let redis = Redis::start();
    let mut nodes = nodes("bench_server", 3, &redis, &["--workers", "1"]);
    let urls = urls(&nodes);
    scenario("crash", &urls, redis.port, |action| match action {
        "kill-node 1" => {
            let node = nodes[1].take().ok_or("node 1 is already gone")?;
            node.stop();
            Ok(())
        }
        other => no_action(other),
    });
    stop_all(nodes);
}

#[test]
fn a_chat_message_posted_on_one_node_shows_on_another() {
    let _serial = serial();
    let redis = Redis::start();
    let nodes = nodes("chat", 2, &redis, &[]);
    scenario("chat", &urls(&nodes), redis.port, no_action);
    stop_all(nodes);
}

/// The Phoenix seed on two nodes: a phoenix.js client on each (WebSocket on one, LongPoll on
/// the other) hears the other's joins and messages, and the per-member filter of node 1 drops
/// a join announced from node 2 (`tests/js/phoenix_chat.mjs`, scenario `two-nodes`).
#[test]
fn phoenix_js_clients_on_two_nodes_hear_each_other() {
    let _serial = serial();
    let redis = Redis::start();
    let nodes = nodes("phoenix_chat", 2, &redis, &[]);
    let urls: Vec<String> = nodes.iter().flatten().map(Server::url).collect();
    support::run_node(
        "phoenix_chat.mjs",
        "two-nodes",
        &urls[0],
        &[("TIDINGS_URL2", urls[1].as_str())],
        Duration::from_secs(60),
    );
    stop_all(nodes);
}

/// The Azu seed on two nodes: a plain WebSocket client on each, messages and typing cross
/// nodes (`tests/js/ws_chat.mjs`, scenario `two-nodes`).
#[test]
fn plain_websocket_clients_on_two_nodes_hear_each_other() {
    let _serial = serial();
    let redis = Redis::start();
    let nodes = nodes("ws_chat", 2, &redis, &[]);
    let urls: Vec<String> = nodes.iter().flatten().map(Server::url).collect();
    support::run_node(
        "ws_chat.mjs",
        "two-nodes",
        &urls[0],
        &[("TIDINGS_URL2", urls[1].as_str())],
        Duration::from_secs(60),
    );
    stop_all(nodes);
}

// ---------------------------------------------------------------------------
// In-process: the adapter's life cycle

/// A channel for the in-process tests.
#[channel("rooms/:id")]
#[derive(Default)]
pub struct Room;

impl Authorizer for Room {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

/// How many `tidings-redis` threads this process has.
fn adapter_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|name| name.trim() == "tidings-redis")
                })
                .count()
        })
        .unwrap_or(0)
}

/// How many clients Redis has, not counting the one asking.
fn redis_clients(port: u16) -> usize {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    stream.write_all(b"CLIENT LIST\r\n").expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // `$<len>\r\n<lines>\r\n`: read until the announced length is there.
    loop {
        let n = stream.read(&mut buf).expect("read CLIENT LIST");
        assert!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n")
            && let Ok(len) = head.trim_start_matches('$').parse::<usize>()
            && body.len() >= len
        {
            return body[..len].lines().count() - 1;
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_node_starts_without_redis_reports_until_connected_and_stops_with_its_hub() {
    let _serial = serial();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let threads_before = adapter_threads();
    let fanout = Arc::new(
        RedisFanout::new(&format!("redis://127.0.0.1:{port}"))
            .expect("a valid URL")
            .prefix("lifecycle:"),
    );
    let adapter = Arc::downgrade(&fanout);
    let connected = || adapter.upgrade().is_some_and(|a| a.is_connected());
    let tidings = Tidings::builder()
        .fanout(fanout)
        .build()
        .expect("build without Redis");
    wait_for("one adapter thread per hub", Duration::from_secs(2), || {
        adapter_threads() == threads_before + 1
    });

    // No Redis yet: the emit is made (no local member here) and says it went nowhere else.
    let emitter = tidings.emitter();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!connected(), "connected to a Redis that is not there");
    match emitter.emit("message", "rooms/1", &"before") {
        Err(EmitError::Fanout(err)) => {
            assert!(err.to_string().contains("Redis"), "error: {err}")
        }
        other => panic!("emit without Redis: expected EmitError::Fanout, got {other:?}"),
    }

    // Redis comes up: the adapter finds it by itself.
    let redis = Redis::start_on(port);
    wait_for("the adapter connects", Duration::from_secs(10), connected);
    assert_eq!(
        emitter.emit("message", "rooms/1", &"after").ok(),
        Some(0),
        "emit once Redis is up"
    );
    assert_eq!(
        redis_clients(port),
        2,
        "a publishing and a subscribing connection"
    );

    // The hub goes: the thread, its connections and the adapter go with it.
    drop(emitter);
    drop(tidings);
    wait_for("the adapter thread ends", Duration::from_secs(10), || {
        adapter_threads() == threads_before
    });
    assert!(adapter.upgrade().is_none(), "the adapter outlived its hub");
    wait_for(
        "the adapter's Redis connections close",
        Duration::from_secs(5),
        || redis_clients(port) == 0,
    );
    drop(redis);
}

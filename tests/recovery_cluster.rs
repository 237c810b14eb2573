//! Connection state recovery across the nodes of a cluster, through Redis, for real: two
//! `chat` example nodes (recovery on with its defaults) run as separate processes with
//! `--redis`, sharing one `redis-server` that each test starts on a free loopback port (no
//! persistence) and kills by PID at the end. Clients are the official `socket.io-client` and
//! `phoenix` packages and a plain WebSocket (`ws`), driven by `tests/js/recovery_cluster.mjs`;
//! a socket.io-client reaches the nodes through a TCP proxy of that script, which plays the
//! load balancer: it can send new connections to the other node and reset every connection it
//! carries (a network drop, no clean close). When a scenario needs Redis SIGKILLed, or started
//! again (empty, on the same port), it asks this side over stdin / stdout.
//!
//! Specified (with Redis and recovery both on: offsets cluster-wide, assigned through Redis;
//! history in Redis; a Socket.IO session recoverable on any node):
//! - a socket.io-client dropped on A that comes back on B is recovered (same id, same
//!   channels) with the 100 messages posted meanwhile on A and B, once each, in the order
//!   posted, offsets strictly increasing, then live messages from both nodes;
//! - a client that was A's last member of `chats/1`, back on A, gets the 50 messages posted on
//!   B while it was away;
//! - one event has one offset: members on A and on B see the same offsets;
//! - Redis restarted empty between the drop and the comeback: a fresh session (`recovered`
//!   false, a new id, in no channel), on A and on B, never a silent gap;
//! - phoenix.js and a plain WebSocket joining on B with a `since` taken on A get the missed
//!   messages after the join reply, in order, once each, then `{recovered: true, replayed}`,
//!   then live messages;
//! - a `since` from before a Redis restart (empty) is answered `{recovered: false}`, nothing
//!   replayed, on A and on B.
//!
//! `redis-server` must be installed (`scripts/test` installs it), and the examples built
//! (`cargo test --workspace` or `cargo build --examples`: `cargo test --test
//! recovery_cluster` alone does not rebuild them). The tests run one at a time: they measure
//! times on a small machine. Measurements are printed as `# ...` lines (`cargo test --test
//! recovery_cluster -- --nocapture` shows them). `RECOVERY_CLUSTER_ONE_NODE=1` in the
//! environment makes the script use node A wherever it says B: a check of the harness against
//! single-node recovery.

mod support;

use std::time::{Duration, Instant};

use support::Server;
use support::redis::{Redis, Script, assert_knows_redis, stop_running};
use support::serial;

/// The script, and the longest one scenario may run (the script has its own, shorter, limit).
const SCRIPT: Script = Script {
    file: "recovery_cluster.mjs",
    packages: &["socket.io-client", "phoenix", "ws"],
    limit: Duration::from_secs(120),
};

/// Two `chat` nodes, A and B, on one Redis.
struct Cluster {
    redis: Redis,
    a: Server,
    b: Server,
    /// How many times the script had Redis killed.
    redis_kills: usize,
}

impl Cluster {
    fn start() -> Cluster {
        assert_knows_redis("chat");
        let redis = Redis::start();
        let a = redis.start_node("chat", &[]);
        let b = redis.start_node("chat", &[]);
        Cluster {
            redis,
            a,
            b,
            redis_kills: 0,
        }
    }

    /// One `@@ action` of the script; `Ok(value)` goes back as `ok value`.
    fn act(&mut self, action: &str) -> Result<String, String> {
        match action {
            "kill-redis" => {
                self.redis.kill();
                self.redis_kills += 1;
                Ok(String::new())
            }
            "start-redis" => {
                self.redis.restart();
                Ok(String::new())
            }
            _ => Err(format!("unknown action {action:?}")),
        }
    }

    /// Runs `scenario` of `tests/js/recovery_cluster.mjs` against this cluster, then checks
    /// that both nodes still run, never panicked, and (when Redis was killed) saw the outage.
    fn run(mut self, scenario: &str) {
        let started = Instant::now();
        let env = [
            ("NODE_A", self.a.url()),
            ("NODE_B", self.b.url()),
            ("REDIS_PORT", self.redis.port.to_string()),
        ];
        SCRIPT.run(scenario, &env, |action| self.act(action));
        println!(
            "# recovery_cluster.mjs {scenario}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let redis_killed = self.redis_kills > 0;
        for (name, node) in [("A", self.a), ("B", self.b)] {
            let log = stop_running(node, name);
            assert!(!log.contains("panicked"), "node {name} panicked:\n{log}");
            if redis_killed {
                assert!(
                    log.contains("Redis connection lost") && log.contains("Redis reconnected"),
                    "node {name} did not log the Redis outage and its reconnection:\n{log}"
                );
            }
        }
    }
}

/// Runs one scenario on a fresh cluster (Redis, nodes A and B), one test at a time.
fn scenario(name: &str) {
    let _serial = serial();
    Cluster::start().run(name);
}

/// Scenario 1: a socket.io-client (auth `{name: "ann"}`) behind the proxy is on A, in
/// `chats/1`, with a first message and its offset; the proxy switches to B and drops it; 100
/// messages are posted while it is away, alternating between A's and B's `POST /chat`, each
/// awaited; it comes back, on B: `socket.recovered`, the same `socket.id`, the 100 once each
/// in the order posted with strictly increasing offsets, then a message posted on A and one
/// on B arrive live, once each.
#[test]
fn socketio_session_is_recovered_on_the_other_node() {
    scenario("other-node");
}

/// Scenario 2: the client is A's only member of `chats/1`; it drops (the proxy stays on A);
/// 50 messages are posted on B only; it comes back to A: recovered, the 50 once each, in
/// order, then live messages from both nodes.
#[test]
fn the_last_member_of_a_channel_on_a_node_misses_nothing_posted_elsewhere() {
    scenario("same-node-last-member");
}

/// Scenario 3: a socket.io member on A and one on B in `chats/1` (A has also carried events B
/// never saw, in `private/vip`); 10 messages posted alternating A / B: both members see the
/// same messages in the same order with the same offsets (strings), strictly increasing.
#[test]
fn one_event_has_one_offset_on_every_node() {
    scenario("one-offset");
}

/// Scenario 4: clients dropped from A (one to come back to A, one to B); messages posted;
/// Redis SIGKILLed and started again empty; once both nodes deliver across the cluster again
/// the clients come back: `recovered` false, a new id, no replay, in no channel until they
/// subscribe again (then they get new messages).
#[test]
fn a_redis_restarted_empty_gives_fresh_sessions_never_a_silent_gap() {
    scenario("redis-restart");
}

/// Scenario 5: phoenix.js on A gets a message and its offset (the ref), leaves; 20 messages
/// posted alternating A / B; phoenix.js on B joins with `{since}`: after the join reply the
/// 20 in order, once each, then `recovery` `{recovered: true, replayed: 20}`, then live
/// messages.
#[test]
fn phoenix_js_since_from_one_node_resumes_on_the_other() {
    scenario("phoenix-since-other-node");
}

/// Scenario 6: as scenario 5 with a plain WebSocket (events carry an `offset` field).
#[test]
fn plain_websocket_since_from_one_node_resumes_on_the_other() {
    scenario("plain-since-other-node");
}

/// Scenario 7: phoenix.js with a `since` taken before Redis was restarted empty, joining
/// after it on A and on B: `{recovered: false}`, nothing replayed, then live messages.
#[test]
fn since_from_before_a_redis_restart_is_not_recovered() {
    scenario("since-after-redis-restart");
}

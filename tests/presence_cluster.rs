//! Presence across a cluster, for real: three example nodes (`chat`, `phoenix_chat`) run as
//! separate processes with `--redis`, sharing one `redis-server` that each test starts on a
//! free loopback port (no persistence) and kills by PID at the end. Clients are the official
//! `phoenix` (its `Presence`) and `socket.io-client` packages, driven by
//! `tests/js/presence_cluster.mjs`, which also reads Redis directly (RESP over TCP). The
//! script asks this side to start a node, SIGKILL a node, SIGKILL Redis or start it again
//! (empty, on the same port) over stdin / stdout.
//!
//! Checked, each against the members still connected (by key, with their connections): every
//! member's synced view, each node's own copy (`GET /online`), the channel's hash in Redis
//! (each record on the right node), the nodes' `presence-refs` indexes and `presence-nodes`:
//! - three nodes converge, and a node started late gets the whole state in its first
//!   `presence_state` (phoenix.js and socket.io clients);
//! - a SIGKILLed node's entries leave every view (as `presence_diff` leaves) and Redis within
//!   10 s (the nodes start half a second apart, so the survivors check leases at different
//!   instants);
//! - a Redis outage with membership changes during it, Redis restarted empty: the same true
//!   state everywhere, no ghost; also with a node dying during the outage;
//! - churn: 10,000 joins and 10,000 leaves over the three nodes, in ten rounds, with node C's
//!   channel emptying and reopening again and again and a watcher joining C late in each
//!   round, leave no ghost after any round nor at the end; watchers there from the start are
//!   told of every join and every leave once.
//!
//! `redis-server` must be installed (`scripts/test` installs it), and the examples built
//! (`cargo test --workspace` or `cargo build --examples`). The tests run one at a time: they
//! measure times on a small machine. Measurements are printed as `# ...` lines
//! (`cargo test --test presence_cluster -- --nocapture` shows them).

mod support;

use std::time::{Duration, Instant};

use support::Server;
use support::redis::{Redis, Script, assert_knows_redis, stop_running};
use support::serial;

/// The script, and the longest one scenario may run (the script has its own, shorter, limits).
const SCRIPT: Script = Script {
    file: "presence_cluster.mjs",
    packages: &["socket.io-client", "phoenix"],
    limit: Duration::from_secs(150),
};

/// Three node slots of one example on one Redis, filled and emptied as the script asks.
struct Cluster {
    example: &'static str,
    redis: Redis,
    nodes: Vec<Option<Server>>,
    /// The logs of the nodes killed so far, by slot.
    killed: Vec<(usize, String)>,
}

impl Cluster {
    fn new(example: &'static str) -> Cluster {
        assert_knows_redis(example);
        Cluster {
            example,
            redis: Redis::start(),
            nodes: (0..3).map(|_| None).collect(),
            killed: Vec::new(),
        }
    }

    fn slot(&self, word: Option<&str>) -> Result<usize, String> {
        word.and_then(|w| w.parse::<usize>().ok())
            .filter(|&i| i < self.nodes.len())
            .ok_or_else(|| format!("no node slot {word:?}"))
    }

    /// One `@@ action` of the script; `Ok(value)` goes back as `ok value`.
    fn act(&mut self, action: &str) -> Result<String, String> {
        let mut words = action.split_whitespace();
        match words.next() {
            Some("start-node") => {
                let i = self.slot(words.next())?;
                if self.nodes[i].is_some() {
                    return Err(format!("node {i} is running already"));
                }
                let node = self.redis.start_node(self.example, &[]);
                let base = node.url();
                self.nodes[i] = Some(node);
                Ok(base)
            }
            Some("kill-node") => {
                let i = self.slot(words.next())?;
                let node = self.nodes[i]
                    .take()
                    .ok_or_else(|| format!("node {i} is not running"))?;
                // `Child::kill` is SIGKILL, to this PID: no goodbye to Redis or to clients.
                self.killed.push((i, node.stop()));
                Ok(String::new())
            }
            Some("kill-redis") => {
                self.redis.kill();
                Ok(String::new())
            }
            Some("start-redis") => {
                self.redis.restart();
                Ok(String::new())
            }
            _ => Err(format!("unknown action {action:?}")),
        }
    }

    /// Runs `scenario` of `tests/js/presence_cluster.mjs` against this cluster.
    fn run(&mut self, scenario: &str) {
        let started = Instant::now();
        let env = [("REDIS_PORT", self.redis.port.to_string())];
        SCRIPT.run(scenario, &env, |action| self.act(action));
        println!(
            "# presence_cluster.mjs {scenario}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    /// Asserts that every node still running is running and none panicked, and returns the
    /// logs of all (killed ones too), by slot.
    fn stop(mut self) -> Vec<(usize, String)> {
        let mut logs = std::mem::take(&mut self.killed);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(node) = node.take() {
                logs.push((i, stop_running(node, i)));
            }
        }
        for (i, log) in &logs {
            assert!(!log.contains("panicked"), "node {i} panicked:\n{log}");
        }
        logs
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, log) in &self.killed {
                eprintln!("--- log of node {i} (killed) ---\n{log}");
            }
        }
    }
}

/// Scenario 1 with phoenix.js: A and B get members in `room:lobby`, C starts late and its
/// first member's first `presence_state` is the whole cluster; every phoenix.js `Presence`
/// converges after joins, an update (`set_status`) and leaves on every node; Redis holds
/// exactly those records.
#[test]
fn phoenix_js_presence_converges_on_three_nodes_and_a_late_node_gets_the_whole_state() {
    let _serial = serial();
    let mut cluster = Cluster::new("phoenix_chat");
    cluster.run("converge-phoenix");
    cluster.stop();
}

/// Scenario 1 with the chat example: socket.io members' synced views and `GET /online` on
/// each node converge; C started late answers `/online` from Redis before it has members, and
/// its first member's first `presence_state` is the whole cluster.
#[test]
fn chat_presence_converges_on_three_nodes_and_a_late_node_gets_the_whole_state() {
    let _serial = serial();
    let mut cluster = Cluster::new("chat");
    cluster.run("converge-chat");
    cluster.stop();
}

/// Scenario 2: node C is SIGKILLed; its members leave the views of A and B (members get
/// `presence_diff` leaves) and Redis (records, refs index, `presence-nodes`) within 10 s.
#[test]
fn a_killed_nodes_presence_is_gone_everywhere_within_ten_seconds() {
    let _serial = serial();
    let mut cluster = Cluster::new("chat");
    cluster.run("node-death");
    let logs = cluster.stop();
    assert!(
        logs.iter()
            .filter(|(i, _)| *i != 2)
            .any(|(_, log)| log.contains("a node's presence lease expired")),
        "no survivor logged the dead node's lease expiring"
    );
}

/// Scenario 3: Redis is SIGKILLed, membership changes on A, B and C meanwhile, Redis restarts
/// empty: every node and Redis end with exactly the members connected.
#[test]
fn after_a_redis_outage_every_node_and_redis_hold_exactly_who_is_connected() {
    let _serial = serial();
    let mut cluster = Cluster::new("chat");
    cluster.run("outage");
    let logs = cluster.stop();
    for (i, log) in &logs {
        assert!(
            log.contains("Redis connection lost") && log.contains("Redis reconnected"),
            "node {i} did not log the outage and the reconnection:\n{log}"
        );
    }
}

/// Scenario 3, variant: node C dies while Redis is down; once Redis is back (empty), C's
/// entries are gone from every view and from Redis.
#[test]
fn a_node_that_dies_during_a_redis_outage_is_gone_everywhere_after_it() {
    let _serial = serial();
    let mut cluster = Cluster::new("chat");
    cluster.run("outage-node-death");
    cluster.stop();
}

/// Scenario 4: 10,000 joins and 10,000 leaves of socket.io members over the three nodes, in
/// ten rounds; C has few members, so its channel closes and reopens (a fresh read of Redis)
/// all the time, and a watcher joins it three quarters into each round. After each round and
/// at the end every view, every node's copy and Redis hold exactly the members who stayed.
#[test]
fn churn_of_ten_thousand_joins_and_leaves_leaves_no_ghost() {
    let _serial = serial();
    let mut cluster = Cluster::new("chat");
    cluster.run("churn");
    cluster.stop();
}

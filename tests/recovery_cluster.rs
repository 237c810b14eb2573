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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use support::Server;

/// The longest one scenario may run (the script has its own, shorter, limit).
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

/// One test at a time (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A `redis-server` of our own, on 127.0.0.1; killed (by PID) when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Starts one on a free port.
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Redis::start_on(port)
    }

    /// Starts one on `port` (again, after [`Redis::kill`]: empty, without persistence) and
    /// waits until it answers PING.
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--port"])
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): run scripts/test, which installs it")
            });
        let mut redis = Redis {
            child: Some(child),
            port,
        };
        let started = Instant::now();
        while !redis.answers() {
            if let Some(child) = redis.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {port} exited at start ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, by PID: the server vanishes as in a crash, with everything it held.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails clearly when the built `chat` example predates `--redis` (`cargo test --test X` does
/// not rebuild examples; `cargo test --workspace` and `cargo build --examples` do): it must
/// refuse an invalid Redis URL instead of ignoring the flag and serving.
fn assert_chat_knows_redis() {
    let exe = std::env::current_exe().expect("current exe");
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>")
        .join("examples")
        .join("chat");
    let mut child = Command::new(&binary)
        .args(["--port", "0", "--redis", "not a redis url"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): build the examples (cargo build --examples)",
                binary.display()
            )
        });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    assert!(
        status.is_some_and(|s| !s.success())
            && (err.contains("invalid Redis URL") || err.contains("InvalidUrl")),
        "{} does not know --redis (stale build?): run `cargo build --examples` or \
         `cargo test --workspace` first; it said: {err}",
        binary.display()
    );
}

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
        assert_chat_knows_redis();
        let redis = Redis::start();
        let url = redis.url();
        let a = Server::start("chat", &["--redis", url.as_str()]);
        let b = Server::start("chat", &["--redis", url.as_str()]);
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
                let port = self.redis.port;
                self.redis.kill();
                self.redis = Redis::start_on(port);
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
        run_script(scenario, &env, |action| self.act(action));
        println!(
            "# recovery_cluster.mjs {scenario}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let redis_killed = self.redis_kills > 0;
        for (name, mut node) in [("A", self.a), ("B", self.b)] {
            let running = node.is_running();
            let log = node.stop();
            assert!(running, "node {name} is not running any more:\n{log}");
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

/// Runs `node tests/js/recovery_cluster.mjs <name>` with `env`, answering its `@@ action`
/// requests with `act`; fails the test with the script's output unless it exits 0 within
/// [`SCENARIO_LIMIT`].
fn run_script(
    name: &str,
    env: &[(&str, String)],
    mut act: impl FnMut(&str) -> Result<String, String>,
) {
    let root = support::root();
    assert!(
        root.join("node_modules/socket.io-client").exists()
            && root.join("node_modules/phoenix").exists()
            && root.join("node_modules/ws").exists(),
        "node_modules missing: run scripts/test (it runs `npm ci`)"
    );
    let mut child = Command::new("node")
        .arg(root.join("tests/js/recovery_cluster.mjs"))
        .arg(name)
        .current_dir(&root)
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let mut stdin = child.stdin.take().expect("stdin piped");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + SCENARIO_LIMIT;
    let mut out = String::new();
    let finished = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                println!("{line}");
                out.push_str(&line);
                out.push('\n');
                if let Some(action) = line.strip_prefix("@@ ") {
                    let reply = match act(action.trim()) {
                        Ok(value) if value.is_empty() => "ok".to_owned(),
                        Ok(value) => format!("ok {value}"),
                        Err(err) => err.replace('\n', " "),
                    };
                    let _ = writeln!(stdin, "{reply}");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break true,
            Err(mpsc::RecvTimeoutError::Timeout) => break false,
        }
    };
    let status = if finished {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for node") {
                break Some(status);
            }
            if started.elapsed() > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        None
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let err = errors.join().unwrap_or_default();
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("recovery_cluster.mjs {name} failed ({status}):\n{out}\n{err}"),
        None => panic!(
            "recovery_cluster.mjs {name} did not finish within {SCENARIO_LIMIT:?}:\n{out}\n{err}"
        ),
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

//! The runner behind `scripts/bench`: starts each peer fresh per scenario on core 0, runs the
//! load generator on core 1, kills the peer by its PID, repeats for several rounds in
//! alternating peer order, and prints a markdown table (median and min-max over rounds, and the
//! ratio tidings/peer) followed by the targets.
//!
//! Scenarios, for 1k and 10k subscribers of one channel: `fanout-*` (emits from 4 HTTP
//! connections at once), `seq-w8-*` and `seq-w0-*` (from one connection, one at a time, with
//! at most 8 emits not yet received by everyone, and with no such window), `paced-*` (one
//! connection at a fixed rate well under capacity: latency, measured after a pause and 20
//! warm-up emits, whose latency is its own row, with the load generator kept awake while
//! deliveries are due); then `channels-1k` and
//! `connect-10k`. Every delivery scenario also reports the server's TCP segments per delivery
//! and how busy the load generator's core was; a rate measured with that core above 85 % is
//! marked † (a lower bound).
//!
//! Flags: `--root DIR` (the repository; default: two levels above this binary's directory),
//! `--quick` (smaller N, one round), `--rounds N`, `--peers a,b`, `--scenarios a,b`,
//! `--base-port P`, `--no-pin` (do not use taskset), `--out FILE` (also write the table there).
//! Raw results go to `target/bench/<unix time>/results.jsonl` beside the peers' logs.
//!
//! The peer `tidings-ref` (only when named in `--peers`) is `target/release/bench_server-ref`:
//! tidings' bench server built from another commit (`scripts/bench --ref COMMIT` builds it), to
//! compare a change with what it changes in the same run.
//!
//! The Phoenix Channels protocol has two peers: `tidings-phoenix` (the same `bench_server`,
//! its subscribers phoenix clients: the load generator runs with `--protocol phoenix`) and
//! `trillium` (trillium-channels 0.4, `bench/trillium`, driven with `--protocol phoenix-v1`
//! since trillium-websockets 0.7.0 drops the `vsn` query parameter and answers V1 objects).
//!
//! Plain WebSocket has two peers too: `tidings-plain` (the same `bench_server`, subscribers at
//! `/ws`) and `baseline-plain` (the baseline, which speaks that protocol at `/ws`), both driven
//! with `--protocol plain`.
//!
//! The peer `tidings-actix` is the same `bench_server` on actix-web's `HttpServer`
//! (`--server actix`), where `tidings` runs on `tidings::HttpServer`, whose WebSockets own
//! their connection.
//!
//! The peer `tidings-recovery` is tidings with connection state recovery on (every broadcast
//! kept in its channel's history; through Redis, in Redis Streams): the runner reports its
//! deliveries/s against `tidings` (issue 18).
//!
//! The scenarios `redis-fanout-1k` and `redis-fanout-10k` (tidings and tidings-recovery only,
//! run only when named in `--scenarios`) are the fan-out of the same size over two tidings nodes joined through Redis:
//! a `redis-server` on a free loopback port (`--save "" --appendonly no`), node A and node B
//! (`bench_server --workers 1 --redis ...`), all three pinned to core 0 (the same one core the
//! single node gets), subscribers alternating between A and B, every emit posted to A. The
//! table adds latency and loss for A's ("local") and B's ("remote") subscribers, and a
//! two-node/one-node comparison with `fanout-1k` / `fanout-10k` when those ran too.
//!
//! The scenario `presence-10k` (tidings only, run only when named; issue 17) is presence at
//! scale: a `redis-server` as above and three nodes A, B, C (`bench_server --workers 1 --redis
//! ...`, all on core 0), 10,000 members of `presence/0` (tracked under their member ids) spread
//! over the three, measured by the load generator's `presence` scenario
//! (`bench/src/bin/loadgen/presence.rs`): the ramp-up, Redis's commands at rest and under churn,
//! how long a join and a leave take to reach every node, how long the others take to drop a
//! SIGKILLed node's members (the load generator sends the SIGKILL to C's PID), and memory. Naming
//! it also runs, before it in each round, `presence-control-10k` (the same members in `chats/0`,
//! no presence: the memory presence adds) and `presence-records-10k` (the same members in
//! `presence/0` on A and B, C with one member: what holding every record costs C). Its own table
//! follows the main one.
//!
//! The scenarios `history-100k` and `redis-history-100k` (tidings and tidings-recovery only,
//! run only when named in `--scenarios`; issue 18) measure what connection state recovery's
//! channel history costs per event it keeps: the load generator's `history` scenario
//! (`bench/src/bin/loadgen/history.rs`) posts 1000 emits to each of 100 channels that nobody
//! subscribes to (100,000 events: the history of tidings-recovery, 1000 per channel, is then
//! full), then as many again (each replacing an old one), and reads the server's settled RSS
//! before and after each. `history-100k` is one node, the history in its memory;
//! `redis-history-100k` is one node (`bench_server --workers 1 --redis ...`) with a
//! `redis-server` as above, both on core 0, the history in Redis Streams: the load generator
//! also reads Redis's `used_memory`, the streams' lengths and `INFO commandstats` (Redis's
//! commands per emit, those the emit script runs included). tidings, which keeps no history,
//! is the control: the history's memory is tidings-recovery's less tidings'. Their own table
//! follows the main one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidings_bench::{Flags, HistoryRun, PresenceRun, RunResult, fail, raise_fd_limit};

const PEERS: [&str; 10] = [
    "tidings",
    "tidings-actix",
    "tidings-recovery",
    "node",
    "socketioxide",
    "baseline",
    "tidings-phoenix",
    "trillium",
    "tidings-plain",
    "baseline-plain",
];
/// How long a peer may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one load-generator run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one run of a presence scenario may take (its ramp-up is quadratic).
const PRESENCE_RUN_TIMEOUT: Duration = Duration::from_secs(1800);
/// The events per channel the peer `tidings-recovery` keeps (`bench_server --recovery`).
const RECOVERY_EVENTS: &str = "1000";

/// The paced scenarios' pause between the last subscription and the first emit: longer than
/// the retransmission timeout (200 ms at least), so that every connection of every server
/// starts the emits in the same TCP state (the load generator's `--settle-ms`).
const PACED_SETTLE_MS: &str = "1000";

/// Emits the paced scenarios send before the measured ones, at the same pace, their latency
/// reported apart: after the pause the load generator's kernel acknowledges the first 16
/// segments of each connection at once, and on loopback those ACKs take the server's core.
const PACED_WARMUP: &str = "20";

/// The paced scenarios keep the load generator from sleeping while deliveries are due
/// (`--awake`): on loopback a server pays for every wake-up of a sleeping reader, a cost no
/// remote client puts on it, and how many wake-ups an emit takes grows as a server is slower
/// (between an emit's deliveries an idle load generator falls asleep again).
const PACED_AWAKE: &str = "--awake";

struct Scenario {
    name: &'static str,
    args: Vec<String>,
    /// Tidings nodes through Redis (only when asked for by name): 1 for `redis-history-*`, 2
    /// for the other `redis-*`, 3 for `presence-*`; 0 for one node without Redis.
    redis_nodes: usize,
}

impl Scenario {
    fn redis(&self) -> bool {
        self.redis_nodes > 0
    }

    /// The history scenarios (`history-*`, `redis-history-*`): tidings and tidings-recovery
    /// only.
    fn history(&self) -> bool {
        self.name.starts_with("history-") || self.name.starts_with("redis-history-")
    }

    /// Run only when named in `--scenarios`.
    fn on_request(&self) -> bool {
        self.redis() || self.history()
    }

    fn timeout(&self) -> Duration {
        if self.redis_nodes == 3 {
            PRESENCE_RUN_TIMEOUT
        } else {
            RUN_TIMEOUT
        }
    }
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let scenario = |name: &'static str, args: &[&str]| Scenario {
        name,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        redis_nodes: if name.starts_with("redis-history-") {
            1
        } else if name.starts_with("redis-") {
            2
        } else if name.starts_with("presence-") {
            3
        } else {
            0
        },
    };
    // (subscribers, emits) of the 1k and 10k fan-outs; the paced ones: (measured emits, per
    // second), after PACED_WARMUP more.
    // A million deliveries either way: at 3-4M per second a 1k fan-out of 200 emits lasted
    // 60 ms, six ticks of the CPU counters, and its first emits (cold caches) weighed in.
    let (small, large, paced_small, paced_large) = if quick {
        (("1000", "50"), ("2000", "20"), ("40", "40"), ("10", "10"))
    } else {
        (
            ("1000", "1000"),
            ("10000", "100"),
            ("150", "50"),
            ("30", "5"),
        )
    };
    let mut list = Vec::new();
    for ((conns, emits), (paced_emits, rate), [fanout, redis, seq8, seq0, paced]) in [
        (
            small,
            paced_small,
            [
                "fanout-1k",
                "redis-fanout-1k",
                "seq-w8-1k",
                "seq-w0-1k",
                "paced-1k",
            ],
        ),
        (
            large,
            paced_large,
            [
                "fanout-10k",
                "redis-fanout-10k",
                "seq-w8-10k",
                "seq-w0-10k",
                "paced-10k",
            ],
        ),
    ] {
        let fan = ["--scenario", "fanout", "--conns", conns, "--emits", emits];
        list.push(scenario(fanout, &fan));
        list.push(scenario(redis, &fan));
        for (name, window) in [(seq8, "8"), (seq0, "0")] {
            list.push(scenario(
                name,
                &[
                    "--scenario",
                    "sequential",
                    "--conns",
                    conns,
                    "--emits",
                    emits,
                    "--window",
                    window,
                ],
            ));
        }
        list.push(scenario(
            paced,
            &[
                "--scenario",
                "paced",
                "--conns",
                conns,
                "--emits",
                paced_emits,
                "--rate",
                rate,
                "--settle-ms",
                PACED_SETTLE_MS,
                "--warmup",
                PACED_WARMUP,
                PACED_AWAKE,
            ],
        ));
    }
    let (channels, connects) = if quick {
        ("500", "2000")
    } else {
        ("1000", "10000")
    };
    list.push(scenario(
        "channels-1k",
        &[
            "--scenario",
            "channels",
            "--conns",
            channels,
            "--rounds",
            if quick { "2" } else { "5" },
        ],
    ));
    list.push(scenario(
        "connect-10k",
        &["--scenario", "connect", "--conns", connects],
    ));
    // Presence (issue 17): the control first (the same members, no presence), then every
    // record on a node with one member (the memory of the records alone), then presence.
    let (members, joins, churn, churn_secs, rest) = if quick {
        ("2000", "5", "200", "10", "5")
    } else {
        ("10000", "10", "1000", "200", "10")
    };
    list.push(scenario(
        "presence-control-10k",
        &[
            "--scenario",
            "presence",
            "--control",
            "--channel",
            "chats/0",
            "--conns",
            members,
            "--rest-secs",
            rest,
        ],
    ));
    list.push(scenario(
        "presence-records-10k",
        &[
            "--scenario",
            "presence",
            "--memory-only",
            "--weights",
            "1,1,0",
            "--channel",
            "presence/0",
            "--conns",
            members,
            "--rest-secs",
            rest,
        ],
    ));
    // The history's memory (issue 18): 1000 events to each of 100 channels, as many as
    // tidings-recovery keeps per channel, then as many again.
    let history_channels = if quick { "20" } else { "100" };
    for name in ["history-100k", "redis-history-100k"] {
        list.push(scenario(
            name,
            &[
                "--scenario",
                "history",
                "--channels",
                history_channels,
                "--events",
                "1000",
                "--kept",
                RECOVERY_EVENTS,
            ],
        ));
    }
    list.push(scenario(
        "presence-10k",
        &[
            "--scenario",
            "presence",
            "--channel",
            "presence/0",
            "--conns",
            members,
            "--joins",
            joins,
            "--rest-secs",
            rest,
            "--churn",
            churn,
            "--churn-secs",
            churn_secs,
        ],
    ));
    list
}

struct Paths {
    root: PathBuf,
    release: PathBuf,
    logs: PathBuf,
}

fn peer_command(paths: &Paths, peer: &str, port: u16) -> Vec<String> {
    let bin = |name: &str| paths.release.join(name).display().to_string();
    let port = port.to_string();
    match peer {
        "tidings" | "tidings-ref" | "tidings-phoenix" | "tidings-plain" => vec![
            bin(if peer == "tidings-ref" {
                "bench_server-ref"
            } else {
                "examples/bench_server"
            }),
            "--port".into(),
            port,
            "--workers".into(),
            "1".into(),
        ],
        // The same server on actix-web's `HttpServer` instead of `tidings::HttpServer`.
        "tidings-actix" => vec![
            bin("examples/bench_server"),
            "--port".into(),
            port,
            "--workers".into(),
            "1".into(),
            "--server".into(),
            "actix".into(),
        ],
        // Connection state recovery on: every broadcast is recorded in its channel's history
        // (1000 events kept per channel, the default).
        "tidings-recovery" => vec![
            bin("examples/bench_server"),
            "--port".into(),
            port,
            "--workers".into(),
            "1".into(),
            "--recovery".into(),
            RECOVERY_EVENTS.into(),
        ],
        "node" => vec![
            "node".into(),
            paths
                .root
                .join("bench/node/server.mjs")
                .display()
                .to_string(),
            "--port".into(),
            port,
        ],
        // TCP_NODELAY, as tidings' bench_server, Node's http server and the baseline have it.
        "socketioxide" => vec![
            bin("peer-socketioxide"),
            "--port".into(),
            port,
            "--nodelay".into(),
        ],
        "baseline" | "baseline-plain" => vec![bin("peer-baseline"), "--port".into(), port],
        // Built by scripts/bench in a target directory of its own (its crates are pinned
        // apart from the workspace's).
        "trillium" => vec![
            paths
                .release
                .join("../bench-trillium/release/peer-trillium")
                .display()
                .to_string(),
            "--port".into(),
            port,
        ],
        other => fail(&format!("unknown peer {other:?}")),
    }
}

/// The wire the load generator speaks to `peer`.
fn protocol(peer: &str) -> &'static str {
    match peer {
        "tidings-phoenix" => "phoenix",
        "trillium" => "phoenix-v1",
        "tidings-plain" | "baseline-plain" => "plain",
        _ => "socketio",
    }
}

/// `taskset -c <core> <command>`: taskset execs the command, so the child's PID is the
/// command's.
fn pinned(core: Option<u32>, command: &[String]) -> Command {
    let mut cmd = match core {
        Some(core) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(core.to_string()).args(command);
            cmd
        }
        None => {
            let mut cmd = Command::new(&command[0]);
            cmd.args(&command[1..]);
            cmd
        }
    };
    cmd.stdin(Stdio::null());
    cmd
}

fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited before listening: {status}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("did not listen in time".to_owned())
}

/// Waits for `child` up to `timeout`; kills it (by its PID) when it takes longer.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out; killed".to_owned());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The first port after `port` that can be bound on 127.0.0.1, wrapping within 20000..32000.
fn next_free_port(mut port: u16) -> u16 {
    for _ in 0..12_000 {
        port = if (20_000..31_999).contains(&port) {
            port + 1
        } else {
            20_000
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    fail("no free port in 20000..32000")
}

/// The 1-minute load average: other work on the machine shows here.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `command` pinned to `core`, its stdout and stderr into `logs/<tag>-<what>.log`.
fn spawn_logged(
    paths: &Paths,
    core: Option<u32>,
    command: &[String],
    tag: &str,
    what: &str,
) -> Result<Child, String> {
    let path = paths.logs.join(format!("{tag}-{what}.log"));
    let log = File::create(&path).map_err(|e| e.to_string())?;
    pinned(core, command)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{what}: cannot start {}: {e}", command[0]))
}

/// One peer, one scenario: fresh server(s), one load-generator run, server(s) killed by PID.
/// `ports`: the server's; for a Redis scenario each node's (A, B[, C]), then Redis's.
fn run_once(
    paths: &Paths,
    pin: bool,
    peer: &str,
    scenario: &Scenario,
    ports: &[u16],
    tag: &str,
) -> Result<RunResult, String> {
    let core = pin.then_some(0);
    // Everything started, stopped (by PID) in reverse order whatever happens.
    let mut children: Vec<Child> = Vec::new();
    let result = (|| {
        let port = ports[0];
        let mut loadgen_args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--protocol".to_owned(),
            protocol(peer).to_owned(),
        ];
        if scenario.redis() {
            if peer != "tidings" && peer != "tidings-recovery" {
                return Err(format!("{peer}: no Redis setup (tidings only)"));
            }
            let nodes = scenario.redis_nodes;
            let redis_port = ports[nodes];
            let redis = [
                "redis-server",
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &paths.logs.display().to_string(),
            ]
            .map(str::to_owned);
            children.push(spawn_logged(paths, core, &redis, tag, "redis")?);
            let redis_pid = children[0].id();
            wait_listening(&mut children[0], redis_port).map_err(|e| format!("redis: {e}"))?;
            let url = format!("redis://127.0.0.1:{redis_port}");
            for (node, port) in ["node-a", "node-b", "node-c"]
                .into_iter()
                .zip(&ports[..nodes])
            {
                let mut command = peer_command(paths, peer, *port);
                command.extend(["--redis".to_owned(), url.clone()]);
                let mut child = spawn_logged(paths, core, &command, tag, node)?;
                let waited = wait_listening(&mut child, *port);
                children.push(child);
                waited.map_err(|e| format!("{peer} {node}: {e}"))?;
            }
            loadgen_args.extend([
                "--pid".to_owned(),
                children[1].id().to_string(),
                "--redis-pid".to_owned(),
                redis_pid.to_string(),
            ]);
            for node in 1..nodes {
                loadgen_args.extend([
                    format!("--port{}", node + 1),
                    ports[node].to_string(),
                    format!("--pid{}", node + 1),
                    children[node + 1].id().to_string(),
                ]);
            }
            if nodes != 2 {
                // The presence and history scenarios read Redis's counters (and the presence
                // scenario SIGKILLs node C itself).
                loadgen_args.extend(["--redis-port".to_owned(), redis_port.to_string()]);
            }
        } else {
            let command = peer_command(paths, peer, port);
            let mut child = spawn_logged(paths, core, &command, tag, "server")?;
            let waited = wait_listening(&mut child, port);
            loadgen_args.extend(["--pid".to_owned(), child.id().to_string()]);
            children.push(child);
            waited.map_err(|e| format!("{peer}: {e}"))?;
        }
        std::thread::sleep(Duration::from_millis(300));
        let out_path = paths.logs.join(format!("{tag}-loadgen.json"));
        let err_path = paths.logs.join(format!("{tag}-loadgen.log"));
        let mut command = vec![paths.release.join("loadgen").display().to_string()];
        command.extend(loadgen_args);
        command.extend(scenario.args.iter().cloned());
        let mut loadgen = pinned(pin.then_some(1), &command)
            .stdout(File::create(&out_path).map_err(|e| e.to_string())?)
            .stderr(File::create(&err_path).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("loadgen: cannot start: {e}"))?;
        let status = wait_bounded(&mut loadgen, scenario.timeout())?;
        let out = std::fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
        if !status.success() {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!("loadgen failed ({status}): {}", err.trim()));
        }
        serde_json::from_str::<RunResult>(out.trim()).map_err(|e| format!("loadgen output: {e}"))
    })();
    for child in children.iter_mut().rev() {
        stop(child);
    }
    result
}

#[derive(Clone, Copy)]
enum Unit {
    Rate,
    Micros,
    Count,
    KiB,
    /// A plain number with two decimals.
    Ratio,
    /// A fraction shown in percent.
    Percent,
}

struct Metric {
    scenario: &'static str,
    label: &'static str,
    unit: Unit,
    higher_is_better: bool,
    get: fn(&RunResult) -> f64,
}

fn metrics() -> Vec<Metric> {
    let mut list = Vec::new();
    for scenario in [
        "fanout-1k",
        "seq-w8-1k",
        "seq-w0-1k",
        "paced-1k",
        "fanout-10k",
        "seq-w8-10k",
        "seq-w0-10k",
        "paced-10k",
        "channels-1k",
        "redis-fanout-1k",
        "redis-fanout-10k",
    ] {
        list.extend([
            Metric {
                scenario,
                label: "deliveries/s",
                unit: Unit::Rate,
                higher_is_better: true,
                get: |r| r.deliveries_per_sec,
            },
            Metric {
                scenario,
                label: "deliveries per server CPU-s",
                unit: Unit::Rate,
                higher_is_better: true,
                get: |r| r.deliveries_per_cpu_sec,
            },
            Metric {
                scenario,
                label: "latency p50",
                unit: Unit::Micros,
                higher_is_better: false,
                get: |r| r.p50_us,
            },
            Metric {
                scenario,
                label: "latency p99",
                unit: Unit::Micros,
                higher_is_better: false,
                get: |r| r.p99_us,
            },
            Metric {
                scenario,
                label: "latency max",
                unit: Unit::Micros,
                higher_is_better: false,
                get: |r| r.max_us,
            },
            Metric {
                scenario,
                label: "loss",
                unit: Unit::Count,
                higher_is_better: false,
                get: |r| r.loss as f64,
            },
            Metric {
                scenario,
                label: "server TCP segments per delivery",
                unit: Unit::Ratio,
                higher_is_better: false,
                get: |r| r.segments_per_delivery,
            },
            Metric {
                scenario,
                label: "load generator core busy",
                unit: Unit::Percent,
                higher_is_better: false,
                get: |r| r.loadgen_busy,
            },
        ]);
        if scenario.starts_with("redis-") {
            list.extend(node_metrics(scenario));
        }
        if scenario.starts_with("paced-") {
            list.push(Metric {
                scenario,
                label: "warm-up latency p99 (not in the rows above)",
                unit: Unit::Micros,
                higher_is_better: false,
                get: |r| r.warmup_p99_us,
            });
        }
    }
    list.extend([
        Metric {
            scenario: "connect-10k",
            label: "load generator core busy",
            unit: Unit::Percent,
            higher_is_better: false,
            get: |r| r.loadgen_busy,
        },
        Metric {
            scenario: "connect-10k",
            label: "connect+subscribe/s",
            unit: Unit::Rate,
            higher_is_better: true,
            get: |r| r.connect_per_sec,
        },
        Metric {
            scenario: "connect-10k",
            label: "connects per server CPU-s",
            unit: Unit::Rate,
            higher_is_better: true,
            get: |r| r.connects_per_cpu_sec,
        },
        Metric {
            scenario: "connect-10k",
            label: "idle RSS KiB/conn",
            unit: Unit::KiB,
            higher_is_better: false,
            get: |r| r.kib_per_conn,
        },
    ]);
    list
}

/// Per node of a two-node run: local (node A, where the emits go) and remote (node B).
fn node_metrics(scenario: &'static str) -> [Metric; 10] {
    let metric = |label, unit, higher_is_better, get| Metric {
        scenario,
        label,
        unit,
        higher_is_better,
        get,
    };
    [
        metric("local deliveries/s", Unit::Rate, true, |r| {
            r.local_deliveries_per_sec
        }),
        metric("remote deliveries/s", Unit::Rate, true, |r| {
            r.remote_deliveries_per_sec
        }),
        metric("local latency p50", Unit::Micros, false, |r| r.local_p50_us),
        metric("remote latency p50", Unit::Micros, false, |r| {
            r.remote_p50_us
        }),
        metric("local latency p99", Unit::Micros, false, |r| r.local_p99_us),
        metric("remote latency p99", Unit::Micros, false, |r| {
            r.remote_p99_us
        }),
        metric("local latency max", Unit::Micros, false, |r| r.local_max_us),
        metric("remote latency max", Unit::Micros, false, |r| {
            r.remote_max_us
        }),
        metric("local loss", Unit::Count, false, |r| r.local_loss as f64),
        metric("remote loss", Unit::Count, false, |r| r.remote_loss as f64),
    ]
}

/// One line on a presence run, for the runner's log.
fn presence_summary(p: &PresenceRun) -> String {
    let secs = |t: Option<f64>| t.map_or_else(|| "never".to_owned(), |t| format!("{t:.2}s"));
    if p.control {
        return format!(
            "control ({}): ramp-up {:.1}s; at rest {:.1} Redis commands/s; RSS after {:?} KiB (before {:?})",
            p.channel, p.ramp_ack_secs, p.rest_commands_per_sec, p.rss_after_kib, p.rss_before_kib
        );
    }
    format!(
        "presence: ramp-up acks {:.1}s, converged {}, quiet {:.1}s; at rest {:.1} Redis commands/s; \
         join p50 A {:.1}ms B/C {:.1}ms; churn {:.1} commands/s, {:.2}/change, converged {}; \
         death: counts {} / {}, Redis {}; RSS after {:?} KiB (before {:?})",
        p.ramp_ack_secs,
        secs(p.ramp_converged_secs),
        p.ramp_quiet_secs,
        p.rest_commands_per_sec,
        median_of(&p.join_local_ms).unwrap_or(f64::NAN),
        median_of(&p.join_remote_ms).unwrap_or(f64::NAN),
        p.churn_commands_per_sec,
        p.churn_commands_per_change,
        secs(p.churn_secs),
        secs(p.death_count_secs[0]),
        secs(p.death_count_secs[1]),
        secs(p.death_redis_secs),
        p.rss_after_kib,
        p.rss_before_kib
    )
}

fn median_of(samples: &[f64]) -> Option<f64> {
    let mut samples = samples.to_vec();
    (!samples.is_empty()).then(|| median(&mut samples))
}

fn max_of(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().reduce(f64::max)
}

/// `values` (at least one) as `median (min–max)`, or the one value alone.
fn spread(mut values: Vec<f64>, format: fn(f64) -> String) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mid = median(&mut values);
    if values.len() > 1 {
        format!("{} ({}–{})", format(mid), format(min), format(max))
    } else {
        format(mid)
    }
}

/// One cell of the presence table: median (min–max) over the rounds that measured it, and how
/// many did not (the awaited thing did not happen in time).
fn presence_cell(values: &[Option<f64>], format: fn(f64) -> String) -> String {
    let got: Vec<f64> = values.iter().flatten().copied().collect();
    let missing = values.len() - got.len();
    if got.is_empty() {
        return if values.is_empty() {
            "–".to_owned()
        } else {
            "never (within 30 s), every round".to_owned()
        };
    }
    let mut cell = spread(got, format);
    if missing > 0 {
        let _ = write!(
            cell,
            "; never (within 30 s) in {missing} of {} rounds",
            values.len()
        );
    }
    cell
}

/// The presence runs (`presence-10k`, and its control `presence-control-10k` for the memory):
/// one row per measurement, median (min–max) over the rounds.
fn presence_table(results: &Results) -> String {
    let runs = |scenario: &str| -> Vec<PresenceRun> {
        results
            .get(&(scenario.to_owned(), "tidings".to_owned()))
            .map(|runs| runs.iter().filter_map(|r| r.presence.clone()).collect())
            .unwrap_or_default()
    };
    let presence = runs("presence-10k");
    let control = runs("presence-control-10k");
    let records = runs("presence-records-10k");
    if presence.is_empty() && control.is_empty() && records.is_empty() {
        return String::new();
    }
    let secs: fn(f64) -> String = |v| format!("{v:.2} s");
    let ms: fn(f64) -> String = |v| format!("{v:.1} ms");
    let num: fn(f64) -> String = |v| format!("{v:.1}");
    let whole: fn(f64) -> String = |v| format!("{v:.0}");
    let kib: fn(f64) -> String = |v| format!("{v:.2} KiB");
    let mib: fn(f64) -> String = |v| format!("{v:.1} MiB");
    let pct: fn(f64) -> String = |v| format!("{:.1}%", v * 100.0);
    let millions: fn(f64) -> String = |v| format!("{:.1}M", v / 1e6);
    let mut out = String::new();
    if let Some(first) = presence.first().or(control.first()) {
        let _ = writeln!(
            out,
            "| members (A / B / C) | {} / {} / {} |",
            first.members_per_node[0], first.members_per_node[1], first.members_per_node[2]
        );
    }
    let mut row = |label: &str, values: Vec<Option<f64>>, format: fn(f64) -> String| {
        let _ = writeln!(out, "| {label} | {} |", presence_cell(&values, format));
    };
    let of = |runs: &[PresenceRun], get: &dyn Fn(&PresenceRun) -> Option<f64>| {
        runs.iter().map(get).collect::<Vec<_>>()
    };
    let p = &presence;
    let c = &control;
    // Memory each node gained with every member in, summed over the three nodes (KiB).
    let gained = |r: &PresenceRun| -> f64 {
        (0..3)
            .map(|n| r.rss_after_kib[n] as f64 - r.rss_before_kib[n] as f64)
            .sum()
    };
    let members = |r: &PresenceRun| r.members_per_node.iter().sum::<u64>() as f64;
    row(
        "ramp-up: first connect to the last subscribe ack",
        of(p, &|r| Some(r.ramp_ack_secs)),
        secs,
    );
    row(
        "ramp-up: until every node counts every member",
        of(p, &|r| r.ramp_converged_secs),
        secs,
    );
    row(
        "ramp-up: until the last presence frame arrived",
        of(p, &|r| Some(r.ramp_quiet_secs)),
        secs,
    );
    row(
        "ramp-up without presence (control, `chats/0`): to the last ack",
        of(c, &|r| Some(r.ramp_ack_secs)),
        secs,
    );
    row(
        "ramp-up: `presence_diff` frames the members received",
        of(p, &|r| Some(r.ramp_diffs as f64)),
        millions,
    );
    row(
        "presence frames the members received over the run (diffs + states)",
        of(p, &|r| Some((r.diffs_received + r.states_received) as f64)),
        millions,
    );
    row(
        "presence bytes the members received over the run",
        of(p, &|r| Some(r.presence_mib)),
        mib,
    );
    row(
        "ramp-up: CPU-s of the three nodes",
        of(p, &|r| Some(r.ramp_node_cpu_secs)),
        num,
    );
    row(
        "ramp-up: CPU-s of Redis",
        of(p, &|r| Some(r.ramp_redis_cpu_secs)),
        num,
    );
    row(
        "join on A → `presence_diff` at a member of A, p50 of the joins",
        of(p, &|r| median_of(&r.join_local_ms)),
        ms,
    );
    row(
        "join on A → `presence_diff` at members of B and C, p50",
        of(p, &|r| median_of(&r.join_remote_ms)),
        ms,
    );
    row(
        "join on A → `presence_diff` at members of B and C, max",
        of(p, &|r| max_of(&r.join_remote_ms)),
        ms,
    );
    row(
        "disconnect on A → leave diff at a member of A, p50",
        of(p, &|r| median_of(&r.leave_local_ms)),
        ms,
    );
    row(
        "disconnect on A → leave diff at members of B and C, p50",
        of(p, &|r| median_of(&r.leave_remote_ms)),
        ms,
    );
    row(
        "disconnect on A → leave diff at members of B and C, max",
        of(p, &|r| max_of(&r.leave_remote_ms)),
        ms,
    );
    row(
        "join and leave diffs that never came (within 30 s)",
        of(p, &|r| Some(r.join_misses as f64)),
        whole,
    );
    row(
        "SIGKILL of C → the first of A, B counts only A's and B's members",
        of(p, &|r| {
            r.death_count_secs
                .iter()
                .flatten()
                .copied()
                .reduce(f64::min)
        }),
        secs,
    );
    row(
        "SIGKILL of C → the second of A, B counts only A's and B's members",
        of(p, &|r| match r.death_count_secs {
            [Some(a), Some(b)] => Some(a.max(b)),
            _ => None,
        }),
        secs,
    );
    row(
        "SIGKILL of C → the first member of A or B gets C's members as leaves",
        of(p, &|r| {
            r.death_diff_secs.iter().flatten().copied().reduce(f64::min)
        }),
        secs,
    );
    row(
        "SIGKILL of C → the second of A, B has a member get C's members as leaves",
        of(p, &|r| match r.death_diff_secs {
            [Some(a), Some(b)] => Some(a.max(b)),
            _ => None,
        }),
        secs,
    );
    row(
        "SIGKILL of C → Redis's hash holds only A's and B's records",
        of(p, &|r| r.death_redis_secs),
        secs,
    );
    row(
        "Redis commands/s at rest, presence",
        of(p, &|r| Some(r.rest_commands_per_sec)),
        num,
    );
    row(
        "Redis commands/s at rest, control (no presence)",
        of(c, &|r| Some(r.rest_commands_per_sec)),
        num,
    );
    row(
        "CPU of the three nodes at rest, presence (share of one core)",
        of(p, &|r| Some(r.rest_node_cpu)),
        pct,
    );
    row(
        "CPU of the three nodes at rest, control",
        of(c, &|r| Some(r.rest_node_cpu)),
        pct,
    );
    row(
        "churn: members leaving and joining again",
        of(p, &|r| Some(r.churn_members as f64)),
        whole,
    );
    row(
        "churn: seconds over which their leaves were sent",
        of(p, &|r| Some(r.churn_send_secs)),
        secs,
    );
    row(
        "churn: presence changes written (Redis `PUBLISH`es)",
        of(p, &|r| Some(r.churn_changes as f64)),
        whole,
    );
    row(
        "churn: of those, leave and rejoin both acked",
        of(p, &|r| Some(r.churn_rejoined as f64)),
        whole,
    );
    row(
        "churn: until every node counts every member again (from the first leave)",
        of(p, &|r| r.churn_secs),
        secs,
    );
    row(
        "Redis commands/s under churn",
        of(p, &|r| Some(r.churn_commands_per_sec)),
        num,
    );
    row(
        "Redis commands per presence change (leave or join), rest taken out",
        of(p, &|r| Some(r.churn_commands_per_change)),
        |v| format!("{v:.2}"),
    );
    row(
        "churn: CPU-s of the three nodes",
        of(p, &|r| Some(r.churn_node_cpu_secs)),
        num,
    );
    row(
        "churn: connections the servers closed meanwhile",
        of(p, &|r| Some(r.closed_during_churn as f64)),
        whole,
    );
    row(
        "RSS gained by the three nodes with every member in, presence",
        of(p, &|r| Some(gained(r) / 1024.0)),
        mib,
    );
    row(
        "RSS gained by the three nodes with every member in, control",
        of(c, &|r| Some(gained(r) / 1024.0)),
        mib,
    );
    // Paired by round when both ran in every round, else medians.
    let extra: Vec<Option<f64>> = if p.len() == c.len() {
        p.iter()
            .zip(c)
            .map(|(p, c)| Some((gained(p) - gained(c)) / members(p)))
            .collect()
    } else {
        let mut gp: Vec<f64> = p.iter().map(|r| gained(r) / members(r)).collect();
        let mut gc: Vec<f64> = c.iter().map(|r| gained(r) / members(r)).collect();
        if gp.is_empty() || gc.is_empty() {
            Vec::new()
        } else {
            vec![Some(median(&mut gp) - median(&mut gc))]
        }
    };
    row(
        "memory per tracked member, three nodes together: (presence − control) / members",
        extra.clone(),
        kib,
    );
    row(
        "the same per node (each node holds every member's record)",
        extra.iter().map(|v| v.map(|v| v / 3.0)).collect(),
        kib,
    );
    let c_of = |r: &PresenceRun| r.rss_after_kib[2] as f64 - r.rss_before_kib[2] as f64;
    row(
        "records alone: RSS node C gained holding every record with one member, per record",
        records.iter().map(|r| Some(c_of(r) / members(r))).collect(),
        kib,
    );
    row(
        "records-only run: RSS gained per member by A and B (their members' connections + every record)",
        records
            .iter()
            .map(|r| {
                let ab = r.members_per_node[0] + r.members_per_node[1];
                Some(
                    (0..2)
                        .map(|n| r.rss_after_kib[n] as f64 - r.rss_before_kib[n] as f64)
                        .sum::<f64>()
                        / ab as f64,
                )
            })
            .collect(),
        kib,
    );
    row(
        "Redis `used_memory` per tracked member, bytes",
        of(p, &|r| {
            (r.redis_records > 0).then(|| {
                (r.redis_memory_after as f64 - r.redis_memory_before as f64)
                    / r.redis_records as f64
            })
        }),
        whole,
    );
    row(
        "ramp-up: members whose connect or join failed",
        of(p, &|r| Some(r.failed_setups as f64)),
        whole,
    );
    row(
        "ramp-up: connections the servers closed",
        of(p, &|r| Some(r.closed_during_ramp as f64)),
        whole,
    );
    row(
        "connections the servers closed over the whole run (C's at its death left out)",
        of(p, &|r| Some(r.closed_early as f64)),
        whole,
    );
    let breakdown = |label: &str, text: Option<&String>| {
        text.filter(|t| !t.is_empty())
            .map(|t| format!("- {label} (the first round that had any): {t}\n"))
            .unwrap_or_default()
    };
    let first_error = presence
        .iter()
        .chain(&records)
        .chain(&control)
        .find(|r| !r.first_error.is_empty())
        .map(|r| r.first_error.clone());
    let notes = [
        breakdown("First failed connect or join", first_error.as_ref()),
        breakdown(
            "Close frames from the servers",
            presence
                .iter()
                .find(|r| !r.close_frames.is_empty())
                .map(|r| &r.close_frames),
        ),
        breakdown(
            "Redis commands at rest, presence",
            p.first().map(|r| &r.rest_commands),
        ),
        breakdown(
            "Redis commands at rest, control",
            c.first().map(|r| &r.rest_commands),
        ),
        breakdown(
            "Redis commands over the churn",
            p.first().map(|r| &r.churn_commands),
        ),
    ]
    .concat();
    format!(
        "\nPresence (issue 17): three nodes through Redis, every member in one channel; median \
         (min–max) over the rounds:\n\n| measurement | value |\n| --- | --- |\n{out}\n{notes}"
    )
}

/// One line on a history run, for the runner's log.
fn history_summary(h: &HistoryRun) -> String {
    let mut line = format!(
        "history of {} events, bodies of {:.1} bytes: fill {:.0} emits/s, RSS {:.1} bytes per \
         event; replacing {:.0} emits/s, RSS {:+.0} KiB",
        h.retained(),
        h.body_bytes,
        h.fill.emits_per_sec(),
        h.rss_bytes_per_event(),
        h.replace.emits_per_sec(),
        h.rss_growth_replacing_kib()
    );
    if h.redis {
        let _ = write!(
            line,
            "; Redis {:.1} bytes per entry ({} entries), {:+.0} bytes replacing; commands per \
             emit {:.2} / {:.2} (the node's {:.2} / {:.2}); refused {} / {}",
            h.redis_bytes_per_event(),
            h.fill.redis_entries_after,
            h.redis_growth_replacing(),
            h.fill.commands_per_emit(),
            h.replace.commands_per_emit(),
            h.fill.client_calls_per_emit(),
            h.replace.client_calls_per_emit(),
            h.fill.refused,
            h.replace.refused
        );
    }
    line
}

/// A breakdown of Redis commands (`"EVALSHA 100000, XADD 100000"`) per emit.
fn per_emit_breakdown(breakdown: &str, emits: u64) -> String {
    breakdown
        .split(", ")
        .filter_map(|item| {
            let (name, calls) = item.rsplit_once(' ')?;
            let calls: f64 = calls.parse().ok()?;
            Some(format!("{name} {:.2}", calls / emits.max(1) as f64))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of the history table.
struct HistoryRow {
    label: &'static str,
    format: fn(f64) -> String,
    get: fn(&HistoryRun) -> Option<f64>,
    /// Whether the difference recovery − control means something.
    differs: bool,
    /// Only for the history in Redis.
    redis_only: bool,
}

impl HistoryRow {
    fn new(
        label: &'static str,
        format: fn(f64) -> String,
        get: fn(&HistoryRun) -> Option<f64>,
        differs: bool,
        redis_only: bool,
    ) -> HistoryRow {
        HistoryRow {
            label,
            format,
            get,
            differs,
            redis_only,
        }
    }
}

/// One cell of the history table: median (min–max) over the rounds that measured it.
fn history_cell(values: &[Option<f64>], format: fn(f64) -> String) -> String {
    let got: Vec<f64> = values.iter().flatten().copied().collect();
    if got.is_empty() {
        return "–".to_owned();
    }
    let missing = values.len() - got.len();
    let mut cell = spread(got, format);
    if missing > 0 {
        let _ = write!(cell, "; not measured in {missing} of {}", values.len());
    }
    cell
}

/// The history scenarios (`history-100k`, `redis-history-100k`): per measurement, tidings
/// (the control, no history), tidings-recovery, and the difference (paired by round when both
/// ran in every round, else of the medians), median (min–max) over the rounds.
fn history_table(results: &Results) -> String {
    let runs = |scenario: &str, peer: &str| -> Vec<HistoryRun> {
        results
            .get(&(scenario.to_owned(), peer.to_owned()))
            .map(|runs| runs.iter().filter_map(|r| r.history.clone()).collect())
            .unwrap_or_default()
    };
    let rate: fn(f64) -> String = |v| format_value(Unit::Rate, v);
    let bytes: fn(f64) -> String = |v| format!("{v:.1}");
    let kib: fn(f64) -> String = |v| format!("{v:+.0} KiB");
    let mib: fn(f64) -> String = |v| format!("{:.2} MiB", v / 1024.0);
    let us: fn(f64) -> String = |v| format!("{v:.2} µs");
    let per_emit: fn(f64) -> String = |v| format!("{v:.2}");
    let whole: fn(f64) -> String = |v| format!("{v:.0}");
    let rows = [
        HistoryRow::new(
            "fill: emits/s (answered by the node)",
            rate,
            |h| Some(h.fill.emits_per_sec()),
            false,
            false,
        ),
        HistoryRow::new(
            "replacing (history full): emits/s",
            rate,
            |h| Some(h.replace.emits_per_sec()),
            false,
            false,
        ),
        HistoryRow::new(
            "fill: emits/s until Redis had published every one",
            rate,
            |h| h.fill.redis_secs.map(|s| h.fill.emits as f64 / s),
            false,
            true,
        ),
        HistoryRow::new(
            "replacing: emits/s until Redis had published every one",
            rate,
            |h| h.replace.redis_secs.map(|s| h.replace.emits as f64 / s),
            false,
            true,
        ),
        HistoryRow::new(
            "fill: emits refused by the node (503, its queue to Redis full) and sent again",
            whole,
            |h| Some(h.fill.refused as f64),
            false,
            true,
        ),
        HistoryRow::new(
            "replacing: emits refused and sent again",
            whole,
            |h| Some(h.replace.refused as f64),
            false,
            true,
        ),
        HistoryRow::new(
            "fill: load generator core busy (above 85 %: the rate is a lower bound)",
            |v| format!("{:.0}%", v * 100.0),
            |h| Some(h.fill.loadgen_busy),
            false,
            false,
        ),
        HistoryRow::new(
            "fill: server CPU per emit",
            us,
            |h| Some(h.fill.server_cpu_us_per_emit()),
            true,
            false,
        ),
        HistoryRow::new(
            "replacing: server CPU per emit",
            us,
            |h| Some(h.replace.server_cpu_us_per_emit()),
            true,
            false,
        ),
        HistoryRow::new(
            "fill: Redis CPU per emit",
            us,
            |h| Some(h.fill.redis_cpu_secs * 1e6 / h.fill.emits.max(1) as f64),
            true,
            true,
        ),
        HistoryRow::new(
            "replacing: Redis CPU per emit",
            us,
            |h| Some(h.replace.redis_cpu_secs * 1e6 / h.replace.emits.max(1) as f64),
            true,
            true,
        ),
        HistoryRow::new(
            "server RSS before the fill (after a warm-up of 1000 emits)",
            mib,
            |h| Some(h.rss_before_kib as f64),
            true,
            false,
        ),
        HistoryRow::new(
            "server RSS gained by the fill",
            mib,
            |h| Some(h.fill.rss_after_kib as f64 - h.rss_before_kib as f64),
            true,
            false,
        ),
        HistoryRow::new(
            "**server RSS per retained event, bytes** (gained / retained events)",
            bytes,
            |h| Some(h.rss_bytes_per_event()),
            true,
            false,
        ),
        HistoryRow::new(
            "server RSS change while replacing (history full: should be flat)",
            kib,
            |h| Some(h.rss_growth_replacing_kib()),
            true,
            false,
        ),
        HistoryRow::new(
            "Redis stream entries after the fill (`XLEN`, summed)",
            whole,
            |h| Some(h.fill.redis_entries_after as f64),
            false,
            true,
        ),
        HistoryRow::new(
            "Redis stream entries after replacing",
            whole,
            |h| Some(h.replace.redis_entries_after as f64),
            false,
            true,
        ),
        HistoryRow::new(
            "Redis `used_memory` gained by the fill",
            mib,
            |h| Some((h.fill.redis_memory_after as f64 - h.redis_memory_before as f64) / 1024.0),
            true,
            true,
        ),
        HistoryRow::new(
            "**Redis `used_memory` per retained event, bytes** (gained / stream entries)",
            bytes,
            |h| Some(h.redis_bytes_per_event()),
            true,
            true,
        ),
        HistoryRow::new(
            "Redis `used_memory` change while replacing",
            kib,
            |h| Some(h.redis_growth_replacing() / 1024.0),
            true,
            true,
        ),
        HistoryRow::new(
            "fill: Redis commands the node sent per emit (`EVALSHA` with the history, \
             `PUBLISH` without)",
            per_emit,
            |h| Some(h.fill.client_calls_per_emit()),
            false,
            true,
        ),
        HistoryRow::new(
            "fill: `EVALSHA` per emit",
            per_emit,
            |h| Some(h.fill.script_calls_per_emit()),
            true,
            true,
        ),
        HistoryRow::new(
            "**fill: all Redis commands per emit** (the script's included)",
            per_emit,
            |h| Some(h.fill.commands_per_emit()),
            true,
            true,
        ),
        HistoryRow::new(
            "replacing: Redis commands the node sent per emit",
            per_emit,
            |h| Some(h.replace.client_calls_per_emit()),
            false,
            true,
        ),
        HistoryRow::new(
            "**replacing: all Redis commands per emit** (the script's included)",
            per_emit,
            |h| Some(h.replace.commands_per_emit()),
            true,
            true,
        ),
    ];
    let mut out = String::new();
    for scenario in ["history-100k", "redis-history-100k"] {
        let control = runs(scenario, "tidings");
        let recovery = runs(scenario, "tidings-recovery");
        let Some(first) = recovery.first().or(control.first()) else {
            continue;
        };
        let _ = write!(
            out,
            "\n`{scenario}`: {} channels × {} events, {} retained with recovery ({} per \
             channel), each emit's body {:.1} bytes (its `data` {:.1}); {}; median (min–max) \
             over the rounds:\n\n| measurement | tidings (control) | tidings-recovery | \
             recovery − control |\n| --- | --- | --- | --- |\n",
            first.channels,
            first.events_per_channel,
            first.retained(),
            first.kept_per_channel,
            first.body_bytes,
            first.data_bytes,
            if first.redis {
                "one node, the history in Redis Streams"
            } else {
                "one node, the history in its memory"
            }
        );
        for HistoryRow {
            label,
            format,
            get,
            differs,
            redis_only,
        } in &rows
        {
            if *redis_only && !first.redis {
                continue;
            }
            let of = |runs: &[HistoryRun]| runs.iter().map(get).collect::<Vec<_>>();
            let (c, r) = (of(&control), of(&recovery));
            let difference = if !differs {
                "–".to_owned()
            } else if c.len() == r.len() {
                let paired: Vec<Option<f64>> = c
                    .iter()
                    .zip(&r)
                    .map(|(c, r)| Some(r.as_ref()? - c.as_ref()?))
                    .collect();
                history_cell(&paired, *format)
            } else {
                let mut c: Vec<f64> = c.iter().flatten().copied().collect();
                let mut r: Vec<f64> = r.iter().flatten().copied().collect();
                if c.is_empty() || r.is_empty() {
                    "–".to_owned()
                } else {
                    format(median(&mut r) - median(&mut c))
                }
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {difference} |",
                history_cell(&c, *format),
                history_cell(&r, *format)
            );
        }
        if first.redis {
            out.push('\n');
            for (peer, runs) in [("tidings", &control), ("tidings-recovery", &recovery)] {
                if let Some(run) = runs.first() {
                    for (phase, p) in [("fill", &run.fill), ("replacing", &run.replace)] {
                        let _ = writeln!(
                            out,
                            "- {peer}, {phase}, Redis commands per emit (the first round): {}",
                            per_emit_breakdown(&p.breakdown, p.emits)
                        );
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\nConnection state recovery's channel history (issue 18), no subscribers: the fill \
         posts `--events` emits to each channel, then as many again replace them (the history \
         full, each new event takes an old one's place). Memory per retained event: what the \
         fill added over the events kept (tidings keeps none: its column is the noise and the \
         HTTP path; the difference is the history's).\n{out}"
    )
}

/// Two tidings nodes through Redis against one node, same fan-out, same invocation (medians).
fn two_nodes_vs_one(results: &Results) -> String {
    let med = |scenario: &str, get: fn(&RunResult) -> f64| {
        let mut values: Vec<f64> = results
            .get(&(scenario.to_owned(), "tidings".to_owned()))
            .map(|runs| runs.iter().map(get).collect())
            .unwrap_or_default();
        (!values.is_empty()).then(|| median(&mut values))
    };
    type Get = fn(&RunResult) -> f64;
    let rows: [(&str, Unit, Get, Get); 8] = [
        (
            "deliveries/s ↑",
            Unit::Rate,
            |r| r.deliveries_per_sec,
            |r| r.deliveries_per_sec,
        ),
        (
            "deliveries per server CPU-s ↑ (two nodes: A + B + Redis)",
            Unit::Rate,
            |r| r.deliveries_per_cpu_sec,
            |r| r.deliveries_per_cpu_sec,
        ),
        (
            "latency p50 ↓, local",
            Unit::Micros,
            |r| r.p50_us,
            |r| r.local_p50_us,
        ),
        (
            "latency p50 ↓, remote",
            Unit::Micros,
            |r| r.p50_us,
            |r| r.remote_p50_us,
        ),
        (
            "latency p99 ↓, local",
            Unit::Micros,
            |r| r.p99_us,
            |r| r.local_p99_us,
        ),
        (
            "latency p99 ↓, remote",
            Unit::Micros,
            |r| r.p99_us,
            |r| r.remote_p99_us,
        ),
        (
            "latency max ↓, local",
            Unit::Micros,
            |r| r.max_us,
            |r| r.local_max_us,
        ),
        (
            "latency max ↓, remote",
            Unit::Micros,
            |r| r.max_us,
            |r| r.remote_max_us,
        ),
    ];
    let mut out = String::new();
    for (one, two) in [
        ("fanout-1k", "redis-fanout-1k"),
        ("fanout-10k", "redis-fanout-10k"),
    ] {
        for (label, unit, get_one, get_two) in rows {
            if let (Some(a), Some(b)) = (med(one, get_one), med(two, get_two)) {
                let ratio = if a != 0.0 {
                    format!("{:.2}", b / a)
                } else {
                    "–".to_owned()
                };
                let _ = writeln!(
                    out,
                    "| {two} vs {one} | {label} | {} | {} | {ratio} |",
                    format_value(unit, a),
                    format_value(unit, b)
                );
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\nTwo tidings nodes through Redis / one node (medians; the one-node latency against each \
         side's):\n\n| scenario | metric | one node | two nodes | two/one |\n| --- | --- | --- | --- | --- |\n{out}"
    )
}

fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Rate if value >= 1e6 => format!("{:.2}M", value / 1e6),
        Unit::Rate if value >= 1e3 => format!("{:.1}k", value / 1e3),
        Unit::Rate => format!("{value:.0}"),
        Unit::Micros if value >= 1e3 => format!("{:.1} ms", value / 1e3),
        Unit::Micros => format!("{value:.0} µs"),
        Unit::Count => format!("{value:.0}"),
        Unit::KiB => format!("{value:.1}"),
        Unit::Ratio => format!("{value:.2}"),
        Unit::Percent => format!("{:.0}%", value * 100.0),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

type Results = HashMap<(String, String), Vec<RunResult>>;

fn cell_values(results: &Results, scenario: &str, peer: &str, metric: &Metric) -> Vec<f64> {
    results
        .get(&(scenario.to_owned(), peer.to_owned()))
        .map(|runs| runs.iter().map(metric.get).collect())
        .unwrap_or_default()
}

/// The load generator's core above this share of the measured phase: its rates are lower bounds.
const LOADGEN_SATURATED: f64 = 0.85;

/// Whether any run of `peer` in `scenario` had the load generator's core above
/// [`LOADGEN_SATURATED`].
fn saturated(results: &Results, scenario: &str, peer: &str) -> bool {
    results
        .get(&(scenario.to_owned(), peer.to_owned()))
        .is_some_and(|runs| runs.iter().any(|r| r.loadgen_busy > LOADGEN_SATURATED))
}

fn table(results: &Results, peers: &[String], rounds: usize) -> String {
    let mut out = String::new();
    if !metrics()
        .iter()
        .any(|m| results.keys().any(|(s, _)| s == m.scenario))
    {
        return out;
    }
    let others: Vec<&String> = peers.iter().filter(|p| *p != "tidings").collect();
    let has_tidings = peers.iter().any(|p| p == "tidings");
    let _ = write!(out, "| scenario | metric |");
    for peer in peers {
        let _ = write!(out, " {peer} |");
    }
    if has_tidings {
        for peer in &others {
            let _ = write!(out, " tidings/{peer} |");
        }
    }
    out.push('\n');
    let columns = 2 + peers.len() + if has_tidings { others.len() } else { 0 };
    out.push_str(&"| --- ".repeat(columns));
    out.push_str("|\n");
    for metric in metrics() {
        if !results.keys().any(|(s, _)| s == metric.scenario) {
            continue;
        }
        let arrow = if metric.higher_is_better {
            "↑"
        } else {
            "↓"
        };
        let _ = write!(out, "| {} | {} {arrow} |", metric.scenario, metric.label);
        let mut medians = HashMap::new();
        for peer in peers {
            let mut values = cell_values(results, metric.scenario, peer, &metric);
            if values.is_empty() {
                out.push_str(" – |");
                continue;
            }
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mid = median(&mut values);
            medians.insert(peer.as_str(), mid);
            // A rate measured while the load generator's core was nearly full is a lower bound.
            let flag =
                if matches!(metric.unit, Unit::Rate) && saturated(results, metric.scenario, peer) {
                    " †"
                } else {
                    ""
                };
            if rounds > 1 {
                let _ = write!(
                    out,
                    " {}{flag} ({}–{}) |",
                    format_value(metric.unit, mid),
                    format_value(metric.unit, min),
                    format_value(metric.unit, max)
                );
            } else {
                let _ = write!(out, " {}{flag} |", format_value(metric.unit, mid));
            }
        }
        if has_tidings {
            for peer in &others {
                match (medians.get("tidings"), medians.get(peer.as_str())) {
                    (Some(t), Some(p)) if *p != 0.0 && !matches!(metric.unit, Unit::Count) => {
                        let _ = write!(out, " {:.2} |", t / p);
                    }
                    _ => out.push_str(" – |"),
                }
            }
        }
        out.push('\n');
    }
    out
}

fn targets(results: &Results) -> String {
    let med = |scenario: &str, peer: &str, get: fn(&RunResult) -> f64| {
        let mut values: Vec<f64> = results
            .get(&(scenario.to_owned(), peer.to_owned()))
            .map(|runs| runs.iter().map(get).collect())
            .unwrap_or_default();
        (!values.is_empty()).then(|| median(&mut values))
    };
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut out = String::from("\nTargets (medians):\n\n");
    // Issue 16: every fan-out regime against socketioxide and the batching baseline.
    for scenario in [
        "fanout-1k",
        "seq-w8-1k",
        "seq-w0-1k",
        "fanout-10k",
        "seq-w8-10k",
        "seq-w0-10k",
    ] {
        let rate: fn(&RunResult) -> f64 = |r| r.deliveries_per_sec;
        let tidings = med(scenario, "tidings", rate);
        if let (Some(t), Some(s)) = (tidings, med(scenario, "socketioxide", rate)) {
            let _ = writeln!(
                out,
                "- {scenario}: tidings >= 1.5x socketioxide: {:.2}x ({})",
                t / s,
                mark(t >= 1.5 * s)
            );
        }
        if let (Some(t), Some(b)) = (tidings, med(scenario, "baseline", rate)) {
            let _ = writeln!(
                out,
                "- {scenario}: tidings >= 0.75x the baseline: {:.2}x ({})",
                t / b,
                mark(t >= 0.75 * b)
            );
        }
        let per_cpu: fn(&RunResult) -> f64 = |r| r.deliveries_per_cpu_sec;
        if let (Some(t), Some(b)) = (
            med(scenario, "tidings", per_cpu),
            med(scenario, "baseline", per_cpu),
        ) && t > 0.0
        {
            let _ = writeln!(
                out,
                "- {scenario}: server CPU per delivery <= 1.3x the baseline's: {:.2}x ({})",
                b / t,
                mark(b / t <= 1.3)
            );
        }
    }
    // Issue 18: history kept for recovery costs at most 15 % of the fan-out in memory; with
    // Redis Streams, the ratio is reported.
    for scenario in [
        "fanout-1k",
        "seq-w8-1k",
        "seq-w0-1k",
        "fanout-10k",
        "seq-w8-10k",
        "seq-w0-10k",
        "redis-fanout-1k",
        "redis-fanout-10k",
    ] {
        let rate: fn(&RunResult) -> f64 = |r| r.deliveries_per_sec;
        if let (Some(t), Some(r)) = (
            med(scenario, "tidings", rate),
            med(scenario, "tidings-recovery", rate),
        ) {
            if scenario.starts_with("redis-") {
                let _ = writeln!(
                    out,
                    "- {scenario}: tidings with recovery (Redis Streams) / without: {:.2}x",
                    r / t
                );
            } else {
                let _ = writeln!(
                    out,
                    "- {scenario}: tidings with recovery >= 0.85x without: {:.2}x ({})",
                    r / t,
                    mark(r >= 0.85 * t)
                );
            }
        }
    }
    for scenario in ["paced-1k", "paced-10k"] {
        let p99: fn(&RunResult) -> f64 = |r| r.p99_us;
        let tidings = med(scenario, "tidings", p99);
        for (peer, limit) in [("socketioxide", 0.7), ("baseline", 1.2)] {
            if let (Some(t), Some(p)) = (tidings, med(scenario, peer, p99)) {
                let _ = writeln!(
                    out,
                    "- {scenario}: p99 <= {limit}x {peer}'s: {} vs {} ({:.2}x; {})",
                    format_value(Unit::Micros, t),
                    format_value(Unit::Micros, p),
                    t / p,
                    mark(t <= limit * p)
                );
            }
        }
    }
    if let Some(k) = med("connect-10k", "tidings", |r| r.kib_per_conn) {
        let _ = writeln!(
            out,
            "- idle RSS <= 12 KiB per subscribed connection (stretch 10.4): {k:.1} KiB ({})",
            mark(k <= 12.0)
        );
    }
    if let (Some(t), Some(s)) = (
        med("connect-10k", "tidings", |r| r.connect_per_sec),
        med("connect-10k", "socketioxide", |r| r.connect_per_sec),
    ) {
        let saturated = saturated(results, "connect-10k", "tidings")
            || saturated(results, "connect-10k", "socketioxide");
        let _ = writeln!(
            out,
            "- connect+subscribe rate >= 1.5x socketioxide: {:.2}x ({}{})",
            t / s,
            mark(t >= 1.5 * s),
            if saturated {
                "; the load generator was saturated"
            } else {
                ""
            }
        );
    }
    for scenario in ["fanout-1k", "fanout-10k", "connect-10k"] {
        let rate: fn(&RunResult) -> f64 = if scenario.starts_with("connect") {
            |r| r.connect_per_sec
        } else {
            |r| r.deliveries_per_sec
        };
        let phoenix = med(scenario, "tidings-phoenix", rate);
        if let (Some(p), Some(t)) = (phoenix, med(scenario, "trillium", rate)) {
            let _ = writeln!(
                out,
                "- {scenario}, Phoenix: tidings >= 1.5x trillium-channels: {:.2}x ({})",
                p / t,
                mark(p >= 1.5 * t)
            );
        }
        if let (Some(p), Some(s)) = (phoenix, med(scenario, "tidings", rate)) {
            let _ = writeln!(
                out,
                "- {scenario}: tidings over Phoenix within 15% of tidings over Socket.IO: {:.2}x ({})",
                p / s,
                mark(p >= 0.85 * s)
            );
        }
    }
    for scenario in ["fanout-1k", "fanout-10k"] {
        let rate: fn(&RunResult) -> f64 = |r| r.deliveries_per_sec;
        if let (Some(t), Some(b)) = (
            med(scenario, "tidings-plain", rate),
            med(scenario, "baseline-plain", rate),
        ) {
            let _ = writeln!(
                out,
                "- {scenario}, plain WebSocket: tidings >= 0.8x the baseline: {:.2}x ({})",
                t / b,
                mark(t >= 0.8 * b)
            );
        }
    }
    if let (Some(t), Some(b)) = (
        med("connect-10k", "tidings-plain", |r| r.kib_per_conn),
        med("connect-10k", "baseline-plain", |r| r.kib_per_conn),
    ) {
        let _ = writeln!(
            out,
            "- connect-10k, plain WebSocket: idle memory per connection <= 1.2x the baseline's: {t:.1} vs {b:.1} KiB, {:.2}x ({})",
            t / b,
            mark(t <= 1.2 * b)
        );
    }
    let tidings_runs: Vec<&RunResult> = results
        .iter()
        // The presence runs count the connections they lose in their own table.
        .filter(|((scenario, peer), _)| {
            peer.starts_with("tidings")
                && peer != "tidings-ref"
                && !scenario.starts_with("presence-")
        })
        .flat_map(|(_, runs)| runs)
        .collect();
    if !tidings_runs.is_empty() {
        let lost: i64 = tidings_runs.iter().map(|r| r.loss.max(0)).sum();
        let errors: u64 = tidings_runs
            .iter()
            .map(|r| r.conn_errors + r.emit_errors)
            .sum();
        let _ = writeln!(
            out,
            "- zero loss: {lost} lost, {errors} connection/emit errors over {} tidings runs ({})",
            tidings_runs.len(),
            mark(lost == 0 && errors == 0)
        );
    }
    out
}

fn main() {
    raise_fd_limit();
    let flags = Flags::from_env();
    let quick = flags.has("quick");
    let rounds: usize = flags.num("rounds", if quick { 1 } else { 3 });
    let peers: Vec<String> = flags.get("peers").map_or_else(
        || PEERS.iter().map(|p| (*p).to_owned()).collect(),
        |p| p.split(',').map(str::to_owned).collect(),
    );
    let wanted: Option<Vec<&str>> = flags.get("scenarios").map(|s| s.split(',').collect());
    let scenarios: Vec<Scenario> = scenarios(quick)
        .into_iter()
        .filter(|s| {
            wanted.as_ref().map_or(!s.on_request(), |w| {
                // The presence scenario brings its control and its records-only run along.
                w.contains(&s.name)
                    || (s.name.starts_with("presence-") && w.contains(&"presence-10k"))
            })
        })
        .collect();
    let pin = !flags.has("no-pin");
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let release = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| fail("no directory for this binary"));
    let root = flags
        .get("root")
        .map_or_else(|| release.join("../.."), PathBuf::from);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let logs = root.join(format!("target/bench/{stamp}"));
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| fail(&format!("{}: {e}", logs.display())));
    let paths = Paths {
        root,
        release,
        logs,
    };
    let mut port: u16 = flags.num("base-port", 21000);
    let mut results = Results::new();
    let mut failures = Vec::new();
    let mut raw = String::new();
    let mut loads = Vec::new();
    eprintln!(
        "bench: {} round(s), peers {}, logs in {}",
        rounds,
        peers.join(","),
        paths.logs.display()
    );
    for round in 0..rounds {
        let mut order = peers.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for scenario in &scenarios {
            for peer in &order {
                // Redis setups: tidings, and with recovery only for the fan-out through Redis.
                if scenario.redis()
                    && peer != "tidings"
                    && !(peer == "tidings-recovery" && scenario.name.starts_with("redis-"))
                {
                    continue;
                }
                // The history scenarios: with recovery and without (the control).
                if scenario.history() && peer != "tidings" && peer != "tidings-recovery" {
                    continue;
                }
                // A fresh free port per run, below the ephemeral range (32768+) the load
                // generator's own sockets take theirs from: nothing of a previous run in the way.
                // (One per node and one for Redis in a Redis scenario.)
                let mut ports = vec![next_free_port(port)];
                for _ in 0..scenario.redis_nodes {
                    let last = ports[ports.len() - 1];
                    ports.push(next_free_port(last));
                }
                port = ports[ports.len() - 1];
                let tag = format!("r{round}-{}-{peer}", scenario.name);
                let started = Instant::now();
                loads.push(loadavg());
                match run_once(&paths, pin, peer, scenario, &ports, &tag) {
                    Ok(result) => {
                        eprintln!(
                            "{tag}: {:.1}s deliveries/s={:.0} p50={:.0}us p99={:.0}us loss={} connect/s={:.0} KiB/conn={:.1} errors={} server-cpu={:.2}s loadgen-cpu={:.2}s loadgen-busy={:.0}% segments/delivery={:.2}",
                            started.elapsed().as_secs_f64(),
                            result.deliveries_per_sec,
                            result.p50_us,
                            result.p99_us,
                            result.loss,
                            result.connect_per_sec,
                            result.kib_per_conn,
                            result.conn_errors + result.emit_errors,
                            result.server_cpu_secs,
                            result.loadgen_cpu_secs,
                            result.loadgen_busy * 100.0,
                            result.segments_per_delivery
                        );
                        if let Some(presence) = &result.presence {
                            eprintln!("{tag}: {}", presence_summary(presence));
                        }
                        if let Some(history) = &result.history {
                            eprintln!("{tag}: {}", history_summary(history));
                        }
                        if result.nodes == 2 {
                            eprintln!(
                                "{tag}: local {}/s p50={:.0}us p99={:.0}us loss={}; remote {}/s p50={:.0}us p99={:.0}us loss={}; node B cpu={:.2}s redis cpu={:.2}s",
                                format_value(Unit::Rate, result.local_deliveries_per_sec),
                                result.local_p50_us,
                                result.local_p99_us,
                                result.local_loss,
                                format_value(Unit::Rate, result.remote_deliveries_per_sec),
                                result.remote_p50_us,
                                result.remote_p99_us,
                                result.remote_loss,
                                result.remote_server_cpu_secs,
                                result.redis_cpu_secs
                            );
                        }
                        if let Ok(line) = serde_json::to_string(&result) {
                            let _ = writeln!(
                                raw,
                                "{{\"round\":{round},\"peer\":\"{peer}\",\"name\":\"{}\",\"result\":{line}}}",
                                scenario.name
                            );
                        }
                        results
                            .entry((scenario.name.to_owned(), peer.clone()))
                            .or_default()
                            .push(result);
                    }
                    Err(error) => {
                        eprintln!("{tag}: FAILED: {error}");
                        failures.push(format!("{tag}: {error}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let _ = std::fs::write(paths.logs.join("results.jsonl"), raw);
    let mut report = table(&results, &peers, rounds);
    if !report.is_empty() {
        let _ = writeln!(
            report,
            "\n† the load generator's core was more than {:.0}% busy in at least one round: that \
             rate is a lower bound (the load generator, not the server, may have set it).",
            LOADGEN_SATURATED * 100.0
        );
    }
    report.push_str(&two_nodes_vs_one(&results));
    report.push_str(&history_table(&results));
    report.push_str(&presence_table(&results));
    report.push_str("\nScenarios (load generator flags):\n\n");
    for scenario in &scenarios {
        let _ = writeln!(
            report,
            "- {}: `{}`{}",
            scenario.name,
            scenario.args.join(" "),
            match scenario.redis_nodes {
                1 =>
                    " on one tidings node with Redis (the runner adds `--redis-port`, `--redis-pid`)",
                2 => {
                    " on two tidings nodes through Redis (the runner adds `--port2`, `--pid2`, \
                     `--redis-pid`)"
                }
                3 => {
                    " on three tidings nodes through Redis (the runner adds `--port2`, \
                     `--pid2`, `--port3`, `--pid3`, `--redis-port`, `--redis-pid`)"
                }
                _ => "",
            }
        );
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&paths.root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let _ = writeln!(
        report,
        "\nSource: commit {}{}.",
        git(&["rev-parse", "--short", "HEAD"]),
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    );
    let low = loads.iter().copied().fold(f64::INFINITY, f64::min);
    let high = loads.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let _ = writeln!(
        report,
        "\n1-minute load average before each run: {low:.2} to {high:.2} (the bench itself adds up to 2)."
    );
    let targets = targets(&results);
    if targets.lines().count() > 3 {
        report.push_str(&targets);
    }
    if !failures.is_empty() {
        report.push_str("\nFailed runs:\n\n");
        for failure in &failures {
            let _ = writeln!(report, "- {failure}");
        }
    }
    println!("{report}");
    let _ = std::fs::write(paths.logs.join("table.md"), &report);
    if let Some(out) = flags.get("out") {
        let _ = std::fs::write(out, &report);
    }
}

#[cfg(test)]
mod tests {
    use super::{per_emit_breakdown, scenarios};

    #[test]
    fn history_scenarios_only_on_request() {
        let list = scenarios(false);
        let find = |name: &str| {
            list.iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no scenario {name}"))
        };
        let memory = find("history-100k");
        assert!(memory.history() && memory.on_request() && !memory.redis());
        let redis = find("redis-history-100k");
        assert!(redis.history() && redis.on_request());
        assert_eq!(redis.redis_nodes, 1);
        assert_eq!(find("redis-fanout-1k").redis_nodes, 2);
        assert!(!find("fanout-1k").on_request());
        assert!(redis.args.windows(2).any(|w| w == ["--kept", "1000"]));
    }

    #[test]
    fn commands_per_emit_from_the_breakdown() {
        assert_eq!(
            per_emit_breakdown("EVALSHA 200, XADD 200, SMEMBERS 3", 200),
            "EVALSHA 1.00, XADD 1.00, SMEMBERS 0.01"
        );
        assert_eq!(per_emit_breakdown("", 10), "");
    }
}

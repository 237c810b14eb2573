//! The runner behind `scripts/bench`: starts each peer fresh per scenario on core 0, runs the
//! load generator on core 1, kills the peer by its PID, repeats for several rounds in
//! alternating peer order, and prints a markdown table (median and min-max over rounds, and the
//! ratio tidings/peer) followed by the targets.
//!
//! Scenarios, for 1k and 10k subscribers of one channel: `fanout-*` (emits from 4 HTTP
//! connections at once), `seq-w8-*` and `seq-w0-*` (from one connection, one at a time, with
//! at most 8 emits not yet received by everyone, and with no such window), `paced-*` (one
//! connection at a fixed rate well under capacity: latency); then `channels-1k` and
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
//! The scenarios `redis-fanout-1k` and `redis-fanout-10k` (tidings only, run only when named in
//! `--scenarios`) are the fan-out of the same size over two tidings nodes joined through Redis:
//! a `redis-server` on a free loopback port (`--save "" --appendonly no`), node A and node B
//! (`bench_server --workers 1 --redis ...`), all three pinned to core 0 (the same one core the
//! single node gets), subscribers alternating between A and B, every emit posted to A. The
//! table adds latency and loss for A's ("local") and B's ("remote") subscribers, and a
//! two-node/one-node comparison with `fanout-1k` / `fanout-10k` when those ran too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidings_bench::{Flags, RunResult, fail, raise_fd_limit};

const PEERS: [&str; 8] = [
    "tidings",
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

struct Scenario {
    name: &'static str,
    args: Vec<String>,
    /// Two tidings nodes through Redis (only when asked for by name).
    redis: bool,
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let scenario = |name: &'static str, args: &[&str]| Scenario {
        name,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        redis: name.starts_with("redis-"),
    };
    // (subscribers, emits) of the 1k and 10k fan-outs; the paced ones: (emits, per second).
    let (small, large, paced_small, paced_large) = if quick {
        (("1000", "50"), ("2000", "20"), ("40", "40"), ("10", "10"))
    } else {
        (
            ("1000", "200"),
            ("10000", "100"),
            ("100", "50"),
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
/// `ports`: the server's; for a Redis scenario also node B's and Redis's.
fn run_once(
    paths: &Paths,
    pin: bool,
    peer: &str,
    scenario: &Scenario,
    ports: [u16; 3],
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
        if scenario.redis {
            if peer != "tidings" {
                return Err(format!("{peer}: no Redis setup (tidings only)"));
            }
            let redis_port = ports[2];
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
            for (node, port) in [("node-a", ports[0]), ("node-b", ports[1])] {
                let mut command = peer_command(paths, peer, port);
                command.extend(["--redis".to_owned(), url.clone()]);
                let mut child = spawn_logged(paths, core, &command, tag, node)?;
                let waited = wait_listening(&mut child, port);
                children.push(child);
                waited.map_err(|e| format!("{peer} {node}: {e}"))?;
            }
            loadgen_args.extend([
                "--pid".to_owned(),
                children[1].id().to_string(),
                "--port2".to_owned(),
                ports[1].to_string(),
                "--pid2".to_owned(),
                children[2].id().to_string(),
                "--redis-pid".to_owned(),
                redis_pid.to_string(),
            ]);
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
        let status = wait_bounded(&mut loadgen, RUN_TIMEOUT)?;
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
        .filter(|((_, peer), _)| peer.starts_with("tidings") && peer != "tidings-ref")
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
        .filter(|s| wanted.as_ref().map_or(!s.redis, |w| w.contains(&s.name)))
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
                if scenario.redis && peer != "tidings" {
                    continue;
                }
                // A fresh free port per run, below the ephemeral range (32768+) the load
                // generator's own sockets take theirs from: nothing of a previous run in the way.
                // (Three for a Redis scenario: node A, node B and Redis.)
                port = next_free_port(port);
                let ports = if scenario.redis {
                    let b = next_free_port(port);
                    let redis = next_free_port(b);
                    [port, b, redis]
                } else {
                    [port; 3]
                };
                port = ports[2];
                let tag = format!("r{round}-{}-{peer}", scenario.name);
                let started = Instant::now();
                loads.push(loadavg());
                match run_once(&paths, pin, peer, scenario, ports, &tag) {
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
    let _ = writeln!(
        report,
        "\n† the load generator's core was more than {:.0}% busy in at least one round: that rate \
         is a lower bound (the load generator, not the server, may have set it).",
        LOADGEN_SATURATED * 100.0
    );
    report.push_str(&two_nodes_vs_one(&results));
    report.push_str("\nScenarios (load generator flags):\n\n");
    for scenario in &scenarios {
        let _ = writeln!(
            report,
            "- {}: `{}`{}",
            scenario.name,
            scenario.args.join(" "),
            if scenario.redis {
                " on two tidings nodes through Redis (the runner adds `--port2`, `--pid2`, \
                 `--redis-pid`)"
            } else {
                ""
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
    report.push_str(&targets(&results));
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

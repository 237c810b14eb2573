//! Shared pieces of the tidings benchmark: flags, the result record the load generator prints
//! and the runner reads, percentiles, the server's RSS and the fd limit.
//!
//! The binaries: `loadgen` (the load generator), `peer-socketioxide` and `peer-baseline` (two
//! of the servers under test; tidings is `examples/bench_server.rs`, Node is
//! `bench/node/server.mjs`) and `bench` (the runner behind `scripts/bench`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub mod ws;

/// Command-line flags as `--name value` pairs, and bare `--name` switches.
#[derive(Debug, Default)]
pub struct Flags {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// Parses `std::env::args()`. A flag followed by another flag (or nothing) is a switch.
    pub fn from_env() -> Flags {
        Flags::parse(std::env::args().skip(1))
    }

    /// Parses these arguments.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Flags {
        let mut flags = Flags::default();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                fail(&format!("unexpected argument {arg:?}"));
            };
            match args.peek() {
                Some(next) if !next.starts_with("--") => {
                    let value = args.next().unwrap_or_default();
                    flags.values.insert(name.to_owned(), value);
                }
                _ => flags.switches.push(name.to_owned()),
            }
        }
        flags
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed, or `default`; exits on a value that does not parse.
    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.get(name) {
            None => default,
            Some(value) => value
                .parse()
                .unwrap_or_else(|_| fail(&format!("--{name} expects a number, got {value:?}"))),
        }
    }

    /// Whether the switch `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// Prints `message` and exits with status 2.
pub fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force.
/// Children started afterwards inherit it.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            eprintln!("could not raise the fd limit: {err}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}

/// The resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system, all threads) process `pid` has used, in seconds, from
/// `/proc/<pid>/stat` (clock ticks of 1/100 s, Linux's USER_HZ).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / 100.0)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command (which may hold spaces and parentheses): state is the first,
    // utime the 12th and stime the 13th.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// How many TCP data segments the established connections on local port `port` have sent
/// (`data_segs_out` summed over `ss -ti`): on loopback, with `TCP_NODELAY`, one per write
/// that found the connection idle, so it says how many deliveries left in a packet of their
/// own. `None` when `ss` (iproute2) is missing.
pub fn data_segments_out(port: u16) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| sum_data_segs(&String::from_utf8_lossy(&out.stdout)))
}

fn sum_data_segs(ss: &str) -> u64 {
    ss.split_whitespace()
        .filter_map(|field| field.strip_prefix("data_segs_out:"))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// The `q` quantile (0..=1) of sorted samples, by the nearest-rank method.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What one load-generator run measured; the fields that do not apply to its scenario are
/// absent. Printed as one JSON line on the load generator's stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunResult {
    /// `fanout`, `channels` or `connect`.
    pub scenario: String,
    /// Connections asked for.
    pub conns: u64,
    /// Connections that connected and got their subscribe ack.
    pub subscribed: u64,
    /// Connections that failed (connect, handshake or subscribe) or closed early.
    pub conn_errors: u64,
    /// Seconds from the first connect to the last subscribe ack.
    pub connect_secs: f64,
    /// Connections + subscribes per second.
    pub connect_per_sec: f64,
    /// Emits sent (`POST /emit`).
    pub emits: u64,
    /// Emits the server did not answer with 200.
    pub emit_errors: u64,
    /// Deliveries expected (each emit times its channel's subscribers).
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// `expected - received` (negative: duplicates).
    pub loss: i64,
    /// Seconds from the first emit to the last delivery.
    pub deliver_secs: f64,
    /// Deliveries per second over `deliver_secs`.
    pub deliveries_per_sec: f64,
    /// End-to-end latency percentiles and maximum, in microseconds.
    pub p50_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The maximum.
    pub max_us: f64,
    /// Emits sent before the measured ones (`--warmup`), paced like them; their deliveries
    /// count in `expected`, `received` and `loss`, their latency only in the two below.
    pub warmup_emits: u64,
    /// Latency of the warm-up emits' deliveries, median, in microseconds.
    pub warmup_p50_us: f64,
    /// The 99th percentile.
    pub warmup_p99_us: f64,
    /// Server CPU seconds (user + system) over the measured phase: the connects for
    /// `connect`, the emits and deliveries otherwise.
    pub server_cpu_secs: f64,
    /// Load generator CPU seconds over the same phase (near the phase's wall time: the load
    /// generator, not the server, was the limit).
    pub loadgen_cpu_secs: f64,
    /// The load generator's CPU seconds over the measured phase's wall-clock seconds: above
    /// 0.85 its core was the limit as much as the server, and the rates are lower bounds.
    /// With `--awake` the time it spent polling with nothing arriving is left out (it would
    /// have slept).
    pub loadgen_busy: f64,
    /// TCP data segments the servers sent over the measured phase ([`data_segments_out`]).
    pub server_segments: u64,
    /// `server_segments` per delivery received: 1 means every delivery left in a packet of
    /// its own.
    pub segments_per_delivery: f64,
    /// Deliveries per server CPU second (less sensitive to other load on the machine).
    pub deliveries_per_cpu_sec: f64,
    /// Connects + subscribes per server CPU second.
    pub connects_per_cpu_sec: f64,
    /// Server RSS before any connection, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every connection subscribed and idle, settled, KiB.
    pub rss_after_kib: u64,
    /// `(after - before) / subscribed`, KiB.
    pub kib_per_conn: f64,
    /// Servers the subscribers were spread over: 1, or 2 with `--port2` (two nodes through
    /// Redis; the emits go to the first, "local", node; the second is "remote").
    pub nodes: u64,
    /// Two nodes: subscribers on the local node.
    pub local_conns: u64,
    /// Two nodes: subscribers on the remote node.
    pub remote_conns: u64,
    /// Two nodes: deliveries received by the local node's subscribers.
    pub local_received: u64,
    /// Two nodes: deliveries received by the remote node's subscribers.
    pub remote_received: u64,
    /// Two nodes: deliveries expected minus received, local subscribers.
    pub local_loss: i64,
    /// Two nodes: the same, remote subscribers.
    pub remote_loss: i64,
    /// Two nodes: local deliveries per second (first emit to the last local delivery).
    pub local_deliveries_per_sec: f64,
    /// Two nodes: remote deliveries per second (first emit to the last remote delivery).
    pub remote_deliveries_per_sec: f64,
    /// Two nodes: latency of the local subscribers, microseconds.
    pub local_p50_us: f64,
    /// The 99th percentile.
    pub local_p99_us: f64,
    /// The maximum.
    pub local_max_us: f64,
    /// Two nodes: latency of the remote subscribers, microseconds.
    pub remote_p50_us: f64,
    /// The 99th percentile.
    pub remote_p99_us: f64,
    /// The maximum.
    pub remote_max_us: f64,
    /// Two nodes: CPU seconds of the remote node alone (included in `server_cpu_secs`).
    pub remote_server_cpu_secs: f64,
    /// Two nodes: CPU seconds of Redis (included in `server_cpu_secs`).
    pub redis_cpu_secs: f64,
    /// The `presence` scenario's measurements (three nodes through Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceRun>,
    /// The `history` scenario's measurements (the memory of recovery's channel history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryRun>,
}

/// What one run of the load generator's `history` scenario measured: `channels` ×
/// `events_per_channel` emits to channels nobody subscribes to (the fill), then as many again
/// (the replacement: with the history full, each new event takes an old one's place), and the
/// memory of the server (and of Redis, with `--redis-port`) before and after each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryRun {
    /// Channels emitted to (`chats/0` ...).
    pub channels: u64,
    /// Emits per channel in each of the two phases.
    pub events_per_channel: u64,
    /// The most events the server keeps per channel with recovery on (`--kept`, what the
    /// runner gives `bench_server --recovery`); the same for the control, which keeps none.
    pub kept_per_channel: u64,
    /// Emits to `chats/warmup` before the first measurement (the HTTP path's first
    /// allocations out of the way).
    pub warmup_emits: u64,
    /// Mean size of an emit's JSON body (`POST /emit`), bytes.
    pub body_bytes: f64,
    /// Mean size of its `data`, bytes.
    pub data_bytes: f64,
    /// The server's settled RSS before the fill, KiB.
    pub rss_before_kib: u64,
    /// Whether Redis was measured (`--redis-port`).
    pub redis: bool,
    /// Redis's `used_memory` before the fill, bytes.
    pub redis_memory_before: u64,
    /// The first `events_per_channel` emits to each channel.
    pub fill: HistoryPhase,
    /// As many again, to the same channels.
    pub replace: HistoryPhase,
}

/// One phase of the `history` scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryPhase {
    /// Emits answered 200 (with Redis: handed to its queue to Redis).
    pub emits: u64,
    /// Answers other than 200 (with Redis, 503: the node's queue to Redis was full; the event
    /// is not in the history), each followed by the same emit again.
    pub refused: u64,
    /// Emits given up on (refused too many times, or no connection).
    pub errors: u64,
    /// Seconds from the first emit sent to the last one answered 200.
    pub secs: f64,
    /// With Redis: seconds from the first emit sent until Redis had published every one (the
    /// node writes to Redis after answering); `None` when it did not within the wait.
    pub redis_secs: Option<f64>,
    /// CPU seconds of the server over the phase (until Redis had every emit, with Redis).
    pub server_cpu_secs: f64,
    /// CPU seconds of Redis over the phase.
    pub redis_cpu_secs: f64,
    /// The load generator's CPU seconds over the phase's wall time (above 0.85 the emit rate
    /// is a lower bound).
    pub loadgen_busy: f64,
    /// The server's settled RSS after the phase, KiB.
    pub rss_after_kib: u64,
    /// Redis's `used_memory` after the phase, bytes.
    pub redis_memory_after: u64,
    /// Entries in the channels' streams after the phase (`XLEN` of each
    /// `tidings:history:chats/<i>`, summed).
    pub redis_entries_after: u64,
    /// Commands Redis ran over the phase, those scripts ran included (`INFO commandstats`,
    /// our `INFO`s left out).
    pub commands: u64,
    /// `EVALSHA` and `EVAL` calls over the phase.
    pub script_calls: u64,
    /// The commands the node sent (not those its scripts ran): with scripts, `EVALSHA`,
    /// `EVAL` and `SCRIPT`; without, every command.
    pub client_calls: u64,
    /// `total_commands_processed` over the phase, our `INFO`s left out (it counts what scripts
    /// run too).
    pub commands_processed: u64,
    /// The commands by name, most frequent first (`"EVALSHA 100000, XADD 100000, ..."`).
    pub breakdown: String,
}

impl HistoryRun {
    /// Events the history holds once full: `channels × min(events_per_channel,
    /// kept_per_channel)`.
    pub fn retained(&self) -> u64 {
        self.channels * self.events_per_channel.min(self.kept_per_channel)
    }

    /// RSS the fill added, in bytes per retained event.
    pub fn rss_bytes_per_event(&self) -> f64 {
        per(
            (self.fill.rss_after_kib as f64 - self.rss_before_kib as f64) * 1024.0,
            self.retained(),
        )
    }

    /// RSS the replacement added (0 when memory stays flat once the history is full), KiB.
    pub fn rss_growth_replacing_kib(&self) -> f64 {
        self.replace.rss_after_kib as f64 - self.fill.rss_after_kib as f64
    }

    /// Redis `used_memory` the fill added, in bytes per entry its streams hold (per retained
    /// event when they hold none).
    pub fn redis_bytes_per_event(&self) -> f64 {
        let entries = if self.fill.redis_entries_after > 0 {
            self.fill.redis_entries_after
        } else {
            self.retained()
        };
        per(
            self.fill.redis_memory_after as f64 - self.redis_memory_before as f64,
            entries,
        )
    }

    /// Redis `used_memory` the replacement added, bytes.
    pub fn redis_growth_replacing(&self) -> f64 {
        self.replace.redis_memory_after as f64 - self.fill.redis_memory_after as f64
    }
}

impl HistoryPhase {
    /// Emits per second, from the first sent to the last answered.
    pub fn emits_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.emits as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Every command Redis ran per emit, those of scripts included.
    pub fn commands_per_emit(&self) -> f64 {
        per(self.commands as f64, self.emits)
    }

    /// The commands the node sent per emit.
    pub fn client_calls_per_emit(&self) -> f64 {
        per(self.client_calls as f64, self.emits)
    }

    /// `EVALSHA`s per emit.
    pub fn script_calls_per_emit(&self) -> f64 {
        per(self.script_calls as f64, self.emits)
    }

    /// Server CPU microseconds per emit.
    pub fn server_cpu_us_per_emit(&self) -> f64 {
        per(self.server_cpu_secs * 1e6, self.emits)
    }
}

/// `value / count`, 0 for no count.
fn per(value: f64, count: u64) -> f64 {
    if count > 0 { value / count as f64 } else { 0.0 }
}

/// What one run of the load generator's `presence` scenario measured: members of one channel
/// spread over three nodes through Redis (node A `--port`, B `--port2`, C `--port3`). Times are
/// from the start of the phase; `None` where the awaited thing did not happen in time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceRun {
    /// The channel the members joined.
    pub channel: String,
    /// A control run: the channel tracks no presence, only the ramp-up, the rest and the
    /// memory are measured (for the memory a presence channel adds).
    pub control: bool,
    /// Members subscribed on A, B and C after the ramp-up.
    pub members_per_node: [u64; 3],
    /// Members whose connect, handshake or subscribe failed in the ramp-up.
    pub failed_setups: u64,
    /// The first such failure.
    pub first_error: String,
    /// Connections the servers closed during the ramp-up.
    pub closed_during_ramp: u64,
    /// Ramp-up: seconds from the first connect to the last subscribe ack.
    pub ramp_ack_secs: f64,
    /// Ramp-up: seconds from the first connect until every node counts every member
    /// (`GET /presence`, polled every 250 ms once every ack is in).
    pub ramp_converged_secs: Option<f64>,
    /// Ramp-up: seconds from the first connect to the last presence frame received (once
    /// none came for 2 s).
    pub ramp_quiet_secs: f64,
    /// Ramp-up: CPU seconds of the three nodes together.
    pub ramp_node_cpu_secs: f64,
    /// Ramp-up: CPU seconds of Redis.
    pub ramp_redis_cpu_secs: f64,
    /// `presence_diff` frames the members received by the end of the ramp-up.
    pub ramp_diffs: u64,
    /// `presence_diff` frames the members received, ramp-up included.
    pub diffs_received: u64,
    /// `presence_state` frames the members received.
    pub states_received: u64,
    /// Of those, the ones that came before the member's subscribe ack.
    pub states_before_ack: u64,
    /// MiB of presence frames (diffs and states) the members received.
    pub presence_mib: f64,
    /// Seconds of the measurement at rest (every member connected, nothing happening).
    pub rest_secs: f64,
    /// Redis commands per second at rest (`total_commands_processed`, our own `INFO` left
    /// out).
    pub rest_commands_per_sec: f64,
    /// The commands at rest by name (`INFO commandstats`), most frequent first.
    pub rest_commands: String,
    /// CPU of the three nodes together at rest, in cores (1.0: one core busy).
    pub rest_node_cpu: f64,
    /// CPU of Redis at rest, in cores.
    pub rest_redis_cpu: f64,
    /// RSS of A, B and C before any connection, KiB.
    pub rss_before_kib: [u64; 3],
    /// RSS of A, B and C with every member in, settled after the rest, KiB.
    pub rss_after_kib: [u64; 3],
    /// Redis `used_memory` before any connection, bytes.
    pub redis_memory_before: u64,
    /// Redis `used_memory` with every member in, bytes.
    pub redis_memory_after: u64,
    /// Records in the channel's presence hash with every member in (`HLEN`).
    pub redis_records: u64,
    /// Join convergence: ms from an extra member's subscribe on A to the `presence_diff`
    /// naming it at a member of A, one sample per repetition.
    pub join_local_ms: Vec<f64>,
    /// The same at a member of B and of C (two samples per repetition).
    pub join_remote_ms: Vec<f64>,
    /// ms from that member's disconnect to the diff naming it as a leave at a member of A.
    pub leave_local_ms: Vec<f64>,
    /// The same at B and C.
    pub leave_remote_ms: Vec<f64>,
    /// Join and leave diffs that did not arrive within 15 s.
    pub join_misses: u64,
    /// Churn: members that left and joined again.
    pub churn_members: u64,
    /// Churn: of those, the ones whose leave and join were both acked.
    pub churn_rejoined: u64,
    /// Churn: presence changes written to Redis (its `PUBLISH`es), the leaves and joins asked
    /// for and those of connections closed meanwhile.
    pub churn_changes: u64,
    /// Churn: connections the servers closed during it (slow consumers ...).
    pub closed_during_churn: u64,
    /// Churn: seconds over which the leaves and rejoins were sent.
    pub churn_send_secs: f64,
    /// Churn: seconds from the first leave until every node counts every member again.
    pub churn_secs: Option<f64>,
    /// Redis commands per second over `churn_secs`.
    pub churn_commands_per_sec: f64,
    /// Redis commands per presence change (a leave or a join: `churn_changes`) over the
    /// churn, the rate at rest taken out.
    pub churn_commands_per_change: f64,
    /// The commands during the churn by name, most frequent first.
    pub churn_commands: String,
    /// Churn: CPU seconds of the three nodes together.
    pub churn_node_cpu_secs: f64,
    /// Node C was killed.
    pub killed: bool,
    /// Node death: members on C when it was killed.
    pub death_members: u64,
    /// Node death: seconds from C's SIGKILL until A and B each count the members of A and B
    /// only (`GET /presence` polled every 10 ms).
    pub death_count_secs: [Option<f64>; 2],
    /// Node death: seconds until a member of A and of B got the `presence_diff` with C's
    /// members as leaves.
    pub death_diff_secs: [Option<f64>; 2],
    /// Node death: seconds until the channel's hash in Redis held only A's and B's records.
    pub death_redis_secs: Option<f64>,
    /// Connections closed by the servers, C's at its death left out (slow consumers ...).
    pub closed_early: u64,
    /// The close frames the servers sent, with how many of each (`"<n> × <code> <reason>"`).
    pub close_frames: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.5), Some(50));
        assert_eq!(percentile(&samples, 0.99), Some(99));
        assert_eq!(percentile(&samples, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn flags_and_switches() {
        let flags = Flags::parse(
            ["--port", "3000", "--quick", "--rounds", "2"]
                .into_iter()
                .map(String::from),
        );
        assert_eq!(flags.num("port", 0u16), 3000);
        assert_eq!(flags.num("rounds", 3u32), 2);
        assert_eq!(flags.num("absent", 9u32), 9);
        assert!(flags.has("quick"));
        assert!(!flags.has("port"));
    }

    #[test]
    fn vm_rss_line() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss(status), Some(2048));
        assert_eq!(rss_kib(std::process::id()).map(|k| k > 0), Some(true));
    }

    #[test]
    fn data_segments_summed_over_connections() {
        let ss = "0 0 127.0.0.1:3000 127.0.0.1:5000\n\t cubic segs_out:9 data_segs_out:7 x\n\
                  0 0 127.0.0.1:3000 127.0.0.1:5001\n\t cubic data_segs_out:5 data_segs_in:3\n";
        assert_eq!(sum_data_segs(ss), 12);
        assert_eq!(sum_data_segs(""), 0);
    }

    #[test]
    fn history_per_retained_event() {
        let run = HistoryRun {
            channels: 100,
            events_per_channel: 2000,
            kept_per_channel: 1000,
            rss_before_kib: 10_000,
            redis_memory_before: 1_000_000,
            fill: HistoryPhase {
                emits: 200_000,
                secs: 4.0,
                rss_after_kib: 20_000,
                redis_memory_after: 21_000_000,
                redis_entries_after: 100_000,
                commands: 1_800_000,
                script_calls: 200_000,
                client_calls: 200_001,
                ..HistoryPhase::default()
            },
            replace: HistoryPhase {
                rss_after_kib: 20_512,
                redis_memory_after: 21_100_000,
                ..HistoryPhase::default()
            },
            ..HistoryRun::default()
        };
        assert_eq!(run.retained(), 100_000);
        assert!((run.rss_bytes_per_event() - 102.4).abs() < 1e-9);
        assert!((run.rss_growth_replacing_kib() - 512.0).abs() < 1e-9);
        assert!((run.redis_bytes_per_event() - 200.0).abs() < 1e-9);
        assert!((run.redis_growth_replacing() - 100_000.0).abs() < 1e-9);
        assert!((run.fill.emits_per_sec() - 50_000.0).abs() < 1e-9);
        assert!((run.fill.commands_per_emit() - 9.0).abs() < 1e-9);
        assert!((run.fill.script_calls_per_emit() - 1.0).abs() < 1e-9);
        assert_eq!(HistoryPhase::default().commands_per_emit(), 0.0);
    }

    #[test]
    fn cpu_ticks_after_the_command() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert!(cpu_secs(std::process::id()).is_some());
    }
}

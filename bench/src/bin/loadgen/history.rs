//! The `history` scenario: what connection state recovery's channel history costs in memory,
//! per event it keeps, in the server (`bench_server --recovery N`) and, with `--redis-port`,
//! in Redis (`bench_server --recovery N --redis URL`: one stream per channel,
//! `tidings:history:<channel>`, written by a script per emit), and how many Redis commands an
//! emit costs there. No subscribers: the history keeps every event, subscribed or not. In
//! order:
//!
//! 1. Warm-up: `--warmup` emits (default 1000) to `chats/warmup`, so the HTTP path's first
//!    allocations are not counted as history.
//! 2. Before: the server's settled RSS (`--pid`), Redis's `INFO` (`used_memory`, commands).
//! 3. Fill: `--events` emits (default 1000) to each of `--channels` channels (default 100,
//!    `chats/0` ...), in turns over the channels, from `--emitters` keep-alive HTTP
//!    connections at once (default 4), each sending its next emit when the previous one is
//!    answered (the bodies `Emitter::emit` sends: a `tick` with the send time and a sequence
//!    number). With Redis, the node writes to Redis after answering: the phase ends when Redis
//!    has published every emit (its `PUBLISH` count, by the script or by the node). An emit
//!    the node refuses (with Redis, 503 when its queue to Redis is full: the event is then in
//!    no history) is counted and sent again a millisecond later, so the history gets every
//!    one. Then the server's settled RSS, Redis's `used_memory` and the streams' lengths
//!    (`XLEN`).
//! 4. Replace: as many emits again to the same channels. With `--events` at least the server's
//!    limit (`--kept`, default 1000, what the runner gives `--recovery`), the history is full:
//!    each new event takes an old one's place, and memory should stay where it was.
//!
//! Run it against the same server without recovery too (the control): the history's RSS is
//! the difference. Redis's commands per emit are counted from `INFO commandstats`, which
//! counts the commands a script runs as well as the script's `EVALSHA`; our `INFO`s are left
//! out. `--redis-prefix` (default `tidings:`) names the streams; `--redis-pid` gives Redis's
//! CPU time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tidings_bench::{Flags, HistoryPhase, HistoryRun, RunResult, cpu_secs, fail};

use super::resp::{Redis, Snapshot};
use super::{Emitter, emit_body, settled_rss};

/// How long Redis may stay without publishing anything more before the phase gives up waiting
/// for the rest.
const REDIS_QUIET: Duration = Duration::from_secs(5);
/// How often Redis's counters are read while waiting.
const REDIS_POLL: Duration = Duration::from_millis(20);

/// The scenario's flags.
pub(crate) struct Config {
    addr: SocketAddr,
    pid: Option<u32>,
    redis: Option<SocketAddr>,
    redis_pid: Option<u32>,
    redis_prefix: String,
    channels: u64,
    events: u64,
    kept: u64,
    emitters: u64,
    warmup: u64,
}

impl Config {
    pub(crate) fn from_flags(flags: &Flags) -> Config {
        let pid = |name: &str| flags.get(name).map(|_| flags.num::<u32>(name, 0));
        let config = Config {
            addr: SocketAddr::from(([127, 0, 0, 1], flags.num("port", 3000))),
            pid: pid("pid"),
            redis: flags
                .get("redis-port")
                .map(|_| SocketAddr::from(([127, 0, 0, 1], flags.num("redis-port", 0u16)))),
            redis_pid: pid("redis-pid"),
            redis_prefix: flags.get("redis-prefix").unwrap_or("tidings:").to_owned(),
            channels: flags.num("channels", 100),
            events: flags.num("events", 1000),
            kept: flags.num("kept", 1000),
            emitters: flags.num::<u64>("emitters", 4).max(1),
            warmup: flags.num("warmup", 1000),
        };
        if config.channels == 0 || config.events == 0 {
            fail("the history scenario needs --channels and --events above 0");
        }
        config
    }
}

/// One emit per channel in turn, `events` times: `chats/0`, `chats/1`, ..., `chats/0`, ...
fn emits(channels: u64, events: u64) -> Vec<String> {
    (0..events)
        .flat_map(|_| (0..channels).map(|c| format!("chats/{c}")))
        .collect()
}

/// Redis's commands between two snapshots by name, our `INFO`s left out.
fn commands_between(before: &Snapshot, after: &Snapshot) -> Vec<(String, u64)> {
    let mut by_name: Vec<(String, u64)> = after
        .commands
        .iter()
        .filter(|(name, _)| name.as_str() != "INFO")
        .map(|(name, calls)| {
            let was = before.commands.get(name).copied().unwrap_or(0);
            (name.clone(), calls.saturating_sub(was))
        })
        .filter(|(_, delta)| *delta > 0)
        .collect();
    by_name.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_name
}

/// Fills in a phase's command counts from Redis's snapshots around it.
fn count_commands(before: &Snapshot, after: &Snapshot, out: &mut HistoryPhase) {
    let by_name = commands_between(before, after);
    let calls = |name: &str| {
        by_name
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, calls)| *calls)
    };
    out.commands = by_name.iter().map(|(_, calls)| calls).sum();
    out.script_calls = calls("EVALSHA") + calls("EVAL");
    out.client_calls = if out.script_calls > 0 {
        out.script_calls + calls("SCRIPT")
    } else {
        out.commands
    };
    let infos = after
        .commands
        .get("INFO")
        .copied()
        .unwrap_or(0)
        .saturating_sub(before.commands.get("INFO").copied().unwrap_or(0));
    out.commands_processed = after
        .total
        .saturating_sub(before.total)
        .saturating_sub(infos);
    out.breakdown = by_name
        .iter()
        .map(|(name, calls)| format!("{name} {calls}"))
        .collect::<Vec<_>>()
        .join(", ");
}

/// `PUBLISH`es Redis has run since `before`.
fn published_since(before: &Snapshot, now: &Snapshot) -> u64 {
    let of = |s: &Snapshot| s.commands.get("PUBLISH").copied().unwrap_or(0);
    of(now).saturating_sub(of(before))
}

/// Polls Redis until it has published `emits` more times than at `before`, or published
/// nothing more for [`REDIS_QUIET`]. The last snapshot, and whether every emit was published.
async fn await_published(
    redis: &mut Redis,
    redis_pid: Option<u32>,
    before: &Snapshot,
    emits: u64,
) -> (Snapshot, bool) {
    let mut last = 0;
    let mut moved = Instant::now();
    loop {
        let now = redis.snapshot(redis_pid).await.unwrap_or_else(|e| fail(&e));
        let published = published_since(before, &now);
        if published >= emits {
            return (now, true);
        }
        if published != last {
            last = published;
            moved = Instant::now();
        } else if moved.elapsed() >= REDIS_QUIET {
            eprintln!("loadgen: Redis published {published} of {emits} emits; not waiting longer");
            return (now, false);
        }
        tokio::time::sleep(REDIS_POLL).await;
    }
}

/// How many times one emit is sent again after the node refused it.
const RETRIES: u32 = 10_000;

/// What posting a phase's emits came to.
#[derive(Default)]
struct Posted {
    /// Emits answered 200.
    accepted: u64,
    /// Answers other than 200 (with Redis, 503: the node's queue to Redis was full), each
    /// followed by the same emit again.
    refused: u64,
    /// Emits given up on (refused [`RETRIES`] times, or no connection).
    failed: u64,
}

/// Posts `emits` (channel names) from `emitters` keep-alive connections at once, each sending
/// its next emit when the previous one is answered, and an emit the node refused again after
/// a millisecond (with Redis the node refuses what its queue to Redis has no room for: the
/// event reached this node's subscribers, none here, and not the history). The send times in
/// the bodies count from `t0`, the sequence numbers from 0.
async fn post(config: &Config, t0: Instant, emits: &[String]) -> Posted {
    let lanes = (0..config.emitters as usize).map(|lane| async move {
        let mut posted = Posted::default();
        let mut emitter = Emitter::connect(config.addr).await.ok();
        for (seq, channel) in emits
            .iter()
            .enumerate()
            .skip(lane)
            .step_by(config.emitters as usize)
        {
            let mut tries = 0;
            loop {
                let answer = match emitter.as_mut() {
                    Some(emitter) => emitter.emit(t0, channel, seq as u64).await,
                    None => Err(std::io::ErrorKind::NotConnected.into()),
                };
                match answer {
                    Ok(200) => {
                        posted.accepted += 1;
                        break;
                    }
                    Ok(_) => posted.refused += 1,
                    Err(_) => emitter = Emitter::connect(config.addr).await.ok(),
                }
                tries += 1;
                if tries > RETRIES {
                    posted.failed += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        posted
    });
    futures_util::future::join_all(lanes)
        .await
        .into_iter()
        .fold(Posted::default(), |total, lane| Posted {
            accepted: total.accepted + lane.accepted,
            refused: total.refused + lane.refused,
            failed: total.failed + lane.failed,
        })
}

/// Entries in the streams of the channels, summed.
async fn stream_entries(config: &Config, redis: &mut Redis) -> u64 {
    let mut total = 0;
    for c in 0..config.channels {
        let key = format!("{}history:chats/{c}", config.redis_prefix);
        total += redis.xlen(&key).await.unwrap_or_else(|e| fail(&e));
    }
    total
}

/// One phase: the emits, Redis's publications of them, then the memory.
async fn phase(config: &Config, redis: &mut Option<Redis>, name: &str) -> HistoryPhase {
    let mut out = HistoryPhase::default();
    let before = match redis {
        Some(redis) => Some(
            redis
                .snapshot(config.redis_pid)
                .await
                .unwrap_or_else(|e| fail(&e)),
        ),
        None => None,
    };
    let cpu_before = config.pid.and_then(cpu_secs);
    let own_before = cpu_secs(std::process::id());
    let emits = emits(config.channels, config.events);
    let start = Instant::now();
    let posted = post(config, start, &emits).await;
    out.secs = start.elapsed().as_secs_f64();
    out.emits = posted.accepted;
    out.refused = posted.refused;
    out.errors = posted.failed;
    if let (Some(redis), Some(before)) = (redis.as_mut(), before.as_ref()) {
        let (after, all) = await_published(redis, config.redis_pid, before, posted.accepted).await;
        if all {
            out.redis_secs = Some(start.elapsed().as_secs_f64());
        }
        out.redis_cpu_secs = after.cpu_since(before);
        count_commands(before, &after, &mut out);
    }
    if let (Some(before), Some(now)) = (own_before, cpu_secs(std::process::id())) {
        out.loadgen_busy = (now - before) / start.elapsed().as_secs_f64().max(1e-9);
    }
    if let (Some(pid), Some(cpu_before)) = (config.pid, cpu_before) {
        out.server_cpu_secs = cpu_secs(pid).map_or(0.0, |now| now - cpu_before);
    }
    if let Some(pid) = config.pid {
        out.rss_after_kib = settled_rss(pid).await;
    }
    if let Some(redis) = redis.as_mut() {
        out.redis_memory_after = redis
            .snapshot(config.redis_pid)
            .await
            .unwrap_or_else(|e| fail(&e))
            .used_memory;
        out.redis_entries_after = stream_entries(config, redis).await;
    }
    eprintln!(
        "loadgen: {name}: {} emits ({} refused and sent again, {} given up) in {:.2} s \
         ({:.0}/s){}; RSS {} KiB{}",
        out.emits,
        out.refused,
        out.errors,
        out.secs,
        out.emits_per_sec(),
        out.redis_secs
            .map(|s| format!(", all through Redis in {s:.2} s"))
            .unwrap_or_default(),
        out.rss_after_kib,
        if redis.is_some() {
            format!(
                "; Redis used_memory {} B, {} stream entries; commands {} ({:.2}/emit), node's \
                 {} ({:.2}/emit): {}",
                out.redis_memory_after,
                out.redis_entries_after,
                out.commands,
                out.commands_per_emit(),
                out.client_calls,
                out.client_calls_per_emit(),
                out.breakdown
            )
        } else {
            String::new()
        }
    );
    out
}

pub(crate) async fn run(config: Config) -> RunResult {
    let mut redis = match config.redis {
        Some(addr) => Some(Redis::connect(addr).await.unwrap_or_else(|e| fail(&e))),
        None => None,
    };
    let mut out = HistoryRun {
        channels: config.channels,
        events_per_channel: config.events,
        kept_per_channel: config.kept,
        warmup_emits: config.warmup,
        redis: redis.is_some(),
        ..HistoryRun::default()
    };

    // 1. Warm-up.
    if config.warmup > 0 {
        let warmup = vec!["chats/warmup".to_owned(); config.warmup as usize];
        let posted = post(&config, Instant::now(), &warmup).await;
        if posted.failed > 0 {
            eprintln!("loadgen: warm-up: {} emits failed", posted.failed);
        }
    }

    // 2. Before.
    if let Some(pid) = config.pid {
        out.rss_before_kib = settled_rss(pid).await;
    }
    if let Some(redis) = redis.as_mut() {
        out.redis_memory_before = redis
            .snapshot(config.redis_pid)
            .await
            .unwrap_or_else(|e| fail(&e))
            .used_memory;
    }
    eprintln!(
        "loadgen: before: RSS {} KiB, Redis used_memory {} B",
        out.rss_before_kib, out.redis_memory_before
    );

    // 3. Fill, 4. replace.
    out.fill = phase(&config, &mut redis, "fill").await;
    // The size of the bodies, with the send time of the middle of the fill (the digits of `t`
    // and `s` vary a little).
    let mid_ns = (out.fill.secs * 5e8) as u64;
    let (mut body, mut data) = (0usize, 0usize);
    for (seq, channel) in emits(config.channels, config.events).iter().enumerate() {
        let whole = emit_body(channel, mid_ns, seq as u64);
        data += whole.len() - whole.find("\"data\":").map_or(0, |at| at + 7) - 1;
        body += whole.len();
    }
    let count = (config.channels * config.events) as f64;
    out.body_bytes = body as f64 / count;
    out.data_bytes = data as f64 / count;
    out.replace = phase(&config, &mut redis, "replace").await;

    eprintln!(
        "loadgen: history of {} events ({} channels × min({}, {})), emit bodies of {:.1} bytes: \
         RSS {:.1} bytes per event, {:+.0} KiB while replacing{}",
        out.retained(),
        out.channels,
        out.events_per_channel,
        out.kept_per_channel,
        out.body_bytes,
        out.rss_bytes_per_event(),
        out.rss_growth_replacing_kib(),
        if out.redis {
            format!(
                "; Redis {:.1} bytes per entry, {:+.0} bytes while replacing",
                out.redis_bytes_per_event(),
                out.redis_growth_replacing()
            )
        } else {
            String::new()
        }
    );
    RunResult {
        scenario: "history".to_owned(),
        emits: out.fill.emits + out.replace.emits,
        emit_errors: out.fill.errors + out.replace.errors,
        server_cpu_secs: out.fill.server_cpu_secs + out.replace.server_cpu_secs,
        redis_cpu_secs: out.fill.redis_cpu_secs + out.replace.redis_cpu_secs,
        rss_before_kib: out.rss_before_kib,
        rss_after_kib: out.replace.rss_after_kib,
        loadgen_busy: out.fill.loadgen_busy.max(out.replace.loadgen_busy),
        nodes: 1,
        history: Some(out),
        ..RunResult::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use tidings_bench::HistoryPhase;

    use super::{Snapshot, count_commands, emits, published_since};

    fn snapshot(total: u64, commands: &[(&str, u64)]) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            total,
            commands: commands
                .iter()
                .map(|(name, calls)| ((*name).to_owned(), *calls))
                .collect::<BTreeMap<_, _>>(),
            used_memory: 0,
            cpu: None,
        }
    }

    #[test]
    fn emits_go_to_each_channel_in_turn() {
        assert_eq!(
            emits(3, 2),
            [
                "chats/0", "chats/1", "chats/2", "chats/0", "chats/1", "chats/2"
            ]
        );
    }

    #[test]
    fn commands_of_scripts_and_of_the_node() {
        let before = snapshot(10, &[("INFO", 2), ("PUBLISH", 5)]);
        let after = snapshot(
            10 + 3 + 10 * 9 + 1,
            &[
                ("INFO", 5),
                ("PUBLISH", 15),
                ("EVALSHA", 10),
                ("SCRIPT", 1),
                ("XADD", 10),
                ("XLEN", 10),
                ("GET", 10),
                ("SET", 11),
                ("TIME", 10),
                ("PEXPIRE", 10),
                ("XRANGE", 4),
                ("XDEL", 4),
            ],
        );
        assert_eq!(published_since(&before, &after), 10);
        let mut phase = HistoryPhase::default();
        count_commands(&before, &after, &mut phase);
        assert_eq!(phase.script_calls, 10);
        assert_eq!(phase.client_calls, 11);
        assert_eq!(phase.commands, 10 + 1 + 10 * 6 + 11 + 8);
        assert_eq!(phase.commands_processed, 10 * 9 + 1);
        assert!(phase.breakdown.starts_with("SET 11, EVALSHA 10, GET 10, "));
        // Without scripts every command is the node's.
        let plain = snapshot(25, &[("INFO", 3), ("PUBLISH", 20)]);
        let mut phase = HistoryPhase::default();
        count_commands(&before, &plain, &mut phase);
        assert_eq!((phase.commands, phase.client_calls), (15, 15));
    }
}

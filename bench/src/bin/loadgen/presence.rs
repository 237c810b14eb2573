//! The `presence` scenario: `--conns` members of one presence channel (`--channel`, default
//! `presence/0`; `examples/bench_server.rs` tracks every member of `presence/...` under its
//! member id) spread evenly over three nodes of one cluster through Redis: A (`--port`), B
//! (`--port2`) and C (`--port3`), whose PIDs are `--pid`, `--pid2` and `--pid3`; Redis at
//! `--redis-port` (PID `--redis-pid`). Socket.IO only. In order:
//!
//! 1. RSS of each node and Redis's `used_memory` before any connection.
//! 2. Ramp-up: the members connect (`--concurrency` at once) and join; member `i` goes to
//!    node `i mod 3`. Each join sends a `presence_diff` to every member already in, and the
//!    joining member a `presence_state` of everyone (O(N²) frames and bytes over the ramp-up):
//!    the members read them and look at nothing but their first bytes. Reported: the last
//!    ack, when every node's `GET /presence` counts every member, when the last presence
//!    frame arrived.
//! 3. Rest (`--rest-secs`, default 10): nothing happens; Redis's `total_commands_processed`
//!    and `INFO commandstats` before and after, the nodes' and Redis's CPU time.
//! 4. Memory: each node's settled RSS, Redis's `used_memory`, the hash's `HLEN`.
//! 5. Join convergence, `--joins` times (default 10): an extra member connects to A and
//!    subscribes; one member of each node (a watcher, never churned) looks for the
//!    `presence_diff` naming it; then it disconnects and the watchers look for its leave.
//! 6. Churn: `--churn` members (default 1000, spread over the nodes) each leave
//!    (`unsubscribe`) and join again (`subscribe` once the leave is acked), started evenly over
//!    `--churn-secs` (default 10); Redis's commands from the first leave until every node
//!    counts every member again.
//! 7. Node death (unless `--no-kill`): C is sent SIGKILL (`kill -KILL <--pid3>`, a process the
//!    runner started); A and B are polled every 10 ms until they count only A's and B's
//!    members, the watchers of A and B wait for the diff with C's members as leaves, and
//!    Redis's hash is polled until it holds only A's and B's records.
//!
//! With `--control` (the channel then is an ordinary one, `chats/0`), only 1 to 4 run: the
//! memory the same members take without presence, and Redis's commands at rest without it.
//! `--memory-only` runs only 1 to 4 in the presence channel; `--weights a,b,c` spreads the
//! members (after one watcher on each node) over A, B and C in that proportion (default
//! `1,1,1`; `1,1,0` leaves C one member and every record: the memory of records alone).
//! `--hold-secs N` keeps the connections open N seconds at the end.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use memchr::memmem::Finder;
use tidings_bench::{Flags, PresenceRun, RunResult, cpu_secs, fail, percentile};
use tokio::sync::{Semaphore, mpsc};

use super::resp::Redis;

use super::{Conn, Emitter, Protocol, READ_BUFFER, contains, ns_since, number_after, settled_rss};

/// How long one member may take to connect, handshake and get its subscribe ack (long: the
/// nodes are busy with the diffs of the joins before it).
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the whole ramp-up may take.
const RAMP_TIMEOUT: Duration = Duration::from_secs(1200);
/// How long a diff may take to reach the watchers, and the nodes to converge.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The scenario's flags.
pub(crate) struct Config {
    nodes: [SocketAddr; 3],
    pids: [Option<u32>; 3],
    redis: SocketAddr,
    redis_pid: Option<u32>,
    channel: String,
    members: u64,
    concurrency: usize,
    control: bool,
    /// Only the ramp-up, the rest and the memory (`--control`, `--memory-only`).
    memory_only: bool,
    /// How many of every `sum(weights)` members (after the three watchers) go to each node.
    weights: [u64; 3],
    joins: u64,
    rest: Duration,
    churn: u64,
    churn_over: Duration,
    kill: bool,
    /// How long to keep the connections open at the end (`--hold-secs`).
    hold: Duration,
}

impl Config {
    pub(crate) fn from_flags(flags: &Flags) -> Config {
        let addr = |name: &str| {
            let port: u16 = flags.num(name, 0);
            if port == 0 {
                fail(&format!("the presence scenario needs --{name}"));
            }
            SocketAddr::from(([127, 0, 0, 1], port))
        };
        let pid = |name: &str| flags.get(name).map(|_| flags.num::<u32>(name, 0));
        let control = flags.has("control");
        Config {
            nodes: [addr("port"), addr("port2"), addr("port3")],
            pids: [pid("pid"), pid("pid2"), pid("pid3")],
            redis: addr("redis-port"),
            redis_pid: pid("redis-pid"),
            channel: flags
                .get("channel")
                .unwrap_or(if control { "chats/0" } else { "presence/0" })
                .to_owned(),
            members: flags.num("conns", 10_000),
            concurrency: flags.num("concurrency", 256),
            control,
            memory_only: control || flags.has("memory-only"),
            weights: weights(flags.get("weights").unwrap_or("1,1,1")),
            joins: flags.num("joins", 10),
            rest: Duration::from_secs_f64(flags.num("rest-secs", 10.0)),
            churn: flags.num("churn", 1000),
            churn_over: Duration::from_secs_f64(flags.num("churn-secs", 10.0)),
            kill: !flags.has("no-kill"),
            hold: Duration::from_secs_f64(flags.num("hold-secs", 0.0)),
        }
    }

    pub(crate) fn members(&self) -> u64 {
        self.members
    }

    /// The node of member `i`: 0, 1, 2 for the watchers, then by the weights, in turn.
    fn node_of(&self, i: u64) -> usize {
        if i < 3 {
            return i as usize;
        }
        let total: u64 = self.weights.iter().sum();
        let mut slot = (i - 3) % total;
        for (node, weight) in self.weights.iter().enumerate() {
            if slot < *weight {
                return node;
            }
            slot -= weight;
        }
        0
    }
}

/// `--weights a,b,c`: three numbers, not all zero.
fn weights(text: &str) -> [u64; 3] {
    let parsed: Vec<u64> = text
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    match parsed[..] {
        [a, b, c] if a + b + c > 0 => [a, b, c],
        _ => fail(&format!(
            "--weights expects three numbers such as 1,1,0, got {text:?}"
        )),
    }
}

/// A string the watchers look for in the diffs they get, and when each node's watcher saw it.
struct Watch {
    needle: Vec<u8>,
    seen_ns: [Option<u64>; 3],
}

/// What every member task reports into (one thread, so plain cells).
struct Shared {
    t0: Instant,
    /// `42["<channel>/presence_diff",` and `42["<channel>/presence_state",`.
    diff_prefix: Vec<u8>,
    state_prefix: Vec<u8>,
    /// Members subscribed, per node.
    subscribed: [Cell<u64>; 3],
    failed: Cell<u64>,
    first_error: RefCell<Option<String>>,
    /// The close frames the servers sent (code and reason), by how often.
    close_reasons: RefCell<BTreeMap<String, u64>>,
    /// Connections ended by the server (or its death), per node.
    closed: [Cell<u64>; 3],
    /// Members in the channel now, per node (joined, not left, connection open).
    in_channel: [Cell<u64>; 3],
    last_ack_ns: Cell<u64>,
    diffs: Cell<u64>,
    states: Cell<u64>,
    /// `presence_state`s that came before the subscribe ack.
    states_before_ack: Cell<u64>,
    presence_bytes: Cell<u64>,
    last_presence_ns: Cell<u64>,
    watch: RefCell<Option<Watch>>,
    /// Churn: members whose leave and join again were acked, and refusals.
    rejoined: Cell<u64>,
    churn_errors: Cell<u64>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        ns_since(self.t0)
    }

    fn error(&self, error: String) {
        self.failed.set(self.failed.get() + 1);
        self.first_error.borrow_mut().get_or_insert(error);
    }

    /// One text frame at a member of `node`; only a watcher's diffs are searched.
    fn frame(&self, node: usize, watcher: bool, text: &[u8]) {
        let diff = text.starts_with(&self.diff_prefix);
        if diff {
            self.diffs.set(self.diffs.get() + 1);
        } else if text.starts_with(&self.state_prefix) {
            self.states.set(self.states.get() + 1);
        } else {
            return;
        }
        self.presence_bytes
            .set(self.presence_bytes.get() + text.len() as u64);
        let now = self.now_ns();
        self.last_presence_ns.set(now);
        if diff
            && watcher
            && let Some(watch) = self.watch.borrow_mut().as_mut()
            && watch.seen_ns[node].is_none()
            && contains(text, &watch.needle)
        {
            watch.seen_ns[node] = Some(now);
        }
    }

    /// Starts watching for `needle` in the watchers' diffs.
    fn watch(&self, needle: String) {
        self.watch.replace(Some(Watch {
            needle: needle.into_bytes(),
            seen_ns: [None; 3],
        }));
    }

    /// When each of `nodes`' watchers saw the needle, waiting up to [`CONVERGE_TIMEOUT`].
    async fn seen(&self, nodes: &[usize]) -> [Option<u64>; 3] {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let seen = self
                .watch
                .borrow()
                .as_ref()
                .map_or([None; 3], |w| w.seen_ns);
            if nodes.iter().all(|&n| seen[n].is_some()) || Instant::now() >= deadline {
                self.watch.replace(None);
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn members(&self) -> u64 {
        self.subscribed.iter().map(Cell::get).sum()
    }

    fn in_channel(&self) -> u64 {
        self.in_channel.iter().map(Cell::get).sum()
    }

    fn closed(&self) -> u64 {
        self.closed.iter().map(Cell::get).sum()
    }

    fn add(cell: &Cell<u64>, delta: i64) {
        cell.set(cell.get().saturating_add_signed(delta));
    }
}

/// What a member is told to do.
enum Command {
    /// Leave the channel, and join it again once the leave is acked.
    Rejoin,
}

/// Opens a Socket.IO connection to the default namespace: the connection and its socket id
/// (the member id tidings tracks it under).
async fn open(addr: SocketAddr) -> Result<(Conn, String), String> {
    let mut conn = Conn::open(addr, Protocol::SocketIo.path()).await?;
    conn.read_until("open", |t| t.starts_with('0')).await?;
    conn.send_text("40").await?;
    let connect = conn
        .read_until("connect", |t| t.starts_with("40") || t.starts_with("44"))
        .await?;
    let sid = connect
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|_| connect.starts_with("40"))
        .ok_or_else(|| format!("connect refused: {connect}"))?
        .to_owned();
    Ok((conn, sid))
}

/// `subscribe` with ack id 0, and its ack; the presence frames that come before the ack are
/// counted (at a member of `node`), and so are `presence_state`s among them.
async fn subscribe(
    conn: &mut Conn,
    channel: &str,
    shared: &Shared,
    node: usize,
) -> Result<(), String> {
    conn.send_text(&subscribe_packet(0, "subscribe", channel))
        .await?;
    let ack = conn
        .read_until("subscribe ack", |t| {
            if t.as_bytes().starts_with(&shared.state_prefix) {
                shared
                    .states_before_ack
                    .set(shared.states_before_ack.get() + 1);
            }
            shared.frame(node, false, t.as_bytes());
            t.starts_with("430")
        })
        .await?;
    if !ack.contains("\"ok\"") {
        return Err(format!("subscribe refused: {ack}"));
    }
    Ok(())
}

fn subscribe_packet(ack: u8, event: &str, channel: &str) -> String {
    format!("42{ack}[\"{event}\",{}]", serde_json::json!(channel))
}

/// One member: connects, joins, then reads (and counts) what comes, answers pings, and
/// leaves and joins again when told to.
async fn member(
    shared: Rc<Shared>,
    node: usize,
    addr: SocketAddr,
    channel: Rc<str>,
    limit: Rc<Semaphore>,
    watcher: bool,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let permit = limit.acquire().await;
    let setup = tokio::time::timeout(SETUP_TIMEOUT, async {
        let (mut conn, _) = open(addr).await?;
        subscribe(&mut conn, &channel, &shared, node).await?;
        Ok::<_, String>(conn)
    })
    .await;
    drop(permit);
    let mut conn = match setup {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => return shared.error(error),
        Err(_) => return shared.error("setup timed out".to_owned()),
    };
    shared.subscribed[node].set(shared.subscribed[node].get() + 1);
    Shared::add(&shared.in_channel[node], 1);
    shared.last_ack_ns.set(shared.now_ns());
    // Churn: 0 nothing under way, 1 the leave sent (ack id 1), 2 the join sent (ack id 2).
    let mut rejoin = 0u8;
    let mut joined = true;
    let ended = 'conn: loop {
        let mut pong = false;
        let mut acks = Vec::new();
        loop {
            match conn.next_frame() {
                Ok(Some((0x1, at))) => {
                    let text = &conn.buf[at];
                    if text == b"2" {
                        pong = true;
                    } else if text.starts_with(b"43") {
                        acks.push((text.get(2).copied(), contains(text, b"\"ok\"")));
                    } else {
                        shared.frame(node, watcher, text);
                    }
                }
                Ok(Some((0x8, at))) => {
                    let close = &conn.buf[at];
                    let reason = match close {
                        [high, low, reason @ ..] => format!(
                            "{} {}",
                            u16::from_be_bytes([*high, *low]),
                            String::from_utf8_lossy(reason)
                        ),
                        _ => "no code".to_owned(),
                    };
                    *shared.close_reasons.borrow_mut().entry(reason).or_default() += 1;
                    break 'conn None;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => break 'conn Some(error),
            }
        }
        // A buffer grown for a large `presence_state` goes back to its usual size.
        if conn.start == conn.end && conn.buf.len() > READ_BUFFER {
            (conn.start, conn.end) = (0, 0);
            conn.buf = vec![0; READ_BUFFER];
        }
        if pong && conn.send_text("3").await.is_err() {
            break None;
        }
        for (id, ok) in acks {
            if !ok {
                shared.churn_errors.set(shared.churn_errors.get() + 1);
            }
            match (rejoin, id) {
                (1, Some(b'1')) => {
                    rejoin = 2;
                    joined = false;
                    Shared::add(&shared.in_channel[node], -1);
                    let join = subscribe_packet(2, "subscribe", &channel);
                    if conn.send_text(&join).await.is_err() {
                        break 'conn None;
                    }
                }
                (2, Some(b'2')) => {
                    rejoin = 0;
                    if ok {
                        joined = true;
                        Shared::add(&shared.in_channel[node], 1);
                        shared.rejoined.set(shared.rejoined.get() + 1);
                    }
                }
                _ => {}
            }
        }
        tokio::select! {
            read = conn.fill() => {
                if read.is_err() {
                    break None;
                }
            }
            Some(Command::Rejoin) = commands.recv(), if rejoin == 0 => {
                rejoin = 1;
                let leave = subscribe_packet(1, "unsubscribe", &channel);
                if conn.send_text(&leave).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some(error) = ended {
        shared.error(error);
    }
    if joined {
        Shared::add(&shared.in_channel[node], -1);
    }
    shared.closed[node].set(shared.closed[node].get() + 1);
}

/// The three nodes' CPU time together.
fn nodes_cpu(config: &Config) -> f64 {
    config
        .pids
        .iter()
        .filter_map(|pid| pid.and_then(cpu_secs))
        .sum()
}

/// Asks each of `nodes` for its count of the channel's presence (`GET /presence`).
struct Counter {
    conns: Vec<Option<Emitter>>,
    path: String,
}

impl Counter {
    fn new(config: &Config) -> Counter {
        let channel: String = config
            .channel
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        Counter {
            conns: (0..3).map(|_| None).collect(),
            path: format!("/presence?channel={channel}"),
        }
    }

    /// Node `node`'s count, `None` when it does not answer.
    async fn count(&mut self, config: &Config, node: usize) -> Option<u64> {
        if self.conns[node].is_none() {
            self.conns[node] = Emitter::connect(config.nodes[node]).await.ok();
        }
        let conn = self.conns[node].as_mut()?;
        match conn.get(&self.path).await {
            Ok((200, body)) => number_after(&body, &Finder::new(b"\"count\":")),
            _ => {
                self.conns[node] = None;
                None
            }
        }
    }

    /// Polls `nodes` every `every` until each counts `expected`: when each did, in seconds
    /// after `since`.
    async fn until(
        &mut self,
        config: &Config,
        nodes: &[usize],
        expected: u64,
        every: Duration,
        since: Instant,
    ) -> Vec<Option<f64>> {
        let mut done: Vec<Option<f64>> = vec![None; nodes.len()];
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        while done.iter().any(Option::is_none) && Instant::now() < deadline {
            for (i, &node) in nodes.iter().enumerate() {
                if done[i].is_none() && self.count(config, node).await == Some(expected) {
                    done[i] = Some(since.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(every).await;
        }
        done
    }
}

/// Waits until no presence frame came for `quiet`; returns when the last one came (ns).
async fn await_quiet(shared: &Shared, quiet: Duration) -> u64 {
    let deadline = Instant::now() + RAMP_TIMEOUT;
    while Instant::now() < deadline {
        let last = shared.last_presence_ns.get();
        if shared.now_ns().saturating_sub(last) >= quiet.as_nanos() as u64 {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.last_presence_ns.get()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

pub(crate) async fn run(config: Config) -> RunResult {
    let shared = Rc::new(Shared {
        t0: Instant::now(),
        diff_prefix: format!(
            "42[{}",
            serde_json::json!(format!("{}/presence_diff", config.channel))
        )
        .into_bytes(),
        state_prefix: format!(
            "42[{}",
            serde_json::json!(format!("{}/presence_state", config.channel))
        )
        .into_bytes(),
        subscribed: Default::default(),
        failed: Cell::new(0),
        first_error: RefCell::new(None),
        close_reasons: RefCell::default(),
        closed: Default::default(),
        in_channel: Default::default(),
        last_ack_ns: Cell::new(0),
        diffs: Cell::new(0),
        states: Cell::new(0),
        states_before_ack: Cell::new(0),
        presence_bytes: Cell::new(0),
        last_presence_ns: Cell::new(0),
        watch: RefCell::new(None),
        rejoined: Cell::new(0),
        churn_errors: Cell::new(0),
    });
    let mut redis = Redis::connect(config.redis)
        .await
        .unwrap_or_else(|e| fail(&e));
    let mut out = PresenceRun {
        channel: config.channel.clone(),
        control: config.control,
        ..PresenceRun::default()
    };
    let mut counter = Counter::new(&config);

    // 1. Before any connection.
    for (node, pid) in config.pids.iter().enumerate() {
        if let Some(pid) = pid {
            out.rss_before_kib[node] = settled_rss(*pid).await;
        }
    }
    let before = redis
        .snapshot(config.redis_pid)
        .await
        .unwrap_or_else(|e| fail(&e));
    out.redis_memory_before = before.used_memory;

    // 2. Ramp-up.
    let channel: Rc<str> = config.channel.as_str().into();
    let limit = Rc::new(Semaphore::new(config.concurrency));
    let cpu_start = nodes_cpu(&config);
    let start_ns = shared.now_ns();
    let started = Instant::now();
    let mut commands = Vec::new();
    for i in 0..config.members {
        let node = config.node_of(i);
        let (send, receive) = mpsc::unbounded_channel();
        commands.push(send);
        tokio::task::spawn_local(member(
            shared.clone(),
            node,
            config.nodes[node],
            channel.clone(),
            limit.clone(),
            i < 3,
            receive,
        ));
    }
    let deadline = Instant::now() + RAMP_TIMEOUT;
    let mut report = Instant::now();
    while shared.members() + shared.failed.get() < config.members && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if report.elapsed() >= Duration::from_secs(10) {
            report = Instant::now();
            eprintln!(
                "loadgen: {:.0} s: {} members in, {} failed, {} diffs",
                started.elapsed().as_secs_f64(),
                shared.members(),
                shared.failed.get(),
                shared.diffs.get()
            );
        }
    }
    out.ramp_ack_secs = ms(shared.last_ack_ns.get().saturating_sub(start_ns)) / 1e3;
    out.members_per_node = shared.subscribed.each_ref().map(Cell::get);
    out.failed_setups = shared.failed.get();
    out.first_error = shared.first_error.borrow().clone().unwrap_or_default();
    let members = shared.members();
    eprintln!(
        "loadgen: {members} members in {:.1} s ({:?} per node)",
        out.ramp_ack_secs, out.members_per_node
    );
    if !config.control {
        let converged = counter
            .until(
                &config,
                &[0, 1, 2],
                shared.in_channel(),
                Duration::from_millis(250),
                started,
            )
            .await;
        out.ramp_converged_secs = converged
            .iter()
            .copied()
            .collect::<Option<Vec<f64>>>()
            .map(|t| t.into_iter().fold(0.0, f64::max));
    }
    let last = await_quiet(&shared, Duration::from_secs(2)).await;
    out.ramp_quiet_secs = ms(last.saturating_sub(start_ns)) / 1e3;
    out.ramp_node_cpu_secs = nodes_cpu(&config) - cpu_start;
    out.closed_during_ramp = shared.closed();
    out.ramp_diffs = shared.diffs.get();
    eprintln!(
        "loadgen: ramp-up converged at {:?} s, quiet at {:.1} s; {} diffs, {} states ({} before the subscribe ack)",
        out.ramp_converged_secs,
        out.ramp_quiet_secs,
        shared.diffs.get(),
        shared.states.get(),
        shared.states_before_ack.get()
    );

    // 3. Rest.
    let rest_from = redis
        .snapshot(config.redis_pid)
        .await
        .unwrap_or_else(|e| fail(&e));
    out.ramp_redis_cpu_secs = rest_from.cpu_since(&before);
    let cpu_rest = nodes_cpu(&config);
    tokio::time::sleep(config.rest).await;
    let rest_to = redis
        .snapshot(config.redis_pid)
        .await
        .unwrap_or_else(|e| fail(&e));
    let (commands_at_rest, rest_secs, breakdown) = rest_to.since(&rest_from);
    out.rest_secs = rest_secs;
    out.rest_commands_per_sec = commands_at_rest as f64 / rest_secs;
    out.rest_commands = breakdown;
    out.rest_node_cpu = (nodes_cpu(&config) - cpu_rest) / rest_secs;
    out.rest_redis_cpu = rest_to.cpu_since(&rest_from) / rest_secs;
    eprintln!(
        "loadgen: at rest {:.1} Redis commands/s ({})",
        out.rest_commands_per_sec, out.rest_commands
    );

    // 4. Memory.
    for (node, pid) in config.pids.iter().enumerate() {
        if let Some(pid) = pid {
            out.rss_after_kib[node] = settled_rss(*pid).await;
        }
    }
    out.redis_memory_after = rest_to.used_memory;
    let hash = format!("tidings:presence:{}", config.channel);
    out.redis_records = redis.hlen(&hash).await.unwrap_or(0);

    if !config.memory_only {
        join_convergence(&config, &shared, &mut out).await;
        churn(
            &config,
            &shared,
            &mut redis,
            &mut counter,
            &commands,
            &mut out,
        )
        .await;
        if config.kill {
            node_death(&config, &shared, &mut redis, &mut counter, &hash, &mut out).await;
        }
    }
    out.diffs_received = shared.diffs.get();
    out.states_received = shared.states.get();
    out.states_before_ack = shared.states_before_ack.get();
    out.presence_mib = shared.presence_bytes.get() as f64 / (1024.0 * 1024.0);
    if !out.killed {
        out.closed_early = shared.closed();
    }
    out.close_frames = shared
        .close_reasons
        .borrow()
        .iter()
        .map(|(reason, n)| format!("{n} × {reason:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(error) = shared.first_error.borrow().as_ref() {
        eprintln!(
            "loadgen: {} connection(s) failed; first: {error}",
            shared.failed.get()
        );
    }
    if out.closed_early > 0 {
        eprintln!(
            "loadgen: {} connection(s) closed by A or B (or C before its death); close frames: {}",
            out.closed_early, out.close_frames
        );
    }
    if !config.hold.is_zero() {
        eprintln!("loadgen: holding the connections for {:?}", config.hold);
        tokio::time::sleep(config.hold).await;
    }
    // Keep the members' command channels open to the end.
    drop(commands);
    RunResult {
        scenario: "presence".to_owned(),
        conns: config.members,
        subscribed: members,
        conn_errors: shared.failed.get() + out.closed_early,
        connect_secs: out.ramp_ack_secs,
        connect_per_sec: if out.ramp_ack_secs > 0.0 {
            members as f64 / out.ramp_ack_secs
        } else {
            0.0
        },
        presence: Some(out),
        ..RunResult::default()
    }
}

/// Phase 5: an extra member joins on A, then disconnects, `--joins` times: when the watchers of A,
/// B and C see its join and its leave.
async fn join_convergence(config: &Config, shared: &Shared, out: &mut PresenceRun) {
    for _ in 0..config.joins {
        let (mut conn, sid) = match open(config.nodes[0]).await {
            Ok(opened) => opened,
            Err(error) => {
                shared.error(error);
                continue;
            }
        };
        shared.watch(format!("\"joins\":{{\"{sid}\""));
        let sent = shared.now_ns();
        if let Err(error) = subscribe(&mut conn, &config.channel, shared, 0).await {
            shared.error(error);
            continue;
        }
        let seen = shared.seen(&[0, 1, 2]).await;
        for (node, at) in seen.iter().enumerate() {
            match at {
                Some(at) if node == 0 => out.join_local_ms.push(ms(at - sent)),
                Some(at) => out.join_remote_ms.push(ms(at - sent)),
                None => out.join_misses += 1,
            }
        }
        shared.watch(format!("\"leaves\":{{\"{sid}\""));
        let closed = shared.now_ns();
        drop(conn);
        let seen = shared.seen(&[0, 1, 2]).await;
        for (node, at) in seen.iter().enumerate() {
            match at {
                Some(at) if node == 0 => out.leave_local_ms.push(ms(at - closed)),
                Some(at) => out.leave_remote_ms.push(ms(at - closed)),
                None => out.join_misses += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p50 = |samples: &[f64]| {
        let mut sorted: Vec<u64> = samples.iter().map(|&ms| (ms * 1e3) as u64).collect();
        sorted.sort_unstable();
        percentile(&sorted, 0.5).map_or(0.0, |us| us as f64 / 1e3)
    };
    eprintln!(
        "loadgen: join → diff p50 {:.2} ms on A, {:.2} ms on B/C; leave → diff p50 {:.2} ms on A, {:.2} ms on B/C; {} missed",
        p50(&out.join_local_ms),
        p50(&out.join_remote_ms),
        p50(&out.leave_local_ms),
        p50(&out.leave_remote_ms),
        out.join_misses
    );
}

/// Phase 6: `--churn` members leave and join again, started evenly over `--churn-secs`.
async fn churn(
    config: &Config,
    shared: &Shared,
    redis: &mut Redis,
    counter: &mut Counter,
    commands: &[mpsc::UnboundedSender<Command>],
    out: &mut PresenceRun,
) {
    // Members 3.. (0, 1 and 2 are the watchers), every k-th so that all nodes churn.
    let eligible = commands.len().saturating_sub(3) as u64;
    let churners = config.churn.min(eligible);
    if churners == 0 {
        return;
    }
    let step = (eligible / churners).max(1);
    let closed_before = shared.closed();
    let from = redis
        .snapshot(config.redis_pid)
        .await
        .unwrap_or_else(|e| fail(&e));
    let cpu = nodes_cpu(config);
    let started = Instant::now();
    let interval = config.churn_over.as_secs_f64() / churners as f64;
    let mut sent = 0;
    for k in 0..churners {
        tokio::time::sleep_until(
            tokio::time::Instant::from_std(started) + Duration::from_secs_f64(interval * k as f64),
        )
        .await;
        // A member whose connection ended takes no command.
        if commands[(3 + k * step) as usize]
            .send(Command::Rejoin)
            .is_ok()
        {
            sent += 1;
        }
    }
    out.churn_send_secs = started.elapsed().as_secs_f64();
    out.churn_members = sent;
    // Every rejoin acked, or none for 10 s.
    let mut last = (shared.rejoined.get(), Instant::now());
    while shared.rejoined.get() < sent && last.1.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if shared.rejoined.get() != last.0 {
            last = (shared.rejoined.get(), Instant::now());
        }
    }
    out.churn_rejoined = shared.rejoined.get();
    let converged = counter
        .until(
            config,
            &[0, 1, 2],
            shared.in_channel(),
            Duration::from_millis(20),
            started,
        )
        .await;
    out.churn_secs = converged
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .map(|t| t.into_iter().fold(0.0, f64::max));
    let to = redis
        .snapshot(config.redis_pid)
        .await
        .unwrap_or_else(|e| fail(&e));
    let (total, secs, breakdown) = to.since(&from);
    out.churn_node_cpu_secs = nodes_cpu(config) - cpu;
    out.churn_commands_per_sec = total as f64 / secs;
    // One publication per presence change (no emits in this scenario).
    let changes = to
        .commands
        .get("PUBLISH")
        .copied()
        .unwrap_or(0)
        .saturating_sub(from.commands.get("PUBLISH").copied().unwrap_or(0));
    out.churn_changes = changes;
    if changes > 0 {
        out.churn_commands_per_change =
            (total as f64 - out.rest_commands_per_sec * secs).max(0.0) / changes as f64;
    }
    out.churn_commands = breakdown;
    out.closed_during_churn = shared.closed() - closed_before;
    eprintln!(
        "loadgen: churn of {sent} members ({} rejoined, {} refused, {} connections closed) sent over {:.1} s, converged at {:?} s: {changes} changes, {:.1} Redis commands/s, {:.2} per change ({})",
        out.churn_rejoined,
        shared.churn_errors.get(),
        out.closed_during_churn,
        out.churn_send_secs,
        out.churn_secs,
        out.churn_commands_per_sec,
        out.churn_commands_per_change,
        out.churn_commands
    );
    await_quiet(shared, Duration::from_secs(1)).await;
}

/// Phase 7: SIGKILL to C: when A and B count only their own members, when their watchers get C's
/// leaves, when Redis's hash holds only A's and B's records.
async fn node_death(
    config: &Config,
    shared: &Shared,
    redis: &mut Redis,
    counter: &mut Counter,
    hash: &str,
    out: &mut PresenceRun,
) {
    let Some(pid) = config.pids[2] else {
        eprintln!("loadgen: no --pid3, no node death");
        return;
    };
    out.death_members = shared.in_channel[2].get();
    let survivors = shared.in_channel[0].get() + shared.in_channel[1].get();
    let closed_before = shared.closed();
    let survivors_closed = || shared.closed[0].get() + shared.closed[1].get();
    let survivors_closed_before = survivors_closed();
    shared.watch("\"leaves\":{\"".to_owned());
    let killed_ns = shared.now_ns();
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("loadgen: kill -KILL {pid} failed");
        return;
    }
    let mut count: [Option<f64>; 2] = [None; 2];
    let mut in_redis = None;
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    while (count.iter().any(Option::is_none) || in_redis.is_none()) && Instant::now() < deadline {
        for (node, done) in count.iter_mut().enumerate() {
            if done.is_none() && counter.count(config, node).await == Some(survivors) {
                *done = Some(killed.elapsed().as_secs_f64());
            }
        }
        if in_redis.is_none() && redis.hlen(hash).await.ok() == Some(survivors) {
            in_redis = Some(killed.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = shared.seen(&[0, 1]).await;
    out.killed = true;
    out.closed_early = closed_before + (survivors_closed() - survivors_closed_before);
    out.death_count_secs = count;
    out.death_redis_secs = in_redis;
    out.death_diff_secs = [0, 1].map(|n| seen[n].map(|at| ms(at.saturating_sub(killed_ns)) / 1e3));
    eprintln!(
        "loadgen: C killed with {} members: A and B count {survivors} after {:?} s; diffs at {:?} s; Redis clean after {:?} s",
        out.death_members, out.death_count_secs, out.death_diff_secs, out.death_redis_secs
    );
}

#[cfg(test)]
mod tests {
    use super::weights;

    #[test]
    fn members_spread_by_weight_after_one_watcher_each() {
        assert_eq!(weights("1,1,0"), [1, 1, 0]);
        let nodes = |w: [u64; 3]| {
            let mut config = super::Config::from_flags(&tidings_bench::Flags::parse(
                [
                    "--port",
                    "1",
                    "--port2",
                    "2",
                    "--port3",
                    "3",
                    "--redis-port",
                    "4",
                ]
                .into_iter()
                .map(String::from),
            ));
            config.weights = w;
            (0..9).map(|i| config.node_of(i)).collect::<Vec<_>>()
        };
        assert_eq!(nodes([1, 1, 1]), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert_eq!(nodes([1, 1, 0]), [0, 1, 2, 0, 1, 0, 1, 0, 1]);
    }
}

//! Reliability under load and abuse: a client that stops reading is cut off without hurting the
//! others or the memory, thousands of connections that end in every way leave nothing behind,
//! protocol garbage closes only the offending connection, and the limits hold.
//!
//! Every test starts its own in-process server (actix on 127.0.0.1:0) with the channel
//! `chats/:id`, a `POST /flood` route (many emits in a loop) and a `GET /stats` route (counts,
//! `left` hook log, RSS), then runs one scenario of `tests/js/reliability_client.mjs` against
//! it. The script writes what it measured to a JSON file, which the test prints and checks.
//!
//! The tests take a lock so that they run one at a time: they measure the RSS of this process.

mod support;

/// The allocator of this test binary, configured as a long-running server should be: jemalloc
/// with its background threads on (see `start_server`), which give pages that stayed free for a
/// while back to the system. glibc's malloc keeps them: after the churn below, RSS stays at its
/// peak under glibc although the live heap is back near its start (fragmented arenas).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use support::{HttpServerKind, InProcess};

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tidings::socketio::SocketIoBuilder;
use tidings::{Authorizer, ChannelContext, JoinContext, LeaveReason, SocketEmitter, Tidings};

// ---------------------------------------------------------------------------
// Channel

/// `(member id, channel, reason)` of every `left` hook call of one server.
#[derive(Debug, Default)]
struct LeftLog(Mutex<Vec<(String, String, String)>>);

impl LeftLog {
    fn entries(&self) -> Vec<(String, String, String)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `chats/:id`: anyone may join; every leave is logged.
#[tidings::channel("chats/:id")]
#[derive(Default)]
struct ChatChannel;

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn left(&self, ctx: &ChannelContext<'_>, reason: &LeaveReason) {
        if let Some(log) = ctx.app_data::<LeftLog>() {
            log.0.lock().unwrap_or_else(PoisonError::into_inner).push((
                ctx.member_id().to_string(),
                ctx.channel().to_owned(),
                reason.to_string(),
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP routes

#[derive(Deserialize)]
struct FloodRequest {
    channel: String,
    from: u64,
    count: u64,
    /// The event name (default `message`).
    event: Option<String>,
    /// When given, every message also carries `"pad": "xxx..."` of this many bytes.
    pad: Option<usize>,
}

/// POST /flood `{channel, from, count, event?, pad?}`: emits `{"i": from..from+count}` (with
/// `"pad"` when asked) one by one, answers `{"queued_total": n}` (the sum of the delivered
/// counts), or 400 `{"error": ...}`.
async fn flood_route(emitter: SocketEmitter, body: web::Json<FloodRequest>) -> HttpResponse {
    let request = body.into_inner();
    let event = request.event.as_deref().unwrap_or("message");
    let pad = request.pad.map(|bytes| "x".repeat(bytes));
    let mut total = 0;
    for i in request.from..request.from + request.count {
        let message = match &pad {
            Some(pad) => json!({ "i": i, "pad": pad }),
            None => json!({ "i": i }),
        };
        match emitter.emit(event, &request.channel, &message) {
            Ok(delivered) => total += delivered,
            Err(err) => {
                return HttpResponse::BadRequest().json(json!({ "error": err.to_string() }));
            }
        }
    }
    HttpResponse::Ok().json(json!({ "queued_total": total }))
}

#[derive(Deserialize)]
struct StatsQuery {
    /// `1` leaves the `left` list out (only its length), for frequent sampling.
    summary: Option<u8>,
    /// A client's local port: the answer says how many descriptors this process holds for
    /// TCP connections from it (`peer_fds`).
    peer_port: Option<u16>,
}

/// GET /stats: connection, subscription and channel counts, the `left` log and the RSS.
async fn stats_route(
    tidings: web::Data<Tidings>,
    log: web::Data<LeftLog>,
    query: web::Query<StatsQuery>,
) -> HttpResponse {
    let left = log.entries();
    let mut stats = json!({
        "connections": tidings.io().connection_count(),
        "subscriptions": tidings.hub().subscription_count(),
        "channels": tidings.hub().channel_count(),
        "left_count": left.len(),
        "rss_kib": rss_kib(),
        "fds": open_fds(),
    });
    if query.summary != Some(1) {
        stats["left"] = json!(left);
    }
    if let Some(port) = query.peer_port {
        stats["peer_fds"] = json!(fds_of_peer(port));
    }
    HttpResponse::Ok().json(stats)
}

/// How many file descriptors this process has open (0 when unknown).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// How many of this process's file descriptors are TCP sockets connected to the loopback
/// client port `port` (read from /proc/net/tcp and /proc/self/fd).
fn fds_of_peer(port: u16) -> usize {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let remote_port = fields.get(2)?.rsplit(':').next()?;
                    (u16::from_str_radix(remote_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    std::fs::read_dir("/proc/self/fd").map_or(0, |fds| {
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter(|target| {
                inodes
                    .iter()
                    .any(|inode| target.as_os_str() == inode.as_str())
            })
            .count()
    })
}

/// VmRSS of this process, in KiB (0 when unknown).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// In-process server

/// A fresh in-process server with this file's channel and routes.
fn start_server(
    kind: HttpServerKind,
    configure: impl FnOnce(SocketIoBuilder) -> SocketIoBuilder,
) -> InProcess {
    tikv_jemalloc_ctl::background_thread::write(true)
        .expect("jemalloc's background threads (needed to return freed memory) could not start");
    let tidings = Tidings::builder()
        .socketio(configure)
        .app_data(web::Data::new(LeftLog::default()))
        .build()
        .expect("one channel cannot conflict");
    InProcess::start_on(kind, tidings, |cfg| {
        cfg.route("/flood", web::post().to(flood_route))
            .route("/stats", web::get().to(stats_route));
    })
}

// ---------------------------------------------------------------------------
// Harness

/// One test at a time: they measure the RSS of this process and load the machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `scenario` of `reliability_client.mjs` against `server` and returns what it measured
/// (printed to stdout).
fn run_scenario(server: &InProcess, scenario: &str, limit: Duration) -> Value {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "tidings-reliability-{}-{scenario}.json",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let path_text = path.to_string_lossy().into_owned();
    support::run_node(
        "reliability_client.mjs",
        scenario,
        &server.url(),
        &[("TIDINGS_RESULTS", path_text.as_str())],
        limit,
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{scenario}: no results in {}: {e}", path.display()));
    let _ = std::fs::remove_file(&path);
    let results: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{scenario}: results are not JSON ({e}): {text}"));
    println!(
        "--- reliability {scenario} ---\n{}",
        serde_json::to_string_pretty(&results).unwrap_or_default()
    );
    results
}

/// A number from the results, failing the test when it is missing.
fn number(results: &Value, key: &str) -> f64 {
    results
        .get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("results have no number {key:?}: {results}"))
}

const MIB: f64 = 1024.0;

/// How far above its start RSS may stay once the churn is over and the allocator has settled:
/// what remains live is this test's own `left` log (10,000 entries) and allocator bookkeeping.
const CHURN_RSS_RETURN_KIB: f64 = 8.0 * MIB;

// ---------------------------------------------------------------------------
// Scenarios

/// Two clients that read and one that stops reading get 100,000 emits: the readers get every
/// one once and in order, the stalled one is disconnected as a slow consumer (default queue of
/// 4096 frames), and the memory stays bounded.
fn slow_consumer_is_cut_off_and_memory_stays_bounded(kind: HttpServerKind) {
    let _serial = serial();
    let server = start_server(kind, |io| io);
    let results = run_scenario(&server, "slow-consumer", Duration::from_secs(90));
    let baseline = number(&results, "rss_baseline_kib");
    let peak = number(&results, "rss_peak_kib");
    let last = number(&results, "rss_final_kib");
    println!(
        "slow-consumer RSS: baseline {:.1} MiB, peak {:.1} MiB, final {:.1} MiB (peak - baseline {:.1} MiB)",
        baseline / MIB,
        peak / MIB,
        last / MIB,
        (peak - baseline) / MIB
    );
    assert!(
        peak - baseline < 200.0 * MIB,
        "RSS grew by {:.1} MiB during the flood (limit 200 MiB)",
        (peak - baseline) / MIB
    );
    assert!(server.is_running(), "the server thread ended");
}

/// Twenty clients that read and one that stops reading get 3,000 emits of about 10 KB: the
/// stalled one is cut as a slow consumer once about 1 MiB waits for it (the default byte bound;
/// 3,000 such frames fit the frame bound), the readers get every message in order, and the
/// stalled client's TCP connection is closed by the server within a second of the cut (its file
/// descriptor released) although the client reads nothing.
fn stalled_reader_of_large_messages_is_cut_by_bytes_and_its_connection_closed(
    kind: HttpServerKind,
) {
    let _serial = serial();
    let server = start_server(kind, |io| io);
    let results = run_scenario(&server, "stalled-large", Duration::from_secs(90));
    let baseline = number(&results, "rss_baseline_kib");
    let peak = number(&results, "rss_peak_kib");
    println!(
        "stalled-large RSS: baseline {:.1} MiB, peak {:.1} MiB (peak - baseline {:.1} MiB)",
        baseline / MIB,
        peak / MIB,
        (peak - baseline) / MIB
    );
    assert!(
        peak - baseline < 40.0 * MIB,
        "RSS grew by {:.1} MiB while one reader stalled (it was 73 MiB with no byte bound)",
        (peak - baseline) / MIB
    );
    assert!(server.is_running(), "the server thread ended");
}

/// 10,000 connect / subscribe / disconnect cycles ending cleanly, by a dropped TCP connection
/// or by a ping timeout: the server forgets every connection, subscription and channel, and
/// the memory comes back (RSS within 8 MiB of its start once the allocator has settled).
fn churn_leaves_nothing_behind(kind: HttpServerKind) {
    let _serial = serial();
    // Keep in step with the churn scenario of reliability_client.mjs.
    let server = start_server(kind, |io| {
        io.ping_interval(Duration::from_millis(250))
            .ping_timeout(Duration::from_millis(1000))
    });
    let results = run_scenario(&server, "churn", Duration::from_secs(90));
    let before = number(&results, "rss_before_kib");
    let peak = number(&results, "rss_peak_kib");
    let at_end = number(&results, "rss_after_kib");
    // The allocator returns pages that stayed free for about ten seconds (jemalloc's default
    // decay); give it up to three times that.
    let settling = Instant::now();
    let mut after = at_end;
    while after - before > CHURN_RSS_RETURN_KIB && settling.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(250));
        after = rss_kib() as f64;
    }
    println!(
        "churn RSS: before {:.1} MiB, peak {:.1} MiB, at the end {:.1} MiB, after {:.1} s {:.1} MiB (after - before {:.1} MiB)",
        before / MIB,
        peak / MIB,
        at_end / MIB,
        settling.elapsed().as_secs_f64(),
        after / MIB,
        (after - before) / MIB
    );
    assert!(
        after - before <= CHURN_RSS_RETURN_KIB,
        "RSS stayed {:.1} MiB above its start 30 s after the churn (limit {:.1} MiB; peak was {:.1} MiB above)",
        (after - before) / MIB,
        CHURN_RSS_RETURN_KIB / MIB,
        (peak - before) / MIB
    );
    assert_eq!(
        server.tidings.io().connection_count(),
        0,
        "connections left"
    );
    assert_eq!(
        server.tidings.hub().subscription_count(),
        0,
        "subscriptions left"
    );
    assert_eq!(server.tidings.hub().channel_count(), 0, "channels left");
    assert!(server.is_running(), "the server thread ended");
}

/// Protocol garbage from 39 connections while five clients receive a steady stream: each
/// attacker is closed quickly, the stream reaches the good clients whole and in order.
fn attackers_are_closed_and_good_clients_unharmed(kind: HttpServerKind) {
    let _serial = serial();
    let server = start_server(kind, |io| {
        io.ping_interval(Duration::from_millis(500))
            .ping_timeout(Duration::from_millis(500))
            .max_payload(10_000)
    });
    let results = run_scenario(&server, "attackers", Duration::from_secs(60));
    let slowest = number(&results, "slowest_close_ms");
    let silent = number(&results, "silent_attachments_close_ms_max");
    println!(
        "attackers: slowest close {slowest:.0} ms, silent attachments closed after {silent:.0} ms at most"
    );
    assert!(slowest <= 2_000.0, "an attacker took {slowest} ms to close");
    assert!(
        silent <= 2_000.0,
        "silent attachments closed after {silent} ms (limit ping interval + timeout + 1 s)"
    );
    assert!(server.is_running(), "the server thread ended");
}

/// The subscription limit, the channel and event name limits, and the connect timeout.
fn limits_hold(kind: HttpServerKind) {
    let _serial = serial();
    let server = start_server(kind, |io| io.connect_timeout(Duration::from_millis(500)));
    let results = run_scenario(&server, "limits", Duration::from_secs(30));
    let closed = number(&results, "connect_timeout_close_ms");
    println!("limits: a connection without `40` was closed after {closed:.0} ms (timeout 500 ms)");
    assert!(
        (400.0..=2_000.0).contains(&closed),
        "connect timeout of 500 ms closed the connection after {closed} ms"
    );
    assert!(server.is_running(), "the server thread ended");
}

// ---------------------------------------------------------------------------
// Each scenario on both servers

/// The scenarios on `tidings::HttpServer` (WebSockets own their connection) and on actix-web's
/// `HttpServer` (with `tidings::on_connect`).
macro_rules! on_both_servers {
    ($($scenario:ident),* $(,)?) => {
        mod on_tidings_server {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::HttpServerKind::Tidings);
                }
            )*
        }
        mod on_actix_server {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::HttpServerKind::Actix);
                }
            )*
        }
    };
}

on_both_servers!(
    slow_consumer_is_cut_off_and_memory_stays_bounded,
    stalled_reader_of_large_messages_is_cut_by_bytes_and_its_connection_closed,
    churn_leaves_nothing_behind,
    attackers_are_closed_and_good_clients_unharmed,
    limits_hold,
);

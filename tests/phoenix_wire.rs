//! The Phoenix Channels endpoint on the wire, frame by frame: `vsn` negotiation, the
//! heartbeat, the V2 rows of PHOENIX.md §2.1 (join, leave, unmatched topics, stale and
//! duplicate joins, broadcasts), V2 binary frames both ways, bad input and its close codes,
//! the `authToken` subprotocol, connect refusals and the origin policy, the idle timeout,
//! LongPoll as raw HTTP (tokens, windows, batches, expiry), a slow consumer and a graceful
//! shutdown.
//!
//! Every test starts its own in-process server (actix on 127.0.0.1:0) with the channels and
//! routes of this file and the Phoenix settings it needs, then runs one scenario of
//! `tests/js/phoenix_wire.mjs`, which speaks the protocol itself over `ws` (raw frames) and
//! `fetch` (LongPoll).

mod support;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use support::InProcess;
use tidings::phoenix::PhoenixConfig;
use tidings::{
    Authorizer, Binary, ChannelContext, ConnectRefusal, Handshake, JoinContext, Payload, Reply,
    SocketEmitter, Tidings, channel,
};

// ---------------------------------------------------------------------------
// Connect hook

/// The `authToken` the connect hook accepts (its standard base64 has a `+` and a `=`, so a
/// server that decodes it as url-safe base64, or keeps the padding, gets it wrong). Keep in
/// step with `AUTH_TOKEN` in phoenix_wire.mjs.
const AUTH_TOKEN: &str = "wire>>token";

/// Who connected: the `authToken` it gave, if any.
#[derive(Debug, Clone)]
struct Caller {
    token: Option<String>,
}

/// Refuses a socket with a `refuse` param, or with an `authToken` other than [`AUTH_TOKEN`];
/// accepts everything else.
async fn authenticate(handshake: Handshake) -> Result<Caller, ConnectRefusal> {
    if handshake.query_param("refuse").is_some() {
        return Err(ConnectRefusal::new("refused by the connect hook"));
    }
    let token = handshake
        .auth::<Value>()
        .and_then(|auth| auth.get("token").and_then(Value::as_str).map(str::to_owned));
    match token {
        Some(token) if token != AUTH_TOKEN => Err(ConnectRefusal::new("wrong token")),
        token => Ok(Caller { token }),
    }
}

// ---------------------------------------------------------------------------
// Channels

/// `room:*`: anyone joins (reply `{}`); `ping` replies with its payload, `whoami` with the
/// socket's `authToken` (`{"token": T|null}`).
#[channel("room:*")]
#[derive(Default)]
struct RoomChannel;

impl Authorizer for RoomChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "ping" => Reply::ok_with(&payload.get::<Value>(0).unwrap_or(Value::Null)),
            "whoami" => Reply::ok_with(&json!({
                "token": ctx.identity::<Caller>().and_then(|caller| caller.token.clone()),
            })),
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `slow:*`: anyone joins, after 200 ms (a join that looks something up).
#[channel("slow:*")]
#[derive(Default)]
struct SlowChannel;

impl Authorizer for SlowChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        tokio::time::sleep(Duration::from_millis(200)).await;
        true
    }

    async fn handle_in(&self, event: &str, payload: Payload, _ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "ping" => Reply::ok_with(&payload.get::<Value>(0).unwrap_or(Value::Null)),
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `echo:*`: `bin` with a binary payload pushes the bytes back to the sender (a binary push)
/// and replies `{"bytes": [..]}`; `bin_all` broadcasts them (a binary broadcast) and replies
/// the same. A JSON payload is refused `not_binary`.
#[channel("echo:*")]
#[derive(Default)]
struct EchoChannel;

impl Authorizer for EchoChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        let Some(bytes) = payload.as_binary().cloned() else {
            return Reply::error("not_binary");
        };
        let sent = match event {
            "bin" => ctx.push("bin", Payload::from_binary(bytes.clone())),
            "bin_all" => ctx
                .broadcast("bin", Payload::from_binary(bytes.clone()))
                .map(|_| ()),
            _ => return Reply::error("unknown_event"),
        };
        match sent {
            Ok(()) => Reply::ok_with(&json!({ "bytes": bytes.to_vec() })),
            Err(err) => Reply::error(err.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP routes

#[derive(Deserialize)]
struct EmitRequest {
    channel: String,
    event: String,
    /// One emit of this JSON value.
    data: Option<Value>,
    /// One emit of these bytes (a binary payload).
    bytes: Option<Vec<u8>>,
    /// `count` emits of `{"i": from + k}` (with `"pad"` of `pad` bytes when given).
    count: Option<u64>,
    #[serde(default)]
    from: u64,
    pad: Option<usize>,
}

/// Emits what `request` asks for; `(delivered in all)` or the emitter's error.
fn emit(emitter: &SocketEmitter, request: &EmitRequest) -> Result<usize, String> {
    let to = || emitter.to(&request.channel);
    if let Some(count) = request.count {
        let pad = request.pad.map(|bytes| "x".repeat(bytes));
        let mut delivered = 0;
        for i in request.from..request.from + count {
            let message = match &pad {
                Some(pad) => json!({ "i": i, "pad": pad }),
                None => json!({ "i": i }),
            };
            delivered += to()
                .emit(&request.event, &message)
                .map_err(|e| e.to_string())?;
        }
        Ok(delivered)
    } else if let Some(bytes) = &request.bytes {
        to().emit(&request.event, &Binary::from(bytes.clone()))
            .map_err(|e| e.to_string())
    } else {
        to().emit(&request.event, &request.data.clone().unwrap_or(Value::Null))
            .map_err(|e| e.to_string())
    }
}

/// POST /emit: see [`EmitRequest`]; `{"delivered": n}` or 400 `{"error": ...}`.
async fn emit_route(emitter: SocketEmitter, body: web::Json<EmitRequest>) -> HttpResponse {
    match emit(&emitter, &body) {
        Ok(delivered) => HttpResponse::Ok().json(json!({ "delivered": delivered })),
        Err(error) => HttpResponse::BadRequest().json(json!({ "error": error })),
    }
}

/// POST /close-all: optionally emits first (an [`EmitRequest`]: what is queued when the
/// shutdown starts), then `tidings.shutdown()`.
async fn close_all_route(
    tidings: web::Data<Tidings>,
    emitter: SocketEmitter,
    body: Option<web::Json<EmitRequest>>,
) -> HttpResponse {
    let delivered = match body.map(|body| emit(&emitter, &body)) {
        Some(Ok(delivered)) => delivered,
        Some(Err(error)) => return HttpResponse::BadRequest().json(json!({ "error": error })),
        None => 0,
    };
    tidings.shutdown();
    HttpResponse::Ok().json(json!({ "delivered": delivered }))
}

/// GET /stats: connections (every protocol) and subscriptions.
async fn stats_route(tidings: web::Data<Tidings>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "connections": tidings.connection_count(),
        "subscriptions": tidings.hub().subscription_count(),
    }))
}

// ---------------------------------------------------------------------------
// Harness

/// A fresh in-process server with this file's hook, channels and routes, and the Phoenix
/// settings `configure` makes.
fn start(configure: impl FnOnce(&mut PhoenixConfig)) -> InProcess {
    // Server logs go to the test's captured output (shown when it fails); RUST_LOG adjusts them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    let tidings = Tidings::builder()
        .authenticate(authenticate)
        .phoenix(configure)
        .build()
        .expect("the channels of this file do not conflict");
    InProcess::start(tidings, |cfg| {
        cfg.route("/emit", web::post().to(emit_route))
            .route("/close-all", web::post().to(close_all_route))
            .route("/stats", web::get().to(stats_route));
    })
}

/// Tests whose verdict depends on timing (timeouts, windows, a flood) run one at a time, so
/// that they do not load the machine for each other.
static TIMING: Mutex<()> = Mutex::new(());

fn timing() -> MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs scenario `name` of phoenix_wire.mjs against `server` (failing with the script's output
/// when it fails), then checks that the server is still up.
fn scenario_on(server: &InProcess, name: &str, limit: Duration) {
    support::run_node("phoenix_wire.mjs", name, &server.url(), &[], limit);
    assert!(server.is_running(), "the server thread ended during {name}");
}

/// Waits (at most 5 s) for the server to count no connection.
fn connections_drop_to_zero(server: &InProcess, when: &str) {
    let started = std::time::Instant::now();
    while server.tidings.connection_count() > 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        server.tidings.connection_count(),
        0,
        "connections left 5 s {when}"
    );
}

/// Runs scenario `name` against a fresh server with the default Phoenix settings.
fn scenario(name: &str) {
    let server = start(|_| {});
    scenario_on(&server, name, Duration::from_secs(30));
}

/// Runs scenario `name` against a fresh server with `max_payload` 64 KiB.
fn bad_input(name: &str) {
    let server = start(|phoenix| phoenix.max_payload = 64 * 1024);
    scenario_on(&server, name, Duration::from_secs(30));
}

/// Runs scenario `name` against a fresh server with a 300 ms LongPoll window.
fn longpoll(name: &str) {
    let server = start(|phoenix| phoenix.longpoll_window = Duration::from_millis(300));
    scenario_on(&server, name, Duration::from_secs(30));
}

// ---------------------------------------------------------------------------
// 1. vsn

/// `vsn=2.0.0` (and `2.0.7`) -> V2 arrays; `1.0.0` and no vsn -> V1 objects without
/// `join_ref`; `2.1.0`, `3.0.0`, `abc` and an empty vsn -> HTTP 403 before the upgrade.
#[test]
fn vsn_is_negotiated_over_websocket() {
    scenario("vsn-websocket");
}

/// The same rules over LongPoll: a bad vsn is `{"status":403}` in a 200 JSON body.
#[test]
fn vsn_is_negotiated_over_longpoll() {
    longpoll("vsn-longpoll");
}

// ---------------------------------------------------------------------------
// 2. Heartbeat

/// `[null,"7","phoenix","heartbeat",{}]` is answered ok with `{}`, before any join.
#[test]
fn heartbeat_is_answered_before_any_join() {
    scenario("heartbeat");
}

// ---------------------------------------------------------------------------
// 3. V2 rows

/// Join reply copies join_ref and ref; an unknown topic and a push to an unjoined topic are
/// `unmatched topic` with a null join_ref; leave is ok then `phx_close`; a leave when not
/// joined is ok.
#[test]
fn join_leave_and_unmatched_topics() {
    scenario("rows");
}

/// A second join of a joined topic closes the first (`phx_close` with the old join_ref), then
/// the new join is answered; a push with the old join_ref is ignored, with the new one or a
/// null one answered.
#[test]
fn duplicate_joins_and_stale_join_refs() {
    scenario("stale-and-duplicate");
}

/// A V2 frame with extra trailing elements (one, two, five) is read as its first five, as
/// Phoenix's decoder does.
#[test]
fn extra_trailing_elements_are_ignored() {
    scenario("extra-elements");
}

/// Three joins of one topic (whose join takes 200 ms) sent back to back: each join's reply
/// comes before its `phx_close` (Phoenix answers a join before it reads the next message), one
/// membership is left.
#[test]
fn pipelined_duplicate_joins_reply_before_close() {
    scenario("pipelined-duplicate");
}

/// Broadcasts are `[null,null,topic,event,payload]`, to every member, the sender's own
/// broadcast too.
#[test]
fn broadcasts_carry_no_refs() {
    scenario("broadcasts");
}

/// Binary frames both ways: a client push (kind 0) reaches `handle_in` as bytes, a push to
/// one member is kind 0 with its join_ref, a broadcast kind 2; field lengths count UTF-8
/// bytes.
#[test]
fn binary_frames_both_ways() {
    scenario("binary");
}

/// A binary frame on a vsn 1.0.0 socket closes it with 1002.
#[test]
fn binary_frame_on_a_v1_socket_closes_1002() {
    bad_input("binary-on-v1");
}

// ---------------------------------------------------------------------------
// 4. Bad input (each: the offender is closed, a member receiving emits is unharmed)

/// Text that is not JSON: 1002 with a reason.
#[test]
fn invalid_json_closes_1002() {
    bad_input("bad-json");
}

/// JSON that is not a V2 message (wrong length, wrong types, an object): 1002.
#[test]
fn wrong_shape_closes_1002() {
    bad_input("bad-shape");
}

/// A text frame that is not UTF-8: 1007.
#[test]
fn invalid_utf8_closes_1007() {
    bad_input("bad-utf8");
}

/// A message over `max_payload` (64 KiB), in one frame or in continuation frames: 1009; one
/// just under it is answered.
#[test]
fn oversized_message_closes_1009() {
    bad_input("oversized");
}

/// Binary frames that are not a client push (truncated, empty, unknown or server-only kind,
/// lengths past the end): 1002.
#[test]
fn malformed_binary_closes_1002() {
    bad_input("bad-binary");
}

// ---------------------------------------------------------------------------
// 5-6. Auth token, refusal, origin

/// `["phoenix", "base64url.bearer.phx.<base64>"]`: 101 selecting `phoenix`, the token in the
/// connect hook (a wrong one refused with 403); subprotocols without `phoenix` -> 403; the
/// LongPoll header `X-Phoenix-AuthToken` too.
#[test]
fn auth_token_subprotocol() {
    longpoll("auth-token");
}

/// An `authToken` subprotocol that is not base64, or not UTF-8 once decoded, is refused; it is
/// not dropped so that the socket opens as if no token had been given.
#[test]
fn malformed_auth_token_is_refused() {
    scenario("auth-token-malformed");
}

/// A connect hook refusal: HTTP 403 over WebSocket, `{"status":403}` over LongPoll; requests
/// that are not a handshake (or a LongPoll method): 400.
#[test]
fn connect_refusal_is_403() {
    longpoll("refusal");
}

/// The default origin policy: a foreign `Origin` -> 403, none or the server's own -> accepted.
#[test]
fn origin_policy() {
    longpoll("origin");
}

// ---------------------------------------------------------------------------
// 7. Idle timeout

/// `idle_timeout` 500 ms: a silent socket is closed with 1001 within 0.5-1.5 s; one that
/// sends a heartbeat every 200 ms stays open for 2 s.
#[test]
fn idle_websocket_is_closed_1001() {
    let _timing = timing();
    let server = start(|phoenix| phoenix.idle_timeout = Duration::from_millis(500));
    scenario_on(&server, "idle-timeout", Duration::from_secs(30));
}

// ---------------------------------------------------------------------------
// 8. LongPoll

/// A new session (`410` + token), an ndjson upload (`200`), the messages as V2 strings, an
/// idle poll answered `204` after the 300 ms window.
#[test]
fn longpoll_session_flow() {
    let _timing = timing();
    longpoll("longpoll-flow");
}

/// A poll waiting for messages (default 10 s window) is answered as soon as an emit or a
/// reply is queued.
#[test]
fn longpoll_waiting_poll_is_woken() {
    scenario("longpoll-wakeup");
}

/// Forged and guessed tokens get `410` on GET and POST; one session never sees another's
/// messages.
#[test]
fn longpoll_tokens_are_private() {
    longpoll("longpoll-tokens");
}

/// 100 lines in one upload are taken; 101 are refused and the session closed.
#[test]
fn longpoll_upload_line_limit() {
    longpoll("longpoll-lines");
}

/// A base64 line is a binary push; a line that is neither JSON nor base64 closes the session.
#[test]
fn longpoll_base64_line_is_a_binary_push() {
    longpoll("longpoll-binary");
}

/// `longpoll_timeout` 500 ms: a session not polled for that long is gone (`410`); one polled
/// without pause lives on.
#[test]
fn longpoll_unpolled_session_expires() {
    let _timing = timing();
    let server = start(|phoenix| {
        phoenix.longpoll_window = Duration::from_millis(300);
        phoenix.longpoll_timeout = Duration::from_millis(500);
    });
    scenario_on(&server, "longpoll-expiry", Duration::from_secs(30));
}

/// phoenix.js with `params: {token: APP}`: `?token=APP&vsn=2.0.0&token=SESSION` resolves to
/// the session (the last `token`), and the opening request `?token=APP&vsn=2.0.0&` opens one.
#[test]
fn longpoll_app_token_param() {
    longpoll("longpoll-app-token");
}

// ---------------------------------------------------------------------------
// 9-10. Slow consumer, shutdown

/// `max_queued_frames` 64 (and a byte bound of 64 MiB, out of the way): a member that stops
/// reading is cut while emits of 1 KB flow, the member that reads gets every one in order.
#[test]
fn slow_consumer_is_cut() {
    let _timing = timing();
    let server = start(|phoenix| {
        phoenix.max_queued_frames = 64;
        // Only the frame bound can cut it.
        phoenix.max_queued_bytes = 64 * 1024 * 1024;
    });
    scenario_on(&server, "slow-consumer", Duration::from_secs(90));
    connections_drop_to_zero(&server, "after the scenario closed its sockets");
}

/// `tidings.shutdown()`: a WebSocket member that had stopped reading gets everything still
/// queued for it (8,000 emits of 1 KB), then 1001; a LongPoll client's next poll (and one
/// waiting) gets `410`.
#[test]
fn graceful_shutdown() {
    let _timing = timing();
    let server = start(|phoenix| {
        phoenix.max_queued_frames = 100_000;
        phoenix.max_queued_bytes = 64 * 1024 * 1024;
    });
    scenario_on(&server, "shutdown", Duration::from_secs(30));
}

//! The plain WebSocket gateway (`/ws` and `/ws/<channel>`) on the wire, frame by frame:
//! every row of the protocol's table (refs echoed as sent, join payloads, join replies, refusal
//! reasons, `handle_in` replies, `not_subscribed`, `handler_failed`, `ping`), emits in their
//! shape and order (binary ones as `{"binary": "<base64>"}`), a join's reply before what its
//! `joined` hook sends, errors answered as data, the path-bound form (its first frame, its
//! refusal and close 1008, 404, 403), bad input closing only its sender (1003, 1007, 1009),
//! liveness (WebSocket pings, a client that does not answer them closed), a slow consumer cut,
//! a graceful shutdown (what was queued, then 1001), one channel over three protocols, and the
//! browser's own `WebSocket` in headless Chromium.
//!
//! Every test starts its own in-process server (actix on 127.0.0.1:0) with the channels and
//! routes of this file and the plain WebSocket settings it needs, then runs one scenario of
//! `tests/js/plainws_client.mjs`, which speaks the protocol itself over `ws`.

mod support;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::InProcess;
use tidings::plainws::PlainConfig;
use tidings::{
    Authorizer, Binary, ChannelContext, ConnectRefusal, Handshake, JoinContext, JoinRefusal,
    JoinVerdict, Joined, Payload, Reply, SocketEmitter, Tidings, channel,
};

// ---------------------------------------------------------------------------
// Connect hook

/// Who connected: the `user` query parameter, `guest` without one.
#[derive(Debug, Clone)]
struct User(String);

/// Refuses a connection with a `refuse` query parameter; anyone else is the `user` it names.
async fn authenticate(handshake: Handshake) -> Result<User, ConnectRefusal> {
    if handshake.query_param("refuse").is_some() {
        return Err(ConnectRefusal::new("refused by the connect hook"));
    }
    Ok(User(
        handshake
            .query_param("user")
            .unwrap_or_else(|| "guest".to_owned()),
    ))
}

// ---------------------------------------------------------------------------
// Channels

/// `chats/<u64>`: ids above 0 (`chats/0` is refused `unauthorized`, `chats/abc` is `invalid`).
/// `ok` replies ok, `echo` its data, `fail` refuses `nope`, `boom` panics, `whoami` replies the
/// connect hook's user, `shout` broadcasts its data as `shouted`.
#[channel("chats/:id")]
struct ChatChannel {
    id: u64,
}

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        self.id > 0
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "ok" => Reply::Ok,
            "echo" => Reply::ok_with(&payload.get::<Value>(0).unwrap_or(Value::Null)),
            "fail" => Reply::error("nope"),
            "boom" => panic!("handle_in panics on purpose"),
            "whoami" => Reply::ok_with(&ctx.identity::<User>().map(|user| user.0.clone())),
            "shout" => match ctx.broadcast("shouted", payload) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            _ => Reply::error("unknown_event"),
        }
    }
}

/// The join payload a member of `vault/*` joined with.
#[derive(Debug, Clone)]
struct JoinPayload(Value);

/// `vault/:name`: only with a join payload whose `key` is `open-sesame` (else `unauthorized`);
/// `payload` replies with the whole join payload, as the channel saw it.
#[channel("vault/:name")]
#[derive(Default)]
struct VaultChannel;

impl Authorizer for VaultChannel {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        let payload = join.payload::<Value>().unwrap_or(Value::Null);
        if payload.get("key").and_then(Value::as_str) != Some("open-sesame") {
            return Err(JoinRefusal::unauthorized());
        }
        Ok(Joined::new().assign(JoinPayload(payload)))
    }

    async fn handle_in(&self, event: &str, _payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "payload" => Reply::ok_with(&ctx.assigned::<JoinPayload>().map(|p| p.0)),
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `greet/:room`: the join needs a `nick` (`nick_required`), `taken` is refused `nick_taken`;
/// it replies `{"welcome": nick, "room": room}`. The `joined` hook pushes `hello` to the new
/// member and broadcasts `arrived` to the room: both must come after the join's reply.
#[channel("greet/:room")]
struct GreetChannel {
    room: String,
}

/// A `greet/*` member's nick.
#[derive(Debug, Clone)]
struct Nick(String);

impl Authorizer for GreetChannel {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        let payload = join.payload::<Value>().unwrap_or(Value::Null);
        match payload.get("nick").and_then(Value::as_str) {
            None | Some("") => Err(JoinRefusal::new("nick_required")),
            Some("taken") => Err(JoinRefusal::new("nick_taken")),
            Some(nick) => Joined::new()
                .reply(&json!({ "welcome": nick, "room": self.room }))
                .map(|joined| joined.assign(Nick(nick.to_owned())))
                .map_err(|_| JoinRefusal::new("invalid")),
        }
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let nick = ctx.assigned::<Nick>().map(|n| n.0).unwrap_or_default();
        let hello = Payload::from_value(&json!({ "to": nick })).unwrap_or_default();
        let arrived = Payload::from_value(&json!({ "nick": nick })).unwrap_or_default();
        if let Err(err) = ctx.push("hello", hello) {
            tracing::error!(%err, "push from joined failed");
        }
        if let Err(err) = ctx.broadcast("arrived", arrived) {
            tracing::error!(%err, "broadcast from joined failed");
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
    /// One emit of these bytes (a lone binary payload).
    bytes: Option<Vec<u8>>,
    /// One emit of `{"name": <name>, "file": <these bytes>}` (bytes inside a JSON value).
    file: Option<Vec<u8>>,
    /// `count` emits of `{"i": from + k}` (with `"pad"` of `pad` bytes when given).
    count: Option<u64>,
    #[serde(default)]
    from: u64,
    pad: Option<usize>,
}

/// A JSON value with bytes inside.
#[derive(Serialize)]
struct Upload {
    name: &'static str,
    file: Binary,
}

/// Emits what `request` asks for; the deliveries in all, or the emitter's error.
fn emit(emitter: &SocketEmitter, request: &EmitRequest) -> Result<usize, String> {
    let to = || emitter.to(&request.channel);
    let sent = if let Some(count) = request.count {
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
    } else if let Some(bytes) = &request.file {
        let upload = Upload {
            name: "f.bin",
            file: Binary::from(bytes.clone()),
        };
        to().emit(&request.event, &upload)
    } else {
        to().emit(&request.event, &request.data.clone().unwrap_or(Value::Null))
    };
    sent.map_err(|e| e.to_string())
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

/// GET /page: an empty page of the server's own origin, for the browser.
async fn page_route() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><meta charset=utf-8><title>plainws</title><p>plainws</p>")
}

// ---------------------------------------------------------------------------
// Harness

/// A fresh in-process server with this file's hook, channels and routes, and the plain
/// WebSocket settings `configure` makes.
fn start(configure: impl FnOnce(&mut PlainConfig)) -> InProcess {
    // Server logs go to the test's captured output (shown when it fails); RUST_LOG adjusts them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    let tidings = Tidings::builder()
        .authenticate(authenticate)
        .plain_websocket(configure)
        .build()
        .expect("the channels of this file do not conflict");
    InProcess::start(tidings, |cfg| {
        cfg.route("/emit", web::post().to(emit_route))
            .route("/close-all", web::post().to(close_all_route))
            .route("/stats", web::get().to(stats_route))
            .route("/page", web::get().to(page_route));
    })
}

/// Tests whose verdict depends on timing (pings, a flood, a shutdown) run one at a time, so
/// that they do not load the machine for each other.
static TIMING: Mutex<()> = Mutex::new(());

fn timing() -> MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs scenario `name` of plainws_client.mjs against `server` (failing with the script's
/// output when it fails), then checks that the server is still up.
fn scenario_on(server: &InProcess, name: &str, limit: Duration) {
    support::run_node("plainws_client.mjs", name, &server.url(), &[], limit);
    assert!(server.is_running(), "the server thread ended during {name}");
}

/// Waits (at most 5 s) for the server to count no connection and no subscription.
fn everything_cleaned_up(server: &InProcess, when: &str) {
    let started = Instant::now();
    let counts = || {
        (
            server.tidings.connection_count(),
            server.tidings.hub().subscription_count(),
        )
    };
    while counts() != (0, 0) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        counts(),
        (0, 0),
        "(connections, subscriptions) left 5 s {when}"
    );
}

/// Runs scenario `name` against a fresh server with the default settings, then checks that
/// every socket the scenario closed is gone.
fn scenario(name: &str) {
    let server = start(|_| {});
    scenario_on(&server, name, Duration::from_secs(40));
    everything_cleaned_up(&server, "after the scenario closed its sockets");
}

// ---------------------------------------------------------------------------
// 1. The table

/// subscribe (refs as strings, numbers, objects, none), join payloads reaching `pass`, join
/// replies as `response`, the refusal reasons `unknown_channel`, `unauthorized`, `invalid`
/// and a channel's own; unsubscribe; events into `handle_in` (ok, ok with a response, an
/// error reason, `not_subscribed`, a panic as `handler_failed` with the connection going on);
/// the connect hook's identity in `handle_in`; `ping` -> `pong`; pipelined requests answered in
/// order; a client's close frame answered with one, its memberships gone.
#[test]
fn every_row_of_the_table() {
    scenario("rows");
}

/// Emits arrive as `{"type":"event","channel","event","data"}` with `data` the emitted value as
/// it is (objects, arrays, strings, numbers, null); a lone binary value as
/// `{"binary":"<base64>"}` and bytes inside a value as base64 text; only to the channel's
/// members; 200 emits in order.
#[test]
fn emits_arrive_as_event_frames() {
    scenario("emits");
}

/// A join's reply comes before the push and the broadcast of its `joined` hook (20 times),
/// and the room's other member gets the broadcast.
#[test]
fn join_reply_comes_before_the_joined_hooks_frames() {
    scenario("join-order");
}

// ---------------------------------------------------------------------------
// 2. Errors as data

/// Not JSON -> `invalid_json`, an unknown or missing `type` -> `unknown_type`, a missing or
/// mistyped field -> `invalid`, each with a `message`; the connection stays open and answers
/// the next request.
#[test]
fn errors_are_answered_as_data() {
    scenario("errors");
}

// ---------------------------------------------------------------------------
// 3. Bound to a path

/// `/ws/<channel>?query`: the ok reply first (with the join's reply when it has one, before
/// what its `joined` hook sends), the query as the join payload, path and query
/// percent-decoded; a refused join: an error frame then 1008; a path no pattern matches: 404;
/// a request that is no handshake: 4xx; the connect hook refusing: 403; a foreign `Origin`:
/// 403, none or the server's own: accepted.
#[test]
fn bound_to_a_path() {
    scenario("bound");
}

// ---------------------------------------------------------------------------
// 4. Bad input

/// `max_payload` 64 KiB: a binary frame -> 1003, a message over 64 KiB (one frame or
/// continuation frames) -> 1009, invalid UTF-8 -> 1007, frames that break RFC 6455 (unmasked,
/// stray continuation, reserved opcode) -> 1002, each with a reason; a message just under the
/// bound is answered; a member receiving a stream of emits meanwhile gets every one.
#[test]
fn bad_input_closes_only_its_sender() {
    let server = start(|ws| ws.max_payload = 64 * 1024);
    scenario_on(&server, "bad-input", Duration::from_secs(40));
    everything_cleaned_up(&server, "after the scenario closed its sockets");
}

// ---------------------------------------------------------------------------
// 5. Liveness

/// Ping interval and timeout 300 ms: the server pings a silent client; one that does not
/// answer (`autoPong: false`) is closed within 0.55-1.5 s and no longer counted; one that
/// answers stays open for 2 s while sending nothing.
#[test]
fn clients_that_do_not_answer_pings_are_closed() {
    let _timing = timing();
    let server = start(|ws| {
        ws.ping_interval = Duration::from_millis(300);
        ws.ping_timeout = Duration::from_millis(300);
    });
    scenario_on(&server, "liveness", Duration::from_secs(40));
    everything_cleaned_up(&server, "after the scenario closed its sockets");
}

// ---------------------------------------------------------------------------
// 6. Slow consumer

/// `max_queued_frames` 64 (and a byte bound of 64 MiB, out of the way): a member that stops
/// reading is cut while 1 KB emits flow; the member that reads gets every one in order.
#[test]
fn slow_consumer_is_cut() {
    let _timing = timing();
    let server = start(|ws| {
        ws.max_queued_frames = 64;
        // Only the frame bound can cut it.
        ws.max_queued_bytes = 64 * 1024 * 1024;
    });
    scenario_on(&server, "slow-consumer", Duration::from_secs(90));
    everything_cleaned_up(&server, "after the scenario closed its sockets");
}

// ---------------------------------------------------------------------------
// 7. Graceful shutdown

/// `tidings.shutdown()` (POST /close-all) right after 8,000 emits of 1 KB: a member that had
/// stopped reading and one that reads get every emit in order, then 1001.
#[test]
fn graceful_shutdown_delivers_then_closes_1001() {
    let _timing = timing();
    let server = start(|ws| {
        ws.max_queued_frames = 100_000;
        ws.max_queued_bytes = 64 * 1024 * 1024;
    });
    scenario_on(&server, "shutdown", Duration::from_secs(40));
    everything_cleaned_up(&server, "after the shutdown");
}

// ---------------------------------------------------------------------------
// 8. One channel, three protocols

/// A socket.io-client, a phoenix.js and a plain WebSocket member of `chats/1` each get the
/// same emits (JSON and binary) in their protocol's shape, and a plain member's `shout`
/// reaches all three.
#[test]
fn one_channel_three_protocols() {
    scenario("three-protocols");
}

// ---------------------------------------------------------------------------
// 9. The browser

/// Headless Chromium's own `WebSocket`, from a page of the server's origin: subscribes over
/// `/ws` and gets an emit; sockets bound to `/ws/vault/b?...` and `/ws/greet/café?nick=zoé`
/// (which the browser percent-encodes) get their ok replies.
#[test]
fn the_browsers_own_websocket() {
    let _timing = timing();
    scenario("browser");
}

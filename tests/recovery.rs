//! Connection state recovery over Socket.IO (`TidingsBuilder::recovery`, socket.io 4.6+'s
//! `connectionStateRecovery`) against the official `socket.io-client` and a raw Engine.IO /
//! Socket.IO client over `ws`: a connection lost without a clean close (the transport closed,
//! the raw WebSocket killed, a polling close packet, a ping timeout) comes back with the same
//! socket id, in the same channels without `pass`, with every channel event it missed in
//! offset order, once each; past the duration, past what a channel keeps, or after a
//! `socket.disconnect()` it gets a fresh session; the connect hook is skipped on recovery
//! unless told otherwise; forged CONNECTs get fresh sessions; without recovery nothing changes
//! on the wire.
//!
//! Every test but the last starts its own in-process server (actix on 127.0.0.1:0) with the
//! channels of this file, the recovery options it needs, a `POST /emit`, a `POST /emit-many`
//! and a `GET /stats` route, then runs one scenario of `tests/js/recovery_client.mjs` against
//! it. The last runs the `chat` example, which turns recovery on with its defaults.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tidings::socketio::SocketIoBuilder;
use tidings::{
    Authorizer, Binary, ChannelContext, ConnectRefusal, Handshake, JoinContext, JoinRefusal,
    JoinVerdict, Joined, LeaveReason, Outbound, Payload, Recovery, Reply, SocketEmitter, Tidings,
    channel,
};

// ---------------------------------------------------------------------------
// Call counts

/// How many times each hook ran, by `<hook>:<channel>` (`pass:room/a`, `joined:room/a`,
/// `left:room/a`, `join:nick/1`) and `connect:<token>` for the connect hook.
#[derive(Debug, Default)]
struct Calls(Mutex<BTreeMap<String, u64>>);

impl Calls {
    fn bump(&self, key: impl Into<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.into())
            .or_default() += 1;
    }

    fn count(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn bump(calls: Option<&Calls>, key: String) {
    if let Some(calls) = calls {
        calls.bump(key);
    }
}

// ---------------------------------------------------------------------------
// Identity and connect hook

/// Who a connection is, as the connect hook decides from `auth.token`.
#[derive(Debug, Clone)]
struct User {
    name: String,
}

/// No token: `guest`. `alice`: alice. `once`: let in the first time only (`once only`
/// afterwards). `slow-back`: a hook that takes a second when the client comes back with a
/// `pid` (recovery), so that the test can act while it runs. Anything else: `invalid token`.
async fn authenticate(calls: Arc<Calls>, handshake: Handshake) -> Result<User, ConnectRefusal> {
    let auth = handshake.auth::<Value>().unwrap_or_default();
    let token = auth.get("token").and_then(Value::as_str).unwrap_or("guest");
    calls.bump(format!("connect:{token}"));
    let user = |name: &str| User {
        name: name.to_owned(),
    };
    match token {
        "guest" | "alice" => Ok(user(token)),
        "once" if calls.count("connect:once") == 1 => Ok(user("once")),
        "once" => Err(ConnectRefusal::new("once only")),
        "slow-back" => {
            if auth.get("pid").is_some() {
                calls.bump("connect:slow-back:recovering");
                actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(user("slow"))
        }
        _ => Err(ConnectRefusal::new("invalid token")),
    }
}

// ---------------------------------------------------------------------------
// Channels

/// `room/:id`: anyone may join (`pass` counted); `joined` and `left` counted. Events:
/// `whoami` replies the identity's name; `ping` pushes `pong` with the event's first argument
/// (a string) to the sender only.
#[channel("room/:id")]
#[derive(Default)]
struct Room;

impl Authorizer for Room {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        bump(join.app_data::<Calls>(), format!("pass:{}", join.channel()));
        true
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        bump(ctx.app_data::<Calls>(), format!("joined:{}", ctx.channel()));
    }

    async fn left(&self, ctx: &ChannelContext<'_>, _reason: &LeaveReason) {
        bump(ctx.app_data::<Calls>(), format!("left:{}", ctx.channel()));
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "whoami" => Reply::ok_with(&ctx.identity::<User>().map(|u| u.name.clone())),
            "ping" => {
                let pushed = payload
                    .get::<String>(0)
                    .map_err(|err| err.to_string())
                    .and_then(|text| Payload::from_value(&text).map_err(|err| err.to_string()))
                    .and_then(|pong| ctx.push("pong", pong).map_err(|err| err.to_string()));
                match pushed {
                    Ok(()) => Reply::Ok,
                    Err(reason) => Reply::error(reason),
                }
            }
            _ => Reply::error("unknown_event"),
        }
    }
}

/// The nick a member of `nick/:id` joined with, in its assigns.
#[derive(Debug, Clone)]
struct Nick(String);

/// `nick/:id`, with the full join: `{"nick": N}` required, kept in the member's assigns
/// (`join` counted). `whoami` replies `{"nick": N, "user": name}` from assigns and identity.
#[channel("nick/:id")]
#[derive(Default)]
struct NickRoom;

impl Authorizer for NickRoom {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        bump(join.app_data::<Calls>(), format!("join:{}", join.channel()));
        let payload = join.payload::<Value>().unwrap_or_default();
        let Some(nick) = payload.get("nick").and_then(Value::as_str) else {
            return Err(JoinRefusal::unauthorized());
        };
        Ok(Joined::new().assign(Nick(nick.to_owned())))
    }

    async fn handle_in(&self, event: &str, _payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "whoami" => Reply::ok_with(&json!({
                "nick": ctx.assigned::<Nick>().map(|n| n.0),
                "user": ctx.identity::<User>().map(|u| u.name.clone()),
            })),
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `filtered/:id`: a per-member filter. `secret` is dropped for every member; `shout`
/// `{"text": T}` is rewritten to `{"text": T in upper case}`. Other events pass as they are.
#[channel("filtered/:id")]
#[derive(Default)]
struct Filtered;

impl Authorizer for Filtered {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    const INTERCEPT: &'static [&'static str] = &["secret", "shout"];

    fn handle_out(&self, event: &str, payload: &Payload, _ctx: &ChannelContext<'_>) -> Outbound {
        match event {
            "secret" => Outbound::Drop,
            "shout" => {
                let text = payload
                    .get::<Value>(0)
                    .ok()
                    .and_then(|p| p["text"].as_str().map(str::to_uppercase))
                    .unwrap_or_default();
                match Payload::from_value(&json!({ "text": text })) {
                    Ok(loud) => Outbound::Replace(loud),
                    Err(_) => Outbound::Drop,
                }
            }
            _ => Outbound::Keep,
        }
    }
}

/// `slow/:id`: anyone may join; its `left` hook takes 300 ms (a database write, say).
#[channel("slow/:id")]
#[derive(Default)]
struct Slow;

impl Authorizer for Slow {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn left(&self, ctx: &ChannelContext<'_>, _reason: &LeaveReason) {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        bump(ctx.app_data::<Calls>(), format!("left:{}", ctx.channel()));
    }
}

// ---------------------------------------------------------------------------
// HTTP routes

#[derive(Deserialize)]
struct EmitRequest {
    channel: String,
    event: String,
    data: Value,
    /// `data` is a string sent as binary.
    #[serde(default)]
    binary: bool,
}

fn emit_one(emitter: &SocketEmitter, request: &EmitRequest) -> Result<usize, String> {
    let result = if request.binary {
        let text = request
            .data
            .as_str()
            .ok_or("binary data must be a string")?;
        emitter.emit(
            &request.event,
            request.channel.as_str(),
            &Binary::from(text.as_bytes().to_vec()),
        )
    } else {
        emitter.emit(&request.event, request.channel.as_str(), &request.data)
    };
    result.map_err(|err| err.to_string())
}

/// POST /emit: `{channel, event, data, binary?}` -> `{"delivered": n}` (400 `{"error"}`).
async fn emit_route(emitter: SocketEmitter, body: web::Json<EmitRequest>) -> HttpResponse {
    match emit_one(&emitter, &body) {
        Ok(delivered) => HttpResponse::Ok().json(json!({ "delivered": delivered })),
        Err(error) => HttpResponse::BadRequest().json(json!({ "error": error })),
    }
}

/// POST /emit-many: `[{channel, event, data, binary?}, ...]`, emitted in this order ->
/// `{"delivered": [n, ...]}`.
async fn emit_many_route(
    emitter: SocketEmitter,
    body: web::Json<Vec<EmitRequest>>,
) -> HttpResponse {
    let mut delivered = Vec::with_capacity(body.len());
    for request in body.iter() {
        match emit_one(&emitter, request) {
            Ok(n) => delivered.push(n),
            Err(error) => return HttpResponse::BadRequest().json(json!({ "error": error })),
        }
    }
    HttpResponse::Ok().json(json!({ "delivered": delivered }))
}

/// The channels whose member counts GET /stats reports.
const WATCHED: [&str; 6] = [
    "room/a",
    "room/b",
    "room/c",
    "nick/1",
    "filtered/1",
    "slow/1",
];

/// GET /stats: `{connections, subscriptions, members: {channel: n}, calls: {key: n}}`.
async fn stats_route(tidings: web::Data<Tidings>, calls: web::Data<Calls>) -> HttpResponse {
    let members: BTreeMap<&str, usize> = WATCHED
        .iter()
        .map(|channel| (*channel, tidings.hub().member_count(channel)))
        .collect();
    HttpResponse::Ok().json(json!({
        "connections": tidings.io().connection_count(),
        "subscriptions": tidings.hub().subscription_count(),
        "members": members,
        "calls": calls.snapshot(),
    }))
}

// ---------------------------------------------------------------------------
// In-process server

/// A fresh in-process server with this file's channels, connect hook and routes, recovery as
/// given (`None`: off), and the Socket.IO settings `io` makes.
fn start_server(
    recovery: Option<Recovery>,
    io: impl FnOnce(SocketIoBuilder) -> SocketIoBuilder,
) -> support::InProcess {
    // Server logs go to the test's captured output (shown when it fails); RUST_LOG adjusts
    // them (RUST_LOG=tidings_runtime=debug shows suspensions and restores).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    let calls = Arc::new(Calls::default());
    let hook_calls = calls.clone();
    let mut builder = Tidings::builder()
        .socketio(io)
        .app_data(web::Data::from(calls))
        .authenticate(move |handshake| authenticate(hook_calls.clone(), handshake));
    if let Some(recovery) = recovery {
        builder = builder.recovery(recovery);
    }
    let tidings = builder
        .build()
        .expect("the channels of this file do not conflict");
    support::InProcess::start(tidings, |cfg| {
        cfg.route("/emit", web::post().to(emit_route))
            .route("/emit-many", web::post().to(emit_many_route))
            .route("/stats", web::get().to(stats_route));
    })
}

/// How long one scenario may take, server included.
const LIMIT: Duration = Duration::from_secs(40);

/// Runs one scenario of `recovery_client.mjs` against a fresh server.
fn scenario_with(
    name: &str,
    recovery: Option<Recovery>,
    io: impl FnOnce(SocketIoBuilder) -> SocketIoBuilder,
) {
    let server = start_server(recovery, io);
    support::run_node("recovery_client.mjs", name, &server.url(), &[], LIMIT);
    assert!(
        server.is_running(),
        "the server must still run after {name}"
    );
}

/// Runs one scenario with recovery configured by `recovery` (default Socket.IO settings).
fn scenario(name: &str, recovery: Option<Recovery>) {
    scenario_with(name, recovery, |io| io);
}

fn defaults() -> Option<Recovery> {
    Some(Recovery::default())
}

// ---------------------------------------------------------------------------
// Recovered: same id, same channels, every missed event once, in order

#[test]
fn engine_close_recovers_every_missed_event_in_order() {
    scenario("engine-close", defaults());
}

#[test]
fn killed_websocket_recovers_every_missed_event_in_order() {
    scenario("ws-terminate", defaults());
}

#[test]
fn polling_close_packet_recovers_every_missed_event_in_order() {
    // socket.io's own server test: the client ends its Engine.IO session with a close packet.
    scenario("polling-close", defaults());
}

#[test]
fn ping_timeout_recovers_every_missed_event_in_order() {
    scenario_with("ping-timeout", defaults(), |io| {
        // Short enough for a quick test, long enough for a loaded machine to answer in time
        // when it does answer.
        io.ping_interval(Duration::from_millis(500))
            .ping_timeout(Duration::from_millis(1500))
    });
}

#[test]
fn recovers_twice_in_a_row() {
    scenario("twice", defaults());
}

#[test]
fn quick_reconnect_recovers() {
    // socket.io-client's own recovery test reconnects after 10 ms.
    scenario("quick", defaults());
}

#[test]
fn two_channels_interleaved_follow_the_offsets() {
    scenario("two-channels", defaults());
}

#[test]
fn binary_events_are_replayed_as_binary() {
    scenario("binary", defaults());
}

#[test]
fn assigns_and_identity_survive_and_the_connect_hook_is_skipped() {
    scenario("hook-skipped", defaults());
}

#[test]
fn replay_goes_through_the_per_member_filter() {
    scenario("replay-filtered", defaults());
}

#[test]
fn replaced_events_carry_their_offset() {
    scenario("replaced-offset", defaults());
}

// ---------------------------------------------------------------------------
// Not recovered: a fresh session, never a silent gap

#[test]
fn past_the_max_duration_is_a_fresh_session() {
    scenario(
        "expired",
        Some(Recovery::default().max_disconnection_duration(Duration::from_secs(1))),
    );
}

#[test]
fn missing_more_than_a_channel_keeps_is_a_fresh_session() {
    scenario(
        "overflow",
        Some(Recovery::default().max_events_per_channel(10)),
    );
}

#[test]
fn only_the_members_channels_decide_whether_it_recovers() {
    scenario(
        "overflow-other-channel",
        Some(Recovery::default().max_events_per_channel(10)),
    );
}

#[test]
fn client_disconnect_is_not_recovered() {
    scenario("client-disconnect", defaults());
}

// ---------------------------------------------------------------------------
// The connect hook when it runs again

#[test]
fn connect_hook_runs_again_when_told() {
    scenario(
        "hook-rerun",
        Some(Recovery::default().skip_connect_hook(false)),
    );
}

#[test]
fn connect_hook_refusing_on_recovery_is_a_connect_error() {
    scenario(
        "hook-refuses",
        Some(Recovery::default().skip_connect_hook(false)),
    );
}

// ---------------------------------------------------------------------------
// The wire, and input nobody should send

#[test]
fn without_recovery_nothing_changes_on_the_wire() {
    scenario("recovery-off", None);
}

#[test]
fn with_recovery_the_wire_carries_pid_and_offsets() {
    // socket.io's own server tests: pid in the CONNECT answer, the offset last in every
    // event, and a raw client back with {pid, offset} gets its id and the missed events.
    scenario("wire", defaults());
}

#[test]
fn forged_or_malformed_recovery_gets_a_fresh_session() {
    scenario("forged", defaults());
}

// ---------------------------------------------------------------------------
// Runtime bugs found while writing these tests: each test states the expected behaviour and
// fails today; run them with `cargo test --test recovery -- --ignored`.

#[test]
fn direct_pushes_of_text_do_not_disturb_the_offset() {
    scenario("push-offset-text", defaults());
}

#[test]
fn direct_pushes_of_digits_do_not_disturb_the_offset() {
    scenario("push-offset-number", defaults());
}

#[test]
fn a_recovery_that_fails_late_is_never_a_silent_gap() {
    scenario(
        "late-failure",
        Some(
            Recovery::default()
                .max_events_per_channel(10)
                .skip_connect_hook(false),
        ),
    );
}

#[test]
fn a_slow_left_hook_does_not_lose_the_session() {
    scenario("slow-left", defaults());
}

#[test]
fn events_from_before_a_join_are_not_replayed() {
    scenario("before-join", defaults());
}

// ---------------------------------------------------------------------------
// The chat example (recovery on with its defaults)

#[test]
fn chat_example_recovers_a_hundred_messages() {
    let server = support::Server::start("chat", &[]);
    support::run_node(
        "recovery_client.mjs",
        "chat",
        &server.url(),
        &[],
        Duration::from_secs(30),
    );
}

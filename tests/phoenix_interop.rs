//! The Phoenix Channels gateway against the official `phoenix` npm client (1.8.16, and 1.7.23
//! as `phoenix17`), over WebSocket and LongPoll: what phoenix.js sees for every row of the
//! checklist of the Phoenix notes (join replies and refusal reasons, push replies, unmatched
//! topics and stale join_refs, leave and `phx_close`, crashes and `phx_error` with the
//! automatic rejoin, broadcasts and direct pushes, the join reply before anything else of
//! its join, duplicate joins), heartbeats, reconnects after the server closed every
//! connection, binary payloads both ways, the `authToken` option, the V1 serializer, and a
//! socket.io-client member of the same channel.
//!
//! Every test starts its own in-process server (actix on 127.0.0.1:0) with the channels of
//! this file, then runs one scenario of `tests/js/phoenix_client.mjs` against it, over the
//! transport named in the test (`websocket`: phoenix.js with `transport: WebSocket` from
//! `ws`; `longpoll`: phoenix.js with no transport option, which on Node 20 is LongPoll over
//! `fetch`).

mod support;

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tidings::channels::{JoinRefusal, JoinVerdict, Joined};
use tidings::phoenix::PhoenixConfig;
use tidings::{
    Authorizer, Binary, ChannelContext, ConnectRefusal, Handshake, JoinContext, Payload, Reply,
    SocketEmitter, Tidings, channel,
};

// ---------------------------------------------------------------------------
// Identity and connect hook

/// Who a socket is: its `user` socket param, and the `authToken` it gave (if any).
#[derive(Debug, Clone)]
struct User {
    name: String,
    token: Option<String>,
}

/// A socket needs a non-empty `user` param (phoenix.js `params: {user}`, Socket.IO
/// `query: {user}`); the `authToken` (phoenix.js 1.8) arrives as the auth `{"token": T}`,
/// and the token `bad-token` is refused.
async fn authenticate(handshake: Handshake) -> Result<User, ConnectRefusal> {
    let token = handshake
        .auth::<Value>()
        .and_then(|auth| auth.get("token").and_then(Value::as_str).map(str::to_owned));
    if token.as_deref() == Some("bad-token") {
        return Err(ConnectRefusal::new("invalid token"));
    }
    match handshake.query_param("user") {
        Some(name) if !name.is_empty() => Ok(User { name, token }),
        _ => Err(ConnectRefusal::new("user required")),
    }
}

fn user_of(ctx: &ChannelContext<'_>) -> (String, Option<String>) {
    ctx.identity::<User>()
        .map(|user| (user.name.clone(), user.token.clone()))
        .unwrap_or_default()
}

fn payload(value: &Value) -> Payload {
    Payload::from_value(value).expect("JSON values serialize")
}

// ---------------------------------------------------------------------------
// Channels

/// `chats/:id`: numeric ids only (else `unauthorized`). Events: `echo` replies ok with its
/// payload, `fail` replies error `nope`, `boom` panics (`phx_error`), `bin` pushes its
/// binary payload back to the sender and replies ok, `shout` broadcasts its payload as
/// `shout` to every member (the sender included) and replies ok, `whoami` replies the
/// identity (`{"user": U, "token": T}`).
#[channel("chats/:id")]
#[derive(Default)]
struct ChatChannel;

impl Authorizer for ChatChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param_as::<u64>("id").is_some()
    }

    async fn handle_in(&self, event: &str, body: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "echo" => match body.get::<Value>(0) {
                Ok(value) => Reply::ok_with(&value),
                Err(_) => Reply::error("no_payload"),
            },
            "fail" => Reply::error("nope"),
            "boom" => panic!("handle_in panics on purpose"),
            "bin" => match body.as_binary() {
                Some(bytes) => match ctx.push("bin", Payload::from_binary(bytes.clone())) {
                    Ok(()) => Reply::Ok,
                    Err(err) => Reply::error(err.to_string()),
                },
                None => Reply::error("not_binary"),
            },
            "shout" => match ctx.broadcast("shout", body) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            "whoami" => {
                let (user, token) = user_of(ctx);
                Reply::ok_with(&json!({ "user": user, "token": token }))
            }
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `lobby:<room>`: the join replies `{"welcome": room, "user": U}`; once joined, the member
/// gets a direct push `hello` `{"to": U}` and everyone a broadcast `arrived` `{"user": U}`.
#[channel("lobby:*room")]
struct LobbyChannel {
    room: String,
}

impl Authorizer for LobbyChannel {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        let user = join
            .identity::<User>()
            .map(|user| user.name.clone())
            .unwrap_or_default();
        Joined::new()
            .reply(&json!({ "welcome": self.room, "user": user }))
            .map_err(|_| JoinRefusal::new("invalid"))
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let (user, _) = user_of(ctx);
        let _ = ctx.push("hello", payload(&json!({ "to": user })));
        let _ = ctx.broadcast("arrived", payload(&json!({ "user": user })));
    }
}

/// `full:<x>`: always refused with a reason of its own, `room_full`.
#[channel("full:*x")]
#[derive(Default)]
struct FullChannel;

impl Authorizer for FullChannel {
    async fn join(&self, _join: &JoinContext<'_>) -> JoinVerdict {
        Err(JoinRefusal::new("room_full"))
    }
}

/// `crashy:<x>`: the join panics (`join crashed`).
#[channel("crashy:*x")]
#[derive(Default)]
struct CrashyChannel;

impl Authorizer for CrashyChannel {
    async fn join(&self, _join: &JoinContext<'_>) -> JoinVerdict {
        panic!("join panics on purpose")
    }
}

// ---------------------------------------------------------------------------
// HTTP routes

#[derive(Deserialize)]
struct EmitRequest {
    channel: String,
    event: String,
    data: Value,
    #[serde(default)]
    binary: bool,
}

/// POST /emit: `{channel, event, data, binary?}` -> `{"delivered": n}` (with `binary`, `data`
/// is a string whose UTF-8 bytes go as one binary payload), or 400 `{"error": ...}`.
async fn emit_route(emitter: SocketEmitter, body: web::Json<EmitRequest>) -> HttpResponse {
    let request = body.into_inner();
    let to = emitter.to(&request.channel);
    let result = if request.binary {
        let Some(text) = request.data.as_str() else {
            return HttpResponse::BadRequest()
                .json(json!({"error": "binary data must be a string"}));
        };
        to.emit(&request.event, &Binary::from(text.as_bytes().to_vec()))
    } else {
        to.emit(&request.event, &request.data)
    };
    match result {
        Ok(delivered) => HttpResponse::Ok().json(json!({ "delivered": delivered })),
        Err(err) => HttpResponse::BadRequest().json(json!({ "error": err.to_string() })),
    }
}

/// POST /close-all: `Tidings::shutdown` closes every connection (WebSocket close 1001,
/// LongPoll sessions gone), while the server keeps accepting new ones.
async fn close_all_route(tidings: web::Data<Tidings>) -> HttpResponse {
    tidings.shutdown();
    HttpResponse::Ok().json(json!({ "closed": true }))
}

/// GET /stats: connection and subscription counts.
async fn stats_route(tidings: web::Data<Tidings>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "connections": tidings.connection_count(),
        "subscriptions": tidings.hub().subscription_count(),
    }))
}

// ---------------------------------------------------------------------------
// In-process server

/// A fresh in-process server with this file's channels, connect hook and routes.
fn start_server() -> support::InProcess {
    // Server logs go to the test's captured output (shown when it fails); RUST_LOG
    // adjusts them (errors only by default: the panicking hooks log one each).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    let tidings = Tidings::builder()
        .authenticate(authenticate)
        .build()
        .expect("the channels of this file do not conflict");
    support::InProcess::start(tidings, |cfg| {
        cfg.route("/emit", web::post().to(emit_route))
            .route("/close-all", web::post().to(close_all_route))
            .route("/stats", web::get().to(stats_route));
    })
}

/// How phoenix.js reaches the server.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `transport: WebSocket` (the `ws` package).
    WebSocket,
    /// No transport option: phoenix.js 1.8 on Node 20 picks LongPoll (`fetch`).
    LongPoll,
}

/// Runs scenario `name` of `phoenix_client.mjs` over `via` against a fresh server.
fn scenario(name: &str, via: Via) {
    let server = start_server();
    let transport = match via {
        Via::WebSocket => "websocket",
        Via::LongPoll => "longpoll",
    };
    support::run_node(
        "phoenix_client.mjs",
        &format!("{name}:{transport}"),
        &server.url(),
        &[],
        Duration::from_secs(30),
    );
    assert!(server.is_running(), "the server must survive {name}");
}

// ---------------------------------------------------------------------------
// Handshake (checklist 1): vsn negotiation and connect refusals

#[test]
fn handshake_vsn_and_refusals_websocket() {
    scenario("handshake", Via::WebSocket);
}

#[test]
fn handshake_vsn_and_refusals_longpoll() {
    scenario("handshake", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Joins (checklist 4): ok with a reply, refusal reasons, the reply first, duplicates

#[test]
fn join_ok_with_reply_websocket() {
    scenario("join-ok", Via::WebSocket);
}

#[test]
fn join_ok_with_reply_longpoll() {
    scenario("join-ok", Via::LongPoll);
}

#[test]
fn join_refusal_reasons_websocket() {
    scenario("join-refusals", Via::WebSocket);
}

#[test]
fn join_refusal_reasons_longpoll() {
    scenario("join-refusals", Via::LongPoll);
}

#[test]
fn join_reply_precedes_joined_push_and_broadcast_websocket() {
    scenario("join-reply-first", Via::WebSocket);
}

#[test]
fn join_reply_precedes_joined_push_and_broadcast_longpoll() {
    scenario("join-reply-first", Via::LongPoll);
}

#[test]
fn duplicate_join_closes_the_first_websocket() {
    scenario("duplicate-join", Via::WebSocket);
}

#[test]
fn duplicate_join_closes_the_first_longpoll() {
    scenario("duplicate-join", Via::LongPoll);
}

/// A second join while the first is still being decided: the first join's reply, then its
/// `phx_close`, then the second join's reply (Phoenix joins synchronously).
#[test]
fn duplicate_join_while_the_first_is_pending_websocket() {
    scenario("duplicate-join-pending", Via::WebSocket);
}

/// Over LongPoll both joins come in one upload (phoenix.js batches a tick's pushes).
#[test]
fn duplicate_join_while_the_first_is_pending_longpoll() {
    scenario("duplicate-join-pending", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Pushes (checklist 5, 7): replies, unmatched topics, stale join_refs

#[test]
fn push_replies_ok_and_error_websocket() {
    scenario("push-replies", Via::WebSocket);
}

#[test]
fn push_replies_ok_and_error_longpoll() {
    scenario("push-replies", Via::LongPoll);
}

#[test]
fn push_to_unjoined_topic_is_unmatched_and_stale_join_ref_ignored_websocket() {
    scenario("unmatched-topic", Via::WebSocket);
}

#[test]
fn push_to_unjoined_topic_is_unmatched_and_stale_join_ref_ignored_longpoll() {
    scenario("unmatched-topic", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Channel ends (checklist 6): leave -> phx_close, crash -> phx_error and rejoin

#[test]
fn leave_replies_then_closes_websocket() {
    scenario("leave", Via::WebSocket);
}

#[test]
fn leave_replies_then_closes_longpoll() {
    scenario("leave", Via::LongPoll);
}

#[test]
fn handle_in_panic_errors_the_channel_which_rejoins_websocket() {
    scenario("crash-rejoin", Via::WebSocket);
}

#[test]
fn handle_in_panic_errors_the_channel_which_rejoins_longpoll() {
    scenario("crash-rejoin", Via::LongPoll);
}

/// Pushes queued behind the one that crashed the channel are not handled by it.
#[test]
fn pushes_behind_a_crash_are_not_handled_websocket() {
    scenario("crash-drops-queued-pushes", Via::WebSocket);
}

#[test]
fn pushes_behind_a_crash_are_not_handled_longpoll() {
    scenario("crash-drops-queued-pushes", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Broadcasts (checklist 7)

#[test]
fn emits_reach_every_member_once_and_in_order_websocket() {
    scenario("broadcasts", Via::WebSocket);
}

#[test]
fn emits_reach_every_member_once_and_in_order_longpoll() {
    scenario("broadcasts", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Heartbeats (checklist 3, 8)

#[test]
fn heartbeats_keep_the_socket_up_websocket() {
    scenario("heartbeat", Via::WebSocket);
}

/// LongPoll sends no heartbeats (phoenix.js sets `skipHeartbeat`): `socket.ping` sends the
/// same `phoenix` `heartbeat` message, and the session stays up across several poll windows'
/// worth of pings.
#[test]
fn heartbeats_are_answered_longpoll() {
    scenario("heartbeat", Via::LongPoll);
}

/// Checklist 8: the idle timeout leaves room for phoenix.js's 30 s heartbeat.
#[test]
fn idle_timeout_allows_the_default_heartbeat() {
    let config = PhoenixConfig::default();
    assert!(
        config.idle_timeout >= Duration::from_secs(60),
        "idle timeout {:?} must be at least 60 s",
        config.idle_timeout
    );
    assert_eq!(config.path, "/socket");
    assert!(
        config.websocket && config.longpoll,
        "both transports on by default"
    );
}

// ---------------------------------------------------------------------------
// Reconnects (checklist 8: 1001, not 1000)

#[test]
fn reconnect_and_rejoin_after_close_all_websocket() {
    scenario("reconnect", Via::WebSocket);
}

#[test]
fn reconnect_and_rejoin_after_close_all_longpoll() {
    scenario("reconnect", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Binary payloads (checklist 2, 10)

#[test]
fn binary_both_ways_websocket() {
    scenario("binary", Via::WebSocket);
}

/// LongPoll has no binary downlink: a binary payload from the server arrives as the JSON
/// object `{"binary": "<base64>"}`; the client's binary push goes up as a base64 line.
#[test]
fn binary_as_base64_longpoll() {
    scenario("binary", Via::LongPoll);
}

// ---------------------------------------------------------------------------
// Clients and options

#[test]
fn phoenix_1_7_client_websocket() {
    scenario("phoenix17", Via::WebSocket);
}

#[test]
fn auth_token_option_websocket() {
    scenario("auth-token", Via::WebSocket);
}

#[test]
fn auth_token_option_longpoll() {
    scenario("auth-token", Via::LongPoll);
}

/// phoenix.js uses custom `encode`/`decode` only over WebSocket (LongPoll always uses its own
/// V2 serializer), so V1 is a WebSocket-only scenario.
#[test]
fn v1_serializer_websocket() {
    scenario("v1", Via::WebSocket);
}

#[test]
fn socketio_and_phoenix_members_share_a_channel_websocket() {
    scenario("mixed", Via::WebSocket);
}

#[test]
fn socketio_and_phoenix_members_share_a_channel_longpoll() {
    scenario("mixed", Via::LongPoll);
}

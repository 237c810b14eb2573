//! The channel layer against the official `socket.io-client`: subscribe / unsubscribe acks and
//! their refusal reasons, identities and params reaching `pass`, join payloads, channel
//! isolation, `SocketEmitter` from an HTTP route (except, binary), client events into
//! `handle_in` (replies, broadcasts, panics), cleanup on disconnect, polling, and emits
//! across the polling -> websocket upgrade.
//!
//! Every test starts its own in-process server (actix on 127.0.0.1:0) with the channels of
//! this file, then runs one scenario of `tests/js/channels_client.mjs` against it. A few
//! plain Rust tests check the registry and the emitter without a server.

mod support;

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tidings::__private::ChannelRegistration;
use tidings::channels::{ChannelConfigError, JoinRefusal, JoinVerdict, Joined, Outbound, Registry};
use tidings::{
    Authorizer, Binary, ChannelContext, ConnectRefusal, EmitError, Handshake, JoinContext, Payload,
    Reply, SocketEmitter, Tidings, channel,
};

// ---------------------------------------------------------------------------
// Identity and connect hook

/// Who a connection is, as the connect hook decides from `auth.token`.
#[derive(Debug, Clone)]
struct User {
    name: String,
    id: u64,
    banned: bool,
}

impl User {
    fn new(name: &str, id: u64) -> Self {
        User {
            name: name.to_owned(),
            id,
            banned: false,
        }
    }
}

/// `{token: "alice-token"}` -> alice (1), `"bob-token"` -> bob (2), `"banned-token"` ->
/// mallory (3, banned), no token -> guest (0), anything else is refused with `invalid token`.
async fn authenticate(handshake: Handshake) -> Result<User, ConnectRefusal> {
    let token = handshake
        .auth::<Value>()
        .and_then(|auth| auth.get("token").cloned());
    match token {
        None | Some(Value::Null) => Ok(User::new("guest", 0)),
        Some(Value::String(token)) => match token.as_str() {
            "alice-token" => Ok(User::new("alice", 1)),
            "bob-token" => Ok(User::new("bob", 2)),
            "banned-token" => Ok(User {
                banned: true,
                ..User::new("mallory", 3)
            }),
            _ => Err(ConnectRefusal::new("invalid token")),
        },
        Some(_) => Err(ConnectRefusal::new("invalid token")),
    }
}

// ---------------------------------------------------------------------------
// Channels

/// `chats/:id`: numeric ids, no banned users; echo / shout / everyone / panic events.
#[channel("chats/:id")]
#[derive(Default)]
struct ChatChannel;

impl Authorizer for ChatChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param_as::<u64>("id").is_some() && !join.identity::<User>().is_some_and(|u| u.banned)
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "echo" => match payload.get::<Value>(0) {
                Ok(value) => Reply::ok_with(&value),
                Err(_) => Reply::error("no_argument"),
            },
            "shout" => match ctx.broadcast_from("shout", payload) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            "everyone" => match ctx.broadcast("everyone", payload) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            "panic" => panic!("handle_in panics on purpose"),
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `private/:owner`: only the user named `owner`.
#[channel("private/:owner")]
#[derive(Default)]
struct PrivateChannel;

impl Authorizer for PrivateChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.identity::<User>()
            .is_some_and(|u| join.param("owner") == Some(u.name.as_str()))
    }
}

/// `orders/:user_id/items/:item`, with typed parameters: only the user whose id is
/// `user_id` (a name whose `user_id` is not a number is refused `invalid`).
#[channel("orders/:user_id/items/:item")]
struct OrderItemChannel {
    user_id: u64,
    item: String,
}

impl Authorizer for OrderItemChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.identity::<User>()
            .is_some_and(|u| u.id == self.user_id)
            && !self.item.is_empty()
    }
}

/// `vault/:name`: only with the join payload `{"key": "open-sesame"}`.
#[channel("vault/:name")]
#[derive(Default)]
struct VaultChannel;

impl Authorizer for VaultChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.payload::<Value>()
            .is_some_and(|p| p.get("key").and_then(Value::as_str) == Some("open-sesame"))
    }
}

/// `boom/:x`: `pass` panics.
#[channel("boom/:x")]
#[derive(Default)]
struct BoomChannel;

impl Authorizer for BoomChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        panic!("pass panics on purpose")
    }
}

/// `files/*path`: only paths under `public/`.
#[channel("files/*path")]
#[derive(Default)]
struct FilesChannel;

impl Authorizer for FilesChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param("path").is_some_and(|p| p.starts_with("public/"))
    }
}

/// The nick a member of `room:*` joined with, kept in its assigns.
#[derive(Debug, Clone)]
struct Nick(String);

/// Whether a member of `room:*` asked not to hear `said` from others.
#[derive(Debug, Clone, Copy)]
struct Muted(bool);

/// `room:*` (Phoenix style), with the full join: a nick is required (`{"nick": N}`, reply
/// `{"welcome": N}`), `taken` is refused with its own reason; `say` broadcasts `said`, which
/// each member's filter drops for muted members (`{"mute": true}` at join) except their own.
#[channel("room:*")]
#[derive(Default)]
struct RoomChannel;

impl Authorizer for RoomChannel {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        let payload = join.payload::<Value>().unwrap_or_default();
        let Some(nick) = payload.get("nick").and_then(Value::as_str) else {
            return Err(JoinRefusal::unauthorized());
        };
        if nick == "taken" {
            return Err(JoinRefusal::new("nick_taken"));
        }
        let muted = payload.get("mute") == Some(&Value::Bool(true));
        Joined::new()
            .reply(&json!({ "welcome": nick, "room": join.param("*") }))
            .map(|joined| joined.assign(Nick(nick.to_owned())).assign(Muted(muted)))
            .map_err(|_| JoinRefusal::new("invalid"))
    }

    const INTERCEPT: &'static [&'static str] = &["said"];

    fn handle_out(&self, _event: &str, payload: &Payload, ctx: &ChannelContext<'_>) -> Outbound {
        let from = payload
            .get::<Value>(0)
            .ok()
            .and_then(|p| p["from"].as_str().map(str::to_owned));
        let mine = ctx
            .assigned::<Nick>()
            .is_some_and(|nick| Some(nick.0) == from);
        if ctx.assigned::<Muted>().is_some_and(|m| m.0) && !mine {
            Outbound::Drop
        } else {
            Outbound::Keep
        }
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        let nick = ctx
            .assigned::<Nick>()
            .map(|nick| nick.0)
            .unwrap_or_default();
        match event {
            "say" => {
                let text = payload.get::<String>(0).unwrap_or_default();
                match Payload::from_value(&json!({ "from": nick, "text": text })) {
                    Ok(said) => match ctx.broadcast("said", said) {
                        Ok(_) => Reply::Ok,
                        Err(err) => Reply::error(err.to_string()),
                    },
                    Err(err) => Reply::error(err.to_string()),
                }
            }
            "whoami" => Reply::ok_with(&nick),
            _ => Reply::error("unknown_event"),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP routes

#[derive(Deserialize)]
struct EmitRequest {
    channel: String,
    event: String,
    data: Value,
    except: Option<String>,
    #[serde(default)]
    binary: bool,
}

/// POST /emit: `{channel, event, data, except?, binary?}` -> `{"delivered": n}`, or 400
/// `{"error": ...}` when the emitter refuses.
async fn emit_route(emitter: SocketEmitter, body: web::Json<EmitRequest>) -> HttpResponse {
    let request = body.into_inner();
    let mut to = emitter.to(&request.channel);
    if let Some(except) = &request.except {
        to = to.except(except);
    }
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

/// GET /stats: subscription, channel and connection counts.
async fn stats_route(tidings: web::Data<Tidings>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "subscriptions": tidings.hub().subscription_count(),
        "channels": tidings.hub().channel_count(),
        "connections": tidings.io().connection_count(),
    }))
}

// ---------------------------------------------------------------------------
// In-process server

/// A fresh in-process server with this file's channels, connect hook and routes.
fn start_server() -> support::InProcess {
    // Server logs go to the test's captured output (shown when it fails); RUST_LOG
    // adjusts them (errors only by default: a panicking `pass` or `handle_in` logs one).
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
            .route("/stats", web::get().to(stats_route));
    })
}

/// Runs one scenario of `channels_client.mjs` against a fresh server.
fn scenario(name: &str) {
    let server = start_server();
    support::run_node(
        "channels_client.mjs",
        name,
        &server.url(),
        &[],
        Duration::from_secs(30),
    );
}

// ---------------------------------------------------------------------------
// Scenarios against socket.io-client

#[test]
fn subscribe_is_acked_and_idempotent() {
    scenario("subscribe");
}

#[test]
fn refusals_carry_their_reason() {
    scenario("reasons");
}

#[test]
fn identity_and_params_reach_pass() {
    scenario("identity-params");
}

#[test]
fn join_payload_reaches_pass() {
    scenario("join-payload");
}

#[test]
fn connect_hook_refusal_reaches_the_client() {
    scenario("refused-connect");
}

#[test]
fn emits_reach_only_the_channel_members() {
    scenario("isolation");
}

#[test]
fn emits_to_unknown_channels_or_bad_events_fail() {
    scenario("unknown-emit");
}

#[test]
fn client_events_reach_handle_in() {
    scenario("handle-in");
}

#[test]
fn broadcast_from_skips_the_sender() {
    scenario("broadcast-from");
}

#[test]
fn emit_except_skips_one_socket() {
    scenario("except");
}

#[test]
fn binary_payloads_arrive_as_binary() {
    scenario("binary");
}

#[test]
fn unsubscribe_stops_delivery() {
    scenario("unsubscribe");
}

#[test]
fn disconnects_clean_up_subscriptions() {
    scenario("cleanup");
}

#[test]
fn panics_in_hooks_are_contained() {
    scenario("panics");
}

#[test]
fn emits_survive_the_upgrade_in_order() {
    scenario("upgrade");
}

#[test]
fn joins_answer_with_replies_reasons_and_per_member_filters() {
    scenario("join-api");
}

#[test]
fn channel_protocol_over_polling() {
    scenario("polling");
}

// ---------------------------------------------------------------------------
// Without a server

/// A second chat channel whose pattern conflicts with `ChatChannel`'s (another param name).
#[derive(Default)]
struct ChatByNameChannel;

impl Authorizer for ChatByNameChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

static CHAT_BY_ID: ChannelRegistration =
    ChannelRegistration::new::<ChatChannel>("chats/:id", "ChatChannel");
static CHAT_BY_NAME: ChannelRegistration =
    ChannelRegistration::new::<ChatByNameChannel>("chats/:name", "ChatByNameChannel");

fn assert_conflict(err: &ChannelConfigError) {
    let ChannelConfigError::ChannelConflict {
        first,
        first_pattern,
        second,
        second_pattern,
    } = err
    else {
        panic!("expected ChannelConflict, got {err:?}");
    };
    let mut types = [*first, *second];
    types.sort_unstable();
    assert_eq!(
        types,
        ["ChatByNameChannel", "ChatChannel"],
        "the conflict must name both types: {err}"
    );
    let mut patterns = [*first_pattern, *second_pattern];
    patterns.sort_unstable();
    assert_eq!(patterns, ["chats/:id", "chats/:name"], "{err}");
    let text = err.to_string();
    for name in [
        "ChatChannel",
        "ChatByNameChannel",
        "chats/:id",
        "chats/:name",
    ] {
        assert!(
            text.contains(name),
            "error text {text:?} must mention {name}"
        );
    }
}

#[test]
fn conflicting_registrations_name_both_types() {
    // Each one alone is fine, so the error below is about the pair.
    for alone in [&CHAT_BY_ID, &CHAT_BY_NAME] {
        let registry = Registry::from_registrations([alone]).expect("one registration");
        assert!(registry.matches("chats/1"));
    }

    let err = Registry::from_registrations([&CHAT_BY_ID, &CHAT_BY_NAME])
        .expect_err("chats/{id} and chats/{name} conflict");
    assert_conflict(&err);
    // Same answer whatever the registration order.
    let reversed = Registry::from_registrations([&CHAT_BY_NAME, &CHAT_BY_ID])
        .expect_err("chats/{name} and chats/{id} conflict");
    assert_eq!(reversed, err, "the error must not depend on the order");

    // The builder reports it too.
    let built = Tidings::builder()
        .channels(vec![&CHAT_BY_ID, &CHAT_BY_NAME])
        .build();
    match built {
        Err(tidings::BuildError::Channels(err)) => assert_conflict(&err),
        Err(other) => panic!("expected a channel conflict, got {other:?}"),
        Ok(_) => panic!("a conflicting pair of channels must not build"),
    }
}

#[test]
fn emitter_refuses_unknown_channels_and_bad_events() {
    let tidings = Tidings::builder()
        .build()
        .expect("the channels of this file do not conflict");
    let emitter = tidings.emitter();

    match emitter.emit("message", "nope/1", &json!({"text": "hi"})) {
        Err(EmitError::UnknownChannel(channel)) => assert_eq!(channel, "nope/1"),
        other => panic!("expected UnknownChannel(\"nope/1\"), got {other:?}"),
    }
    for channel in ["chats", "chats/1/2", ""] {
        assert!(
            matches!(
                emitter.emit("message", channel, &1),
                Err(EmitError::UnknownChannel(_))
            ),
            "{channel:?} matches no pattern"
        );
    }
    for event in ["", "a/b"] {
        assert!(
            matches!(
                emitter.emit(event, "chats/1", &1),
                Err(EmitError::InvalidEvent(_))
            ),
            "event {event:?} is invalid"
        );
    }
    // A known channel without members is fine and reaches nobody.
    assert_eq!(
        emitter
            .emit("message", "chats/1", &1)
            .expect("known channel"),
        0
    );
    // A channel named by value: its Display is its name.
    let order = OrderItemChannel {
        user_id: 1,
        item: "book".to_owned(),
    };
    assert_eq!(order.to_string(), "orders/1/items/book");
    assert_eq!(
        emitter
            .emit("shipped", &order, &1)
            .expect("a typed channel names a known channel"),
        0
    );
    assert_eq!(
        emitter.to(order).emit("shipped", &1).expect("by value too"),
        0
    );
    assert!(
        matches!(
            emitter
                .to("files/public/a")
                .except("not-a-socket-id")
                .emit("message", &1),
            Err(EmitError::InvalidMemberId)
        ),
        "an except id that cannot be a member's is an error, not a silent no-op"
    );
}

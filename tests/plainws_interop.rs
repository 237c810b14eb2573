//! The plain WebSocket gateway with clients that have no library: Node's `ws` and the
//! browser's own `WebSocket` in headless Chromium. Every row of the protocol's table (refs
//! echoed, join replies and refusal reasons, events and their replies, `ping`), errors as data,
//! the path-bound form (ok first frame, 1008 refusal, 404 before the upgrade, 403 for a
//! refused connect or a foreign origin), bad input closing only its sender (1003, 1007, 1009),
//! liveness (a client that stops answering pings is closed), a slow consumer cut, the
//! shutdown's 1001, and one emit reaching a socket.io-client, a phoenix.js and a plain member
//! of one channel.
//!
//! Every test starts its own in-process server with the channels of this file and runs one
//! scenario of `tests/js/plainws_interop.mjs` against it.

mod support;

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tidings::channels::{JoinRefusal, JoinVerdict, Joined};
use tidings::{
    Authorizer, Binary, ChannelContext, ConnectRefusal, Handshake, JoinContext, Payload, Reply,
    SocketEmitter, Tidings, channel,
};

/// `chats/<number>`: anyone; `echo` replies with its data, `fail` refuses, `boom` panics,
/// `shout` broadcasts its data as `shouted`.
#[channel("chats/:id")]
pub struct ChatChannel {
    id: u64,
}

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        self.id > 0
    }

    async fn handle_in(&self, event: &str, data: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "echo" => Reply::ok_with(&data.get::<Value>(0).unwrap_or_default()),
            "fail" => Reply::error("nope"),
            "boom" => panic!("handle_in panics on purpose"),
            "shout" => match ctx.broadcast("shouted", data) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            _ => Reply::error("unknown_event"),
        }
    }
}

/// `greet/<name>`: the join replies, and the `joined` hook pushes and broadcasts (which must
/// come after the reply); the join payload's `nick` is required, `taken` refused with its own
/// reason.
#[channel("greet/:name")]
pub struct GreetChannel {
    name: String,
}

impl Authorizer for GreetChannel {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        let payload = join.payload::<Value>().unwrap_or_default();
        let nick = payload
            .get("nick")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match nick {
            "" => Err(JoinRefusal::unauthorized()),
            "taken" => Err(JoinRefusal::new("nick_taken")),
            nick => Joined::new()
                .reply(&json!({ "hello": nick, "room": self.name, "query": payload }))
                .map_err(|_| JoinRefusal::new("invalid")),
        }
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let _ = ctx.push(
            "welcome",
            Payload::from_value(&json!({"to": "you"})).unwrap_or_default(),
        );
        let _ = ctx.broadcast(
            "arrived",
            Payload::from_value(&json!({"n": 1})).unwrap_or_default(),
        );
    }
}

/// The connect hook: a `user` query parameter `mallory` is refused.
async fn authenticate(handshake: Handshake) -> Result<(), ConnectRefusal> {
    match handshake.query_param("user").as_deref() {
        Some("mallory") => Err(ConnectRefusal::new("banned")),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct EmitRequest {
    channel: String,
    event: String,
    data: Value,
    #[serde(default)]
    binary: bool,
}

async fn emit_route(emitter: SocketEmitter, body: web::Json<EmitRequest>) -> HttpResponse {
    let request = body.into_inner();
    let to = emitter.to(&request.channel);
    let sent = if request.binary {
        let bytes = request
            .data
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        to.emit(&request.event, &Binary::from(bytes))
    } else {
        to.emit(&request.event, &request.data)
    };
    match sent {
        Ok(delivered) => HttpResponse::Ok().json(json!({ "delivered": delivered })),
        Err(err) => HttpResponse::BadRequest().json(json!({ "error": err.to_string() })),
    }
}

async fn stats_route(tidings: web::Data<Tidings>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "connections": tidings.connection_count(),
        "subscriptions": tidings.hub().subscription_count(),
    }))
}

async fn close_all_route(tidings: web::Data<Tidings>) -> HttpResponse {
    tidings.shutdown();
    HttpResponse::NoContent().finish()
}

/// A page of the server's own origin, for the browser.
async fn page_route() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .body("<!doctype html><title>plain</title>")
}

fn start() -> support::InProcess {
    let tidings = Tidings::builder()
        .authenticate(authenticate)
        .plain_websocket(|ws| {
            ws.ping_interval = Duration::from_millis(300);
            ws.ping_timeout = Duration::from_millis(300);
            ws.max_payload = 64 * 1024;
            ws.max_queued_frames = 64;
        })
        .build()
        .expect("channels build");
    support::InProcess::start(tidings, |cfg| {
        cfg.route("/emit", web::post().to(emit_route))
            .route("/stats", web::get().to(stats_route))
            .route("/close-all", web::post().to(close_all_route))
            .route("/page", web::get().to(page_route));
    })
}

fn scenario(name: &str) {
    let server = start();
    support::run_node(
        "plainws_interop.mjs",
        name,
        &server.url(),
        &[],
        Duration::from_secs(60),
    );
    assert!(server.is_running(), "the server thread died");
}

#[test]
fn every_row_of_the_protocol() {
    scenario("protocol");
}

#[test]
fn errors_are_data_and_the_connection_stays() {
    scenario("errors");
}

#[test]
fn a_socket_bound_to_its_path() {
    scenario("path-bound");
}

#[test]
fn bad_input_closes_only_its_sender() {
    scenario("bad-input");
}

#[test]
fn a_client_that_stops_answering_pings_is_closed() {
    scenario("liveness");
}

#[test]
fn a_slow_consumer_is_cut_and_the_others_get_everything() {
    scenario("slow-consumer");
}

#[test]
fn shutdown_delivers_what_was_queued_then_1001() {
    scenario("shutdown");
}

#[test]
fn one_emit_reaches_socketio_phoenix_and_plain_members() {
    scenario("three-protocols");
}

#[test]
fn the_browsers_own_websocket() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/test installs Debian's `chromium` package"
    );
    scenario("browser");
}

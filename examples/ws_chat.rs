//! The Azu chat seed, ported: channels for clients with no library, reached over plain
//! WebSocket as `/ws/<channel>` (or multiplexed over `/ws`), and over Socket.IO and Phoenix
//! Channels too.
//!
//! Run: `cargo run --example ws_chat`, then for instance
//! `websocat ws://127.0.0.1:4001/ws/chat` and send
//! `{"type":"event","channel":"chat","event":"message","data":{"content":"hi"}}`.
//!
//! - `chat`: on join the member gets `connected` `{"message": "Welcome!"}`; every join and leave
//!   broadcasts `users` `{"count": N}`, N the connections present on every node (the channel
//!   tracks presence, so its members also get `presence_state` and `presence_diff`, which
//!   also tell of a node that died); `message` `{"content": C}` broadcasts `message`
//!   `{"content": C}`; `typing` goes to the others; `ping` replies ok with `"pong"`; any other
//!   event is refused `unknown_event`.
//! - `secure`: `pass` checks the `token` query parameter (`--token T`, default `azu-secret`);
//!   the member then gets `authenticated` `{"user": ...}`; a bad token is refused (an error
//!   frame, then close 1008).
//! - `rooms/:room_id`: a join broadcasts `joined` `{"room": id}` to the room; `message`
//!   payloads go to the other members of the room.
//!
//! With `--redis`, messages cross nodes and the user count is the cluster's (presence is one
//! state for all nodes).
//!
//! Flags: `--port P` (4001), `--host H`, `--token T`, `--redis URL`, `--allow-origin ORIGIN`,
//! `--ping-interval MS`, `--ping-timeout MS`, `--max-payload BYTES`.

#[path = "support/args.rs"]
mod args;

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tidings::origin::OriginPolicy;
use tidings::{
    Authorizer, ChannelContext, JoinContext, LeaveReason, Payload, Reply, Tidings, channel,
};

fn payload(value: &serde_json::Value) -> Payload {
    Payload::from_value(value).unwrap_or_default()
}

/// The lobby of every connected client.
#[channel("chat")]
#[derive(Default)]
pub struct ChatChannel;

impl ChatChannel {
    fn announce_count(ctx: &ChannelContext<'_>) {
        let count = ctx.presence_count();
        let _ = ctx.broadcast("users", payload(&json!({ "count": count })));
    }
}

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let _ = ctx.push("connected", payload(&json!({ "message": "Welcome!" })));
        // Every connection counts: Azu's clients are anonymous, so the key is the connection.
        if let Err(err) = ctx.track(ctx.member_id().to_string(), &json!({})) {
            tracing::warn!(%err, "presence not tracked");
        }
        Self::announce_count(ctx);
    }

    const PRESENCE: bool = true;

    async fn left(&self, ctx: &ChannelContext<'_>, _reason: &LeaveReason) {
        Self::announce_count(ctx);
    }

    async fn handle_in(&self, event: &str, data: Payload, ctx: &ChannelContext<'_>) -> Reply {
        let sent = match event {
            "message" => ctx.broadcast("message", data),
            "typing" => ctx.broadcast_from("typing", data),
            "ping" => return Reply::ok_with("pong"),
            _ => return Reply::error("unknown_event"),
        };
        match sent {
            Ok(_) => Reply::Ok,
            Err(err) => Reply::error(err.to_string()),
        }
    }
}

/// The token a `secure` member must give.
#[derive(Debug, Clone)]
struct SecureToken(String);

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Only for clients with the token (`/ws/secure?token=...`, or `{"token": ...}` as the join
/// payload over the other protocols).
#[channel("secure")]
#[derive(Default)]
pub struct SecureChannel;

impl Authorizer for SecureChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        let expected = join.app_data::<SecureToken>().map(|t| t.0.as_str());
        let given = join
            .payload::<TokenQuery>()
            .and_then(|q| q.token)
            .or_else(|| join.handshake().query_param("token"));
        expected.is_some() && given.as_deref() == expected
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let user = format!("user-{}", &ctx.member_id().as_str()[..6]);
        let _ = ctx.push("authenticated", payload(&json!({ "user": user })));
    }
}

/// A room per id: joins announced to the room, messages to the others in it.
#[channel("rooms/:room_id")]
pub struct RoomChannel {
    room_id: String,
}

impl Authorizer for RoomChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        !self.room_id.is_empty()
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let _ = ctx.broadcast("joined", payload(&json!({ "room": self.room_id })));
    }

    async fn handle_in(&self, event: &str, data: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "message" => match ctx.broadcast_from("message", data) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            _ => Reply::error("unknown_event"),
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    use actix_web::{App, web};
    use tidings::HttpServer;

    args::init_tracing();
    let args = args::Args::parse(4001);
    let token = args.flag("--token").unwrap_or("azu-secret").to_owned();
    let mut builder = Tidings::builder().app_data(web::Data::new(SecureToken(token)));
    let allowed: Vec<&str> = args.flags("--allow-origin").collect();
    if !allowed.is_empty() {
        builder = builder.origins(OriginPolicy::allow(allowed).map_err(std::io::Error::other)?);
    }
    if let Some(url) = args.flag("--redis") {
        builder = builder.redis(url)?;
    }
    let (interval, timeout, max) = (args.ping_interval, args.ping_timeout, args.max_payload);
    let tidings = builder
        .plain_websocket(|ws| {
            if let Some(interval) = interval {
                ws.ping_interval = interval;
            }
            if let Some(timeout) = timeout {
                ws.ping_timeout = timeout;
            }
            if let Some(max) = max {
                ws.max_payload = max;
            }
        })
        .build()?;
    let app = tidings.clone();
    let server = HttpServer::new(move || App::new().configure(app.configure()))
        .disable_signals()
        .tcp_nodelay(true)
        .bind((args.host.as_str(), args.port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
        tracing::info!("connect to ws://{addr}/ws/chat");
    }
    tidings
        .run_until_stopped(server.run(), Duration::from_secs(5))
        .await
}

//! The Phoenix and trillium chat seeds, ported: phoenix.js clients join these channels over
//! `/socket` (WebSocket or LongPoll) exactly as they joined the Phoenix and trillium servers,
//! and Socket.IO clients reach the same channels at the same time.
//!
//! Run: `cargo run --example phoenix_chat` and open <http://127.0.0.1:4000/?user=ada> in
//! two tabs (the page loads phoenix.js from the npm package).
//!
//! - The connect hook wants a non-empty `user` param (`new Socket("/socket", {params: {user}})`)
//!   and refuses the connection without one.
//! - `room:lobby` (Phoenix's `RoomChannel`): every join broadcasts `user_joined` `{"user": U}`;
//!   a member who joined with `{"ignore": [names]}` does not get it for those names (a
//!   per-member filter, Phoenix's `intercept` + `handle_out`); `new_msg` `{"body": B}`
//!   broadcasts `new_msg` `{"body": B, "user": U}` to everyone, the sender included, and
//!   replies ok. Any other `room:*` topic is refused `unauthorized`. The lobby tracks presence
//!   (Phoenix Presence: `presence_state` after the join, `presence_diff` on changes, so
//!   phoenix.js's `Presence` works): each member under its user name with `{"online_at": MS}`;
//!   `set_status` `{"status": S}` updates its meta to `{"online_at": MS, "status": S}`.
//! - `rooms:lobby` (trillium's chat): a join broadcasts `user:entered` `{"user": U}`;
//!   `new:msg` broadcasts its payload to every member.
//! - `challenges:<id>`: anyone joins.
//!
//! Flags: `--port P` (4000), `--host H`, `--redis URL` (several nodes as one cluster),
//! `--allow-origin ORIGIN` (repeatable), `--idle-timeout MS`, `--longpoll-window MS`,
//! `--longpoll-timeout MS`, `--max-payload BYTES`, `--max-queued-frames N`.

#[path = "support/args.rs"]
mod args;
#[path = "support/npm.rs"]
mod npm;

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{App, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use tidings::HttpServer;
use tidings::origin::OriginPolicy;
use tidings::{
    Authorizer, ChannelContext, ConnectRefusal, Handshake, JoinContext, JoinRefusal, JoinVerdict,
    Joined, Outbound, Payload, Reply, Tidings, channel,
};

/// Who is connected: the `user` socket param.
#[derive(Debug, Clone)]
struct User(String);

/// The names a member of `room:lobby` does not want `user_joined` for.
#[derive(Debug, Clone, Default)]
struct Ignored(Vec<String>);

#[derive(Debug, Default, Deserialize)]
struct RoomParams {
    #[serde(default)]
    ignore: Vec<String>,
}

fn user(ctx: &ChannelContext<'_>) -> String {
    ctx.identity::<User>()
        .map(|user| user.0.clone())
        .unwrap_or_default()
}

fn payload(value: &serde_json::Value) -> Payload {
    Payload::from_value(value).unwrap_or_default()
}

/// Phoenix's `RoomChannel`: `room:lobby` is open, any other `room:*` is private.
#[channel("room:*subtopic")]
pub struct RoomChannel {
    subtopic: String,
}

impl Authorizer for RoomChannel {
    async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
        if self.subtopic != "lobby" {
            return Err(JoinRefusal::unauthorized());
        }
        let params = join.payload::<RoomParams>().unwrap_or_default();
        Ok(Joined::new().assign(Ignored(params.ignore)))
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let _ = ctx.broadcast("user_joined", payload(&json!({ "user": user(ctx) })));
        let online_at = OnlineAt::now();
        ctx.assign(online_at);
        if let Err(err) = ctx.track(user(ctx), &json!({ "online_at": online_at.0 })) {
            tracing::warn!(%err, "presence not tracked");
        }
    }

    const INTERCEPT: &'static [&'static str] = &["user_joined"];

    const PRESENCE: bool = true;

    fn handle_out(&self, _event: &str, payload: &Payload, ctx: &ChannelContext<'_>) -> Outbound {
        let joined = payload
            .get::<serde_json::Value>(0)
            .ok()
            .and_then(|p| p["user"].as_str().map(str::to_owned));
        let ignored = ctx.assigned::<Ignored>().unwrap_or_default();
        if joined.is_some_and(|name| ignored.0.contains(&name)) {
            Outbound::Drop
        } else {
            Outbound::Keep
        }
    }

    async fn handle_in(&self, event: &str, body: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "new_msg" => {
                let text = body
                    .get::<serde_json::Value>(0)
                    .ok()
                    .and_then(|p| p["body"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let message = payload(&json!({ "body": text, "user": user(ctx) }));
                match ctx.broadcast("new_msg", message) {
                    Ok(_) => Reply::Ok,
                    Err(err) => Reply::error(err.to_string()),
                }
            }
            "set_status" => {
                let status = body
                    .get::<serde_json::Value>(0)
                    .ok()
                    .and_then(|p| p["status"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let online_at = ctx.assigned::<OnlineAt>().unwrap_or_else(OnlineAt::now);
                let meta = json!({ "online_at": online_at.0, "status": status });
                match ctx.update_presence(&meta) {
                    Ok(()) => Reply::Ok,
                    Err(err) => Reply::error(err.to_string()),
                }
            }
            _ => Reply::error("unknown_event"),
        }
    }
}

/// When a member of the lobby joined, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy)]
struct OnlineAt(u64);

impl OnlineAt {
    fn now() -> Self {
        OnlineAt(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        )
    }
}

/// trillium's chat: `rooms:lobby`.
#[channel("rooms:lobby")]
#[derive(Default)]
pub struct TrilliumLobby;

impl Authorizer for TrilliumLobby {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let _ = ctx.broadcast("user:entered", payload(&json!({ "user": user(ctx) })));
    }

    async fn handle_in(&self, event: &str, body: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "new:msg" => match ctx.broadcast("new:msg", body) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            _ => Reply::error("unknown_event"),
        }
    }
}

/// The Phoenix seed's second socket: `challenges:<id>`, open to all.
#[channel("challenges:*id")]
pub struct ChallengeChannel {
    id: String,
}

impl Authorizer for ChallengeChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        !self.id.is_empty()
    }
}

const PAGE: &str = include_str!("phoenix_chat/index.html");

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    args::init_tracing();
    let args = args::Args::parse(4000);
    let script = npm::asset("phoenix/priv/static/phoenix.js").unwrap_or_default();

    let mut builder = Tidings::builder();
    let allowed: Vec<&str> = args.flags("--allow-origin").collect();
    if !allowed.is_empty() {
        builder = builder.origins(OriginPolicy::allow(allowed).map_err(std::io::Error::other)?);
    }
    if let Some(url) = args.flag("--redis") {
        builder = builder.redis(url)?;
    }
    let idle = args.millis("--idle-timeout");
    let window = args.millis("--longpoll-window");
    let unpolled = args.millis("--longpoll-timeout");
    let max_payload = args.max_payload;
    let max_queued: Option<usize> = args
        .flag("--max-queued-frames")
        .and_then(|v| v.parse().ok());
    let tidings = builder
        .phoenix(|phoenix| {
            if let Some(idle) = idle {
                phoenix.idle_timeout = idle;
            }
            if let Some(window) = window {
                phoenix.longpoll_window = window;
            }
            if let Some(unpolled) = unpolled {
                phoenix.longpoll_timeout = unpolled;
            }
            if let Some(max) = max_payload {
                phoenix.max_payload = max;
            }
            if let Some(max) = max_queued {
                phoenix.max_queued_frames = max;
            }
        })
        .authenticate(|handshake: Handshake| async move {
            handshake
                .query_param("user")
                .or_else(|| {
                    handshake
                        .auth::<serde_json::Value>()
                        .and_then(|auth| auth.get("user")?.as_str().map(str::to_owned))
                })
                .filter(|user| !user.trim().is_empty())
                .map(User)
                .ok_or_else(|| ConnectRefusal::new("user required"))
        })
        .build()?;

    let app = tidings.clone();
    let server = HttpServer::new(move || {
        let script = script.clone();
        App::new()
            .configure(app.configure())
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type(ContentType::html())
                        .body(PAGE)
                }),
            )
            .route(
                "/assets/phoenix.js",
                web::get().to(move || {
                    let script = script.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/javascript; charset=utf-8")
                            .body(script)
                    }
                }),
            )
    })
    .disable_signals()
    .tcp_nodelay(true)
    .bind((args.host.as_str(), args.port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
        tracing::info!("open http://{addr}/?user=ada");
    }
    tidings
        .run_until_stopped(server.run(), Duration::from_secs(5))
        .await
}

//! The Northle chat app, ported: a page with a message form; `POST /chat` emits `message` to
//! `chats/1` and every open page shows it live. A second, private room (`private/vip`) only
//! lets in connections that presented the VIP token, so the page shows authorization refusing
//! someone.
//!
//! Run: `cargo run --example chat` and open <http://127.0.0.1:8080/chat> in two tabs; add
//! `?token=northle-vip` to the address of one of them to get into the private room.
//!
//! The VIP token may also come as the cookie `northle_token`, which is why pages of other
//! origins are refused unless listed with `--allow-origin`.
//!
//! Connection state recovery is on (2 minutes): a page whose connection drops for a moment
//! comes back with the same socket id, in the same rooms, and gets every message it missed
//! (channel events carry their offset as a last argument, as socket.io's do); with `--redis`,
//! on whichever node of the cluster it reconnects to (the history is in Redis Streams).
//!
//! `chats/<id>` tracks presence: each connection under its visitor's name (the `name` of the
//! Socket.IO auth, or the `name` query parameter; `guest` otherwise), so the page shows who is
//! online from `chats/1/presence_state` and `chats/1/presence_diff`. `GET /online` answers the
//! same list as JSON (`{"users": [{"name": N, "connections": C}]}`), on every node.
//!
//! Flags: `--port P`, `--host H`, `--vip-token T`, `--redis URL` (run several nodes as one
//! cluster through Redis: a message posted on any node shows on the pages of every node),
//! `--allow-origin ORIGIN` (repeatable: a page of that origin may connect, with its cookies).

#[path = "support/args.rs"]
mod args;
#[path = "support/npm.rs"]
mod npm;

use actix_multipart::Multipart;
use actix_web::http::header::{self, ContentType};
use actix_web::{App, HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tidings::HttpServer;
use tidings::origin::OriginPolicy;
use tidings::{
    Authorizer, ChannelContext, ConnectRefusal, Handshake, JoinContext, Payload, Recovery, Reply,
    SocketEmitter, Tidings, channel,
};

/// The public rooms: anyone may join `chats/<number>` (a name whose id is no number is refused
/// `invalid` before `pass` runs: the id is a typed field).
#[channel("chats/:id")]
pub struct ChatChannel {
    id: u64,
}

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        self.id > 0
    }

    const PRESENCE: bool = true;

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let name = ctx
            .identity::<Visitor>()
            .map_or_else(|| "guest".to_owned(), |visitor| visitor.name.clone());
        if let Err(err) = ctx.track(name, &serde_json::json!({})) {
            tracing::warn!(%err, "presence not tracked");
        }
    }
}

/// The private rooms: only VIP visitors may join, and members talk through the socket.
#[channel("private/:room")]
#[derive(Default)]
pub struct PrivateChannel;

impl Authorizer for PrivateChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.identity::<Visitor>()
            .is_some_and(|visitor| visitor.vip)
    }

    async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
        match event {
            "message" => match ctx.broadcast("message", payload) {
                Ok(_) => Reply::Ok,
                Err(err) => Reply::error(err.to_string()),
            },
            _ => Reply::error("unknown_event"),
        }
    }
}

/// Who is connected, as the connect hook found out from the handshake.
#[derive(Debug, Clone)]
struct Visitor {
    vip: bool,
    /// The name shown in the list of who is online.
    name: String,
}

/// The longest visitor name kept (longer ones are cut).
const MAX_NAME: usize = 40;

/// A chat message as it goes out to the pages.
#[derive(Debug, Serialize, Deserialize)]
struct NewMessage {
    message: String,
}

const PAGE: &str = include_str!("chat/index.html");

#[get("/chat")]
async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(PAGE)
}

/// Who is online in `chats/1`, on every node.
#[get("/online")]
async fn online(emitter: SocketEmitter) -> actix_web::Result<HttpResponse> {
    let presences = emitter
        .presence(ChatChannel { id: 1 })
        .await
        .map_err(actix_web::error::ErrorServiceUnavailable)?;
    let users: Vec<serde_json::Value> = presences
        .iter()
        .map(|(name, metas)| serde_json::json!({ "name": name, "connections": metas.len() }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": users })))
}

#[get("/")]
async fn home() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/chat"))
        .finish()
}

/// Takes a message the way a browser posts a form (urlencoded or multipart) or as JSON,
/// and emits it to `chats/1`.
#[post("/chat")]
async fn store(
    emitter: SocketEmitter,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let Some(message) = read_message(&req, body).await? else {
        return Ok(HttpResponse::BadRequest().body("expected a non-empty `message` field"));
    };
    emitter.emit("message", ChatChannel { id: 1 }, &NewMessage { message })?;
    Ok(HttpResponse::NoContent().finish())
}

/// The `message` field of the request body, whatever its encoding.
async fn read_message(req: &HttpRequest, body: web::Payload) -> actix_web::Result<Option<String>> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let message = if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), body);
        let mut message = None;
        while let Some(field) = form.next().await {
            let mut field = field?;
            let is_message = field.name() == Some("message");
            let bytes = field
                .bytes(64 * 1024)
                .await
                .map_err(actix_web::error::ErrorPayloadTooLarge)??;
            if is_message {
                message = Some(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
        message
    } else {
        let bytes = body
            .to_bytes_limited(64 * 1024)
            .await
            .map_err(actix_web::error::ErrorPayloadTooLarge)??;
        if content_type.starts_with("application/json") {
            serde_json::from_slice::<NewMessage>(&bytes)
                .map_err(actix_web::error::ErrorBadRequest)?
                .message
                .into()
        } else {
            serde_urlencoded::from_bytes::<NewMessage>(&bytes)
                .map_err(actix_web::error::ErrorBadRequest)?
                .message
                .into()
        }
    };
    Ok(message.filter(|m| !m.trim().is_empty()))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    args::init_tracing();
    let args = args::Args::parse(8080);
    let vip_token = args.flag("--vip-token").unwrap_or("northle-vip").to_owned();
    let script = npm::asset("socket.io-client/dist/socket.io.min.js").unwrap_or_default();

    // A page whose connection drops for a moment (a phone changing networks) comes back to
    // its rooms with every message it missed: connection state recovery, 2 minutes.
    let mut builder = Tidings::builder().recovery(Recovery::default());
    // Pages of other origins may connect only when listed (the default refuses them: they
    // would connect with the visitor's cookie).
    let allowed: Vec<&str> = args.flags("--allow-origin").collect();
    if !allowed.is_empty() {
        let policy = OriginPolicy::allow(allowed).map_err(std::io::Error::other)?;
        builder = builder.origins(policy.with_credentials(true));
    }
    if let Some(url) = args.flag("--redis") {
        builder = builder.redis(url)?;
    }
    let tidings = builder
        .authenticate(move |handshake: Handshake| {
            let auth = handshake.auth::<serde_json::Value>();
            let name = auth
                .as_ref()
                .and_then(|auth| auth.get("name")?.as_str().map(str::to_owned))
                .or_else(|| handshake.query_param("name"))
                .map(|name| name.trim().chars().take(MAX_NAME).collect::<String>())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "guest".to_owned());
            let token = auth
                .as_ref()
                .and_then(|auth| auth.get("token")?.as_str().map(str::to_owned))
                .or_else(|| handshake.query_param("token"))
                .or_else(|| handshake.cookie("northle_token").map(str::to_owned))
                .filter(|token| !token.is_empty());
            let vip_token = vip_token.clone();
            async move {
                match token {
                    None => Ok(Visitor { vip: false, name }),
                    Some(token) if token == vip_token => Ok(Visitor { vip: true, name }),
                    Some(_) => Err(ConnectRefusal::new("invalid token")),
                }
            }
        })
        .build()?;

    let app = tidings.clone();
    let server = HttpServer::new(move || {
        let script = script.clone();
        App::new()
            .configure(app.configure())
            .service(home)
            .service(page)
            .service(store)
            .service(online)
            .route(
                "/assets/socket.io.min.js",
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
    // Each event goes out at once instead of waiting for the client's ACK of the previous one.
    .tcp_nodelay(true)
    .bind((args.host.as_str(), args.port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
        tracing::info!("open http://{addr}/chat");
    }
    // On SIGINT / SIGTERM: close every connection properly, then stop.
    tidings
        .run_until_stopped(server.run(), std::time::Duration::from_secs(5))
        .await
}

//! The benchmark contract, served by tidings: clients `subscribe` to any `chats/...` channel
//! (acked `{"status":"ok"}`), and `POST /emit` with `{channel, event, data}` sends
//! `<channel>/<event>` with `data` to every subscriber, answering `{"delivered": n}`.
//!
//! Run: `cargo run --release --example bench_server -- --port 3000 [--workers N]
//! [--redis redis://127.0.0.1:6379]`.
//!
//! With `--redis URL`, several of them form one cluster: an emit on any node reaches the
//! subscribers of every node. `/emit` also takes an optional `except` socket id, and answers
//! `503 {"error": ..., "delivered": "local"}` when the event reached this node's subscribers
//! but not the other nodes (Redis unreachable).
//!
//! `--server actix` serves with actix-web's `HttpServer` instead of `tidings::HttpServer` (the
//! default), to compare the two.
//!
//! `--recovery N` turns connection state recovery on with N events kept per channel (the
//! peer `tidings-recovery`).
//!
//! Presence (`bench/src/bin/loadgen/presence.rs`, scenario `presence-10k`): every
//! `presence/...` channel tracks each member under its member id (the Socket.IO socket id)
//! with a small meta, and `GET /presence?channel=...` answers `{"count": N}`, the number of
//! keys present on every node (`SocketEmitter::presence`).

#[path = "support/args.rs"]
mod args;

use actix_web::{App, HttpResponse, get, post, web};
use serde::Deserialize;
use tidings::{
    Authorizer, ChannelContext, EmitError, JoinContext, SocketEmitter, Tidings, channel,
};

/// The allocator the README recommends for a long-running server: jemalloc, with background
/// threads that hand freed pages back. It also makes connects cheaper than glibc's `malloc`,
/// whose arena for each of actix's worker threads grows a page (a system call) at a time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Every `chats/...` channel, open to all.
#[channel("chats/*rest")]
#[derive(Default)]
pub struct BenchChannel;

impl Authorizer for BenchChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

/// Every `presence/...` channel, open to all: each member is tracked under its member id.
#[channel("presence/*rest")]
#[derive(Default)]
pub struct PresenceChannel;

impl Authorizer for PresenceChannel {
    const PRESENCE: bool = true;

    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }

    async fn joined(&self, ctx: &ChannelContext<'_>) {
        let online_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Err(err) = ctx.track(
            ctx.member_id().to_string(),
            &serde_json::json!({ "online_at": online_at }),
        ) {
            tracing::warn!(%err, "presence not tracked");
        }
    }
}

#[derive(Deserialize)]
struct PresenceQuery {
    channel: String,
}

/// How many keys are present in a channel, on every node: `{"count": N}`.
#[get("/presence")]
async fn presence(
    emitter: SocketEmitter,
    query: web::Query<PresenceQuery>,
) -> actix_web::Result<HttpResponse> {
    let presences = emitter
        .presence(query.channel.as_str())
        .await
        .map_err(actix_web::error::ErrorServiceUnavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "count": presences.len() })))
}

#[derive(Deserialize)]
struct Emit {
    channel: String,
    event: String,
    data: serde_json::Value,
    #[serde(default)]
    except: Option<String>,
}

#[post("/emit")]
async fn emit(emitter: SocketEmitter, body: web::Json<Emit>) -> actix_web::Result<HttpResponse> {
    let mut to = emitter.to(&body.channel);
    if let Some(except) = &body.except {
        to = to.except(except);
    }
    match to.emit(&body.event, &body.data) {
        Ok(delivered) => Ok(HttpResponse::Ok().json(serde_json::json!({ "delivered": delivered }))),
        Err(err @ EmitError::Fanout(_)) => Ok(HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "error": err.to_string(), "delivered": "local" }))),
        Err(err) => Err(err.into()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    args::init_tracing();
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(%err, "jemalloc's background threads did not start");
    }
    let args = args::Args::parse(3000);
    let mut builder = Tidings::builder();
    if let Some(url) = args.flag("--redis") {
        builder = builder.redis(url)?;
    }
    // `--recovery N`: connection state recovery on, N events kept per channel (the peer
    // `tidings-recovery`: the cost of keeping history on the fan-out).
    if let Some(events) = args.flag("--recovery") {
        let events = events.parse::<usize>().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--recovery needs a number of events",
            )
        })?;
        builder = builder.recovery(tidings::Recovery::default().max_events_per_channel(events));
    }
    let tidings = builder
        .socketio(|io| {
            let mut io = io;
            if let Some(interval) = args.ping_interval {
                io = io.ping_interval(interval);
            }
            if let Some(timeout) = args.ping_timeout {
                io = io.ping_timeout(timeout);
            }
            io
        })
        .build()?;
    let workers = args
        .flag("--workers")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let app = move || {
        App::new()
            .configure(tidings.configure())
            .service(emit)
            .service(presence)
    };
    // No `.on_connect(tidings::on_connect)` on actix-web's server here: it costs a second file
    // descriptor per connection, and the benchmark's 10,000 connections must fit the machine's
    // limit on open files as every peer's do (one descriptor each). tidings' own server needs
    // none to end a stalled client's connection.
    let server = match args.flag("--server") {
        Some("actix") => {
            let server = actix_web::HttpServer::new(app)
                .workers(workers)
                .backlog(4096)
                .tcp_nodelay(true)
                .bind((args.host.as_str(), args.port))?;
            (server.addrs(), server.run())
        }
        None | Some("tidings") => {
            let server = tidings::HttpServer::new(app)
                .workers(workers)
                .backlog(4096)
                .tcp_nodelay(true)
                .bind((args.host.as_str(), args.port))?;
            (server.addrs(), server.run())
        }
        Some(other) => {
            eprintln!("--server takes actix or tidings, not {other}");
            std::process::exit(2);
        }
    };
    for addr in server.0 {
        println!("listening on http://{addr}");
    }
    server.1.await
}

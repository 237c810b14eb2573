//! The benchmark's Rust phoenix-compatible peer: trillium-channels 0.4 behind the bench
//! contract (`/socket/websocket` for phoenix clients, which may join any `chats/...` topic;
//! `POST /emit` `{channel, event, data}` broadcasts `event` with `data` to the topic).
//!
//! trillium-websockets 0.7.0 drops the query string, so `vsn=2.0.0` is never seen and
//! trillium-channels answers in V1 objects: the load generator speaks V1 to it
//! (`--protocol phoenix-v1`). Its fan-out is one `async_broadcast` channel of capacity 10
//! with overflow on, so a client that falls behind loses events: the bench reports them as
//! loss.
//!
//! Usage: `peer-trillium --port P`.

use serde_json::Value;
use trillium::{Conn, Status};
use trillium_channels::{ChannelBroadcaster, ChannelConn, ChannelEvent, ChannelHandler, channel};

struct Bench;

impl ChannelHandler for Bench {
    async fn join_channel(&self, conn: ChannelConn<'_>, event: ChannelEvent) {
        if event.topic().starts_with("chats/") {
            conn.allow_join(&event, &()).await;
        }
    }
}

/// `POST /emit`: broadcasts to the topic, answers `{"delivered":"async"}` (trillium does not
/// say how many got it).
async fn emit(broadcaster: ChannelBroadcaster, mut conn: Conn) -> Conn {
    let body = match conn.request_body_string().await {
        Ok(body) => body,
        Err(_) => return conn.with_status(Status::BadRequest).halt(),
    };
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return conn.with_status(Status::BadRequest).halt();
    };
    let (Some(topic), Some(event)) = (request["channel"].as_str(), request["event"].as_str())
    else {
        return conn.with_status(Status::BadRequest).halt();
    };
    broadcaster.broadcast(ChannelEvent::new(
        topic.to_owned(),
        event.to_owned(),
        &request["data"],
    ));
    conn.with_status(Status::Ok)
        .with_response_header("content-type", "application/json")
        .with_body(r#"{"delivered":"async"}"#)
        .halt()
}

fn main() {
    let mut port: u16 = 4000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--port", Some(value)) => {
                port = value.parse().unwrap_or_else(|_| {
                    eprintln!("--port expects a number");
                    std::process::exit(2)
                });
            }
            _ => {
                eprintln!("usage: peer-trillium --port P");
                std::process::exit(2)
            }
        }
    }
    let channel = channel(Bench);
    let broadcaster = channel.broadcaster();
    let router = trillium_router::router()
        .get("/socket/websocket", channel)
        .post("/emit", move |conn: Conn| {
            let broadcaster = broadcaster.clone();
            async move { emit(broadcaster, conn).await }
        });
    trillium_tokio::config()
        .with_host("127.0.0.1")
        .with_port(port)
        .with_nodelay()
        .without_signals()
        .run(router);
}

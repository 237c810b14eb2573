//! The Loco channels page, ported: raw Socket.IO handlers, acks both ways, binary, rooms and
//! namespaces.
//!
//! - `/`: on connect emits `auth` with the handshake's auth payload (`{}` if none);
//!   `message` -> `message-back` with the same arguments (binary stays binary);
//!   `message-with-ack` -> acked with the same arguments; `ask` -> asks the client a
//!   `question` with an ack and reports the `answer` (or `answer-timeout`); `bye` ->
//!   disconnects the socket; `join` a room (acked `"ok"`); `to-room` room, args... ->
//!   `room-message` args... to the room.
//! - `/custom`: only the `auth` emit.
//! - `/admin`: refused with `unauthorized` unless the auth payload is `{"token":"let-me-in"}`.
//! - Any other namespace is refused (`Invalid namespace`).
//!
//! Run: `cargo run --example echo -- --port 3000 [--ping-interval MS] [--ping-timeout MS]
//! [--max-payload BYTES] [--connect-timeout MS]`.

#[path = "support/args.rs"]
mod args;

use std::time::Duration;

use actix_web::{App, HttpServer};
use tidings::socketio::{ConnectRefusal, Payload, SocketIo, SocketRef};

/// Emits `auth` with the auth payload the client connected with.
fn emit_auth(socket: &SocketRef) {
    let auth = match socket.auth() {
        Some(raw) => Payload::from_value(raw),
        None => Payload::from_value(&serde_json::json!({})),
    };
    if let Ok(auth) = auth {
        let _ = socket.emit_payload("auth", auth);
    }
}

fn on_default(socket: SocketRef) {
    emit_auth(&socket);
    socket.on("message", |socket, payload, _| {
        let _ = socket.emit_payload("message-back", payload);
    });
    socket.on("message-with-ack", |_, payload, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(payload);
        }
    });
    socket.on("ask", |socket, payload, _| {
        tokio::spawn(async move {
            match socket
                .emit_with_ack("question", payload, Duration::from_millis(1000))
                .await
            {
                Ok(answer) => socket.emit_payload("answer", answer),
                Err(_) => socket.emit_payload("answer-timeout", Payload::new()),
            }
        });
    });
    socket.on("bye", |socket, _, _| socket.disconnect());
    socket.on("join", |socket, payload, ack| {
        if let Ok(room) = payload.get::<String>(0) {
            socket.join(room);
            if let Some(ack) = ack {
                let _ = ack.send_value("ok");
            }
        }
    });
    socket.on("to-room", |socket, payload, _| {
        if let Ok(room) = payload.get::<String>(0) {
            let _ = socket
                .ns()
                .emit_payload_to(&room, "room-message", payload.skip(1));
        }
    });
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    args::init_tracing();
    let args = args::Args::parse(3000);
    let mut builder = SocketIo::builder();
    if let Some(interval) = args.ping_interval {
        builder = builder.ping_interval(interval);
    }
    if let Some(timeout) = args.ping_timeout {
        builder = builder.ping_timeout(timeout);
    }
    if let Some(max) = args.max_payload {
        builder = builder.max_payload(max);
    }
    if let Some(ms) = args
        .flag("--connect-timeout")
        .and_then(|value| value.parse::<u64>().ok())
    {
        builder = builder.connect_timeout(Duration::from_millis(ms));
    }
    let io = builder.build();
    io.ns("/", on_default);
    io.ns("/custom", |socket| emit_auth(&socket));
    io.ns("/admin", |socket| emit_auth(&socket))
        .guard(|socket| async move {
            let token = socket
                .auth()
                .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
                .and_then(|auth| {
                    auth.get("token")
                        .and_then(|t| t.as_str().map(str::to_owned))
                });
            match token.as_deref() {
                Some("let-me-in") => Ok(()),
                _ => Err(ConnectRefusal::new("unauthorized")),
            }
        });

    let server = HttpServer::new(move || App::new().configure(io.configure()))
        // Lets the server end a WebSocket whose client stopped reading.
        .on_connect(tidings::engineio::on_connect)
        .bind((args.host.as_str(), args.port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await
}

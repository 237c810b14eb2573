//! The benchmark contract served by socketioxide on axum, on a current-thread tokio runtime:
//! `subscribe` joins the room named by the channel and acks `{"status":"ok"}`; `POST /emit`
//! `{channel, event, data}` emits `<channel>/<event>` to the room and answers
//! `{"delivered": n}`.
//!
//! The per-socket queue is raised from socketioxide's default (128 packets) to 4096, the size
//! of tidings' `max_queued_frames`, so both servers buffer the same burst.
//!
//! Run: `peer-socketioxide --port 3000 [--nodelay]` (`--nodelay` sets TCP_NODELAY on accepted
//! sockets, as axum's `serve(..).tcp_nodelay(true)` would; `scripts/bench` passes it, since the
//! other peers all have it: tidings' bench_server, Node's http server, the baseline).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use tidings_bench::{Flags, raise_fd_limit};

/// Subscribers per channel, kept beside socketioxide's rooms so `/emit` can answer a count
/// without listing the room's sockets.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

#[derive(Clone)]
struct AppState {
    io: SocketIo,
    counts: Counts,
}

#[derive(Deserialize)]
struct Emit {
    channel: String,
    event: String,
    data: Box<RawValue>,
}

async fn emit(State(state): State<AppState>, Json(body): Json<Emit>) -> Json<serde_json::Value> {
    let event = format!("{}/{}", body.channel, body.event);
    let delivered = state
        .counts
        .lock()
        .map(|c| c.get(&body.channel).copied().unwrap_or(0))
        .unwrap_or(0);
    if let Err(err) = state.io.to(body.channel).emit(event, &body.data).await {
        eprintln!("emit failed: {err}");
    }
    Json(serde_json::json!({ "delivered": delivered }))
}

fn subscribe(socket: &SocketRef, channel: String, ack: AckSender, counts: &Counts) {
    if !channel.starts_with("chats/") {
        let _ = ack.send(&serde_json::json!({"status": "error", "reason": "unknown_channel"}));
        return;
    }
    if !socket.rooms().iter().any(|room| *room == channel) {
        if let Ok(mut counts) = counts.lock() {
            *counts.entry(channel.clone()).or_default() += 1;
        }
        socket.join(channel);
    }
    let _ = ack.send(&serde_json::json!({"status": "ok"}));
}

fn disconnect(socket: &SocketRef, counts: &Counts) {
    let Ok(mut counts) = counts.lock() else {
        return;
    };
    for room in socket.rooms() {
        if let Some(count) = counts.get_mut(room.as_ref()) {
            *count -= 1;
            if *count == 0 {
                counts.remove(room.as_ref());
            }
        }
    }
}

fn on_connect(socket: &SocketRef, counts: &Counts) {
    let on_subscribe = counts.clone();
    socket.on(
        "subscribe",
        move |socket: SocketRef, Data::<String>(channel), ack: AckSender| async move {
            subscribe(&socket, channel, ack, &on_subscribe);
        },
    );
    let on_disconnect = counts.clone();
    socket.on_disconnect(move |socket: SocketRef| async move {
        disconnect(&socket, &on_disconnect);
    });
}

fn main() -> std::io::Result<()> {
    raise_fd_limit();
    let flags = Flags::from_env();
    let port: u16 = flags.num("port", 3000);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(port, flags.has("nodelay")))
}

async fn serve(port: u16, nodelay: bool) -> std::io::Result<()> {
    let (layer, io) = SocketIo::builder().max_buffer_size(4096).build_layer();
    let counts = Counts::default();
    let for_connect = counts.clone();
    io.ns("/", move |socket: SocketRef| async move {
        on_connect(&socket, &for_connect);
    });
    let app = Router::new()
        .route("/emit", post(emit))
        .with_state(AppState { io, counts })
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://127.0.0.1:{port}");
    if nodelay {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await
    } else {
        axum::serve(listener, app).await
    }
}

//! A bare Engine.IO v4 server at `/engine.io/` that echoes every message back unchanged: text
//! as text, binary as binary. No Socket.IO involved: the Engine.IO layer stands on its own.
//!
//! Run: `cargo run --example engine_echo -- --port 3000 [--ping-interval MS]
//! [--ping-timeout MS] [--max-payload BYTES]`.

#[path = "support/args.rs"]
mod args;

use std::sync::Arc;

use actix_web::{App, HttpServer};
use tidings::engineio::{
    CloseReason, Engine, EngineConfig, EngineHandler, Frame, Message, Session,
};

/// Sends every message back to the session it came from.
struct Echo;

impl EngineHandler for Echo {
    type State = ();

    fn on_open(&self, session: &Arc<Session>) {
        tracing::info!(sid = %session.sid(), "open");
    }

    fn on_message(&self, session: &Arc<Session>, _: &(), message: Message) {
        let frame = match message {
            Message::Text(text) => Frame::message(&text),
            Message::Binary(bytes) => Frame::Binary(bytes),
        };
        let _ = session.send(frame);
    }

    fn on_close(&self, session: &Arc<Session>, _: &(), reason: &CloseReason) {
        tracing::info!(sid = %session.sid(), %reason, "close");
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    args::init_tracing();
    let args = args::Args::parse(3000);
    let mut config = EngineConfig::default();
    config.path = "/engine.io/".to_owned();
    if let Some(interval) = args.ping_interval {
        config.ping_interval = interval;
    }
    if let Some(timeout) = args.ping_timeout {
        config.ping_timeout = timeout;
    }
    if let Some(max) = args.max_payload {
        config.max_payload = max;
    }
    let engine = Engine::new(config, Echo);
    let server = HttpServer::new(move || App::new().configure(engine.configure()))
        // Lets the server end a WebSocket whose client stopped reading.
        .on_connect(tidings::engineio::on_connect)
        .bind((args.host.as_str(), args.port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await
}

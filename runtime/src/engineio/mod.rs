//! Engine.IO v4: packets, polling payloads, sessions, the polling and WebSocket transports,
//! the upgrade between them, and the heartbeat.
//!
//! This layer knows nothing of what its messages mean; the layer above plugs in through
//! [`EngineHandler`]. It depends on nothing else in this crate.

mod chunk;
mod config;
mod error;
mod heartbeat;
mod outbox;
mod pacer;
mod packet;
mod payload;
mod serve;
mod server;
mod session;
mod sid;
mod takeover;
pub(crate) mod tcp;
mod transport;
pub(crate) mod wsio;

pub use config::EngineConfig;
pub use error::{CloseReason, DecodeError, RequestError};
pub use packet::{Frame, Packet, SharedText};
pub use payload::{SEPARATOR, decode_payload, encode_packet, encode_payload};
pub use serve::HttpServer;
pub use server::{Engine, EngineHandler, Message};
pub use session::{Handshake, SendError, Session, TransportKind};
pub use sid::{NoRandomness, Sid};
pub use tcp::on_connect;

pub(crate) use chunk::Placed;
pub(crate) use outbox::Limits;
pub(crate) use packet::encode_websocket;
pub(crate) use session::{CloseWatch, Closing, Reader};

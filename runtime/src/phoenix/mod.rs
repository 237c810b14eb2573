//! The Phoenix Channels protocol, as the `phoenix` npm client 1.7 / 1.8 speaks it: messages,
//! the `vsn` negotiation and the V1 / V2 serializers ([`Message`]), and the server
//! ([`PhoenixServer`]) of `<path>/websocket` and `<path>/longpoll` with the heartbeat, idle
//! timeouts and the `authToken` subprotocol.
//!
//! This layer knows nothing of channels: the layer above plugs in through
//! [`PhoenixHandler`]. It stands on Engine.IO's plumbing (bounded queues, WebSocket frames),
//! none of Engine.IO's protocol.

mod config;
mod longpoll;
mod message;
mod server;
mod socket;
mod websocket;

pub use config::PhoenixConfig;
pub use longpoll::{UploadError, decode_upload};
pub use message::{Body, DecodeError, Message, Vsn};
pub use server::{OpenError, PhoenixHandler, PhoenixServer};
pub use socket::{Socket, Transport, frame};

pub(crate) use socket::empty_object;

//! Plain WebSocket: channels for clients with no library at all (a browser's `WebSocket`,
//! `websocat`, any language). One JSON object per text frame, each with a `type`
//! ([`ClientMessage`], [`ServerMessage`]); errors are answered as data and the connection
//! stays open; `<path>/<channel>` binds a socket to one channel as it opens; the server pings
//! clients that go silent and closes the ones that stay so.
//!
//! This layer knows nothing of channels: the layer above plugs in through [`PlainHandler`].

mod config;
mod message;
mod server;
mod socket;

pub use config::PlainConfig;
pub use message::{ClientMessage, DecodeError, ServerMessage};
pub use server::{PlainHandler, PlainServer};
pub use socket::PlainSocket;

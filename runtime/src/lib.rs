//! The runtime of tidings: channels with authorizers, served on actix-web over Socket.IO
//! (Engine.IO v4, Socket.IO v5), Phoenix Channels (phoenix.js, WebSocket and LongPoll) and
//! plain WebSocket, all at once.
//!
//! Layers, each using only the ones before it: [`engineio`] (transports, sessions,
//! heartbeat; its session and WebSocket plumbing also carry the other two protocols), the
//! wire protocols [`socketio`] (packets, namespaces, sockets, acks, rooms), [`phoenix`] and
//! [`plainws`] (with the socket table and WebSocket body they share), [`channels`] (registry,
//! authorization, subscriptions; no wire protocol), the gateways binding each protocol to the
//! channels, then [`SocketEmitter`] and [`Tidings`].

pub mod adapter;
mod builder;
pub mod channels;
mod compact;
mod emitter;
mod endpoint;
pub mod engineio;
mod gateway;
mod id;
pub mod origin;
mod payload;
pub mod phoenix;
pub mod plainws;
mod refusal;
mod request;
pub mod socketio;
mod sync;

pub use builder::{BuildError, Recovery, Tidings, TidingsBuilder};
pub use emitter::{EmitTo, MissingEmitter, SocketEmitter};

pub use payload::{Binary, Payload, PayloadError};

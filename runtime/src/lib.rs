//! The runtime of tidings: channels with authorizers, served over Socket.IO (Engine.IO v4,
//! Socket.IO v5) on actix-web.
//!
//! Layers, each using only the ones before it: [`engineio`] (transports, sessions,
//! heartbeat), [`socketio`] (packets, namespaces, sockets, acks, rooms), [`channels`]
//! (registry, authorization, subscriptions; no wire protocol), the gateways binding a
//! protocol to the channels, then [`SocketEmitter`] and [`Tidings`].

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

pub use builder::{BuildError, Tidings, TidingsBuilder};
pub use emitter::{EmitTo, MissingEmitter, SocketEmitter};

pub use payload::{Binary, Payload, PayloadError};

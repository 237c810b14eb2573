//! The runtime of tidings: Engine.IO v4 and Socket.IO v5 servers on actix-web.
//!
//! Layers, each using only the ones before it: [`engineio`] (transports, sessions,
//! heartbeat), [`socketio`] (packets, namespaces, sockets, acks, rooms).

pub mod engineio;
pub mod socketio;

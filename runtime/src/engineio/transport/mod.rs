//! The two ways a client reaches a session: HTTP long-polling and WebSocket.

pub(crate) mod polling;
pub(crate) mod websocket;

//! What the endpoints that carry a channel protocol without Engine.IO (Phoenix Channels, plain
//! WebSocket) share: a table of sockets with one watcher task per endpoint (liveness, the
//! clean-up of closed sockets), and the WebSocket connection that pumps frames both ways.
//!
//! It stands on Engine.IO's plumbing (the session: a bounded queue and a close; WebSocket
//! frames), none of Engine.IO's protocol.

pub(crate) mod connection;
pub(crate) mod sockets;

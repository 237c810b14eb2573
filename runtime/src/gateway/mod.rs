//! Gateways: each binds one wire protocol to the channel layer, turning its frames into
//! join / leave / event / disconnect calls on the [`crate::channels::Hub`] and encoding the
//! hub's outgoing events once for all its connections.

pub(crate) mod phoenix;
pub(crate) mod socketio;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::channels::{ConnectRefusal, Handshake, Identity};

/// The application's connect hook: from a connection's handshake to its identity, or a
/// refusal. Every gateway runs it for its connections.
pub(crate) type ConnectHook = Arc<
    dyn Fn(Handshake) -> Pin<Box<dyn Future<Output = Result<Identity, ConnectRefusal>> + Send>>
        + Send
        + Sync,
>;

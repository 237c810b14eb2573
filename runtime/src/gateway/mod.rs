//! Gateways: each binds one wire protocol to the channel layer, turning its frames into
//! join / leave / event / disconnect calls on the [`crate::channels::Hub`] and encoding the
//! hub's outgoing events once for all its connections.

pub(crate) mod socketio;

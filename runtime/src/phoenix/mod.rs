//! The Phoenix Channels wire format (the protocol of the `phoenix` npm client): messages, the
//! `vsn` negotiation and the V1 / V2 serializers. The gateway that serves phoenix.js clients
//! over WebSocket and LongPoll is built on it.
//!
//! This layer knows nothing of channels; like [`crate::socketio`] it only reads and writes frames.

mod message;

pub use message::{Body, DecodeError, Message, Vsn};

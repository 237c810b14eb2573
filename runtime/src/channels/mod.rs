//! Channels: the registry of `#[channel]` types, authorization of joins, subscriptions, client
//! events into channels, and broadcasts.
//!
//! This layer knows nothing of any wire protocol: a transport turns its frames into
//! [`Hub::join`], [`Hub::leave`], [`Hub::event`] and [`Hub::disconnect`] calls, and receives
//! [`Outgoing`] events through its [`Sink`], encoding each once for all its connections.

mod authorizer;
mod context;
mod error;
mod hub;
mod registry;

pub use authorizer::{Authorizer, Reply};
pub use context::{AppData, ChannelContext, Handshake, Identity, JoinContext, LeaveReason};
pub use error::{ChannelConfigError, EmitError, EventError, JoinError};
pub use hub::{ChannelLimits, ENCODING_SLOTS, Fanout, FanoutError, Hub, Outgoing, Peer, Sink};
pub use registry::{ChannelRegistration, Params, Registry};

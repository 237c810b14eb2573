//! Channels: the registry of `#[channel]` types, authorization of joins, subscriptions, client
//! events into channels, and broadcasts.
//!
//! This layer knows nothing of any wire protocol. A gateway makes a [`Member`] per client
//! connection and turns its frames into [`Member::join`], [`Member::leave`],
//! [`Member::event`] and [`Member::disconnect`] calls; it receives [`Outgoing`] events through
//! its [`Sink`] and encodes each once for all its connections ([`Outgoing::encoded`]).

mod authorizer;
mod context;
mod error;
mod fanout;
mod history;
mod hub;
mod member;
mod outgoing;
pub mod presence;
mod registry;

pub use crate::refusal::ConnectRefusal;
pub use authorizer::{Assigns, Authorizer, JoinRefusal, JoinVerdict, Joined, Outbound, Reply};
pub use context::{
    AppData, ChannelContext, Disconnect, Handshake, Identity, JoinContext, LeaveReason,
};
pub use error::{ChannelConfigError, EmitError, EventError, JoinError};
pub use fanout::{ClusterEvents, Fanout, FanoutError, FanoutFuture, LocalDelivery};
pub use history::HistoryLimits;
pub use hub::{ChannelLimits, Hub};
pub use member::{InvalidMemberId, MAX_PENDING, Member, MemberId, MemberTag, Overloaded};
pub use outgoing::{Encoded, Encoding, Outgoing, Sink};
pub use presence::{
    NodeRecords, PresenceChange, PresenceDiff, PresenceError, PresenceMeta, PresenceRecord,
    Presences,
};
pub use registry::{
    ChannelName, ChannelRegistration, FromParams, ParamError, Params, Registry, param,
};

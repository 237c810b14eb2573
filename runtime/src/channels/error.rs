//! Errors of the channel layer, each with the reason a client sees.

/// Two `#[channel]` patterns that match the same names; a start-up error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelConfigError {
    /// Two channel types whose patterns conflict.
    #[error(
        "channel `{second}` (pattern {second_pattern:?}) conflicts with `{first}` (pattern {first_pattern:?})"
    )]
    ChannelConflict {
        /// The type registered first.
        first: &'static str,
        /// Its pattern.
        first_pattern: &'static str,
        /// The type that could not be added.
        second: &'static str,
        /// Its pattern.
        second_pattern: &'static str,
    },
    /// A pattern the router refuses (the macro checks patterns, so this means a hand-made
    /// registration).
    #[error("channel `{channel}` has an invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The type.
        channel: &'static str,
        /// Its pattern.
        pattern: &'static str,
        /// Why the router refused it.
        reason: String,
    },
}

/// Why a join was refused; `reason()` is what the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No registered pattern matches the channel name.
    #[error("unknown channel")]
    UnknownChannel,
    /// The channel's `pass` said no (or failed).
    #[error("unauthorized")]
    Unauthorized,
    /// The channel's `join` refused with a reason of its own.
    #[error("refused: {0}")]
    Refused(String),
    /// The request itself is malformed: a bad or too long name, or too many subscriptions.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// The channel's `pass` or `join` panicked. Socket.IO and plain WebSocket clients read it
    /// as `unauthorized`; Phoenix clients get Phoenix's own `join crashed`.
    #[error("join crashed")]
    Crashed,
}

impl JoinError {
    /// The reason sent to the client: `unknown_channel`, `unauthorized`, `invalid`, or the
    /// channel's own.
    pub fn reason(&self) -> &str {
        match self {
            JoinError::UnknownChannel => "unknown_channel",
            JoinError::Unauthorized | JoinError::Crashed => "unauthorized",
            JoinError::Invalid(_) => "invalid",
            JoinError::Refused(reason) => reason,
        }
    }
}

/// Why a client event into a channel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The client has not joined the channel.
    #[error("not subscribed")]
    NotSubscribed,
    /// The channel's `handle_in` panicked.
    #[error("handler failed")]
    HandlerFailed,
}

impl EventError {
    /// The reason sent to the client.
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::NotSubscribed => "not_subscribed",
            EventError::HandlerFailed => "handler_failed",
        }
    }
}

/// An emit that could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// No registered pattern matches this channel name (a typo, most likely).
    #[error("no channel pattern matches {0:?}")]
    UnknownChannel(String),
    /// The payload could not be serialized.
    #[error(transparent)]
    Payload(#[from] crate::payload::PayloadError),
    /// The event name is empty, too long, or contains `/`.
    #[error("invalid event name {0:?}: it must be non-empty, short, and contain no '/'")]
    InvalidEvent(String),
    /// The member to leave out (`to(channel).except(id)`) is not a member id.
    #[error("not a member id: expected the 20 characters of a socket id")]
    InvalidMemberId,
    /// The event reached the members on this node, but not the other nodes.
    #[error("delivered on this node only: {0}")]
    Fanout(#[from] super::fanout::FanoutError),
}

impl actix_web::ResponseError for EmitError {}

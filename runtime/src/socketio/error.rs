//! Errors of the Socket.IO layer.

pub use crate::payload::PayloadError;

/// A packet from a client could not be decoded; the connection that sent it is closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The first character is not a packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(Option<char>),
    /// A binary packet without a valid `<n>-` attachment count.
    #[error("invalid attachment count")]
    BadAttachmentCount,
    /// A binary packet announcing more attachments than allowed.
    #[error("too many attachments ({0})")]
    TooManyAttachments(usize),
    /// The ack id is not a number that fits in 64 bits.
    #[error("invalid ack id")]
    BadAckId,
    /// An ACK without an id.
    #[error("ack without id")]
    MissingAckId,
    /// The data is not valid JSON.
    #[error("invalid JSON data")]
    InvalidJson,
    /// The data does not fit the packet type.
    #[error("invalid payload for {0}")]
    InvalidPayload(&'static str),
    /// The arguments and attachments do not match.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A binary message arrived when no binary packet was waiting for one.
    #[error("unexpected binary message")]
    UnexpectedBinary,
    /// A text packet arrived while a binary packet still waited for attachments.
    #[error("text packet while attachments were pending")]
    AttachmentsPending,
    /// The attachments of one packet exceeded the allowed total.
    #[error("attachments too large")]
    AttachmentsTooLarge,
}

/// An emit could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The payload could not be serialized.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The socket is disconnected or its queue is full.
    #[error(transparent)]
    Send(#[from] crate::engineio::SendError),
    /// The event name is one Socket.IO reserves.
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
}

/// An ack never came.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// No ack within the timeout.
    #[error("ack timed out")]
    Timeout,
    /// The socket disconnected before acking.
    #[error("socket disconnected")]
    Disconnected,
}

//! Fan-out beyond this process: the seam the Redis adapter (and any other) plugs into.

use std::sync::Weak;

use super::member::MemberId;
use super::outgoing::Outgoing;

/// What a fan-out may do with the hub it serves: hand it events other nodes published (the
/// hub implements it; [`Hub::deliver`](super::Hub::deliver)).
pub trait LocalDelivery: Send + Sync + 'static {
    /// Hands `message` to the members of its channel on this node (but `except`); returns how
    /// many it was queued for.
    fn deliver(&self, message: &Outgoing, except: Option<MemberId>) -> usize;
}

/// Fan-out beyond this process.
///
/// The hub delivers every emit to its own members first, then hands it to the fan-out; the
/// fan-out delivers what other nodes publish through the [`LocalDelivery`] it was started
/// with. It is told when a channel gets its first local member and loses its last, so
/// a node only listens to channels it has members in.
///
/// The hub calls [`Fanout::channel_opened`] and [`Fanout::channel_closed`] while it holds a
/// lock on its subscriptions, and [`Fanout::publish`] from the emitting task: none of the
/// three may wait (hand the work to a task of the adapter's own).
pub trait Fanout: Send + Sync + 'static {
    /// Starts the fan-out for `hub` (called once, when the hub is built; the fan-out holds it
    /// weakly and stops when it is gone).
    fn start(&self, hub: Weak<dyn LocalDelivery>);

    /// Sends an emit made on this node to the other nodes.
    ///
    /// # Errors
    /// [`FanoutError`] when the other nodes cannot be reached now.
    fn publish(&self, message: &Outgoing, except: Option<MemberId>) -> Result<(), FanoutError>;

    /// `channel` got its first member on this node.
    fn channel_opened(&self, channel: &str);

    /// `channel` lost its last member on this node.
    fn channel_closed(&self, channel: &str);
}

/// Why a fan-out could not reach the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// The adapter knows the other nodes are unreachable now (its connection is down).
    #[error("other nodes unreachable: {0}")]
    Unreachable(String),
    /// Too many events already wait to be sent to the other nodes.
    #[error("fan-out queue full")]
    QueueFull,
    /// The adapter has stopped.
    #[error("fan-out stopped")]
    Stopped,
    /// The event cannot be carried (a name or payload too large for the envelope).
    #[error("event too large for the fan-out: {0}")]
    TooLarge(&'static str),
}

//! Fan-out beyond this process: the seam the Redis adapter (and any other) plugs into.

use std::sync::Weak;

use super::history::HistoryLimits;
use super::member::MemberId;
use super::outgoing::Outgoing;
use super::presence::{NodeRecords, PresenceChange};

/// A future a fan-out hands back (boxed: the trait is object-safe).
pub type FanoutFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What a fan-out may do with the hub it serves: hand it events other nodes published (the
/// hub implements it; [`Hub::deliver`](super::Hub::deliver)).
pub trait LocalDelivery: Send + Sync + 'static {
    /// Hands `message` to the members of its channel on this node (but `except`); returns how
    /// many it was queued for.
    fn deliver(&self, message: &Outgoing, except: Option<MemberId>) -> usize;

    /// Hands `message`, kept in the cluster's history at `offset`, to the members of its
    /// channel on this node (but `except`). A fan-out that keeps the history
    /// ([`Fanout::keep_history`]) hands every emit of the cluster through here, this node's
    /// own included, in offset order.
    fn deliver_at(&self, message: Outgoing, offset: u64, except: Option<MemberId>) -> usize {
        let _ = offset;
        self.deliver(&message, except)
    }

    /// Applies a presence change made on `node` to this node's copy of the channel's
    /// presence, and tells this node's members what changed.
    fn presence_changed(&self, node: &str, change: &PresenceChange) {
        let _ = (node, change);
    }

    /// Replaces what this node holds of the other nodes' presence in `channel` with
    /// `records` (each with the node that tracks it): the answer to
    /// [`Fanout::presence_opened`], and after a reconnection.
    fn presence_reset(&self, channel: &str, records: NodeRecords) {
        let _ = (channel, records);
    }

    /// `node` is gone: every record it tracked goes, in every channel.
    fn presence_node_down(&self, node: &str) {
        let _ = node;
    }

    /// Every record this node tracks itself, a change of joins per channel: what a fan-out
    /// writes again after the other nodes lost it (a store restarted empty).
    fn presence_local(&self) -> Vec<PresenceChange> {
        Vec::new()
    }

    /// The channels this node holds presence for.
    fn presence_channels(&self) -> Vec<String> {
        Vec::new()
    }

    /// The other nodes this node holds presence records of: those whose death it must notice.
    fn presence_nodes(&self) -> Vec<String> {
        Vec::new()
    }
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

    /// A presence channel got its first member on this node (called just before
    /// [`Fanout::channel_opened`]). Returns whether the other nodes' presence in it will
    /// follow through [`LocalDelivery::presence_reset`]; joins wait for it (up to 2 s) before
    /// sending the state. Must not wait. By default there is none to fetch.
    fn presence_opened(&self, channel: &str) -> bool {
        let _ = channel;
        false
    }

    /// Sends a presence change made on this node to the other nodes. Must not wait.
    fn presence_changed(&self, change: &PresenceChange) {
        let _ = change;
    }

    /// Whether this fan-out keeps the channels' history for the whole cluster, within
    /// `limits`: then it gives every emit its offset, and the hub hands emits to
    /// [`Fanout::publish`] only, delivering them (here too) when they come back through
    /// [`LocalDelivery::deliver_at`]; members that come back read what they missed with
    /// [`Fanout::history`], on any node. Called once, before [`Fanout::start`]. By default
    /// none is kept, and each node keeps its own history.
    fn keep_history(&self, limits: &HistoryLimits) -> bool {
        let _ = limits;
        false
    }

    /// The cluster's history of `channels`, each after its offset, read once this node
    /// listens to all of them (the hub opened them before asking). Only for a fan-out that
    /// keeps the history.
    fn history(
        &self,
        channels: Vec<(String, u64)>,
    ) -> FanoutFuture<Result<ClusterEvents, FanoutError>> {
        let _ = channels;
        Box::pin(async { Err(FanoutError::Stopped) })
    }

    /// Keeps a suspended member's session (`body`, opaque to the fan-out) under `key` for
    /// `ttl`, where every node can take it ([`Fanout::session_take`]). Only for a fan-out
    /// that keeps the history. Must not wait.
    fn session_keep(&self, key: &str, body: Vec<u8>, ttl: std::time::Duration) {
        let _ = (key, body, ttl);
    }

    /// Takes the session kept under `key`, once: whichever node asks first gets it, the
    /// others `None` (as when it expired or was never kept).
    fn session_take(&self, key: &str) -> FanoutFuture<Result<Option<Vec<u8>>, FanoutError>> {
        let _ = key;
        Box::pin(async { Ok(None) })
    }

    /// Every node's presence records in `channel` (each with its node), read from where the
    /// cluster keeps them: for a channel this node has no member in. `None` when the fan-out
    /// keeps no presence.
    fn presence_fetch(
        &self,
        channel: &str,
    ) -> Option<FanoutFuture<Result<NodeRecords, FanoutError>>> {
        let _ = channel;
        None
    }
}

/// The cluster's history of some channels, read for a member that comes back
/// ([`Fanout::history`]).
pub struct ClusterEvents {
    /// Per channel asked, in the order asked: its events after the offset asked, each with
    /// its offset, or `None` when the history no longer holds them all.
    pub channels: Vec<Option<Vec<(u64, Outgoing)>>>,
    /// Whether this node has listened to those channels without a break since they were
    /// read: then the events it received since complete them.
    pub unbroken: Box<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for ClusterEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterEvents")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
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

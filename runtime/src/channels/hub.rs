//! The hub: subscriptions (sharded by channel name, read without blocking writers of other
//! shards), joins through the authorizers, client events, and broadcasts encoded once per
//! transport.
//!
//! Transports talk to the hub with plain calls (join / leave / event / disconnect) and hand it
//! a [`Sink`] per connection; the hub knows nothing of their wire formats.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use futures_util::FutureExt as _;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::authorizer::Reply;
use super::context::{AppData, ChannelContext, Handshake, Identity, JoinContext, LeaveReason};
use super::error::{EmitError, EventError, JoinError};
use super::registry::Registry;
use crate::engineio::Sid;
use crate::payload::Payload;

/// How many cached encodings an [`Outgoing`] holds (one per transport kind).
pub const ENCODING_SLOTS: usize = 4;

/// One event on its way to a channel's members. Each transport encodes it at most once
/// ([`Outgoing::cached`]) and hands the same bytes to all of its connections.
pub struct Outgoing {
    channel: String,
    event: String,
    payload: Payload,
    cache: [OnceLock<Box<dyn Any + Send + Sync>>; ENCODING_SLOTS],
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("channel", &self.channel)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// An event for `channel`.
    pub fn new(channel: impl Into<String>, event: impl Into<String>, payload: Payload) -> Self {
        Outgoing {
            channel: channel.into(),
            event: event.into(),
            payload,
            cache: Default::default(),
        }
    }

    /// The concrete channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The event name, without the channel.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The arguments.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The same event with `slot` already holding `value`, so no transport encodes it again
    /// (the Redis adapter hands over the Socket.IO frames another node encoded). Does nothing
    /// when `slot` is out of range.
    ///
    /// ```
    /// use tidings_runtime::Payload;
    /// use tidings_runtime::channels::Outgoing;
    ///
    /// let message = Outgoing::new("chats/1", "message", Payload::new()).with_cached(1, 7u32);
    /// assert_eq!(message.cached(1, |_| 0u32), Some(&7));
    /// ```
    #[must_use]
    pub fn with_cached<T: Any + Send + Sync>(self, slot: usize, value: T) -> Self {
        if let Some(cell) = self.cache.get(slot) {
            let _ = cell.set(Box::new(value));
        }
        self
    }

    /// The encoding in `slot`, computed by `encode` the first time it is asked for.
    /// `None` only when `slot` is out of range or was filled with another type.
    pub fn cached<T: Any + Send + Sync>(
        &self,
        slot: usize,
        encode: impl FnOnce(&Self) -> T,
    ) -> Option<&T> {
        self.cache
            .get(slot)?
            .get_or_init(|| Box::new(encode(self)))
            .downcast_ref()
    }
}

/// Where a transport wants a connection's channel events delivered.
pub trait Sink: Send + Sync + 'static {
    /// Queues the event for the client without waiting; false when the connection is gone
    /// or too slow (the transport then closes it and the hub hears of it as a disconnect).
    fn deliver(&self, message: &Outgoing) -> bool;
}

/// Fan-out beyond this process: the seam the Redis adapter (and any other) plugs into.
///
/// The hub delivers every emit to its own members first, then hands it to the fan-out; the
/// fan-out delivers what other nodes publish through [`Hub::deliver`] on the hub it was
/// started with. It is told when a channel gets its first local member and loses its last, so
/// a node only listens to channels it has members in.
pub trait Fanout: Send + Sync + 'static {
    /// Starts the fan-out for `hub` (called once, when the hub is built).
    fn start(&self, hub: std::sync::Weak<Hub>);

    /// Sends an emit made on this node to the other nodes.
    ///
    /// # Errors
    /// [`FanoutError`] when the other nodes cannot be reached now.
    fn publish(&self, message: &Outgoing, except: Option<Sid>) -> Result<(), FanoutError>;

    /// `channel` got its first member on this node.
    fn channel_opened(&self, channel: &str);

    /// `channel` lost its last member on this node.
    fn channel_closed(&self, channel: &str);
}

/// A fan-out could not reach the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("other nodes unreachable: {0}")]
pub struct FanoutError(pub String);

/// A connection as the hub sees it: an id, what it connected with, and its sink.
pub struct Peer {
    id: Sid,
    pub(crate) handshake: Handshake,
    pub(crate) identity: Option<Identity>,
    pub(crate) sink: Arc<dyn Sink>,
    /// The channels joined (their parameters are the registry's to give again); the first is
    /// kept inline, as most connections join few.
    joined: Mutex<SmallVec<[Box<str>; 1]>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A connection with this id, handshake, identity (from the connect hook) and sink.
    pub fn new(
        id: Sid,
        handshake: Handshake,
        identity: Option<Identity>,
        sink: Arc<dyn Sink>,
    ) -> Self {
        Peer {
            id,
            handshake,
            identity,
            sink,
            joined: Mutex::default(),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> Sid {
        self.id
    }

    /// The channels it has joined.
    pub fn channels(&self) -> Vec<String> {
        self.joined
            .lock()
            .map(|j| j.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default()
    }

    fn joined(&self, channel: &str) -> bool {
        self.joined
            .lock()
            .is_ok_and(|j| j.iter().any(|c| **c == *channel))
    }
}

/// Limits on what one connection may ask of the channel layer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChannelLimits {
    /// The most channels one connection may join (default 100).
    pub max_subscriptions: usize,
    /// The longest channel name accepted, in bytes (default 256).
    pub max_channel_name: usize,
    /// The longest event name accepted, in bytes (default 128).
    pub max_event_name: usize,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        ChannelLimits {
            max_subscriptions: 100,
            max_channel_name: 256,
            max_event_name: 128,
        }
    }
}

const SHARDS: usize = 16;

type Members = HashMap<Sid, Arc<Peer>>;

/// The channel layer: the registry, the subscriptions and the application data.
pub struct Hub {
    registry: Registry,
    shards: Box<[RwLock<HashMap<String, Members>>]>,
    hasher: RandomState,
    pub(crate) data: AppData,
    limits: ChannelLimits,
    fanout: Option<Arc<dyn Fanout>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("registry", &self.registry)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub over these channels, fanning out through `fanout` when given (started here).
    pub fn new(
        registry: Registry,
        data: AppData,
        limits: ChannelLimits,
        fanout: Option<Arc<dyn Fanout>>,
    ) -> Arc<Self> {
        let hub = Arc::new(Hub {
            registry,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            data,
            limits,
            fanout,
        });
        if let Some(fanout) = &hub.fanout {
            fanout.start(Arc::downgrade(&hub));
        }
        hub
    }

    /// The registered channel types.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The limits in force.
    pub fn limits(&self) -> &ChannelLimits {
        &self.limits
    }

    fn shard(&self, channel: &str) -> &RwLock<HashMap<String, Members>> {
        let index = (self.hasher.hash_one(channel) as usize) % self.shards.len();
        &self.shards[index]
    }

    /// How many channels have at least one member.
    pub fn channel_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// How many (connection, channel) subscriptions exist.
    pub fn subscription_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .map(|m| m.values().map(HashMap::len).sum::<usize>())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Joins `peer` to `channel` when a pattern matches it and its `pass` says yes.
    /// Joining a channel twice is a no-op that succeeds.
    ///
    /// # Errors
    /// [`JoinError`], whose `reason()` is what the client is told.
    pub async fn join(
        &self,
        peer: &Arc<Peer>,
        channel: &str,
        payload: Option<&RawValue>,
    ) -> Result<(), JoinError> {
        self.check_channel_name(channel)?;
        if peer.joined(channel) {
            return Ok(());
        }
        if peer.joined.lock().map(|j| j.len()).unwrap_or(0) >= self.limits.max_subscriptions {
            return Err(JoinError::Invalid("too many subscriptions"));
        }
        let (entry, params) = self
            .registry
            .resolve(channel)
            .ok_or(JoinError::UnknownChannel)?;
        let join = JoinContext {
            channel,
            params: &params,
            payload,
            peer,
            hub: self,
        };
        let passed = AssertUnwindSafe(entry.handler.pass(&join))
            .catch_unwind()
            .await;
        match passed {
            Ok(true) => {}
            Ok(false) => return Err(JoinError::Unauthorized),
            Err(_) => {
                tracing::error!(
                    channel,
                    kind = entry.type_name,
                    "pass panicked; join refused"
                );
                return Err(JoinError::Unauthorized);
            }
        }
        if let Ok(mut joined) = peer.joined.lock() {
            joined.push(channel.into());
        }
        if let Ok(mut shard) = self.shard(channel).write() {
            let members = shard.entry(channel.to_owned()).or_default();
            members.insert(peer.id(), peer.clone());
            if members.len() == 1
                && let Some(fanout) = &self.fanout
            {
                fanout.channel_opened(channel);
            }
        }
        tracing::debug!(channel, member = %peer.id(), "joined");
        let ctx = ChannelContext {
            channel,
            params: &params,
            peer,
            hub: self,
        };
        if AssertUnwindSafe(entry.handler.joined(&ctx))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(channel, kind = entry.type_name, "joined hook panicked");
        }
        Ok(())
    }

    /// Takes `peer` out of `channel`; returns whether it was a member.
    pub async fn leave(&self, peer: &Arc<Peer>, channel: &str) -> bool {
        self.remove(peer, channel, &LeaveReason::Unsubscribed).await
    }

    /// Takes `peer` out of every channel it joined, running the `left` hooks.
    pub async fn disconnect(&self, peer: &Arc<Peer>, reason: impl Into<String>) {
        let reason = LeaveReason::Disconnected(reason.into());
        for channel in peer.channels() {
            self.remove(peer, &channel, &reason).await;
        }
    }

    async fn remove(&self, peer: &Arc<Peer>, channel: &str, reason: &LeaveReason) -> bool {
        let was_member = peer.joined.lock().ok().is_some_and(|mut j| {
            let at = j.iter().position(|c| **c == *channel);
            at.map(|at| j.remove(at)).is_some()
        });
        if !was_member {
            return false;
        }
        if let Ok(mut shard) = self.shard(channel).write()
            && let Some(members) = shard.get_mut(channel)
        {
            members.remove(&peer.id());
            if members.is_empty() {
                shard.remove(channel);
                if let Some(fanout) = &self.fanout {
                    fanout.channel_closed(channel);
                }
            }
        }
        tracing::debug!(channel, member = %peer.id(), %reason, "left");
        if let Some((entry, params)) = self.registry.resolve(channel) {
            let ctx = ChannelContext {
                channel,
                params: &params,
                peer,
                hub: self,
            };
            if AssertUnwindSafe(entry.handler.left(&ctx, reason))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(channel, kind = entry.type_name, "left hook panicked");
            }
        }
        true
    }

    /// A client event `event` into `channel`, handled by the channel's `handle_in`.
    ///
    /// # Errors
    /// [`EventError::NotSubscribed`] unless `peer` joined `channel`;
    /// [`EventError::HandlerFailed`] when the handler panicked.
    pub async fn event(
        &self,
        peer: &Arc<Peer>,
        channel: &str,
        event: &str,
        payload: Payload,
    ) -> Result<Reply, EventError> {
        if !peer.joined(channel) {
            return Err(EventError::NotSubscribed);
        }
        let (entry, params) = self
            .registry
            .resolve(channel)
            .ok_or(EventError::NotSubscribed)?;
        let ctx = ChannelContext {
            channel,
            params: &params,
            peer,
            hub: self,
        };
        AssertUnwindSafe(entry.handler.handle_in(event, payload, &ctx))
            .catch_unwind()
            .await
            .map_err(|_| {
                tracing::error!(channel, event, kind = entry.type_name, "handle_in panicked");
                EventError::HandlerFailed
            })
    }

    /// Builds the event for `channel` after checking both names.
    ///
    /// # Errors
    /// [`EmitError::UnknownChannel`] when no pattern matches, [`EmitError::InvalidEvent`] for
    /// an empty event name or one with `/`.
    pub fn outgoing(
        &self,
        channel: &str,
        event: &str,
        payload: Payload,
    ) -> Result<Outgoing, EmitError> {
        if event.is_empty() || event.contains('/') || event.len() > self.limits.max_event_name {
            return Err(EmitError::InvalidEvent(event.to_owned()));
        }
        if !self.registry.matches(channel) {
            return Err(EmitError::UnknownChannel(channel.to_owned()));
        }
        Ok(Outgoing::new(channel, event, payload))
    }

    /// Sends `<channel>/<event>` to every member of `channel` (but `except`): on this node,
    /// then on the others through the fan-out. Returns how many local connections it was
    /// queued for.
    ///
    /// # Errors
    /// See [`Hub::outgoing`]; [`EmitError::Fanout`] when the event reached this node's members
    /// but not the other nodes.
    pub fn broadcast(
        &self,
        channel: &str,
        event: &str,
        payload: Payload,
        except: Option<Sid>,
    ) -> Result<usize, EmitError> {
        let message = self.outgoing(channel, event, payload)?;
        let delivered = self.deliver(&message, except);
        if let Some(fanout) = &self.fanout {
            fanout
                .publish(&message, except)
                .map_err(EmitError::Fanout)?;
        }
        Ok(delivered)
    }

    /// Hands an already built event to the members of its channel on this node.
    pub fn deliver(&self, message: &Outgoing, except: Option<Sid>) -> usize {
        let Ok(shard) = self.shard(message.channel()).read() else {
            return 0;
        };
        let Some(members) = shard.get(message.channel()) else {
            return 0;
        };
        members
            .values()
            .filter(|peer| Some(peer.id()) != except && peer.sink.deliver(message))
            .count()
    }

    fn check_channel_name(&self, channel: &str) -> Result<(), JoinError> {
        if channel.is_empty() {
            return Err(JoinError::Invalid("empty channel name"));
        }
        if channel.len() > self.limits.max_channel_name {
            return Err(JoinError::Invalid("channel name too long"));
        }
        if channel.chars().any(char::is_control) {
            return Err(JoinError::Invalid("control character in channel name"));
        }
        Ok(())
    }
}

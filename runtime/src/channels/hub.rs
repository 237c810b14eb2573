//! The hub: subscriptions (sharded by channel name, read without blocking writers of other
//! shards), joins through the authorizers, client events, and broadcasts encoded once per
//! wire format.
//!
//! Gateways never call the hub's join / leave / event directly: they go through a
//! [`Member`], which runs one connection's requests in order.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::FutureExt as _;
use indexmap::IndexMap;
use serde_json::value::RawValue;

use super::authorizer::Assigns;
use super::authorizer::{Outbound, Reply};
use super::context::{AppData, ChannelContext, JoinContext, LeaveReason};
use super::error::{EmitError, EventError, JoinError};
use super::fanout::{ClusterEvents, Fanout, LocalDelivery};
use super::history::{ClusterSession, Handover, History, HistoryLimits, Kept, SessionChannel};
use super::member::{Member, MemberId, MemberTag};
use super::outgoing::{Outgoing, Sink};
use super::presence::{
    self, ChannelPresence, NodeRecords, PresenceChange, PresenceDiff, PresenceError, Presences,
};
use super::registry::{Channel, Params, Registry};
use crate::payload::Payload;
use crate::sync::{lock, read, write};

/// How long a join into a presence channel waits for the other nodes' presence before it
/// sends the state it has (the rest follows as diffs).
const PRESENCE_SYNC_WAIT: Duration = Duration::from_secs(2);

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

/// How many members a broadcast reads ahead of the ones it queues for
/// ([`Sink::touch`](super::outgoing::Sink::touch)).
const TOUCH_AHEAD: usize = 32;

/// A channel's members on this node, in the order they joined: a broadcast reaches them in that
/// order (as socket.io's rooms do), and walks their connections in about the order they were
/// allocated.
type Members = IndexMap<MemberId, Membership>;

/// One member of a channel on this node.
#[derive(Clone)]
struct Membership {
    member: Arc<Member>,
    /// The member's sink, kept here as well: a broadcast goes from the channel's members
    /// straight to their queues, without reading each member on the way (one cache miss
    /// fewer per delivery).
    sink: Arc<dyn Sink>,
    /// What the gateway gave the membership when the join succeeded.
    tag: MemberTag,
}

/// The channel layer: the registry, the subscriptions and the application data.
pub struct Hub {
    registry: Registry,
    shards: Box<[RwLock<HashMap<String, Members>>]>,
    hasher: RandomState,
    pub(crate) data: AppData,
    limits: ChannelLimits,
    fanout: Option<Arc<dyn Fanout>>,
    /// The presence of the presence channels with members on this node (locked after a
    /// shard, never before one).
    presence: Mutex<HashMap<String, ChannelPresence>>,
    /// The channel history, when connection state recovery is on.
    history: Option<History>,
    /// The fan-out keeps the history for the cluster ([`Fanout::keep_history`]): emits go to
    /// it, and come back with their offsets to be delivered here too.
    clustered: bool,
    /// Channels kept open on this node with no member (locked after a shard): a member coming
    /// back listens to them before the cluster's history is read.
    pins: Mutex<HashMap<String, usize>>,
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
        Self::with_history(registry, data, limits, fanout, None)
    }

    /// As [`Hub::new`], keeping channel history within `history` for clients that come back
    /// (connection state recovery) when given.
    pub fn with_history(
        registry: Registry,
        data: AppData,
        limits: ChannelLimits,
        fanout: Option<Arc<dyn Fanout>>,
        history: Option<HistoryLimits>,
    ) -> Arc<Self> {
        let clustered = match (&fanout, &history) {
            (Some(fanout), Some(history)) => fanout.keep_history(history),
            _ => false,
        };
        let history = history.map(|limits| {
            if clustered {
                History::for_cluster(limits)
            } else {
                History::new(limits)
            }
        });
        let hub = Arc::new(Hub {
            registry,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            data,
            limits,
            fanout,
            presence: Mutex::new(HashMap::new()),
            history,
            clustered,
            pins: Mutex::new(HashMap::new()),
        });
        if let Some(fanout) = &hub.fanout {
            let delivery: Arc<dyn LocalDelivery> = hub.clone();
            fanout.start(Arc::downgrade(&delivery));
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
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    /// How many (connection, channel) subscriptions exist.
    pub fn subscription_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| read(s).values().map(IndexMap::len).sum::<usize>())
            .sum()
    }

    /// Joins `member` to `channel` when a pattern matches it and its `pass` says yes.
    /// Joining a channel twice is a no-op that succeeds. Runs on the member's request task
    /// ([`Member::join`]), so no other request of the member runs meanwhile.
    pub(crate) async fn join(
        &self,
        member: &Arc<Member>,
        channel: &str,
        payload: Option<&RawValue>,
        tag: MemberTag,
    ) -> Result<Option<Box<RawValue>>, JoinError> {
        self.check_channel_name(channel)?;
        if member.is_in(channel) {
            return Ok(None);
        }
        if member.joined_count() >= self.limits.max_subscriptions {
            return Err(JoinError::Invalid("too many subscriptions"));
        }
        let (entry, params) = self
            .registry
            .resolve(channel)
            .ok_or(JoinError::UnknownChannel)?;
        let handler = entry.instance(&params).map_err(|err| {
            tracing::debug!(channel, %err, "join refused");
            JoinError::Invalid("invalid channel parameters")
        })?;
        let join = JoinContext {
            channel,
            params: &params,
            payload,
            member,
            hub: self,
        };
        let verdict = AssertUnwindSafe(handler.join(&join)).catch_unwind().await;
        let (reply, assigns) = match verdict {
            Ok(Ok(joined)) => joined.into_parts(),
            Ok(Err(refusal)) if refusal.reason() == "unauthorized" => {
                return Err(JoinError::Unauthorized);
            }
            Ok(Err(refusal)) => return Err(JoinError::Refused(refusal.reason().to_owned())),
            Err(_) => {
                tracing::error!(
                    channel,
                    kind = entry.type_name,
                    "join panicked; join refused"
                );
                return Err(JoinError::Crashed);
            }
        };
        // Kept with recovery on: another node runs `pass` with it for a client coming back.
        let grant = Grant {
            assigns,
            payload: self.history.as_ref().and(payload).map(ToOwned::to_owned),
        };
        match join_since(payload) {
            None => self.subscribe(member, channel, entry, tag, grant, None),
            Some(since) => {
                self.subscribe_since(member, channel, entry, tag, grant, since)
                    .await;
            }
        }
        tracing::debug!(channel, member = %member.id(), "joined");
        self.after_join(member, channel, entry, &params).await;
        Ok(reply)
    }

    /// Puts `member` in `channel`'s members with its assigns there (its presence and the
    /// fan-out told when it is the first here). With a history, in a turn: the member's
    /// membership starts at the latest offset (`since` keeps an earlier start, for a member
    /// that comes back), so that no event from before it joined is replayed to it.
    fn subscribe(
        &self,
        member: &Arc<Member>,
        channel: &str,
        entry: &Channel,
        tag: MemberTag,
        grant: Grant,
        since: Option<u64>,
    ) {
        let _turn = self.history.as_ref().map(History::turn);
        let start = self
            .history
            .as_ref()
            .map_or(0, |history| since.unwrap_or_else(|| history.last()));
        member.add_channel(channel, grant.assigns, start, grant.payload);
        {
            let mut shard = write(self.shard(channel));
            let members = shard.entry(channel.to_owned()).or_default();
            members.insert(
                member.id(),
                Membership {
                    member: member.clone(),
                    sink: member.sink.clone(),
                    tag,
                },
            );
            // Presence first: a fan-out asks for the other nodes' presence once it has
            // subscribed to the channel.
            if entry.presence {
                lock(&self.presence)
                    .entry(channel.to_owned())
                    .or_insert_with(|| {
                        let fetching = self
                            .fanout
                            .as_ref()
                            .is_some_and(|fanout| fanout.presence_opened(channel));
                        ChannelPresence::new(!fetching)
                    });
            }
            // Opened again when pinned: a fan-out reads the channel's presence once it is
            // told, and opening an open channel changes nothing else.
            if members.len() == 1
                && let Some(fanout) = &self.fanout
            {
                fanout.channel_opened(channel);
            }
        }
    }

    /// Subscribes `member` to `channel` for a client that asked to resume from `since` (the
    /// offset of the last event it got there; `None` when it was not one): the events after
    /// it go to the member before any new one, then a `recovery` event says whether it got
    /// everything it missed (`{"recovered": true, "replayed": N}`) or not
    /// (`{"recovered": false}`: too old, no history kept, or a `since` that is no offset).
    async fn subscribe_since(
        &self,
        member: &Arc<Member>,
        channel: &str,
        entry: &Channel,
        tag: MemberTag,
        grant: Grant,
        since: Option<u64>,
    ) {
        let Some(history) = &self.history else {
            self.subscribe(member, channel, entry, tag, grant, None);
            return self.push_recovery(member, channel, None);
        };
        let Some(since) = since else {
            let _turn = history.turn();
            self.subscribe(member, channel, entry, tag, grant, None);
            return self.push_recovery(member, channel, None);
        };
        let from = [(channel, since)];
        let mut catchup = self.catch_up(&from).await;
        let _turn = history.turn();
        let missed = self.missed_since(history, &mut catchup, &from);
        self.subscribe(member, channel, entry, tag, grant, None);
        drop(catchup);
        let replayed = missed.map(|missed| {
            for (_, message) in &missed {
                self.replay(member, tag, message);
            }
            missed.len()
        });
        self.push_recovery(member, channel, replayed);
    }

    /// Keeps `channels` open on this node (listened to through the fan-out) until the guard
    /// drops, members or not.
    fn pin(&self, channels: Vec<String>) -> Pinned<'_> {
        for channel in &channels {
            let shard = read(self.shard(channel));
            let mut pins = lock(&self.pins);
            let count = pins.entry(channel.clone()).or_default();
            *count += 1;
            if *count == 1
                && !shard.contains_key(channel)
                && let Some(fanout) = &self.fanout
            {
                fanout.channel_opened(channel);
            }
        }
        Pinned {
            hub: self,
            channels,
        }
    }

    fn unpin(&self, channel: &str) {
        let shard = read(self.shard(channel));
        let mut pins = lock(&self.pins);
        let Some(count) = pins.get_mut(channel) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            pins.remove(channel);
            if !shard.contains_key(channel)
                && let Some(fanout) = &self.fanout
            {
                fanout.channel_closed(channel);
            }
        }
    }

    /// Prepares the coming back of a member from `from` (each channel, and the offset after
    /// which it missed events), before it takes its turn. In a cluster that keeps the history:
    /// opens the channels here (kept open while the [`Catchup`] lives), then reads what the
    /// cluster holds after each offset.
    async fn catch_up(&self, from: &[(&str, u64)]) -> Catchup<'_> {
        let (Some(fanout), true) = (&self.fanout, self.clustered) else {
            return Catchup {
                _pinned: None,
                read: None,
            };
        };
        let pinned = self.pin(
            from.iter()
                .map(|(channel, _)| (*channel).to_owned())
                .collect(),
        );
        let asked = from.iter().map(|(c, o)| ((*c).to_owned(), *o)).collect();
        let read = match tokio::time::timeout(CLUSTER_READ_LIMIT, fanout.history(asked)).await {
            Ok(Ok(events)) => Some(events),
            Ok(Err(err)) => {
                tracing::debug!(%err, "the cluster's history could not be read");
                None
            }
            Err(_) => {
                tracing::debug!("the cluster's history took too long to read");
                None
            }
        };
        Catchup {
            _pinned: Some(pinned),
            read,
        }
    }

    /// What a member coming back missed after each channel's offset in `from`, in offset
    /// order, each with its channel's index; `None` when some are gone. From this node's
    /// history, or in a cluster, from what [`Hub::catch_up`] read and what this node received
    /// since. Call it in a turn.
    fn missed_since(
        &self,
        history: &History,
        catchup: &mut Catchup<'_>,
        from: &[(&str, u64)],
    ) -> Option<Vec<(usize, Arc<Outgoing>)>> {
        if !self.clustered {
            return history.missed(from);
        }
        // This node listened without a break since the read: what it got completes it.
        let read = catchup.read.take().filter(|events| (events.unbroken)())?;
        history.merge_cluster(from, read.channels)
    }

    fn push_recovery(&self, member: &Member, channel: &str, replayed: Option<usize>) {
        let body = match replayed {
            Some(replayed) => serde_json::json!({ "recovered": true, "replayed": replayed }),
            None => serde_json::json!({ "recovered": false }),
        };
        self.push_own(member, channel, "recovery", &body);
    }

    /// Pushes an event of the hub's own (`recovery`, `presence_state`) to one member.
    fn push_own<T: serde::Serialize + ?Sized>(
        &self,
        member: &Member,
        channel: &str,
        event: &str,
        body: &T,
    ) {
        match self.own_event(channel, event, body) {
            Ok(message) => {
                self.push(member, message.into_direct());
            }
            Err(err) => tracing::error!(channel, event, %err, "not sent"),
        }
    }

    /// An event of the hub's own with `body` as its one argument.
    fn own_event<T: serde::Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        body: &T,
    ) -> Result<Outgoing, EmitError> {
        let payload = Payload::from_value(body)?;
        self.outgoing(channel, event, payload)
    }

    /// What follows a join: the `joined` hook (once every node's presence is in), then the
    /// presence state.
    async fn after_join(
        &self,
        member: &Arc<Member>,
        channel: &str,
        entry: &Channel,
        params: &Params,
    ) {
        if entry.presence {
            // The `joined` hook sees (and counts) every node's presence.
            self.await_presence(channel).await;
        }
        let ctx = ChannelContext {
            channel,
            params,
            member,
            hub: self,
        };
        match entry.instance(params) {
            Ok(handler) => {
                if AssertUnwindSafe(handler.joined(&ctx))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!(channel, kind = entry.type_name, "joined hook panicked");
                }
            }
            Err(err) => tracing::error!(channel, %err, "no channel value for the joined hook"),
        }
        if entry.presence && member.is_in(channel) {
            self.push_presence_state(member, channel);
        }
    }

    /// Waits until the other nodes' presence in `channel` is in (or has been waited for long
    /// enough).
    async fn await_presence(&self, channel: &str) {
        let Some(ready) = lock(&self.presence)
            .get(channel)
            .and_then(ChannelPresence::pending)
        else {
            return;
        };
        let notified = ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let pending = lock(&self.presence)
            .get(channel)
            .is_some_and(|p| p.pending().is_some());
        if pending
            && tokio::time::timeout(PRESENCE_SYNC_WAIT, notified)
                .await
                .is_err()
        {
            tracing::warn!(
                channel,
                "the other nodes' presence did not come in time; sending this node's"
            );
            if let Some(presence) = lock(&self.presence).get_mut(channel) {
                presence.mark_synced();
            }
        }
    }

    fn push_presence_state(&self, member: &Member, channel: &str) {
        self.push_own(member, channel, "presence_state", &self.presence(channel));
    }

    /// Tells this node's members of `channel` what changed.
    fn send_presence_diff(&self, channel: &str, diff: &PresenceDiff) {
        if diff.is_empty() {
            return;
        }
        match self.own_event(channel, "presence_diff", diff) {
            Ok(message) => {
                self.deliver(&message, None);
            }
            Err(err) => tracing::error!(channel, %err, "presence_diff not sent"),
        }
    }

    /// Sends a change made here to this node's members and to the other nodes.
    fn publish_presence(&self, channel: &str, change: presence::Change) {
        let (diff, change) = change.for_nodes(channel);
        self.send_presence_diff(channel, &diff);
        if let Some(fanout) = &self.fanout {
            fanout.presence_changed(&change);
        }
    }

    fn presence_channel(&self, member: &Member, channel: &str) -> Result<(), PresenceError> {
        let (entry, _) = self
            .registry
            .resolve(channel)
            .ok_or(PresenceError::NotEnabled)?;
        if !entry.presence {
            return Err(PresenceError::NotEnabled);
        }
        if !member.is_in(channel) {
            return Err(PresenceError::NotMember);
        }
        Ok(())
    }

    /// Tracks `member` in `channel` under `key` with `meta`.
    pub(crate) fn track<T: serde::Serialize + ?Sized>(
        &self,
        member: &Member,
        channel: &str,
        key: String,
        meta: &T,
    ) -> Result<(), PresenceError> {
        self.presence_channel(member, channel)?;
        presence::check_key(&key)?;
        let fields = presence::meta_fields(meta)?;
        let change = lock(&self.presence)
            .get_mut(channel)
            .ok_or(PresenceError::NotMember)?
            .track(member.id(), key, fields)?;
        self.publish_presence(channel, change);
        Ok(())
    }

    /// Replaces `member`'s meta in `channel`.
    pub(crate) fn update_presence<T: serde::Serialize + ?Sized>(
        &self,
        member: &Member,
        channel: &str,
        meta: &T,
    ) -> Result<(), PresenceError> {
        self.presence_channel(member, channel)?;
        let fields = presence::meta_fields(meta)?;
        let change = lock(&self.presence)
            .get_mut(channel)
            .ok_or(PresenceError::NotMember)?
            .update(member.id(), fields)?;
        self.publish_presence(channel, change);
        Ok(())
    }

    /// Untracks `member` in `channel`; false when it was not tracked.
    pub(crate) fn untrack(&self, member: &Member, channel: &str) -> bool {
        let change = lock(&self.presence)
            .get_mut(channel)
            .and_then(|presence| presence.untrack(member.id()));
        let untracked = change.is_some();
        if let Some(change) = change {
            self.publish_presence(channel, change);
        }
        untracked
    }

    /// Who is in `channel`, on every node, as this node knows it: the whole state for a
    /// presence channel with members on this node; empty for a channel without.
    pub fn presence(&self, channel: &str) -> Presences {
        lock(&self.presence)
            .get(channel)
            .map(ChannelPresence::list)
            .unwrap_or_default()
    }

    /// Who is in `channel`, on every node, whether or not this node has members in it: the
    /// state this node holds when it has, else read through the fan-out (from Redis).
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] when the fan-out cannot be reached.
    pub async fn presence_everywhere(&self, channel: &str) -> Result<Presences, PresenceError> {
        if let Some(state) = lock(&self.presence).get(channel).map(ChannelPresence::list) {
            return Ok(state);
        }
        let Some(fetch) = self
            .fanout
            .as_ref()
            .and_then(|fanout| fanout.presence_fetch(channel))
        else {
            return Ok(Presences::default());
        };
        let records = fetch
            .await
            .map_err(|err| PresenceError::Unavailable(err.to_string()))?;
        Ok(Presences::from_records(
            records.into_iter().map(|(_, record)| record),
        ))
    }

    /// How many keys (users) are present in `channel` (see [`Hub::presence`]).
    pub fn presence_count(&self, channel: &str) -> usize {
        lock(&self.presence)
            .get(channel)
            .map_or(0, ChannelPresence::count)
    }

    /// Takes `member` out of every channel it joined, running the `left` hooks. With a
    /// handover (the member was suspended: [`Hub::suspend`]), its memberships (assigns
    /// included) go there for the client to come back to ([`Hub::restore`]).
    pub(crate) async fn disconnect(
        &self,
        member: &Arc<Member>,
        reason: &LeaveReason,
        suspend: Option<Arc<Handover>>,
    ) {
        let mut kept = Vec::new();
        for channel in member.channels() {
            if let Some(membership) = self.leave_keeping(member, &channel, reason).await {
                kept.push(membership);
            }
        }
        if let Some(handover) = suspend {
            tracing::debug!(member = %member.id(), channels = kept.len(), "suspended");
            handover.fill(kept);
        }
    }

    /// Keeps `member`'s place under `key` at once, as its connection ends (a client may come
    /// back before the `left` hooks are done); its memberships follow through the handover.
    /// `None` without a history. In a cluster that keeps the history, the member's id and
    /// channels also go where every node can claim them.
    pub(crate) fn suspend(&self, member: &Member, key: String) -> Option<Arc<Handover>> {
        let history = self.history.as_ref()?;
        if self.clustered
            && let Some(fanout) = &self.fanout
        {
            let session = ClusterSession {
                member: member.id().to_string(),
                channels: member.session_channels(),
            };
            match serde_json::to_vec(&session) {
                Ok(body) => fanout.session_keep(&key, body, history.limits().max_age),
                Err(err) => tracing::error!(%err, "suspended member not kept for the cluster"),
            }
        }
        Some(history.suspend(key, member.id(), member.identity.clone(), member.starts()))
    }

    /// Claims the member suspended under `key` for a connection coming back from `offset`,
    /// when it can come back (see [`Hub::restore`]); its id when so.
    pub(crate) fn claim_suspended(&self, key: &str, offset: u64) -> Option<MemberId> {
        self.history.as_ref()?.claim(key, offset)
    }

    /// Claims the member suspended under `key`, on this node or, in a cluster that keeps the
    /// history, on any node: its id, and whether it was suspended here (then its identity and
    /// assigns come back too; from another node, the connect hook and `pass` run again). The
    /// cluster's copy is taken first, so a member comes back once, wherever the client lands.
    pub(crate) async fn claim_anywhere(&self, key: &str, offset: u64) -> Option<(MemberId, bool)> {
        if !self.clustered {
            return self
                .claim_suspended(key, offset)
                .map(|member| (member, true));
        }
        let (fanout, history) = (self.fanout.as_ref()?, self.history.as_ref()?);
        let taken = tokio::time::timeout(CLUSTER_READ_LIMIT, fanout.session_take(key)).await;
        let body = match taken {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => {
                // Claimed elsewhere already, expired, or lost with Redis: not here either.
                history.forget(key);
                return None;
            }
            Ok(Err(err)) => {
                tracing::debug!(%err, "suspended member not claimed: the cluster is out of reach");
                return None;
            }
            Err(_) => {
                tracing::debug!("suspended member not claimed: the cluster took too long");
                return None;
            }
        };
        if let Some(member) = self.claim_suspended(key, offset) {
            return Some((member, true));
        }
        let session: ClusterSession = serde_json::from_slice(&body).ok()?;
        let member: MemberId = session.member.parse().ok()?;
        history.forget(key);
        history.adopt(member, session.channels);
        Some((member, false))
    }

    /// Joins a member that comes back from another node of the cluster to its channels again,
    /// each through `pass` with its join payload, then restores it from `offset` as
    /// [`Hub::restore`] does. False, and nothing joined, when a channel refuses it or what it
    /// missed is gone.
    pub(crate) async fn rejoin(
        &self,
        member: &Arc<Member>,
        channels: Vec<SessionChannel>,
        offset: u64,
    ) -> bool {
        let mut kept = Vec::with_capacity(channels.len());
        for channel in channels {
            let Some((entry, params)) = self.registry.resolve(&channel.channel) else {
                return false;
            };
            let Ok(handler) = entry.instance(&params) else {
                return false;
            };
            let join = JoinContext {
                channel: &channel.channel,
                params: &params,
                payload: channel.payload.as_deref(),
                member,
                hub: self,
            };
            let assigns = match AssertUnwindSafe(handler.join(&join)).catch_unwind().await {
                Ok(Ok(joined)) => joined.into_parts().1,
                Ok(Err(_)) | Err(_) => {
                    tracing::debug!(
                        channel = channel.channel,
                        member = %member.id(),
                        "refused on coming back from another node"
                    );
                    return false;
                }
            };
            kept.push(Kept {
                channel: channel.channel,
                assigns,
                tag: 0,
                since: channel.since,
                payload: channel.payload,
            });
        }
        self.restore(member, kept, offset).await
    }

    /// Whether the claimed member `member` can still come back from `offset` (nothing it
    /// missed has gone since the claim); when not, the claim is dropped.
    pub(crate) fn confirm_claim(&self, member: MemberId, offset: u64) -> bool {
        self.history
            .as_ref()
            .is_some_and(|history| history.confirm(member, offset))
    }

    /// Takes the claimed member `member`: its handshake, identity and channels.
    pub(crate) fn take_suspended(&self, member: MemberId) -> Option<super::history::Suspended> {
        self.history.as_ref()?.take(member)
    }

    /// Puts a member that came back into the channels it was in (no `pass`; its assigns as
    /// they were), queues every event of those channels after `offset` to it, in order and
    /// before any new one, then runs the `joined` hooks (its `left` hooks ran when it went).
    /// False, and nothing done, when some of those events are no longer kept.
    pub(crate) async fn restore(
        &self,
        member: &Arc<Member>,
        channels: Vec<Kept>,
        offset: u64,
    ) -> bool {
        let Some(history) = &self.history else {
            return false;
        };
        let mut back = Vec::with_capacity(channels.len());
        // What it missed: after its offset, and nothing from before it joined a channel.
        let from: Vec<(&str, u64)> = channels
            .iter()
            .map(|kept| (kept.channel.as_str(), kept.since.max(offset)))
            .collect();
        let mut catchup = self.catch_up(&from).await;
        {
            let _turn = history.turn();
            let Some(missed) = self.missed_since(history, &mut catchup, &from) else {
                return false;
            };
            let tags: Vec<MemberTag> = channels.iter().map(|kept| kept.tag).collect();
            for kept in channels {
                let Some((entry, params)) = self.registry.resolve(&kept.channel) else {
                    continue;
                };
                let grant = Grant {
                    assigns: kept.assigns,
                    payload: kept.payload,
                };
                self.subscribe(
                    member,
                    &kept.channel,
                    entry,
                    kept.tag,
                    grant,
                    Some(kept.since),
                );
                back.push((kept.channel, params));
            }
            for (at, message) in missed {
                self.replay(member, tags[at], &message);
            }
        }
        drop(catchup);
        for (channel, params) in back {
            if let Some((entry, _)) = self.registry.resolve(&channel) {
                self.after_join(member, &channel, entry, &params).await;
            }
        }
        true
    }

    /// Takes `member` out of `channel`, running its `left` hook; false when it was not in.
    pub(crate) async fn leave(
        &self,
        member: &Arc<Member>,
        channel: &str,
        reason: &LeaveReason,
    ) -> bool {
        self.leave_keeping(member, channel, reason).await.is_some()
    }

    /// As [`Hub::leave`], handing back the member's assigns and tag in the channel.
    async fn leave_keeping(
        &self,
        member: &Arc<Member>,
        channel: &str,
        reason: &LeaveReason,
    ) -> Option<Kept> {
        if !member.is_in(channel) {
            return None;
        }
        let mut tag = 0;
        let untracked = {
            let mut shard = write(self.shard(channel));
            let mut presence = lock(&self.presence);
            let untracked = presence
                .get_mut(channel)
                .and_then(|p| p.untrack(member.id()));
            if let Some(members) = shard.get_mut(channel) {
                // The last member takes the leaver's place; everyone else keeps theirs (O(1)).
                if let Some(membership) = members.swap_remove(&member.id()) {
                    tag = membership.tag;
                }
                if members.is_empty() {
                    shard.remove(channel);
                    presence.remove(channel);
                    if let Some(fanout) = &self.fanout
                        && !lock(&self.pins).contains_key(channel)
                    {
                        fanout.channel_closed(channel);
                    }
                }
            }
            untracked
        };
        if let Some(change) = untracked {
            self.publish_presence(channel, change);
        }
        tracing::debug!(channel, member = %member.id(), %reason, "left");
        if let Some((entry, params)) = self.registry.resolve(channel)
            && let Ok(handler) = entry.instance(&params)
        {
            let ctx = ChannelContext {
                channel,
                params: &params,
                member,
                hub: self,
            };
            if AssertUnwindSafe(handler.left(&ctx, reason))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(channel, kind = entry.type_name, "left hook panicked");
            }
        }
        // Out of its list last, so that `left` still sees the member's assigns.
        member
            .remove_channel(channel)
            .map(|(assigns, since, payload)| Kept {
                channel: channel.to_owned(),
                assigns,
                tag,
                since,
                payload,
            })
    }

    /// A client event `event` into `channel`, handled by the channel's `handle_in`.
    ///
    /// # Errors
    /// [`EventError::NotSubscribed`] unless `peer` joined `channel`;
    /// [`EventError::HandlerFailed`] when the handler panicked.
    pub(crate) async fn event(
        &self,
        member: &Arc<Member>,
        channel: &str,
        event: &str,
        payload: Payload,
    ) -> Result<Reply, EventError> {
        if !member.is_in(channel) {
            return Err(EventError::NotSubscribed);
        }
        let (entry, params) = self
            .registry
            .resolve(channel)
            .ok_or(EventError::NotSubscribed)?;
        // It joined, so its params parsed then and do now.
        let handler = entry
            .instance(&params)
            .map_err(|_| EventError::NotSubscribed)?;
        let ctx = ChannelContext {
            channel,
            params: &params,
            member,
            hub: self,
        };
        AssertUnwindSafe(handler.handle_in(event, payload, &ctx))
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
    /// queued for. When the fan-out keeps the history ([`Fanout::keep_history`]), the event
    /// goes to the fan-out only and is delivered here when it comes back with its offset;
    /// then the count is how many members the channel has here.
    ///
    /// # Errors
    /// See [`Hub::outgoing`]; [`EmitError::Fanout`] when the event reached this node's members
    /// but not the other nodes.
    pub fn broadcast(
        &self,
        channel: &str,
        event: &str,
        payload: Payload,
        except: Option<MemberId>,
    ) -> Result<usize, EmitError> {
        let message = self.outgoing(channel, event, payload)?;
        if self.clustered
            && let (Some(fanout), Some(history)) = (&self.fanout, &self.history)
        {
            // The cluster orders it: it comes back, with its offset, to be delivered here too.
            return match fanout.publish(&message, except) {
                Ok(()) => Ok(self.member_count(channel)),
                Err(err) => {
                    // Here only, and kept nowhere: no client coming back from before it is
                    // whole.
                    let _turn = history.turn();
                    history.unrecorded();
                    let message = message.with_offset(history.last());
                    self.deliver(&message, except);
                    Err(EmitError::Fanout(err))
                }
            };
        }
        let (delivered, published) = self.deliver_kept(message, except, |message| {
            self.fanout
                .as_ref()
                .map_or(Ok(()), |fanout| fanout.publish(message, except))
        });
        published.map_err(EmitError::Fanout)?;
        Ok(delivered)
    }

    /// Delivers `message` to this node's members, recording it in the history first when the
    /// hub keeps one (a channel broadcast, not a push or a presence diff).
    /// Then hands the event, as delivered, to `then`.
    fn deliver_kept<R>(
        &self,
        message: Outgoing,
        except: Option<MemberId>,
        then: impl FnOnce(&Outgoing) -> R,
    ) -> (usize, R) {
        match &self.history {
            Some(history) if !message.is_direct() && message.event() != "presence_diff" => {
                let (delivered, message) = {
                    let _turn = history.turn();
                    let message = history.record(message);
                    (self.deliver(&message, except), message)
                };
                (delivered, then(&message))
            }
            _ => (self.deliver(&message, except), then(&message)),
        }
    }

    /// Hands an already built event to the members of its channel on this node (but
    /// `except`); returns how many it was queued for.
    pub fn deliver(&self, message: &Outgoing, except: Option<MemberId>) -> usize {
        if let Some((entry, params)) = self.intercepting(message) {
            return self.deliver_filtered(message, except, entry, &params);
        }
        let shard = read(self.shard(message.channel()));
        let Some(members) = shard.get(message.channel()) else {
            return 0;
        };
        let mut members = members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(_, membership)| membership);
        let mut delivered = 0;
        // Each queue is pushed to under its own lock, an atomic instruction that waits for
        // every load before it: member by member, the cache misses of a large channel would
        // come one after another. Reading a group's lines first lets them overlap.
        loop {
            let chunk: smallvec::SmallVec<[&Membership; TOUCH_AHEAD]> =
                members.by_ref().take(TOUCH_AHEAD).collect();
            if chunk.is_empty() {
                return delivered;
            }
            for membership in &chunk {
                membership.sink.touch();
            }
            delivered += chunk
                .iter()
                .filter(|membership| membership.sink.deliver(message, membership.tag))
                .count();
        }
    }

    /// The channel type of `message` and the params, when it filters this event per member.
    fn intercepting(&self, message: &Outgoing) -> Option<(&Channel, Params)> {
        if !self.registry.intercepts_any() {
            return None;
        }
        self.registry
            .resolve(message.channel())
            .filter(|(entry, _)| entry.intercept.contains(&message.event()))
    }

    /// Delivers an intercepted event: each member's `handle_out` keeps, drops or rewrites it.
    /// The filters run outside the subscription lock (they may broadcast).
    fn deliver_filtered(
        &self,
        message: &Outgoing,
        except: Option<MemberId>,
        entry: &Channel,
        params: &Params,
    ) -> usize {
        let recipients: Vec<(Arc<Member>, MemberTag)> = read(self.shard(message.channel()))
            .get(message.channel())
            .map(|members| {
                members
                    .iter()
                    .filter(|(id, _)| Some(**id) != except)
                    .map(|(_, membership)| (membership.member.clone(), membership.tag))
                    .collect()
            })
            .unwrap_or_default();
        let Ok(handler) = entry.instance(params) else {
            return 0;
        };
        recipients
            .iter()
            .filter(|(member, tag)| self.filter_out(&handler, entry, params, member, *tag, message))
            .count()
    }

    /// Delivers `message` to one member through the channel's `handle_out`, which keeps,
    /// drops or rewrites it (a rewrite keeps the event's offset).
    fn filter_out(
        &self,
        handler: &super::registry::Instance<'_>,
        entry: &Channel,
        params: &Params,
        member: &Member,
        tag: MemberTag,
        message: &Outgoing,
    ) -> bool {
        let ctx = ChannelContext {
            channel: message.channel(),
            params,
            member,
            hub: self,
        };
        let outbound = std::panic::catch_unwind(AssertUnwindSafe(|| {
            handler.handle_out(message.event(), message.payload(), &ctx)
        }));
        match outbound {
            Ok(Outbound::Keep) => member.sink.deliver(message, tag),
            Ok(Outbound::Replace(payload)) => {
                let mut own = Outgoing::direct(message.channel(), message.event(), payload);
                if let Some(offset) = message.offset() {
                    own = own.with_offset(offset);
                }
                member.sink.deliver(&own, tag)
            }
            Ok(Outbound::Drop) => false,
            Err(_) => {
                tracing::error!(
                    channel = message.channel(),
                    event = message.event(),
                    kind = entry.type_name,
                    "handle_out panicked; event not delivered to this member"
                );
                false
            }
        }
    }

    /// Delivers a recorded event again to one member (a replay), through `handle_out` when
    /// its channel filters that event, as it was delivered the first time.
    fn replay(&self, member: &Member, tag: MemberTag, message: &Outgoing) {
        match self.intercepting(message) {
            Some((entry, params)) => {
                if let Ok(handler) = entry.instance(&params) {
                    self.filter_out(&handler, entry, &params, member, tag, message);
                }
            }
            None => {
                member.sink.deliver(message, tag);
            }
        }
    }

    /// How many members `channel` has on this node.
    pub fn member_count(&self, channel: &str) -> usize {
        read(self.shard(channel))
            .get(channel)
            .map_or(0, |members| members.len())
    }

    /// Hands an event to one member, through its membership of the event's channel.
    ///
    /// With a history kept, the push carries the node's latest offset (it is not recorded
    /// itself): everything up to it reached the member first, so a client that takes the
    /// last argument or offset it got as where it is (socket.io's client does, for any event
    /// whose last argument is a string) resumes from the right place.
    pub(crate) fn push(&self, member: &Member, message: Outgoing) -> bool {
        let tag = read(self.shard(message.channel()))
            .get(message.channel())
            .and_then(|members| members.get(&member.id()))
            .map(|membership| membership.tag);
        let Some(tag) = tag else {
            return false;
        };
        match &self.history {
            Some(history) => {
                let _turn = history.turn();
                let message = match history.last() {
                    0 => message,
                    last => message.with_offset(last),
                };
                member.sink.deliver(&message, tag)
            }
            None => member.sink.deliver(&message, tag),
        }
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

/// The `since` of a join payload `{"since": N}` (a number, or a string of one): `None` when
/// the payload asks for no history, `Some(None)` when its `since` is no offset.
fn join_since(payload: Option<&RawValue>) -> Option<Option<u64>> {
    #[derive(serde::Deserialize)]
    struct Join<'a> {
        #[serde(borrow)]
        since: Option<&'a RawValue>,
    }
    let join: Join<'_> = serde_json::from_str(payload?.get()).ok()?;
    let since = join.since?;
    Some(
        match serde_json::from_str::<serde_json::Value>(since.get()) {
            Ok(serde_json::Value::Number(n)) => n.as_u64(),
            Ok(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        },
    )
}

/// What a member holds in a channel it joins: the assigns its `pass` gave, and the join
/// payload (kept with recovery on, for `pass` on another node when the client comes back).
struct Grant {
    assigns: Assigns,
    payload: Option<Box<RawValue>>,
}

/// Channels kept open on a node while a member coming back reads the cluster's history.
struct Pinned<'a> {
    hub: &'a Hub,
    channels: Vec<String>,
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        for channel in &self.channels {
            self.hub.unpin(channel);
        }
    }
}

/// A member coming back, prepared before its turn ([`Hub::catch_up`]): in a cluster that keeps
/// the history, its channels held open here and what the cluster held after its offsets. Kept
/// until the member is in its channels.
struct Catchup<'a> {
    _pinned: Option<Pinned<'a>>,
    read: Option<ClusterEvents>,
}

/// How long reading the cluster's history may take for a member coming back.
const CLUSTER_READ_LIMIT: Duration = Duration::from_secs(5);

impl LocalDelivery for Hub {
    fn deliver_at(&self, message: Outgoing, offset: u64, except: Option<MemberId>) -> usize {
        match &self.history {
            Some(history) if self.clustered => {
                let _turn = history.turn();
                let message = history.record_at(message, offset);
                Hub::deliver(self, &message, except)
            }
            _ => Hub::deliver(self, &message, except),
        }
    }

    fn deliver(&self, message: &Outgoing, except: Option<MemberId>) -> usize {
        if self.history.is_some() {
            // Recorded here too, under this node's offsets, for this node's clients.
            let copy = Outgoing::new(
                message.channel(),
                message.event(),
                message.payload().clone(),
            );
            return self.deliver_kept(copy, except, |_| ()).0;
        }
        Hub::deliver(self, message, except)
    }

    fn presence_changed(&self, node: &str, change: &PresenceChange) {
        let diff = lock(&self.presence)
            .get_mut(&change.channel)
            .map(|presence| presence.apply_remote(node, change));
        if let Some(diff) = diff {
            self.send_presence_diff(&change.channel, &diff);
        }
    }

    fn presence_reset(&self, channel: &str, records: NodeRecords) {
        let diff = lock(&self.presence)
            .get_mut(channel)
            .map(|presence| presence.reset_remote(records));
        if let Some(diff) = diff {
            self.send_presence_diff(channel, &diff);
        }
    }

    fn presence_node_down(&self, node: &str) {
        let diffs: Vec<(String, PresenceDiff)> = lock(&self.presence)
            .iter_mut()
            .map(|(channel, presence)| (channel.clone(), presence.remove_node(node)))
            .collect();
        for (channel, diff) in diffs {
            self.send_presence_diff(&channel, &diff);
        }
    }

    fn presence_local(&self) -> Vec<PresenceChange> {
        lock(&self.presence)
            .iter()
            .map(|(channel, presence)| PresenceChange {
                channel: channel.clone(),
                joins: presence.local(),
                leaves: Vec::new(),
            })
            .filter(|change| !change.joins.is_empty())
            .collect()
    }

    fn presence_channels(&self) -> Vec<String> {
        lock(&self.presence).keys().cloned().collect()
    }

    fn presence_nodes(&self) -> Vec<String> {
        let mut nodes = std::collections::BTreeSet::new();
        for presence in lock(&self.presence).values() {
            presence.remote_nodes(&mut nodes);
        }
        nodes.into_iter().map(|node| node.to_string()).collect()
    }
}

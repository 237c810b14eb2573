//! Presence across nodes through Redis: one state for the cluster, with expiring node leases.
//!
//! # What is in Redis
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>presence:<channel>` | hash | `phx_ref` → `{"node", "key", "meta"}` (JSON), every node's records of the channel |
//! | `<prefix>presence-refs:<node>` | hash | `phx_ref` → channel, one node's records (to clean up after it) |
//! | `<prefix>presence-lease:<node>` | string | exists while the node lives (5 s expiry, renewed every second) |
//! | `<prefix>presence-nodes` | set | the nodes that have written records |
//!
//! Each change a node makes is written to the hashes and published (envelope `TDP`, version 1,
//! the node id, then the [`PresenceChange`] as JSON) on the channel's own Redis channel, so the
//! nodes that have members in it apply it at once. A node that gets its first member in a
//! presence channel subscribes, then reads the channel's hash (`HGETALL`): a late-starting
//! node gets the whole state. Publications that arrive while it reads wait behind the read,
//! so none is applied out of order.
//!
//! # Faults
//!
//! - **A node dies** (SIGKILL, a lost machine): its lease expires within 5 s; every node checks
//!   each second the leases of the nodes in the set and of the nodes it holds records of,
//!   removes a dead node's records from its own state (its members get `presence_diff`
//!   leaves) and from Redis. So within about 6 s.
//! - **A node is busy** (a burst of changes to fan out): its lease is renewed by a task of its
//!   own, on a connection of its own, so a long queue of presence work does not make the node
//!   look dead.
//! - **Redis goes away**: each node keeps its own members' presence and tells them of local
//!   changes. When Redis is back, every node reads the hashes of its channels again (ghosts of
//!   nodes that died meanwhile go), and a node whose writes failed, or whose lease had expired,
//!   writes all its records again and publishes them as joins (a Redis restarted empty is
//!   refilled). The nodes end with the same, true state.
//!
//! The trade-off against Phoenix.Tracker-style deltas between nodes: Redis holds the state, so
//! a late node needs one read rather than a handshake with every peer, and a node's death is
//! seen through its lease rather than missed heartbeats; the cost is a write per change and
//! two commands per node per second at rest (plus one per other node).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use crate::channels::{NodeRecords, PresenceChange, PresenceMeta, PresenceRecord};

/// The first bytes of a presence envelope: `TDP` and the format version.
pub(super) const MAGIC: &[u8; 4] = b"TDP\x01";
/// How long a node's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(5);
/// How often the lease is renewed and the other nodes' leases are checked.
const TICK: Duration = Duration::from_secs(1);
/// The longest one round trip of presence commands may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The most local changes written in one round trip.
const BATCH: usize = 256;

/// What the presence task is told, in order.
#[derive(Debug)]
pub(super) enum PresenceIn {
    /// A presence channel got its first member here.
    Opened(String),
    /// A channel lost its last member here.
    Closed(String),
    /// A change made on this node.
    Local(PresenceChange),
    /// A change another node published.
    Remote {
        node: String,
        change: PresenceChange,
    },
    /// The subscriber is subscribed to these channels (after a join, or a reconnection).
    Subscribed(Vec<String>),
    /// Every node's records of a channel, for server code.
    Fetch(String, Reply),
    /// Redis had lost this node's lease (it restarted empty, or this node just started).
    LeaseLost,
}

/// Where the answer to a [`PresenceIn::Fetch`] goes.
pub(super) type Reply = tokio::sync::oneshot::Sender<Result<NodeRecords, String>>;

/// A record as stored in a channel's hash.
#[derive(Serialize, Deserialize)]
struct Stored {
    node: String,
    key: String,
    meta: PresenceMeta,
}

/// A presence envelope: the magic, the 16-byte node id, the change as JSON.
pub(super) fn encode(node: &[u8; 16], change: &PresenceChange) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(change).ok()?;
    let mut out = Vec::with_capacity(MAGIC.len() + 16 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(node);
    out.extend_from_slice(&json);
    Some(out)
}

/// The node and change of a presence envelope; `None` when `raw` is not one.
pub(super) fn decode(raw: &[u8]) -> Option<([u8; 16], PresenceChange)> {
    if raw.get(..MAGIC.len())? != MAGIC {
        return None;
    }
    let node: [u8; 16] = raw.get(MAGIC.len()..MAGIC.len() + 16)?.try_into().ok()?;
    let change = serde_json::from_slice(raw.get(MAGIC.len() + 16..)?).ok()?;
    Some((node, change))
}

/// A command connection to Redis, made when needed and made again after a failure.
pub(super) struct Link {
    client: ::redis::Client,
    connection: Option<ConnectionManager>,
    config: ConnectionManagerConfig,
}

impl Link {
    pub(super) fn new(client: ::redis::Client) -> Self {
        Link {
            client,
            connection: None,
            config: ConnectionManagerConfig::new()
                .set_connection_timeout(Some(COMMAND_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_number_of_retries(1),
        }
    }

    /// The connection, made when needed.
    async fn connection(&mut self) -> Result<&mut ConnectionManager, String> {
        if self.connection.is_none() {
            let manager = timeout(
                COMMAND_TIMEOUT,
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone()),
            )
            .await
            .map_err(|_| "connection timed out".to_owned())?
            .map_err(|err| err.to_string())?;
            self.connection = Some(manager);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| "not connected".to_owned())
    }

    /// Runs `pipe` within the timeout; a failure drops the connection (a fresh one next time).
    pub(super) async fn query<T: ::redis::FromRedisValue>(
        &mut self,
        pipe: &::redis::Pipeline,
    ) -> Result<T, String> {
        let connection = self.connection().await?;
        let result = match timeout(COMMAND_TIMEOUT, pipe.query_async::<T>(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

/// Renews this node's lease every tick, on a connection of its own, until the adapter is
/// dropped; tells the presence task when Redis had lost it.
pub(super) async fn renew_lease(worker: Arc<super::redis::Worker>, node: String) {
    let mut link = Link::new(worker.client.clone());
    let key = format!("{}presence-lease:{node}", worker.prefix);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while worker.hub_alive() {
        tick.tick().await;
        let mut pipe = ::redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .arg("GET");
        match link.query::<(Option<String>,)>(&pipe).await {
            Ok((Some(_),)) => {}
            Ok((None,)) => {
                if worker.presence.send(PresenceIn::LeaseLost).is_err() {
                    return;
                }
            }
            Err(err) => tracing::debug!(error = %err, "presence lease not renewed"),
        }
    }
}

/// The presence side of one adapter.
pub(super) struct PresenceTask {
    pub(super) worker: Arc<super::redis::Worker>,
    /// This node's id, as in the keys.
    pub(super) node: String,
    link: Link,
    /// Presence channels with members here.
    wanted: HashSet<String>,
    /// Redis may not hold what this node holds (a write failed, or nothing written yet).
    dirty: bool,
    /// Until then, only the nodes in the Redis set are checked: Redis lost every lease (it
    /// restarted empty, or this node just started), and the live nodes write theirs again
    /// within a tick.
    grace_until: Instant,
}

impl PresenceTask {
    pub(super) fn new(worker: Arc<super::redis::Worker>, node: String) -> Self {
        PresenceTask {
            link: Link::new(worker.client.clone()),
            worker,
            node,
            wanted: HashSet::new(),
            dirty: true,
            grace_until: Instant::now() + LEASE,
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{}{what}", self.worker.prefix)
    }

    fn channel_key(&self, channel: &str) -> String {
        self.key(&format!("presence:{channel}"))
    }

    fn refs_key(&self, node: &str) -> String {
        self.key(&format!("presence-refs:{node}"))
    }

    fn lease_key(&self, node: &str) -> String {
        self.key(&format!("presence-lease:{node}"))
    }

    fn nodes_key(&self) -> String {
        self.key("presence-nodes")
    }

    /// Runs until the adapter is dropped.
    pub(super) async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<PresenceIn>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next: Option<PresenceIn> = None;
        loop {
            let message = match next.take() {
                Some(message) => message,
                None => tokio::select! {
                    message = inbox.recv() => match message {
                        Some(message) => message,
                        None => return,
                    },
                    _ = tick.tick() => {
                        if !self.worker.hub_alive() {
                            return;
                        }
                        self.heartbeat().await;
                        continue;
                    }
                },
            };
            match message {
                PresenceIn::Opened(channel) => {
                    self.wanted.insert(channel);
                }
                PresenceIn::Closed(channel) => {
                    self.wanted.remove(&channel);
                }
                PresenceIn::Remote { node, change } => {
                    if let Some(hub) = self.worker.hub.upgrade() {
                        hub.presence_changed(&node, &change);
                    }
                }
                PresenceIn::Fetch(channel, reply) => {
                    let _ = reply.send(self.read(&channel).await);
                }
                PresenceIn::LeaseLost => {
                    if !self.dirty {
                        tracing::warn!("Redis had lost this node's presence: writing it again");
                    }
                    self.grace_until = Instant::now() + LEASE;
                    self.reassert().await;
                }
                PresenceIn::Subscribed(channels) => {
                    let channels: Vec<String> = channels
                        .into_iter()
                        .filter(|c| self.wanted.contains(c))
                        .collect();
                    self.snapshot(&channels).await;
                }
                PresenceIn::Local(change) => {
                    // The local changes queued behind this one go in the same round trip.
                    let mut changes = vec![change];
                    while changes.len() < BATCH {
                        match inbox.try_recv() {
                            Ok(PresenceIn::Local(change)) => changes.push(change),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write(&changes).await;
                }
            }
        }
    }

    async fn query<T: ::redis::FromRedisValue>(
        &mut self,
        pipe: &::redis::Pipeline,
    ) -> Result<T, String> {
        self.link.query(pipe).await
    }

    /// Adds the writes and the publication of `change` to `pipe`.
    fn add_change(&self, pipe: &mut ::redis::Pipeline, change: &PresenceChange) {
        let hash = self.channel_key(&change.channel);
        let refs = self.refs_key(&self.node);
        for record in &change.leaves {
            pipe.cmd("HDEL")
                .arg(&hash)
                .arg(record.meta.phx_ref())
                .ignore();
            pipe.cmd("HDEL")
                .arg(&refs)
                .arg(record.meta.phx_ref())
                .ignore();
        }
        for record in &change.joins {
            let stored = Stored {
                node: self.node.clone(),
                key: record.key.clone(),
                meta: record.meta.clone(),
            };
            let Ok(json) = serde_json::to_vec(&stored) else {
                continue;
            };
            pipe.cmd("HSET")
                .arg(&hash)
                .arg(record.meta.phx_ref())
                .arg(json)
                .ignore();
            pipe.cmd("HSET")
                .arg(&refs)
                .arg(record.meta.phx_ref())
                .arg(&change.channel)
                .ignore();
        }
        if let Some(body) = encode(&self.worker.node, change) {
            pipe.cmd("PUBLISH")
                .arg(self.worker.redis_channel(&change.channel))
                .arg(body)
                .ignore();
        }
    }

    /// Writes and publishes this node's changes; on failure, everything is written again
    /// once Redis answers.
    async fn write(&mut self, changes: &[PresenceChange]) {
        if self.dirty {
            // Redis misses more than these (or this node's lease is not written yet, and a
            // node that got its publication would find it dead): everything goes at once.
            self.reassert().await;
            return;
        }
        let mut pipe = ::redis::pipe();
        for change in changes {
            self.add_change(&mut pipe, change);
        }
        if let Err(err) = self.query::<()>(&pipe).await {
            if !self.dirty {
                tracing::warn!(
                    error = %err,
                    "presence not written to Redis: the other nodes get it once Redis is back"
                );
            }
            self.dirty = true;
        }
    }

    /// Reads the other nodes' records of `channels` and hands them to the hub.
    async fn snapshot(&mut self, channels: &[String]) {
        for batch in channels.chunks(BATCH) {
            let mut pipe = ::redis::pipe();
            for channel in batch {
                pipe.cmd("HGETALL").arg(self.channel_key(channel));
            }
            let hashes: Vec<HashMap<String, Vec<u8>>> = match self.query(&pipe).await {
                Ok(hashes) => hashes,
                Err(err) => {
                    // The subscriber reconnects and asks again.
                    tracing::debug!(error = %err, "presence not read from Redis");
                    return;
                }
            };
            let Some(hub) = self.worker.hub.upgrade() else {
                return;
            };
            for (channel, hash) in batch.iter().zip(hashes) {
                let records = hash
                    .into_values()
                    .filter_map(|raw| serde_json::from_slice::<Stored>(&raw).ok())
                    .filter(|stored| stored.node != self.node)
                    .map(|stored| {
                        (
                            stored.node,
                            PresenceRecord {
                                key: stored.key,
                                meta: stored.meta,
                            },
                        )
                    })
                    .collect();
                hub.presence_reset(channel, records);
            }
        }
    }

    /// Every node's records of `channel`.
    async fn read(&mut self, channel: &str) -> Result<NodeRecords, String> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("HGETALL").arg(self.channel_key(channel));
        let (hash,): (HashMap<String, Vec<u8>>,) = self.query(&pipe).await?;
        Ok(hash
            .into_values()
            .filter_map(|raw| serde_json::from_slice::<Stored>(&raw).ok())
            .map(|stored| {
                (
                    stored.node,
                    PresenceRecord {
                        key: stored.key,
                        meta: stored.meta,
                    },
                )
            })
            .collect())
    }

    /// Writes everything again if a write failed, and removes the nodes whose lease expired:
    /// those in the Redis set, and those this node holds records of (the first node to bury
    /// one takes it out of the set, so the others could not find it there).
    async fn heartbeat(&mut self) {
        if self.dirty {
            self.reassert().await;
        }
        let mut pipe = ::redis::pipe();
        pipe.cmd("SMEMBERS").arg(self.nodes_key());
        let (nodes,): (Vec<String>,) = match self.query(&pipe).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::debug!(error = %err, "presence nodes not read");
                return;
            }
        };
        let mut others: Vec<String> = nodes.into_iter().filter(|n| *n != self.node).collect();
        if Instant::now() >= self.grace_until
            && let Some(hub) = self.worker.hub.upgrade()
        {
            for node in hub.presence_nodes() {
                if !others.contains(&node) {
                    others.push(node);
                }
            }
        }
        if others.is_empty() {
            return;
        }
        let mut pipe = ::redis::pipe();
        for node in &others {
            pipe.cmd("EXISTS").arg(self.lease_key(node));
        }
        let Ok(alive) = self.query::<Vec<bool>>(&pipe).await else {
            return;
        };
        for (node, alive) in others.iter().zip(alive) {
            if !alive {
                self.bury(node).await;
            }
        }
    }

    /// Removes a dead node's records, here and in Redis.
    async fn bury(&mut self, node: &str) {
        tracing::info!(
            node,
            "a node's presence lease expired: removing its entries"
        );
        if let Some(hub) = self.worker.hub.upgrade() {
            hub.presence_node_down(node);
        }
        let mut pipe = ::redis::pipe();
        pipe.cmd("HGETALL").arg(self.refs_key(node));
        let Ok((refs,)): Result<(HashMap<String, String>,), _> = self.query(&pipe).await else {
            return;
        };
        let mut pipe = ::redis::pipe();
        for (phx_ref, channel) in &refs {
            pipe.cmd("HDEL")
                .arg(self.channel_key(channel))
                .arg(phx_ref)
                .ignore();
        }
        pipe.cmd("DEL").arg(self.refs_key(node)).ignore();
        pipe.cmd("SREM").arg(self.nodes_key()).arg(node).ignore();
        let _ = self.query::<()>(&pipe).await;
    }

    /// Writes every record of this node again, removes those it no longer has, and publishes
    /// both, so that every node holds them whatever Redis lost.
    async fn reassert(&mut self) {
        let Some(hub) = self.worker.hub.upgrade() else {
            return;
        };
        let mut pipe = ::redis::pipe();
        pipe.cmd("HGETALL").arg(self.refs_key(&self.node));
        let Ok((stored,)): Result<(HashMap<String, String>,), _> = self.query(&pipe).await else {
            return;
        };
        let mut changes = hub.presence_local();
        let held: HashSet<&str> = changes
            .iter()
            .flat_map(|c| c.joins.iter().map(|r| r.meta.phx_ref()))
            .collect();
        let mut gone: HashMap<String, Vec<PresenceRecord>> = HashMap::new();
        for (phx_ref, channel) in stored {
            if !held.contains(phx_ref.as_str())
                && let Ok(meta) = serde_json::from_value(serde_json::json!({ "phx_ref": phx_ref }))
            {
                gone.entry(channel).or_default().push(PresenceRecord {
                    key: String::new(),
                    meta,
                });
            }
        }
        for (channel, leaves) in gone {
            match changes.iter_mut().find(|c| c.channel == channel) {
                Some(change) => change.leaves = leaves,
                None => changes.push(PresenceChange {
                    channel,
                    joins: Vec::new(),
                    leaves,
                }),
            }
        }
        let mut pipe = ::redis::pipe();
        for change in &changes {
            self.add_change(&mut pipe, change);
        }
        pipe.cmd("SADD")
            .arg(self.nodes_key())
            .arg(&self.node)
            .ignore();
        pipe.cmd("SET")
            .arg(self.lease_key(&self.node))
            .arg(1)
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .ignore();
        match self.query::<()>(&pipe).await {
            Ok(()) => {
                if self.dirty && !changes.is_empty() {
                    tracing::info!(channels = changes.len(), "presence written to Redis again");
                }
                self.dirty = false;
            }
            Err(err) => tracing::debug!(error = %err, "presence not written to Redis"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presence_envelope_round_trips_and_others_are_refused() {
        let meta: PresenceMeta = serde_json::from_str(r#"{"phx_ref":"r1","status":"here"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let change = PresenceChange {
            channel: "room:lobby".into(),
            joins: vec![PresenceRecord {
                key: "alice".into(),
                meta,
            }],
            leaves: vec![],
        };
        let node = [7u8; 16];
        let raw = encode(&node, &change).unwrap_or_default();
        assert_eq!(&raw[..4], b"TDP\x01");
        assert_eq!(decode(&raw), Some((node, change)));
        assert_eq!(decode(b"TDG\x02xxxxxxxxxxxxxxxx{}"), None);
        assert_eq!(decode(b"TDP\x01short"), None);
        let mut bad = raw.clone();
        bad.truncate(raw.len() - 3);
        assert_eq!(decode(&bad), None);
    }
}

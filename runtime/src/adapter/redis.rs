//! The Redis fan-out: nodes share their emits through Redis pub/sub.
//!
//! Every node publishes each emit to the Redis channel `<prefix><channel>`
//! (`tidings:chats/1` by default), and subscribes to the Redis channels of exactly the tidings
//! channels it has local members in. A node that receives a publication from another node hands
//! it to its own members with [`LocalDelivery::deliver`]; its own publications come back to it too and
//! are ignored (each envelope names the node it comes from).
//!
//! # The envelope
//!
//! One Redis message per emit, binary, integers big-endian, protocol-neutral: the event as the
//! channel layer has it, whatever protocols the nodes serve.
//!
//! | field | bytes | meaning |
//! | --- | --- | --- |
//! | magic | 4 | `TDG` and the format version, `2` |
//! | origin | 16 | the publishing node's id (random per adapter, so per process) |
//! | except | 1 + n | length (0 or 20), then the member id left out |
//! | channel | 2 + n | the concrete channel name |
//! | event | 2 + n | the event name, without the channel |
//! | args | 4, then per argument 4 + n | the raw JSON arguments |
//! | attachments | 4, then per attachment 4 + n | the binary parts |
//!
//! The receiving node hands the event to its members once ([`LocalDelivery::deliver`]); each of its
//! gateways encodes it once for all of its connections, as for a local emit.
//!
//! # With connection state recovery on
//!
//! The hub asks the adapter to keep the history ([`Fanout::keep_history`]): then Redis orders
//! every emit of the cluster (see `redis_history`). Each emit is one `EVALSHA` of a script
//! that gives it the cluster's next offset, appends it to the channel's stream and publishes
//! it with its offset (magic `TDG\x03`, the id, `;`, then the envelope above). Every node,
//! the emitting one included, delivers it when the publication comes back
//! ([`LocalDelivery::deliver_at`]), so all members everywhere get one order and one offset
//! per event. A client coming back, on any node, gets what it missed from the streams
//! ([`Fanout::history`]); a Socket.IO session suspended on one node is kept in Redis
//! (`<prefix>session:<pid>`, expiring with the duration) and taken once
//! ([`Fanout::session_take`]), by whichever node the client lands on.

//! # Faults
//!
//! - **Redis goes away.** Each node keeps delivering to its own members. The subscriber task
//!   reconnects with backoff (100 ms doubling to 5 s), subscribes again to the channels the
//!   node has members in at that moment, and cross-node delivery resumes. Messages published
//!   while a node was not subscribed are not replayed (Redis pub/sub keeps nothing).
//! - **Emits during the outage** come back to the caller as
//!   [`EmitError::Fanout`](crate::channels::EmitError::Fanout): the event reached this node's
//!   members, not the other nodes. [`Fanout::publish`] never waits for Redis: it hands the
//!   envelope to a publisher task and returns at once, so an emit never hangs. It fails when
//!   the adapter knows Redis is unreachable (the subscription connection dropped, or a publish
//!   or health check failed or took longer than 1 s; then until a `PING` is answered again),
//!   or when 8192 envelopes are already waiting for Redis. An emit made in the instant between
//!   Redis dying and the adapter noticing (the subscription connection sees a closed socket at
//!   once; a silent network at most sees the 1 s publish timeout or the 5 s health ping) is
//!   delivered locally, lost for the other nodes, and counted in a `warn` log.
//! - **A node crashes.** The others go on serving; Redis drops its subscriptions.
//!
//! Subscriptions are made in the background (the hub tells the adapter under a lock, so it
//! must not wait): a member that has just joined may miss what other nodes publish until the
//! node's `SUBSCRIBE` is confirmed, normally within a millisecond.
//!
//! Everything runs on one thread per adapter (`tidings-redis`, a current-thread Tokio runtime
//! with a subscriber task and a publisher task). It holds only a weak reference to the hub and
//! stops when the hub is dropped.
//!
//! Trust: whoever can publish to these Redis channels can send events to every client, so the
//! Redis server must be reachable by the cluster only.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use bytes::{BufMut as _, Bytes};
use futures_util::{FutureExt as _, StreamExt as _};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until, timeout};

use super::redis_history;
use super::redis_presence::{self, Link, PresenceIn, PresenceTask};
use crate::channels::{
    ClusterEvents, Fanout, FanoutError, FanoutFuture, HistoryLimits, LocalDelivery, MemberId,
    NodeRecords, Outgoing, PresenceChange,
};
use crate::payload::Payload;
use crate::sync::lock;

/// The longest a publish (or a health `PING`) may take before Redis counts as unreachable.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a `SUBSCRIBE` / `UNSUBSCRIBE` may wait for its confirmation.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The first wait before reconnecting; doubled after each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the subscription connection is pinged (to notice a silent network).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How many envelopes may wait for the publisher task.
const PUBLISH_QUEUE: usize = 8192;
/// The most envelopes sent in one pipeline (one round trip).
const PIPELINE_MAX: usize = 256;
/// The most channels in one `SUBSCRIBE` / `UNSUBSCRIBE`.
const SUBSCRIBE_BATCH: usize = 512;

/// The first bytes of every envelope: `TDG` and the format version.
const MAGIC: &[u8; 4] = b"TDG\x02";
/// The default prefix of the Redis channel names.
const DEFAULT_PREFIX: &str = "tidings:";

/// A node's id: 16 random bytes.
type NodeId = [u8; 16];

/// The Redis URL given to [`RedisFanout::new`] (or `TidingsBuilder::redis`) is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisFanoutError {
    /// The URL could not be parsed (expected `redis://[:password@]host[:port][/db]`).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
}

impl From<RedisFanoutError> for std::io::Error {
    fn from(err: RedisFanoutError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
    }
}

/// Fan-out through Redis pub/sub: an emit on any node reaches the members of its channel on
/// every node, exactly once each. See the [module documentation](self) for the envelope and
/// for what happens when Redis is down (in short: local delivery goes on, the emit returns
/// [`EmitError::Fanout`](crate::channels::EmitError::Fanout), and the adapter reconnects by
/// itself).
///
/// Most apps call `TidingsBuilder::redis(url)`; this type is for a custom prefix.
/// The connection is made in the background: a node starts even when Redis is down, and emits
/// report [`FanoutError`] until it is reached.
///
/// ```no_run
/// use std::sync::Arc;
/// use tidings_runtime::Tidings;
/// use tidings_runtime::adapter::RedisFanout;
///
/// # fn main() -> std::io::Result<()> {
/// let fanout = RedisFanout::new("redis://127.0.0.1:6379")?.prefix("myapp:");
/// let tidings = Tidings::builder().fanout(Arc::new(fanout)).build()?;
/// # Ok(())
/// # }
/// ```
pub struct RedisFanout {
    client: ::redis::Client,
    prefix: String,
    node: NodeId,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    publishes: mpsc::Sender<Publish>,
    presence: mpsc::UnboundedSender<PresenceIn>,
    sessions: mpsc::UnboundedSender<SessionJob>,
    receivers: Mutex<Option<Receivers>>,
}

impl std::fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL: it may hold a password.
        f.debug_struct("RedisFanout")
            .field("prefix", &self.prefix)
            .field("node", &hex(&self.node))
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisFanout {
    /// An adapter for the Redis server at `url` (`redis://host:port`, with an optional
    /// `:password@` and `/db`). Nothing is connected until the hub starts it.
    ///
    /// # Errors
    /// [`RedisFanoutError::InvalidUrl`] when `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, RedisFanoutError> {
        let client =
            ::redis::Client::open(url).map_err(|e| RedisFanoutError::InvalidUrl(e.to_string()))?;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (publishes, publishes_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (presence, presence_rx) = mpsc::unbounded_channel();
        let (sessions, sessions_rx) = mpsc::unbounded_channel();
        Ok(RedisFanout {
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
            node: node_id(),
            shared: Arc::new(Shared::default()),
            commands,
            publishes,
            presence,
            sessions,
            receivers: Mutex::new(Some(Receivers {
                commands: commands_rx,
                publishes: publishes_rx,
                presence: presence_rx,
                sessions: sessions_rx,
            })),
        })
    }

    /// The prefix of the Redis channel names (default `tidings:`, so `chats/1` is published
    /// to `tidings:chats/1`). Nodes of one cluster must use the same prefix; two apps sharing
    /// a Redis server keep apart with different ones.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether both Redis connections (publishing and subscriptions) are up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.publisher_up.load(Ordering::Acquire)
            && self.shared.subscriber_up.load(Ordering::Acquire)
    }

    /// This node's id in the envelopes, as 32 hex digits.
    pub fn node_id(&self) -> String {
        hex(&self.node)
    }
}

impl Fanout for RedisFanout {
    fn start(&self, hub: Weak<dyn LocalDelivery>) {
        let Some(receivers) = lock(&self.receivers).take() else {
            tracing::error!("a RedisFanout serves one hub; it was started twice, ignored");
            return;
        };
        let worker = Worker {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            node: self.node,
            shared: self.shared.clone(),
            hub,
            presence: self.presence.clone(),
            history_link: Arc::new(tokio::sync::Mutex::new(Link::new(self.client.clone()))),
        };
        let spawned = std::thread::Builder::new()
            .name("tidings-redis".to_owned())
            .spawn(move || worker.run(receivers));
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start the Redis adapter: emits stay on this node");
        }
    }

    fn publish(&self, message: &Outgoing, except: Option<MemberId>) -> Result<(), FanoutError> {
        if !self.shared.publisher_up.load(Ordering::Acquire) {
            return Err(FanoutError::Unreachable(
                "Redis is down, reconnecting".to_owned(),
            ));
        }
        // With the history kept, this node's members get the event when it comes back: not
        // while the subscription is down (the hub then delivers it here, kept nowhere).
        if self.shared.history.get().is_some() && !self.shared.subscriber_up.load(Ordering::Acquire)
        {
            return Err(FanoutError::Unreachable(
                "Redis subscription is down, reconnecting".to_owned(),
            ));
        }
        let body = encode(&self.node, message, except)?;
        let job = Publish {
            channel: format!("{}{}", self.prefix, message.channel()),
            body,
            stream: self
                .shared
                .history
                .get()
                .map(|_| format!("{}history:{}", self.prefix, message.channel())),
        };
        self.publishes.try_send(job).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => FanoutError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => FanoutError::Stopped,
        })
    }

    fn keep_history(&self, limits: &HistoryLimits) -> bool {
        self.shared.history.set(limits.clone()).is_ok()
    }

    fn history(
        &self,
        channels: Vec<(String, u64)>,
    ) -> FanoutFuture<Result<ClusterEvents, FanoutError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // Behind the channels' openings in the same queue: read once subscribed to them.
        let sent = self
            .commands
            .send(Command::History(HistoryRead { channels, reply }));
        Box::pin(async move {
            if sent.is_err() {
                return Err(FanoutError::Stopped);
            }
            match answer.await {
                Ok(Ok(events)) => Ok(events),
                Ok(Err(err)) => Err(FanoutError::Unreachable(err)),
                Err(_) => Err(FanoutError::Unreachable(
                    "Redis connection lost before the history was read".to_owned(),
                )),
            }
        })
    }

    fn session_keep(&self, key: &str, body: Vec<u8>, ttl: Duration) {
        let _ = self.sessions.send(SessionJob::Keep {
            key: key.to_owned(),
            body,
            ttl,
        });
    }

    fn session_take(&self, key: &str) -> FanoutFuture<Result<Option<Vec<u8>>, FanoutError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.sessions.send(SessionJob::Take {
            key: key.to_owned(),
            reply,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(FanoutError::Stopped);
            }
            match answer.await {
                Ok(Ok(body)) => Ok(body),
                Ok(Err(err)) => Err(FanoutError::Unreachable(err)),
                Err(_) => Err(FanoutError::Stopped),
            }
        })
    }

    fn channel_opened(&self, channel: &str) {
        // Never blocks: the subscriber task subscribes in the background.
        let _ = self.commands.send(Command::Open(channel.to_owned()));
    }

    fn channel_closed(&self, channel: &str) {
        let _ = self.commands.send(Command::Close(channel.to_owned()));
        let _ = self.presence.send(PresenceIn::Closed(channel.to_owned()));
    }

    fn presence_opened(&self, channel: &str) -> bool {
        self.presence
            .send(PresenceIn::Opened(channel.to_owned()))
            .is_ok()
    }

    fn presence_changed(&self, change: &PresenceChange) {
        let _ = self.presence.send(PresenceIn::Local(change.clone()));
    }

    fn presence_fetch(
        &self,
        channel: &str,
    ) -> Option<FanoutFuture<Result<NodeRecords, FanoutError>>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .presence
            .send(PresenceIn::Fetch(channel.to_owned(), reply));
        Some(Box::pin(async move {
            if sent.is_err() {
                return Err(FanoutError::Stopped);
            }
            match answer.await {
                Ok(Ok(records)) => Ok(records),
                Ok(Err(err)) => Err(FanoutError::Unreachable(err)),
                Err(_) => Err(FanoutError::Stopped),
            }
        }))
    }
}

/// What the hub-facing side and the background tasks share.
#[derive(Default)]
struct Shared {
    /// Redis answered the last publish or `PING`: emits are accepted.
    publisher_up: AtomicBool,
    /// The subscription connection is up and subscribed.
    subscriber_up: AtomicBool,
    /// The subscription connection dropped: the publisher checks that Redis still answers.
    recheck: Notify,
    /// The history kept in Redis Streams, when recovery is on ([`Fanout::keep_history`]).
    history: OnceLock<HistoryLimits>,
    /// Counts the subscription connections made: events published while none was up were
    /// missed here.
    generation: AtomicU64,
}

/// A change in the channels this node has members in, in the order the hub saw them.
#[derive(Debug)]
enum Command {
    Open(String),
    Close(String),
    /// Read the history of these channels once subscribed to them (they were opened first).
    History(HistoryRead),
}

/// A read of the cluster's history for a member coming back.
#[derive(Debug)]
struct HistoryRead {
    channels: Vec<(String, u64)>,
    reply: tokio::sync::oneshot::Sender<Result<ClusterEvents, String>>,
}

/// What the subscriber collects from the commands before it syncs its subscriptions.
#[derive(Default)]
struct Pending {
    /// Channels opened (presence reads their state once subscribed).
    opened: Vec<String>,
    /// History reads to start once subscribed.
    reads: Vec<HistoryRead>,
}

impl Command {
    /// Applies the change; an opened channel is also noted, and a read kept for later.
    fn apply(self, desired: &mut HashSet<String>, pending: &mut Pending) {
        match self {
            Command::Open(channel) => {
                pending.opened.push(channel.clone());
                desired.insert(channel);
            }
            Command::Close(channel) => {
                desired.remove(&channel);
            }
            Command::History(read) => pending.reads.push(read),
        }
    }
}

/// One envelope on its way to Redis.
struct Publish {
    channel: String,
    body: Vec<u8>,
    /// The channel's stream, when the event is kept in the history.
    stream: Option<String>,
}

struct Receivers {
    commands: mpsc::UnboundedReceiver<Command>,
    publishes: mpsc::Receiver<Publish>,
    presence: mpsc::UnboundedReceiver<PresenceIn>,
    sessions: mpsc::UnboundedReceiver<SessionJob>,
}

/// Suspended members' sessions, kept in Redis for every node (`<prefix>session:<key>`).
enum SessionJob {
    Keep {
        key: String,
        body: Vec<u8>,
        ttl: Duration,
    },
    Take {
        key: String,
        reply: tokio::sync::oneshot::Sender<Result<Option<Vec<u8>>, String>>,
    },
}

/// Keeps and takes sessions, in the order asked, until the adapter is dropped.
async fn sessions(worker: Arc<Worker>, mut jobs: mpsc::UnboundedReceiver<SessionJob>) {
    let mut link = Link::new(worker.client.clone());
    while let Some(job) = jobs.recv().await {
        match job {
            SessionJob::Keep { key, body, ttl } => {
                let mut pipe = ::redis::pipe();
                pipe.cmd("SET")
                    .arg(worker.history_key(&format!("session:{key}")))
                    .arg(body)
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .ignore();
                if let Err(err) = link.query::<()>(&pipe).await {
                    tracing::debug!(error = %err, "suspended member not kept in Redis");
                }
            }
            SessionJob::Take { key, reply } => {
                let mut pipe = ::redis::pipe();
                pipe.cmd("GETDEL")
                    .arg(worker.history_key(&format!("session:{key}")));
                let taken = link
                    .query::<(Option<Vec<u8>>,)>(&pipe)
                    .await
                    .map(|(body,)| body);
                let _ = reply.send(taken);
            }
        }
    }
}

/// How one subscription connection ended.
enum Served {
    /// The hub is gone (or the adapter dropped): stop.
    Stopped,
    /// It could not be set up.
    Failed(String),
    /// It was up and dropped.
    Lost(String),
}

/// The background side of one adapter.
pub(super) struct Worker {
    pub(super) client: ::redis::Client,
    pub(super) prefix: String,
    pub(super) node: NodeId,
    shared: Arc<Shared>,
    pub(super) hub: Weak<dyn LocalDelivery>,
    /// The presence task's inbox (publications of other nodes' presence, subscriptions).
    pub(super) presence: mpsc::UnboundedSender<PresenceIn>,
    /// The connection history reads use.
    history_link: Arc<tokio::sync::Mutex<Link>>,
}

impl Worker {
    /// Runs the subscriber and the publisher on a runtime of their own until the hub goes.
    fn run(self, receivers: Receivers) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(%err, "cannot start the Redis adapter: emits stay on this node");
                return;
            }
        };
        let worker = Arc::new(self);
        runtime.block_on(async {
            let publisher = tokio::spawn(publisher(worker.clone(), receivers.publishes));
            let presence = tokio::spawn(
                PresenceTask::new(worker.clone(), hex(&worker.node)).run(receivers.presence),
            );
            let lease = tokio::spawn(redis_presence::renew_lease(
                worker.clone(),
                hex(&worker.node),
            ));
            let sessions = tokio::spawn(sessions(worker.clone(), receivers.sessions));
            worker.subscriber(receivers.commands).await;
            publisher.abort();
            presence.abort();
            lease.abort();
            sessions.abort();
        });
        worker.shared.publisher_up.store(false, Ordering::Release);
        worker.shared.subscriber_up.store(false, Ordering::Release);
        tracing::debug!("Redis adapter stopped");
    }

    pub(super) fn redis_channel(&self, channel: &str) -> String {
        format!("{}{channel}", self.prefix)
    }

    pub(super) fn hub_alive(&self) -> bool {
        self.hub.strong_count() > 0
    }

    /// Keeps one subscription connection up, reconnecting with backoff, until the hub goes.
    async fn subscriber(&self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut desired = HashSet::new();
        let mut backoff = BACKOFF_MIN;
        let mut connected_once = false;
        let mut warned = false;
        while self.hub_alive() {
            match self
                .serve(&mut commands, &mut desired, &mut connected_once)
                .await
            {
                Served::Stopped => return,
                Served::Lost(err) => {
                    self.shared.subscriber_up.store(false, Ordering::Release);
                    // Until a PING is answered, emits are delivered here only and say so.
                    self.shared.publisher_up.store(false, Ordering::Release);
                    self.shared.recheck.notify_one();
                    tracing::warn!(
                        error = %err,
                        "Redis connection lost: delivering on this node only until it is back"
                    );
                    backoff = BACKOFF_MIN;
                    warned = true;
                }
                Served::Failed(err) if !warned => {
                    tracing::warn!(error = %err, "cannot reach Redis; retrying in the background");
                    warned = true;
                }
                Served::Failed(err) => {
                    tracing::debug!(error = %err, retry_in = ?backoff, "Redis still unreachable");
                }
            }
            if !self.pause(backoff, &mut commands, &mut desired).await {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Waits `backoff`, keeping track of channel changes meanwhile; false when the adapter is
    /// dropped.
    async fn pause(
        &self,
        backoff: Duration,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        desired: &mut HashSet<String>,
    ) -> bool {
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => return true,
                // What opens meanwhile is subscribed to (and announced) on reconnection; a
                // history read fails at once (its reply dropped): Redis is out of reach.
                command = commands.recv() => match command {
                    Some(command) => command.apply(desired, &mut Pending::default()),
                    None => return false,
                },
            }
        }
    }

    /// One subscription connection, from connecting to losing it.
    async fn serve(
        &self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        desired: &mut HashSet<String>,
        connected_once: &mut bool,
    ) -> Served {
        let pubsub = match timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(err)) => return Served::Failed(err.to_string()),
            Err(_) => return Served::Failed("connection timed out".to_owned()),
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut pending = Pending::default();
        if !drain(commands, desired, &mut pending) {
            return Served::Stopped;
        }
        let mut subscribed = HashSet::new();
        if let Err(err) = self.sync(&mut sink, desired, &mut subscribed).await {
            return Served::Failed(err);
        }
        // A new connection: what was published while none was up was missed here.
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.subscriber_up.store(true, Ordering::Release);
        self.read_history(pending.reads);
        if !self.receive_arrived(&mut stream) {
            return Served::Stopped;
        }
        // Presence reads every channel's state again: what changed while this node was not
        // subscribed is in it.
        let _ = self
            .presence
            .send(PresenceIn::Subscribed(subscribed.iter().cloned().collect()));
        if *connected_once {
            tracing::info!(
                channels = subscribed.len(),
                "Redis reconnected: subscribed again, cross-node delivery resumes"
            );
        } else {
            tracing::info!(node = %hex(&self.node), "Redis connected");
        }
        *connected_once = true;
        let mut health =
            tokio::time::interval_at(Instant::now() + HEALTH_INTERVAL, HEALTH_INTERVAL);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => {
                        if !self.receive(&message) {
                            return Served::Stopped;
                        }
                    }
                    None => return Served::Lost("connection closed".to_owned()),
                },
                command = commands.recv() => {
                    let Some(command) = command else {
                        return Served::Stopped;
                    };
                    let mut pending = Pending::default();
                    command.apply(desired, &mut pending);
                    if !drain(commands, desired, &mut pending) {
                        return Served::Stopped;
                    }
                    if let Err(err) = self.sync(&mut sink, desired, &mut subscribed).await {
                        return Served::Lost(err);
                    }
                    self.read_history(pending.reads);
                    let mut opened = pending.opened;
                    opened.retain(|channel| subscribed.contains(channel));
                    if !opened.is_empty() {
                        if !self.receive_arrived(&mut stream) {
                            return Served::Stopped;
                        }
                        let _ = self.presence.send(PresenceIn::Subscribed(opened));
                    }
                }
                _ = health.tick() => {
                    if !self.hub_alive() {
                        return Served::Stopped;
                    }
                    match timeout(PUBLISH_TIMEOUT, sink.ping::<::redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return Served::Lost(format!("ping failed: {err}")),
                        Err(_) => return Served::Lost("ping timed out".to_owned()),
                    }
                }
            }
        }
    }

    /// Handles the publications already received, before presence reads a channel's state.
    /// Applied after that read, they would be older than it: a join whose leave came while
    /// the channel was closed here would come back as a ghost. False once the hub is gone.
    fn receive_arrived(
        &self,
        stream: &mut (impl futures_util::Stream<Item = ::redis::Msg> + Unpin),
    ) -> bool {
        while let Some(Some(message)) = stream.next().now_or_never() {
            if !self.receive(&message) {
                return false;
            }
        }
        true
    }

    /// Delivers an event kept in the history, this node's own too, at its offset.
    fn receive_recorded(
        &self,
        hub: &Arc<dyn LocalDelivery>,
        message: &::redis::Msg,
        raw: &[u8],
    ) -> bool {
        let split = redis_history::split_published(raw);
        let body = split
            .map(|(_, body)| body)
            .ok_or("malformed recorded publication");
        let (Some((offset, _)), Some(envelope)) = (split, self.envelope(message, body)) else {
            return true;
        };
        // A member id names a member of the node that published it only.
        let except = envelope.except.filter(|_| envelope.origin == self.node);
        let delivered = hub.deliver_at(envelope.message, offset, except);
        tracing::trace!(delivered, offset, from = %hex(&envelope.origin), "delivered");
        true
    }

    /// Starts the history reads asked for, now that this node listens to their channels.
    fn read_history(&self, reads: Vec<HistoryRead>) {
        if reads.is_empty() {
            return;
        }
        let Some(limits) = self.shared.history.get() else {
            return;
        };
        let generation = self.shared.generation.load(Ordering::Acquire);
        for read in reads {
            let keys: Vec<String> = std::iter::once(self.history_key("history-start"))
                .chain(
                    read.channels
                        .iter()
                        .map(|(channel, _)| self.history_key(&format!("history:{channel}"))),
                )
                .collect();
            let ids: Vec<String> = read
                .channels
                .iter()
                .map(|(_, from)| redis_history::id_of(*from))
                .collect();
            let link = self.history_link.clone();
            let shared = self.shared.clone();
            let max_age = limits.max_age;
            tokio::spawn(async move {
                let mut eval = ::redis::pipe();
                eval.cmd("EVAL")
                    .arg(redis_history::READ_SCRIPT)
                    .arg(keys.len())
                    .arg(&keys)
                    .arg(&ids);
                let answer = link.lock().await.query::<(::redis::Value,)>(&eval).await;
                let result = answer.and_then(|(answer,)| {
                    redis_history::read_answer(answer, &read.channels, max_age, |body| {
                        decode(body).ok().map(|envelope| envelope.message)
                    })
                });
                let result = result.map(|channels| ClusterEvents {
                    channels,
                    unbroken: Box::new(move || {
                        shared.generation.load(Ordering::Acquire) == generation
                            && shared.subscriber_up.load(Ordering::Acquire)
                    }),
                });
                let _ = read.reply.send(result);
            });
        }
    }

    fn history_key(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// Subscribes to the channels in `desired` that are not `subscribed` yet, and unsubscribes
    /// from those no longer wanted, in batches.
    async fn sync(
        &self,
        sink: &mut PubSubSink,
        desired: &HashSet<String>,
        subscribed: &mut HashSet<String>,
    ) -> Result<(), String> {
        let added: Vec<String> = desired.difference(subscribed).cloned().collect();
        let removed: Vec<String> = subscribed.difference(desired).cloned().collect();
        for batch in added.chunks(SUBSCRIBE_BATCH) {
            let names: Vec<String> = batch.iter().map(|c| self.redis_channel(c)).collect();
            match timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(names)).await {
                Ok(Ok(())) => subscribed.extend(batch.iter().cloned()),
                Ok(Err(err)) => return Err(format!("subscribe failed: {err}")),
                Err(_) => return Err("subscribe timed out".to_owned()),
            }
        }
        for batch in removed.chunks(SUBSCRIBE_BATCH) {
            let names: Vec<String> = batch.iter().map(|c| self.redis_channel(c)).collect();
            match timeout(SUBSCRIBE_TIMEOUT, sink.unsubscribe(names)).await {
                Ok(Ok(())) => {
                    for channel in batch {
                        subscribed.remove(channel);
                    }
                }
                Ok(Err(err)) => return Err(format!("unsubscribe failed: {err}")),
                Err(_) => return Err("unsubscribe timed out".to_owned()),
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            tracing::debug!(
                subscribed = added.len(),
                unsubscribed = removed.len(),
                total = subscribed.len(),
                "Redis subscriptions updated"
            );
        }
        Ok(())
    }

    /// Delivers a publication of another node to this node's members; false once the hub is
    /// gone.
    fn receive(&self, message: &::redis::Msg) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let raw = message.get_payload_bytes();
        if raw.starts_with(redis_presence::MAGIC) {
            match redis_presence::decode(raw) {
                Some((node, change)) if node != self.node => {
                    let _ = self.presence.send(PresenceIn::Remote {
                        node: hex(&node),
                        change,
                    });
                }
                Some(_) => {}
                None => tracing::debug!(
                    redis_channel = message.get_channel_name(),
                    "ignored a presence message that does not decode"
                ),
            }
            return true;
        }
        if raw.starts_with(redis_history::MAGIC) {
            return self.receive_recorded(&hub, message, raw);
        }
        if origin(raw) == Some(&self.node) {
            return true;
        }
        if let Some(envelope) = self.envelope(message, Ok(raw)) {
            let delivered = hub.deliver(&envelope.message, envelope.except);
            tracing::trace!(
                channel = envelope.message.channel(),
                delivered,
                from = %hex(&envelope.origin),
                "delivered"
            );
        }
        true
    }

    /// The envelope in `body` (or why there is none), published on `message`'s Redis channel;
    /// `None`, logged, when it does not decode or names another channel than its own.
    fn envelope(
        &self,
        message: &::redis::Msg,
        body: Result<&[u8], &'static str>,
    ) -> Option<Envelope> {
        let envelope = match body.and_then(|body| decode(Bytes::copy_from_slice(body))) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::debug!(
                    redis_channel = message.get_channel_name(),
                    %err,
                    "ignored a message that is not a tidings envelope"
                );
                return None;
            }
        };
        let channel = envelope.message.channel();
        if message
            .get_channel_name()
            .strip_prefix(self.prefix.as_str())
            != Some(channel)
        {
            tracing::debug!(
                redis_channel = message.get_channel_name(),
                channel,
                "ignored an envelope published to another channel than its own"
            );
            return None;
        }
        Some(envelope)
    }
}

/// Applies the channel changes already queued; false when the adapter is dropped.
fn drain(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    desired: &mut HashSet<String>,
    pending: &mut Pending,
) -> bool {
    loop {
        match commands.try_recv() {
            Ok(command) => command.apply(desired, pending),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
}

/// Sends the queued envelopes to Redis in pipelines, in order, until the adapter is dropped.
async fn publisher(worker: Arc<Worker>, mut jobs: mpsc::Receiver<Publish>) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(PUBLISH_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(BACKOFF_MAX);
    let mut connection: Option<ConnectionManager> = None;
    let mut connected_once = false;
    if !probe(
        &worker,
        &config,
        &mut connection,
        &mut jobs,
        &mut connected_once,
    )
    .await
    {
        return;
    }
    let mut batch = Vec::with_capacity(PIPELINE_MAX);
    // The emit script's hash once loaded on this connection (when the history is kept).
    let mut script: Option<String> = None;
    loop {
        let healthy = tokio::select! {
            count = jobs.recv_many(&mut batch, PIPELINE_MAX) => {
                if count == 0 {
                    return;
                }
                let sent = send(&worker, &mut connection, &mut script, &batch).await;
                batch.clear();
                match sent {
                    Ok(()) => true,
                    Err(err) => {
                        script = None;
                        worker.shared.publisher_up.store(false, Ordering::Release);
                        tracing::warn!(
                            error = %err,
                            lost = count,
                            "Redis publish failed: these emits reached this node only"
                        );
                        false
                    }
                }
            }
            () = worker.shared.recheck.notified() => ping(&worker.client, &config, &mut connection).await.is_ok(),
        };
        if !healthy
            && !probe(
                &worker,
                &config,
                &mut connection,
                &mut jobs,
                &mut connected_once,
            )
            .await
        {
            return;
        }
    }
}

/// Publishes `batch` in one pipeline, bounded by [`PUBLISH_TIMEOUT`]. With the history kept,
/// each event goes through the emit script (`script`: its hash, loaded when missing), which
/// gives it its offset, keeps it in its channel's stream and publishes it.
async fn send(
    worker: &Worker,
    connection: &mut Option<ConnectionManager>,
    script: &mut Option<String>,
    batch: &[Publish],
) -> Result<(), String> {
    let Some(connection) = connection.as_mut() else {
        return Err("not connected".to_owned());
    };
    let limits = worker.shared.history.get();
    // The connection manager reconnects by itself: a Redis that restarted empty answers the
    // script's hash with NOSCRIPT. Then it is loaded again and the batch sent once more (the
    // script ran for none of it: a pipeline's EVALSHAs all fail alike).
    for attempt in 0..2 {
        if limits.is_some() && script.is_none() {
            let mut load = ::redis::cmd("SCRIPT");
            load.arg("LOAD").arg(redis_history::EMIT_SCRIPT);
            match timeout(PUBLISH_TIMEOUT, load.query_async::<String>(connection)).await {
                Ok(Ok(hash)) => *script = Some(hash),
                Ok(Err(err)) => return Err(err.to_string()),
                Err(_) => return Err("script load timed out".to_owned()),
            }
        }
        let pipe = publish_pipe(worker, limits, script.as_deref(), batch);
        match timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(connection)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err))
                if attempt == 0
                    && err.kind()
                        == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
            {
                tracing::info!("Redis lost the emit script (restarted?): loading it again");
                *script = None;
            }
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err("publish timed out".to_owned()),
        }
    }
    Err("the emit script could not be run".to_owned())
}

/// The pipeline that sends `batch`: through the emit script (its hash `script`) for events
/// kept in the history, a bare `PUBLISH` for the others.
fn publish_pipe(
    worker: &Worker,
    limits: Option<&HistoryLimits>,
    script: Option<&str>,
    batch: &[Publish],
) -> ::redis::Pipeline {
    let mut pipe = ::redis::pipe();
    for job in batch {
        match (&job.stream, limits, script) {
            (Some(stream), Some(limits), Some(hash)) => {
                pipe.cmd("EVALSHA")
                    .arg(hash)
                    .arg(3)
                    .arg(worker.history_key("history-last"))
                    .arg(stream)
                    .arg(worker.history_key("history-start"))
                    .arg(&job.channel)
                    .arg(&job.body[..])
                    .arg(limits.max_events.max(1))
                    .arg(u64::try_from(limits.max_age.as_millis()).unwrap_or(u64::MAX))
                    .arg(&redis_history::MAGIC[..])
                    .ignore();
            }
            _ => {
                pipe.cmd("PUBLISH")
                    .arg(&job.channel)
                    .arg(&job.body[..])
                    .ignore();
            }
        }
    }
    pipe
}

/// Waits, with backoff, until Redis answers a `PING` on the publishing connection, then marks
/// the adapter up. Envelopes that were queued meanwhile are dropped (their emits already
/// reached this node) and counted. False when the adapter is dropped.
async fn probe(
    worker: &Worker,
    config: &ConnectionManagerConfig,
    connection: &mut Option<ConnectionManager>,
    jobs: &mut mpsc::Receiver<Publish>,
    connected_once: &mut bool,
) -> bool {
    let mut backoff = BACKOFF_MIN;
    let mut dropped = 0usize;
    loop {
        if !worker.hub_alive() {
            return false;
        }
        match ping(&worker.client, config, connection).await {
            Ok(()) => {
                if dropped > 0 {
                    tracing::warn!(
                        lost = dropped,
                        "emits queued while Redis was unreachable reached this node only"
                    );
                }
                worker.shared.publisher_up.store(true, Ordering::Release);
                if *connected_once {
                    tracing::info!("Redis publisher reconnected: emits reach every node again");
                } else {
                    tracing::info!("Redis publisher connected");
                }
                *connected_once = true;
                return true;
            }
            Err(err) => {
                worker.shared.publisher_up.store(false, Ordering::Release);
                // A fresh connection next time rather than a manager stuck reconnecting.
                *connection = None;
                tracing::debug!(error = %err, retry_in = ?backoff, "Redis publisher not connected");
            }
        }
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => break,
                job = jobs.recv() => match job {
                    Some(_) => dropped += 1,
                    None => return false,
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Connects when needed and checks that Redis answers, within the timeouts.
async fn ping(
    client: &::redis::Client,
    config: &ConnectionManagerConfig,
    connection: &mut Option<ConnectionManager>,
) -> Result<(), String> {
    if connection.is_none() {
        let manager = timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client.clone(), config.clone()),
        )
        .await
        .map_err(|_| "connection timed out".to_owned())?
        .map_err(|err| err.to_string())?;
        *connection = Some(manager);
    }
    let Some(manager) = connection.as_mut() else {
        return Err("not connected".to_owned());
    };
    match timeout(
        PUBLISH_TIMEOUT,
        ::redis::cmd("PING").query_async::<String>(manager),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("ping timed out".to_owned()),
    }
}

/// A random node id.
fn node_id() -> NodeId {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        id = (nanos ^ u128::from(std::process::id()) << 64).to_be_bytes();
    }
    id
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(32), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

// ---------------------------------------------------------------------------
// The envelope

/// A decoded publication.
struct Envelope {
    origin: NodeId,
    except: Option<MemberId>,
    message: Outgoing,
}

/// The origin of an envelope, read without decoding the rest.
fn origin(raw: &[u8]) -> Option<&NodeId> {
    if raw.get(..MAGIC.len())? != MAGIC {
        return None;
    }
    raw.get(MAGIC.len()..MAGIC.len() + 16)?.try_into().ok()
}

fn put_str16(out: &mut Vec<u8>, text: &str, what: &'static str) -> Result<(), FanoutError> {
    let len = u16::try_from(text.len()).map_err(|_| FanoutError::TooLarge(what))?;
    out.put_u16(len);
    out.put_slice(text.as_bytes());
    Ok(())
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), FanoutError> {
    let len = u32::try_from(bytes.len()).map_err(|_| FanoutError::TooLarge(what))?;
    out.put_u32(len);
    out.put_slice(bytes);
    Ok(())
}

fn put_count(out: &mut Vec<u8>, count: usize, what: &'static str) -> Result<(), FanoutError> {
    out.put_u32(u32::try_from(count).map_err(|_| FanoutError::TooLarge(what))?);
    Ok(())
}

/// The envelope of an emit (see the module documentation for the layout).
fn encode(
    node: &NodeId,
    message: &Outgoing,
    except: Option<MemberId>,
) -> Result<Vec<u8>, FanoutError> {
    let payload = message.payload();
    let attachments = payload.attachments();
    let mut out = Vec::with_capacity(
        64 + message.channel().len()
            + message.event().len()
            + payload
                .args()
                .iter()
                .map(|a| a.get().len() + 4)
                .sum::<usize>()
            + attachments.iter().map(|a| a.len() + 4).sum::<usize>(),
    );
    out.put_slice(MAGIC);
    out.put_slice(node);
    match except {
        Some(member) => {
            let id = member.as_str().as_bytes();
            out.put_u8(u8::try_from(id.len()).map_err(|_| FanoutError::TooLarge("member id"))?);
            out.put_slice(id);
        }
        None => out.put_u8(0),
    }
    put_str16(&mut out, message.channel(), "channel name")?;
    put_str16(&mut out, message.event(), "event name")?;
    put_count(&mut out, payload.len(), "argument list")?;
    for arg in payload.args() {
        put_bytes32(&mut out, arg.get().as_bytes(), "argument")?;
    }
    put_count(&mut out, attachments.len(), "attachment list")?;
    for attachment in attachments {
        put_bytes32(&mut out, attachment, "attachment")?;
    }
    Ok(out)
}

/// Reads an envelope, slicing `body` without copying the attachments.
struct Reader {
    body: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, len: usize) -> Result<Bytes, &'static str> {
        let end = self.at.checked_add(len).ok_or("truncated")?;
        if end > self.body.len() {
            return Err("truncated");
        }
        let bytes = self.body.slice(self.at..end);
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str16(&mut self) -> Result<String, &'static str> {
        let len = self.u16()?;
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "invalid UTF-8")
    }

    fn bytes32(&mut self) -> Result<Bytes, &'static str> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn remaining(&self) -> usize {
        self.body.len() - self.at
    }
}

fn raw_json(bytes: &[u8]) -> Result<Box<RawValue>, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "invalid UTF-8")?;
    RawValue::from_string(text.to_owned()).map_err(|_| "invalid JSON argument")
}

/// Decodes an envelope.
fn decode(body: Bytes) -> Result<Envelope, &'static str> {
    let mut r = Reader { body, at: 0 };
    if r.take(MAGIC.len())?.as_ref() != MAGIC {
        return Err("unknown envelope format");
    }
    let origin: NodeId = r.take(16)?.as_ref().try_into().map_err(|_| "truncated")?;
    let except = match r.u8()? {
        0 => None,
        len => {
            let id = r.take(usize::from(len))?;
            let id = std::str::from_utf8(&id).map_err(|_| "invalid member id")?;
            Some(id.parse().map_err(|_| "invalid member id")?)
        }
    };
    let channel = r.str16()?;
    let event = r.str16()?;
    let count = r.u32()? as usize;
    // Each argument takes at least 4 bytes: no allocation larger than the message.
    let mut args = Vec::with_capacity(count.min(r.remaining() / 4));
    for _ in 0..count {
        args.push(raw_json(&r.bytes32()?)?);
    }
    let count = r.u32()? as usize;
    let mut attachments = Vec::with_capacity(count.min(r.remaining() / 4));
    for _ in 0..count {
        attachments.push(r.bytes32()?);
    }
    if r.remaining() != 0 {
        return Err("trailing bytes");
    }
    let payload = Payload::from_parts(args, attachments);
    Ok(Envelope {
        origin,
        except,
        message: Outgoing::new(channel, event, payload),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn payload() -> Payload {
        let mut payload = Payload::new();
        payload
            .push(&serde_json::json!({"b": 1, "a": "é"}))
            .unwrap();
        payload.push_binary(vec![0u8, 1, 2, 255]);
        payload.push(&42).unwrap();
        payload
    }

    fn member() -> MemberId {
        "member-id-0123456789".parse().unwrap()
    }

    #[test]
    fn an_envelope_round_trips_with_except_arguments_and_attachments() {
        let node = node_id();
        let message = Outgoing::new("chats/1", "message", payload());
        let body = encode(&node, &message, Some(member())).unwrap();
        assert_eq!(origin(&body), Some(&node));

        let envelope = decode(Bytes::from(body)).unwrap();
        assert_eq!(envelope.origin, node);
        assert_eq!(envelope.except, Some(member()));
        assert_eq!(envelope.message.channel(), "chats/1");
        assert_eq!(envelope.message.event(), "message");
        let got = envelope.message.payload();
        assert_eq!(got.len(), 3);
        assert_eq!(got.arg(0).unwrap().get(), r#"{"a":"é","b":1}"#);
        assert_eq!(got.binary(1).unwrap().as_ref(), &[0, 1, 2, 255]);
        assert_eq!(got.arg(2).unwrap().get(), "42");
    }

    /// The format is fixed: nodes of two versions must agree on it, and a change that both
    /// sides make alike would pass a round trip. These are the bytes of one envelope.
    #[test]
    fn the_envelope_format_is_pinned() {
        let node = [7u8; 16];
        let mut payload = Payload::new();
        payload.push(&serde_json::json!({"a": 1})).unwrap();
        payload.push_binary(vec![9u8, 8]);
        let message = Outgoing::new("chats/1", "msg", payload);
        let body = encode(&node, &message, Some(member())).unwrap();
        let mut expected = b"TDG\x02".to_vec();
        expected.extend([7u8; 16]);
        expected.push(20);
        expected.extend(b"member-id-0123456789");
        expected.extend(b"\x00\x07chats/1");
        expected.extend(b"\x00\x03msg");
        expected.extend(b"\x00\x00\x00\x02");
        expected.extend(b"\x00\x00\x00\x07{\"a\":1}");
        expected.extend(b"\x00\x00\x00\x1d{\"_placeholder\":true,\"num\":0}");
        expected.extend(b"\x00\x00\x00\x01\x00\x00\x00\x02\x09\x08");
        assert_eq!(body, expected);
        let without = encode(&node, &Outgoing::new("c", "e", Payload::new()), None).unwrap();
        let mut expected = b"TDG\x02".to_vec();
        expected.extend([7u8; 16]);
        expected.extend(b"\x00\x00\x01c\x00\x01e\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(without, expected);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let body = encode(
            &node_id(),
            &Outgoing::new("c", "e", payload()),
            Some(member()),
        )
        .unwrap();
        for len in 0..body.len() {
            assert!(decode(Bytes::copy_from_slice(&body[..len])).is_err());
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(Bytes::from(longer)).is_err());
        assert!(decode(Bytes::from_static(b"hello")).is_err());
        for i in 0..body.len() {
            let mut flipped = body.clone();
            flipped[i] ^= 0xff;
            let _ = decode(Bytes::from(flipped));
        }
        assert_eq!(origin(b"TDG\x01 and more bytes than an id"), None);
    }

    #[test]
    fn too_long_names_are_an_error_not_a_panic() {
        let channel = "c".repeat(70_000);
        let message = Outgoing::new(channel, "e", Payload::new());
        assert_eq!(
            encode(&node_id(), &message, None),
            Err(FanoutError::TooLarge("channel name"))
        );
    }
}

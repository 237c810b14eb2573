//! A member: one client connection as the channel layer sees it, whatever protocol brought it.
//!
//! A gateway makes a [`Member`] for each connection and hands it the client's requests
//! ([`Member::join`], [`Member::leave`], [`Member::event`], [`Member::disconnect`]). The
//! member runs them one after another, in arrival order, on a task that lives only while some
//! are pending: a join that waits for a slow `pass` holds back the same client's leave and
//! events until it is done, so a member's channels are always what its requests say, and no
//! gateway has to order them itself.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::authorizer::{Assigns, Reply};
use super::context::{Handshake, Identity, LeaveReason};
use super::error::{EventError, JoinError};
use super::hub::Hub;
use super::outgoing::Sink;
use crate::id::NoRandomness;
use crate::payload::Payload;
use crate::sync::lock;

/// A member's id, unique per connection: 20 URL-safe characters. The Socket.IO gateway uses
/// the socket's id, so `to(channel).except(socket.id)` leaves out the client that has it.
///
/// ```
/// use tidings_runtime::channels::MemberId;
/// let id: MemberId = "abcdefghij0123456789".parse().unwrap();
/// assert_eq!(id.to_string(), "abcdefghij0123456789");
/// assert!("too short".parse::<MemberId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId([u8; crate::id::LEN]);

impl MemberId {
    /// A new random id (from the OS random source).
    ///
    /// # Errors
    /// [`NoRandomness`] when the OS random source fails.
    pub fn random() -> Result<Self, NoRandomness> {
        crate::id::random().map(MemberId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        crate::id::as_str(&self.0)
    }
}

/// Text that is not a member id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a member id: 20 characters of A-Z, a-z, 0-9, '-' and '_'")]
pub struct InvalidMemberId;

impl FromStr for MemberId {
    type Err = InvalidMemberId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        crate::id::parse(text).map(MemberId).ok_or(InvalidMemberId)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({})", self.as_str())
    }
}

/// What a gateway attaches to one membership, handed back with every event delivered through
/// it ([`Sink::deliver`]): Phoenix's `join_ref`, for instance. `0` when it needs none.
pub type MemberTag = u64;

/// How many requests may wait per member before the client counts as abusive (above the
/// default subscription limit, so a page subscribing to all its channels at once is fine).
pub const MAX_PENDING: usize = 256;

/// How long a member that comes back waits for its old connection's `left` hooks.
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Too many requests of this member are waiting; the gateway should close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many pending channel requests (more than {MAX_PENDING})")]
pub struct Overloaded;

type Done<T> = Box<dyn FnOnce(T) + Send>;

enum Request {
    Join {
        channel: String,
        payload: Option<Box<RawValue>>,
        tag: MemberTag,
        done: Done<Result<Option<Box<RawValue>>, JoinError>>,
    },
    Leave {
        channel: String,
        done: Done<bool>,
    },
    Restore {
        suspended: super::history::Suspended,
        offset: u64,
        done: Done<bool>,
    },
    Event {
        channel: String,
        event: String,
        payload: Payload,
        /// Checked when the event's turn comes: false refuses it as `NotSubscribed` without
        /// running the handler.
        guard: Option<Box<dyn FnOnce() -> bool + Send>>,
        done: Done<Result<Reply, EventError>>,
    },
}

/// One client connection in the channel layer: its id, what it connected with, where its
/// events go, and its channels.
pub struct Member {
    id: MemberId,
    pub(crate) handshake: Handshake,
    pub(crate) identity: Option<Identity>,
    pub(crate) sink: Arc<dyn Sink>,
    hub: Arc<Hub>,
    state: Mutex<State>,
}

/// One channel a member is in.
struct Joined {
    channel: Box<str>,
    assigns: Assigns,
    /// The history's latest offset when it joined (0 without a history): a replay gives it
    /// nothing older.
    since: u64,
    /// What the client sent with its join, kept with recovery on: another node of a cluster
    /// runs `pass` with it again when the client comes back there.
    payload: Option<Box<RawValue>>,
}

#[derive(Default)]
struct State {
    /// The channels joined, with the member's assigns in each; the first is kept inline, as
    /// most connections join few.
    joined: SmallVec<[Joined; 1]>,
    /// Boxed, and only while some are pending: a member lives as long as its connection.
    #[expect(
        clippy::box_collection,
        reason = "an idle member keeps 8 bytes instead of an empty VecDeque's 32"
    )]
    pending: Option<Box<VecDeque<Request>>>,
    /// A task is running the pending requests.
    running: bool,
    /// The connection ended, for this reason: the member leaves every channel next.
    gone: Option<LeaveReason>,
    /// Its channels go to this handover when it has left them (the client may come back).
    suspend: Option<Arc<super::history::Handover>>,
    /// The member has left everything; nothing runs any more.
    ended: bool,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Member {
    /// A member of `hub` with this id, handshake, identity (from the connect hook) and sink.
    pub fn new(
        hub: &Arc<Hub>,
        id: MemberId,
        handshake: Handshake,
        identity: Option<Identity>,
        sink: Arc<dyn Sink>,
    ) -> Arc<Self> {
        Arc::new(Member {
            id,
            handshake,
            identity,
            sink,
            hub: hub.clone(),
            state: Mutex::default(),
        })
    }

    /// The member's id.
    pub fn id(&self) -> MemberId {
        self.id
    }

    /// The channels it has joined, in the order it joined them.
    pub fn channels(&self) -> Vec<String> {
        self.state()
            .joined
            .iter()
            .map(|j| j.channel.to_string())
            .collect()
    }

    /// Whether it has joined `channel`.
    pub fn is_in(&self, channel: &str) -> bool {
        self.state().joined.iter().any(|j| *j.channel == *channel)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// How many channels it has joined.
    pub(crate) fn joined_count(&self) -> usize {
        self.state().joined.len()
    }

    /// Adds `channel` with the member's assigns there and the history offset it joined at.
    pub(crate) fn add_channel(
        &self,
        channel: &str,
        assigns: Assigns,
        since: u64,
        payload: Option<Box<RawValue>>,
    ) {
        self.state().joined.push(Joined {
            channel: channel.into(),
            assigns,
            since,
            payload,
        });
    }

    /// Takes `channel` out of its list, handing back its assigns; `None` when it was not
    /// there.
    pub(crate) fn remove_channel(
        &self,
        channel: &str,
    ) -> Option<(Assigns, u64, Option<Box<RawValue>>)> {
        let mut state = self.state();
        let at = state.joined.iter().position(|j| *j.channel == *channel)?;
        let joined = state.joined.remove(at);
        Some((joined.assigns, joined.since, joined.payload))
    }

    /// Runs `f` on the member's assigns in `channel` (a short critical section: `f` must not
    /// call back into the member); `None` when it is not in `channel`.
    pub(crate) fn with_assigns<R>(
        &self,
        channel: &str,
        f: impl FnOnce(&mut Assigns) -> R,
    ) -> Option<R> {
        let mut state = self.state();
        let joined = state.joined.iter_mut().find(|j| *j.channel == *channel)?;
        Some(f(&mut joined.assigns))
    }

    /// Asks to join `channel` with the client's join `payload`; `done` gets the verdict (the
    /// channel's join reply, if any) once this and every earlier request of the member has
    /// run. `tag` comes back with every event delivered through this membership.
    ///
    /// # Errors
    /// [`Overloaded`] when too many requests wait (nothing is queued).
    pub fn join(
        self: &Arc<Self>,
        channel: impl Into<String>,
        payload: Option<Box<RawValue>>,
        tag: MemberTag,
        done: impl FnOnce(Result<Option<Box<RawValue>>, JoinError>) + Send + 'static,
    ) -> Result<(), Overloaded> {
        self.submit(Request::Join {
            channel: channel.into(),
            payload,
            tag,
            done: Box::new(done),
        })
    }

    /// Asks to leave `channel`; `done` gets whether it was a member.
    ///
    /// # Errors
    /// [`Overloaded`] when too many requests wait (nothing is queued).
    pub fn leave(
        self: &Arc<Self>,
        channel: impl Into<String>,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> Result<(), Overloaded> {
        self.submit(Request::Leave {
            channel: channel.into(),
            done: Box::new(done),
        })
    }

    /// A client event `event` into `channel`, for its `handle_in`; `done` gets the reply.
    ///
    /// # Errors
    /// [`Overloaded`] when too many requests wait (nothing is queued).
    pub fn event(
        self: &Arc<Self>,
        channel: impl Into<String>,
        event: impl Into<String>,
        payload: Payload,
        done: impl FnOnce(Result<Reply, EventError>) + Send + 'static,
    ) -> Result<(), Overloaded> {
        self.submit(Request::Event {
            channel: channel.into(),
            event: event.into(),
            payload,
            guard: None,
            done: Box::new(done),
        })
    }

    /// As [`Member::event`], but `guard` decides, when the event's turn comes, whether it still
    /// goes to the channel: false answers [`EventError::NotSubscribed`] without running
    /// `handle_in`. A gateway whose protocol ends a membership at once on some outcome (a
    /// Phoenix channel that crashed) uses it for the requests already queued behind it.
    ///
    /// # Errors
    /// [`Overloaded`] when too many requests wait (nothing is queued).
    pub fn event_if(
        self: &Arc<Self>,
        channel: impl Into<String>,
        event: impl Into<String>,
        payload: Payload,
        guard: impl FnOnce() -> bool + Send + 'static,
        done: impl FnOnce(Result<Reply, EventError>) + Send + 'static,
    ) -> Result<(), Overloaded> {
        self.submit(Request::Event {
            channel: channel.into(),
            event: event.into(),
            payload,
            guard: Some(Box::new(guard)),
            done: Box::new(done),
        })
    }

    /// The connection ended: requests still waiting are dropped (their `done` never runs), and
    /// once the one running (if any) is over, the member leaves every channel with `reason`.
    pub fn disconnect(self: &Arc<Self>, reason: LeaveReason) {
        self.end(reason, None);
    }

    /// As [`Member::disconnect`], for a connection its client may come back to (connection
    /// state recovery): its channels, assigns and identity are kept under `key` when the hub
    /// keeps a history, until `Member::restore` on the member of the new connection.
    pub fn suspend(self: &Arc<Self>, reason: LeaveReason, key: String) {
        self.end(reason, Some(key));
    }

    /// Restores the channels of a suspended member (see [`Member::suspend`]) into this one,
    /// which must be new (no requests yet): its channels without `pass`, then every event of
    /// them after `offset`, before anything else. `done` gets false, and nothing is restored,
    /// when some of those events are gone.
    pub(crate) fn restore(
        self: &Arc<Self>,
        suspended: super::history::Suspended,
        offset: u64,
        done: impl FnOnce(bool) + Send + 'static,
    ) -> Result<(), Overloaded> {
        self.submit(Request::Restore {
            suspended,
            offset,
            done: Box::new(done),
        })
    }

    fn end(self: &Arc<Self>, reason: LeaveReason, suspend: Option<String>) {
        {
            let state = self.state();
            if state.ended || state.gone.is_some() {
                return;
            }
        }
        let handover = suspend.and_then(|key| self.hub.suspend(self, key));
        let mut state = self.state();
        if state.ended || state.gone.is_some() {
            return;
        }
        state.pending = None;
        if !state.running && state.joined.is_empty() {
            if let Some(handover) = handover {
                handover.fill(Vec::new());
            }
            // Nothing to leave and nothing running: done at once, no task.
            state.ended = true;
            return;
        }
        state.suspend = handover;
        state.gone = Some(reason);
        self.start(&mut state);
    }

    /// Its channels, each with the history offset it joined at.
    pub(crate) fn starts(&self) -> Vec<(String, u64)> {
        self.state()
            .joined
            .iter()
            .map(|j| (j.channel.to_string(), j.since))
            .collect()
    }

    /// Its channels as another node needs them to take it back: each with the offset it
    /// joined at and its join payload.
    pub(crate) fn session_channels(&self) -> Vec<super::history::SessionChannel> {
        self.state()
            .joined
            .iter()
            .map(|j| super::history::SessionChannel {
                channel: j.channel.to_string(),
                since: j.since,
                payload: j.payload.clone(),
            })
            .collect()
    }

    fn submit(self: &Arc<Self>, request: Request) -> Result<(), Overloaded> {
        let mut state = self.state();
        if state.ended || state.gone.is_some() {
            return Ok(());
        }
        let pending = state.pending.get_or_insert_default();
        if pending.len() >= MAX_PENDING {
            return Err(Overloaded);
        }
        pending.push_back(request);
        self.start(&mut state);
        Ok(())
    }

    fn start(self: &Arc<Self>, state: &mut State) {
        if !state.running {
            state.running = true;
            tokio::spawn(self.clone().run());
        }
    }

    /// Runs the pending requests in order; after a disconnect, leaves every channel.
    async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut state = self.state();
                match state
                    .pending
                    .as_mut()
                    .and_then(|pending| pending.pop_front())
                {
                    Some(request) => Ok(request),
                    None => match state.gone.take() {
                        Some(reason) => {
                            state.ended = true;
                            Err(Some((reason, state.suspend.take())))
                        }
                        None => {
                            state.running = false;
                            state.pending = None;
                            Err(None)
                        }
                    },
                }
            };
            match next {
                Ok(request) => self.execute(request).await,
                Err(Some((reason, suspend))) => {
                    return self.hub.disconnect(&self, &reason, suspend).await;
                }
                Err(None) => return,
            }
        }
    }

    async fn execute(self: &Arc<Self>, request: Request) {
        let hub = &self.hub;
        match request {
            Request::Join {
                channel,
                payload,
                tag,
                done,
            } => {
                let verdict = hub.join(self, &channel, payload.as_deref(), tag).await;
                if let Err(err) = &verdict {
                    tracing::debug!(channel, member = %self.id, %err, "join refused");
                }
                done(verdict);
            }
            Request::Leave { channel, done } => {
                done(hub.leave(self, &channel, &LeaveReason::Unsubscribed).await);
            }
            Request::Restore {
                suspended,
                offset,
                done,
            } => {
                // The old connection's `left` hooks may still be running.
                let restored = match suspended.comeback {
                    super::history::Comeback::Here(handover) => {
                        match handover.wait(HANDOVER_WAIT).await {
                            Some(channels) => hub.restore(self, channels, offset).await,
                            None => false,
                        }
                    }
                    super::history::Comeback::Elsewhere(channels) => {
                        hub.rejoin(self, channels, offset).await
                    }
                };
                done(restored);
            }
            Request::Event {
                channel,
                event,
                payload,
                guard,
                done,
            } => {
                if guard.is_some_and(|guard| !guard()) {
                    return done(Err(EventError::NotSubscribed));
                }
                done(hub.event(self, &channel, &event, payload).await);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The channel layer on its own: members of a real hub, a sink that records what it gets,
    //! and a channel whose `pass` waits on a gate the test opens.

    use std::time::Duration;

    use actix_web::web;
    use tokio::sync::{Notify, oneshot};

    use super::*;
    use crate::channels::{
        AppData, Authorizer, ChannelContext, ChannelLimits, ChannelRegistration, JoinContext,
        Outgoing, Registry,
    };

    /// Holds every `pass` of [`Gated`] until opened, and counts the ones waiting.
    #[derive(Default)]
    struct Gate {
        open: Notify,
        waiting: std::sync::atomic::AtomicUsize,
    }

    /// `gated/:id`: `pass` waits for the gate, then says yes.
    #[derive(Default)]
    struct Gated;

    impl Authorizer for Gated {
        async fn pass(&self, join: &JoinContext<'_>) -> bool {
            let Some(gate) = join.app_data::<Gate>() else {
                return false;
            };
            // Registered before it counts as waiting, so an opening right after is not missed.
            let opened = gate.open.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            gate.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            opened.await;
            true
        }

        async fn handle_in(&self, event: &str, _: Payload, _: &ChannelContext<'_>) -> Reply {
            Reply::ok_with(event)
        }
    }

    /// `open/:id`: anyone.
    #[derive(Default)]
    struct Open;

    impl Authorizer for Open {
        async fn pass(&self, _: &JoinContext<'_>) -> bool {
            true
        }
    }

    /// `rich/:id`: the join needs a nick (its reply greets it, an assign keeps it); `shout` is
    /// filtered per member (deaf members drop it, loud ones get it upper-cased).
    #[derive(Default)]
    struct Rich;

    #[derive(Debug, Clone, PartialEq)]
    struct Nick(String);

    /// The nicks `left` saw.
    static LEFT: Mutex<Vec<String>> = Mutex::new(Vec::new());

    impl Authorizer for Rich {
        async fn join(&self, join: &JoinContext<'_>) -> crate::channels::JoinVerdict {
            let Some(nick) = join.payload::<String>() else {
                return Err(crate::channels::JoinRefusal::new("nick_required"));
            };
            if nick == "nobody" {
                return Err(crate::channels::JoinRefusal::unauthorized());
            }
            crate::channels::Joined::new()
                .reply(&serde_json::json!({ "hello": nick }))
                .map(|joined| joined.assign(Nick(nick)))
                .map_err(|_| crate::channels::JoinRefusal::new("invalid"))
        }

        const INTERCEPT: &'static [&'static str] = &["shout"];

        fn handle_out(
            &self,
            _event: &str,
            payload: &Payload,
            ctx: &ChannelContext<'_>,
        ) -> crate::channels::Outbound {
            match ctx.assigned::<Nick>().map(|nick| nick.0) {
                Some(nick) if nick == "deaf" => crate::channels::Outbound::Drop,
                Some(nick) if nick == "loud" => {
                    let text = payload.get::<String>(0).unwrap_or_default();
                    crate::channels::Outbound::Replace(
                        Payload::from_value(&text.to_uppercase()).unwrap_or_else(|e| panic!("{e}")),
                    )
                }
                _ => crate::channels::Outbound::Keep,
            }
        }

        async fn handle_in(&self, event: &str, _: Payload, ctx: &ChannelContext<'_>) -> Reply {
            match event {
                "whoami" => Reply::ok_with(&ctx.assigned::<Nick>().map(|n| n.0)),
                "track" => match ctx.track("me", &serde_json::json!({})) {
                    Ok(()) => Reply::Ok,
                    Err(err) => Reply::error(err.to_string()),
                },
                "rename" => {
                    ctx.update_assigned::<Nick, _>(|nick| nick.0.push('!'));
                    Reply::Ok
                }
                _ => Reply::error("unknown_event"),
            }
        }

        async fn left(&self, ctx: &ChannelContext<'_>, _: &LeaveReason) {
            if let Some(nick) = ctx.assigned::<Nick>() {
                lock(&LEFT).push(nick.0);
            }
        }
    }

    /// `lobby/:id`: tracks presence under the join payload (a name); `status` updates the
    /// meta, `untrack` untracks, `count` answers the presence count.
    #[derive(Default)]
    struct Lobby;

    impl Authorizer for Lobby {
        const PRESENCE: bool = true;

        async fn pass(&self, _: &JoinContext<'_>) -> bool {
            true
        }

        async fn joined(&self, ctx: &ChannelContext<'_>) {
            let name = ctx.assigned::<Nick>().map(|n| n.0).unwrap_or_default();
            ctx.track(name, &serde_json::json!({ "status": "here" }))
                .unwrap_or_else(|e| panic!("{e}"));
        }

        async fn join(&self, join: &JoinContext<'_>) -> crate::channels::JoinVerdict {
            let nick = join.payload::<String>().unwrap_or_default();
            Ok(crate::channels::Joined::new().assign(Nick(nick)))
        }

        async fn handle_in(&self, event: &str, _: Payload, ctx: &ChannelContext<'_>) -> Reply {
            match event {
                "status" => match ctx.update_presence(&serde_json::json!({ "status": "away" })) {
                    Ok(()) => Reply::Ok,
                    Err(err) => Reply::error(err.to_string()),
                },
                "untrack" => Reply::ok_with(&ctx.untrack()),
                "count" => Reply::ok_with(&ctx.presence_count()),
                _ => Reply::error("unknown_event"),
            }
        }
    }

    static LOBBY: ChannelRegistration = ChannelRegistration::new::<Lobby>("lobby/:id", "Lobby");
    static RICH: ChannelRegistration = ChannelRegistration::new::<Rich>("rich/:id", "Rich");
    static GATED: ChannelRegistration = ChannelRegistration::new::<Gated>("gated/:id", "Gated");
    static OPEN: ChannelRegistration = ChannelRegistration::new::<Open>("open/:id", "Open");

    /// Every event delivered, with its membership tag, and the first argument of each.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String, MemberTag)>>, Mutex<Vec<String>>);

    impl Sink for Recorder {
        fn deliver(&self, message: &Outgoing, tag: MemberTag) -> bool {
            lock(&self.0).push((
                message.channel().to_owned(),
                message.event().to_owned(),
                tag,
            ));
            lock(&self.1).push(
                message
                    .payload()
                    .arg(0)
                    .map_or_else(String::new, |arg| arg.get().to_owned()),
            );
            true
        }
    }

    fn hub(gate: &web::Data<Gate>) -> Arc<Hub> {
        let registry = Registry::from_registrations([&GATED, &OPEN, &RICH, &LOBBY])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut data = AppData::default();
        data.insert(gate.clone());
        Hub::new(registry, data, ChannelLimits::default(), None)
    }

    fn member(hub: &Arc<Hub>) -> (Arc<Member>, Arc<Recorder>) {
        let sink = Arc::new(Recorder::default());
        let id = MemberId::random().unwrap_or_else(|e| panic!("{e}"));
        (
            Member::new(hub, id, Handshake::default(), None, sink.clone()),
            sink,
        )
    }

    /// A `done` callback and the receiver of what it is given.
    fn answer<T: Send + 'static>() -> (impl FnOnce(T) + Send + 'static, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (
            move |value| {
                let _ = tx.send(value);
            },
            rx,
        )
    }

    type JoinAnswer = Result<Option<Box<RawValue>>, JoinError>;

    /// A join's verdict, its reply as text.
    async fn verdict(rx: oneshot::Receiver<JoinAnswer>) -> Result<Option<String>, JoinError> {
        get(rx)
            .await
            .map(|reply| reply.map(|reply| reply.get().to_owned()))
    }

    async fn get<T>(rx: oneshot::Receiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap_or_else(|_| panic!("no answer within 5 s"))
            .unwrap_or_else(|_| panic!("the request was dropped"))
    }

    /// Waits until `n` passes wait at the gate.
    async fn waiting(gate: &Gate, n: usize) {
        for _ in 0..500 {
            if gate.waiting.load(std::sync::atomic::Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{n} passes never reached the gate");
    }

    #[tokio::test]
    async fn two_concurrent_joins_of_one_member_make_one_membership() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (member, _) = member(&hub);
        let (first, first_rx) = answer();
        let (second, second_rx) = answer();
        member
            .join("gated/1", None, 0, first)
            .unwrap_or_else(|e| panic!("{e}"));
        member
            .join("gated/1", None, 0, second)
            .unwrap_or_else(|e| panic!("{e}"));
        waiting(&gate, 1).await;
        gate.open.notify_waiters();
        assert_eq!(verdict(first_rx).await, Ok(None));
        // The second join ran after the first: already a member, no second `pass`.
        assert_eq!(verdict(second_rx).await, Ok(None));
        assert_eq!(gate.waiting.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(member.channels(), ["gated/1"]);
        assert_eq!(hub.subscription_count(), 1);

        let (left, left_rx) = answer();
        member
            .leave("gated/1", left)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get(left_rx).await);
        assert!(member.channels().is_empty());
        assert_eq!(hub.subscription_count(), 0);
        assert_eq!(hub.channel_count(), 0);
    }

    #[tokio::test]
    async fn a_leave_during_a_slow_pass_runs_after_the_join() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (member, sink) = member(&hub);
        let (joined, joined_rx) = answer();
        let (left, mut left_rx) = answer();
        member
            .join("gated/7", None, 3, joined)
            .unwrap_or_else(|e| panic!("{e}"));
        member
            .leave("gated/7", left)
            .unwrap_or_else(|e| panic!("{e}"));
        waiting(&gate, 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(left_rx.try_recv().is_err(), "the leave ran before the join");
        gate.open.notify_waiters();
        assert_eq!(verdict(joined_rx).await, Ok(None));
        assert!(get(left_rx).await, "the leave found the membership");
        assert!(member.channels().is_empty());
        assert_eq!(hub.subscription_count(), 0);
        assert_eq!(
            hub.broadcast("gated/7", "after", Payload::new(), None)
                .unwrap_or_else(|e| panic!("{e}")),
            0
        );
        assert!(lock(&sink.0).is_empty());
    }

    #[tokio::test]
    async fn events_sent_during_a_join_reach_the_channel_once_joined() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (member, sink) = member(&hub);
        let (joined, joined_rx) = answer();
        let (replied, replied_rx) = answer();
        member
            .join("gated/2", None, 9, joined)
            .unwrap_or_else(|e| panic!("{e}"));
        member
            .event("gated/2", "typing", Payload::new(), replied)
            .unwrap_or_else(|e| panic!("{e}"));
        waiting(&gate, 1).await;
        gate.open.notify_waiters();
        assert_eq!(verdict(joined_rx).await, Ok(None));
        assert_eq!(
            get(replied_rx).await,
            Ok(Reply::OkWith(serde_json::json!("typing"))),
            "the event waited for the join instead of failing not_subscribed"
        );
        // Broadcasts come with the tag the join gave.
        hub.broadcast("gated/2", "hello", Payload::new(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            *lock(&sink.0),
            [("gated/2".to_owned(), "hello".to_owned(), 9)]
        );
    }

    /// Every member's tag, in the order a broadcast reached them (one log for all members).
    struct InOrder(Arc<Mutex<Vec<MemberTag>>>);

    impl Sink for InOrder {
        fn deliver(&self, _: &Outgoing, tag: MemberTag) -> bool {
            lock(&self.0).push(tag);
            true
        }
    }

    /// A new member of `open/order` whose deliveries go to `log`, under `tag`.
    async fn join_in_order(
        hub: &Arc<Hub>,
        log: &Arc<Mutex<Vec<MemberTag>>>,
        tag: MemberTag,
    ) -> Arc<Member> {
        let id = MemberId::random().unwrap_or_else(|e| panic!("{e}"));
        let sink = Arc::new(InOrder(log.clone()));
        let member = Member::new(hub, id, Handshake::default(), None, sink);
        let (joined, joined_rx) = answer();
        member
            .join("open/order", None, tag, joined)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verdict(joined_rx).await, Ok(None));
        member
    }

    #[tokio::test]
    async fn a_broadcast_reaches_members_in_the_order_they_joined() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut members = Vec::new();
        for tag in 0..8 {
            members.push(join_in_order(&hub, &log, tag).await);
        }
        let order = |log: &Mutex<Vec<MemberTag>>| std::mem::take(&mut *lock(log));
        hub.broadcast("open/order", "hello", Payload::new(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(order(&log), (0..8).collect::<Vec<_>>());

        // A leave moves the last member into the leaver's place; a newcomer comes last.
        let (left, left_rx) = answer();
        members[2]
            .leave("open/order", left)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get(left_rx).await);
        let _late = join_in_order(&hub, &log, 8).await;
        hub.broadcast("open/order", "hello", Payload::new(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(order(&log), [0, 1, 7, 3, 4, 5, 6, 8]);
    }

    #[tokio::test]
    async fn a_disconnect_drops_what_waits_and_leaves_everything() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (member, _) = member(&hub);
        let (open, open_rx) = answer();
        member
            .join("open/1", None, 0, open)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verdict(open_rx).await, Ok(None));
        let (gated, gated_rx) = answer();
        let (dropped, dropped_rx) = answer::<JoinAnswer>();
        member
            .join("gated/3", None, 0, gated)
            .unwrap_or_else(|e| panic!("{e}"));
        member
            .join("open/2", None, 0, dropped)
            .unwrap_or_else(|e| panic!("{e}"));
        waiting(&gate, 1).await;
        member.disconnect(LeaveReason::Disconnected(
            super::super::context::Disconnect::ClientLeft,
        ));
        gate.open.notify_waiters();
        // The join already running finishes; the one waiting is dropped unanswered.
        assert_eq!(verdict(gated_rx).await, Ok(None));
        assert!(
            tokio::time::timeout(Duration::from_secs(5), dropped_rx)
                .await
                .is_ok_and(|answer| answer.is_err()),
            "a request queued before the disconnect still ran"
        );
        for _ in 0..500 {
            if hub.subscription_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(hub.subscription_count(), 0);
        assert!(member.channels().is_empty());
        // Requests after the end are ignored.
        let (late, late_rx) = answer::<JoinAnswer>();
        assert_eq!(member.join("open/3", None, 0, late), Ok(()));
        assert!(get_dropped(late_rx).await);
    }

    async fn get_dropped<T>(rx: oneshot::Receiver<T>) -> bool {
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .is_ok_and(|answer| answer.is_err())
    }

    #[tokio::test]
    async fn too_many_waiting_requests_are_refused() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (member, _) = member(&hub);
        let (first, _first_rx) = answer();
        member
            .join("gated/1", None, 0, first)
            .unwrap_or_else(|e| panic!("{e}"));
        waiting(&gate, 1).await;
        for n in 0..MAX_PENDING {
            assert_eq!(member.leave(format!("open/{n}"), |_| {}), Ok(()));
        }
        assert_eq!(member.leave("open/x", |_| {}), Err(Overloaded));
        gate.open.notify_waiters();
    }

    async fn join_rich(
        member: &Arc<Member>,
        nick: Option<&str>,
    ) -> Result<Option<String>, JoinError> {
        let (done, rx) = answer();
        let payload = nick
            .map(|nick| serde_json::value::to_raw_value(nick).unwrap_or_else(|e| panic!("{e}")));
        member
            .join("rich/1", payload, 0, done)
            .unwrap_or_else(|e| panic!("{e}"));
        verdict(rx).await
    }

    async fn ask(member: &Arc<Member>, event: &str) -> Result<Reply, EventError> {
        let (done, rx) = answer();
        member
            .event("rich/1", event, Payload::new(), done)
            .unwrap_or_else(|e| panic!("{e}"));
        get(rx).await
    }

    #[tokio::test]
    async fn a_join_answers_with_a_reply_or_a_reason_of_its_own_and_keeps_assigns() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (alice, _) = member(&hub);
        assert_eq!(
            join_rich(&alice, None).await,
            Err(JoinError::Refused("nick_required".to_owned()))
        );
        assert_eq!(
            join_rich(&alice, None)
                .await
                .map_err(|e| e.reason().to_owned()),
            Err("nick_required".to_owned())
        );
        assert_eq!(
            join_rich(&alice, Some("nobody")).await,
            Err(JoinError::Unauthorized)
        );
        assert_eq!(
            join_rich(&alice, Some("alice")).await,
            Ok(Some(r#"{"hello":"alice"}"#.to_owned()))
        );
        assert_eq!(
            ask(&alice, "whoami").await,
            Ok(Reply::OkWith(serde_json::json!("alice")))
        );
        assert_eq!(ask(&alice, "rename").await, Ok(Reply::Ok));
        assert_eq!(
            ask(&alice, "whoami").await,
            Ok(Reply::OkWith(serde_json::json!("alice!")))
        );
        let (left, left_rx) = answer();
        alice
            .leave("rich/1", left)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get(left_rx).await);
        assert!(
            lock(&LEFT).contains(&"alice!".to_owned()),
            "left saw the assigns"
        );
    }

    #[tokio::test]
    async fn intercepted_events_are_filtered_per_member_and_the_rest_shared() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (plain, plain_sink) = member(&hub);
        let (deaf, deaf_sink) = member(&hub);
        let (loud, loud_sink) = member(&hub);
        for (member, nick) in [(&plain, "plain"), (&deaf, "deaf"), (&loud, "loud")] {
            assert!(join_rich(member, Some(nick)).await.is_ok());
        }
        let shout = Payload::from_value("hey").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hub.broadcast("rich/1", "shout", shout.clone(), None)
                .unwrap_or_else(|e| panic!("{e}")),
            2,
            "the deaf member dropped it"
        );
        assert_eq!(
            hub.broadcast("rich/1", "talk", shout, None)
                .unwrap_or_else(|e| panic!("{e}")),
            3,
            "talk is not intercepted"
        );
        let events = |sink: &Recorder| -> Vec<String> {
            lock(&sink.0)
                .iter()
                .map(|(_, event, _)| event.clone())
                .collect()
        };
        assert_eq!(events(&plain_sink), ["shout", "talk"]);
        assert_eq!(events(&deaf_sink), ["talk"]);
        assert_eq!(events(&loud_sink), ["shout", "talk"]);
        assert_eq!(*lock(&loud_sink.1), [r#""HEY""#, r#""hey""#]);
        assert_eq!(*lock(&plain_sink.1), [r#""hey""#, r#""hey""#]);
    }

    #[tokio::test]
    async fn a_broadcast_reaches_every_member_of_a_large_channel_once_but_the_one_excepted() {
        // More members than one read-ahead group (and not a multiple of it): every group, the
        // last short one included, is delivered.
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let mut members = Vec::new();
        for _ in 0..100 {
            let (member, sink) = member(&hub);
            join_with(&member, "open/big", "null").await;
            members.push((member, sink));
        }
        let except = members[41].0.id();
        let payload = Payload::from_value("hi").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hub.broadcast("open/big", "news", payload, Some(except))
                .unwrap_or_else(|e| panic!("{e}")),
            99
        );
        for (n, (_, sink)) in members.iter().enumerate() {
            let got = lock(&sink.0).iter().filter(|(_, e, _)| e == "news").count();
            assert_eq!(got, usize::from(n != 41), "member {n}");
        }
    }

    /// The `(event, first argument as JSON)` the sink got, in order.
    fn received(sink: &Recorder) -> Vec<(String, serde_json::Value)> {
        let events = lock(&sink.0).clone();
        let args = lock(&sink.1).clone();
        events
            .into_iter()
            .zip(args)
            .map(|((_, event, _), arg)| {
                (
                    event,
                    serde_json::from_str(&arg).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect()
    }

    async fn join_lobby(member: &Arc<Member>, name: &str) {
        let (done, rx) = answer();
        let payload = RawValue::from_string(format!("{name:?}")).unwrap_or_else(|e| panic!("{e}"));
        member
            .join("lobby/1", Some(payload), 0, done)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(verdict(rx).await.is_ok());
    }

    async fn ask_event(member: &Arc<Member>, channel: &str, event: &str) -> Reply {
        let (done, rx) = answer();
        member
            .event(channel, event, Payload::new(), done)
            .unwrap_or_else(|e| panic!("{e}"));
        get(rx).await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn presence_state_after_the_join_and_diffs_for_every_change() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (alice, alice_sink) = member(&hub);
        join_lobby(&alice, "alice").await;
        // Her own join's diff, then the state (which has her) as the last word.
        let got = received(&alice_sink);
        let (event, state) = got.last().cloned().unwrap_or_default();
        assert_eq!(event, "presence_state");
        assert_eq!(state["alice"]["metas"][0]["status"], "here");
        let alice_ref = state["alice"]["metas"][0]["phx_ref"].clone();
        assert_eq!(alice_ref.as_str().map(str::len), Some(16));

        let (bob, bob_sink) = member(&hub);
        join_lobby(&bob, "bob").await;
        let got = received(&bob_sink);
        let (event, state) = got.last().cloned().unwrap_or_default();
        assert_eq!(event, "presence_state");
        assert_eq!(state["alice"]["metas"][0]["phx_ref"], alice_ref);
        assert!(state["bob"]["metas"][0]["phx_ref"].is_string());
        let (event, diff) = received(&alice_sink).last().cloned().unwrap_or_default();
        assert_eq!(event, "presence_diff");
        assert!(diff["joins"]["bob"].is_object());
        assert_eq!(diff["leaves"], serde_json::json!({}));
        assert_eq!(hub.presence_count("lobby/1"), 2);
        assert_eq!(
            ask_event(&bob, "lobby/1", "count").await,
            Reply::ok_with(&2)
        );

        // An update: the new meta (with the old ref as phx_ref_prev) joins, the old leaves.
        assert_eq!(ask_event(&alice, "lobby/1", "status").await, Reply::Ok);
        let (event, diff) = received(&bob_sink).last().cloned().unwrap_or_default();
        assert_eq!(event, "presence_diff");
        assert_eq!(
            diff["joins"]["alice"]["metas"][0]["phx_ref_prev"],
            alice_ref
        );
        assert_eq!(diff["joins"]["alice"]["metas"][0]["status"], "away");
        assert_eq!(diff["leaves"]["alice"]["metas"][0]["phx_ref"], alice_ref);

        // Leaving untracks: the others get the leave.
        let (left, left_rx) = answer();
        bob.leave("lobby/1", left).unwrap_or_else(|e| panic!("{e}"));
        assert!(get(left_rx).await);
        let (event, diff) = received(&alice_sink).last().cloned().unwrap_or_default();
        assert_eq!(event, "presence_diff");
        assert!(diff["leaves"]["bob"].is_object());
        assert_eq!(
            hub.presence("lobby/1").keys().collect::<Vec<_>>(),
            ["alice"]
        );

        // Untracked by hand, and then gone with the last member.
        assert_eq!(
            ask_event(&alice, "lobby/1", "untrack").await,
            Reply::ok_with(&true)
        );
        assert_eq!(
            ask_event(&alice, "lobby/1", "untrack").await,
            Reply::ok_with(&false)
        );
        assert!(hub.presence("lobby/1").is_empty());
        alice.disconnect(LeaveReason::Disconnected(
            crate::channels::Disconnect::ClientLeft,
        ));
        for _ in 0..500 {
            if hub.channel_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(hub.channel_count(), 0);
        assert!(hub.presence("lobby/1").is_empty());
    }

    #[tokio::test]
    async fn a_channel_without_presence_refuses_track_and_sends_no_state() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (member, sink) = member(&hub);
        let (done, rx) = answer();
        let payload =
            RawValue::from_string("\"nick\"".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        member
            .join("rich/1", Some(payload), 0, done)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(verdict(rx).await.is_ok());
        assert_eq!(
            ask_event(&member, "rich/1", "track").await,
            Reply::error("presence is not enabled for this channel")
        );
        assert!(received(&sink).is_empty());
        assert!(hub.presence("rich/1").is_empty());
    }

    #[tokio::test]
    async fn a_member_that_disconnects_is_untracked_for_the_others() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        let (alice, alice_sink) = member(&hub);
        join_lobby(&alice, "alice").await;
        let (tab1, _) = member(&hub);
        join_lobby(&tab1, "bob").await;
        let (tab2, _) = member(&hub);
        join_lobby(&tab2, "bob").await;
        // Two tabs of one key: one entry with two metas.
        assert_eq!(hub.presence("lobby/1").get("bob").map(<[_]>::len), Some(2));
        assert_eq!(hub.presence_count("lobby/1"), 2);
        tab1.disconnect(LeaveReason::Disconnected(
            crate::channels::Disconnect::ClientLeft,
        ));
        for _ in 0..500 {
            if hub.presence("lobby/1").get("bob").map(<[_]>::len) == Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(hub.presence("lobby/1").get("bob").map(<[_]>::len), Some(1));
        let (event, diff) = received(&alice_sink).last().cloned().unwrap_or_default();
        assert_eq!(event, "presence_diff");
        assert_eq!(
            diff["leaves"]["bob"]["metas"].as_array().map(Vec::len),
            Some(1)
        );
    }

    fn hub_with_history(limits: crate::channels::HistoryLimits) -> Arc<Hub> {
        let registry = Registry::from_registrations([&GATED, &OPEN, &RICH, &LOBBY])
            .unwrap_or_else(|e| panic!("{e}"));
        Hub::with_history(
            registry,
            AppData::default(),
            ChannelLimits::default(),
            None,
            Some(limits),
        )
    }

    async fn join_with(member: &Arc<Member>, channel: &str, payload: &str) {
        let (done, rx) = answer();
        let payload = RawValue::from_string(payload.to_owned()).unwrap_or_else(|e| panic!("{e}"));
        member
            .join(channel, Some(payload), 0, done)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(verdict(rx).await.is_ok());
    }

    #[tokio::test]
    async fn a_join_with_since_gets_what_it_missed_then_says_so() {
        let hub = hub_with_history(crate::channels::HistoryLimits::default().max_events(3));
        for n in 1..=4 {
            hub.broadcast(
                "open/1",
                "tick",
                Payload::from_value(&n).unwrap_or_default(),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        // Offsets 1..=4 were given; 1 has left the log (3 kept).
        let (late, sink) = member(&hub);
        join_with(&late, "open/1", r#"{"since": "2"}"#).await;
        let got = received(&sink);
        assert_eq!(
            got,
            [
                ("tick".to_owned(), serde_json::json!(3)),
                ("tick".to_owned(), serde_json::json!(4)),
                (
                    "recovery".to_owned(),
                    serde_json::json!({"recovered": true, "replayed": 2})
                ),
            ]
        );
        // The next event comes live, after the replay, with the next offset.
        hub.broadcast(
            "open/1",
            "tick",
            Payload::from_value(&5).unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            received(&sink).last().map(|(_, v)| v.clone()),
            Some(serde_json::json!(5))
        );

        // Too old: nothing replayed, and the client is told.
        let (older, sink) = member(&hub);
        join_with(&older, "open/1", r#"{"since": 0}"#).await;
        assert_eq!(
            received(&sink),
            [(
                "recovery".to_owned(),
                serde_json::json!({"recovered": false})
            )]
        );
        // Not an offset: the same honest answer.
        let (odd, sink) = member(&hub);
        join_with(&odd, "open/1", r#"{"since": "yesterday"}"#).await;
        assert_eq!(
            received(&sink),
            [(
                "recovery".to_owned(),
                serde_json::json!({"recovered": false})
            )]
        );
        // A join without since gets no recovery event.
        let (plain, sink) = member(&hub);
        join_with(&plain, "open/1", r#"{"nick": "x"}"#).await;
        assert!(received(&sink).is_empty());
    }

    #[tokio::test]
    async fn since_without_history_is_answered_not_recovered() {
        let gate = web::Data::new(Gate::default());
        let hub = hub(&gate);
        hub.broadcast(
            "open/1",
            "tick",
            Payload::from_value(&1).unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (member, sink) = member(&hub);
        join_with(&member, "open/1", r#"{"since": 0}"#).await;
        assert_eq!(
            received(&sink),
            [(
                "recovery".to_owned(),
                serde_json::json!({"recovered": false})
            )]
        );
    }

    #[tokio::test]
    async fn a_suspended_member_is_restored_with_its_assigns_and_the_events_it_missed() {
        let hub = hub_with_history(crate::channels::HistoryLimits::default());
        let (first, _) = member(&hub);
        join_with(&first, "rich/1", r#""nick""#).await;
        join_with(&first, "open/1", "null").await;
        hub.broadcast(
            "open/1",
            "tick",
            Payload::from_value(&1).unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        first.suspend(
            LeaveReason::Disconnected(crate::channels::Disconnect::TransportError),
            "pid".to_owned(),
        );
        for _ in 0..500 {
            if hub.subscription_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(hub.subscription_count(), 0);
        // Missed while away: one event in each channel, in this order.
        hub.broadcast(
            "rich/1",
            "talk",
            Payload::from_value(&"a").unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        hub.broadcast(
            "open/1",
            "tick",
            Payload::from_value(&2).unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let id = hub
            .claim_suspended("pid", 1)
            .unwrap_or_else(|| panic!("claimable"));
        assert_eq!(id, first.id());
        assert!(hub.claim_suspended("pid", 1).is_none(), "claimed once");
        let suspended = hub.take_suspended(id).unwrap_or_else(|| panic!("taken"));
        let sink = Arc::new(Recorder::default());
        let back = Member::new(&hub, id, Handshake::default(), None, sink.clone());
        let (done, rx) = answer();
        back.restore(suspended, 1, done)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get(rx).await);
        assert_eq!(
            received(&sink),
            [
                ("talk".to_owned(), serde_json::json!("a")),
                ("tick".to_owned(), serde_json::json!(2)),
            ]
        );
        assert_eq!(hub.subscription_count(), 2);
        // Its assigns came back: `rich/1` still knows its nick, no join ran.
        assert_eq!(
            ask_event(&back, "rich/1", "whoami").await,
            Reply::ok_with(&Some("nick"))
        );
    }

    #[tokio::test]
    async fn a_replay_goes_through_handle_out_as_the_live_delivery_did() {
        let hub = hub_with_history(crate::channels::HistoryLimits::default());
        let mut sinks = Vec::new();
        for nick in ["deaf", "loud"] {
            let (member, _) = member(&hub);
            join_with(&member, "rich/1", &format!("{nick:?}")).await;
            hub.broadcast(
                "rich/1",
                "talk",
                Payload::from_value(&"hi").unwrap_or_default(),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            member.suspend(
                LeaveReason::Disconnected(crate::channels::Disconnect::TransportError),
                nick.to_owned(),
            );
            for _ in 0..500 {
                if !member.is_in("rich/1") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            sinks.push((nick, member.id()));
        }
        hub.broadcast(
            "rich/1",
            "talk",
            Payload::from_value(&"x").unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        hub.broadcast(
            "rich/1",
            "shout",
            Payload::from_value(&"hey").unwrap_or_default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (nick, id) in sinks {
            // Both come back from offset 2 (their last `talk "hi"` was 1 or 2).
            assert_eq!(hub.claim_suspended(nick, 2), Some(id));
            let suspended = hub.take_suspended(id).unwrap_or_else(|| panic!("taken"));
            let sink = Arc::new(Recorder::default());
            let back = Member::new(&hub, id, Handshake::default(), None, sink.clone());
            let (done, rx) = answer();
            back.restore(suspended, 2, done)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(get(rx).await);
            let got = received(&sink);
            match nick {
                "deaf" => assert_eq!(got, [("talk".to_owned(), serde_json::json!("x"))]),
                _ => assert_eq!(
                    got,
                    [
                        ("talk".to_owned(), serde_json::json!("x")),
                        ("shout".to_owned(), serde_json::json!("HEY")),
                    ]
                ),
            }
        }
    }
}

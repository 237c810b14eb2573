//! The trait every `#[channel]` implements, and its object-safe form used by the registry.

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;

use serde_json::value::RawValue;

use super::context::{ChannelContext, JoinContext, LeaveReason};
use crate::payload::{Payload, PayloadError};

/// A join let in (see [`Authorizer::join`]): what the client is told, and the member's first
/// assigns (state its later hooks read and change, as Phoenix's `assigns`).
///
/// ```
/// use tidings_runtime::channels::Joined;
/// let joined = Joined::new().reply(&serde_json::json!({"history": []})).unwrap().assign(42u32);
/// assert_eq!(joined.reply_json().map(|r| r.get()), Some(r#"{"history":[]}"#));
/// ```
#[derive(Debug, Default)]
pub struct Joined {
    reply: Option<Box<RawValue>>,
    pub(crate) assigns: Assigns,
}

impl Joined {
    /// Let in, with no reply (the client gets `{"status":"ok"}`).
    pub fn new() -> Self {
        Joined::default()
    }

    /// The join reply the client gets (`{"status":"ok","response":value}` over Socket.IO).
    ///
    /// # Errors
    /// [`PayloadError::Serialize`] when `value` does not serialize to JSON.
    pub fn reply<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Result<Self, PayloadError> {
        self.reply = Some(serde_json::value::to_raw_value(value).map_err(PayloadError::Serialize)?);
        Ok(self)
    }

    /// Stores `value` for the member's later hooks in this channel (one value per type).
    #[must_use]
    pub fn assign<T: Any + Send>(mut self, value: T) -> Self {
        self.assigns.insert(value);
        self
    }

    /// The join reply, as raw JSON.
    pub fn reply_json(&self) -> Option<&RawValue> {
        self.reply.as_deref()
    }

    pub(crate) fn into_parts(self) -> (Option<Box<RawValue>>, Assigns) {
        (self.reply, self.assigns)
    }
}

/// A join refused by the channel, with the reason the client sees
/// (`{"status":"error","reason":R}` over Socket.IO).
///
/// ```
/// use tidings_runtime::channels::JoinRefusal;
/// assert_eq!(JoinRefusal::unauthorized().reason(), "unauthorized");
/// assert_eq!(JoinRefusal::new("room_full").reason(), "room_full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRefusal(String);

impl JoinRefusal {
    /// A refusal with a reason of the app's own (short, for the client: `room_full`).
    pub fn new(reason: impl Into<String>) -> Self {
        JoinRefusal(reason.into())
    }

    /// The plain refusal: `unauthorized`.
    pub fn unauthorized() -> Self {
        JoinRefusal::new("unauthorized")
    }

    /// What the client is told.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// What [`Authorizer::join`] answers: `Ok(Joined)` or `Err(JoinRefusal)`. A `bool` converts
/// (`true` lets in with no reply, `false` refuses `unauthorized`).
pub type JoinVerdict = Result<Joined, JoinRefusal>;

/// Per-member state of one channel, by type (Phoenix's `assigns`); set by the join
/// ([`Joined::assign`]) and read and changed by the member's hooks ([`ChannelContext::assign`],
/// [`ChannelContext::assigned`]). Empty, it holds nothing.
#[derive(Default)]
pub struct Assigns(
    #[expect(
        clippy::box_collection,
        reason = "kept for every membership, most with no assigns: 8 bytes, not an empty Vec's 24"
    )]
    Option<Box<Vec<Assign>>>,
);

/// One assign: its type and its value.
type Assign = (TypeId, Box<dyn Any + Send>);

impl std::fmt::Debug for Assigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Assigns({} values)",
            self.0.as_ref().map_or(0, |v| v.len())
        )
    }
}

impl Assigns {
    pub(crate) fn insert<T: Any + Send>(&mut self, value: T) {
        let values = self.0.get_or_insert_default();
        let key = TypeId::of::<T>();
        match values.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = Box::new(value),
            None => values.push((key, Box::new(value))),
        }
    }

    pub(crate) fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        let key = TypeId::of::<T>();
        self.0
            .as_mut()?
            .iter_mut()
            .find(|(k, _)| *k == key)
            .and_then(|(_, value)| value.downcast_mut())
    }

    pub(crate) fn remove<T: Any>(&mut self) -> Option<T> {
        let key = TypeId::of::<T>();
        let values = self.0.as_mut()?;
        let at = values.iter().position(|(k, _)| *k == key)?;
        values.swap_remove(at).1.downcast().ok().map(|value| *value)
    }
}

/// What a member's outgoing filter ([`Authorizer::handle_out`]) does with one event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outbound {
    /// Deliver it as it is (still encoded once for every member that keeps it).
    Keep,
    /// Not for this member.
    Drop,
    /// Deliver these arguments instead, to this member only.
    Replace(Payload),
}

/// What a channel answers to a client event (see [`Authorizer::handle_in`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// `{"status":"ok"}`.
    Ok,
    /// `{"status":"ok","response":<value>}`.
    OkWith(serde_json::Value),
    /// `{"status":"error","reason":<reason>}`.
    Error(String),
}

impl Reply {
    /// `{"status":"ok","response":value}`; a value that does not serialize gives an error
    /// reply instead.
    ///
    /// ```
    /// use tidings_runtime::channels::Reply;
    /// assert_eq!(Reply::ok_with(&[1, 2]).to_json(), serde_json::json!({"status": "ok", "response": [1, 2]}));
    /// ```
    pub fn ok_with<T: serde::Serialize + ?Sized>(value: &T) -> Reply {
        match serde_json::to_value(value) {
            Ok(value) => Reply::OkWith(value),
            Err(_) => Reply::Error("invalid_reply".to_owned()),
        }
    }

    /// `{"status":"error","reason":reason}`.
    pub fn error(reason: impl Into<String>) -> Reply {
        Reply::Error(reason.into())
    }

    /// The JSON object sent to the client.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Reply::Ok => serde_json::json!({"status": "ok"}),
            Reply::OkWith(value) => serde_json::json!({"status": "ok", "response": value}),
            Reply::Error(reason) => serde_json::json!({"status": "error", "reason": reason}),
        }
    }
}

/// Decides who may join a channel, and optionally reacts to joins, leaves and client events.
///
/// Implement it on every `#[channel]` struct, with `pass` (yes or no) or `join` (a reply, a
/// reason of the app's own, assigns); a channel that implements neither lets nobody in. The
/// hooks default to doing nothing (and `handle_in` to refusing with `unhandled`).
///
/// Hooks run on the member's request task, one after another: a slow `joined` or `left`
/// delays that client's next requests (not other clients').
///
/// ```
/// use tidings_runtime::channels::{Authorizer, ChannelContext, JoinContext, Reply};
/// use tidings_runtime::Payload;
///
/// #[derive(Default)]
/// struct RoomChannel;
///
/// impl Authorizer for RoomChannel {
///     async fn pass(&self, join: &JoinContext<'_>) -> bool {
///         join.param_as::<u64>("id").is_some_and(|id| id < 100)
///     }
///
///     async fn handle_in(&self, event: &str, payload: Payload, ctx: &ChannelContext<'_>) -> Reply {
///         match event {
///             "shout" => {
///                 let _ = ctx.broadcast_from("shout", payload);
///                 Reply::Ok
///             }
///             _ => Reply::error("unknown_event"),
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a #[channel] but does not implement `tidings::Authorizer`",
    label = "this channel has no authorizer",
    note = "add `impl tidings::Authorizer for {Self} {{ async fn pass(&self, join: &tidings::JoinContext<'_>) -> bool {{ ... }} }}`"
)]
pub trait Authorizer: Send + Sync + 'static {
    /// Whether this join may go ahead: runs for every `subscribe`, with the channel name, its
    /// params, the join payload, the connection's identity and handshake, and the app data.
    /// The default says no; implement this or [`Authorizer::join`].
    fn pass(&self, join: &JoinContext<'_>) -> impl Future<Output = bool> + Send {
        let _ = join;
        async { false }
    }

    /// The join in full (Phoenix's `join/3`): `Ok(Joined)` lets the member in, with a reply
    /// for the client and assigns for its later hooks; `Err(JoinRefusal)` refuses with a
    /// reason of the app's own. By default, [`Authorizer::pass`] decides.
    ///
    /// ```
    /// use tidings_runtime::channels::{Authorizer, JoinContext, JoinRefusal, JoinVerdict, Joined};
    ///
    /// #[derive(Default)]
    /// struct Room;
    ///
    /// struct Nick(String);
    ///
    /// impl Authorizer for Room {
    ///     async fn join(&self, join: &JoinContext<'_>) -> JoinVerdict {
    ///         let Some(nick) = join.payload::<String>() else {
    ///             return Err(JoinRefusal::new("nick_required"));
    ///         };
    ///         Joined::new()
    ///             .reply(&serde_json::json!({"welcome": nick}))
    ///             .map(|joined| joined.assign(Nick(nick)))
    ///             .map_err(|_| JoinRefusal::new("invalid"))
    ///     }
    /// }
    /// ```
    fn join(&self, join: &JoinContext<'_>) -> impl Future<Output = JoinVerdict> + Send {
        async move {
            if self.pass(join).await {
                Ok(Joined::new())
            } else {
                Err(JoinRefusal::unauthorized())
            }
        }
    }

    /// The events this channel filters member by member with [`Authorizer::handle_out`]
    /// (Phoenix's `intercept`); every other event is encoded once for all members.
    const INTERCEPT: &'static [&'static str] = &[];

    /// Whether this channel tracks presence (who is in it; see [`super::presence`]): every
    /// member then gets `presence_state` after it joins and `presence_diff` on every change,
    /// and hooks may [`ChannelContext::track`] their member.
    ///
    /// ```
    /// use tidings_runtime::channels::{Authorizer, ChannelContext, JoinContext};
    ///
    /// #[derive(Default)]
    /// struct Lobby;
    ///
    /// impl Authorizer for Lobby {
    ///     const PRESENCE: bool = true;
    ///
    ///     async fn pass(&self, _join: &JoinContext<'_>) -> bool {
    ///         true
    ///     }
    ///
    ///     async fn joined(&self, ctx: &ChannelContext<'_>) {
    ///         let user = ctx.handshake().query_param("user").unwrap_or_default();
    ///         let _ = ctx.track(user, &serde_json::json!({"online_at": 1}));
    ///     }
    /// }
    /// ```
    const PRESENCE: bool = false;

    /// For an event listed in [`Authorizer::INTERCEPT`], what this member gets: the event as
    /// it is, nothing, or other arguments. Runs once per member and event, while the event is
    /// delivered: keep it quick, it must not wait.
    fn handle_out(&self, event: &str, payload: &Payload, ctx: &ChannelContext<'_>) -> Outbound {
        let _ = (event, payload, ctx);
        Outbound::Keep
    }

    /// A member joined (after `pass` said yes and the subscription is in place).
    fn joined(&self, ctx: &ChannelContext<'_>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// A member left: it unsubscribed, disconnected, or was dropped for being too slow.
    fn left(
        &self,
        ctx: &ChannelContext<'_>,
        reason: &LeaveReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }

    /// A client event `<channel>/<event>` from a member; the reply goes back through the
    /// client's ack.
    fn handle_in(
        &self,
        event: &str,
        payload: Payload,
        ctx: &ChannelContext<'_>,
    ) -> impl Future<Output = Reply> + Send {
        let _ = (event, payload, ctx);
        async { Reply::error("unhandled") }
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Authorizer`] in object-safe form, implemented for every authorizer.
pub(crate) trait ErasedChannel: Send + Sync + 'static {
    fn join<'a>(&'a self, join: &'a JoinContext<'a>) -> BoxFuture<'a, JoinVerdict>;
    fn handle_out(&self, event: &str, payload: &Payload, ctx: &ChannelContext<'_>) -> Outbound;
    fn joined<'a>(&'a self, ctx: &'a ChannelContext<'a>) -> BoxFuture<'a, ()>;
    fn left<'a>(
        &'a self,
        ctx: &'a ChannelContext<'a>,
        reason: &'a LeaveReason,
    ) -> BoxFuture<'a, ()>;
    fn handle_in<'a>(
        &'a self,
        event: &'a str,
        payload: Payload,
        ctx: &'a ChannelContext<'a>,
    ) -> BoxFuture<'a, Reply>;
}

impl<T: Authorizer> ErasedChannel for T {
    fn join<'a>(&'a self, join: &'a JoinContext<'a>) -> BoxFuture<'a, JoinVerdict> {
        Box::pin(Authorizer::join(self, join))
    }

    fn handle_out(&self, event: &str, payload: &Payload, ctx: &ChannelContext<'_>) -> Outbound {
        Authorizer::handle_out(self, event, payload, ctx)
    }

    fn joined<'a>(&'a self, ctx: &'a ChannelContext<'a>) -> BoxFuture<'a, ()> {
        Box::pin(Authorizer::joined(self, ctx))
    }

    fn left<'a>(
        &'a self,
        ctx: &'a ChannelContext<'a>,
        reason: &'a LeaveReason,
    ) -> BoxFuture<'a, ()> {
        Box::pin(Authorizer::left(self, ctx, reason))
    }

    fn handle_in<'a>(
        &'a self,
        event: &'a str,
        payload: Payload,
        ctx: &'a ChannelContext<'a>,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(Authorizer::handle_in(self, event, payload, ctx))
    }
}

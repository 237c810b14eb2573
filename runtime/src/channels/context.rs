//! What a channel's authorizer and hooks get to see: the channel, its params, the member's
//! connection (identity, handshake), the join payload and the application's data.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::EmitError;
use super::hub::Hub;
use super::member::{Member, MemberId};
use super::presence::{PresenceError, Presences};
use super::registry::Params;
use crate::payload::Payload;
use crate::request::RequestInfo;

/// What a client sent when it connected: its opening request (headers, query string,
/// address) and its auth payload. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    request: Arc<RequestInfo>,
    auth: Option<Box<RawValue>>,
}

impl Handshake {
    /// A handshake from the opening request and the auth payload (Socket.IO's `auth` option).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tidings_runtime::channels::Handshake;
    /// use tidings_runtime::engineio::Handshake as Request;
    /// let request = Request::from_parts([], "EIO=4&token=t%201", None);
    /// let auth = serde_json::value::RawValue::from_string(r#"{"token":"abc"}"#.into()).ok();
    /// let handshake = Handshake::new(Arc::new(request), auth);
    /// assert_eq!(handshake.query_param("token").as_deref(), Some("t 1"));
    /// assert_eq!(handshake.auth::<serde_json::Value>().unwrap()["token"], "abc");
    /// ```
    pub fn new(request: Arc<RequestInfo>, auth: Option<Box<RawValue>>) -> Self {
        Handshake { request, auth }
    }

    /// The request headers (cookies, user agent, authorization ...).
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// A header's value, when present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// The raw query string.
    pub fn query(&self) -> &str {
        self.request.query()
    }

    /// One query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.request.query_param(name)
    }

    /// One cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.request.cookie(name)
    }

    /// The peer's address, when known.
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.request.remote_addr()
    }

    /// The auth payload, as raw JSON.
    pub fn auth_raw(&self) -> Option<&RawValue> {
        self.auth.as_deref()
    }

    /// The auth payload deserialized into `T`.
    pub fn auth<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.auth.as_deref()?.get()).ok()
    }
}

/// The identity a connect hook produced for a connection, type-erased.
#[derive(Clone)]
pub struct Identity(pub(crate) Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(..)")
    }
}

impl Identity {
    /// Wraps any value.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Identity(Arc::new(value))
    }

    /// The value, when it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

/// Application data handed to authorizers (a database pool, a config), by type.
#[derive(Clone, Default)]
pub struct AppData(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl std::fmt::Debug for AppData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppData({} values)", self.0.len())
    }
}

impl AppData {
    /// Adds actix app data, replacing any of the same type.
    ///
    /// ```
    /// use actix_web::web;
    /// use tidings_runtime::channels::AppData;
    /// let mut data = AppData::default();
    /// data.insert(web::Data::new(7u8));
    /// assert_eq!(data.get::<u8>(), Some(&7));
    /// ```
    pub fn insert<T: Any + Send + Sync>(&mut self, value: actix_web::web::Data<T>) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())?
            .downcast_ref::<actix_web::web::Data<T>>()
            .map(|data| data.get_ref())
    }
}

/// Why a member left a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaveReason {
    /// The client unsubscribed.
    #[error("unsubscribed")]
    Unsubscribed,
    /// The connection ended.
    #[error("disconnected: {0}")]
    Disconnected(Disconnect),
}

/// How a member's connection ended, whatever the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Disconnect {
    /// The client left on purpose (it closed the connection or left the namespace).
    #[error("client left")]
    ClientLeft,
    /// The server closed the connection (the application, an admin).
    #[error("server disconnect")]
    ServerClosed,
    /// The connection dropped without a goodbye.
    #[error("transport error")]
    TransportError,
    /// The client stopped answering heartbeats.
    #[error("ping timeout")]
    Timeout,
    /// The client sent something invalid and was closed.
    #[error("invalid input")]
    InvalidInput,
    /// The client did not read what was sent to it fast enough.
    #[error("slow consumer")]
    SlowConsumer,
    /// The server is shutting down.
    #[error("server shutting down")]
    ServerShutdown,
}

/// Everything `pass` may look at for one join.
pub struct JoinContext<'a> {
    pub(crate) channel: &'a str,
    pub(crate) params: &'a Params,
    pub(crate) payload: Option<&'a RawValue>,
    pub(crate) member: &'a Member,
    pub(crate) hub: &'a Hub,
}

impl std::fmt::Debug for JoinContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinContext")
            .field("channel", &self.channel)
            .field("params", &self.params)
            .field("member", &self.member.id())
            .finish_non_exhaustive()
    }
}

impl<'a> JoinContext<'a> {
    /// The concrete channel name (`chats/1`).
    pub fn channel(&self) -> &'a str {
        self.channel
    }

    /// A param of the pattern (`id` in `chats/:id`), as text.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        param(self.params, name)
    }

    /// A param parsed into `T` (`join.param_as::<u64>("id")`); `None` when missing or not a `T`.
    pub fn param_as<T: FromStr>(&self, name: &str) -> Option<T> {
        self.param(name)?.parse().ok()
    }

    /// All params, in pattern order.
    pub fn params(&self) -> &'a [(String, String)] {
        self.params
    }

    /// The join payload the client sent, as raw JSON.
    pub fn payload_raw(&self) -> Option<&'a RawValue> {
        self.payload
    }

    /// The join payload deserialized into `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.payload?.get()).ok()
    }

    /// The identity the connect hook produced, when it is a `T`.
    pub fn identity<T: Any>(&self) -> Option<&'a T> {
        self.member.identity.as_ref()?.get()
    }

    /// The connection's handshake.
    pub fn handshake(&self) -> &'a Handshake {
        &self.member.handshake
    }

    /// The id of the joining connection.
    pub fn member_id(&self) -> MemberId {
        self.member.id()
    }

    /// Application data of type `T` (added with `Tidings::builder().app_data(...)`).
    pub fn app_data<T: Any>(&self) -> Option<&'a T> {
        self.hub.data.get()
    }
}

fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params
        .iter()
        .find_map(|(key, value)| (key == name).then_some(value.as_str()))
}

/// A member of a channel, as the `joined`, `left` and `handle_in` hooks see it; it can
/// broadcast to the channel.
pub struct ChannelContext<'a> {
    pub(crate) channel: &'a str,
    pub(crate) params: &'a Params,
    pub(crate) member: &'a Member,
    pub(crate) hub: &'a Hub,
}

impl std::fmt::Debug for ChannelContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelContext")
            .field("channel", &self.channel)
            .field("member", &self.member.id())
            .finish_non_exhaustive()
    }
}

impl<'a> ChannelContext<'a> {
    /// The concrete channel name.
    pub fn channel(&self) -> &'a str {
        self.channel
    }

    /// A param of the pattern, as text.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        param(self.params, name)
    }

    /// A param parsed into `T`.
    pub fn param_as<T: FromStr>(&self, name: &str) -> Option<T> {
        self.param(name)?.parse().ok()
    }

    /// The member's connection id.
    pub fn member_id(&self) -> MemberId {
        self.member.id()
    }

    /// The member's identity, when it is a `T`.
    pub fn identity<T: Any>(&self) -> Option<&'a T> {
        self.member.identity.as_ref()?.get()
    }

    /// The member's handshake.
    pub fn handshake(&self) -> &'a Handshake {
        &self.member.handshake
    }

    /// Application data of type `T`.
    pub fn app_data<T: Any>(&self) -> Option<&'a T> {
        self.hub.data.get()
    }

    /// Stores `value` in this member's assigns for this channel (one value per type), for its
    /// later hooks.
    pub fn assign<T: Any + Send>(&self, value: T) {
        self.member
            .with_assigns(self.channel, |assigns| assigns.insert(value));
    }

    /// A copy of this member's assign of type `T` in this channel.
    pub fn assigned<T: Any + Clone>(&self) -> Option<T> {
        self.member
            .with_assigns(self.channel, |assigns| assigns.get_mut::<T>().cloned())
            .flatten()
    }

    /// Changes this member's assign of type `T` in this channel with `f` (taken out while `f`
    /// runs, so `f` may use this context); `None` when there is none.
    pub fn update_assigned<T: Any + Send, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut value = self
            .member
            .with_assigns(self.channel, |assigns| assigns.remove::<T>())
            .flatten()?;
        let result = f(&mut value);
        self.assign(value);
        Some(result)
    }

    /// Sends `<channel>/<event>` to every member of the channel, this one included.
    ///
    /// # Errors
    /// [`EmitError`] for an invalid event name.
    pub fn broadcast(&self, event: &str, payload: Payload) -> Result<usize, EmitError> {
        self.hub.broadcast(self.channel, event, payload, None)
    }

    /// Sends `<channel>/<event>` to every member but this one.
    ///
    /// # Errors
    /// [`EmitError`] for an invalid event name.
    pub fn broadcast_from(&self, event: &str, payload: Payload) -> Result<usize, EmitError> {
        self.hub
            .broadcast(self.channel, event, payload, Some(self.member.id()))
    }

    /// How many members the channel has on this node (this one included once it has joined;
    /// in `left`, without the one leaving). With several nodes, only this node's members are
    /// counted.
    pub fn member_count(&self) -> usize {
        self.hub.member_count(self.channel)
    }

    /// Tracks this member's presence in the channel under `key` (a user id, say) with `meta`
    /// (any `Serialize` that makes a JSON object): every member gets the `presence_diff`.
    /// One entry per key; several connections of one key are several metas.
    ///
    /// # Errors
    /// [`PresenceError::NotEnabled`] unless the channel's `PRESENCE` is true,
    /// [`PresenceError::AlreadyTracked`], [`PresenceError::InvalidKey`],
    /// [`PresenceError::InvalidMeta`], [`PresenceError::NotMember`] once it has left.
    pub fn track<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        meta: &T,
    ) -> Result<(), PresenceError> {
        self.hub.track(self.member, self.channel, key.into(), meta)
    }

    /// Replaces this member's presence meta (a new `phx_ref`, the old one as `phx_ref_prev`).
    ///
    /// # Errors
    /// [`PresenceError::NotTracked`] when it is not tracked; as [`ChannelContext::track`].
    pub fn update_presence<T: Serialize + ?Sized>(&self, meta: &T) -> Result<(), PresenceError> {
        self.hub.update_presence(self.member, self.channel, meta)
    }

    /// Stops tracking this member (leaving does it too); false when it was not tracked.
    pub fn untrack(&self) -> bool {
        self.hub.untrack(self.member, self.channel)
    }

    /// Who is in the channel, on every node.
    pub fn presence(&self) -> Presences {
        self.hub.presence(self.channel)
    }

    /// How many keys (users) are present in the channel, on every node.
    pub fn presence_count(&self) -> usize {
        self.hub.presence_count(self.channel)
    }

    /// Sends `<channel>/<event>` to this member only.
    ///
    /// # Errors
    /// [`EmitError`] for an invalid event name.
    pub fn push(&self, event: &str, payload: Payload) -> Result<(), EmitError> {
        let message = self
            .hub
            .outgoing(self.channel, event, payload)?
            .into_direct();
        self.hub.push(self.member, message);
        Ok(())
    }
}

//! The trait every `#[channel]` implements, and its object-safe form used by the registry.

use std::future::Future;
use std::pin::Pin;

use super::context::{ChannelContext, JoinContext, LeaveReason};
use crate::payload::Payload;

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
/// Implement it on every `#[channel]` struct. `pass` is required; the hooks default to doing
/// nothing (and `handle_in` to refusing with `unhandled`).
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
    fn pass(&self, join: &JoinContext<'_>) -> impl Future<Output = bool> + Send;

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
    fn pass<'a>(&'a self, join: &'a JoinContext<'a>) -> BoxFuture<'a, bool>;
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
    fn pass<'a>(&'a self, join: &'a JoinContext<'a>) -> BoxFuture<'a, bool> {
        Box::pin(Authorizer::pass(self, join))
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

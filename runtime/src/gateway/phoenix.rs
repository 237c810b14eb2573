//! The channel protocol over Phoenix Channels, as phoenix.js expects a Phoenix server to
//! behave:
//!
//! | phoenix.js | channel layer | answer |
//! | --- | --- | --- |
//! | `phx_join` | join (`pass` gets the join params) | `phx_reply` `{"status":"ok","response":R}` (R: the join's reply, `{}` by default), or `error` with `{"reason":R}`; a topic no pattern matches: `unmatched topic` with a null join_ref |
//! | `phx_leave` | leave | `phx_reply` ok, then `phx_close` |
//! | any other event | `handle_in` | its reply as `phx_reply`; a topic not joined: `unmatched topic`; a panic: `phx_error` `{"reason":"channel_crash"}` |
//!
//! Broadcasts reach members as `[null, null, topic, event, payload]`, encoded once for every
//! phoenix.js member of the same serializer; a push to one member (and a broadcast rewritten
//! for it by `handle_out`) carries its join_ref. The join reply always goes out before any
//! other frame of that join. A second join of a joined topic closes the first (`phx_close`
//! with its join_ref) and joins again; messages with a join_ref that is not the topic's
//! current one are stale and ignored.

use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::value::RawValue;

use super::ConnectHook;
use super::joins::{Delivery, Joins};
use crate::channels::{
    Encoded, Encoding, EventError, Handshake, Hub, JoinError, LeaveReason, Member, MemberTag,
    Outgoing, Reply, Sink,
};
use crate::engineio::{CloseReason, Frame, Placed, Session};
use crate::payload::Payload;
use crate::phoenix::{Body, Message, PhoenixHandler, Socket, Vsn, empty_object, frame};
use crate::refusal::ConnectRefusal;

/// The channel layer behind the Phoenix endpoint.
pub(crate) struct PhoenixGateway {
    pub(crate) hub: Arc<Hub>,
    pub(crate) connect: Option<ConnectHook>,
}

/// What the gateway keeps per socket.
pub(crate) struct Link {
    member: Arc<Member>,
    sink: Arc<PhoenixSink>,
}

impl PhoenixHandler for PhoenixGateway {
    type State = Link;

    fn connect(
        &self,
        socket: &Arc<Socket>,
    ) -> impl Future<Output = Result<Link, ConnectRefusal>> + Send {
        let socket = socket.clone();
        let hub = self.hub.clone();
        let hook = self.connect.clone();
        async move {
            let auth = socket.auth_token().and_then(|token| {
                serde_json::value::to_raw_value(&serde_json::json!({ "token": token })).ok()
            });
            let handshake = Handshake::new(socket.request().clone(), auth);
            let (id, identity) = super::identify(hook, &handshake, socket.id()).await?;
            let sink = Arc::new(PhoenixSink {
                session: socket.session().clone(),
                kind: (socket.vsn(), socket.binary_frames()),
                socket,
                joins: Joins::default(),
                next_tag: AtomicU64::new(1),
            });
            let member = Member::new(&hub, id, handshake, identity, sink.clone());
            Ok(Link { member, sink })
        }
    }

    fn on_message(&self, socket: &Arc<Socket>, link: &Link, message: Message) {
        let queued = match message.event.as_str() {
            "phx_join" => link.join(message),
            "phx_leave" => link.leave(message),
            _ => link.event(message),
        };
        if queued.is_err() {
            tracing::warn!(id = %socket.id(), "too many pending channel requests: closing");
            socket.close(CloseReason::ProtocolViolation(
                "too many pending channel requests",
            ));
        }
    }

    fn on_close(&self, _socket: &Arc<Socket>, link: &Link, reason: &CloseReason) {
        link.member
            .disconnect(LeaveReason::Disconnected(super::disconnect(reason)));
    }
}

/// One joined (or joining) topic of a socket.
struct Join {
    topic: Box<str>,
    join_ref: Box<str>,
    /// The membership's tag in the channel layer.
    tag: MemberTag,
    /// Frames for this join that came before its reply went out (a `joined` hook's push, a
    /// broadcast); `None` once the reply is out.
    held: Option<Vec<Frame>>,
    /// A second join of the topic came before this one's reply: once its reply is out, it
    /// closes (`phx_close`) and goes.
    superseded: bool,
}

/// A socket as the channel layer's sink: its joins, by topic.
struct PhoenixSink {
    socket: Arc<Socket>,
    /// The socket's session and kind of client, kept here too: a broadcast is encoded and
    /// queued without reading the socket first (one cache miss fewer per delivery).
    session: Arc<Session>,
    kind: (Vsn, bool),
    /// Most sockets join few topics.
    joins: Joins<Join>,
    next_tag: AtomicU64,
}

impl super::joins::Join for Join {
    fn tag(&self) -> MemberTag {
        self.tag
    }

    fn held(&mut self) -> Option<&mut Vec<Frame>> {
        self.held.as_mut()
    }

    fn settled(&self) -> Option<MemberTag> {
        (self.held.is_none() && !self.superseded).then_some(self.tag)
    }
}

/// A broadcast's frame for `socket`'s kind of client, encoded once per event and kind.
fn broadcast(kind: (Vsn, bool), message: &Outgoing) -> Encoded<'_, Placed> {
    match kind {
        (Vsn::V2, true) => message.encoded(&V2WebSocket),
        (Vsn::V2, false) => message.encoded(&V2Text),
        (Vsn::V1, _) => message.encoded(&V1Text),
    }
}

/// Broadcast encodings, one per kind of client, each made once per event.
struct V2WebSocket;
struct V2Text;
struct V1Text;

macro_rules! broadcast_encoding {
    ($kind:ty, $vsn:expr, $binary:expr) => {
        impl Encoding for $kind {
            type Key = $kind;
            /// Placed among the channel's broadcasts when it is a text frame.
            type Output = Placed;

            fn encode(&self, message: &Outgoing) -> Self::Output {
                let frame = frame(&phoenix_message(message, None), $vsn, $binary).shared();
                Placed::new(TypeId::of::<$kind>(), message.channel(), frame)
            }
        }
    };
}

broadcast_encoding!(V2WebSocket, Vsn::V2, true);
broadcast_encoding!(V2Text, Vsn::V2, false);
broadcast_encoding!(V1Text, Vsn::V1, false);

/// An event as a Phoenix message: a push when it has a join_ref, a broadcast when not. An event
/// of the channel history carries its offset as the message's `ref` (phoenix.js hands it to
/// `channel.on` callbacks as their second argument).
fn phoenix_message(message: &Outgoing, join_ref: Option<&str>) -> Message {
    Message {
        join_ref: join_ref.map(ToOwned::to_owned),
        msg_ref: message.offset().map(|offset| offset.to_string()),
        topic: message.channel().to_owned(),
        event: message.event().to_owned(),
        payload: body(message.payload()),
    }
}

/// A payload as one Phoenix payload: a lone binary value as bytes, anything else as JSON
/// ([`super::json_payload`], none as `{}`).
fn body(payload: &Payload) -> Body {
    match payload.as_binary() {
        Some(bytes) => Body::Binary(bytes.clone()),
        None => Body::Json(super::json_payload(payload).unwrap_or_else(empty_object)),
    }
}

fn reason(reason: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(&serde_json::json!({ "reason": reason }))
        .unwrap_or_else(|_| empty_object())
}

impl Sink for PhoenixSink {
    fn deliver(&self, message: &Outgoing, tag: MemberTag) -> bool {
        let socket = &self.socket;
        if !message.is_direct() && self.joins.is_settled(tag) {
            // The usual case, a broadcast to the socket's one join, answered long ago: no lock.
            return self
                .session
                .send_placed(&broadcast(self.kind, message))
                .is_ok();
        }
        // A push carries the member's join_ref; a broadcast is encoded once for all.
        let make = |join: &Join| {
            if message.is_direct() {
                let (vsn, binary) = self.kind;
                Encoded::Owned(Placed::Frame(frame(
                    &phoenix_message(message, Some(&join.join_ref)),
                    vsn,
                    binary,
                )))
            } else {
                broadcast(self.kind, message)
            }
        };
        match self.joins.deliver(tag, make, |placed| placed.frame()) {
            Delivery::Done => true,
            // The join's hooks take long while its channel is busy.
            Delivery::Full => {
                socket.close(CloseReason::QueueFull);
                false
            }
            Delivery::Send(placed) => self.session.send_placed(&placed).is_ok(),
        }
    }

    fn touch(&self) {
        std::hint::black_box(self.joins.touch());
        std::hint::black_box(self.session.touch());
    }
}

impl PhoenixSink {
    /// The current join of `topic`, if any: its join_ref and tag.
    fn current(&self, topic: &str) -> Option<(Box<str>, MemberTag)> {
        self.joins.read(|joins| {
            joins
                .iter()
                .find(|join| *join.topic == *topic && !join.superseded)
                .map(|join| (join.join_ref.clone(), join.tag))
        })
    }

    /// Whether the join with `tag` is still there.
    fn has(&self, tag: MemberTag) -> bool {
        self.joins
            .read(|joins| joins.iter().any(|join| join.tag == tag))
    }

    /// Forgets the join with `tag`; true when it was there.
    fn forget(&self, tag: MemberTag) -> bool {
        self.joins.edit(|joins| {
            let at = joins.iter().position(|join| join.tag == tag);
            at.map(|at| joins.remove(at)).is_some()
        })
    }

    /// `phx_close` or `phx_error` for a join: `[jr, jr, topic, event, payload]`.
    fn end(&self, join_ref: &str, topic: &str, event: &str, payload: Box<RawValue>) {
        let _ = self.socket.send(&Message {
            join_ref: Some(join_ref.to_owned()),
            msg_ref: Some(join_ref.to_owned()),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload: Body::Json(payload),
        });
    }
}

impl Link {
    fn join(&self, message: Message) -> Result<(), crate::channels::Overloaded> {
        let Message {
            join_ref,
            msg_ref,
            topic,
            payload,
            ..
        } = message;
        let join_ref: Box<str> = join_ref
            .or_else(|| msg_ref.clone())
            .unwrap_or_default()
            .into();
        let payload = match payload {
            Body::Json(raw) => Some(raw),
            Body::Binary(_) => None,
        };
        let sink = &self.sink;
        let tag = sink.next_tag.fetch_add(1, Ordering::Relaxed);
        // A second join of the topic: the first one closes, then this one joins anew. A first
        // join still waiting for its verdict gets its reply first, then closes (see below).
        let (replaced, pending) = sink.joins.edit(|joins| {
            let at = joins
                .iter()
                .position(|join| *join.topic == *topic && !join.superseded);
            let mut replaced = None;
            let mut pending = false;
            if let Some(at) = at {
                if joins[at].held.is_some() {
                    joins[at].superseded = true;
                    pending = true;
                } else {
                    replaced = Some(joins.remove(at));
                }
            }
            joins.push(Join {
                topic: topic.as_str().into(),
                join_ref: join_ref.clone(),
                tag,
                held: Some(Vec::new()),
                superseded: false,
            });
            (replaced, pending)
        });
        if let Some(old) = &replaced {
            sink.end(&old.join_ref, &topic, "phx_close", empty_object());
        }
        if replaced.is_some() || pending {
            self.member.leave(topic.clone(), |_| {})?;
        }
        let done_sink = sink.clone();
        let done_topic = topic.clone();
        self.member.join(topic, payload, tag, move |verdict| {
            let sink = done_sink;
            let socket = &sink.socket;
            let topic = done_topic;
            let msg_ref = msg_ref.as_deref();
            match verdict {
                Ok(response) => {
                    // The reply and the frames held for it leave under the lock, before any
                    // broadcast that finds the join settled.
                    let superseded = sink.joins.edit(|joins| {
                        let at = joins.iter().position(|join| join.tag == tag);
                        let held = at.and_then(|at| joins[at].held.take());
                        let response = response.unwrap_or_else(empty_object);
                        let _ = socket.reply(Some(&join_ref), msg_ref, &topic, "ok", &response);
                        for frame in held.into_iter().flatten() {
                            if socket.send_frame(frame).is_err() {
                                break;
                            }
                        }
                        let superseded = at.filter(|&at| joins[at].superseded);
                        superseded.map(|at| joins.remove(at)).is_some()
                    });
                    if superseded {
                        sink.end(&join_ref, &topic, "phx_close", empty_object());
                    }
                }
                Err(err) => {
                    sink.forget(tag);
                    let (join_ref, text) = match &err {
                        JoinError::UnknownChannel => (None, "unmatched topic"),
                        JoinError::Crashed => (Some(&*join_ref), "join crashed"),
                        JoinError::Invalid("too many subscriptions") => {
                            (Some(&*join_ref), "too many channels joined")
                        }
                        other => (Some(&*join_ref), other.reason()),
                    };
                    let _ = socket.reply(join_ref, msg_ref, &topic, "error", &reason(text));
                }
            }
        })
    }

    fn leave(&self, message: Message) -> Result<(), crate::channels::Overloaded> {
        let sink = &self.sink;
        let socket = &sink.socket;
        let Message {
            join_ref,
            msg_ref,
            topic,
            ..
        } = message;
        match sink.current(&topic) {
            None => {
                let _ = socket.reply(
                    join_ref.as_deref(),
                    msg_ref.as_deref(),
                    &topic,
                    "ok",
                    &empty_object(),
                );
                Ok(())
            }
            Some((current, _)) if join_ref.as_deref().is_some_and(|jr| *jr != *current) => {
                // A leave from an earlier join of the topic: stale, ignored.
                Ok(())
            }
            Some((current, tag)) => {
                sink.forget(tag);
                let sink = sink.clone();
                let channel = topic.clone();
                self.member.leave(channel, move |_| {
                    let _ = sink.socket.reply(
                        Some(&current),
                        msg_ref.as_deref(),
                        &topic,
                        "ok",
                        &empty_object(),
                    );
                    sink.end(&current, &topic, "phx_close", empty_object());
                })
            }
        }
    }

    fn event(&self, message: Message) -> Result<(), crate::channels::Overloaded> {
        let sink = &self.sink;
        let socket = &sink.socket;
        let Message {
            join_ref,
            msg_ref,
            topic,
            event,
            payload,
        } = message;
        let Some((current, tag)) = sink.current(&topic) else {
            let _ = socket.reply(
                None,
                msg_ref.as_deref(),
                &topic,
                "error",
                &reason("unmatched topic"),
            );
            return Ok(());
        };
        if join_ref.as_deref().is_some_and(|jr| *jr != *current) {
            // From an earlier join of the topic: stale, ignored.
            return Ok(());
        }
        let payload = match payload {
            Body::Json(raw) => Payload::from_parts(vec![raw], Vec::new()),
            Body::Binary(bytes) => Payload::from_binary(bytes),
        };
        let sink = sink.clone();
        let member = self.member.clone();
        let channel = topic.clone();
        let guard_sink = sink.clone();
        // A channel that crashed takes the pushes queued behind the crash with it.
        let guard = move || guard_sink.has(tag);
        self.member
            .event_if(channel, event, payload, guard, move |answer| {
                let socket = &sink.socket;
                let msg_ref = msg_ref.as_deref();
                let reply = |status: &str, response: &RawValue| {
                    let _ = socket.reply(Some(&current), msg_ref, &topic, status, response);
                };
                match answer {
                    Ok(Reply::Ok) => reply("ok", &empty_object()),
                    Ok(Reply::OkWith(value)) => match serde_json::value::to_raw_value(&value) {
                        Ok(value) => reply("ok", &value),
                        Err(_) => reply("error", &reason("invalid_reply")),
                    },
                    Ok(Reply::Error(text)) => reply("error", &reason(&text)),
                    Err(EventError::NotSubscribed) => {
                        let _ = socket.reply(
                            None,
                            msg_ref,
                            &topic,
                            "error",
                            &reason("unmatched topic"),
                        );
                    }
                    Err(_) => {
                        // The channel crashed, as a Phoenix channel process would: it is gone
                        // for this client, who rejoins after phx_error.
                        if sink.forget(tag) {
                            let _ = member.leave(topic.clone(), |_| {});
                            sink.end(&current, &topic, "phx_error", reason("channel_crash"));
                        }
                    }
                }
            })
    }
}

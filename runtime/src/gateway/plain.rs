//! The channel protocol over plain WebSocket:
//!
//! | client sends | channel layer | answer |
//! | --- | --- | --- |
//! | `{"type":"subscribe","channel":C,"payload":P,"ref":R}` | join | `{"type":"reply","ref":R,"status":"ok"[,"response":V]}` or `status` `error` with `reason` (as over Socket.IO) |
//! | `{"type":"unsubscribe","channel":C,"ref":R}` | leave | `{"type":"reply","ref":R,"status":"ok"}` |
//! | `{"type":"event","channel":C,"event":E,"data":D,"ref":R}` | `handle_in` | its reply as a `reply`; `not_subscribed` when not joined |
//!
//! Events reach members as `{"type":"event","channel":C,"event":E,"data":D}`, encoded once for
//! every plain WebSocket member. A socket opened at `<path>/<channel>` joins that channel at
//! once with its query parameters as the join payload: its first frame is
//! `{"type":"reply","status":"ok","channel":C}`, or an `error` frame and close 1008. As over
//! Phoenix, a join's reply goes out before any other frame of that join.

use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::value::RawValue;

use super::ConnectHook;
use super::joins::{Delivery, Joins};
use crate::channels::{
    Encoding, Handshake, Hub, LeaveReason, Member, MemberTag, Outgoing, Reply, Sink,
};
use crate::engineio::{CloseReason, Frame, Placed, Session};
use crate::payload::Payload;
use crate::plainws::{ClientMessage, PlainHandler, PlainSocket, ServerMessage};
use crate::refusal::ConnectRefusal;

/// The channel layer behind the plain WebSocket endpoint.
pub(crate) struct PlainGateway {
    pub(crate) hub: Arc<Hub>,
    pub(crate) connect: Option<ConnectHook>,
}

/// What the gateway keeps per socket.
pub(crate) struct Link {
    member: Arc<Member>,
    sink: Arc<PlainSink>,
}

/// One membership: its channel, its tag, and the frames that wait for its join's reply
/// (`None` once the reply is out).
type Join = (Box<str>, MemberTag, Option<Vec<Frame>>);

/// A socket as the channel layer's sink: its memberships.
struct PlainSink {
    socket: Arc<PlainSocket>,
    /// The socket's session, kept here too: a broadcast queues into it without reading the
    /// socket first (one cache miss fewer per delivery).
    session: Arc<Session>,
    joins: Joins<Join>,
    next_tag: AtomicU64,
}

impl super::joins::Join for Join {
    fn tag(&self) -> MemberTag {
        self.1
    }

    fn held(&mut self) -> Option<&mut Vec<Frame>> {
        self.2.as_mut()
    }

    fn settled(&self) -> Option<MemberTag> {
        self.2.is_none().then_some(self.1)
    }
}

/// `{"type":"event",...}`, made once per event for every plain WebSocket member.
struct Events;

impl Encoding for Events {
    type Key = Events;
    /// Placed among the channel's broadcasts (a text frame always is).
    type Output = Placed;

    fn encode(&self, message: &Outgoing) -> Self::Output {
        let data = super::json_payload(message.payload()).unwrap_or_else(null);
        let text = ServerMessage::Event {
            channel: message.channel(),
            event: message.event(),
            data: &data,
            offset: message.offset(),
        }
        .encode();
        let frame = Frame::Text(text.into()).shared();
        Placed::new(TypeId::of::<Events>(), message.channel(), frame)
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

impl Sink for PlainSink {
    fn deliver(&self, message: &Outgoing, tag: MemberTag) -> bool {
        let placed = message.encoded(&Events);
        if self.joins.is_settled(tag) {
            // The usual case, its one join answered long ago: no lock.
            return self.session.send_placed(&placed).is_ok();
        }
        match self.joins.deliver(tag, |_| (), |()| placed.frame()) {
            Delivery::Done => true,
            Delivery::Full => {
                self.socket.close(CloseReason::QueueFull);
                false
            }
            Delivery::Send(()) => self.session.send_placed(&placed).is_ok(),
        }
    }

    fn touch(&self) {
        std::hint::black_box(self.joins.touch());
        std::hint::black_box(self.session.touch());
    }
}

impl PlainSink {
    fn reply(
        &self,
        msg_ref: Option<&RawValue>,
        status: &str,
        response: Option<&RawValue>,
        reason: Option<&str>,
    ) {
        let _ = self.socket.send(&ServerMessage::Reply {
            msg_ref,
            channel: None,
            status,
            response,
            reason,
        });
    }
}

/// The query string as a JSON object (the join payload of a path-bound socket).
fn query_object(query: &str) -> Option<Box<RawValue>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .into_iter()
        .map(|(key, value)| (key, serde_json::Value::String(value)))
        .collect();
    serde_json::value::to_raw_value(&object).ok()
}

impl PlainHandler for PlainGateway {
    type State = Link;

    fn knows(&self, channel: &str) -> bool {
        self.hub.registry().resolve(channel).is_some()
    }

    fn connect(
        &self,
        socket: &Arc<PlainSocket>,
    ) -> impl Future<Output = Result<Link, ConnectRefusal>> + Send {
        let socket = socket.clone();
        let hub = self.hub.clone();
        let hook = self.connect.clone();
        async move {
            let handshake = Handshake::new(socket.request().clone(), None);
            let (id, identity) = super::identify(hook, &handshake, socket.id()).await?;
            let sink = Arc::new(PlainSink {
                socket: socket.clone(),
                session: socket.session().clone(),
                joins: Joins::default(),
                next_tag: AtomicU64::new(1),
            });
            let member = Member::new(&hub, id, handshake, identity, sink.clone());
            let link = Link { member, sink };
            if let Some(channel) = socket.bound() {
                let payload = query_object(socket.request().query());
                if link.join(channel.to_owned(), payload, None, true).is_err() {
                    return Err(ConnectRefusal::new("overloaded"));
                }
            }
            Ok(link)
        }
    }

    fn on_message(&self, socket: &Arc<PlainSocket>, link: &Link, message: ClientMessage) {
        let queued = match message {
            ClientMessage::Subscribe {
                channel,
                payload,
                msg_ref,
            } => link.join(channel, payload, msg_ref, false),
            ClientMessage::Unsubscribe { channel, msg_ref } => link.leave(channel, msg_ref),
            ClientMessage::Event {
                channel,
                event,
                data,
                msg_ref,
            } => link.event(channel, event, data, msg_ref),
            ClientMessage::Ping => Ok(()),
        };
        if queued.is_err() {
            tracing::warn!(id = %socket.id(), "too many pending channel requests: closing");
            socket.close(CloseReason::ProtocolViolation(
                "too many pending channel requests",
            ));
        }
    }

    fn on_close(&self, _socket: &Arc<PlainSocket>, link: &Link, reason: &CloseReason) {
        link.member
            .disconnect(LeaveReason::Disconnected(super::disconnect(reason)));
    }
}

impl Link {
    /// Joins `channel`; `bound`: the socket's own channel, whose refusal ends the socket.
    fn join(
        &self,
        channel: String,
        payload: Option<Box<RawValue>>,
        msg_ref: Option<Box<RawValue>>,
        bound: bool,
    ) -> Result<(), crate::channels::Overloaded> {
        let sink = self.sink.clone();
        let tag = sink.next_tag.fetch_add(1, Ordering::Relaxed);
        sink.joins
            .edit(|joins| joins.push((channel.as_str().into(), tag, Some(Vec::new()))));
        let name = channel.clone();
        self.member.join(channel, payload, tag, move |verdict| {
            let socket = &sink.socket;
            // The reply and the frames held for it leave under the lock, before any broadcast
            // that finds the join settled.
            let refused = sink.joins.edit(|joins| {
                let at = joins.iter().position(|(_, t, _)| *t == tag);
                match verdict {
                    Ok(response) => {
                        let held = at.and_then(|at| joins[at].2.take());
                        let _ = socket.send(&ServerMessage::Reply {
                            msg_ref: msg_ref.as_deref(),
                            channel: bound.then_some(name.as_str()),
                            status: "ok",
                            response: response.as_deref(),
                            reason: None,
                        });
                        for frame in held.into_iter().flatten() {
                            if socket.send_frame(frame).is_err() {
                                break;
                            }
                        }
                        None
                    }
                    Err(err) => {
                        if let Some(at) = at {
                            joins.remove(at);
                        }
                        Some(err)
                    }
                }
            });
            if let Some(err) = refused {
                if bound {
                    let _ = socket.send(&ServerMessage::Error {
                        reason: err.reason(),
                        message: &format!("cannot join {name}"),
                    });
                    socket.close(CloseReason::Refused(err.reason().to_owned()));
                } else {
                    sink.reply(msg_ref.as_deref(), "error", None, Some(err.reason()));
                }
            }
        })
    }

    fn leave(
        &self,
        channel: String,
        msg_ref: Option<Box<RawValue>>,
    ) -> Result<(), crate::channels::Overloaded> {
        // Whatever is still on the way for the channel is dropped from now on.
        self.sink
            .joins
            .edit(|joins| joins.retain(|(name, _, _)| **name != *channel));
        let sink = self.sink.clone();
        self.member.leave(channel, move |_| {
            sink.reply(msg_ref.as_deref(), "ok", None, None);
        })
    }

    fn event(
        &self,
        channel: String,
        event: String,
        data: Option<Box<RawValue>>,
        msg_ref: Option<Box<RawValue>>,
    ) -> Result<(), crate::channels::Overloaded> {
        let payload = Payload::from_parts(vec![data.unwrap_or_else(null)], Vec::new());
        let sink = self.sink.clone();
        self.member.event(channel, event, payload, move |answer| {
            let msg_ref = msg_ref.as_deref();
            match answer {
                Ok(Reply::Ok) => sink.reply(msg_ref, "ok", None, None),
                Ok(Reply::OkWith(value)) => match serde_json::value::to_raw_value(&value) {
                    Ok(value) => sink.reply(msg_ref, "ok", Some(&value), None),
                    Err(_) => sink.reply(msg_ref, "error", None, Some("invalid_reply")),
                },
                Ok(Reply::Error(reason)) => sink.reply(msg_ref, "error", None, Some(&reason)),
                Err(err) => sink.reply(msg_ref, "error", None, Some(err.reason())),
            }
        })
    }
}

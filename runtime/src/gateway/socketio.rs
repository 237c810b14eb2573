//! The channel protocol over Socket.IO, in one namespace:
//!
//! | client sends | meaning | ack |
//! | --- | --- | --- |
//! | `subscribe`, channel[, payload] | join; runs `pass` | `{"status":"ok"}` or `{"status":"error","reason":R}` |
//! | `unsubscribe`, channel | leave | `{"status":"ok"}` |
//! | `<channel>/<event>`, payload | into the channel's `handle_in` | the reply, or `not_subscribed` |
//!
//! Server to client: `<channel>/<event>` with the payload. Each connection's channel
//! operations run one after another, in arrival order, on a task that lives while some are
//! pending.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::value::RawValue;

use crate::channels::{Handshake, Hub, Identity, Outgoing, Peer, Sink};
use crate::engineio::Frame;
use crate::payload::Payload;
use crate::socketio::{AckSender, DisconnectReason, Listener, Packet, Socket, SocketRef};
use crate::sync::lock;

/// The encoding slot of Socket.IO frames in [`Outgoing`].
pub(crate) const SLOT: usize = 0;

/// How many channel operations may wait per connection before it counts as abusive (above the
/// default subscription limit, so a page subscribing to all its channels at once is fine).
const MAX_PENDING_OPS: usize = 256;

/// The Socket.IO frames of `message` in namespace `nsp`: the ones already cached in [`SLOT`]
/// (by a local delivery or another node), else encoded now and cached. `None` when the slot
/// holds something else.
#[cfg(feature = "redis")]
pub(crate) fn cached_frames<'a>(message: &'a Outgoing, nsp: &str) -> Option<&'a Vec<Frame>> {
    message.cached(SLOT, |m| encode(m, nsp))
}

/// `message` with its Socket.IO frames already in [`SLOT`], so no connection encodes it again.
#[cfg(feature = "redis")]
pub(crate) fn with_frames(message: Outgoing, frames: Vec<Frame>) -> Outgoing {
    message.with_cached(SLOT, frames)
}

/// The Socket.IO frames of `message`, the text one made ready for many WebSockets.
pub(crate) fn encode(message: &Outgoing, nsp: &str) -> Vec<Frame> {
    Packet::Event {
        nsp: nsp.to_owned(),
        event: format!("{}/{}", message.channel(), message.event()),
        payload: message.payload().clone(),
        id: None,
    }
    .encode()
    .into_iter()
    .map(Frame::shared)
    .collect()
}

/// A socket is its own sink: channel events go to its connection, in its namespace.
impl Sink for Socket {
    fn deliver(&self, message: &Outgoing) -> bool {
        let nsp = self.ns().name();
        let owned;
        let frames = match message.cached(SLOT, |m| encode(m, nsp)) {
            Some(frames) => frames,
            None => {
                owned = encode(message, nsp);
                &owned
            }
        };
        let session = self.session();
        match frames.as_slice() {
            [frame] => session.send(frame.clone()).is_ok(),
            frames => session.send_all(frames.iter().cloned()).is_ok(),
        }
    }
}

enum Op {
    Join {
        channel: String,
        payload: Option<Box<RawValue>>,
        ack: Option<AckSender>,
    },
    Leave {
        channel: String,
        ack: Option<AckSender>,
    },
    Event {
        channel: String,
        event: String,
        payload: Payload,
        ack: Option<AckSender>,
    },
}

/// The handshake of a socket, as the channel layer sees it.
pub(crate) fn handshake(socket: &SocketRef) -> Handshake {
    Handshake::new(
        socket.handshake().clone(),
        socket.auth().map(ToOwned::to_owned),
    )
}

/// One connection's link to the hub: its channel operations, run in order by a task that
/// starts with the first pending one and ends with the last, so an idle connection costs
/// neither a task nor a queue.
struct Link {
    hub: Arc<Hub>,
    peer: Arc<Peer>,
    ops: Mutex<Ops>,
}

#[derive(Default)]
struct Ops {
    /// Boxed, and only while some are pending: a link lives as long as its connection.
    #[expect(
        clippy::box_collection,
        reason = "an idle link keeps 8 bytes instead of an empty VecDeque's 32"
    )]
    pending: Option<Box<VecDeque<Op>>>,
    /// A task is running the pending operations.
    running: bool,
    /// Some operation was queued: the peer may be a member of some channel.
    used: bool,
    /// The socket disconnected, for this reason; the peer leaves every channel next.
    gone: Option<DisconnectReason>,
    /// The peer has left everything; nothing runs any more.
    ended: bool,
}

impl Link {
    fn ops(&self) -> MutexGuard<'_, Ops> {
        lock(&self.ops)
    }

    fn queue(self: &Arc<Self>, socket: &SocketRef, op: Op) {
        let mut ops = self.ops();
        if ops.ended || ops.gone.is_some() {
            return;
        }
        let pending = ops.pending.get_or_insert_default();
        if pending.len() >= MAX_PENDING_OPS {
            drop(ops);
            tracing::warn!(socket = %socket.id(), "too many pending channel operations; closing");
            socket.close_connection();
            return;
        }
        pending.push_back(op);
        ops.used = true;
        self.start(&mut ops);
    }

    /// The socket is gone: pending operations are dropped and the peer leaves every channel.
    fn disconnect(self: &Arc<Self>, reason: DisconnectReason) {
        let mut ops = self.ops();
        if !ops.used || ops.ended {
            return;
        }
        ops.pending = None;
        ops.gone = Some(reason);
        self.start(&mut ops);
    }

    fn start(self: &Arc<Self>, ops: &mut Ops) {
        if !ops.running {
            ops.running = true;
            tokio::spawn(self.clone().run());
        }
    }

    /// Runs the pending operations in order; after a disconnect, leaves every channel.
    async fn run(self: Arc<Self>) {
        loop {
            let next = {
                let mut ops = self.ops();
                match ops.pending.as_mut().and_then(|pending| pending.pop_front()) {
                    Some(op) => Ok(op),
                    None => match ops.gone.take() {
                        Some(reason) => {
                            ops.ended = true;
                            Err(Some(reason))
                        }
                        None => {
                            ops.running = false;
                            ops.pending = None;
                            Err(None)
                        }
                    },
                }
            };
            match next {
                Ok(op) => execute(&self.hub, &self.peer, op).await,
                Err(Some(reason)) => {
                    return self.hub.disconnect(&self.peer, reason.to_string()).await;
                }
                Err(None) => return,
            }
        }
    }
}

/// Wires a freshly connected socket to the hub.
pub(crate) fn attach(hub: &Arc<Hub>, socket: &SocketRef) {
    let identity = socket.extension::<Identity>().map(|i| (*i).clone());
    // The peer holds the socket as its sink, and the socket holds the link (its listener),
    // which holds the peer: the socket lets go of its listener when it leaves, which ends
    // that cycle.
    let sink: Arc<dyn Sink> = socket.clone();
    let peer = Arc::new(Peer::new(socket.id(), handshake(socket), identity, sink));
    let link = Arc::new(Link {
        hub: hub.clone(),
        peer,
        ops: Mutex::default(),
    });

    socket.listen(link);
}

/// The link hears every event of its socket (there are no named handlers): the two control
/// events, then `<channel>/<event>`; and the disconnect.
impl Listener for Link {
    fn on_event(
        self: Arc<Self>,
        socket: SocketRef,
        name: &str,
        payload: Payload,
        ack: Option<AckSender>,
    ) {
        let op = match name {
            "subscribe" => match payload.get::<String>(0) {
                Ok(channel) => Op::Join {
                    channel,
                    payload: payload.arg(1).map(ToOwned::to_owned),
                    ack,
                },
                Err(_) => return reply_error(ack, "invalid"),
            },
            "unsubscribe" => match payload.get::<String>(0) {
                Ok(channel) => Op::Leave { channel, ack },
                Err(_) => return reply_error(ack, "invalid"),
            },
            name => {
                let Some((channel, event)) = name.rsplit_once('/') else {
                    // Not a channel event and not a control event of ours.
                    return reply_error(ack, "unknown_event");
                };
                if channel.is_empty() || event.is_empty() {
                    return reply_error(ack, "invalid");
                }
                Op::Event {
                    channel: channel.to_owned(),
                    event: event.to_owned(),
                    payload,
                    ack,
                }
            }
        };
        self.queue(&socket, op);
    }

    fn on_disconnect(self: Arc<Self>, _socket: SocketRef, reason: &DisconnectReason) {
        self.disconnect(reason.clone());
    }
}

/// The answer to a control event: `{"status":"ok"}` or `{"status":"error","reason":R}`,
/// serialized straight from this (no JSON tree is built per subscribe).
#[derive(serde::Serialize)]
struct Status<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

fn reply<T: serde::Serialize + ?Sized>(ack: Option<AckSender>, value: &T) {
    if let Some(ack) = ack {
        let _ = ack.send_value(value);
    }
}

fn reply_ok(ack: Option<AckSender>) {
    reply(
        ack,
        &Status {
            status: "ok",
            reason: None,
        },
    );
}

fn reply_error(ack: Option<AckSender>, reason: &str) {
    reply(
        ack,
        &Status {
            status: "error",
            reason: Some(reason),
        },
    );
}

/// Runs one channel operation and answers its ack.
async fn execute(hub: &Hub, peer: &Arc<Peer>, op: Op) {
    match op {
        Op::Join {
            channel,
            payload,
            ack,
        } => match hub.join(peer, &channel, payload.as_deref()).await {
            Ok(()) => reply_ok(ack),
            Err(err) => {
                tracing::debug!(channel, member = %peer.id(), %err, "join refused");
                reply_error(ack, err.reason());
            }
        },
        Op::Leave { channel, ack } => {
            hub.leave(peer, &channel).await;
            reply_ok(ack);
        }
        Op::Event {
            channel,
            event,
            payload,
            ack,
        } => match hub.event(peer, &channel, &event, payload).await {
            Ok(answer) => reply(ack, &answer.to_json()),
            Err(err) => reply_error(ack, err.reason()),
        },
    }
}

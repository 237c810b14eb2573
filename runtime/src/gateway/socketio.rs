//! The channel protocol over Socket.IO, in one namespace:
//!
//! | client sends | meaning | ack |
//! | --- | --- | --- |
//! | `subscribe`, channel[, payload] | join; runs `pass` | `{"status":"ok"}` or `{"status":"error","reason":R}` |
//! | `unsubscribe`, channel | leave | `{"status":"ok"}` |
//! | `<channel>/<event>`, payload | into the channel's `handle_in` | the reply, or `not_subscribed` |
//!
//! Server to client: `<channel>/<event>` with the payload. The socket's id is its member id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::channels::{
    Disconnect, Encoding, Handshake, Hub, Identity, LeaveReason, Member, MemberId, MemberTag,
    Outgoing, Sink,
};
use crate::engineio::{Frame, Placed, Sid};
use crate::payload::Payload;
use crate::socketio::{
    AckSender, DisconnectReason, Listener, Packet, RecoverFuture, Resumed, Socket, SocketRef,
};

/// Socket.IO frames of channel events, for the sockets of namespace `nsp`: an `EVENT` packet
/// `<channel>/<event>`, the text frame made ready for many WebSockets.
pub(crate) struct Frames<'a> {
    pub(crate) nsp: &'a str,
}

impl Encoding for Frames<'_> {
    type Key = Frames<'static>;
    /// The namespace the frames were encoded for, and the frames.
    type Output = (String, Encoded);

    fn encode(&self, message: &Outgoing) -> Self::Output {
        let mut frames = encode(message, self.nsp);
        let encoded = match frames.pop() {
            Some(frame) if frames.is_empty() => {
                let key = std::any::TypeId::of::<Self::Key>();
                Encoded::One(Placed::new(key, message.channel(), frame))
            }
            last => {
                frames.extend(last);
                Encoded::Many(frames)
            }
        };
        (self.nsp.to_owned(), encoded)
    }
}

/// A channel event's frames: one frame, placed among the channel's broadcasts, or a binary
/// event's frames.
pub(crate) enum Encoded {
    One(Placed),
    Many(Vec<Frame>),
}

/// The Socket.IO frames of `message` in namespace `nsp`; with connection state recovery on,
/// its offset goes last, as a string, where the official client reads it.
pub(crate) fn encode(message: &Outgoing, nsp: &str) -> Vec<Frame> {
    let mut payload = message.payload().clone();
    if let Some(offset) = message.offset() {
        // A string always serializes.
        let _ = payload.push(&offset.to_string());
    }
    Packet::Event {
        nsp: nsp.to_owned(),
        event: format!("{}/{}", message.channel(), message.event()),
        payload,
        id: None,
    }
    .encode()
    .into_iter()
    .map(Frame::shared)
    .collect()
}

/// A socket is its own sink: channel events go to its connection, in its namespace, encoded
/// once for every socket of the namespace.
impl Sink for Socket {
    fn deliver(&self, message: &Outgoing, _tag: MemberTag) -> bool {
        let nsp = self.ns().name();
        // Every socket of the channel namespace shares one encoding; a socket of another
        // namespace (there is none in a `Tidings`) would encode its own.
        let shared = message.encoded(&Frames { nsp });
        let session = self.session();
        let owned;
        let frames = if shared.0 != nsp {
            owned = encode(message, nsp);
            &owned
        } else {
            match &shared.1 {
                Encoded::One(placed) => return session.send_placed(placed).is_ok(),
                Encoded::Many(frames) => frames,
            }
        };
        match frames.as_slice() {
            [frame] => session.send(frame.clone()).is_ok(),
            frames => session.send_all(frames.iter().cloned()).is_ok(),
        }
    }

    fn touch(&self) {
        std::hint::black_box(self.session().touch());
    }
}

/// The handshake of a socket, as the channel layer sees it.
pub(crate) fn handshake(socket: &SocketRef) -> Handshake {
    Handshake::new(
        socket.handshake().clone(),
        socket.auth().map(ToOwned::to_owned),
    )
}

/// How a socket's end reads in the channel layer.
fn leave_reason(reason: &DisconnectReason) -> LeaveReason {
    LeaveReason::Disconnected(match reason {
        DisconnectReason::ClientNamespaceDisconnect | DisconnectReason::TransportClose => {
            Disconnect::ClientLeft
        }
        DisconnectReason::ServerNamespaceDisconnect | DisconnectReason::ForcedClose => {
            Disconnect::ServerClosed
        }
        DisconnectReason::PingTimeout => Disconnect::Timeout,
        DisconnectReason::ParseError => Disconnect::InvalidInput,
        DisconnectReason::SlowConsumer => Disconnect::SlowConsumer,
        DisconnectReason::ServerShutdown => Disconnect::ServerShutdown,
        _ => Disconnect::TransportError,
    })
}

/// One socket's link to its member.
struct Link {
    member: Arc<Member>,
    /// Its state is kept when the connection is lost (false once a restore failed: the
    /// client must start afresh).
    suspendable: AtomicBool,
}

/// Whether a client coming back with private session id `pid` and `offset` gets its state
/// back: the socket it takes back when so (the suspended member is claimed for it, on this
/// node or, in a cluster that keeps the history, on any). A member suspended here skips the
/// connect hook unless `rerun_connect_hook`; one from another node always runs it (its
/// identity stayed there).
pub(crate) fn claim(
    hub: &Arc<Hub>,
    pid: &str,
    offset: &str,
    rerun_connect_hook: bool,
) -> RecoverFuture {
    let hub = hub.clone();
    let pid = pid.to_owned();
    let offset = offset.parse::<u64>().ok();
    Box::pin(async move {
        let (member, here) = hub.claim_anywhere(&pid, offset?).await?;
        Some(Resumed {
            sid: Sid::parse(member.as_str())?,
            skip_guard: here && !rerun_connect_hook,
        })
    })
}

/// Whether the state claimed for socket `sid` is still whole from `offset` (after a connect
/// hook that ran meanwhile); when not, the claim is dropped.
pub(crate) fn confirm(hub: &Hub, sid: Sid, offset: &str) -> bool {
    let (Ok(member), Ok(offset)) = (sid.as_str().parse::<MemberId>(), offset.parse::<u64>()) else {
        return false;
    };
    hub.confirm_claim(member, offset)
}

/// Wires a freshly connected socket to the hub: a member whose id is the socket's. A socket
/// that came back gets its suspended member's channels and missed events.
pub(crate) fn attach(hub: &Arc<Hub>, socket: &SocketRef) {
    let Ok(id) = socket.id().as_str().parse::<MemberId>() else {
        // A socket id is always 20 URL-safe characters, as a member id.
        tracing::error!(socket = %socket.id(), "socket id is not a member id");
        return socket.close_connection();
    };
    let restoring = match socket.resumed_from().map(str::parse::<u64>) {
        None => None,
        Some(Ok(offset)) => match hub.take_suspended(id) {
            Some(suspended) => Some((suspended, offset)),
            None => {
                // Claimed but gone since (too old): the client starts afresh on reconnecting.
                tracing::debug!(socket = %socket.id(), "suspended state expired; closing");
                return socket.close_connection();
            }
        },
        Some(Err(_)) => return socket.close_connection(),
    };
    // A connect hook that ran again decides the identity; else the one it gave before.
    let identity = socket
        .extension::<Identity>()
        .map(|i| (*i).clone())
        .or_else(|| restoring.as_ref().and_then(|(s, _)| s.identity.clone()));
    // The member holds the socket as its sink, and the socket holds the link (its listener),
    // which holds the member: the socket lets go of its listener when it leaves, which ends
    // that cycle.
    let sink: Arc<dyn Sink> = socket.clone();
    let member = Member::new(hub, id, handshake(socket), identity, sink);
    let link = Arc::new(Link {
        member: member.clone(),
        suspendable: AtomicBool::new(true),
    });
    socket.listen(link.clone());
    if let Some((suspended, offset)) = restoring {
        let closing = socket.clone();
        let failed = link.clone();
        let restored = member.restore(suspended, offset, move |restored| {
            if !restored {
                // Events it missed are gone after all: no silent gap, a fresh start (and
                // nothing kept of this connection for the next attempt).
                tracing::debug!(socket = %closing.id(), "missed events gone; closing");
                failed.suspendable.store(false, Ordering::Release);
                closing.close_connection();
            }
        });
        if restored.is_err() {
            link.suspendable.store(false, Ordering::Release);
            socket.close_connection();
        }
    }
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
        let member = &self.member;
        let queued = match name {
            "subscribe" => match payload.get::<String>(0) {
                Ok(channel) => member.join(
                    channel,
                    payload.arg(1).map(ToOwned::to_owned),
                    0,
                    move |verdict| match verdict {
                        Ok(None) => reply_ok(ack),
                        Ok(Some(response)) => reply(
                            ack,
                            &Joined {
                                status: "ok",
                                response: &response,
                            },
                        ),
                        Err(err) => reply_error(ack, err.reason()),
                    },
                ),
                Err(_) => return reply_error(ack, "invalid"),
            },
            "unsubscribe" => match payload.get::<String>(0) {
                Ok(channel) => member.leave(channel, move |_| reply_ok(ack)),
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
                member.event(channel, event, payload, move |answer| match answer {
                    Ok(answer) => reply(ack, &answer.to_json()),
                    Err(err) => reply_error(ack, err.reason()),
                })
            }
        };
        if let Err(err) = queued {
            tracing::warn!(socket = %socket.id(), %err, "closing");
            socket.close_connection();
        }
    }

    fn on_disconnect(self: Arc<Self>, socket: SocketRef, reason: &DisconnectReason) {
        match socket.pid() {
            Some(pid) if reason.is_recoverable() && self.suspendable.load(Ordering::Acquire) => {
                self.member.suspend(leave_reason(reason), pid.to_string());
            }
            _ => self.member.disconnect(leave_reason(reason)),
        }
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

/// The answer to a join with a reply: `{"status":"ok","response":R}`.
#[derive(serde::Serialize)]
struct Joined<'a> {
    status: &'a str,
    response: &'a serde_json::value::RawValue,
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
